"""Background jobs: a queue in the run store, worker processes, a tiny scheduler.

Why the state lives in SQLite and not in the dashboard: a browser tab can be
reloaded or closed and the Streamlit server restarted while a LOSO run takes
an hour. Every fact about a job (config, status, pid, heartbeat, progress,
cancel flag, error) is a row of the ``jobs`` table of the run store, so the
dashboard, the ``mer`` CLI and the workers share one queue and any of them
can be restarted.

Life of a job::

    submit() -> queued --kick()--> running --worker--> done | failed | cancelled
                                      |  cancel()          ^
                                      +-> cancelling ------+
    failed / cancelled --resume()--> queued (same job id, same run id)

* ``submit`` pre-assigns the run id, so ``resume`` continues the same run
  and the engine skips the folds already stored.
* ``kick`` (called after a submit or a resume, by a finishing worker, when
  the dashboard server starts and by ``mer kick``; never by a page that only
  reads) first marks stale jobs, then starts queued jobs in order (priority,
  then submission order) up to :func:`max_concurrent`. Claiming a job and
  starting its process happen inside one ``BEGIN IMMEDIATE`` transaction
  (:meth:`RunStore.start_next_job`), so two concurrent kicks never start a job twice.
* A worker is ``python -m mer_core.jobs.worker JOB_ID`` started with
  ``subprocess.Popen`` in a new session (never a thread or a fork of the
  caller, which may be Streamlit); its output goes to the job's log file.
* A job is *stale* when it says running but its process is gone (or a
  zombie) and its heartbeat is older than the stale age; it is then marked
  failed with the reason and is resumable (:mod:`mer_core.store.liveness`
  holds the heartbeat, the stale rule and the cancel flag; every statement on
  the jobs table is in :mod:`mer_core.store.jobs`).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pandas as pd

from mer_core.config import ExperimentConfig
from mer_core.errors import MerError
from mer_core.paths import cache_root, repo_root
from mer_core.store.db import RunStore, new_run_id, using_store
from mer_core.store.jobs import EXPLAIN_REPORT, FINISHED, SPOTTING
from mer_core.store.liveness import process_alive

# Popen objects of workers this process started: polled by kick() so that
# finished workers are reaped (no zombies in a long-lived Streamlit server).
_CHILDREN: dict[int, subprocess.Popen] = {}

JOB_COLUMNS = ["id", "kind", "status", "name", "model", "dataset", "protocol", "run_id", "progress", "fold", "n_folds",
               "folds_done", "epoch", "epochs", "loss", "eta_s", "stage", "message", "created", "started",
               "finished", "pid", "attempts", "resumable", "priority", "seq", "error"]


# --- settings ------------------------------------------------------------------
def jobs_dir() -> Path:
    """``cache/jobs/``: one log file per job (``<job id>.log``)."""
    path = cache_root() / "jobs"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _visible_gpus() -> list[str]:
    """GPU ids a worker may use, without importing torch in the caller (Streamlit) when avoidable."""
    env = os.environ.get("CUDA_VISIBLE_DEVICES")
    if env is not None:
        return [g.strip() for g in env.split(",") if g.strip() and g.strip() != "-1"]
    if "torch" in sys.modules:
        try:
            return [str(i) for i in range(sys.modules["torch"].cuda.device_count())]
        except Exception:  # pragma: no cover - a broken CUDA install counts as no GPU
            return []
    gpus = Path("/proc/driver/nvidia/gpus")
    return [str(i) for i in range(len(list(gpus.iterdir())))] if gpus.is_dir() else []


def max_concurrent() -> int:
    """How many jobs may run at once: env MER_MAX_JOBS, else one per GPU, else 1."""
    env = os.environ.get("MER_MAX_JOBS", "").strip()
    if env:
        try:
            return max(1, int(env))
        except ValueError:
            raise MerError(f"MER_MAX_JOBS={env!r}: expected a positive integer") from None
    return max(1, len(_visible_gpus()))


# --- reading -----------------------------------------------------------------
def get_job(store: RunStore, job_id: str) -> dict[str, Any]:
    """One job as a dict (config parsed); accepts a unique id prefix; raises MerError if unknown."""
    return store.get_job(job_id)


def list_jobs(store: RunStore, *, limit: int | None = None) -> pd.DataFrame:
    """Jobs, the active and queued ones first (in start order), then history newest first."""
    rows = store.list_jobs(limit)
    return pd.DataFrame([{k: r.get(k) for k in JOB_COLUMNS} for r in rows], columns=JOB_COLUMNS)


def log_tail(job: dict[str, Any], lines: int = 40) -> str:
    """The last ``lines`` lines of a job's log ('' when there is no log yet)."""
    path = Path(job.get("log_path") or "")
    if not path.is_file():
        return ""
    with path.open("rb") as fh:
        fh.seek(0, os.SEEK_END)
        size = fh.tell()
        fh.seek(max(0, size - 64 * 1024))
        text = fh.read().decode("utf-8", errors="replace")
    # tqdm redraws with carriage returns: keep the last state of each line
    out = [ln.rstrip("\r").rsplit("\r", 1)[-1] for ln in text.rstrip("\n").split("\n")]
    return "\n".join(out[-lines:])


