"""The job worker: ``python -m mer_core.jobs.worker JOB_ID`` (or ``mer worker JOB_ID``).

One process per job, started by :func:`mer_core.jobs.queue.kick` in its own
session with its output appended to the job's log. It

* claims the job (refusing to be a second worker of a running job),
* runs :func:`~mer_core.training.engine.run_experiment` on the job's config and
  pre-assigned run id (so a resumed job skips the folds already stored),
* writes progress (stage, fold i/N, epoch, loss, ETA) to the jobs table,
* beats the job's heartbeat from the process's one heartbeat thread
  (:class:`mer_core.store.liveness.Heartbeat`, shared with the run it
  trains), which reads the job's cancel flag once a second so that
  ``should_stop`` is a cheap in-memory check between batches,
* stops cleanly on the cancel flag (the one cancel channel; the folds'
  training processes read their run's flag themselves) or SIGTERM: the engine
  stops between batches, finished folds stay stored, the job becomes 'cancelled',
* stores the traceback of any failure, then kicks the scheduler so the next
  queued job starts.

It never imports Streamlit.
"""
from __future__ import annotations

import os
import signal
import sys
import threading
import time
import traceback
from typing import Any

from mer_core.config import ExperimentConfig
from mer_core.errors import MerError
from mer_core.jobs import queue as jobs_mod
from mer_core.jobs.eta import EtaEstimator, fold_share
from mer_core.jobs.plan import training_passes
from mer_core.store.db import RunStore, using_store
from mer_core.store.liveness import Heartbeat


class Stopped(Exception):
    """Raised from the progress callback when a stop was requested before training started."""


