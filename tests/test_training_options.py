"""Training options inside the one loop: weight averaging (EMA / SWA), nested epoch choice, seeds per fold."""
from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from fixtures_clips import make_clip_manifest, tiny_config
from mer_core.config import ExperimentConfig
from mer_core.errors import ConfigError, ProtocolError
from mer_core.store.db import RunStore
from mer_core.training import fold_fit, trainer
from mer_core.training.protocols import make_folds

CLASSES = ("a", "b")
CHANNELS = ("flow_u", "flow_v", "strain")


class Tiny(nn.Module):
    def __init__(self, c: int = 3, size: int = 8, k: int = 2) -> None:
        super().__init__()
        self.fc = nn.Linear(c * size * size, k)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x.flatten(1))


class TinyBN(nn.Module):
    """Batch norm on the input channels first: its running mean is the mean of what it was fed."""

    def __init__(self) -> None:
        super().__init__()
        self.bn = nn.BatchNorm2d(3)
        self.fc = nn.Linear(3 * 8 * 8, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.bn(x).flatten(1))


def _arrays(n: int, seed: int, shift: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 2
    x = rng.standard_normal((n, 3, 8, 8)).astype(np.float32) + np.float32(shift)
    x[:, 0, :2] += (2 * y - 1)[:, None, None] * 1.5
    return x, y


def _subjects_table(n_subjects: int, clips: int) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    subjects = np.repeat([f"s{i}" for i in range(n_subjects)], clips)
    table = pd.DataFrame({"subject": subjects, "sample_id": [f"c{i}" for i in range(len(subjects))]})
    x, y = _arrays(len(subjects), 7)
    return table, x, y


def _weights(model: nn.Module) -> torch.Tensor:
    return torch.cat([p.detach().flatten().clone() for p in model.parameters()])


# --- config: defaults keep today's behaviour, bad values are one line naming the key -----------------------


def test_defaults_keep_behaviour_and_hash():
    c = ExperimentConfig()
    assert (c.average, c.seeds_per_fold, c.selection) == ("none", 1, "fixed")
    old = {k: v for k, v in c.to_dict().items()
           if k not in ("average", "ema_decay", "swa_epochs", "nested_folds", "seeds_per_fold")}
    canonical = json.dumps(old, sort_keys=True, separators=(",", ":"), default=str)
    import hashlib

    assert c.stable_hash() == hashlib.sha256(canonical.encode()).hexdigest()[:12]  # a stored run hashes as before
    for change in ({"average": "ema"}, {"seeds_per_fold": 2}, {"selection": "nested"}, {"nested_folds": 0}):
        changed = c.replace(**change)
        assert changed.stable_hash() != c.stable_hash()
        assert ExperimentConfig.from_json(changed.to_json()) == changed  # stored with the run


@pytest.mark.parametrize("data, key, accepted", [
    ({"average": "mean"}, "average", "none, ema, swa"),
    ({"ema_decay": 1.0}, "ema_decay", "0 < value < 1"),
    ({"ema_decay": 0.0}, "ema_decay", "0 < value < 1"),
    ({"swa_epochs": 0}, "swa_epochs", ">= 1"),
    ({"average": "swa", "swa_epochs": 6, "epochs": 4}, "swa_epochs", "1..4"),
    ({"average": "ema", "selection": "early_stop"}, "average", "selection='fixed' or 'nested'"),
    ({"nested_folds": 1}, "nested_folds", "2..64"),
    ({"nested_folds": 65}, "nested_folds", "2..64"),
    ({"seeds_per_fold": 0}, "seeds_per_fold", "1..20"),
    ({"seeds_per_fold": 21}, "seeds_per_fold", "1..20"),
    ({"selection": "oracle"}, "selection", "fixed, early_stop, nested"),
])
def test_out_of_range_options_are_one_line_naming_the_key_and_range(data, key, accepted):
    with pytest.raises(ConfigError) as info:
        ExperimentConfig.from_dict(data)
    message = str(info.value)
    assert "\n" not in message and message.startswith(key) and accepted in message, message


def test_options_are_in_mer_loso_help_and_set(capsys):
    from mer_core.cli import build_parser

    parser = build_parser()
    with pytest.raises(SystemExit):
        parser.parse_args(["loso", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for word in ("nested", "average=ema", "average=swa", "seeds_per_fold", "nested_folds"):
        assert word in text, word
    args = parser.parse_args(["loso", "--selection", "nested", "--set", "average=swa", "--set", "seeds_per_fold=2"])
    from mer_core.cli.cmd_loso import explicit_choices

    overrides = explicit_choices(args, "loso")
    assert (overrides["selection"], overrides["average"], overrides["seeds_per_fold"]) == ("nested", "swa", 2)


# --- weight averaging -----------------------------------------------------------------------------------


def test_ema_equals_the_hand_computation_on_a_one_parameter_model():
    model = nn.Linear(1, 1, bias=False)
    with torch.no_grad():
        model.weight.fill_(1.0)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    d = 0.9
    avg = trainer.WeightAverage(model, "ema", n_epochs=1, decay=d)
    weights = []
    for g in (2.0, -1.0, 4.0):  # a known gradient sequence
        model.weight.grad = torch.tensor([[g]])
        opt.step()
        avg.after_step(model)
        weights.append(float(model.weight.detach()))
    assert weights == pytest.approx([0.8, 0.9, 0.5])
    w1, w2, w3 = weights
    expected = d * (d * w1 + (1 - d) * w2) + (1 - d) * w3  # the first step's weights start the average
    avg.finish(model, np.zeros((2, 1), np.float32), torch.device("cpu"))
    assert float(model.weight.detach()) == pytest.approx(expected, abs=1e-7)
    assert avg.count == 3


def _one_step_per_epoch(**kw) -> ExperimentConfig:
    base = dict(epochs=3, batch_size=16, optimizer="sgd", momentum=0.0, weight_decay=0.0, scheduler="none",
                lr=0.5, class_balance="none", augment=False, device="cpu")
    return ExperimentConfig(**{**base, **kw})


def _trajectory(cfg: ExperimentConfig, train) -> list[torch.Tensor]:
    """The weights after each epoch (= each step: one batch per epoch) of a plain fit."""
    torch.manual_seed(0)
    model = Tiny()
    seen: list[torch.Tensor] = []
    trainer.fit(model, cfg, train, classes=CLASSES, channels=CHANNELS, seed=3,
                on_epoch=lambda e: seen.append(_weights(model)))
    return seen


@pytest.mark.parametrize("average", ["ema", "swa"])
def test_fit_averages_the_weights_it_trained_and_predicts_with_them(average):
    train, test = _arrays(16, 0), _arrays(6, 1)
    plain = _one_step_per_epoch()
    steps = _trajectory(plain, train)
    cfg = plain.replace(average=average, ema_decay=0.5, swa_epochs=2)
    torch.manual_seed(0)
    model = Tiny()
    res = trainer.fit(model, cfg, train, classes=CLASSES, channels=CHANNELS, test=test, seed=3)
    w1, w2, w3 = steps
    expected = 0.5 * (0.5 * w1 + 0.5 * w2) + 0.5 * w3 if average == "ema" else (w2 + w3) / 2
    assert torch.allclose(_weights(model), expected, atol=1e-6)
    assert np.allclose(res.test_probs, trainer.predict_proba(model, test[0], torch.device("cpu")))
    assert not np.allclose(res.test_probs, res.test_epoch_probs[-1])  # not the last epoch's weights


def test_batch_norm_statistics_are_recomputed_on_the_training_data_only():
    train, test = _arrays(16, 0, shift=3.0), _arrays(8, 1, shift=-5.0)
    cfg = _one_step_per_epoch(average="swa", swa_epochs=2, batch_size=8)
    torch.manual_seed(0)
    model = TinyBN()
    trainer.fit(model, cfg, train, classes=CLASSES, channels=CHANNELS, test=test, seed=3)
    expected = torch.from_numpy(train[0]).mean(dim=(0, 2, 3))  # two equal batches: their mean is the mean
    assert torch.allclose(model.bn.running_mean, expected, atol=1e-5)


# --- nested selection -------------------------------------------------------------------------------------


def test_inner_splits_hold_only_training_subjects_asserted_on_indices():
    table, _x, _y = _subjects_table(5, 3)
    subjects = table["subject"].to_numpy()
    for k, expected_inner in ((2, 2), (0, 4)):
        folds = make_folds(table, "loso", nested_folds=k)
        for f in folds:
            assert len(f.inner) == expected_inner
            test_idx = set(f.test_idx.tolist())
            vals = []
            for tr, va in f.inner:
                assert not test_idx & set(tr.tolist()) and not test_idx & set(va.tolist())
                assert set(tr.tolist()) | set(va.tolist()) <= set(f.train_idx.tolist())
                assert not set(subjects[tr]) & set(subjects[va])
                vals += va.tolist()
            assert sorted(vals) == sorted(f.train_idx.tolist())  # every training clip validated once


def test_too_few_training_subjects_for_nested_selection_names_the_minimum(tmp_path):
    table, _x, _y = _subjects_table(3, 2)
    with pytest.raises(ProtocolError, match=r"selection='nested' needs at least 4 training subjects per fold "
                                            r"\(nested_folds=4\); fold 0 \(s0\) has 2"):
        make_folds(table, "loso", nested_folds=4)
    from mer_core.training.engine import run_experiment

    manifest = make_clip_manifest(tmp_path / "clips", subjects=3, clips_per_subject=3, size=32, frames=5)
    with pytest.raises(ProtocolError, match="needs at least 3 training subjects"):
        run_experiment(tiny_config(manifest, epochs=1, selection="nested", nested_folds=3), run_id="few")
    with RunStore() as store:
        assert store.list_runs().empty  # refused before anything trained


def _build(seed: int):
    torch.manual_seed(seed)
    return Tiny(), None


def test_nested_selection_never_reads_the_test_subject_and_keeps_the_best_pooled_inner_epoch():
    table, x, y = _subjects_table(5, 4)
    fold = make_folds(table, "loso", nested_folds=2)[1]
    picked: list[np.ndarray] = []

    def pick(idx):
        picked.append(np.asarray(idx).copy())
        return np.ascontiguousarray(x[idx]), y[idx]

    cfg = ExperimentConfig(epochs=3, batch_size=8, device="cpu", selection="nested", nested_folds=2)
    events: list[dict] = []
    model, res = fold_fit.fit_fold(_build, cfg, pick, fold, classes=CLASSES, channels=CHANNELS, seed=11,
                                   on_epoch=events.append)
    test_idx = set(fold.test_idx.tolist())
    with_test = [i for i, p in enumerate(picked) if test_idx & set(p.tolist())]
    assert len(with_test) == 1 and np.array_equal(picked[with_test[0]], fold.test_idx)  # read once, to test
    assert with_test[0] >= 2 * len(fold.inner)  # after every inner split (train, validation) was trained
    for i, p in enumerate(picked):
        if i != with_test[0]:
            assert set(p.tolist()) <= set(fold.train_idx.tolist())
    assert len(res.inner_uf1) == 3 and res.inner_uf1[res.selected_epoch - 1] == max(res.inner_uf1)
    assert len(res.history) == res.selected_epoch == len(events)  # trained that many epochs on all of them
    assert [e["metrics"]["val_uf1"] for e in events] == res.inner_uf1[: res.selected_epoch]
    assert res.test_probs.shape == (len(fold.test_idx), 2)


def test_a_nested_run_stores_each_folds_chosen_epoch_and_its_final_model_trains_their_median(tmp_path):
    from mer_core.store.folders import run_folder
    from mer_core.training.engine import run_experiment
    from mer_core.training.final import FINAL_RECORD

    manifest = make_clip_manifest(tmp_path / "clips", subjects=4, clips_per_subject=3, size=32, frames=5)
    events: list[dict] = []
    rid = run_experiment(tiny_config(manifest, epochs=2, selection="nested", nested_folds=2, final_model=True),
                         run_id="nested", progress=events.append)
    with RunStore() as store:
        folds = store.folds(rid)
        epochs = store.epochs(rid)
        assert store.get_run(rid)["status"] == "done"
    assert len(folds) == 4
    for row in folds.itertuples():
        assert 1 <= row.selected_epoch <= 2 and row.epochs_run == row.selected_epoch
        assert epochs.query("fold_index == @row.fold_index")["val_uf1"].notna().all()
    chosen = sorted(int(e) for e in folds["selected_epoch"])
    record = json.loads((run_folder(rid, create=False) / FINAL_RECORD).read_text())
    assert record["fold_epochs"] == chosen and record["epochs"] == int(np.floor(np.median(chosen) + 0.5))
    assert record["epochs_rule"].startswith("nested: the median") and "inner 2-fold" in record["epochs_rule"]
    final = [e for e in events if e.get("stage") == "final_model"]
    assert final[-1]["done"] == final[-1]["total"] == record["epochs"]  # it trained that many epochs


# --- seeds per fold -------------------------------------------------------------------------------------


def test_one_seed_per_fold_is_exactly_one_fit_and_several_average_their_probabilities():
    table, x, y = _subjects_table(4, 4)
    fold = make_folds(table, "loso")[0]

    def pick(idx):
        return np.ascontiguousarray(x[idx]), y[idx]

    cfg = ExperimentConfig(epochs=2, batch_size=8, device="cpu")
    kw = dict(classes=CLASSES, channels=CHANNELS, device=torch.device("cpu"))

    def single(seed):
        model, _ = _build(seed)
        return trainer.fit(model, cfg, pick(fold.train_idx), test=pick(fold.test_idx), seed=seed, **kw)

    _m, one = fold_fit.fit_fold(_build, cfg, pick, fold, seed=5, **kw)
    assert np.array_equal(one.test_probs, single(5).test_probs)
    _m, three = fold_fit.fit_fold(_build, cfg.replace(seeds_per_fold=3), pick, fold, seed=5, **kw)
    members = [single(fold_fit.member_seed(5, k)) for k in range(3)]
    assert fold_fit.member_seed(5, 0) == 5 and three.members == 3
    assert np.allclose(three.test_probs, np.mean([m.test_probs for m in members], axis=0))
    assert not np.allclose(members[0].test_probs, members[1].test_probs)  # different seeds, different models


def test_a_cancelled_seed_ensemble_run_keeps_its_finished_folds_and_resumes(tmp_path, monkeypatch):
    from mer_core.training.engine import run_experiment

    manifest = make_clip_manifest(tmp_path / "clips", subjects=3, clips_per_subject=3, size=32, frames=5)
    config = tiny_config(manifest, epochs=1, seeds_per_fold=2)
    real_fit = trainer.fit
    calls = {"n": 0}

    def counting_fit(*a, **kw):
        calls["n"] += 1
        return real_fit(*a, **kw)

    monkeypatch.setattr(trainer, "fit", counting_fit)
    stop_at = 4  # fold 1's second model: fold 0 (two models) is stored, fold 1 is half done
    rid = run_experiment(config, run_id="ens", should_stop=lambda: calls["n"] >= stop_at)
    with RunStore() as store:
        run = store.get_run(rid)
        assert run["status"] == "cancelled", run["error"]
        assert store.completed_folds(rid) == {0}
        kept = store.predictions(rid)
    assert calls["n"] == 4
    rid2 = run_experiment(config, run_id="ens")
    assert rid2 == rid and calls["n"] == 4 + 4  # folds 1 and 2, two models each; fold 0 not retrained
    with RunStore() as store:
        assert store.get_run(rid)["status"] == "done" and store.completed_folds(rid) == {0, 1, 2}
        resumed = store.predictions(rid)
    fold0 = resumed[resumed["sample_id"].isin(kept["sample_id"])]
    assert np.allclose(np.stack(fold0["probs"]), np.stack(kept["probs"]))
    fresh = run_experiment(config, run_id="fresh")  # the resumed run is the run it would have been
    with RunStore() as store:
        whole = store.predictions(fresh)
    assert np.allclose(np.stack(whole.sort_values("sample_id")["probs"]),
                       np.stack(resumed.sort_values("sample_id")["probs"]))
    assert not math.isnan(float(np.stack(whole["probs"]).sum()))


# --- how the Leaderboard describes such a run --------------------------------------------------------------


def test_the_leaderboard_note_says_how_a_nested_averaged_seeded_run_chose_its_epochs():
    from mer_core.evaluation.leaderboard import measured_rows

    summary = {"pooled": {"uf1": 0.6, "uar": 0.6}}

    def note(**config):
        run = {"id": "r", "model": "baseline", "summary": summary, "config": {"epochs": 30, **config}}
        return measured_rows([run])["note"][0]

    nested = note(selection="nested", nested_folds=4)
    assert "inner 4-fold split of its training subjects only" in nested and "test subject never used" in nested
    assert "fixed" not in nested and "averaged" not in nested and "seeds" not in nested
    assert "inner leave-one-subject-out split" in note(selection="nested", nested_folds=0)
    both = note(selection="nested", nested_folds=3, average="swa", swa_epochs=5, seeds_per_fold=3)
    assert "SWA over the last 5 epochs" in both and "3 models per fold (seeds), probabilities averaged" in both
    assert "EMA, decay 0.999" in note(average="ema", ema_decay=0.999)
    assert note(selection="fixed").startswith("fixed 30 epochs")  # a run stored before the options existed
