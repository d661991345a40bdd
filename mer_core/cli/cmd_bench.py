"""``mer bench [--quick] [--out PATH]``: the benchmark suite (see :mod:`mer_core.jobs.bench`).

    mer bench --quick     # under 5 minutes on 2 cores: the two fast models, 3 epochs, fewer repetitions
    mer bench             # under 60 minutes on 2 cores: every model and preset at the preset's epochs

Writes ``benchmarks/results/<machine kind>.json`` (``--out`` elsewhere),
which the job estimate, the README table and the dashboard's Benchmarks page
read, and prints the README table. Runs in a private temporary cache.
"""
from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

from mer_core.keyvalue import parse_pairs


def cmd_bench(args: argparse.Namespace) -> int:
    from mer_core.jobs.bench import full_plan, quick_plan, run_bench, write_report
    from mer_core.jobs.bench_report import readme_table, results_dir

    plan = quick_plan() if args.quick else full_plan()
    changes = {}
    if args.models:
        changes.update(models=tuple(args.models), loso_models=tuple(args.models))
    if args.executors:
        changes["executors"] = tuple(args.executors)
    if args.epochs:
        changes["loso_epochs"] = args.epochs
    if args.dataset_option:
        changes["dataset_options"] = parse_pairs(args.dataset_option)
    if args.no_pages:
        changes["page_repeats"] = 0
    plan = dataclasses.replace(plan, **changes)
    report = run_bench(plan, log=lambda line: print(line, flush=True))
    out = Path(args.out) if args.out else results_dir() / f"{report['machine']['kind']}.json"
    write_report(report, out)
    print(f"\n{readme_table(report)}\n\nwrote {out} in {report['seconds']:.0f} s")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("bench", help="benchmark preprocessing, models, LOSO runs and pages; write the results file")
    p.add_argument("--quick", action="store_true", help="fewer models, epochs and repetitions (under 5 min on 2 cores)")
    p.add_argument("--out", metavar="PATH", help="report file (default: benchmarks/results/<machine kind>.json)")
    p.add_argument("--models", nargs="+", metavar="MODEL", help="only these models")
    p.add_argument("--executors", nargs="+", metavar="EXECUTOR", help="LOSO executors (default: all available)")
    p.add_argument("--epochs", type=int, help="LOSO epochs (default: quick 3, full the preset's)")
    p.add_argument("--dataset-option", "-o", action="append", default=[], metavar="KEY=VALUE",
                   help="synthetic set option for the LOSO and preprocessing (default: the default set)")
    p.add_argument("--no-pages", action="store_true", help="skip the page render timings")
    p.set_defaults(handler=cmd_bench)
