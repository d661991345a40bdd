"""Explanation-report cost: a 167-clip run, the fast methods, deletion/insertion at 10 steps.

    .venv/bin/python benchmarks/bench_explain_report.py                 # the target: < 180 s on 2 cores
    .venv/bin/python benchmarks/bench_explain_report.py --full          # + ROAD, infidelity, 4-clip randomisation check

Trains (untimed) a 1-epoch DenseAttention LOSO run on a synthetic set of
5 subjects x 34 clips in a temporary cache, then times
:func:`mer_core.explain.report.explanation_report` over 167 of its clips with
Saliency, Grad-CAM and the model's attention (maps computed, not cached
beforehand), ``torch.set_num_threads(--threads)``. Writes
``explain_report_<machine kind>.json`` into the shipped results
(``mer_core/benchmarking/data``, where the explanation report's estimate reads it;
``--out`` elsewhere) with the seconds, seconds per clip and the 1-minute load
average (the machine may be shared: context for the figure).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from mer_core.benchmarking.bench_report import machine_kind  # noqa: E402
from mer_core.config import ExperimentConfig  # noqa: E402
from mer_core.explain.report import FAST_METHODS, ReportConfig, explanation_report  # noqa: E402
from mer_core.paths import bench_results_dir  # noqa: E402
from mer_core.store.folders import INPUTS_FILE, run_folder  # noqa: E402
from mer_core.training.engine import run_experiment  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--clips", type=int, default=167)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--full", action="store_true", help="also ROAD, infidelity and the randomisation check")
    ap.add_argument("--reuse", help="a cache folder of an earlier run of this script: its trained run is reused "
                                    "(training skipped), its cached maps and reports deleted before timing")
    ap.add_argument("--out", help="default: explain_report_<machine kind>.json in mer_core.paths.bench_results_dir()")
    args = ap.parse_args()
    if not args.out:
        args.out = str(bench_results_dir() / f"explain_report_{machine_kind()}.json")
    os.environ["MER_CACHE"] = args.reuse or tempfile.mkdtemp(prefix="mer_bench_report_")
    torch.set_num_threads(args.threads)
    subjects = 5
    per_subject = -(-args.clips // subjects)
    cfg = ExperimentConfig.from_dict(dict(
        dataset="synthetic", dataset_options=dict(subjects=subjects, clips_per_subject=per_subject),
        model="dense_attention", epochs=1, executor="sequential"))
    t0 = time.perf_counter()
    rid, train_s = "bench-report", 0.0
    folder = run_folder(rid, create=False)
    if args.reuse and (folder / INPUTS_FILE).exists():
        shutil.rmtree(folder / "explain", ignore_errors=True)  # time the maps too, not a cache read
    else:
        rid = run_experiment(cfg, run_id=rid)
        train_s = time.perf_counter() - t0
    report_cfg = ReportConfig(methods=FAST_METHODS, max_samples=args.clips, steps=args.steps, road=args.full,
                              infidelity=args.full, sanity_samples=4 if args.full else 0)
    load_before = os.getloadavg()[0]
    t0 = time.perf_counter()
    report = explanation_report(rid, report_cfg)
    seconds = time.perf_counter() - t0
    n = len(report["sample_ids"])
    out = {"clips": n, "methods": list(report["methods"]), "steps": args.steps, "full": args.full,
           "threads": args.threads, "seconds": round(seconds, 1), "seconds_per_clip": round(seconds / n, 3),
           "under_180_s": seconds < 180, "train_seconds_untimed": round(train_s, 1),
           "load_average_1min": [round(load_before, 2), round(os.getloadavg()[0], 2)], "cpu_count": os.cpu_count(),
           "torch": torch.__version__}
    print(json.dumps(out, indent=2))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