# --- submitting, cancelling, resuming ------------------------------------------
def submit(config: ExperimentConfig, *, store: RunStore | None = None, name: str = "", priority: int = 0,
           start: bool = True) -> str:
    """Queue ``config`` (completed: class set and model input resolved); returns the job id.

    ``start`` kicks the scheduler at once.
    """
    from mer_core.training.experiment import complete_config  # lazy: loads torch (about 2 s)

    if not isinstance(config, ExperimentConfig):
        raise MerError(f"submit() needs an ExperimentConfig, got {type(config).__name__}")
    config = complete_config(config)
    with using_store(store) as store:
        return _queued(store, start, config.to_json(), new_run_id(config.model), name=name, priority=priority)


def _queued(store: RunStore, start: bool, config_json: str, run_id: str, **job: Any) -> str:
    """Add a job (its log under the jobs folder); kick the scheduler when ``start``; its id."""
    job_id = store.add_job(config_json, run_id, log_dir=jobs_dir(), **job)
    if start:
        kick(store)
    return job_id


# kind -> worker module (an experiment: the plain mer_core.jobs.worker)
WORKERS = {EXPLAIN_REPORT: "mer_core.jobs.report_job", SPOTTING: "mer_core.jobs.spot_job"}


def submit_explain_report(run_id: str, report: dict[str, Any] | None = None, *, store: RunStore | None = None,
                          priority: int = 0, start: bool = True) -> str:
    """Queue the explanation report of a finished run (``report``: ReportConfig settings); returns the job id.

    The job's ``run_id`` is the explained run (nothing new is trained); its
    kind is ``explain_report`` and its config ``{"run", "report", "model", "dataset", "protocol"}``.
    """
    from mer_core.explain.report import ReportConfig  # lazy: loads torch (about 2 s)

    cfg = ReportConfig.from_dict(dict(report or {}))
    with using_store(store) as store:
        run = store.get_run(run_id)
        if run["status"] in ("running", "queued"):
            raise MerError(f"run {run_id} is {run['status']}; explain it once its folds are stored")
        config = {"run": run["id"], "report": cfg.as_dict(), "model": run["model"], "dataset": run["dataset"],
                  "protocol": "explanation report"}
        return _queued(store, start, json.dumps(config), run["id"], name=f"explanation report of {run['id']}",
                       priority=priority, kind=EXPLAIN_REPORT)


def submit_spotting(config: Any, *, store: RunStore | None = None, name: str = "", priority: int = 0,
                    start: bool = True) -> str:
    """Queue a spotting LOSO (a :class:`mer_core.spotting.loso.SpotConfig`); returns the job id.

    The job's ``run_id`` is the spotting run it will write (pre-assigned, so a
    resumed job keeps the folds already stored); its kind is ``spotting``.
    """
    from mer_core.spotting.loso import SpotConfig, new_spot_run_id  # lazy: loads scikit-learn and scipy (about 1 s)

    if not isinstance(config, SpotConfig):
        raise MerError(f"submit_spotting() needs a SpotConfig, got {type(config).__name__}")
    with using_store(store) as store:
        return _queued(store, start, config.job_json(), new_spot_run_id(config.spotter), kind=SPOTTING,
                       priority=priority, name=name or f"spotting ({config.spotter}) on {config.dataset}")


