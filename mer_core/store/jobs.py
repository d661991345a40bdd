"""The jobs table: the SQL behind the background queue (:mod:`mer_core.jobs.queue`) and its workers.

Every statement on ``jobs`` lives here; the queue decides *what* happens (which
job starts, with which process), this mixin only reads and writes rows.
:class:`JobStoreMixin` is mixed into :class:`mer_core.store.db.RunStore`
(one connection, one migration list).
"""
from __future__ import annotations

import json
import socket
import time
import uuid
from pathlib import Path
from typing import Any, Callable

from mer_core.errors import MerError
from mer_core.store.folders import check_id

ACTIVE = ("running", "cancelling")
FINISHED = ("cancelled", "failed", "done")
EXPERIMENT, EXPLAIN_REPORT, SPOTTING = "experiment", "explain_report", "spotting"  # jobs.kind
KINDS = (EXPERIMENT, EXPLAIN_REPORT, SPOTTING)
# what a worker may write about its job while it runs (JobRunner progress and its final row)
PROGRESS_COLUMNS = frozenset({"status", "stage", "fold", "n_folds", "folds_done", "epoch", "epochs", "loss", "eta_s",
                              "progress", "message", "error", "finished", "resumable", "heartbeat"})

# Launch(job row, gpu slot or None) -> (pid, log path) of the worker process it started; OSError if it could not
Launch = Callable[[dict[str, Any], "int | None"], "tuple[int, str]"]


def job_row(row: Any) -> dict[str, Any]:
    """A jobs row as a dict: config parsed, its model/dataset/protocol, flags as bools."""
    job = dict(row)
    try:
        cfg = json.loads(job["config_json"])
    except (TypeError, json.JSONDecodeError):
        cfg = {}
    cfg = cfg if isinstance(cfg, dict) else {}
    job["config"] = cfg
    job["model"] = cfg.get("model", "")
    job["dataset"] = cfg.get("dataset", "")
    job["protocol"] = cfg.get("protocol", "")
    job["cancel"] = bool(job["cancel"])
    job["resumable"] = bool(job["resumable"])
    return job


