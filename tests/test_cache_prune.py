"""mer cache prune: old and excess preprocessed entries and old uploads go; the run store never does."""
from __future__ import annotations

import os
import time

import pytest

from mer_core.cli import main
from mer_core.errors import ConfigError
from mer_core.preprocess.cache_prune import prune

DAY = 86400


def _put(root, rel, size, age_days):
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x" * size)
    t = time.time() - age_days * DAY
    os.utime(path, (t, t))
    return path


@pytest.fixture
def cache(isolated_cache):
    root = isolated_cache
    files = {
        "old": _put(root, "preprocessed/synthetic/ab/old.npy", 4000, 40),
        "mid": _put(root, "preprocessed/synthetic/cd/mid.npy", 3000, 10),
        "new": _put(root, "preprocessed/casme2/ef/new.npy", 2000, 1),
        "upload_old": _put(root, "uploads/u-1.mp4", 500, 8),
        "upload_new": _put(root, "uploads/u-2.mp4", 500, 0.1),
        "store": _put(root, "runs.sqlite", 100, 400),
        "run_file": _put(root, "runs/r1/inputs.npy", 100, 400),
        "dataset": _put(root, "datasets/synthetic/f.png", 100, 400),
    }
    return root, files


def _existing(files):
    return {k for k, p in files.items() if p.exists()}


def test_dry_run_lists_with_sizes_and_removes_nothing(cache, capsys):
    root, files = cache
    assert main(["cache", "prune", "--older-than", "7", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "would remove" in out and "old.npy" in out and "mid.npy" in out and "u-1.mp4" in out
    assert "new.npy" not in out and "u-2.mp4" not in out and "runs.sqlite" not in out
    assert "3.9 KB" in out  # old.npy's size
    assert _existing(files) == set(files)


def test_older_than_removes_exactly_the_old_entries_and_uploads(cache):
    root, files = cache
    report = prune(older_than_days=7)
    assert _existing(files) == {"new", "upload_new", "store", "run_file", "dataset"}
    assert sorted(r.path.name for r in report.removed) == ["mid.npy", "old.npy", "u-1.mp4"]
    assert report.freed_bytes == 4000 + 3000 + 500 and report.kept_bytes == 2000
    assert not (root / "preprocessed/synthetic/ab").exists()  # emptied folders go too


def test_larger_than_removes_oldest_first_until_under_the_size(cache):
    root, files = cache
    report = prune(larger_than_gb=5500 / 2**30)  # 9000 bytes cached: the oldest (4000) is enough
    assert [r.path.name for r in report.removed] == ["old.npy"] and report.kept_bytes == 5000
    assert _existing(files) == set(files) - {"old"}  # uploads untouched without --older-than
    prune(larger_than_gb=0)
    assert _existing(files) == {"upload_old", "upload_new", "store", "run_file", "dataset"}


def test_prune_needs_a_criterion():
    with pytest.raises(ConfigError, match="older-than"):
        prune()
    assert main(["cache", "prune"]) == 2
