"""The embedded synthetic dataset: options, determinism, balance, annotations,
ground truth, the indexers and ``mer synth``. Sizes stay tiny (a few seconds)."""
from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest

from mer_core.cli import main as cli_main
from mer_core.datasets import index_dataset, list_datasets
from mer_core.datasets.classes import apply_class_set
from mer_core.datasets.registry import dataset_info
from mer_core.datasets.synthetic import (
    ACTION_UNITS,
    CLASS_ACTION_UNITS,
    SynthOptions,
    clip_masks,
    clip_motion,
    dataset_folder,
    generate,
    is_current,
    load_masks,
    option_fields,
    plan_dataset,
    plan_subject,
    render_clip,
    subject_face,
)
from mer_core.datasets.synthetic.options import COMPOSITE_SHARES
from mer_core.errors import ConfigError, DatasetError
from mer_core.paths import datasets_dir

TINY = dict(subjects=3, clips_per_subject=4, clip_jitter=0, size=48, frames=12)


def _hashes(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha1(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.suffix in (".png", ".csv", ".npz", ".json")
    }


@pytest.fixture(scope="module")
def tiny_set(tmp_path_factory) -> Path:
    return generate(tmp_path_factory.mktemp("tiny"), SynthOptions(**TINY))


# --------------------------------------------------------------------------- options


@pytest.mark.parametrize(
    "bad, fragment",
    [
        (dict(subjects=0), "subjects=0"),
        (dict(amplitude=-1.0), "amplitude=-1.0"),
        (dict(amplitude=0), "amplitude=0"),
        (dict(size=16), "size=16"),
        (dict(frames=4), "frames=4"),
        (dict(subjects=2.5), "whole number"),
        (dict(noise=float("nan")), "finite"),
        (dict(blink_rate=1.5), "blink_rate=1.5"),
        (dict(classes=4), "knows 3 classes"),
        (dict(classes=7, macro=True), "knows 6 classes"),
        (dict(classes=1), "at least 2"),
        (dict(classes="negative,happy"), "unknown class"),
        (dict(classes=("negative", "negative")), "twice"),
        (dict(seed=-1), "seed=-1"),
        (dict(subjects="4"), "expected a number"),
        (dict(macro="yes"), "true or false"),
    ],
)
def test_bad_options_are_refused_with_a_clear_message(bad, fragment):
    with pytest.raises(ConfigError, match=fragment.replace("(", r"\(").replace(".", r"\.")):
        SynthOptions(**bad)


def test_unknown_option_through_the_indexer_lists_the_valid_ones():
    with pytest.raises(ConfigError, match="unknown synthetic dataset option.*'colour'.*valid options"):
        index_dataset("synthetic", colour=True)
    with pytest.raises(ConfigError, match="synthetic-macro"):
        index_dataset("synthetic", macro=True)


def test_variant_defaults_and_keys():
    micro, macro = SynthOptions(), SynthOptions(macro=True)
    assert micro.classes == ("negative", "positive", "surprise") and micro.amplitude == 1.0 and micro.is_default()
    assert len(macro.classes) == 6 and macro.amplitude > 5 * micro.amplitude and macro.fps < micro.fps
    assert SynthOptions(macro=True, amplitude=2.0).amplitude == 2.0  # explicit values win
    assert SynthOptions(classes="2").classes == ("negative", "positive")
    assert SynthOptions(classes="happiness,anger").classes == ("happiness", "anger")
    tiny = SynthOptions(**TINY)
    assert not tiny.is_default() and tiny.key() != SynthOptions(**{**TINY, "seed": 1}).key()
    assert tiny.key() == SynthOptions(**TINY).key()
    assert dataset_folder(micro) == datasets_dir() / "synthetic"
    assert dataset_folder(macro) == datasets_dir() / "synthetic-macro"
    assert dataset_folder(tiny) == datasets_dir() / "synthetic" / "variants" / tiny.key()
    names = {f["name"] for f in option_fields()}
    assert {"subjects", "clips_per_subject", "size", "amplitude", "noise", "blink_rate", "seed"} <= names


# --------------------------------------------------------------------------- plans


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_class_balance_follows_the_composite(seed):
    plans = plan_dataset(SynthOptions(seed=seed))
    labels = pd.Series([p.label for p in plans])
    assert 16 * 8 <= len(plans) <= 16 * 12
    shares = labels.value_counts(normalize=True)
    for label, target in COMPOSITE_SHARES.items():
        assert abs(shares[label] - target) < 0.07, (label, shares[label], target)
    assert set(labels) == set(COMPOSITE_SHARES)


def test_blinks_and_unilateral_aus_occur_in_every_class():
    plans = plan_dataset(SynthOptions(subjects=30))
    for label in COMPOSITE_SHARES:
        mine = [p for p in plans if p.label == label]
        blink_share = np.mean([p.blink_start >= 0 for p in mine])
        assert 0.15 < blink_share < 0.6, (label, blink_share)
        for p in mine:  # the class's own AUs come first, any distractor last
            class_aus = p.aus[: len(p.aus) - len(p.distractor_aus)]
            assert class_aus in [combo for combo, _ in CLASS_ACTION_UNITS[label]]
            assert set(p.aus) <= set(ACTION_UNITS)
    assert any(p.distractor_aus for p in plans)
    assert any(s in ("L", "R") for p in plans for s in p.sides)
    no_blinks = plan_dataset(SynthOptions(subjects=4, blink_rate=0.0))
    assert all(p.blink_start == -1 for p in no_blinks)
    # the blink rate draws nothing else: expressions and timing stay the same
    assert [(p.aus, p.apex) for p in no_blinks] == [(p.aus, p.apex) for p in plan_dataset(SynthOptions(subjects=4))]


def test_subjects_do_not_depend_on_the_number_of_subjects():
    a, b = SynthOptions(subjects=2, size=32), SynthOptions(subjects=5, size=32)
    assert plan_subject(a, 1) == plan_subject(b, 1)
    np.testing.assert_array_equal(subject_face(a, 1).albedo, subject_face(b, 1).albedo)
    assert not np.array_equal(subject_face(a, 0).albedo, subject_face(a, 1).albedo)


# --------------------------------------------------------------------------- files


def test_same_seed_and_options_give_identical_files(tiny_set, tmp_path):
    again = generate(tmp_path / "again", SynthOptions(**TINY))
    first, second = _hashes(tiny_set.parent), _hashes(again.parent)
    assert len([k for k in first if k.endswith(".png")]) >= 3 * 4 * 10
    assert first == second
    other = generate(tmp_path / "seed1", SynthOptions(**{**TINY, "seed": 1}))
    assert _hashes(other.parent)["manifest.csv"] != first["manifest.csv"]


def test_annotations_are_consistent_with_the_frames(tiny_set):
    raw = pd.read_csv(tiny_set)
    assert len(raw) == 12 and set(raw["dataset"]) == {"synthetic"} and set(raw["cropped"]) == {True}
    for r in raw.itertuples():
        frames = sorted((tiny_set.parent / r.frames_dir).glob("*.png"))
        assert len(frames) == r.n_frames
        assert 0 <= r.onset < r.apex <= r.offset < r.n_frames
        img = cv2.imread(str(frames[r.apex]), cv2.IMREAD_UNCHANGED)
        assert img.shape == (48, 48) and img.dtype == np.uint8
        assert r.action_units.startswith(("AU", "R", "L")) and (tiny_set.parent / r.mask).exists()


def test_masks_cover_exactly_the_moved_pixels():
    options = SynthOptions(subjects=2, size=64, frames=12, seed=3)
    checked = 0
    for s in range(2):
        face = subject_face(options, s)
        for plan in plan_subject(options, s):
            motion = clip_motion(options, plan, face)
            clean = render_clip(options, plan, face, motion, clean=True).astype(int)
            masks = clip_masks(options, plan, face, motion)
            moved = np.abs(clean[plan.apex] - clean[plan.onset]) > 0
            assert moved[~masks["au"]].sum() == 0, f"{plan.clip}: pixels moved outside the AU mask"
            assert masks["au"].mean() < 0.4  # a region, not the whole face
            # texture everywhere: a good part of the AU region really changes
            assert moved[masks["au"]].mean() > 0.15, plan.action_units
            # nothing moves before the onset
            assert np.array_equal(clean[0], clean[plan.onset])
            checked += 1
    assert checked >= 8


def test_blink_mask_covers_the_blink():
    options = SynthOptions(subjects=1, size=64, frames=16, noise=0.0, drift=0.0, flicker=0.0, blink_rate=1.0)
    face = subject_face(options, 0)
    plan = dataclasses.replace(plan_subject(options, 0)[0], aus=(), intensities=(), sides=(), distractor_aus=())
    motion = clip_motion(options, plan, face)
    frames = render_clip(options, plan, face, motion).astype(int)
    masks = clip_masks(options, plan, face, motion)
    closed = min(plan.blink_start + max(1, round(plan.blink_length * 0.4)), plan.n_frames - 1)
    ref = 0 if plan.blink_start > 0 else plan.n_frames - 1
    moved = np.abs(frames[closed] - frames[ref]) > 1
    assert moved.sum() > 10 and moved[~masks["blink"]].sum() == 0
    assert not masks["au"].any()


def test_true_flow_directions_and_that_optical_flow_sees_them():
    """The rendered motion is the ground-truth flow: Farneback recovers its
    size and direction; DIS (patch based) gets the direction but
    underestimates sub-2-px motion, a property of DIS worth knowing."""
    options = SynthOptions(subjects=1, size=128, frames=16, seed=0)
    face = subject_face(options, 0)
    base = plan_subject(options, 0)[0]
    dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
    for aus, expect_dy in (((12,), -1), ((4,), 1), ((1, 2), -1), ((15,), 1)):
        plan = dataclasses.replace(base, aus=aus, intensities=(1.0,) * len(aus), sides=("",) * len(aus),
                                   distractor_aus=(), peak_px=2.0)
        motion = clip_motion(options, plan, face)
        strong = np.sqrt((motion.flow**2).sum(0)) > 1.0
        true = motion.flow[:, strong]
        assert np.sign(true[1].mean()) == expect_dy, aus
        clean = render_clip(options, plan, face, motion, clean=True)
        onset, apex = clean[plan.onset], clean[plan.apex]
        farneback = cv2.calcOpticalFlowFarneback(onset, apex, None, 0.5, 3, 9, 3, 5, 1.1, 0).transpose(2, 0, 1)[:, strong]
        gain = (farneback * true).sum() / (true**2).sum()
        assert 0.6 < gain < 1.3, (aus, gain)
        est = dis.calc(onset, apex, None).transpose(2, 0, 1)[:, strong]
        cosine = (est * true).sum(0) / (np.linalg.norm(est, axis=0) * np.linalg.norm(true, axis=0) + 1e-6)
        assert cosine.mean() > 0.8, (aus, cosine.mean())


def test_macro_variant_moves_more_with_distinct_subjects():
    micro, macro = SynthOptions(subjects=3, size=64), SynthOptions(macro=True, subjects=3, size=64)

    def peaks(opts):
        out = []
        for s in range(3):
            face = subject_face(opts, s)
            out += [np.sqrt((clip_motion(opts, p, face).flow ** 2).sum(0)).max() for p in plan_subject(opts, s)]
        return np.array(out)

    ratio = peaks(macro).mean() / peaks(micro).mean()
    assert ratio > 4.0, ratio
    plans = plan_dataset(macro)
    assert plans[0].subject == "m01" and plan_dataset(micro)[0].subject == "s01"
    assert {p.label for p in plans} <= set(macro.classes) and len({p.label for p in plans}) >= 4
    assert not np.array_equal(subject_face(macro, 0).albedo, subject_face(micro, 0).albedo)
    assert np.mean([p.n_frames for p in plans]) > np.mean([p.n_frames for p in plan_dataset(micro)])


def test_colour_frames(tmp_path):
    manifest = generate(tmp_path / "c", SynthOptions(subjects=1, clips_per_subject=1, clip_jitter=0, size=32, frames=8, color=True))
    row = pd.read_csv(manifest).iloc[0]
    img = cv2.imread(str(sorted((manifest.parent / row.frames_dir).glob("*.png"))[0]), cv2.IMREAD_UNCHANGED)
    assert img.shape == (32, 32, 3)


# --------------------------------------------------------------------------- reuse, indexers, CLI


def test_reuse_regenerate_and_refuse_foreign(tiny_set, tmp_path):
    opts = SynthOptions(**TINY)
    assert is_current(tiny_set.parent, opts) and not is_current(tiny_set.parent, SynthOptions(**{**TINY, "seed": 9}))
    folder = tmp_path / "regen"
    manifest = generate(folder, opts)
    stamp = manifest.stat().st_mtime_ns
    assert generate(folder, opts).stat().st_mtime_ns == stamp  # reused, not rewritten
    meta = json.loads((folder / "meta.json").read_text())
    meta["version"] = "0"
    (folder / "meta.json").write_text(json.dumps(meta))  # a stale generator version
    assert not is_current(folder, opts)
    generate(folder, opts)
    assert is_current(folder, opts) and _hashes(folder) == _hashes(tiny_set.parent)
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    with pytest.raises(DatasetError, match="did not write"):
        generate(foreign, opts)
    assert sorted(p.name for p in foreign.iterdir()) == ["notes.txt"]


def test_indexers_generate_then_read_back_through_the_manifest():
    assert {"synthetic", "synthetic-macro"} <= set(list_datasets())
    assert not dataset_info("synthetic").needs_root and dataset_info("synthetic").default_class_set == "composite3"
    table = index_dataset("synthetic", subjects=2, clips_per_subject=3, clip_jitter=0, size=32, frames=8)
    assert len(table) == 6 and set(table["dataset"]) == {"synthetic"}
    assert sorted(table["subject"].unique()) == ["synthetic:s01", "synthetic:s02"]
    assert table["cropped"].all() and (table["fps"] == 100.0).all() and not table["apex_estimated"].any()
    assert (datasets_dir() / "synthetic" / "variants").is_dir() and not (datasets_dir() / "synthetic" / "manifest.csv").exists()
    masks = load_masks(table["mask_path"][0])
    assert masks["au"].shape == (32, 32) and masks["au"].dtype == bool and masks["blink"].shape == (32, 32)
    assert masks["flow"].shape == (2, 32, 32) and len(masks["au_units"]) == masks["au_regions"].shape[0]
    kept, dropped = apply_class_set(table, "composite3")
    assert len(kept) == 6 and dropped.empty
    macro = index_dataset("synthetic-macro", subjects=2, clips_per_subject=3, size=32, frames=8)
    assert set(macro["dataset"]) == {"synthetic-macro"} and macro["subject"].iloc[0] == "synthetic-macro:m01"
    assert set(macro["label"]) <= set(SynthOptions(macro=True).classes)
    kept, dropped = apply_class_set(macro, "composite3")  # the six emotions map onto the composite classes
    assert dropped.empty and set(kept["label"]) <= {"negative", "positive", "surprise"}
    with pytest.raises(DatasetError, match="mask file not found"):
        load_masks("/nonexistent/x.npz")


def test_cli_generates_and_refuses_bad_options(tmp_path, capsys):
    out = tmp_path / "cli"
    assert cli_main(["synth", "--subjects", "2", "--clips-per-subject", "2", "--clip-jitter", "0", "--size", "32",
                     "--frames", "8", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert str(out / "manifest.csv") in text and "%" in text and len(pd.read_csv(out / "manifest.csv")) == 4
    again = ["synth", "--subjects", "2", "--clips-per-subject", "2", "--clip-jitter", "0", "--size", "32",
             "--frames", "8", "--out", str(out), "--if-missing", "--json"]
    assert cli_main(again) == 0 and json.loads(capsys.readouterr().out)["reused"] is True
    with pytest.raises(SystemExit):
        cli_main(["synth", "--help"])  # help texts hold '%': they must format
    assert "--blink-rate" in capsys.readouterr().out
    for argv, fragment in ((["--subjects", "0"], "subjects=0"), (["--amplitude", "-2"], "amplitude"),
                           (["--classes", "9"], "knows 3 classes"), (["--macro", "--classes", "9"], "knows 6")):
        assert cli_main(["synth", *argv, "--out", str(tmp_path / "bad")]) == 2
        err = capsys.readouterr().err.strip()
        assert fragment in err and "\n" not in err and "Traceback" not in err
    assert not (tmp_path / "bad").exists()
