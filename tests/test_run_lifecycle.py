"""Every way out of a run closes it with its true reason: never 'running' for ever."""
from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from fixtures_clips import make_clip_manifest
from mer_core.config import ExperimentConfig
from mer_core.errors import MerError
from mer_core.store.db import RunStore
from mer_core.training import engine
from mer_core.training.engine import run_experiment


@pytest.fixture
def manifest(tmp_path) -> Path:
    return make_clip_manifest(tmp_path / "clips", subjects=3, clips_per_subject=4, size=32, frames=5)


def cfg(manifest, **kw) -> ExperimentConfig:
    base = dict(dataset="manifest", dataset_options={"manifest": str(manifest)}, class_set="native",
                model="baseline", epochs=1, batch_size=8, executor="sequential", workers=1)
    base.update(kw)
    return ExperimentConfig.from_dict(base)


def _only_run(store: RunStore) -> dict:
    runs = store.list_runs()
    assert len(runs) == 1, runs
    return store.get_run(runs.iloc[0]["id"])


def test_a_full_disk_before_the_first_fold_closes_the_run_as_failed(manifest, monkeypatch):
    def full_disk(path, array):
        raise OSError(28, "No space left on device", str(path))

    monkeypatch.setattr(engine, "save_array", full_disk)
    with pytest.raises(OSError):
        run_experiment(cfg(manifest), run_id="full-disk")
    with RunStore() as store:
        run = _only_run(store)
        assert run["status"] == "failed"
        assert "No space left on device" in run["error"] and run["finished"]


def test_a_full_database_at_the_finish_still_closes_the_run(manifest, monkeypatch):
    def db_full(self, *a, **k):
        raise sqlite3.OperationalError("database or disk is full")

    monkeypatch.setattr(RunStore, "finish_run", db_full)
    with pytest.raises(sqlite3.OperationalError):
        run_experiment(cfg(manifest), run_id="db-full")
    with RunStore() as store:
        run = _only_run(store)
        assert run["status"] == "failed" and "database or disk is full" in run["error"]
        assert store.completed_folds("db-full") == {0, 1, 2}  # the finished folds are kept


def test_ctrl_c_outside_the_folds_closes_the_run_as_cancelled(manifest, monkeypatch):
    def interrupted(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(engine, "summarize_run", interrupted)
    with pytest.raises(KeyboardInterrupt):
        run_experiment(cfg(manifest), run_id="ctrl-c")
    with RunStore() as store:
        assert _only_run(store)["status"] == "cancelled"


def test_a_clear_error_inside_a_fold_is_raised_and_stored(manifest, monkeypatch):
    from mer_core.training import executors

    def broken(*a, **k):
        raise MerError("fold exploded")

    monkeypatch.setattr(executors, "run_fold", broken)
    with pytest.raises(MerError, match="fold exploded"):
        run_experiment(cfg(manifest), run_id="broken")
    with RunStore() as store:
        run = _only_run(store)
        assert run["status"] == "failed" and "fold exploded" in run["error"]
