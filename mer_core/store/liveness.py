"""Liveness and cancel, kept in the store: one heartbeat, one stale rule, one cancel flag.

* **Heartbeat.** A process working on a job or a run beats its rows every
  :data:`HEARTBEAT_S` seconds from one thread (:class:`Heartbeat`; a worker's
  job and the run it trains share that thread), and the same thread reads the
  job's cancel flag once a second.
* **Stale.** :meth:`LivenessStoreMixin.mark_stale` is the one rule for both
  tables: a job or run that says running, whose heartbeat is older than
  :func:`stale_after_s` and whose process is gone (on this machine; a long
  silence on another) is marked failed and resumable.
* **Cancel.** The cancel flag in the store is the one channel: ``jobs.cancel``
  (set by ``mer cancel`` and the Cancel button; for an experiment it sets its
  run's flag too) and ``runs.cancel``, which every process training the run's
  folds polls at most every :data:`CANCEL_POLL_S` seconds between batches
  (:meth:`LivenessStoreMixin.cancel_poll`).
"""
from __future__ import annotations

import os
import socket
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable

import psutil

from mer_core.parallel import pid_alive

HEARTBEAT_S = 2.0  # how often a working process beats its job and run rows
CANCEL_POLL_S = 0.5  # the longest a training process goes without reading its run's cancel flag
STALE_S = 15.0  # a heartbeat older than this (and no process) = the worker or run died


def stale_after_s() -> float:
    """Heartbeat age after which a job or run whose process is gone counts as dead (env MER_STALE_S)."""
    text = os.environ.get("MER_STALE_S") or os.environ.get("MER_JOB_STALE_S")  # the older name still works
    try:
        return float(text) if text else STALE_S
    except ValueError:
        return STALE_S


def process_alive(pid: int | None, job_id: str | None = None) -> bool:
    """``pid`` is a live (non-zombie) process and, where its command line can be read, a worker of ``job_id``.

    The command-line check guards against pid reuse after a reboot or a long time.
    """
    if not pid or not pid_alive(int(pid)):
        return False
    if job_id:
        try:
            return job_id in " ".join(psutil.Process(int(pid)).cmdline())
        except psutil.Error:
            pass  # gone meanwhile, or not ours to read: trust the process check
    return True


def _dead(now: float, beat: float, host: str, pid: int | None, stale_after: float, job_id: str | None) -> bool:
    if now - beat < stale_after:
        return False
    if not host or host == socket.gethostname():
        return not process_alive(pid, job_id)
    return now - beat >= 10 * stale_after  # another machine: only a long silence says it died


def run_holder(run_id: str, row: dict[str, Any], owner: tuple[int, str] | None = None) -> str:
    """Why ``run_id`` cannot be resumed now (another live process trains it), or ``''`` when it can.

    ``row``: the run's status, pid, host, heartbeat and created. On this machine the pid decides (a paused
    process beats no more, yet it is alive and would go on writing); on another one, a heartbeat younger than
    ten stale periods.
    """
    pid, host = row.get("pid"), row.get("host") or ""
    if row.get("status") != "running" or not pid or (owner is not None and (pid, host) == tuple(owner)):
        return ""
    beat = row.get("heartbeat") or row.get("created") or 0.0
    age = max(0.0, time.time() - beat)
    here = not host or host == socket.gethostname()
    if (here and not process_alive(pid)) or (not here and age >= 10 * stale_after_s()):
        return ""
    where = "on this machine" if here else f"on host {host}"
    paused = f"; if it is paused, `kill -CONT {pid}` (or fg) lets it finish" if age > 2 * HEARTBEAT_S + 1 else ""
    return (f"run {run_id} is still being trained by pid {pid} {where} (last heartbeat {age:.0f} s ago{paused}); "
            f"a second process would write the same run: stop that one first (Ctrl-C, or kill {pid}) or let it finish")


