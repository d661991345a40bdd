"""datasets.toml: saved atomically, so a failed write never truncates the roots already configured."""
from __future__ import annotations

import os

import pytest

from mer_core.datasets import roots
from mer_core.datasets.roots import config_path, configured_roots, set_dataset_root
from mer_core.errors import DatasetError


def test_set_root_keeps_the_other_entries_and_quotes_paths(tmp_path):
    set_dataset_root("casme2", tmp_path / "CASME II")
    set_dataset_root("samm", tmp_path / 'odd "name"')
    assert configured_roots() == {"casme2": str(tmp_path / "CASME II"), "samm": str(tmp_path / 'odd "name"')}


def _disk_full(*args, **kwargs):
    raise OSError(28, "No space left on device")


@pytest.mark.parametrize("failing", ["fsync", "replace"])
def test_a_failing_write_leaves_the_old_file_intact(tmp_path, monkeypatch, failing):
    set_dataset_root("casme2", tmp_path / "casme2")
    path = config_path()
    before = path.read_bytes()
    with monkeypatch.context() as patch, pytest.raises(DatasetError, match="datasets.toml.*No space left"):
        patch.setattr(roots.os, failing, _disk_full)
        set_dataset_root("samm", tmp_path / "samm")
    assert path.read_bytes() == before
    assert configured_roots() == {"casme2": str(tmp_path / "casme2")}
    assert sorted(os.listdir(path.parent)) == [path.name]  # no temporary file left behind


def test_saved_file_keeps_its_permissions(tmp_path):
    path = set_dataset_root("casme2", tmp_path)
    path.chmod(0o640)
    set_dataset_root("samm", tmp_path)
    assert path.stat().st_mode & 0o777 == 0o640