class JobRunner:
    """Runs one claimed job: heartbeat thread, progress writes, stop handling."""

    kind: str | None = None  # the job kind a subclass runs (checked once claimed); None: an experiment

    def __init__(self, store: RunStore, job_id: str) -> None:
        self.store = store
        self.job: dict[str, Any] = {}  # set once claimed
        self.job_id = job_id
        self.stop_event = threading.Event()
        self.stop_reason = ""
        self._last_write = 0.0
        self._folds_done = 0
        self._n_folds = 0
        self._eta_est: EtaEstimator | None = None  # created at the first fold (needs the fold count)
        self._units: tuple[float, float] | None = None  # (fits' worth per fold, of them inner fits): see _fold_units

    # --- stop signals -----------------------------------------------------------
    def should_stop(self) -> bool:
        return self.stop_event.is_set()

    def request_stop(self, reason: str) -> None:
        if not self.stop_event.is_set():
            self.stop_reason = reason
            self.stop_event.set()
            print(f"[worker] stop requested: {reason}", flush=True)

    def on_sigterm(self, signum: int, frame: Any) -> None:
        self.request_stop("SIGTERM")
        signal.signal(signal.SIGTERM, signal.SIG_DFL)  # a second SIGTERM ends the process at once

    def on_cancel(self) -> None:
        """The job's cancel flag was set (seen by the heartbeat thread)."""
        self.request_stop("cancel requested")

    def _why_stopped(self) -> str:
        """The stop's reason; the folds may see the run's cancel flag before the heartbeat sees the job's."""
        try:
            if not self.stop_reason and self.store.job_cancel_requested(self.job_id):
                self.on_cancel()
        except Exception:  # a failing store: the reason stays unknown
            pass
        return self.stop_reason or "interrupted"

    # --- progress ---------------------------------------------------------------
    def _write(self, force: bool, **fields: Any) -> None:
        now = time.time()
        if not force and now - self._last_write < 0.5:
            return
        self._last_write = now
        self.store.update_job(self.job_id, heartbeat=now, **fields)

    def _eta(self, p: float) -> float | None:
        """Seconds left: the job's own throughput once folds finish, never swinging over 2x (jobs.eta)."""
        return None if self._eta_est is None else self._eta_est.eta(time.time(), p)

    def progress(self, e: dict[str, Any]) -> None:
        kind = e.get("event")
        n = int(e.get("n_folds") or self._n_folds or 0)
        self._n_folds = n
        if kind == "stage":
            if self.stop_event.is_set():
                raise Stopped(self.stop_reason)
            self._write(e["done"] >= e["total"], stage=str(e.get("stage", "")),
                        message=f"{e.get('stage', '')} {e['done']}/{e['total']} "
                        + ("epochs" if e.get("stage") in ("pretrain", "final_model") else "clips"))
        elif kind == "fold_start":
            if self._eta_est is None:
                self._folds_done = self.stored_folds()
                self._eta_est = EtaEstimator(n)
                self._eta_est.start(time.time(), self._folds_done)
            print(f"[worker] fold {e['fold'] + 1}/{n} ({e.get('name', '')}) started", flush=True)
            self._write(True, stage="train", fold=int(e["fold"]), n_folds=n, epoch=0,
                        folds_done=self._folds_done, message=f"fold {e['fold'] + 1}/{n}: {e.get('name', '')}")
        elif kind == "epoch":
            epochs = int(e.get("epochs") or 0)
            p = (self._folds_done + fold_share(float(e["epoch"]), epochs, *self._fold_units(n))) / max(n, 1)
            loss = e.get("train_loss")
            print(f"[worker] fold {e['fold'] + 1}/{n} epoch {int(e['epoch'])}/{epochs} loss {loss:.4f} "
                  f"acc {e.get('train_acc', float('nan')):.3f}", flush=True)
            self._write(int(e["epoch"]) >= epochs, fold=int(e["fold"]), n_folds=n, epoch=int(e["epoch"]),
                        epochs=epochs, loss=loss, progress=min(p, 1.0), eta_s=self._eta(p))
        elif kind == "fold_done":
            self._folds_done = int(e.get("done", self._folds_done + 1))
            p = self._folds_done / max(n, 1)
            if self._eta_est is not None:
                self._eta_est.fold_done(time.time(), self._folds_done)
            print(f"[worker] fold {e['fold'] + 1}/{n} done: accuracy {e.get('accuracy', float('nan')):.3f} "
                  f"({self._folds_done}/{n} folds stored)", flush=True)
            self._write(True, folds_done=self._folds_done, n_folds=n, progress=p, eta_s=self._eta(p),
                        message=f"{self._folds_done}/{n} folds done")
        elif kind == "done":
            print(f"[worker] run {e.get('run_id')} {e.get('status')}: UF1 {e.get('uf1')} UAR {e.get('uar')}",
                  flush=True)

    def stored_folds(self) -> int:
        """The folds of the job's run stored already (by an earlier attempt of a resumed job)."""
        return len(self.store.completed_folds(self.job["run_id"]))

    def _fold_units(self, n_folds: int) -> tuple[float, float]:
        """(fits' worth of training per fold, of them the inner fits of nested selection), from the job's config.

        Training subjects per fold (for ``nested_folds = 0``) are taken as ``n_folds - 1``, as under LOSO.
        """
        if self._units is None:
            self._units = (1.0, 0.0)
            try:
                cfg = ExperimentConfig.from_json(self.job["config_json"])
                passes = training_passes(cfg, max(n_folds - 1, 1))
                self._units = (passes, passes - cfg.seeds_per_fold)
            except (MerError, KeyError, TypeError, ValueError):  # not an experiment job: one fit per fold
                pass
        return self._units

    # --- the job --------------------------------------------------------------------
    def run(self) -> str:
        """Do the job's work under a heartbeat; record and return its final status.

        Subclasses change only :meth:`work` (and the cancel wording); the heartbeat,
        cancel handling, failure traceback and the final row are the same for every kind.
        """
        from mer_core.training.trainer import Cancelled  # lazy: loads torch (about 2 s)

        beat = Heartbeat(self.store, job_id=self.job_id, on_cancel=self.on_cancel)
        status, error, message = "failed", "", ""
        try:
            status, message, error = self.work()
        except (Stopped, Cancelled, KeyboardInterrupt):
            status, message = "cancelled", f"cancelled ({self._why_stopped()}){self.cancelled_note}"
        except BaseException as exc:  # noqa: BLE001 - every failure is recorded with its traceback
            status, error = "failed", self.failure_text(exc)
            message = str(exc).strip().splitlines()[-1][:300] if str(exc).strip() else type(exc).__name__
            print(error, file=sys.stderr, flush=True)
        finally:
            beat.stop()
        self._finish(status, error, message)
        print(f"[worker] job {self.job_id} {status}", flush=True)
        return status

    cancelled_note = " before training"  # said after "cancelled (reason)" when the work is stopped mid-way

    def work(self) -> tuple[str, str, str]:
        """Run the experiment: (status, message, error)."""
        from mer_core.training.engine import run_experiment  # lazy: loads torch and scikit-learn (about 2 s)

        run_id = self.job["run_id"]
        config = ExperimentConfig.from_json(self.job["config_json"])
        print(f"[worker] job {self.job_id} (attempt {self.job['attempts']}) -> run {run_id}", flush=True)
        run_experiment(config, store=self.store, run_id=run_id, progress=self.progress,
                       should_stop=self.should_stop, name=self.job.get("name") or "")
        run_status = self.store.get_run(run_id)["status"]
        if run_status == "cancelled" or (run_status == "partial" and self.stop_event.is_set()):
            return "cancelled", f"cancelled ({self._why_stopped()}); finished folds are kept", ""
        if run_status == "failed":
            return "failed", "", self.store.get_run(run_id)["error"]
        return "done", "finished" if run_status == "done" else f"finished ({run_status})", ""

    def failure_text(self, exc: BaseException) -> str:
        """The traceback stored with a failed job (an experiment's: its run's own traceback first when it has one)."""
        error = "".join(traceback.format_exception(exc))
        stored = self._run_error(self.job["run_id"]) if self.kind is None else ""
        if stored and "Traceback" in stored:
            error = stored + "\n--- raised in the worker ---\n" + error
        return error

    def _run_error(self, run_id: str) -> str:
        try:
            return self.store.get_run(run_id)["error"] if self.store.has_run(run_id) else ""
        except MerError:
            return ""

    def _finish(self, status: str, error: str, message: str) -> None:
        fields: dict[str, Any] = {"status": status, "finished": time.time(), "error": error[-20000:],
                                  "message": message, "resumable": int(status in ("failed", "cancelled")),
                                  "stage": status, "eta_s": None}
        if status == "done":
            fields["progress"] = 1.0
        elif self._n_folds:  # stopped: progress = the share of folds stored (a half fold is lost)
            fields["progress"] = self._folds_done / self._n_folds
        self.store.update_job(self.job_id, **fields)


