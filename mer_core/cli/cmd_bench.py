"""``mer bench [--quick] [--out PATH]``: the benchmark suite (see :mod:`mer_core.benchmarking.bench`).

    mer bench --quick     # under 5 minutes on 2 cores: the two fast models, 3 epochs, fewer repetitions
    mer bench             # under 60 minutes on 2 cores: every model and preset at the preset's epochs
    mer bench --models mfdan --update   # re-measure one model's rows in the existing report

Writes ``<results>/<machine kind>.json`` (``--out`` elsewhere), where
``<results>`` is the package's ``mer_core/benchmarking/data`` (committed from a
checkout) or ``$MER_BENCH_RESULTS``, the folder the job estimate and the
dashboard's Benchmarks page read, and prints
the LOSO table for docs/benchmarks.md. Runs in a private temporary cache.
"""
from __future__ import annotations

import argparse
import dataclasses
import os
from pathlib import Path

from mer_core.errors import MerError
from mer_core.benchmarking.bench_report import machine_info, read_report, readme_table, results_dir
from mer_core.keyvalue import parse_pairs


def cmd_bench(args: argparse.Namespace) -> int:
    # lazy: loads torch and scikit-learn (about 2 s)
    from mer_core.benchmarking.bench import (check_same_machine, full_plan, merge_report, quick_plan, run_bench,
                                             update_plan, write_report)

    plan = quick_plan() if args.quick else full_plan()
    changes = {}
    if args.models:
        changes.update(models=tuple(args.models), loso_models=tuple(args.models))
    if args.executors:
        changes["executors"] = tuple(args.executors)
    if args.presets:
        changes["loso_presets"] = tuple(args.presets)
    if args.epochs:
        changes["loso_epochs"] = args.epochs
    if args.dataset_option:
        changes["dataset_options"] = parse_pairs(args.dataset_option)
    if args.no_pages:
        changes["page_repeats"] = 0
    plan = dataclasses.replace(plan, **changes)
    here = machine_info()
    out = Path(args.out) if args.out else results_dir() / f"{here['kind']}.json"
    if not args.out and out.parent.is_dir() and not os.access(out.parent, os.W_OK):
        raise MerError(f"mer bench: cannot write {out.parent} (the installed package's results); name a report "
                       "file with --out, and set MER_BENCH_RESULTS to its folder for the estimates to read it")
    old = None
    if args.update:  # read (and check) the report before spending minutes measuring
        if not out.is_file():
            raise MerError(f"mer bench --update: {out} does not exist; run mer bench first (or name it with --out)")
        plan = update_plan(plan, tuple(args.models or ()))
        old = read_report(out)
        check_same_machine(old["machine"], here)
    report = run_bench(plan, log=lambda line: print(line, flush=True))
    seconds = report["seconds"]
    if old is not None:
        report = merge_report(old, report, plan.models)
    write_report(report, out)
    what = f"updated the rows of {', '.join(plan.models)} in" if old is not None else "wrote"
    print(f"\n{readme_table(report)}\n\n{what} {out} in {seconds:.0f} s")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("bench", help="benchmark preprocessing, models, LOSO runs and pages; write the results file")
    p.add_argument("--quick", action="store_true", help="fewer models, epochs and repetitions (under 5 min on 2 cores)")
    p.add_argument("--out", metavar="PATH", help="report file (default: mer_core/benchmarking/data/<machine kind>.json, or in $MER_BENCH_RESULTS)")
    p.add_argument("--models", nargs="+", metavar="MODEL", help="only these models")
    p.add_argument("--executors", nargs="+", metavar="EXECUTOR", help="LOSO executors (default: sequential and process)")
    p.add_argument("--presets", nargs="+", metavar="PRESET",
                   help="LOSO presets (default: cpu; on a CUDA device cpu and paper)")
    p.add_argument("--epochs", type=int, help="LOSO epochs (default: quick 3, full the preset's)")
    p.add_argument("--dataset-option", "-o", action="append", default=[], metavar="KEY=VALUE",
                   help="synthetic set option for the LOSO and preprocessing (default: the default set)")
    p.add_argument("--no-pages", action="store_true", help="skip the page render timings")
    p.add_argument("--update", action="store_true",
                   help="re-measure only --models and replace their rows in the existing report (--out or the "
                        "machine's default), keeping every other row")
    p.set_defaults(handler=cmd_bench)
