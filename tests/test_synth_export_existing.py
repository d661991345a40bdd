"""`mer synth --export` never replaces a file it did not write: a user's manifest.csv in the
folder is refused like any other file, unless --force; a previous export is replaced."""
from __future__ import annotations

import pytest

from mer_core.cli import main
from mer_core.datasets.synthetic.export import export_public
from mer_core.errors import DatasetError

MINE = "subject,clip,label\nme,my-clip,happiness\n"


def test_a_users_manifest_is_refused_and_kept(tmp_path):
    (tmp_path / "manifest.csv").write_text(MINE)
    with pytest.raises(DatasetError, match=r"manifest\.csv.*--force"):
        export_public(tmp_path, "apex-only", subjects=2)
    assert (tmp_path / "manifest.csv").read_text() == MINE
    (tmp_path / "meta.json").write_text("{}")  # not a meta.json this export wrote
    with pytest.raises(DatasetError, match="meta.json"):
        export_public(tmp_path, "apex-only", subjects=2)
    assert (tmp_path / "manifest.csv").read_text() == MINE


def test_the_cli_refuses_without_force_and_replaces_with_it(tmp_path, capsys):
    (tmp_path / "manifest.csv").write_text(MINE)
    assert main(["synth", "--export", "apex-only", str(tmp_path), "--subjects", "2"]) == 2
    assert "--force" in capsys.readouterr().err and (tmp_path / "manifest.csv").read_text() == MINE
    assert main(["synth", "--export", "apex-only", str(tmp_path), "--subjects", "2", "--force"]) == 0
    assert (tmp_path / "manifest.csv").read_text() != MINE
    # a previous export is ours: written again without --force
    assert main(["synth", "--export", "apex-only", str(tmp_path), "--subjects", "2"]) == 0
