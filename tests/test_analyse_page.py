"""The Analyse a clip page via AppTest: an uploaded video, an exported clip, bad uploads, storage."""
from __future__ import annotations

import time

import numpy as np
import pytest

from apptest_helpers import page_app, unescape
from fixtures_clips import TINY_SYNTH, synthetic_video, tiny_run_with_videos
from mer_core.errors import MerError

OPTS = TINY_SYNTH


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return tiny_run_with_videos(tmp_path_factory.mktemp("analyse_cache"), clips=2, fmt="mp4", videos_dir="video_clips")


@pytest.fixture
def env(tiny, monkeypatch):
    monkeypatch.setenv("MER_CACHE", str(tiny["root"]))
    import streamlit as st

    st.cache_data.clear()
    st.cache_resource.clear()
    return tiny


def _texts(at) -> str:
    parts = [e.value for kind in ("markdown", "caption", "info", "warning", "error", "subheader", "title")
             for e in getattr(at, kind)]
    return "\n".join(str(p) for p in parts)


def test_page_analyses_an_uploaded_video(env, monkeypatch):
    from mer_core.explain import inference

    monkeypatch.setattr(inference, "NEAR_CHANCE", -1.0)  # a verdict whatever the tiny run's probabilities
    video = env["root"] / "video_clips" / env["metas"][0]["video"]
    at = page_app("analyse", run=env["run"])
    assert not at.exception
    assert "trained on 12 clips of 3 synthetic faces (synthetic) may not transfer" in unescape(_texts(at))
    at.file_uploader[0].set_value(("my clip.mp4", video.read_bytes(), "video/mp4")).run()
    assert not at.exception, at.exception
    text = _texts(at)
    assert "Prediction" in text and "Spotted frames" in text and "never saw its own test subject" in text
    stored = list((env["root"] / "uploads").iterdir())
    assert len(stored) == 1 and stored[0].suffix == ".mp4" and "my clip" not in stored[0].name
    # moving the frames with the slider re-analyses with the given onset and apex
    at.slider[0].set_value((1, 5)).run()
    assert not at.exception
    assert "apex 5" in _texts(at).replace("\\", "")


@pytest.mark.parametrize("blink, expected", [
    (True, ("Eye regions (Haar eye cascade) left out of the motion curve (a blink was found)",
            "blink found: the eye regions moved")),
    (False, ("The whole face crop is in the motion curve (no blink was found)", "no blink found (the eyes moved")),
])
def test_page_says_what_spotting_left_out(env, tmp_path, blink, expected):
    video = synthetic_video(tmp_path / "mine.mp4", blink=blink)
    at = page_app("analyse", run=env["run"])
    at.file_uploader[0].set_value(("mine.mp4", video.read_bytes(), "video/mp4")).run()
    assert not at.exception, at.exception
    captions = "\n".join(unescape(c.value) for c in at.caption)
    for words in expected:
        assert words in captions, captions
    assert ("left out of the motion curve" in captions) is blink


def test_page_shows_a_bad_upload_as_a_message(env):
    at = page_app("analyse", run=env["run"])
    at.file_uploader[0].set_value(("holiday.mp4", b"definitely not a video" * 40, "video/mp4")).run()
    assert not at.exception
    errors = " ".join(e.value for e in at.error)
    assert "not a video" in errors.replace("\\", "")
    assert not at.subheader  # no prediction


def _one_frame_avi(tmp_path) -> bytes:
    from mer_core.datasets.synthetic.video_export import write_video

    return write_video(tmp_path / "one.avi", np.full((1, 32, 32), 99, np.uint8), 30.0).read_bytes()


def _empty_zip() -> bytes:
    import io
    import zipfile

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("notes.txt", "no frames")
    return buf.getvalue()


@pytest.mark.parametrize("name, make, expected", [
    ("one.avi", _one_frame_avi, "1 frame; a micro-expression needs"),
    ("frames.zip", lambda tmp: _empty_zip(), "no frames"),
    ("cut.mp4", lambda tmp: b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 300, "not a video"),
])
def test_page_names_each_bad_upload(env, tmp_path, name, make, expected):
    at = page_app("analyse", run=env["run"])
    at.file_uploader[0].set_value((name, make(tmp_path), "application/octet-stream")).run()
    assert not at.exception
    assert expected in " ".join(e.value for e in at.error).replace("\\", "")
    assert not at.subheader


def test_page_lists_exported_synthetic_clips(env, monkeypatch):
    from mer_core.explain import inference

    monkeypatch.setattr(inference, "NEAR_CHANCE", -1.0)
    at = page_app("analyse", run=env["run"])
    at.radio[0].set_value("an exported synthetic clip").run()
    assert not at.exception
    meta = env["metas"][0]
    assert f"true onset {meta['onset']}, apex {meta['apex']}" in at.selectbox[1].format_func(at.selectbox[1].value)
    assert any("Prediction" in s.value for s in at.subheader)