class LivenessStoreMixin:
    """Heartbeat, stale and cancel methods of RunStore (needs ``self.conn`` and ``self.tx``)."""

    conn: Any

    # --- heartbeat -----------------------------------------------------------------
    def beat(self, run_id: str, pid: int | None = None) -> None:
        """The run's heartbeat: process ``pid`` of this machine is still working on it.

        Only the run's owner beats it (the process that created or claimed it, see ``RunStore.claim_run``;
        a run nobody owns yet is adopted by its first beat): a process whose run was taken over never makes
        it look alive, nor takes it back.
        """
        with self.tx() as c:  # type: ignore[attr-defined]
            if pid is None:
                c.execute("UPDATE runs SET heartbeat=? WHERE id=?", (time.time(), run_id))
            else:
                host = socket.gethostname()
                c.execute("UPDATE runs SET heartbeat=?, pid=COALESCE(pid, ?), host=CASE WHEN pid IS NULL THEN ? "
                          "ELSE host END WHERE id=? AND (pid IS NULL OR (pid=? AND host=?))",
                          (time.time(), pid, host, run_id, pid, host))

    def beat_job(self, job_id: str) -> None:
        with self.tx() as c:  # type: ignore[attr-defined]
            c.execute("UPDATE jobs SET heartbeat=? WHERE id=?", (time.time(), job_id))

    # --- stale -------------------------------------------------------------------------
    def mark_stale(self, stale_after: float | None = None) -> list[str]:
        """Jobs, then runs, that say running but whose process died: marked failed (resumable); their ids.

        A dead job's run is closed with it (and not listed again).
        """
        stale_after = stale_after_s() if stale_after is None else stale_after
        now, marked = time.time(), []
        jobs = self.conn.execute("SELECT id, pid, host, heartbeat, started FROM jobs "
                                 "WHERE status IN ('running','cancelling')").fetchall()
        for r in jobs:
            beat = r["heartbeat"] or r["started"] or 0.0
            if not _dead(now, beat, r["host"], r["pid"], stale_after, r["id"]):
                continue
            when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(beat)) if beat else "never"
            reason = f"worker died (pid {r['pid']} gone, last heartbeat {when}); resume continues from the stored folds"
            with self.tx() as c:  # type: ignore[attr-defined]
                n = c.execute("""UPDATE jobs SET status='failed', resumable=1, finished=?, error=?, message=?
                                 WHERE id=? AND status IN ('running','cancelling') AND COALESCE(heartbeat, started, 0)=?""",
                              (now, reason, "worker died", r["id"], beat)).rowcount
                if n:
                    c.execute("UPDATE runs SET status='failed', error=? WHERE id=(SELECT run_id FROM jobs WHERE id=?) "
                              "AND status='running'", (reason, r["id"]))
            if n:
                marked.append(r["id"])
        runs = self.conn.execute("SELECT id, pid, host, heartbeat, created FROM runs WHERE status='running'").fetchall()
        for r in runs:
            beat = r["heartbeat"] or r["created"] or 0.0
            if not _dead(now, beat, r["host"], r["pid"], stale_after, None):
                continue
            when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(beat))
            reason = (f"the process running it died (pid {r['pid']}, last heartbeat {when}); "
                      "resume it (mer run --resume ID) to continue from the stored folds")
            with self.tx() as c:  # type: ignore[attr-defined]
                n = c.execute("UPDATE runs SET status='failed', error=? WHERE id=? AND status='running' "
                              "AND COALESCE(heartbeat, created)=?", (reason, r["id"], beat)).rowcount
            if n:
                marked.append(r["id"])
        return marked

    # --- cancel --------------------------------------------------------------------------
    def request_cancel(self, run_id: str) -> None:
        """Ask every process training ``run_id`` to stop (finished folds are kept)."""
        with self.tx() as c:  # type: ignore[attr-defined]
            c.execute("UPDATE runs SET cancel=1 WHERE id=?", (run_id,))

    def clear_cancel(self, run_id: str) -> None:
        with self.tx() as c:  # type: ignore[attr-defined]
            c.execute("UPDATE runs SET cancel=0 WHERE id=?", (run_id,))

    def cancel_requested(self, run_id: str) -> bool:
        row = self.conn.execute("SELECT cancel FROM runs WHERE id=?", (run_id,)).fetchone()
        return bool(row is not None and row[0])

    def cancel_poll(self, run_id: str, also: Callable[[], bool] | None = None,
                    every_s: float = CANCEL_POLL_S) -> Callable[[], bool]:
        """A cheap ``should_stop`` for training: ``also()`` or the run's cancel flag, read at most every ``every_s``.

        Once it says stop it keeps saying so.
        """
        state = {"next": 0.0, "stop": False}

        def should_stop() -> bool:
            if state["stop"] or (also is not None and also()):
                state["stop"] = True
            elif time.monotonic() >= state["next"]:
                state["next"] = time.monotonic() + every_s
                try:
                    state["stop"] = self.cancel_requested(run_id)
                except Exception:  # a locked store: ask again at the next poll
                    pass
            return state["stop"]

        return should_stop