class JobStoreMixin:
    """Job methods of RunStore (needs ``self.conn``, ``self.tx`` and ``self.path``)."""

    conn: Any
    path: Any

    # --- reading -------------------------------------------------------------------
    def get_job(self, job_id: str) -> dict[str, Any]:
        """One job (see :func:`job_row`); accepts a unique id prefix; MerError if unknown or ambiguous."""
        job_id = check_id(job_id, "job id")
        row = self.conn.execute("SELECT * FROM jobs WHERE id=?", (job_id,)).fetchone()
        if row is None:  # a prefix, compared literally ('%' and '_' are no wildcards)
            rows = self.conn.execute("SELECT * FROM jobs WHERE substr(id, 1, ?) = ?", (len(job_id), job_id)).fetchall()
            if len(rows) != 1:
                what = "matches several jobs" if rows else "is not a job"
                raise MerError(f"{job_id!r} {what} in the store {self.path}; see `mer jobs` for the ids")
            row = rows[0]
        return job_row(row)

    def list_jobs(self, limit: int | None = None) -> list[dict[str, Any]]:
        """Jobs, the active and queued ones first (in start order), then history newest first."""
        sql = ("SELECT * FROM jobs ORDER BY CASE status WHEN 'running' THEN 0 WHEN 'cancelling' THEN 0 "
               "WHEN 'queued' THEN 1 ELSE 2 END, CASE WHEN status='queued' THEN -priority ELSE 0 END, "
               "CASE WHEN status IN ('queued','running','cancelling') THEN seq ELSE -seq END")
        if limit:
            sql += f" LIMIT {int(limit)}"
        return [job_row(r) for r in self.conn.execute(sql).fetchall()]

    def job_counts(self) -> dict[str, int]:
        """{status: count} of the queued and active jobs."""
        return dict(self.conn.execute(
            "SELECT status, COUNT(*) FROM jobs WHERE status IN ('queued','running','cancelling') GROUP BY status"
        ).fetchall())

    def job_cancel_requested(self, job_id: str) -> bool:
        row = self.conn.execute("SELECT cancel FROM jobs WHERE id=?", (job_id,)).fetchone()
        return bool(row is not None and row[0])

    # --- writing -----------------------------------------------------------------------
    def add_job(self, config_json: str, run_id: str, *, name: str = "", priority: int = 0, kind: str = EXPERIMENT,
                log_dir: Path) -> str:
        """One queued job (next sequence number, a fresh id, log ``log_dir/<id>.log``); returns its id."""
        if kind not in KINDS:
            raise ValueError(f"unknown job kind {kind!r}; expected one of {', '.join(KINDS)}")
        with self.tx() as c:  # type: ignore[attr-defined]
            seq = int(c.execute("SELECT COALESCE(MAX(seq), 0) + 1 FROM jobs").fetchone()[0])
            job_id = f"j{seq}-{uuid.uuid4().hex[:4]}"
            c.execute(
                """INSERT INTO jobs (id, seq, priority, name, created, config_json, run_id, status, log_path, kind)
                   VALUES (?,?,?,?,?,?,?,?,?,?)""",
                (job_id, seq, int(priority), name, time.time(), config_json, run_id, "queued",
                 str(Path(log_dir) / f"{job_id}.log"), kind),
            )
        return job_id

    def cancel_job(self, job_id: str) -> str:
        """Set the job's cancel flag (and its run's, for an experiment); returns the new status.

        A queued job is cancelled at once; a running one becomes 'cancelling' and
        its worker stops at its next poll of the flag.
        """
        job = self.get_job(job_id)
        with self.tx() as c:  # type: ignore[attr-defined]
            status = c.execute("SELECT status FROM jobs WHERE id=?", (job["id"],)).fetchone()[0]
            if status == "queued":
                c.execute("UPDATE jobs SET status='cancelled', cancel=1, resumable=1, finished=?, message=? "
                          "WHERE id=?", (time.time(), "cancelled before it started", job["id"]))
                return "cancelled"
            if status not in ACTIVE:
                raise MerError(f"job {job['id']} is {status}; only queued or running jobs can be cancelled")
            c.execute("UPDATE jobs SET status='cancelling', cancel=1, message='cancel requested' WHERE id=?",
                      (job["id"],))
            if job["kind"] == EXPERIMENT:  # the processes training its folds poll the run's flag
                c.execute("UPDATE runs SET cancel=1 WHERE id=?", (job["run_id"],))
        return "cancelling"

    def requeue_job(self, job_id: str) -> None:
        """A failed or cancelled job queued again (same id and run; cancel flags cleared)."""
        job = self.get_job(job_id)
        with self.tx() as c:  # type: ignore[attr-defined]
            status = c.execute("SELECT status FROM jobs WHERE id=?", (job["id"],)).fetchone()[0]
            if status not in ("failed", "cancelled"):
                raise MerError(f"job {job['id']} is {status}; only failed or cancelled jobs can be resumed")
            c.execute(
                """UPDATE jobs SET status='queued', cancel=0, resumable=0, pid=NULL, heartbeat=NULL, finished=NULL,
                   message='resumed: finished folds are kept', error='' WHERE id=?""",
                (job["id"],),
            )
            if job["kind"] == EXPERIMENT:
                c.execute("UPDATE runs SET cancel=0 WHERE id=?", (job["run_id"],))

    def start_next_job(self, limit: int, n_gpus: int, launch: Launch) -> tuple[str, bool] | None:
        """Start the next queued job if fewer than ``limit`` are active: ``(job id, started)`` or None.

        Picking the job, ``launch`` (which starts its worker process) and marking
        it running happen in one exclusive transaction, so two concurrent callers
        never start a job twice. With several GPUs the job gets the first free
        slot. A launch that raises OSError marks the job failed (``started`` False).
        """
        with self.tx() as c:  # type: ignore[attr-defined]
            active = c.execute("SELECT gpu FROM jobs WHERE status IN ('running','cancelling')").fetchall()
            if len(active) >= limit:
                return None
            row = c.execute("SELECT * FROM jobs WHERE status='queued' ORDER BY priority DESC, seq LIMIT 1").fetchone()
            if row is None:
                return None
            job = job_row(row)
            gpu = None
            if n_gpus > 1:
                used = {a["gpu"] for a in active}
                gpu = next((i for i in range(n_gpus) if i not in used), 0)
            now = time.time()
            try:
                pid, log_path = launch(job, gpu)
            except OSError as exc:
                c.execute("UPDATE jobs SET status='failed', resumable=1, finished=?, error=? WHERE id=?",
                          (now, f"could not start the worker process: {exc}", job["id"]))
                return job["id"], False
            c.execute(
                """UPDATE jobs SET status='running', pid=?, gpu=?, host=?, heartbeat=?, started=?,
                   attempts=attempts + 1, stage='starting', message='worker started', log_path=?,
                   fold=NULL, epoch=NULL, loss=NULL, eta_s=NULL WHERE id=?""",
                (pid, gpu, socket.gethostname(), now, now, str(log_path), job["id"]),
            )
        return job["id"], True

    def claim_job(self, job_id: str, pid: int) -> dict[str, Any] | None:
        """Make process ``pid`` the job's worker; None when the job was cancelled before it started.

        Refused (MerError) for a finished job or one another live worker holds.
        """
        job = self.get_job(job_id)
        now = time.time()
        with self.tx() as c:  # type: ignore[attr-defined]
            row = c.execute("SELECT status, pid FROM jobs WHERE id=?", (job["id"],)).fetchone()
            status, owner = row["status"], row["pid"]
            if status == "cancelling" and owner in (None, pid):
                c.execute("UPDATE jobs SET status='cancelled', resumable=1, finished=?, message=? WHERE id=?",
                          (now, "cancelled before training started", job["id"]))
                return None
            queued = status == "queued"
            if queued or (status == "running" and owner in (None, pid)):
                c.execute(
                    """UPDATE jobs SET status='running', pid=?, host=?, heartbeat=?, started=COALESCE(?, started),
                       attempts=attempts + ?, stage='loading', message='loading the dataset', error='' WHERE id=?""",
                    (pid, socket.gethostname(), now, now if queued else None, int(queued), job["id"]),
                )
                claimed = True
            else:
                claimed = False
        if claimed:
            return self.get_job(job["id"])
        if status in FINISHED:
            raise MerError(f"job {job['id']} is {status}; re-queue it with `mer resume {job['id']}`"
                           if status != "done" else f"job {job['id']} is already done")
        raise MerError(f"job {job['id']} is {status}" + (f" (worker pid {owner})" if owner else "")
                       + "; refusing to start a second worker")

    def update_job(self, job_id: str, **fields: Any) -> None:
        """Write a worker's progress or final fields (names from :data:`PROGRESS_COLUMNS`)."""
        unknown = set(fields) - PROGRESS_COLUMNS
        if unknown:
            raise ValueError(f"unknown job field(s) {sorted(unknown)}; valid: {sorted(PROGRESS_COLUMNS)}")
        cols = ", ".join(f"{k}=?" for k in fields)
        with self.tx() as c:  # type: ignore[attr-defined]
            c.execute(f"UPDATE jobs SET {cols} WHERE id=?", (*fields.values(), job_id))