def test_uploads_get_generated_names_and_expire(env, monkeypatch):
    from dashboard import writes

    path = writes.save_upload("../../etc/passwd.mp4", b"x" * 10)
    assert path.parent == env["root"] / "uploads" and path.name.endswith(".mp4") and "passwd" not in path.name
    with pytest.raises(MerError, match="expected a video"):
        writes.save_upload("clip.exe", b"x")
    with pytest.raises(MerError, match="empty"):
        writes.save_upload("clip.mp4", b"")
    monkeypatch.setenv(writes.UPLOAD_TTL_ENV, "1")
    assert writes.prune_uploads(now=time.time() + 120) >= 1 and not path.exists()


def _noise_video(path) -> bytes:
    """A clip without a face: smooth noise with a patch that moves and comes back."""
    import cv2

    from mer_core.datasets.synthetic.video_export import write_video

    rng = np.random.default_rng(3)
    base = cv2.GaussianBlur((rng.random((96, 96)) * 200 + 20).astype(np.float32), (5, 5), 0)
    frames = [np.clip(cv2.warpAffine(base, np.float32([[1, 0, min(t, 12 - t) / 3], [0, 1, 0]]), (96, 96),
                                     borderMode=cv2.BORDER_REFLECT), 0, 255).astype(np.uint8) for t in range(13)]
    return write_video(path, np.stack(frames), 30.0).read_bytes()


def test_a_clip_without_a_face_gets_no_verdict(env, tmp_path, monkeypatch):
    from mer_core.explain import inference

    monkeypatch.setattr(inference, "NEAR_CHANCE", -1.0)  # only the missing face withholds the verdict here
    at = page_app("analyse", run=env["run"])
    at.file_uploader[0].set_value(("wall.mp4", _noise_video(tmp_path / "wall.mp4"), "video/mp4")).run()
    assert not at.exception, at.exception
    assert not any("Prediction" in s.value for s in at.subheader)
    warnings = unescape(" ".join(w.value for w in at.warning))
    assert "No verdict. No face was found in the clip" in warnings
    probs = [c.value for c in at.caption if c.value.startswith("probabilities")]
    assert probs and all(c in probs[0] for c in ("negative", "positive", "surprise"))
    assert not at.get("plotly_chart") or all("analyse_probs" not in str(p.proto.id) for p in at.get("plotly_chart"))


def test_probabilities_near_chance_get_no_verdict(env, monkeypatch):
    from mer_core.explain import inference

    monkeypatch.setattr(inference, "NEAR_CHANCE", 1.0)  # every prediction counts as near chance
    at = page_app("analyse", run=env["run"])
    at.radio[0].set_value("an exported synthetic clip").run()
    assert not at.exception
    assert not any("Prediction" in s.value for s in at.subheader)
    assert "The probabilities are close to chance" in unescape(" ".join(w.value for w in at.warning))


def test_an_uploaded_sidecar_gives_onset_and_apex(env, monkeypatch):
    meta = env["metas"][1]
    video = env["root"] / "video_clips" / meta["video"]
    at = page_app("analyse", run=env["run"])
    at.file_uploader[0].set_value(("mine.mp4", video.read_bytes(), "video/mp4"))
    at.file_uploader[1].set_value(("mine.json", b'{"onset": 2, "apex": 7}', "application/json")).run()
    assert not at.exception, at.exception
    text = unescape(_texts(at))
    assert "onset 2" in text and "apex 7" in text and "from the sidecar: onset, apex" in text
    assert "Onset 2 and apex 7 (frames of the file) come from the uploaded sidecar" in text
    # one numbering, said once: every slider counts the file's frames (the clip from onset starts at 2, not 0)
    move, frame = at.slider[0], at.slider[1]
    assert tuple(move.value) == (2, 7) and (frame.min, frame.value) == (2, 7)
    assert "Frames are numbered as in the clip's file, from 0" in text
    # a bad sidecar is a message naming what was expected
    at.file_uploader[1].set_value(("bad.json", b'{"apex": 7}', "application/json")).run()
    assert not at.exception
    assert "no onset and apex" in unescape(" ".join(e.value for e in at.error))


def test_an_exported_clip_uses_the_sidecar_beside_it(env):
    at = page_app("analyse", run=env["run"])
    at.radio[0].set_value("an exported synthetic clip").run()
    meta = env["metas"][0]
    text = unescape(_texts(at))
    assert f"onset {meta['onset']}" in text and f"apex {meta['apex']}" in text
    assert f"come from {meta['video'].rsplit('.', 1)[0]}.json" in text


def test_the_best_scoring_run_that_can_predict_is_the_default(env):
    """A newer, better-scoring run without models is not offered (nor chosen): the newest run is no default."""
    from mer_core.config import ExperimentConfig
    from mer_core.store.db import RunStore

    with RunStore() as store:
        rid = store.create_run(ExperimentConfig.from_dict({"dataset": "synthetic", "model": "baseline"}),
                               classes=["a", "b"], n_folds=1, n_samples=2, run_id="newer-no-models")
        store.finish_run(rid, status="done", summary={"pooled": {"uf1": 0.99}})
    try:
        at = page_app("analyse")
        assert not at.exception
        assert at.selectbox[0].value == env["run"] and "newer-no-models" not in at.selectbox[0].options
    finally:
        with RunStore() as store:
            store.delete_run(rid)
