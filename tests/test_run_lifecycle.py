"""Every way out of a run closes it with its true reason: never 'running' for ever."""
from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from fixtures_clips import make_clip_manifest, tiny_config
from mer_core.config import ExperimentConfig
from mer_core.errors import MerError
from mer_core.store.db import RunStore
from mer_core.training import engine
from mer_core.training.engine import run_experiment


@pytest.fixture
def manifest(tmp_path) -> Path:
    return make_clip_manifest(tmp_path / "clips", subjects=3, clips_per_subject=4, size=32, frames=5)


def cfg(manifest, **kw) -> ExperimentConfig:
    return tiny_config(manifest, **{"epochs": 1, **kw})


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


def test_a_stop_while_the_inputs_are_written_is_a_resumable_cancellation(manifest, monkeypatch):
    # SIGTERM lands after the run row and its heartbeat exist but before the first fold (seen in CI): the run
    # comes back as cancelled, so `mer loso` says how to resume it, and --resume trains every fold
    real = engine.save_array

    def stopped(path, array):
        raise KeyboardInterrupt("stopped by SIGTERM")

    monkeypatch.setattr(engine, "save_array", stopped)
    assert run_experiment(cfg(manifest), run_id="early-stop") == "early-stop"
    with RunStore() as store:
        run = _only_run(store)
        assert run["status"] == "cancelled" and "SIGTERM" in run["error"]
    monkeypatch.setattr(engine, "save_array", real)
    run_experiment(cfg(manifest), run_id="early-stop")
    with RunStore() as store:
        assert store.get_run("early-stop")["status"] == "done" and store.completed_folds("early-stop") == {0, 1, 2}


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


def _wait_for_running_run(timeout: float = 60.0) -> str:
    import time

    deadline = time.time() + timeout
    while time.time() < deadline:
        with RunStore() as store:
            runs = store.list_runs()
            if len(runs) and runs.iloc[0]["status"] == "running" and store.get_run(runs.iloc[0]["id"])["heartbeat"]:
                return str(runs.iloc[0]["id"])
        time.sleep(0.2)
    raise AssertionError("no running run appeared")


def _start_loso(manifest: Path, tmp_path: Path):
    import subprocess
    import sys

    cmd = [sys.executable, "-m", "mer_core.cli", "loso", "--dataset", "manifest",
           "--dataset-option", f"manifest={manifest}", "--class-set", "native", "--model", "baseline",
           "--epochs", "400", "--executor", "sequential", "--workers", "1", "--json"]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path)


@pytest.mark.parametrize("signame", ["SIGTERM", "SIGHUP"])
def test_a_terminated_mer_loso_closes_its_run_and_exits_non_zero(manifest, tmp_path, signame):
    import signal

    proc = _start_loso(manifest, tmp_path)
    try:
        run_id = _wait_for_running_run()
        proc.send_signal(getattr(signal, signame))
        _out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    with RunStore() as store:
        run = store.get_run(run_id)
    assert proc.returncode != 0, err
    assert f"--resume {run_id}" in err and "Traceback" not in err, err
    assert run["status"] == "cancelled" and signame in run["error"], (run["status"], run["error"], err)


def test_a_killed_mer_loso_is_found_dead_and_resumable(manifest, tmp_path):
    import signal

    proc = _start_loso(manifest, tmp_path)
    try:
        run_id = _wait_for_running_run()
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        proc.kill()
    with RunStore() as store:
        assert store.get_run(run_id)["status"] == "running"  # nobody could close it
        assert store.mark_stale(stale_after=60.0) == []  # a fresh heartbeat: not yet
        assert store.mark_stale(stale_after=0.0) == [run_id]  # the process is gone: dead
        run = store.get_run(run_id)
        assert run["status"] == "failed" and "--resume" in run["error"]


def test_a_live_run_is_never_marked_dead(manifest, tmp_path):
    proc = _start_loso(manifest, tmp_path)
    try:
        run_id = _wait_for_running_run()
        with RunStore() as store:
            assert store.mark_stale(stale_after=0.0) == []  # its process is alive
            assert store.get_run(run_id)["status"] == "running"
    finally:
        proc.kill()
        proc.wait(timeout=30)


@pytest.mark.parametrize("bad", ["no-such-run", "../../x"])
def test_resume_with_an_unknown_id_is_an_error_not_a_new_run(bad, capsys, isolated_cache):
    from mer_core.cli import main

    assert main(["loso", "--resume", bad, "--epochs", "1"]) == 2
    assert "--resume" in capsys.readouterr().err
    with RunStore() as store:
        assert store.list_runs().empty
    assert not (Path(isolated_cache) / "x").exists()


def test_rows_the_indexer_left_out_are_in_the_run_notes(manifest):
    import pandas as pd

    rows = pd.read_csv(manifest)
    broken = rows.iloc[[0]].assign(clip="ghost", frames_dir=str(manifest.parent / "does-not-exist"))
    pd.concat([rows, broken]).to_csv(manifest, index=False)
    rid = run_experiment(cfg(manifest), run_id="noted")
    with RunStore() as store:
        notes = store.get_run(rid)["notes"]
    assert any("1 row(s) left out" in n and "does-not-exist" in n for n in notes), notes
