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
* ``kick`` (called after a submit, on every dashboard status read and by a
  finishing worker) first marks stale jobs, then starts queued jobs in order
  (priority, then submission order) up to :func:`max_concurrent`. Claiming a
  job and starting its process happen inside one ``BEGIN IMMEDIATE``
  transaction, so two concurrent kicks never start a job twice.
* A worker is ``python -m mer_core.jobs.worker JOB_ID`` started with
  ``subprocess.Popen`` in a new session (never a thread or a fork of the
  caller, which may be Streamlit); its output goes to the job's log file.
* A job is *stale* when it says running but its process is gone (or a
  zombie) and its heartbeat is older than :func:`stale_after_s`; it is then
  marked failed with the reason and is resumable.
"""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pandas as pd

from mer_core.config import ExperimentConfig
from mer_core.errors import MerError
from mer_core.parallel import pid_alive as process_alive
from mer_core.paths import cache_root, repo_root
from mer_core.store.db import RunStore, new_run_id
from mer_core.store.folders import check_id

STATUSES = ("queued", "running", "cancelling", "cancelled", "failed", "done")
ACTIVE = ("running", "cancelling")
FINISHED = ("cancelled", "failed", "done")
HEARTBEAT_S = 2.0  # how often a worker writes its heartbeat
DEFAULT_STALE_S = 15.0  # a heartbeat older than this (and no process) = the worker died

# Popen objects of workers this process started: polled by kick() so that
# finished workers are reaped (no zombies in a long-lived Streamlit server).
_CHILDREN: dict[int, subprocess.Popen] = {}

JOB_COLUMNS = ["id", "status", "name", "model", "dataset", "protocol", "run_id", "progress", "fold", "n_folds",
               "folds_done", "epoch", "epochs", "loss", "eta_s", "stage", "message", "created", "started",
               "finished", "pid", "attempts", "resumable", "priority", "seq", "error"]


# --- settings ------------------------------------------------------------------
def jobs_dir() -> Path:
    """``cache/jobs/``: one log file per job (``<job id>.log``)."""
    path = cache_root() / "jobs"
    path.mkdir(parents=True, exist_ok=True)
    return path


def stale_after_s() -> float:
    """Heartbeat age after which a job whose process is gone counts as dead (env MER_JOB_STALE_S)."""
    try:
        return float(os.environ.get("MER_JOB_STALE_S", DEFAULT_STALE_S))
    except ValueError:
        return DEFAULT_STALE_S


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
def _row(row: Any) -> dict[str, Any]:
    job = dict(row)
    try:
        cfg = json.loads(job["config_json"])
    except (TypeError, json.JSONDecodeError):
        cfg = {}
    job["config"] = cfg
    job["model"] = cfg.get("model", "")
    job["dataset"] = cfg.get("dataset", "")
    job["protocol"] = cfg.get("protocol", "")
    job["cancel"] = bool(job["cancel"])
    job["resumable"] = bool(job["resumable"])
    return job


def get_job(store: RunStore, job_id: str) -> dict[str, Any]:
    """One job as a dict (config parsed); accepts a unique id prefix; raises MerError if unknown."""
    job_id = check_id(job_id, "job id")
    row = store.conn.execute("SELECT * FROM jobs WHERE id=?", (job_id,)).fetchone()
    if row is None:  # a prefix, compared literally ('%' and '_' are no wildcards)
        rows = store.conn.execute("SELECT * FROM jobs WHERE substr(id, 1, ?) = ?",
                                  (len(job_id), job_id)).fetchall()
        if len(rows) != 1:
            what = "matches several jobs" if rows else "is not a job"
            raise MerError(f"{job_id!r} {what} in the store {store.path}; see `mer jobs` for the ids")
        row = rows[0]
    return _row(row)


def list_jobs(store: RunStore, *, limit: int | None = None) -> pd.DataFrame:
    """Jobs, the active and queued ones first (in start order), then history newest first."""
    sql = ("SELECT * FROM jobs ORDER BY CASE status WHEN 'running' THEN 0 WHEN 'cancelling' THEN 0 "
           "WHEN 'queued' THEN 1 ELSE 2 END, CASE WHEN status='queued' THEN -priority ELSE 0 END, "
           "CASE WHEN status IN ('queued','running','cancelling') THEN seq ELSE -seq END")
    if limit:
        sql += f" LIMIT {int(limit)}"
    rows = [_row(r) for r in store.conn.execute(sql).fetchall()]
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
def _insert_job(store: RunStore, config_json: str, run_id: str, name: str, priority: int) -> str:
    """One queued row in the jobs table (next sequence number, a fresh id, its log path); returns the id."""
    with store.tx() as c:
        seq = int(c.execute("SELECT COALESCE(MAX(seq), 0) + 1 FROM jobs").fetchone()[0])
        job_id = f"j{seq}-{uuid.uuid4().hex[:4]}"
        c.execute(
            """INSERT INTO jobs (id, seq, priority, name, created, config_json, run_id, status, log_path)
               VALUES (?,?,?,?,?,?,?,?,?)""",
            (job_id, seq, int(priority), name, time.time(), config_json, run_id, "queued",
             str(jobs_dir() / f"{job_id}.log")),
        )
    return job_id


def submit(config: ExperimentConfig, *, store: RunStore | None = None, name: str = "", priority: int = 0,
           start: bool = True) -> str:
    """Queue ``config`` (completed: class set and model input resolved); returns the job id.

    ``start`` kicks the scheduler at once.
    """
    from mer_core.training.experiment import complete_config

    if not isinstance(config, ExperimentConfig):
        raise MerError(f"submit() needs an ExperimentConfig, got {type(config).__name__}")
    config = complete_config(config)
    own = store is None
    store = store or RunStore()
    try:
        job_id = _insert_job(store, config.to_json(), new_run_id(config.model), name, priority)
        if start:
            kick(store)
        return job_id
    finally:
        if own:
            store.close()


REPORT_JOB = "explain_report"  # config_json["job"] of an explanation-report job (else: a LOSO experiment)
REPORT_WORKER = "mer_core.jobs.report_job"  # the worker module of report jobs


def submit_explain_report(run_id: str, report: dict[str, Any] | None = None, *, store: RunStore | None = None,
                          priority: int = 0, start: bool = True) -> str:
    """Queue the explanation report of a finished run (``report``: ReportConfig settings); returns the job id.

    The job's ``run_id`` is the explained run (nothing new is trained); its
    config is ``{"job": "explain_report", "run", "report", "model", "dataset"}``.
    """
    from mer_core.explain.report import ReportConfig

    cfg = ReportConfig.from_dict(dict(report or {}))
    own = store is None
    store = store or RunStore()
    try:
        run = store.get_run(run_id)
        if run["status"] in ("running", "queued"):
            raise MerError(f"run {run_id} is {run['status']}; explain it once its folds are stored")
        config = {"job": REPORT_JOB, "run": run["id"], "report": cfg.as_dict(), "model": run["model"],
                  "dataset": run["dataset"], "protocol": "explanation report"}
        job_id = _insert_job(store, json.dumps(config), run["id"], f"explanation report of {run['id']}", priority)
        if start:
            kick(store)
        return job_id
    finally:
        if own:
            store.close()


def cancel(store: RunStore, job_id: str) -> str:
    """Ask a job to stop; returns its new status.

    A queued job is cancelled at once. A running job gets its cancel flag set
    (status 'cancelling') and, when local, a SIGUSR1; its worker stops between
    batches, keeps the folds already finished and marks the job 'cancelled'.
    """
    job = get_job(store, job_id)
    with store.tx() as c:
        status = c.execute("SELECT status FROM jobs WHERE id=?", (job["id"],)).fetchone()[0]
        if status == "queued":
            c.execute("UPDATE jobs SET status='cancelled', cancel=1, resumable=1, finished=?, message=? WHERE id=?",
                      (time.time(), "cancelled before it started", job["id"]))
            return "cancelled"
        if status not in ACTIVE:
            raise MerError(f"job {job['id']} is {status}; only queued or running jobs can be cancelled")
        c.execute("UPDATE jobs SET status='cancelling', cancel=1, message='cancel requested' WHERE id=?",
                  (job["id"],))
    _signal_cancel(store, job["id"])
    return "cancelling"


def _signal_cancel(store: RunStore, job_id: str) -> None:
    """Deliver a cancel at once (SIGUSR1) to a local worker that has installed its handler.

    The flag alone is enough (the worker reads it every second); the signal
    only removes that delay. A worker still importing (stage 'starting') has
    no handler yet, and SIGUSR1 would kill it, so it is left to the flag.
    """
    row = store.conn.execute("SELECT pid, host, stage FROM jobs WHERE id=?", (job_id,)).fetchone()
    usr1 = getattr(signal, "SIGUSR1", None)
    if (usr1 is None or row is None or row["stage"] in ("", "starting") or row["host"] != socket.gethostname()
            or not pid_alive(row["pid"], job_id)):
        return
    try:
        os.kill(int(row["pid"]), usr1)
    except OSError:
        pass


def resume(store: RunStore, job_id: str, *, start: bool = True) -> str:
    """Re-queue a failed or cancelled job (same job id and run id); finished folds are kept.

    A job whose stored config names a removed executor is refused (one line naming the one to use).
    """
    from mer_core.training.experiment import check_executor

    job = get_job(store, job_id)
    check_executor(str(job["config"].get("executor", "")))
    with store.tx() as c:
        status = c.execute("SELECT status FROM jobs WHERE id=?", (job["id"],)).fetchone()[0]
        if status not in ("failed", "cancelled"):
            raise MerError(f"job {job['id']} is {status}; only failed or cancelled jobs can be resumed")
        c.execute(
            """UPDATE jobs SET status='queued', cancel=0, resumable=0, pid=NULL, heartbeat=NULL, finished=NULL,
               message='resumed: finished folds are kept', error='' WHERE id=?""",
            (job["id"],),
        )
    if start:
        kick(store)
    return "queued"


# --- liveness ----------------------------------------------------------------------
def pid_alive(pid: int | None, job_id: str | None = None) -> bool:
    """True when ``pid`` is a live (non-zombie) process, and, if /proc says so, a worker of ``job_id``.

    The command-line check guards against pid reuse after a reboot or a long time.
    """
    if not pid:
        return False
    child = _CHILDREN.get(int(pid))
    if child is not None and child.poll() is not None:
        _CHILDREN.pop(int(pid), None)
        return False
    if not process_alive(int(pid)):
        return False
    if job_id:
        try:
            cmd = Path(f"/proc/{int(pid)}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            return job_id in cmd
        except OSError:
            pass  # no /proc (macOS) or not ours to read: trust the process check
    return True


def _reap_children() -> None:
    for pid, proc in list(_CHILDREN.items()):
        if proc.poll() is not None:
            _CHILDREN.pop(pid, None)


def mark_stale(store: RunStore, *, stale_after: float | None = None) -> list[str]:
    """Mark running jobs whose worker died as failed (resumable); returns their ids."""
    stale_after = stale_after_s() if stale_after is None else stale_after
    store.mark_stale_runs()  # in-process runs (mer loso) whose process died
    host = socket.gethostname()
    now = time.time()
    rows = store.conn.execute(
        "SELECT id, pid, host, heartbeat, started FROM jobs WHERE status IN ('running','cancelling')"
    ).fetchall()
    marked = []
    for r in rows:
        beat = r["heartbeat"] or r["started"] or 0.0
        if now - beat < stale_after:
            continue
        same_host = not r["host"] or r["host"] == host
        if same_host and pid_alive(r["pid"], r["id"]):
            continue
        if not same_host and now - beat < 10 * stale_after:
            continue  # another machine's worker: only a long-silent heartbeat says it died
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(beat)) if beat else "never"
        reason = f"worker died (pid {r['pid']} gone, last heartbeat {when}); resume continues from the stored folds"
        with store.tx() as c:
            n = c.execute(
                """UPDATE jobs SET status='failed', resumable=1, finished=?, error=?, message=?
                   WHERE id=? AND status IN ('running','cancelling') AND COALESCE(heartbeat, started, 0)=?""",
                (now, reason, "worker died", r["id"], r["heartbeat"] or r["started"] or 0.0),
            ).rowcount
            if n:
                c.execute("UPDATE runs SET status='failed', error=? WHERE id=(SELECT run_id FROM jobs WHERE id=?) "
                          "AND status='running'", (reason, r["id"]))
        if n:
            marked.append(r["id"])
    return marked


# --- scheduler -------------------------------------------------------------------
def worker_command(job_id: str, module: str = "mer_core.jobs.worker") -> list[str]:
    return [sys.executable, "-m", module, job_id]


def job_kind(config_json: str) -> str:
    """'explain_report' for an explanation-report job, else 'experiment'."""
    try:
        kind = json.loads(config_json or "{}").get("job")
    except (json.JSONDecodeError, AttributeError):
        kind = None
    return REPORT_JOB if kind == REPORT_JOB else "experiment"


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
        return subprocess.Popen(worker_command(job_id, module), cwd=str(repo_root()), env=env, stdin=subprocess.DEVNULL,
                                stdout=log, stderr=subprocess.STDOUT, start_new_session=True, close_fds=True)


def kick(store: RunStore | None = None, *, limit: int | None = None) -> list[str]:
    """Mark stale jobs, then start queued jobs in order up to the concurrency limit; returns started ids.

    Cheap when there is nothing to do (one read). Safe to call from several
    processes at once: each claim is an exclusive transaction.
    """
    own = store is None
    store = store or RunStore()
    try:
        _reap_children()
        counts = dict(store.conn.execute(
            "SELECT status, COUNT(*) FROM jobs WHERE status IN ('queued','running','cancelling') GROUP BY status"
        ).fetchall())
        if counts.get("running") or counts.get("cancelling"):
            mark_stale(store)
        if not counts.get("queued"):
            return []
        limit = max_concurrent() if limit is None else limit
        gpus = _visible_gpus()
        started: list[str] = []
        while True:
            with store.tx() as c:
                active = c.execute("SELECT gpu FROM jobs WHERE status IN ('running','cancelling')").fetchall()
                if len(active) >= limit:
                    break
                row = c.execute("SELECT id, log_path, config_json FROM jobs WHERE status='queued' "
                                "ORDER BY priority DESC, seq "
                                "LIMIT 1").fetchone()
                if row is None:
                    break
                gpu = None
                if len(gpus) > 1:
                    used = {a["gpu"] for a in active}
                    gpu = next((i for i in range(len(gpus)) if i not in used), 0)
                log_path = Path(row["log_path"] or jobs_dir() / f"{row['id']}.log")
                now = time.time()
                try:
                    # a report job runs in its own worker module; experiments keep the plain call
                    extra = {"module": REPORT_WORKER} if job_kind(row["config_json"]) == REPORT_JOB else {}
                    proc = _launch(row["id"], log_path, None if gpu is None else gpus[gpu], **extra)
                except OSError as exc:
                    c.execute("UPDATE jobs SET status='failed', resumable=1, finished=?, error=? WHERE id=?",
                              (now, f"could not start the worker process: {exc}", row["id"]))
                    continue
                _CHILDREN[proc.pid] = proc
                c.execute(
                    """UPDATE jobs SET status='running', pid=?, gpu=?, host=?, heartbeat=?, started=?,
                       attempts=attempts + 1, stage='starting', message='worker started', log_path=?,
                       fold=NULL, epoch=NULL, loss=NULL, eta_s=NULL WHERE id=?""",
                    (proc.pid, gpu, socket.gethostname(), now, now, str(log_path), row["id"]),
                )
                started.append(row["id"])
        return started
    finally:
        if own:
            store.close()


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
