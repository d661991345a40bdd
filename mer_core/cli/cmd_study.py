"""``mer study submit|show|export|cancel|resume|list``: multi-seed, multi-arm studies.

A study is a grid of arms x seeds on one dataset (see :mod:`mer_core.jobs.study`
for the TOML file); each cell is a job of the shared queue, so the Jobs page
and ``mer jobs`` show them, and ``mer study resume`` continues failed cells
from their stored folds. A spotting study (arms ``spotter = ...`` on a
long-video dataset) works alike: its cells are spotting jobs and its table
gives F1 (all, micro, macro) beside chance.
"""
from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

from mer_core.errors import MerError
from mer_core.evaluation.study_table import paper_table
from mer_core.jobs import queue, study
from mer_core.store.db import RunStore


def cmd_submit(args: argparse.Namespace) -> int:
    spec = study.load_study_file(args.file)
    if args.name:
        spec = dataclasses.replace(spec, name=args.name)
    with RunStore() as store:
        cells = study.submit_study(spec, store=store, start=not args.no_start,
                                   check=None if args.no_check else study.plan_check)
        print(f"study {spec.name!r}: {len(spec.arms)} arms x {len(spec.seeds)} seeds = {len(cells)} jobs queued "
              f"on {spec.dataset} ({spec.protocol})")
        if args.wait:
            for job_id in cells["job_id"]:
                queue.wait(store, job_id, timeout=args.timeout)
            return _show(store, spec.name, n_boot=args.n_boot)
    return 0


def _show(store, name: str, *, n_boot: int = 1000) -> int:
    cells = store.study_cells(name)
    done = int((cells["run_status"] == "done").sum())
    print(f"study {name!r}: {done}/{len(cells)} cells done")
    figures = ["f1", "micro_f1", "macro_f1"] if (cells["kind"] == "spotting").any() else ["uf1"]
    print(cells[["arm", "seed", "job_id", "job_status", "run_status", "folds_done", "n_folds", *figures]]
          .to_string(index=False))
    if not done:
        return 0
    report = study.study_report(store, name, n_boot=n_boot)
    print()
    print(paper_table(report, "md"))
    print(report.test["verdict"])
    for note in report.notes:
        print(f"note: {note}")
    for flag in report.flags:
        print(f"flagged: {flag}")
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    with RunStore() as store:
        queue.mark_stale(store)  # a cell whose worker died shows as failed (starts nothing)
        return _show(store, args.name, n_boot=args.n_boot)


def cmd_export(args: argparse.Namespace) -> int:
    with RunStore() as store:
        if args.format == "mlflow":
            return _to_mlflow(store, args)
        report = study.study_report(store, args.name, n_boot=args.n_boot)
    text = paper_table(report, args.format)
    if args.out:
        out = Path(args.out)
        if out.is_dir():
            raise MerError(f"--out {out} is a folder; give a file name")
        out.write_text(text, encoding="utf-8")
        print(f"wrote {out}")
    else:
        sys.stdout.write(text)
    return 0


def _to_mlflow(store, args: argparse.Namespace) -> int:
    """One parent run per study, one child run per complete cell (mer_core.jobs.study.study_to_mlflow)."""
    logged = study.study_to_mlflow(store, args.name, tracking_uri=args.tracking_uri or None, n_boot=args.n_boot)
    print(f"study {args.name!r} logged to MLflow at {logged.tracking_uri}, experiment {logged.experiment!r}: "
          f"parent run {logged.run_ids[0]}, {len(logged.run_ids) - 1} cell run(s)")
    if logged.skipped:
        print(f"not logged (not complete): {', '.join(logged.skipped)}")
    return 0


def cmd_cancel(args: argparse.Namespace) -> int:
    with RunStore() as store:
        counts = study.cancel_study(store, args.name)
    print(f"study {args.name!r}: " + (", ".join(f"{n} {s}" for s, n in counts.items()) or "no cell to cancel"))
    return 0


def cmd_resume(args: argparse.Namespace) -> int:
    with RunStore() as store:
        counts = study.resume_study(store, args.name, start=not args.no_start)
    print(f"study {args.name!r}: {counts['resumed']} cells resumed, {counts['submitted']} submitted")
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    with RunStore() as store:
        table = store.list_studies()
    if table.empty:
        print("no studies yet; submit one with `mer study submit study.toml`")
        return 0
    table["created"] = [time.strftime("%Y-%m-%d %H:%M", time.localtime(t)) for t in table["created"]]
    print(table.to_string(index=False))
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("study", help="multi-seed, multi-arm studies: submit, show, export, cancel, resume")
    ss = p.add_subparsers(dest="study_command", metavar="ACTION")
    s = ss.add_parser("submit", help="validate a study TOML file and queue every cell")
    s.add_argument("file")
    s.add_argument("--name", default="", help="override the file's study name")
    s.add_argument("--no-check", action="store_true", help="skip indexing the dataset to check each arm")
    s.add_argument("--no-start", action="store_true", help="only queue")
    s.add_argument("--wait", action="store_true", help="block until every cell finishes, then show the table")
    s.add_argument("--timeout", type=float, default=24 * 3600.0)
    s.add_argument("--n-boot", type=int, default=1000)
    s.set_defaults(handler=cmd_submit)
    s = ss.add_parser("show", help="cells, the paper table and the verdict")
    s.add_argument("name")
    s.add_argument("--n-boot", type=int, default=1000)
    s.set_defaults(handler=cmd_show)
    s = ss.add_parser("export", help="the paper table as csv, md or latex (or to MLflow)")
    s.add_argument("name")
    s.add_argument("--format", choices=["csv", "md", "latex", "mlflow"], default="md")
    s.add_argument("--out", default="", help="write to this file instead of stdout")
    s.add_argument("--n-boot", type=int, default=1000)
    s.add_argument("--tracking-uri", default="", help="mlflow: the tracking URI (default: MLFLOW_TRACKING_URI, "
                                                      "else MLflow's own default)")
    s.set_defaults(handler=cmd_export)
    for action, handler, text in (("cancel", cmd_cancel, "cancel every queued or running cell"),
                                  ("resume", cmd_resume, "re-queue failed/cancelled cells, submit missing ones")):
        s = ss.add_parser(action, help=text)
        s.add_argument("name")
        if action == "resume":
            s.add_argument("--no-start", action="store_true", help="only re-queue")
        s.set_defaults(handler=handler)
    s = ss.add_parser("list", help="every study with its progress")
    s.set_defaults(handler=cmd_list)
    p.set_defaults(handler=lambda args: p.print_help() or 1)
