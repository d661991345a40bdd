"""Training engine benchmark: LOSO wall time, CPU seconds and peak memory of the whole process tree, UF1/UAR.

A thin front end of ``mer bench``'s LOSO section (:func:`mer_core.jobs.bench.bench_loso`):
every model at its CPU preset on the default synthetic set, per executor
(sequential and process unless --executors says otherwise), preprocessing cache warm,
median of ``--reps`` runs with min and max. Writes ``bench_out/training.json``.

    .venv/bin/python benchmarks/bench_training.py [--models baseline mfdan] [--epochs N] [--reps 3]
        [--executors sequential process]

Runs use a private temporary cache so they never touch your runs. The whole
suite (and the committed results file) is ``mer bench``.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from mer_core.jobs.bench import BenchPlan, bench_loso, private_cache  # noqa: E402
from mer_core.jobs.bench_report import machine_info  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=())
    parser.add_argument("--executors", nargs="+", default=())
    parser.add_argument("--epochs", type=int, default=0, help="override the preset's epochs (quicker)")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--out", default=str(ROOT / "bench_out" / "training.json"))
    args = parser.parse_args()
    plan = BenchPlan(loso_models=tuple(args.models), executors=tuple(args.executors), loso_epochs=args.epochs,
                     loso_reps=args.reps)
    with private_cache():
        rows = bench_loso(plan, print)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"machine": machine_info(), "loso": rows}, indent=1))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
