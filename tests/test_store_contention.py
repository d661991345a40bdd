"""A store locked beyond its busy timeout costs a progress row at worst, never a fold."""
from __future__ import annotations

import sqlite3
import threading
import time

import pytest

from mer_core.config import ExperimentConfig
from mer_core.store.db import RunStore


def _run(store: RunStore) -> str:
    cfg = ExperimentConfig.from_dict({"model": "baseline"})
    run_id = store.create_run(cfg, classes=("a", "b"), n_folds=1, n_samples=2, run_id="locked-run")
    store.start_fold(run_id, 0, "s1", ["s1"], 1, 0, 1)
    return run_id


def _hold_lock(path, seconds: float) -> threading.Thread:
    ready = threading.Event()

    def hold() -> None:
        other = sqlite3.connect(path, isolation_level=None)
        other.execute("BEGIN EXCLUSIVE")
        ready.set()
        time.sleep(seconds)
        other.execute("ROLLBACK")
        other.close()

    t = threading.Thread(target=hold, daemon=True)
    t.start()
    ready.wait(5)
    return t


def test_an_epoch_row_waits_out_a_lock_longer_than_the_busy_timeout(isolated_cache):
    with RunStore(timeout_s=0.05) as store:
        run_id = _run(store)
        holder = _hold_lock(store.path, 0.6)
        store.add_epoch(run_id, 0, 1, train_loss=0.5)  # the lock outlives 0.05 s: retried, then written
        holder.join()
        assert store.epochs(run_id)["train_loss"].tolist() == [0.5]


def test_a_lock_that_never_ends_skips_the_row_with_a_warning(isolated_cache, monkeypatch):
    import mer_core.store.db as db

    monkeypatch.setattr(db, "PROGRESS_RETRIES", 1)
    with RunStore(timeout_s=0.05) as store:
        run_id = _run(store)
        holder = _hold_lock(store.path, 1.5)
        with pytest.warns(UserWarning, match="was not recorded"):
            store.add_epoch(run_id, 0, 1, train_loss=0.5)
        holder.join()
        assert store.epochs(run_id).empty


def test_runtime_notes_say_what_the_machine_changes(monkeypatch):
    import torch

    from mer_core.training.engine import runtime_notes
    from mer_core.training.executors import resolve_workers

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    cfg = ExperimentConfig.from_dict({"model": "baseline", "device": "cuda", "executor": "process", "workers": 64})
    notes = runtime_notes(cfg, n_folds=16)
    assert any("CUDA is not available" in n for n in notes)
    assert any("more than this machine's" in n for n in notes)
    import os

    assert resolve_workers(cfg, 16) == min(16, os.cpu_count() or 1)
