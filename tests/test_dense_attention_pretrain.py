"""Macro pre-training (ImageFolder, CK+, clip datasets), checkpoint reuse, fine-tuning helpers, CLI."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from mer_core.cli import main as mer_main
from mer_core.config import ExperimentConfig, PreprocessConfig
from mer_core.datasets import make_table, register_dataset, registry
from mer_core.errors import ConfigError, DatasetError
from mer_core.models import create_model
from mer_core.paths import checkpoints_dir
from mer_core.training import macro
from mer_core.training import pretrain as pt

TINY = dict(input_size=32, block_layers=(2, 2), growth_rate=4, init_features=8, attn_reduction=2, attn_kernel=3)
FAST = PreprocessConfig(face_crop=False)


def _face(rng: np.random.Generator, label: int, size: int = 40) -> np.ndarray:
    """A grey blob image whose bright bar position depends on the class."""
    img = (rng.random((size, size)) * 60).astype(np.uint8)
    y = 6 + 12 * label
    img[y : y + 6, 8:32] = 220
    return img


def make_imagefolder(root: Path, classes=("happy", "sad"), per_class: int = 6) -> Path:
    rng = np.random.default_rng(0)
    for k, name in enumerate(classes):
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            cv2.imwrite(str(root / name / f"img{i}.png"), _face(rng, k))
    (root / "sad" / "notes.txt").write_text("not an image")  # ignored
    return root


def make_ckplus(root: Path) -> Path:
    """Three subjects, sequences neutral -> peak; one bad label code, one sequence without frames."""
    rng = np.random.default_rng(1)
    codes = {("S005", "001"): 5, ("S005", "002"): 7, ("S010", "001"): 5, ("S010", "003"): 7,
             ("S011", "001"): 9, ("S011", "002"): 5}
    for (subj, seq), code in codes.items():
        frames = root / "cohn-kanade-images" / subj / seq
        emo = root / "Emotion" / subj / seq
        emo.mkdir(parents=True)
        n = 4
        (emo / f"{subj}_{seq}_{n:08d}_emotion.txt").write_text(f"   {float(code):.7e}\n")
        if (subj, seq) == ("S011", "002"):
            continue  # labelled but no frames on disk
        frames.mkdir(parents=True)
        for i in range(n):
            cv2.imwrite(str(frames / f"{subj}_{seq}_{i + 1:08d}.png"), _face(rng, int(code == 7) if i == n - 1 else 0))
    # an unlabelled sequence is ignored
    (root / "cohn-kanade-images" / "S005" / "003").mkdir(parents=True)
    return root


def _index_test_clips(root, folder: str, n: int = 6):
    rng = np.random.default_rng(2)
    rows = []
    for i in range(n):
        label = ("anger", "joy")[i % 2]
        d = Path(folder) / f"clip{i}"
        d.mkdir(parents=True, exist_ok=True)
        paths = []
        for t in range(3):
            p = d / f"f{t}.png"
            cv2.imwrite(str(p), _face(rng, (i % 2) if t == 2 else 0))
            paths.append(p)
        rows.append(dict(dataset="tmacro", subject=f"tmacro:s{i // 2}", clip=f"c{i}", label=label,
                         frames=tuple(paths), onset=0, apex=2, offset=2, fps=30.0, cropped=True))
    return make_table(rows)


def test_parse_sources():
    assert macro.split_sources("synthetic-macro, folder:/x ,") == ["synthetic-macro", "folder:/x"]
    s = macro.parse_source("synthetic-macro?seed=3&amplitude=2.5&colour=false&style=b")
    assert (s.kind, s.name, dict(s.options)) == ("dataset", "synthetic-macro",
                                                 {"seed": 3, "amplitude": 2.5, "colour": False, "style": "b"})
    assert macro.parse_source(s.spec()) == s
    with pytest.raises(DatasetError, match="folder not found"):
        macro.parse_source("folder:/definitely/not/here")
    with pytest.raises(ConfigError, match="key=value"):
        macro.parse_source("synthetic-macro?seed")


def test_imagefolder_and_ckplus_indexing(tmp_path):
    items = macro.index_imagefolder(make_imagefolder(tmp_path / "if"))
    assert len(items) == 12 and {lab for _, lab in items} == {"happiness", "sadness"}  # synonyms unified
    table, skipped = macro.index_ckplus(make_ckplus(tmp_path / "ck"))
    assert sorted(table["clip"]) == ["S005_001", "S005_002", "S010_001", "S010_003"]
    assert set(table["label"]) == {"happiness", "surprise"}
    assert (table["onset"] == 0).all() and (table["apex"] == 3).all()
    assert len(skipped) == 2 and any("9.0" in s for s in skipped) and any("no frames" in s for s in skipped)
    with pytest.raises(DatasetError, match="cohn-kanade-images"):
        macro.index_ckplus(tmp_path / "if")


def test_still_inputs_derive_image_channels_and_zero_motion(tmp_path):
    root = make_imagefolder(tmp_path / "if", per_class=1)
    paths = [p for p, _ in macro.index_imagefolder(root)] + [str(tmp_path / "missing.png")]
    x, ok = macro.still_inputs(paths, ("magnified_apex", "diff", "onset", "flow_u"), 16)
    assert x.shape == (3, 4, 16, 16) and ok.tolist() == [True, True, False]
    img = cv2.resize(cv2.imread(paths[0], cv2.IMREAD_GRAYSCALE), (16, 16), interpolation=cv2.INTER_AREA) / 255.0
    assert np.allclose(x[0, 0], img, atol=1e-6) and np.allclose(x[0, 2], img, atol=1e-6)
    assert not x[:, 1].any() and not x[:, 3].any()


def test_pretrain_end_to_end_and_reuse(tmp_path):
    sources = [f"folder:{make_imagefolder(tmp_path / 'if')}", f"ckplus:{make_ckplus(tmp_path / 'ck')}"]
    logs: list[str] = []
    path = pt.pretrain("dense_attention", "cpu", sources, epochs=2, seed=0, model_options=TINY, preprocess=FAST,
                       batch_size=8, device="cpu", log=logs.append)
    assert path.parent == checkpoints_dir() / "pretrain" and path.suffix == ".pt"
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    assert set(ckpt) >= {"state_dict", "config", "pretrain"}
    info = ckpt["pretrain"]
    assert info["classes"] == ["happiness", "sadness", "surprise"]
    assert info["samples"] == 12 + 4 and len(info["history"]) == 2
    assert all(np.isfinite(h["loss"]) for h in info["history"])
    assert ckpt["config"]["num_classes"] == 3 and ckpt["config"]["block_layers"] == [2, 2]
    assert ckpt["state_dict"]["head.weight"].shape[0] == 3
    # same request: reused, not retrained
    mtime = path.stat().st_mtime_ns
    logs.clear()
    again = pt.pretrain("dense_attention", "cpu", list(sources), epochs=2, seed=0,
                        model_options={**TINY, "num_classes": 7}, preprocess=FAST, batch_size=8, device="cpu",
                        log=logs.append)
    assert again == path and path.stat().st_mtime_ns == mtime and "reusing" in logs[0]
    # any change of what determines the weights gives another checkpoint
    other = pt.pretrain("dense_attention", "cpu", sources[:1], epochs=1, seed=0, model_options=TINY,
                        preprocess=FAST, batch_size=8, device="cpu")
    assert other != path
    # a corrupt checkpoint is retrained, never served
    path.write_bytes(b"truncated")
    assert pt.pretrain("dense_attention", "cpu", sources, epochs=2, seed=0, model_options=TINY, preprocess=FAST,
                       batch_size=8, device="cpu") == path
    assert torch.load(path, weights_only=True)["pretrain"]["samples"] == 16


def test_pretrain_on_registered_clip_dataset_with_options(tmp_path, monkeypatch):
    # registered for this test only, so registry-wide tests elsewhere never see it
    monkeypatch.setattr(registry, "_DATASETS", dict(registry._DATASETS))
    register_dataset("test-macro-clips", description="pretrain fixture", needs_root=False)(_index_test_clips)
    spec = f"test-macro-clips?folder={tmp_path / 'clips'}&n=8"
    path = pt.pretrain("dense_attention", "cpu", spec, epochs=1, seed=1, model_options=TINY, preprocess=FAST,
                       batch_size=4, device="cpu")
    info = torch.load(path, weights_only=True)["pretrain"]
    assert info["classes"] == ["anger", "happiness"] and info["samples"] == 8
    assert info["report"][0]["failed"] == 0


def test_load_pretrained_backbone_skips_head_and_checks_architecture(tmp_path):
    src = f"folder:{make_imagefolder(tmp_path / 'if')}"
    path = pt.pretrain("dense_attention", "cpu", src, epochs=1, model_options=TINY, device="cpu", batch_size=6)
    torch.manual_seed(5)
    model = create_model("dense_attention", "cpu", num_classes=3, **TINY)
    head_before = model.head.weight.detach().clone()
    summary = pt.load_pretrained_backbone(model, path)
    state = torch.load(path, weights_only=True)["state_dict"]
    assert summary["skipped"] == ["head.bias", "head.weight"]
    for name, value in model.state_dict().items():
        if not name.startswith("head."):
            assert torch.equal(value, state[name]), name
    assert torch.equal(model.head.weight, head_before) and model.head.weight.shape == (3, model.num_features)
    pt.load_pretrained_backbone(create_model("dense_attention", "cpu", **TINY, dropout=0.5), path)  # not architecture
    other = create_model("dense_attention", "cpu", **{**TINY, "growth_rate": 6})
    with pytest.raises(ConfigError, match="growth_rate: checkpoint 4 vs model 6"):
        pt.load_pretrained_backbone(other, path)
    with pytest.raises(ConfigError, match="not found"):
        pt.load_pretrained_backbone(model, tmp_path / "nope.pt")


def _trainable(model) -> set[str]:
    return {n for n, p in model.named_parameters() if p.requires_grad}


def test_freeze_modes_freeze_what_they_say():
    model = create_model("dense_attention", "cpu", **TINY)
    every = {n for n, _ in model.named_parameters()}
    early = {n for n in every if n.startswith(("stem.", "stages.0."))}
    head = {"head.weight", "head.bias"}
    assert early and head < every

    frozen = pt.apply_freeze(model, "early")
    assert set(frozen) == early and _trainable(model) == every - early
    frozen = pt.apply_freeze(model, "all_but_head")
    assert set(frozen) == every - head and _trainable(model) == head
    assert pt.apply_freeze(model, "none") == [] and _trainable(model) == every
    with pytest.raises(ConfigError, match="freeze='some'"):
        pt.apply_freeze(model, "some")

    # one optimiser step with the groups: frozen weights do not move, the head does
    pt.apply_freeze(model, "early")
    groups = pt.param_groups(model, lr=1e-2, backbone_lr_mult=0.1)
    assert [(g["name"], g["lr"]) for g in groups] == [("backbone", pytest.approx(1e-3)), ("head", 1e-2)]
    n_group = {g["name"]: sum(p.numel() for p in g["params"]) for g in groups}
    assert n_group["head"] == sum(p.numel() for n, p in model.named_parameters() if n in head)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    opt = torch.optim.AdamW(groups)
    model.train()
    loss = torch.nn.functional.cross_entropy(model(torch.randn(4, 2, 32, 32)), torch.tensor([0, 1, 2, 0]))
    loss.backward()
    opt.step()
    after = dict(model.named_parameters())
    assert all(torch.equal(before[n], after[n]) for n in early)
    assert not torch.equal(before["head.weight"], after["head.weight"])
    assert not torch.equal(before["stages.1.block.layers.0.conv1.weight"], after["stages.1.block.layers.0.conv1.weight"])

    pt.apply_freeze(model, "all_but_head")
    assert [g["name"] for g in pt.param_groups(model, 1e-3, 1.0)] == ["head"]
    pt.apply_freeze(model, "none")
    assert [g["name"] for g in pt.param_groups(model, 1e-3, 0.0)] == ["head"]  # multiplier 0 = backbone fixed


def test_pretrain_for_experiment_maps_the_config(tmp_path):
    assert pt.pretrain_for_experiment(ExperimentConfig(model="dense_attention")) is None
    src = f"folder:{make_imagefolder(tmp_path / 'if')}"
    cfg = ExperimentConfig(model="dense_attention", pretrain=src, pretrain_epochs=1, device="cpu",
                           model_options={k: v for k, v in TINY.items() if k != "input_size"},
                           preprocess=dict(input_size=32, channels=["magnified_apex"], face_crop=False))
    path = pt.pretrain_for_experiment(cfg)
    ckpt = torch.load(path, weights_only=True)
    assert ckpt["config"]["channels"] == ["magnified_apex"] and ckpt["config"]["input_size"] == 32
    model = create_model("dense_attention", "cpu", channels=("magnified_apex",), **TINY)
    pt.load_pretrained_backbone(model, path)  # fits the fine-tuned model


def test_cli_pretrain_prints_checkpoint(tmp_path, capsys):
    src = f"folder:{make_imagefolder(tmp_path / 'if')}"
    args = ["pretrain", "--model", "dense_attention", "--macro", src, "--epochs", "1", "--preset", "cpu",
            "--input-size", "32", "--option", "block_layers=[2, 2]", "--option", "growth_rate=4", "--quiet"]
    assert mer_main(args) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1 and Path(out[0]).exists() and out[0].endswith(".pt")
    assert mer_main(["pretrain", "--macro", "folder:/no/such/dir"]) == 2
    assert "folder not found" in capsys.readouterr().err
    assert mer_main(["pretrain", "--option", "nonsense=1", "--macro", src]) == 2
    assert "unknown option" in capsys.readouterr().err


def test_prepare_finetune_from_experiment_config(tmp_path):
    model = create_model("dense_attention", "cpu", **TINY)
    assert pt.prepare_finetune(model, ExperimentConfig(model="dense_attention")) is None
    src = f"folder:{make_imagefolder(tmp_path / 'if')}"
    cfg = ExperimentConfig(model="dense_attention", pretrain=src, pretrain_epochs=1, device="cpu", lr=1e-3,
                           freeze="early", backbone_lr_mult=0.5, model_options=TINY,
                           preprocess=dict(face_crop=False))
    groups = pt.prepare_finetune(model, cfg)
    state = torch.load(pt.pretrain_for_experiment(cfg), weights_only=True)["state_dict"]
    assert torch.equal(model.state_dict()["stages.1.block.layers.0.conv1.weight"],
                       state["stages.1.block.layers.0.conv1.weight"])
    assert not model.stem[0].weight.requires_grad and model.head.weight.requires_grad
    assert [(g["name"], g["lr"]) for g in groups] == [("backbone", 5e-4), ("head", 1e-3)]
