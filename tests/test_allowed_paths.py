"""Paths from the browser stay under folders the person running the server allowed."""
from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pytest

from mer_core.cli import main
from mer_core.config import ExperimentConfig
from mer_core.datasets.allowed import allowed_bases, check_browser_path, check_table_paths
from mer_core.errors import MerError


def test_system_folders_are_refused_and_the_cache_is_allowed(isolated_cache):
    for bad in ("/etc", "/etc/shadow", "/", "~/.ssh"):
        with pytest.raises(MerError, match="outside the folders"):
            check_browser_path(bad, "root")
    assert check_browser_path(Path(isolated_cache) / "datasets" / "x", "root").is_relative_to(
        Path(isolated_cache).resolve())


def test_a_symlink_out_of_an_allowed_folder_is_resolved_before_the_check(isolated_cache, tmp_path):
    link = Path(isolated_cache) / "innocent"
    os.symlink("/etc", link)
    with pytest.raises(MerError, match="outside the folders"):
        check_browser_path(link / "shadow", "manifest")
    with pytest.raises(MerError, match="outside the folders"):
        check_browser_path(Path(isolated_cache) / ".." / ".." / "etc", "root")


def test_mer_datasets_allow_adds_a_base_from_the_shell_only(isolated_cache, tmp_path, capsys):
    data = tmp_path / "corpus"
    data.mkdir()
    with pytest.raises(MerError):
        check_browser_path(data, "root")
    assert main(["datasets", "allow", str(data)]) == 0
    assert data.resolve() in allowed_bases()
    assert check_browser_path(data / "CASME2", "root") == (data / "CASME2").resolve()
    other = tmp_path / "elsewhere"
    other.mkdir()
    assert main(["datasets", "set-root", "casme2", str(other)]) == 0  # [allowed] kept beside [roots]
    assert data.resolve() in allowed_bases() and other.resolve() in allowed_bases()
    from mer_core.datasets.roots import configured_roots

    assert configured_roots()["casme2"] == str(other)


def test_manifest_rows_may_not_leave_the_manifest_folder(isolated_cache, tmp_path):
    folder = tmp_path / "set"
    folder.mkdir()
    inside = pd.DataFrame({"sample_id": ["a"], "frames": [(str(folder / "f1.png"),)], "flow_path": [None]})
    check_table_paths(inside, folder / "manifest.csv")
    for escape in (str(folder / ".." / ".." / "etc" / "passwd"), "/etc/shadow"):
        bad = pd.DataFrame({"sample_id": ["b"], "frames": [()], "flow_path": [escape]})
        with pytest.raises(MerError, match="b: file"):
            check_table_paths(bad, folder / "manifest.csv")


def test_the_form_path_refuses_a_manifest_outside_the_allowed_folders(isolated_cache):
    from dashboard import writes

    cfg = ExperimentConfig.from_dict({"dataset": "manifest", "dataset_options": {"manifest": "/etc/shadow"},
                                      "model": "baseline"})
    with pytest.raises(MerError, match="outside the folders"):
        writes.submit(cfg)
    with pytest.raises(MerError, match="outside the folders"):
        writes.set_root("casme2", "/etc")
