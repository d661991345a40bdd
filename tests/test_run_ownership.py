"""One writer per run: a live run cannot be resumed beside its process, and a process whose run was taken over
never writes to it again (no finished fold, epoch or status of the new owner is lost or overwritten)."""
from __future__ import annotations

import hashlib
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fixtures_clips import make_clip_manifest
from mer_core.errors import MerError
from mer_core.store.db import RunStore

pytestmark = pytest.mark.skipif(not hasattr(signal, "SIGSTOP"), reason="needs SIGSTOP/SIGCONT")


def _loso(manifest: Path, cwd: Path, *extra: str) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "mer_core.cli", "loso", "--dataset", "manifest", "--dataset-option",
           f"manifest={manifest}", "--class-set", "native", "--model", "baseline", "--epochs", "4",
           "--batch-size", "8", "--executor", "sequential", "--workers", "1", "--json", *extra]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=cwd)


def _resume(run_id: str, cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mer_core.cli", "loso", "--resume", run_id, "--json"],
                          capture_output=True, text=True, cwd=cwd, timeout=timeout)


def _wait(predicate, timeout: float = 60.0, what: str = "") -> object:
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def _pause(proc: subprocess.Popen) -> None:
    """SIGSTOP ``proc`` at a moment it holds no write transaction on the store (a process stopped inside one
    would lock every other writer out, as a real Ctrl-Z there would): stop, try to take the write lock at
    once, and if it is held let the process run on a moment and stop it again."""
    with RunStore() as store:
        path = store.path
    for _ in range(400):
        os.kill(proc.pid, signal.SIGSTOP)
        probe = sqlite3.connect(path, timeout=0, isolation_level=None)
        try:
            probe.execute("BEGIN IMMEDIATE")
            probe.execute("ROLLBACK")
            return
        except sqlite3.OperationalError:
            os.kill(proc.pid, signal.SIGCONT)
            time.sleep(0.02)
        finally:
            probe.close()
    raise AssertionError("the first process held the store's write lock every time it was stopped")


def _first_fold_done() -> str | None:
    with RunStore() as store:
        runs = store.list_runs()
        if len(runs) and store.completed_folds(str(runs.iloc[0]["id"])):
            return str(runs.iloc[0]["id"])
    return None


def _snapshot(run_id: str) -> dict:
    with RunStore() as store:
        run = store.get_run(run_id)
        folder = Path(os.environ["MER_CACHE"]) / "runs" / run_id
        return {
            "status": run["status"], "summary": run["summary"], "error": run["error"], "pid": run["pid"],
            "folds": store.folds(run_id)[["fold_index", "status", "epochs_run", "finished"]].to_dict("records"),
            "epochs": store.epochs(run_id).to_dict("records"),
            "predictions": store.predictions(run_id).to_dict("records"),
            "checkpoints": {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.glob("fold_*.pt"))},
        }


def test_two_processes_on_one_run_never_lose_or_overwrite_a_fold_or_the_status(tmp_path):
    manifest = make_clip_manifest(tmp_path / "clips", subjects=3, clips_per_subject=4, size=32, frames=5)
    first = _loso(manifest, tmp_path)
    try:
        run_id = _wait(_first_fold_done, what="the first fold")
        _pause(first)  # paused (Ctrl-Z) in its second fold
        with RunStore() as store:
            assert store.get_run(run_id)["status"] == "running"
            done_before = store.completed_folds(run_id)

        # 1. a second writer is refused while the first process lives, naming the run, the pid and the heartbeat
        refused = _resume(run_id, tmp_path)
        assert refused.returncode == 2, refused.stderr
        line = refused.stderr.strip()
        assert len(line.splitlines()) == 1 and "Traceback" not in line, line
        assert run_id in line and f"pid {first.pid}" in line and "heartbeat" in line and "s ago" in line, line
        with RunStore() as store:
            assert store.get_run(run_id)["status"] == "running" and store.get_run(run_id)["pid"] == first.pid
            assert store.completed_folds(run_id) == done_before

        # 2. the run is taken over once its process looks dead: a long-silent heartbeat on another machine
        with RunStore() as store, store.tx() as c:
            c.execute("UPDATE runs SET host='elsewhere.example', heartbeat=heartbeat - 3600 WHERE id=?", (run_id,))
        second = _resume(run_id, tmp_path, timeout=180)
        assert second.returncode == 0, second.stderr
        after_takeover = _snapshot(run_id)
        assert after_takeover["status"] == "done" and len(after_takeover["checkpoints"]) == 3
        assert {f["status"] for f in after_takeover["folds"]} == {"done"} and after_takeover["pid"] != first.pid

        # 3. the first process wakes up: it must stop without writing anything
        os.kill(first.pid, signal.SIGCONT)
        _out, err = first.communicate(timeout=120)
    finally:
        if first.poll() is None:
            os.kill(first.pid, signal.SIGCONT)
            first.kill()
            first.wait(timeout=30)
    assert first.returncode not in (0, None), err
    assert "taken over" in err and run_id in err and "Traceback" not in err, err
    assert _snapshot(run_id) == after_takeover


