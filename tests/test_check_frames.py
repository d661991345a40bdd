"""`mer datasets check` decodes the frames and names zero-byte, truncated, non-image, 1x1 and mixed-size ones."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from fixtures_clips import make_clip_manifest
from mer_core.cli import main
from mer_core.datasets.check import check_dataset


@pytest.fixture
def manifest(tmp_path) -> Path:
    return make_clip_manifest(tmp_path / "clips", subjects=2, clips_per_subject=2, size=32, frames=5)


def _frames(manifest: Path) -> list[Path]:
    return sorted((manifest.parent / "s00" / "clip00").glob("*"))


def _report(manifest: Path, **kw):
    return check_dataset("manifest", manifest=str(manifest), **kw)


def test_a_clean_set_is_usable_and_every_frame_is_decoded(manifest):
    report = _report(manifest)
    assert report.usable and report.frames_decoded == 4 * 5


@pytest.mark.parametrize("damage, expected", [
    ("zero", "zero-byte"), ("text", "not an image"), ("truncate", "truncated"), ("tiny", "1x1"),
    ("bigger", "different sizes"),
])
def test_each_kind_of_bad_frame_is_named(manifest, damage, expected):
    frame = _frames(manifest)[2]  # a middle frame: indexing alone never opens it
    assert _report(manifest, frames="none").usable  # what the check said before it decoded frames
    if damage == "zero":
        frame.write_bytes(b"")
    elif damage == "text":
        frame.write_text("not an image at all")
    elif damage == "truncate":
        data = frame.read_bytes()
        frame.write_bytes(data[: len(data) * 2 // 3])
    elif damage == "tiny":
        cv2.imwrite(str(frame), np.zeros((1, 1), np.uint8))
    else:
        cv2.imwrite(str(frame), np.zeros((48, 48), np.uint8))
    report = _report(manifest)
    assert not report.usable
    assert any(expected in p["message"] and "clip00" in p["message"] for p in report.errors), report.errors


def test_quick_decodes_fewer_frames_and_onset_equal_apex_is_warned(manifest):
    import pandas as pd

    rows = pd.read_csv(manifest)
    rows.loc[0, ["onset", "apex", "offset"]] = 2
    rows.to_csv(manifest, index=False)
    full, quick = _report(manifest), _report(manifest, frames="quick")
    assert 0 < quick.frames_decoded <= full.frames_decoded
    assert any("onset = apex = offset" in p["message"] for p in full.warnings)


def test_cli_check_exits_1_on_a_damaged_frame(manifest, capsys):
    _frames(manifest)[3].write_bytes(b"")
    assert main(["datasets", "check", "manifest", "--dataset-option", f"manifest={manifest}", "--quick"]) in (0, 1)
    assert main(["datasets", "check", "manifest", "--dataset-option", f"manifest={manifest}"]) == 1
    assert "zero-byte" in capsys.readouterr().out
