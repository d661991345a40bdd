"""prepare_inputs end to end: known flow through the pipeline, report, cache, bad inputs, precomputed rows, CLI."""
from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest

from mer_core.config import PreprocessConfig
from mer_core.datasets.manifest import read_manifest
from mer_core.datasets.schema import make_table
from mer_core.paths import preprocessed_dir
from mer_core.preprocess import flow
from mer_core.preprocess.channels import DIFF_GAIN, FLOW_SCALE
from mer_core.preprocess.pipeline import REPORT_COLUMNS, prepare_inputs
from mer_core.preprocess.sample import sample_views

FLOW3 = ("flow_u", "flow_v", "strain")
NATIVE = 96  # side of the fixture frames


def _texture(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = cv2.GaussianBlur(rng.random((n, n)).astype(np.float32), (0, 0), 2.0)
    return cv2.normalize(t, None, 0, 255, cv2.NORM_MINMAX).astype(np.uint8)


def write_clip(folder: Path, n_frames: int = 9, peak_shift: float = 3.0, apex_at: int = 4, seed: int = 0) -> list[str]:
    """Frames of a texture moving right to ``peak_shift`` px at ``apex_at`` and back."""
    folder.mkdir(parents=True, exist_ok=True)
    tex = _texture(NATIVE + 24, seed)
    paths = []
    for t in range(n_frames):
        shift = peak_shift * max(0.0, 1 - abs(t - apex_at) / max(apex_at, 1))
        m = np.float32([[1, 0, shift], [0, 1, 0]])
        img = cv2.warpAffine(tex, m, tex.shape[::-1], flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT)[12:-12, 12:-12]
        p = folder / f"img{t + 1}.png"
        cv2.imwrite(str(p), img)
        paths.append(str(p))
    return paths


def clip_row(tmp: Path, name: str, **kw) -> dict:
    frames = write_clip(tmp / name, seed=len(name), **{k: kw.pop(k) for k in list(kw) if k in ("n_frames", "peak_shift", "apex_at")})
    row = dict(dataset="toy", subject=f"p{name}", clip=name, label="positive", frames=frames, onset=0, apex=4, offset=8, cropped=True, fps=100.0)
    row.update(kw)
    return row


@pytest.fixture()
def table(tmp_path):
    return make_table([clip_row(tmp_path, "a"), clip_row(tmp_path, "b", peak_shift=-3.0)])


def test_pipeline_gives_known_flow_and_report(table):
    size = 32
    out = prepare_inputs(table, FLOW3 + ("onset", "apex", "diff"), size)
    assert out.x.shape == (2, 6, size, size) and out.x.dtype == np.float32
    assert out.ok.all()
    assert list(out.report.columns) == list(REPORT_COLUMNS)
    rep = out.report.iloc[0]
    assert (rep.sample_id, rep.face, rep.flow_method, rep.cache, rep.apex, rep.apex_method) == (
        "toy/pa/a", "precropped", "dis", "miss", 4, "annotated")
    # 3 px at 96 px -> 1 px at 32 px -> / FLOW_SCALE
    expected = 3.0 * size / NATIVE / FLOW_SCALE
    inner = (slice(6, -6), slice(6, -6))
    assert abs(float(np.median(out.x[0, 0][inner])) - expected) < 0.1
    assert abs(float(np.median(out.x[1, 0][inner])) + expected) < 0.1
    assert abs(float(np.median(out.x[0, 1][inner]))) < 0.05
    assert float(out.x[0, 2][inner].mean()) < 0.1  # translation: little strain
    assert 0 <= out.x[0, 3].min() and out.x[0, 3].max() <= 1
    assert np.allclose(out.x[0, 5], (out.x[0, 4] - out.x[0, 3]) * DIFF_GAIN, atol=1e-5)


@pytest.mark.parametrize("method", ["tvl1", "farneback"])
def test_pipeline_other_flow_methods(table, method):
    out = prepare_inputs(table.iloc[:1], ("flow_u",), 16, PreprocessConfig(flow_method=method))
    assert out.report.flow_method[0] == method
    assert abs(float(np.median(out.x[0, 0][3:-3, 3:-3])) - 3.0 * 16 / NATIVE / FLOW_SCALE) < 0.1


def test_cache_hit_then_miss_on_parameter_or_file_change(table):
    first = prepare_inputs(table, FLOW3, 16)
    second = prepare_inputs(table, FLOW3, 16)
    assert first.report.cache.tolist() == ["miss", "miss"]
    assert second.report.cache.tolist() == ["hit", "hit"]
    assert np.array_equal(first.x, second.x)
    assert second.report.face.tolist() == ["precropped"] * 2 and second.report.apex.tolist() == [4, 4]
    assert len(list(preprocessed_dir().rglob("*.npy"))) == 2
    # any parameter that matters -> new key
    assert prepare_inputs(table, FLOW3, 16, PreprocessConfig(flow_method="farneback")).report.cache.tolist() == ["miss"] * 2
    assert prepare_inputs(table, FLOW3, 20).report.cache.tolist() == ["miss"] * 2
    assert prepare_inputs(table, FLOW3[:2], 16).report.cache.tolist() == ["miss"] * 2
    # a parameter the channels do not use keeps the entry
    assert prepare_inputs(table, FLOW3, 16, PreprocessConfig(evm_alpha=3.0)).report.cache.tolist() == ["hit"] * 2
    # ... but it does matter for magnified channels
    mag = ("magnified_apex",)
    prepare_inputs(table, mag, 16)
    assert prepare_inputs(table, mag, 16).report.cache.tolist() == ["hit"] * 2
    assert prepare_inputs(table, mag, 16, PreprocessConfig(evm_alpha=3.0)).report.cache.tolist() == ["miss"] * 2
    # an edited source frame (new mtime) invalidates that sample only
    apex_frame = table.frames[0][4]
    st = os.stat(apex_frame)
    os.utime(apex_frame, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    assert prepare_inputs(table, FLOW3, 16).report.cache.tolist() == ["miss", "hit"]
    # use_cache=False neither reads nor writes
    assert prepare_inputs(table, FLOW3, 16, use_cache=False).report.cache.tolist() == ["miss"] * 2


@pytest.mark.parametrize("damage", ["truncate", "flip", "garbage"])
def test_corrupt_cache_entry_is_recomputed_not_served(table, damage):
    good = prepare_inputs(table, FLOW3, 16)
    entries = sorted(preprocessed_dir().rglob("*.npy"))
    target = entries[0]
    data = target.read_bytes()
    if damage == "truncate":
        target.write_bytes(data[: len(data) // 2])
    elif damage == "flip":
        buf = bytearray(data)
        buf[len(buf) // 2] ^= 0xFF  # inside the x array
        target.write_bytes(bytes(buf))
    else:
        target.write_bytes(b"not a zip file")
    again = prepare_inputs(table, FLOW3, 16)
    assert sorted(again.report.cache.tolist()) == ["hit", "miss"]
    assert np.array_equal(again.x, good.x)
    assert prepare_inputs(table, FLOW3, 16).report.cache.tolist() == ["hit", "hit"]  # rewritten, whole again


def test_swapped_cache_entries_are_misses_not_wrong_inputs(table):
    """Two entries exchanged on disk (same shape, valid checksums) must not serve each other's arrays."""
    good = prepare_inputs(table, FLOW3, 16)
    a, b = sorted(preprocessed_dir().rglob("*.npy"))
    data_a, data_b = a.read_bytes(), b.read_bytes()
    a.write_bytes(data_b)
    b.write_bytes(data_a)
    again = prepare_inputs(table, FLOW3, 16)
    assert again.report.cache.tolist() == ["miss", "miss"]
    assert np.array_equal(again.x, good.x)
    assert prepare_inputs(table, FLOW3, 16).report.cache.tolist() == ["hit", "hit"]


def test_bad_inputs_give_per_sample_errors_and_the_rest_is_processed(tmp_path):
    good = clip_row(tmp_path, "good")
    single = clip_row(tmp_path, "single", n_frames=1, apex_at=0, onset=0, apex=0, offset=0)
    unreadable = clip_row(tmp_path, "unread")
    Path(unreadable["frames"][4]).write_bytes(b"\x00garbage, not a png")
    missing = clip_row(tmp_path, "missing")
    os.unlink(missing["frames"][0])
    late = clip_row(tmp_path, "late")
    tab = make_table([good, single, unreadable, missing, late])
    tab.loc[4, ["onset", "apex"]] = [6, 3]  # onset after apex (make_table would refuse it)
    seen = []
    out = prepare_inputs(tab, FLOW3, 16, progress=lambda d, n: seen.append((d, n)))
    assert out.ok.tolist() == [True, False, False, False, False]
    err = out.report.set_index("sample_id").error
    assert "1 frame" in err["toy/psingle/single"]
    assert "cannot read image" in err["toy/punread/unread"] and "img5.png" in err["toy/punread/unread"]
    assert "cannot read image" in err["toy/pmissing/missing"] and "img1.png" in err["toy/pmissing/missing"]
    assert "onset=6" in err["toy/plate/late"] and "apex=3" in err["toy/plate/late"]
    assert err["toy/pgood/good"] == ""
    assert not out.x[1:].any() and out.x[0].any()
    assert seen[-1] == (5, 5) and len(seen) == 5
    # failures are not cached: the good one hits, the bad ones are tried again
    assert prepare_inputs(tab, FLOW3, 16).report.cache.tolist() == ["hit"] + ["miss"] * 4


def test_estimated_apex_is_spotted_and_face_modes(tmp_path):
    row = clip_row(tmp_path, "est", apex_at=6, apex=4, apex_estimated=True, apex_method="middle")
    other = clip_row(tmp_path, "raw", cropped=False)
    out = prepare_inputs(make_table([row, other]), ("apex",), 16)
    assert out.report.apex.tolist() == [6, 4]
    assert out.report.apex_method.tolist() == ["max-diff", "annotated"]
    assert out.report.face.tolist() == ["precropped", "centre-fallback"]  # texture: no face
    off = prepare_inputs(make_table([other]), ("apex",), 16, PreprocessConfig(face_crop=False))
    assert off.report.face.tolist() == ["disabled"]


def test_magnified_channels_from_frames(table):
    out = prepare_inputs(table, ("onset", "apex", "magnified_onset", "magnified_apex"), 32)
    assert out.ok.all() and set(out.report.evm) == {"magnified"}
    plain = np.abs(out.x[:, 1] - out.x[:, 0]).mean()
    magnified = np.abs(out.x[:, 3] - out.x[:, 2]).mean()
    assert magnified > 1.5 * plain
    zero = prepare_inputs(table, ("apex", "magnified_apex"), 32, PreprocessConfig(evm_alpha=0.0))
    assert np.allclose(zero.x[:, 0], zero.x[:, 1], atol=1e-6)


def test_workers_give_the_same_result(table, monkeypatch):
    from mer_core.preprocess import pipeline

    monkeypatch.setattr(pipeline, "MIN_POOL_SAMPLES", 2)  # use the pool even for this tiny table
    one = prepare_inputs(table, FLOW3, 16, use_cache=False)
    two = prepare_inputs(table, FLOW3, 16, workers=2)
    assert two.ok.all() and np.allclose(one.x, two.x)
    assert prepare_inputs(table, FLOW3, 16, workers=2).report.cache.tolist() == ["hit", "hit"]


# --- precomputed inputs (no frames) ----------------------------------------------


def write_precomputed(tmp: Path) -> tuple[Path, np.ndarray]:
    u = np.full((40, 40), 0.5, np.float32)
    v = np.full((40, 40), -0.25, np.float32)
    s = np.full((40, 40), 0.2, np.float32)
    cv2.imwrite(str(tmp / "flow.png"), flow.encode_flow_image(u, v, s)[..., ::-1])  # RGB -> BGR for imwrite
    onset = _texture(48, 1)
    apex = np.roll(onset, 2, axis=1)
    cv2.imwrite(str(tmp / "onset.png"), onset)
    cv2.imwrite(str(tmp / "apex.png"), apex)
    manifest = tmp / "manifest.csv"
    manifest.write_text(
        "subject,clip,label,flow_image,apex_image,onset_image\n"
        "1,full,positive,flow.png,apex.png,onset.png\n"
        "2,flowonly,negative,flow.png,,\n"
        "3,images,surprise,,apex.png,onset.png\n"
    )
    return manifest, apex


def test_precomputed_manifest_rows(tmp_path):
    manifest, apex = write_precomputed(tmp_path)
    table = read_manifest(manifest)
    out = prepare_inputs(table, FLOW3, 16)
    assert out.ok.tolist() == [True, True, True]
    assert out.report.face.tolist() == ["precomputed"] * 3
    assert out.report.flow_method.tolist() == ["precomputed", "precomputed", "dis (onset/apex images)"]
    assert np.allclose(out.x[0, 0], 0.5, atol=0.01) and np.allclose(out.x[0, 1], -0.25, atol=0.01)
    assert np.allclose(out.x[0, 2], 0.2, atol=0.01)
    # flow computed from the images: content moved 2 px right at 48 px -> 16 px
    assert abs(float(np.median(out.x[2, 0][3:-3, 3:-3])) - 2 * 16 / 48 / FLOW_SCALE) < 0.1

    img = prepare_inputs(table, ("apex", "diff", "magnified_apex"), 24)
    assert img.ok.tolist() == [True, False, True]
    assert "'apex'" in img.report.error[1] and "flow_path" in img.report.error[1]
    assert "unmagnified" in img.report.evm[0]
    assert np.allclose(img.x[0, 0], cv2.resize(apex.astype(np.float32) / 255.0, (24, 24), interpolation=cv2.INTER_AREA), atol=1e-6)
    assert np.array_equal(img.x[0, 2], img.x[0, 0])


def test_sample_views_say_which_frame_of_the_file_the_clip_starts_at(table):
    """A clip cut from onset to offset is numbered as in the file: its first frame is the onset's number."""
    row = table.iloc[0].to_dict() | {"onset": 2}
    views = sample_views(row, size=32)
    assert views["clip_first"] == 2 and views["apex_index"] == int(row["apex"]) - 2
    assert len(views["clip"]) == int(row["offset"]) - 1


def test_sample_views_for_frames_and_precomputed_rows(table, tmp_path):
    views = sample_views(table.iloc[0], size=48, arrow_step=8)
    for key in ("onset", "apex", "diff", "flow_u", "flow_v", "strain"):
        assert views[key].shape == (48, 48), key
    assert views["flow_rgb"].shape == (48, 48, 3) and views["flow_rgb"].dtype == np.uint8
    assert len(views["arrows"]["x"]) == 36
    assert views["clip"].shape == views["magnified_clip"].shape == (9, 48, 48)
    assert views["apex_index"] == 4
    assert abs(float(np.median(views["flow_u"][8:-8, 8:-8])) - 3.0 * 48 / NATIVE) < 0.2  # pixels at 48
    assert np.abs(views["magnified_clip"][4] - views["magnified_clip"][0]).mean() > np.abs(views["clip"][4] - views["clip"][0]).mean()
    manifest, _ = write_precomputed(tmp_path)
    pre = sample_views(read_manifest(manifest).iloc[1], size=32)
    assert pre["clip"] is None and pre["apex"] is None and pre["flow_rgb"].shape == (32, 32, 3)


def test_empty_table_and_bad_arguments(table):
    empty = prepare_inputs(table.iloc[:0], FLOW3, 16)
    assert empty.x.shape == (0, 3, 16, 16) and list(empty.report.columns) == list(REPORT_COLUMNS)
    from mer_core.errors import ConfigError

    with pytest.raises(ConfigError, match="unknown input channel"):
        prepare_inputs(table, ("flow_w",), 16)
    with pytest.raises(ConfigError, match="input size"):
        prepare_inputs(table, FLOW3, 4)


# --- CLI -----------------------------------------------------------------------------


def test_cli_preprocess_manifest(tmp_path, capsys):
    from mer_core.cli import main

    rows = [clip_row(tmp_path, n) for n in ("a", "b")]
    lines = ["subject,clip,label,frames_dir,onset,apex,offset,cropped"]
    lines += [f"{r['subject']},{r['clip']},{r['label']},{r['clip']},0,4,8,1" for r in rows]
    (tmp_path / "manifest.csv").write_text("\n".join(lines) + "\n")
    report = tmp_path / "report.csv"
    args = ["preprocess", "--dataset", "manifest", "--root", str(tmp_path), "--channels", "flow_u,flow_v", "--size", "16",
            "--flow", "farneback", "--report", str(report), "--no-progress"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "2 ok, 0 failed" in out and "0 cache hits" in out
    assert main(args) == 0
    assert "2 cache hits" in capsys.readouterr().out
    rep = pd.read_csv(report)
    assert rep.cache.tolist() == ["hit", "hit"] and rep.flow_method.tolist() == ["farneback"] * 2
    assert main(["preprocess", "--dataset", "manifest", "--root", str(tmp_path), "--channels", "flow_q"]) == 2
    assert "unknown input channel" in capsys.readouterr().err
