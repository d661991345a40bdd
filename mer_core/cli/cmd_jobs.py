"""``mer submit``, ``mer jobs``, ``mer cancel``, ``mer resume``, ``mer worker``: the shared job queue.

The same queue the dashboard uses (the ``jobs`` table of the run store), so a
job submitted from a terminal shows up live on the Jobs page and vice versa.
``mer submit`` takes the same experiment options as ``mer run``.
"""
from __future__ import annotations

import argparse
import json
import sys
import time

import pandas as pd

from mer_core.cli.cmd_loso import add_experiment_args, config_from_args
from mer_core.errors import MerError
from mer_core.jobs import queue as jobs
from mer_core.jobs.worker import run_job
from mer_core.store.db import RunStore


def _fmt_time(t: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t)) if t else "-"


def _fmt_eta(seconds: float | None) -> str:
    if seconds is None or seconds != seconds:
        return "-"
    seconds = int(seconds)
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m" if seconds >= 3600 else f"{seconds // 60}m{seconds % 60:02d}s"


def cmd_submit(args: argparse.Namespace) -> int:
    if args.resume:
        raise MerError("mer submit: --resume is for `mer run`; resume a job with `mer resume JOB_ID`")
    config = config_from_args(args)
    with RunStore() as store:
        job_id = jobs.submit(config, store=store, name=args.name, priority=args.priority, start=not args.no_start)
        job = jobs.get_job(store, job_id)
        print(f"job {job_id} {job['status']} -> run {job['run_id']}  (log: {job['log_path']})")
        if args.wait:
            job = jobs.wait(store, job_id)
            print(f"job {job_id} {job['status']}" + (f": {job['message']}" if job["message"] else ""))
            if job["status"] == "failed":
                print(job["error"].strip().splitlines()[-1] if job["error"].strip() else "", file=sys.stderr)
                return 1
    return 0


def cmd_jobs(args: argparse.Namespace) -> int:
    with RunStore() as store:
        jobs.kick(store)  # also marks jobs whose worker died
        table = jobs.list_jobs(store, limit=args.limit)
    if table.empty:
        print("no jobs yet; queue one with `mer submit --dataset synthetic --model baseline`")
        return 0
    if args.json:
        print(table.to_json(orient="records", indent=1))
        return 0
    rows = []
    for r in table.itertuples():
        folds = f"{int(r.folds_done or 0)}/{int(r.n_folds)}" if r.n_folds == r.n_folds and r.n_folds else "-"
        rows.append({"id": r.id, "status": r.status, "model": r.model, "dataset": r.dataset, "folds": folds,
                     "progress": f"{100 * (r.progress or 0):.0f}%", "eta": _fmt_eta(r.eta_s) if r.status == "running"
                     else "-", "created": _fmt_time(r.created), "run": r.run_id, "message": (r.message or "")[:60]})
    print(pd.DataFrame(rows).to_string(index=False))
    return 0


def cmd_show_job(args: argparse.Namespace) -> int:
    with RunStore() as store:
        jobs.kick(store)
        job = jobs.get_job(store, args.job_id)
    if args.json:
        job = {k: v for k, v in job.items() if k != "config_json"}
        print(json.dumps(job, indent=1, default=str))
        return 0
    print(f"job {job['id']} [{job['status']}] run {job['run_id']}: {job['model']} on {job['dataset']} "
          f"({job['protocol']})")
    print(f"  created {_fmt_time(job['created'])}  started {_fmt_time(job['started'])}  "
          f"finished {_fmt_time(job['finished'])}  attempts {job['attempts']}  pid {job['pid'] or '-'}")
    if job["n_folds"]:
        print(f"  folds {job['folds_done']}/{job['n_folds']}  fold {int(job['fold'] or 0) + 1} epoch "
              f"{job['epoch'] or 0}/{job['epochs'] or '?'}  loss {job['loss'] if job['loss'] is not None else '-'}  "
              f"ETA {_fmt_eta(job['eta_s'])}")
    if job["message"]:
        print(f"  {job['message']}")
    if job["error"]:
        print("  error:\n    " + job["error"].strip().replace("\n", "\n    "))
    print(f"  log: {job['log_path']}")
    if args.log:
        print(jobs.log_tail(job, args.log))
    return 0


def cmd_cancel(args: argparse.Namespace) -> int:
    with RunStore() as store:
        for job_id in args.job_ids:
            status = jobs.cancel(store, job_id)
            print(f"job {jobs.get_job(store, job_id)['id']}: {status}")
            if args.wait and status == "cancelling":
                job = jobs.wait(store, job_id, timeout=args.timeout)
                print(f"job {job['id']}: {job['status']}")
    return 0


def cmd_resume(args: argparse.Namespace) -> int:
    with RunStore() as store:
        jobs.resume(store, args.job_id)
        job = jobs.get_job(store, args.job_id)
        print(f"job {job['id']} {job['status']} -> run {job['run_id']} (finished folds are kept)")
        if args.wait:
            job = jobs.wait(store, job["id"])
            print(f"job {job['id']} {job['status']}")
            return 1 if job["status"] == "failed" else 0
    return 0


def cmd_worker(args: argparse.Namespace) -> int:
    return run_job(args.job_id)


def cmd_kick(args: argparse.Namespace) -> int:
    with RunStore() as store:
        stale = jobs.mark_stale(store)
        started = jobs.kick(store)
    for job_id in stale:
        print(f"job {job_id}: worker died, marked failed (resumable)")
    for job_id in started:
        print(f"job {job_id}: started")
    if not stale and not started:
        print(f"nothing to start (max concurrent jobs: {jobs.max_concurrent()})")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("submit", help="queue an experiment as a background job (shared with the dashboard)")
    add_experiment_args(p, protocol_default=None)
    p.add_argument("--priority", type=int, default=0, help="higher starts first (default 0)")
    p.add_argument("--wait", action="store_true", help="block until the job finishes")
    p.add_argument("--no-start", action="store_true", help="only queue; a later `mer kick` or the dashboard starts it")
    p.set_defaults(handler=cmd_submit)

    p = sub.add_parser("jobs", help="list queued, running and finished jobs")
    p.add_argument("--limit", type=int, default=50)
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=cmd_jobs)

    p = sub.add_parser("job", help="show one job: progress, error, log")
    p.add_argument("job_id")
    p.add_argument("--log", type=int, default=0, metavar="N", help="also print the last N log lines")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=cmd_show_job)

    p = sub.add_parser("cancel", help="cancel queued or running jobs (finished folds are kept)")
    p.add_argument("job_ids", nargs="+")
    p.add_argument("--wait", action="store_true", help="wait until running jobs have stopped")
    p.add_argument("--timeout", type=float, default=120.0)
    p.set_defaults(handler=cmd_cancel)

    p = sub.add_parser("resume", help="re-queue a failed or cancelled job; it continues from its stored folds")
    p.add_argument("job_id")
    p.add_argument("--wait", action="store_true")
    p.set_defaults(handler=cmd_resume)

    # plumbing, left out of `mer --help` (no help=; argparse prints help=SUPPRESS as '==SUPPRESS==')
    p = sub.add_parser("worker", description="run one job in this process (what the scheduler starts)")
    p.add_argument("job_id")
    p.set_defaults(handler=cmd_worker)

    p = sub.add_parser("kick", description="mark dead workers and start queued jobs up to MER_MAX_JOBS")
    p.set_defaults(handler=cmd_kick)
