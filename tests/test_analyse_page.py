"""The Analyse a clip page (issue 19) via AppTest: an uploaded video, an exported clip, bad uploads, storage."""
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


def test_page_analyses_an_uploaded_video(env):
    video = env["root"] / "video_clips" / env["metas"][0]["video"]
    at = page_app("analyse", run=env["run"])
    assert not at.exception
    assert "few dozen people" in _texts(at)
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


def test_page_lists_exported_synthetic_clips(env):
    at = page_app("analyse", run=env["run"])
    at.radio[0].set_value("An exported synthetic clip").run()
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