class Heartbeat:
    """Beats a job's and/or a run's row while it lives; ``stop()`` ends it.

    However many are open in one process for one store, a single thread (with
    its own connection) beats them all; it also reads each job's cancel flag
    once a second and calls that job's ``on_cancel`` once when it is set.
    """

    def __init__(self, store: Any, *, run_id: str | None = None, job_id: str | None = None,
                 on_cancel: Callable[[], None] | None = None) -> None:
        self.run_id, self.job_id, self.on_cancel = run_id, job_id, on_cancel
        self._beater = _Beater.join(type(store), Path(store.path).resolve(), self)

    def stop(self) -> None:
        self._beater.leave(self)


class _Beater:
    """The one heartbeat thread of this process for one store."""

    _lock = threading.Lock()
    _running: dict[Path, "_Beater"] = {}

    def __init__(self, connect: Any, path: Path) -> None:
        self.connect, self.path = connect, path
        self.members: list[Heartbeat] = []
        self.cancelled: set[int] = set()
        self.wake = threading.Event()
        self.thread = threading.Thread(target=self._loop, name="heartbeat", daemon=True)

    @classmethod
    def join(cls, connect: Any, path: Path, member: Heartbeat) -> "_Beater":
        with cls._lock:
            beater = cls._running.get(path)
            if beater is None:
                beater = cls._running[path] = cls(connect, path)
                beater.members.append(member)
                beater.thread.start()
            else:
                beater.members.append(member)
                beater.wake.set()  # beat the new row now
        return beater

    def leave(self, member: Heartbeat) -> None:
        with self._lock:
            if member in self.members:
                self.members.remove(member)
            if not self.members and self._running.get(self.path) is self:
                del self._running[self.path]
            done = not self.members
        if done:
            self.wake.set()
            if threading.current_thread() is not self.thread:
                self.thread.join(timeout=5.0)

    def _loop(self) -> None:
        store = None
        last_beat = 0.0
        try:
            store = self.connect(self.path, timeout_s=5.0)  # its own connection (RunStore)
            while True:
                with self._lock:
                    members = list(self.members)
                if not members:
                    return
                try:
                    for m in members:
                        if m.job_id and id(m) not in self.cancelled and store.job_cancel_requested(m.job_id):
                            self.cancelled.add(id(m))
                            if m.on_cancel is not None:
                                m.on_cancel()
                    if time.time() - last_beat >= HEARTBEAT_S or self.wake.is_set():
                        self.wake.clear()
                        for m in members:
                            if m.job_id:
                                store.beat_job(m.job_id)
                            if m.run_id:
                                store.beat(m.run_id, os.getpid())
                        last_beat = time.time()
                except Exception as exc:  # a locked or full store: the next beat tries again
                    print(f"[heartbeat] {exc}", file=sys.stderr, flush=True)
                self.wake.wait(1.0)
        except Exception:
            return
        finally:
            if store is not None:
                store.close()