def run_job(job_id: str, *, store: RunStore | None = None, kick_next: bool = True,
            runner_cls: type[JobRunner] = JobRunner) -> int:
    """Claim and run ``job_id`` in this process; exit code 0 (done or cancelled), 1 (failed), 3 (refused).

    ``runner_cls`` (a :class:`JobRunner` subclass) does another kind of work
    with the same claim, heartbeat, cancel and finish (the explanation-report
    and spotting workers); the job must be of its ``kind``.
    """
    threads = os.environ.get("MER_TORCH_THREADS")
    if threads:
        import torch  # lazy: loads torch (about 2 s)

        torch.set_num_threads(max(1, int(threads)))
    with using_store(store) as store:
        runner = runner_cls(store, job_id)
        # SIGTERM (`kill PID`, a shutting-down machine) stops the work like a cancel; set before the claim
        in_main = threading.current_thread() is threading.main_thread()
        old = signal.signal(signal.SIGTERM, runner.on_sigterm) if in_main else None
        try:
            job = store.claim_job(job_id, os.getpid())
            if job is None:
                print(f"[worker] job {job_id} was cancelled before it started", flush=True)
                return 0
            if runner.kind is not None and job["kind"] != runner.kind:
                raise MerError(f"job {job['id']} is not a {runner.kind!r} job; run it with mer_core.jobs.worker")
            runner.job, runner.job_id = job, job["id"]
            status = runner.run()
            if kick_next:
                try:
                    jobs_mod.kick(store)
                except Exception as exc:  # the next job can still be started by any later kick
                    print(f"[worker] could not start the next queued job: {exc}", flush=True)
            return 1 if status == "failed" else 0
        finally:
            if in_main:
                signal.signal(signal.SIGTERM, old)


def main(argv: list[str] | None = None, module: str = "mer_core.jobs.worker",
         runner_cls: type[JobRunner] = JobRunner) -> int:
    """The ``python -m MODULE JOB_ID`` entry point of a worker module (MODULE's runner: ``runner_cls``)."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1 or args[0].startswith("-"):
        print(f"usage: python -m {module} JOB_ID", file=sys.stderr)
        return 2
    try:
        return run_job(args[0], runner_cls=runner_cls)
    except MerError as exc:
        print(f"[worker] error: {exc}", file=sys.stderr, flush=True)
        return 3


if __name__ == "__main__":
    sys.exit(main())