def test_resume_refuses_a_run_whose_process_is_alive_even_with_an_old_heartbeat(tmp_path):
    """A paused process stops beating; it is alive all the same, and the refusal says how long it has been silent."""
    from mer_core.training.engine import run_experiment
    from fixtures_clips import tiny_config

    from mer_core.training.experiment import complete_config

    manifest = make_clip_manifest(tmp_path / "clips", subjects=3, clips_per_subject=3, size=32, frames=5)
    config = complete_config(tiny_config(manifest, epochs=1))
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        with RunStore() as store:
            store.create_run(config, classes=("negative", "positive", "surprise"), n_folds=3, n_samples=9,
                             run_id="paused")
            with store.tx() as c:
                c.execute("UPDATE runs SET pid=?, host=?, heartbeat=? WHERE id='paused'",
                          (sleeper.pid, socket.gethostname(), time.time() - 125))
        with pytest.raises(MerError, match=rf"paused.*pid {sleeper.pid}.*heartbeat 12\d s ago"):
            run_experiment(config, run_id="paused")
        with RunStore() as store:
            assert store.get_run("paused")["status"] == "running" and store.get_run("paused")["pid"] == sleeper.pid
    finally:
        sleeper.kill()
        sleeper.wait()
    run_experiment(config, run_id="paused")  # its process gone: resumed
    with RunStore() as store:
        assert store.get_run("paused")["status"] == "done"


def test_the_job_queue_does_not_resume_a_job_whose_run_is_alive_elsewhere(tmp_path):
    from fixtures_clips import tiny_config
    from mer_core.jobs import queue

    manifest = make_clip_manifest(tmp_path / "clips", subjects=3, clips_per_subject=3, size=32, frames=5)
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        with RunStore() as store:
            job = queue.submit(tiny_config(manifest, epochs=1), store=store, start=False)
            run_id = queue.get_job(store, job)["run_id"]
            store.create_run(tiny_config(manifest, epochs=1), classes=("a", "b"), n_folds=3, n_samples=9,
                             run_id=run_id)
            with store.tx() as c:  # the job failed, and its run was resumed by `mer loso --resume` elsewhere
                c.execute("UPDATE jobs SET status='failed' WHERE id=?", (job,))
                c.execute("UPDATE runs SET pid=?, host=?, heartbeat=? WHERE id=?",
                          (sleeper.pid, socket.gethostname(), time.time(), run_id))
            with pytest.raises(MerError, match=rf"{run_id}.*pid {sleeper.pid}"):
                queue.resume(store, job, start=False)
            assert queue.get_job(store, job)["status"] == "failed"
    finally:
        sleeper.kill()
        sleeper.wait()


def test_a_checkpoint_is_replaced_only_while_the_run_is_still_this_process_s(tmp_path):
    """The ownership check and the rename happen under one write lock: a process whose run was taken over
    while it trained (or sat paused between a check and the write) replaces no file and leaves no temporary."""
    from torch import nn

    from fixtures_clips import tiny_config
    from mer_core.store.db import RunTakenOver
    from mer_core.training.checkpoints import load_fold_checkpoint, save_fold_checkpoint
    from mer_core.training.experiment import complete_config

    manifest = make_clip_manifest(tmp_path / "clips", subjects=3, clips_per_subject=3, size=32, frames=5)
    config = complete_config(tiny_config(manifest, epochs=1))
    me = (os.getpid(), socket.gethostname())
    with RunStore() as store:
        store.create_run(config, classes=("negative", "positive", "surprise"), n_folds=3, n_samples=9, run_id="r")
        with store.tx() as c:
            c.execute("UPDATE runs SET pid=?, host=? WHERE id='r'", me)
    path = tmp_path / "fold_000.pt"

    def save(model: nn.Module, guard) -> Path:
        return save_fold_checkpoint(path, model, model_name="baseline", model_config={}, config_json="{}",
                                    config_hash="h", fold=0, test_subjects=["s1"], guard=guard)

    with RunStore(owner=me) as store:
        save(nn.Linear(2, 2), store.owned("r"))  # still ours: written
    kept = path.read_bytes()
    with RunStore() as store, store.tx() as c:  # another process resumes the run
        c.execute("UPDATE runs SET pid=?, host='elsewhere.example' WHERE id='r'", (me[0] + 1,))
    with RunStore(owner=me) as store, pytest.raises(RunTakenOver, match="r was taken over"):
        save(nn.Linear(2, 2), store.owned("r"))
    assert path.read_bytes() == kept and sorted(p.name for p in tmp_path.iterdir()) == ["clips", "fold_000.pt"]
    assert load_fold_checkpoint(path)["fold"] == 0