def cancel(store: RunStore, job_id: str) -> str:
    """Ask a job to stop; returns its new status.

    A queued job is cancelled at once. A running job gets its cancel flag set
    (status 'cancelling'), and an experiment's run its flag too: its worker
    (which reads the job's flag every second) and every process training its
    folds (which read the run's flag at most every ``CANCEL_POLL_S`` between
    batches) stop, keep the folds already finished and mark the job 'cancelled'.
    """
    return store.cancel_job(job_id)


def resume(store: RunStore, job_id: str, *, start: bool = True) -> str:
    """Re-queue a failed or cancelled job (same job id and run id); finished folds are kept.

    A job whose stored config names a removed executor is refused (one line naming the one to use).
    """
    from mer_core.training.experiment import check_executor  # lazy: loads torch (about 2 s)

    job = get_job(store, job_id)
    check_executor(str(job["config"].get("executor", "")))
    if store.has_run(job["run_id"]):
        store.check_run_free(job["run_id"])  # a `mer run --resume` of its run still training elsewhere
    store.requeue_job(job["id"])
    if start:
        kick(store)
    return "queued"


# --- liveness ----------------------------------------------------------------------
def pid_alive(pid: int | None, job_id: str | None = None) -> bool:
    """True when ``pid`` is a live (non-zombie) worker (of ``job_id``); a finished child of ours is reaped."""
    _reap_children()
    return process_alive(pid, job_id)


def _reap_children() -> None:
    for pid, proc in list(_CHILDREN.items()):
        if proc.poll() is not None:
            _CHILDREN.pop(pid, None)


def mark_stale(store: RunStore, *, stale_after: float | None = None) -> list[str]:
    """Jobs and runs whose process died marked failed (resumable): :meth:`RunStore.mark_stale`; their ids."""
    _reap_children()
    return store.mark_stale(stale_after)


# --- scheduler -------------------------------------------------------------------
def _launch(job_id: str, log_path: Path, gpu: str | None, *, module: str = "mer_core.jobs.worker") -> subprocess.Popen:
    """Start a worker process for ``job_id`` in its own session, output appended to its log."""
    env = dict(os.environ)
    env.setdefault("PYTHONUNBUFFERED", "1")
    if gpu is not None:
        env["CUDA_VISIBLE_DEVICES"] = gpu
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        log.write(f"\n=== {time.strftime('%Y-%m-%d %H:%M:%S')} starting worker for job {job_id} ===\n".encode())
        log.flush()
        return subprocess.Popen([sys.executable, "-m", module, job_id], cwd=str(repo_root()), env=env,
                                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True, close_fds=True)


def kick(store: RunStore | None = None, *, limit: int | None = None) -> list[str]:
    """Mark stale jobs, then start queued jobs in order up to the concurrency limit; returns started ids.

    Cheap when there is nothing to do (one read). Safe to call from several
    processes at once: each claim is an exclusive transaction.
    """
    with using_store(store) as store:
        _reap_children()
        counts = store.job_counts()
        if counts.get("running") or counts.get("cancelling"):
            store.mark_stale()
        if not counts.get("queued"):
            return []
        limit = max_concurrent() if limit is None else limit
        gpus = _visible_gpus()

        def launch(job: dict[str, Any], gpu: int | None) -> tuple[int, str]:
            log_path = Path(job["log_path"] or jobs_dir() / f"{job['id']}.log")
            # report and spotting jobs run in their own worker modules; experiments keep the plain call
            extra = {"module": WORKERS[job["kind"]]} if job["kind"] in WORKERS else {}
            proc = _launch(job["id"], log_path, None if gpu is None else gpus[gpu], **extra)
            _CHILDREN[proc.pid] = proc
            return proc.pid, str(log_path)

        started: list[str] = []
        while (got := store.start_next_job(limit, len(gpus), launch)) is not None:
            if got[1]:
                started.append(got[0])
        return started


def wait(store: RunStore, job_id: str, *, timeout: float = 3600.0, poll: float = 0.5) -> dict[str, Any]:
    """Block until a job is finished (done, failed or cancelled); returns the job. For the CLI and tests."""
    deadline = time.time() + timeout
    while True:
        job = get_job(store, job_id)
        if job["status"] in FINISHED:
            return job
        if time.time() > deadline:
            raise MerError(f"job {job_id} still {job['status']} after {timeout:.0f} s")
        kick(store)
        time.sleep(poll)
