"""Background jobs end to end: real worker processes on a tiny clip manifest.

Workers inherit MER_CACHE from the conftest's monkeypatched environment, so
they write this test's own store. Waits are bounded (generous) timeouts, never
timing assertions.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil
import pytest

from fixtures_clips import make_clip_manifest
from mer_core.config import ExperimentConfig
from mer_core.errors import MerError
from mer_core.jobs import queue as jobs
from mer_core.jobs import plan as plan_mod
from mer_core.store.db import RunStore
from mer_core.store.jobs import FINISHED
from mer_core.jobs.worker import run_job


@pytest.fixture
def manifest(tmp_path) -> Path:
    return make_clip_manifest(tmp_path / "clips", subjects=3, clips_per_subject=6, size=32, frames=5)


@pytest.fixture(autouse=True)
def one_thread_workers(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.setenv("MER_TORCH_THREADS", "1")
    monkeypatch.setenv("MER_MAX_JOBS", "1")


def cfg(manifest: Path, **kw) -> ExperimentConfig:
    base = dict(dataset="manifest", dataset_options={"manifest": str(manifest)}, class_set="native",
                model="baseline", epochs=1, batch_size=8, record_oracle=False,
                executor="sequential", workers=1)  # folds in order: the tests reason about fold 0
    base.update(kw)
    return ExperimentConfig.from_dict(base)


def wait_for(store: RunStore, job_id: str, pred, timeout: float = 90.0) -> dict:
    """Poll a job until ``pred(job)`` holds; fails the test (with the log) on timeout or an early finish."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        job = jobs.get_job(store, job_id)
        if pred(job):
            return job
        if job["status"] in FINISHED:
            pytest.fail(f"job finished as {job['status']} before the expected state: {job['error']}\n"
                        + jobs.log_tail(job))
        time.sleep(0.1)
    pytest.fail(f"job {job_id} did not reach the expected state in {timeout} s:\n" + jobs.log_tail(job))


def test_two_jobs_queue_run_in_order_and_store_results(manifest):
    from apptest_helpers import page_app

    with RunStore() as store:
        a = jobs.submit(cfg(manifest), store=store, name="first")
        b = jobs.submit(cfg(manifest, seed=1), store=store, name="second")
        ja, jb = jobs.get_job(store, a), jobs.get_job(store, b)
        assert ja["status"] == "running" and ja["pid"]  # started by submit's kick
        assert jb["status"] == "queued"  # max one concurrent job
        assert list(jobs.list_jobs(store)["id"]) == [a, b]
        # the dashboard renders promptly while a job runs and another waits
        at = page_app("jobs", job=a)
        assert not at.exception, at.exception
        assert any(f"Job `{a}`" in m.value for m in at.markdown)
        assert set(at.dataframe[0].value["status"]) & {"running", "queued"}
        seen = {jobs.get_job(store, a)["status"]}
        jb = jobs.wait(store, b, timeout=120)  # the finishing worker of a starts b
        ja = jobs.get_job(store, a)
        seen.add(ja["status"])
        assert seen == {"running", "done"}
        assert ja["status"] == "done" and jb["status"] == "done", (ja["error"], jb["error"])
        assert jb["started"] >= ja["finished"] - 0.01  # in order, never together
        for job in (ja, jb):
            run = store.get_run(job["run_id"])
            assert run["status"] == "done" and run["n_folds"] == 3
            assert len(store.predictions(job["run_id"])) == 18
            assert store.completed_folds(job["run_id"]) == {0, 1, 2}
            assert job["progress"] == pytest.approx(1.0) and job["folds_done"] == 3 and job["attempts"] == 1
        assert run["name"] == "second"
        log = jobs.log_tail(ja, 200)
        assert "fold 3/3 done" in log and f"job {a} done" in log


def test_sigkill_is_stale_resume_keeps_folds_cancel_stops(manifest, monkeypatch):
    with RunStore() as store:
        job_id = jobs.submit(cfg(manifest, epochs=30), store=store)
        job = wait_for(store, job_id, lambda j: j["folds_done"] >= 1)
        run_id = job["run_id"]
        fold0 = store.folds(run_id).set_index("fold_index").loc[0]
        epochs0 = len(store.epochs(run_id).query("fold_index == 0"))

        os.kill(job["pid"], signal.SIGKILL)
        monkeypatch.setenv("MER_JOB_STALE_S", "1")
        time.sleep(1.5)
        jobs.kick(store)  # every status read marks dead workers
        dead = jobs.get_job(store, job_id)
        assert dead["status"] == "failed" and dead["resumable"]
        assert f"worker died (pid {job['pid']} gone" in dead["error"]
        assert store.get_run(run_id)["status"] == "failed"
        kept = store.completed_folds(run_id)
        assert 0 in kept and len(kept) < 3

        jobs.resume(store, job_id)
        resumed = wait_for(store, job_id, lambda j: j["attempts"] == 2 and j["status"] == "running"
                           and j["fold"] is not None and j["fold"] not in kept and (j["epoch"] or 0) >= 1)
        assert resumed["run_id"] == run_id and resumed["pid"] != job["pid"]
        after = store.folds(run_id).set_index("fold_index").loc[0]
        assert after["started"] == fold0["started"] and after["status"] == "done"  # fold 0 was not retrained
        assert len(store.epochs(run_id).query("fold_index == 0")) == epochs0

        assert jobs.cancel(store, job_id) == "cancelling"
        done = jobs.wait(store, job_id, timeout=60)
        assert done["status"] == "cancelled", done["error"]
        assert done["resumable"] and "cancel requested" in done["message"]
        completed = store.completed_folds(run_id)  # a fold may finish while the cancel travels
        assert kept <= completed and len(completed) < 3  # finished folds are kept, the interrupted one is not
        assert store.get_run(run_id)["status"] == "cancelled"
        deadline = time.time() + 30  # the worker exits after recording the cancel
        while jobs.pid_alive(resumed["pid"], job_id) and time.time() < deadline:
            time.sleep(0.1)
        assert not jobs.pid_alive(resumed["pid"], job_id)


