"""The README's "Your own data" section: its manifest example has the manifest's columns, and its worked
commands parse and run (on a 3-subject export, one epoch, instead of 68 folds)."""
from __future__ import annotations

import re
import shlex
from pathlib import Path

from mer_core.cli import build_parser, main
from mer_core.datasets.manifest import REQUIRED_COLUMNS

README = Path(__file__).resolve().parents[1] / "README.md"


def _section() -> str:
    text = README.read_text()
    start = text.index("## Your own data")
    return text[start:text.index("\n## ", start + 5)]


def _commands() -> list[list[str]]:
    block = re.search(r"```bash\n(.*?)```", _section(), re.S).group(1)
    return [shlex.split(line.split("#")[0]) for line in block.splitlines() if line.strip()]


def test_the_manifest_example_has_the_manifest_columns():
    csv = re.search(r"```csv\n(.*?)```", _section(), re.S).group(1).splitlines()
    header = csv[0].split(",")
    assert set(REQUIRED_COLUMNS) <= set(header) and {"flow_image", "apex_image", "flow_encoding"} <= set(header)
    assert len(csv) == 6 and all(len(row.split(",")) == len(header) for row in csv[1:])


def test_the_worked_commands_run(tmp_path, capsys):
    commands = _commands()
    assert [c[:2] for c in commands] == [["mer", "synth"], ["mer", "datasets"], ["mer", "run"], ["mer", "run"]]
    parser = build_parser()
    out = str(tmp_path / "x")
    for argv in commands:
        parser.parse_args([a.replace("/tmp/x", out) for a in argv[1:]])  # every flag exists
    synth, check, train = (cmd[1:] for cmd in commands[:3])
    assert main([a.replace("/tmp/x", out) for a in synth] + ["--subjects", "3"]) == 0
    assert main([a.replace("/tmp/x", out) for a in check]) == 0
    assert main([a.replace("/tmp/x", out) for a in train] + ["--epochs", "1", "--executor", "sequential"]) == 0
    printed = capsys.readouterr().out
    assert "part casme2" in printed and "part samm" in printed and "part smic" in printed
