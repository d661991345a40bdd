"""The one training loop: its pieces, honest selection, and one epoch event for pre-training and folds."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from torch import nn

from mer_core.config import ExperimentConfig
from mer_core.training import macro
from mer_core.training import pretrain as pt
from mer_core.training import trainer
from mer_core.training.trainer import Evaluation, Selection, make_loader

CLASSES = ("a", "b")
CHANNELS = ("flow_u", "flow_v", "strain")
TINY_DA = dict(input_size=32, block_layers=(2, 2), growth_rate=4, init_features=8, attn_reduction=2, attn_kernel=3)
EVENT_KEYS = {"stage", "epoch", "epochs", "loss", "metrics"}


class Tiny(nn.Module):
    """A linear classifier on flattened inputs: fast, and deterministic under a seed."""

    def __init__(self, c: int = 3, size: int = 8, k: int = 2) -> None:
        super().__init__()
        self.fc = nn.Linear(c * size * size, k)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x.flatten(1))


def _arrays(n: int, seed: int, size: int = 8) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 2
    x = rng.standard_normal((n, 3, size, size)).astype(np.float32)
    x[:, 0, :2] += (2 * y - 1)[:, None, None] * 1.5  # a learnable class signal
    return x, y


def _imagefolder(root: Path) -> Path:
    rng = np.random.default_rng(0)
    for k, name in enumerate(("happy", "sad")):
        (root / name).mkdir(parents=True)
        for i in range(4):
            img = (rng.random((36, 36)) * 60).astype(np.uint8)
            img[6 + 14 * k : 12 + 14 * k, 6:30] = 220
            cv2.imwrite(str(root / name / f"{i}.png"), img)
    return root


def _order(loader: trainer.Loader) -> list[int]:
    return [int(v) for _, yb in loader for v in yb]


# --- one event for every stage ---------------------------------------------------


def test_pretraining_and_a_fold_report_epochs_through_the_same_event(tmp_path):
    pre_events: list[dict] = []
    src = f"folder:{_imagefolder(tmp_path / 'if')}"
    path = pt.pretrain("dense_attention", "cpu", src, epochs=2, seed=0, model_options=TINY_DA, batch_size=4,
                       device="cpu", on_epoch=pre_events.append)
    fold_events: list[dict] = []
    cfg = ExperimentConfig(epochs=2, batch_size=4, device="cpu")
    trainer.fit(Tiny(), cfg, _arrays(10, 0), classes=CLASSES, channels=CHANNELS, test=_arrays(4, 1),
                seed=0, on_epoch=fold_events.append)

    for stage, events in (("pretrain", pre_events), ("fold", fold_events)):
        assert [set(e) for e in events] == [EVENT_KEYS] * 2
        assert [(e["stage"], e["epoch"], e["epochs"]) for e in events] == [(stage, 1, 2), (stage, 2, 2)]
        assert all(e["loss"] == e["metrics"]["train_loss"] and np.isfinite(e["loss"]) for e in events)
    history = torch.load(path, weights_only=True)["pretrain"]["history"]
    assert [h["loss"] for h in history] == [e["loss"] for e in pre_events]
    assert "test_acc" in fold_events[0]["metrics"] and "test_acc" not in pre_events[0]["metrics"]


def test_epoch_event_names_a_known_stage():
    with pytest.raises(ValueError, match="stage='warmup'"):
        trainer.epoch_event("warmup", 1, 1, {"train_loss": 0.0})


# --- the pieces -------------------------------------------------------------------------------


@pytest.mark.parametrize("balance", ["none", "sampler"])
def test_loader_order_depends_only_on_its_seed(balance):
    x = np.zeros((12, 1, 2, 2), np.float32)
    y = np.array([0] * 9 + [1] * 3)
    cfg = ExperimentConfig(batch_size=5, class_balance=balance)
    x[:, 0, 0, 0] = np.arange(12)  # each row names itself

    def rows(seed: int, global_seed: int) -> list[int]:
        torch.manual_seed(global_seed)  # the global RNG must not matter
        np.random.seed(global_seed)
        return [int(v) for xb, _ in make_loader(x, y, cfg, seed) for v in xb[:, 0, 0, 0]]

    first = rows(3, 0)
    assert first == rows(3, 99) and rows(3, 1) == first
    assert rows(4, 0) != first
    if balance == "none":
        assert sorted(first) == list(range(12))  # a permutation: every row once per epoch
    else:
        assert len(first) == 12  # drawn with replacement


@pytest.mark.parametrize("balance", ["none", "weights", "sampler"])
def test_loader_gives_the_dataloader_batches_and_leaves_both_rngs_where_it_left_them(balance):
    """make_loader replaced torch's DataLoader (per-sample collation cost a tenth of a small model's step):
    the batches, the loader generator (augmentation draws from it) and the global RNG (dropout) must end
    where the DataLoader left them, so a seed trains the model it trained before."""
    from torch.utils.data import DataLoader, TensorDataset, WeightedRandomSampler

    x = np.random.default_rng(1).standard_normal((23, 1, 2, 2)).astype(np.float32)
    y = np.array([0] * 15 + [1] * 8)
    cfg = ExperimentConfig(batch_size=5, class_balance=balance)
    ds = TensorDataset(torch.from_numpy(x), torch.from_numpy(y.astype(np.int64)))
    gen = torch.Generator().manual_seed(7)
    if balance == "sampler":
        w = trainer.class_weights(y, 2).numpy()[y]
        reference = DataLoader(ds, batch_size=5, sampler=WeightedRandomSampler(
            torch.tensor(w, dtype=torch.double), len(y), replacement=True, generator=gen))
    else:
        reference = DataLoader(ds, batch_size=5, shuffle=True, generator=gen)
    ours = make_loader(x, y, cfg, 7, 2)
    for _epoch in range(3):
        torch.manual_seed(11)
        expected = [b for b in reference]
        after_ref = torch.rand(3), torch.rand(3, generator=gen)
        torch.manual_seed(11)
        got = [b for b in ours]
        after_ours = torch.rand(3), torch.rand(3, generator=ours.gen)
        assert len(got) == len(expected) == len(ours) == 5
        for (xa, ya), (xb, yb) in zip(got, expected):
            assert torch.equal(xa, xb) and torch.equal(ya, yb) and ya.dtype == yb.dtype == torch.int64
        assert torch.equal(after_ours[0], after_ref[0]) and torch.equal(after_ours[1], after_ref[1])


def test_channels_last_input_gives_the_same_predictions():
    """The trainer feeds models that ask for it (``prefers_channels_last``) channels-last input on a CPU;
    that is a memory layout, not a different function."""
    from mer_core.models.registry import create_model

    x = np.random.default_rng(2).standard_normal((6, 3, 28, 28)).astype(np.float32)
    for name in ("ststnet", "baseline"):
        torch.manual_seed(0)
        model = create_model(name, "cpu", input_size=28)
        assert trainer.channels_last(model, torch.device("cpu"))
        cl = trainer.predict_proba(model, x, torch.device("cpu"))
        model.prefers_channels_last = False
        plain = trainer.predict_proba(model, x, torch.device("cpu"))
        assert np.abs(cl - plain).max() < 1e-5, name
    assert not trainer.channels_last(Tiny(), torch.device("cpu"))


def test_class_weights_balance_present_classes_and_zero_absent_ones():
    w = trainer.class_weights(np.array([0, 0, 0, 1]), 3)
    assert w.tolist() == pytest.approx([4 / 3 / 2, 4 / 1 / 2, 0.0])
    y = np.array([0, 0, 0, 0, 1, 2, 2, 2])
    w = trainer.class_weights(y, 4).numpy()
    per_class = np.bincount(y, weights=w[y], minlength=4)
    assert per_class.tolist() == pytest.approx([8 / 3] * 3 + [0.0])  # each present class weighs the same
    assert w[y].mean() == pytest.approx(1.0)  # and the average sample weighs 1, as unweighted


def test_train_one_epoch_skips_batches_below_min_batch_and_steps_once_per_batch():
    x, y = _arrays(9, 0)
    cfg = ExperimentConfig(batch_size=4, augment=False, class_balance="none", scheduler="none")
    seen: list[int] = []
    model = Tiny()
    model.register_forward_hook(lambda m, inp, out: seen.append(len(inp[0])))
    for min_batch, expected in ((1, [4, 4, 1]), (2, [4, 4])):
        seen.clear()
        state = trainer.TrainState.create(model, cfg, y, 2, CHANNELS, torch.device("cpu"), min_batch=min_batch)
        row = trainer.train_one_epoch(state, make_loader(x, y, cfg, 0), epoch=1)
        assert seen == expected and 0 <= row["train_acc"] <= 1 and row["epoch"] == 1


def test_should_stop_cancels_inside_the_epoch():
    cfg = ExperimentConfig(epochs=3, batch_size=4, device="cpu")
    with pytest.raises(trainer.Cancelled):
        trainer.fit(Tiny(), cfg, _arrays(8, 0), classes=CLASSES, channels=CHANNELS, should_stop=lambda: True)


def test_selection_keeps_the_best_validation_epoch_and_stops_after_patience():
    model = Tiny()
    sel = Selection("early_stop", patience=2)
    weights = {}
    for epoch, (uf1, loss) in enumerate([(0.5, 1.0), (0.7, 0.9), (0.7, 0.8), (0.6, 0.7), (0.7, 0.85)], 1):
        with torch.no_grad():
            model.fc.weight.fill_(epoch)
        weights[epoch] = epoch
        sel.observe(epoch, Evaluation(np.zeros((0, 2)), loss, 0.0, uf1), model)
        if sel.should_stop():
            break
    assert epoch == 5 and sel.epoch == 3  # ties on UF1 broken by the lower loss; two stale epochs stop it
    assert sel.finish(model, epoch) == 3 and model.fc.weight.unique().tolist() == [3.0]
    fixed = Selection("fixed")
    fixed.observe(1, Evaluation(np.zeros((0, 2)), 0.1, 1.0, 1.0), model)
    assert not fixed.should_stop() and fixed.finish(model, 7) == 7


def test_early_stopping_never_sees_the_test_subject():
    """Test labels that would pick another epoch leave the selection, and the test predictions, unchanged."""
    train, val = _arrays(16, 0), _arrays(8, 5)
    cfg = ExperimentConfig(epochs=6, batch_size=4, device="cpu", selection="early_stop", patience=6, lr=0.05,
                           scheduler="none")

    def run(test: tuple[np.ndarray, np.ndarray]) -> trainer.FitResult:
        torch.manual_seed(0)  # the same initial weights each time
        return trainer.fit(Tiny(), cfg, train, classes=CLASSES, channels=CHANNELS, val=val, test=test, seed=2)

    honest = run(val)  # test = the validation data: a test-selected epoch would match the honest one
    flipped = run((val[0], 1 - val[1]))  # same inputs, labels inverted: the oracle prefers the worst epoch
    assert flipped.oracle_epoch != honest.oracle_epoch  # the test data would change a test-selected choice
    assert flipped.selected_epoch == honest.selected_epoch
    assert np.array_equal(flipped.test_probs, honest.test_probs)
    other = run(_arrays(6, 9))
    assert other.selected_epoch == honest.selected_epoch
    assert [h["val_uf1"] for h in other.history] == [h["val_uf1"] for h in honest.history]


def test_fixed_selection_predicts_with_the_last_epoch_whatever_validation_says():
    cfg = ExperimentConfig(epochs=3, batch_size=4, device="cpu")
    model, test = Tiny(), _arrays(4, 4)
    res = trainer.fit(model, cfg, _arrays(8, 0), classes=CLASSES, channels=CHANNELS, val=_arrays(4, 3),
                      test=test, seed=0)
    assert res.selected_epoch == 3 and len(res.history) == 3
    assert np.allclose(res.test_probs, trainer.predict_proba(model, test[0], torch.device("cpu")))


def test_engine_reports_pretraining_epochs_as_its_pretrain_stage(tmp_path):
    from mer_core.training.engine import _pretrain

    src = f"folder:{_imagefolder(tmp_path / 'if')}"
    cfg = ExperimentConfig(model="dense_attention", pretrain=src, pretrain_epochs=2, device="cpu",
                           model_options={k: v for k, v in TINY_DA.items() if k != "input_size"},
                           preprocess=dict(input_size=32, face_crop=False))
    events: list[dict] = []
    _pretrain(cfg, events.append)
    assert [(e["event"], e["stage"], e["done"], e["total"]) for e in events] == [
        ("stage", "pretrain", 1, 2), ("stage", "pretrain", 2, 2)]
    assert all(np.isfinite(e["loss"]) for e in events)


def test_macro_labels_use_the_datasets_synonym_table(tmp_path):
    for name in ("Joy", "other", "Sad"):
        (tmp_path / name).mkdir()
        cv2.imwrite(str(tmp_path / name / "0.png"), np.full((8, 8), 100, np.uint8))
    labels = sorted(label for _, label in macro.index_imagefolder(tmp_path))
    assert labels == ["happiness", "others", "sadness"]  # 'other' -> 'others' as in CASME II's table


def test_augment_flip_mirrors_every_channel_and_negates_flow_u_then_shifts(monkeypatch):
    """A mirrored face moves the other way: a flipped sample is the mirrored image with flow_u negated and the
    other channels only mirrored; then every sample is shifted by the drawn rows/columns (wrapping round)."""
    channels = ("apex", "flow_u", "flow_v")  # flow_u not first: found by name
    n, c, h, w = 3, len(channels), 5, 6
    x = torch.arange(1, n * c * h * w + 1, dtype=torch.float32).reshape(n, c, h, w)  # distinct, non-zero
    before = x.clone()
    flips = torch.tensor([0.1, 0.9, 0.3])  # < 0.5: samples 0 and 2 flip, sample 1 does not
    shifts = iter([torch.tensor([1]), torch.tensor([-2])])  # rows down 1, columns left 2
    monkeypatch.setattr(torch, "rand", lambda size, generator=None: flips[:size])
    monkeypatch.setattr(torch, "randint", lambda low, high, size, generator=None: next(shifts))
    out = trainer.augment(x, channels, torch.Generator().manual_seed(0)).numpy()
    src = before.numpy()
    expected = np.empty_like(src)
    for i in range(n):
        for ch in range(c):
            sign = -1.0 if i in (0, 2) and channels[ch] == "flow_u" else 1.0
            for r in range(h):
                for col in range(w):
                    cc = (col + 2) % w  # the column shifted left by 2 came from here
                    cc = w - 1 - cc if i in (0, 2) else cc  # ... in the mirrored image
                    expected[i, ch, r, col] = sign * src[i, ch, (r - 1) % h, cc]
    np.testing.assert_array_equal(out, expected)
    assert (out[0, 1] < 0).all() and (out[0, 2] > 0).all() and (out[1, 1] > 0).all()
    assert torch.equal(x, before)  # the caller's batch is left as it was
