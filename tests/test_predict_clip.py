"""Analyse a clip of one's own: decode, crop, spot, preprocess as the run did, predict, warn.

Videos are written by the tests with cv2.VideoWriter from synthetic clips; a
tiny stored run (baseline, 3 subjects) is trained once for the module.
"""
from __future__ import annotations

import json
import zipfile
from pathlib import Path

import cv2
import numpy as np
import pytest

from mer_core.cli import main
from fixtures_clips import TINY_SYNTH, tiny_run_with_videos
from mer_core.datasets.synthetic import SynthOptions, plan_dataset
from mer_core.datasets.synthetic.video_export import write_video
from mer_core.explain.inference import TRANSFER_NOTE, RunPredictor, analyse_clip
from mer_core.preprocess.video import ClipError, ClipLimits, decode_clip
from mer_core.store.folders import load_array, read_table, run_folder

OPTS = TINY_SYNTH


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A stored run trained on a tiny synthetic set, and that set's clips exported as videos."""
    return tiny_run_with_videos(tmp_path_factory.mktemp("predict_cache"), clips=4, fmt="avi")


@pytest.fixture
def env(tiny, monkeypatch):
    monkeypatch.setenv("MER_CACHE", str(tiny["root"]))
    return tiny


def _moving_frames(n: int = 12, size: int = 64, apex: int = 6, seed: int = 0) -> np.ndarray:
    """Textured noise whose centre patch shifts by up to 2 px at ``apex`` and back."""
    rng = np.random.default_rng(seed)
    base = cv2.GaussianBlur((rng.random((size, size)) * 200 + 30).astype(np.float32), (3, 3), 0)
    out = []
    for t in range(n):
        amp = 2.0 * max(0.0, 1 - abs(t - apex) / apex)
        moved = cv2.warpAffine(base, np.float32([[1, 0, amp], [0, 1, 0]]), (size, size), borderMode=cv2.BORDER_REFLECT)
        img = base.copy()
        c = slice(size // 4, 3 * size // 4)
        img[c, c] = moved[c, c]
        out.append(np.clip(img, 0, 255).astype(np.uint8))
    return np.stack(out)


def test_an_exported_video_goes_through_decode_crop_spot_flow_and_prediction(env):
    meta = env["metas"][0]
    path = env["videos"] / meta["video"]
    a = analyse_clip(path, env["run"], cropped=True)
    assert a.clip.total_frames == meta["frames"] and a.clip.fps == pytest.approx(100.0)
    assert a.face == "precropped"
    assert abs(a.spotting.apex - meta["apex"]) <= 3
    assert a.spotting.onset < a.spotting.apex <= a.spotting.offset
    assert len(a.probs) == len(a.classes) == 3 and sum(a.probs) == pytest.approx(1.0, abs=1e-5)
    assert len(a.fold_probs) == 3 and np.allclose(np.mean(a.fold_probs, axis=0), a.probs)
    assert a.x.shape == (len(a.channels),) + a.x.shape[1:] and a.maps["u_px"].shape == a.x.shape[1:]
    assert "never saw its own test subject" in a.model_note and "{trained_on}" in TRANSFER_NOTE
    # the sidecar beside the video gives onset and apex: used, and said so
    assert (a.spotting.onset, a.spotting.apex) == (meta["onset"], meta["apex"])
    assert a.spotting.given == ("onset", "apex", "offset") and "from the sidecar" in a.spotting.method
    assert any(f"come from {Path(meta['video']).stem}.json" in n for n in a.notes), a.notes
    assert a.trained_on == "12 clips of 3 synthetic faces (synthetic)"


def test_the_clip_is_preprocessed_exactly_as_the_run_preprocessed_its_data(env, tmp_path):
    """A lossless clip (zip of the run's own frames) with the annotated frames gives the run's stored input."""
    folder = run_folder(env["run"], create=False)
    table = read_table(folder)
    row = table.iloc[1]
    path = tmp_path / "same.zip"
    with zipfile.ZipFile(path, "w") as zf:
        for i, f in enumerate(row["frames"]):
            zf.write(f, f"frame{i:03d}.png")
    a = analyse_clip(path, env["run"], onset=int(row["onset"]), apex=int(row["apex"]), offset=int(row["offset"]),
                     cropped=True)
    stored = load_array(folder / "inputs.npy")[1]
    assert a.channels == RunPredictor(env["run"]).channels
    np.testing.assert_allclose(a.x, stored, atol=1e-5)


def test_spotted_apex_lands_near_the_generators_apex_on_synthetic_clips(env):
    errors = []
    for meta in env["metas"]:
        a = analyse_clip(env["videos"] / meta["video"], env["run"], cropped=True, use_sidecar=False)
        assert not a.spotting.given
        errors.append(abs(a.spotting.apex - meta["apex"]))
    assert np.median(errors) <= 3, errors


def test_given_onset_and_apex_are_used(env):
    meta = env["metas"][0]
    a = analyse_clip(env["videos"] / meta["video"], env["run"], onset=1, apex=5, cropped=True)
    assert (a.spotting.onset, a.spotting.apex) == (1, 5) and a.spotting.given == ("onset", "apex")
    with pytest.raises(ClipError, match="apex=99 is outside"):
        analyse_clip(env["videos"] / meta["video"], env["run"], apex=99, cropped=True)


# --- bad uploads ------------------------------------------------------------------------------
def test_not_a_video(env, tmp_path):
    bad = tmp_path / "notes.mp4"
    bad.write_text("this is not a video\n" * 50)
    with pytest.raises(ClipError, match="notes.mp4: not a video"):
        decode_clip(bad)


def test_zero_frames(env, tmp_path):
    empty = tmp_path / "empty.avi"
    empty.write_bytes(b"")
    with pytest.raises(ClipError, match="empty"):
        decode_clip(empty)
    nothing = tmp_path / "nothing.zip"
    with zipfile.ZipFile(nothing, "w") as zf:
        zf.writestr("readme.txt", "no frames here")
    with pytest.raises(ClipError, match="no frames"):
        decode_clip(nothing)
    header_only = tmp_path / "header.avi"
    writer = cv2.VideoWriter(str(header_only), cv2.VideoWriter_fourcc(*"MJPG"), 30.0, (64, 64))
    writer.release()
    with pytest.raises(ClipError, match="no frames|not a video|empty"):
        decode_clip(header_only)


def test_one_frame(env, tmp_path):
    one = write_video(tmp_path / "one.avi", _moving_frames()[:1], 30.0)
    with pytest.raises(ClipError, match="1 frame; a micro-expression needs"):
        decode_clip(one)


def test_truncated_files(env, tmp_path):
    full = write_video(tmp_path / "full.avi", _moving_frames(40), 30.0)
    data = full.read_bytes()
    cut = tmp_path / "cut.avi"
    cut.write_bytes(data[: len(data) // 2])
    clip = decode_clip(cut)
    assert clip.truncated and 3 <= clip.total_frames < 40
    assert any("truncated" in n for n in clip.notes)
    mp4 = write_video(tmp_path / "full.mp4", _moving_frames(40), 30.0)
    cut4 = tmp_path / "cut.mp4"
    cut4.write_bytes(mp4.read_bytes()[: mp4.stat().st_size // 2])
    with pytest.raises(ClipError, match="damaged or cut short"):
        decode_clip(cut4)


def test_no_face_found_falls_back_to_a_centre_crop_with_a_warning(env, tmp_path):
    clip = write_video(tmp_path / "noface.avi", _moving_frames(12, 96), 30.0)
    a = analyse_clip(clip, env["run"])
    assert a.face == "centre-fallback"
    assert any("No face was found" in w for w in a.warnings)
    assert any("centre crop" in n for n in a.notes)


def test_huge_resolution_is_downscaled_on_decode(env, tmp_path):
    frames = np.stack([cv2.resize(f, (2400, 1800), interpolation=cv2.INTER_NEAREST) for f in _moving_frames(4)])
    big = write_video(tmp_path / "big.avi", frames, 30.0)
    del frames
    clip = decode_clip(big, ClipLimits(max_side=320))
    assert clip.original_size == (2400, 1800) and max(clip.frames[0].shape) == 320
    assert any("downscaled" in n for n in clip.notes)


def test_a_long_clip_is_analysed_in_a_window_around_its_motion(env, tmp_path):
    still = np.repeat(_moving_frames(1), 50, axis=0)
    frames = np.concatenate([still, _moving_frames(12), still])  # motion at frames 50..61
    long = write_video(tmp_path / "long.avi", frames, 30.0)
    clip = decode_clip(long, ClipLimits(max_frames=24))
    assert clip.total_frames == 112 and len(clip.frames) == 24 and clip.windowed
    assert clip.window[0] <= 52 and clip.window[1] >= 60
    assert any("only frames" in n for n in clip.notes)


def test_undeclared_frame_rate_is_said(env, tmp_path):
    path = tmp_path / "frames.zip"
    with zipfile.ZipFile(path, "w") as zf:
        for i, f in enumerate(_moving_frames(10)):
            zf.writestr(f"img{i}.png", cv2.imencode(".png", f)[1].tobytes())
    a = analyse_clip(path, env["run"], cropped=True)
    assert a.clip.fps is None and a.clip.source == "zip" and a.clip.total_frames == 10
    assert any("does not declare a frame rate" in w and "100 fps was assumed" in w for w in a.warnings)
    assert a.fps_used == pytest.approx(100.0)


def test_a_frame_rate_far_from_the_training_data_is_warned(env, tmp_path):
    clip = write_video(tmp_path / "slow.avi", _moving_frames(12), 10.0)
    a = analyse_clip(clip, env["run"], cropped=True)
    assert any("10 fps; the training clips at 100 fps" in w for w in a.warnings)
    near = write_video(tmp_path / "near.avi", _moving_frames(12), 90.0)
    assert not any("fps; the training clips" in w for w in analyse_clip(near, env["run"], cropped=True).warnings)


def test_motion_far_outside_the_training_range_is_warned(env, tmp_path):
    rng = np.random.default_rng(1)
    base = cv2.GaussianBlur((rng.random((64, 64)) * 200 + 30).astype(np.float32), (5, 5), 0)
    frames = np.stack([np.clip(cv2.warpAffine(base, np.float32([[1, 0, 0], [0, 1, 6 * min(t, 10 - t) / 5]]), (64, 64),
                                              borderMode=cv2.BORDER_REFLECT), 0, 255).astype(np.uint8)
                       for t in range(11)])
    a = analyse_clip(write_video(tmp_path / "big.avi", frames, 100.0), env["run"], cropped=True)
    assert any("moves much more than the training clips" in w for w in a.warnings), a.warnings


# --- CLI --------------------------------------------------------------------------------------
def test_cli_predict_prints_frames_and_probabilities_and_writes_overlays(env, tmp_path, capsys):
    meta = env["metas"][0]
    video = env["videos"] / meta["video"]
    assert main(["predict", "--run", env["run"], str(video), "--json", "--out", str(tmp_path / "o")]) == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out["probabilities"]) == {"negative", "positive", "surprise"}
    assert out["face"] == "precropped"  # the sidecar JSON says the frames are crops
    assert {"onset", "apex", "offset"} <= set(out["spotting"])
    for name in ("flow", "strain", "apex", "overlay_saliency", "motion"):
        assert Path(out["files"][name]).is_file()
    assert main(["predict", "--run", env["run"], str(video), "--apex", "4", "--onset", "1"]) == 0
    text = capsys.readouterr().out
    assert "onset 1, apex 4" in text and "trained on 12 clips of 3 synthetic faces" in text
    assert ("predicted:" in text) != ("no verdict:" in text)  # a verdict, or the reason there is none


def test_cli_predict_withholds_the_verdict_the_page_withholds(env, tmp_path, capsys):
    """No face in the clip: the probabilities and the reason, no class named as the answer (as on Analyse)."""
    clip = write_video(tmp_path / "noface.avi", _moving_frames(12, 96), 30.0)
    assert main(["predict", "--run", env["run"], str(clip), "--out", str(tmp_path / "o")]) == 0
    text = capsys.readouterr().out
    assert "predicted:" not in text
    assert "no verdict: No face was found in the clip" in text
    assert "probabilities:" in text and "negative" in text and "surprise" in text
    assert f"run {env['run']}, trained on 12 clips of 3 synthetic faces (synthetic)" in text
    saved = json.loads((tmp_path / "o" / "result.json").read_text())
    assert saved["verdict"] is None and saved["withheld"].startswith("No face was found")


def test_cli_predict_bad_clip_is_one_line(env, tmp_path, capsys):
    bad = tmp_path / "x.webm"
    bad.write_bytes(b"\x00" * 100)
    assert main(["predict", "--run", env["run"], str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("mer predict: error: x.webm: not a video") and err.count("\n") == 1
    assert main(["predict", "--run", "ghost", str(bad)]) == 2


def test_synth_export_video_writes_clips_with_their_ground_truth(tmp_path, capsys):
    out = tmp_path / "v"
    assert main(["synth", "--export-video", str(out), "--clips", "2", "--size", "64", "--frames", "12",
                 "--subjects", "2", "--json"]) == 0
    written = json.loads(capsys.readouterr().out)["clips"]
    plans = plan_dataset(SynthOptions(size=64, frames=12, subjects=2))
    for meta, plan in zip(written, plans):
        side = json.loads((out / meta["video"]).with_suffix(".json").read_text())
        assert (side["onset"], side["apex"], side["offset"]) == (plan.onset, plan.apex, plan.offset)
        assert side["cropped"] is True and side["label"] == plan.label
        clip = decode_clip(out / meta["video"])
        assert clip.total_frames == plan.n_frames and clip.fps == pytest.approx(100.0)


# --- no verdict, sidecars, the run offered first --------------------------------------------------
def test_no_verdict_without_a_face_or_near_chance():
    from mer_core.explain.inference import verdict_withheld

    classes = ["negative", "positive", "surprise"]
    assert verdict_withheld("detected", [0.8, 0.1, 0.1], classes) == ""
    assert verdict_withheld("precropped", [0.1, 0.7, 0.2], classes) == ""
    near = verdict_withheld("detected", [0.40, 0.31, 0.29], classes)
    assert "close to chance" in near and "negative, is 0.40" in near and "0.33 each" in near
    face = verdict_withheld("centre-fallback", [0.9, 0.05, 0.05], classes)
    assert face.startswith("No face was found") and "chance" not in face


def test_sidecar_text_is_checked():
    from mer_core.errors import MerError
    from mer_core.explain.inference import parse_sidecar

    assert parse_sidecar('{"onset": 2, "apex": 9, "offset": 14, "label": "x"}') == {"onset": 2, "apex": 9, "offset": 14}
    for text, words in (("[1]", "JSON object"), ("{", "not JSON"), ('{"apex": 3}', "no onset and apex"),
                        ('{"onset": 5, "apex": 3}', "onset < apex"), ('{"onset": -1, "apex": 3}', "onset=-1")):
        with pytest.raises(MerError, match=words):
            parse_sidecar(text, "clip.json")


def test_the_best_scoring_run_that_can_predict_comes_first(tmp_path, monkeypatch):
    """Best pooled UF1 first among finished runs with fold models; one without models or unfinished is left out."""
    import pandas as pd

    from mer_core.config import ExperimentConfig
    from mer_core.explain.inference import predictable_runs
    from mer_core.store.db import RunStore

    monkeypatch.setenv("MER_CACHE", str(tmp_path))
    cfg = ExperimentConfig.from_dict({"dataset": "synthetic", "model": "baseline"})
    none = pd.DataFrame(columns=["sample_id", "subject", "clip", "y_true", "y_pred", "probs"])
    with RunStore(tmp_path / "runs.sqlite") as store:
        for rid, uf1, ckpt, status in (("old-best", 0.9, "f0.pt", "done"), ("new-worse", 0.5, "f0.pt", "done"),
                                       ("no-models", 0.99, "", "done"), ("running", 0.95, "f0.pt", "running")):
            store.create_run(cfg, classes=["a", "b"], n_folds=1, n_samples=4, run_id=rid)
            store.start_fold(rid, 0, "s0", ["s0"], 3, 0, 1)
            store.finish_fold(rid, 0, none, epochs_run=1, selected_epoch=1, checkpoint=ckpt)
            if status == "done":
                store.finish_run(rid, status="done", summary={"pooled": {"uf1": uf1}})
        assert predictable_runs(store) == ["old-best", "new-worse"]
