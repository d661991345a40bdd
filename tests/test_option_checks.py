"""Options that cannot mean anything are one line naming the key and what was expected, never a traceback."""
from __future__ import annotations

import json

import pytest

from mer_core.cli import main


def _one_error_line(err: str) -> str:
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


@pytest.mark.parametrize("key, value", [("dataset_options", "subjects=3"), ("dataset_options", ["subjects", 3]),
                                        ("model_options", "dropout=0.1")])
def test_an_options_table_given_as_text_in_a_config_file_names_the_key(tmp_path, capsys, key, value):
    path = tmp_path / "config.json"
    path.write_text(json.dumps({key: value}))
    assert main(["loso", "--config", str(path)]) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert key in line and "mapping" in line and "dictionary update" not in line, line


@pytest.mark.parametrize("frames", ["-1", "0", "1"])
def test_predict_max_frames_below_two_is_one_line(tmp_path, capsys, frames):
    clip = tmp_path / "clip.mp4"
    clip.write_bytes(b"not read: the option is refused first")
    assert main(["predict", str(clip), "--run", "no-such-run", "--max-frames", frames]) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert "--max-frames" in line and frames in line and ">= 2" in line, line