def test_a_raising_worker_stores_traceback_and_fails(manifest, monkeypatch):
    from mer_core.training import engine

    def boom(*args, **kwargs):
        raise RuntimeError("boom inside the engine")

    monkeypatch.setattr(engine, "run_experiment", boom)
    with RunStore() as store:
        job_id = jobs.submit(cfg(manifest), store=store, start=False)
        assert run_job(job_id, store=store, kick_next=False) == 1
        job = jobs.get_job(store, job_id)
    assert job["status"] == "failed" and job["resumable"] and job["finished"]
    assert "Traceback (most recent call last)" in job["error"] and "RuntimeError: boom inside the engine" in job["error"]
    assert "boom inside the engine" in job["message"]


def test_cancel_and_resume_rules_without_processes(manifest):
    with RunStore() as store:
        a = jobs.submit(cfg(manifest), store=store, start=False)
        assert jobs.cancel(store, a) == "cancelled"  # a queued job never starts
        assert jobs.get_job(store, a)["status"] == "cancelled"
        with pytest.raises(MerError, match="only queued or running"):
            jobs.cancel(store, a)
        assert jobs.resume(store, a, start=False) == "queued"
        with pytest.raises(MerError, match="only failed or cancelled"):
            jobs.resume(store, a, start=False)
        with pytest.raises(MerError, match="is not a job"):
            jobs.get_job(store, "nope")
        assert jobs.get_job(store, a.split("-")[0])["id"] == a  # unique prefix


def test_concurrent_kicks_start_a_job_once(manifest, monkeypatch):
    launched = []

    class FakeProc:
        def __init__(self):
            self.pid = 10**7 + len(launched)

        def poll(self):
            return None

    def fake_launch(job_id, log_path, gpu):
        launched.append(job_id)
        time.sleep(0.05)
        return FakeProc()

    monkeypatch.setattr(jobs, "_launch", fake_launch)
    with RunStore() as store:
        job_id = jobs.submit(cfg(manifest), store=store, start=False)
    barrier = threading.Barrier(4)

    def kick():
        with RunStore() as s:
            barrier.wait()
            jobs.kick(s, limit=5)

    threads = [threading.Thread(target=kick) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert launched == [job_id]
    with RunStore() as store:
        assert jobs.get_job(store, job_id)["status"] == "running"


def test_stale_needs_a_dead_pid_and_an_old_heartbeat(manifest):
    with RunStore() as store:
        a = jobs.submit(cfg(manifest), store=store, start=False)
        b = jobs.submit(cfg(manifest), store=store, start=False)
        live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", a])
        dead = subprocess.Popen([sys.executable, "-c", "pass"])
        dead.wait()
        try:
            old = time.time() - 100
            with store.tx() as c:
                c.execute("UPDATE jobs SET status='running', pid=?, heartbeat=? WHERE id=?", (live.pid, old, a))
                c.execute("UPDATE jobs SET status='running', pid=?, heartbeat=? WHERE id=?", (dead.pid, time.time(), b))
            assert jobs.mark_stale(store, stale_after=30) == []  # a: alive; b: fresh heartbeat
            with store.tx() as c:
                c.execute("UPDATE jobs SET heartbeat=? WHERE id=?", (old, b))
            assert jobs.mark_stale(store, stale_after=30) == [b]
            assert jobs.get_job(store, a)["status"] == "running"
            assert "worker died" in jobs.get_job(store, b)["error"]
        finally:
            live.kill()
            live.wait()
        assert jobs.mark_stale(store, stale_after=30) == [a]


def test_plan_counts_folds_and_estimates_time(manifest):
    p = plan_mod.plan(cfg(manifest, epochs=10))
    assert (p["n_samples"], p["n_subjects"], p["n_folds"]) == (18, 3, 3)
    assert p["classes"] == {"negative": 6, "positive": 6, "surprise": 6}
    est = p["estimate"]
    seconds, _ = plan_mod.estimate_seconds("baseline", "cpu", n_samples=18, n_folds=3, epochs=10,
                                           executor="sequential", workers=1)
    assert est["train_s"] == pytest.approx(seconds)  # start-up + folds x (set-up + epochs x training clips x cost)
    assert p["estimated_seconds"] == pytest.approx(est["train_s"] + est["preprocess_s"] + est["pretrain_s"])
    assert est["n_uncached"] == 18 and est["preprocess_s"] > 0  # nothing cached yet: every clip counted cold
    with pytest.raises(MerError):
        plan_mod.plan(cfg(manifest.parent / "missing.csv"))


def test_sigterm_stops_the_worker_cleanly(manifest, monkeypatch):
    """SIGTERM sets the same stop flag as Cancel: the engine's should_stop turns true, the job is 'cancelled'."""
    from mer_core.training import engine
    from mer_core.training.trainer import Cancelled

    seen = {}

    def fake_run(config, *, store, run_id, progress, should_stop, name):
        assert not should_stop()
        os.kill(os.getpid(), signal.SIGTERM)  # what `kill PID` or a shutting-down machine sends
        deadline = time.time() + 10
        while not should_stop() and time.time() < deadline:
            time.sleep(0.01)
        seen["stopped"] = should_stop()
        raise Cancelled()

    monkeypatch.setattr(engine, "run_experiment", fake_run)
    before = signal.getsignal(signal.SIGTERM)
    with RunStore() as store:
        job_id = jobs.submit(cfg(manifest), store=store, start=False)
        assert run_job(job_id, store=store, kick_next=False) == 0
        job = jobs.get_job(store, job_id)
    assert seen == {"stopped": True}
    assert job["status"] == "cancelled" and "SIGTERM" in job["message"] and job["resumable"]
    assert signal.getsignal(signal.SIGTERM) == before  # the handler is restored


def test_cli_submit_jobs_cancel_resume_share_the_queue(manifest, capsys):
    from mer_core.cli import main

    args = ["submit", "--dataset", "manifest", "--dataset-option", f"manifest={manifest}", "--class-set", "native",
            "--epochs", "3", "--set", "focal_gamma=1.5", "--no-start", "--name", "cli"]
    assert main(args) == 0
    out = capsys.readouterr().out
    job_id = out.split()[1]
    with RunStore() as store:
        job = jobs.get_job(store, job_id)
    assert job["status"] == "queued" and job["config"]["epochs"] == 3 and job["config"]["focal_gamma"] == 1.5
    assert job["run_id"] in out and job["name"] == "cli"
    assert main(["cancel", job_id]) == 0 and "cancelled" in capsys.readouterr().out
    assert main(["jobs", "--limit", "5"]) == 0
    listing = capsys.readouterr().out
    assert job_id in listing and "cancelled" in listing
    assert main(["job", job_id]) == 0 and "[cancelled]" in capsys.readouterr().out
    assert main(["cancel", job_id]) == 2  # a MerError: one line, no traceback
    assert "only queued or running" in capsys.readouterr().err
    assert main(["worker", job_id]) == 2 and "mer resume" in capsys.readouterr().err


def test_demo_jobs_are_queued_only_into_an_empty_store():
    from mer_core.jobs.demo import queue_demo_jobs

    with RunStore() as store:
        queued = queue_demo_jobs(store, start=False)
        assert len(queued) == 2
        assert {jobs.get_job(store, j)["status"] for j in queued} == {"queued"}
        assert {ExperimentConfig.from_json(jobs.get_job(store, j)["config_json"]).model for j in queued} == {
            "ststnet", "baseline"}
        assert queue_demo_jobs(store, start=False) == []  # a store with anything in it is left alone


def _descendants(pid: int) -> set[int]:
    """Every process below ``pid`` (pool workers, the forkserver)."""
    try:
        return {p.pid for p in psutil.Process(pid).children(recursive=True)}
    except psutil.NoSuchProcess:
        return set()


def test_sigkill_of_a_process_executor_job_leaves_no_orphan_training(manifest):
    with RunStore() as store:
        job_id = jobs.submit(cfg(manifest, epochs=400, executor="process", workers=2), store=store)
        job = wait_for(store, job_id, lambda j: (j["epoch"] or 0) >= 2, timeout=120)
        children = _descendants(job["pid"])
        assert children, "the process executor started no pool workers"
        os.kill(job["pid"], signal.SIGKILL)
        deadline = time.time() + 20
        while time.time() < deadline and any(jobs.pid_alive(p) for p in children):
            time.sleep(0.2)
        alive = [p for p in children if jobs.pid_alive(p)]
        assert not alive, f"pool processes outlived their job: {alive}"
        n = len(store.epochs(job["run_id"]))
        time.sleep(1.5)
        assert len(store.epochs(job["run_id"])) == n  # nobody writes epoch rows for the dead job
