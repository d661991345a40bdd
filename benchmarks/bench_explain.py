"""Explanation cost: seconds per sample of each method for every CPU-preset model.

    .venv/bin/python benchmarks/bench_explain.py                # 1 and 2 threads (budget: IG < 5 s on 2 cores)
    .venv/bin/python benchmarks/bench_explain.py --threads 2 --repeats 5 --methods integrated_gradients occlusion

Writes bench_out/explain.json. Each registered model is built at its ``cpu``
preset (3 classes, random weights: the cost does not depend on training) and
explained for one random input of its own channels and size through
:func:`mer_core.explain.attributions.explain` with the defaults the Explain
page uses (Integrated Gradients 32 steps, SmoothGrad 16 samples, Occlusion
window H/8 stride H/16). Reported: median of ``--repeats`` calls after one
warm-up, plus the model's own attention where it has one, per thread count,
with the 1-minute load average: on a shared, oversubscribed machine two
threads can be several times *slower* than one (OpenMP threads wait on each
other), so compare the thread counts before drawing conclusions.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from mer_core.explain.attention import has_attention, model_attention  # noqa: E402
from mer_core.explain.attributions import METHODS, explain  # noqa: E402
from mer_core.models import create_model, list_models  # noqa: E402


def timed(fn, repeats: int) -> float:
    fn()  # warm-up (allocations, Captum hooks)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--methods", nargs="*", default=["integrated_gradients", "saliency", "gradcam"],
                    choices=list(METHODS), help="default: the page's quick methods (occlusion and smoothgrad are "
                                                "slower; add them explicitly)")
    ap.add_argument("--out", default=str(ROOT / "bench_out" / "explain.json"))
    args = ap.parse_args()
    by_threads: dict[str, dict[str, dict[str, float]]] = {}
    for threads in args.threads:
        torch.set_num_threads(threads)
        torch.manual_seed(0)
        results: dict[str, dict[str, float]] = {}
        for name in list_models():
            model = create_model(name, "cpu", num_classes=3)
            cfg = model.config
            x = torch.rand(len(cfg.channels), cfg.input_size, cfg.input_size)
            row: dict[str, float] = {"input": f"{len(cfg.channels)}x{cfg.input_size}x{cfg.input_size}",
                                     "parameters": sum(p.numel() for p in model.parameters())}
            for method in args.methods:
                row[method] = round(timed(lambda: explain(model, x, 0, method), args.repeats), 4)
            if has_attention(model):
                row["attention"] = round(timed(lambda: model_attention(model, x), args.repeats), 4)
            row["load_average_1min"] = round(os.getloadavg()[0], 2)  # the machine is shared: context for the times
            results[name] = row
            print(f"threads={threads}", name, json.dumps(row), flush=True)
        by_threads[str(threads)] = results
    best = {name: min(r[name].get("integrated_gradients", float("inf")) for r in by_threads.values())
            for name in list_models()}
    out = {"threads": args.threads, "repeats": args.repeats, "torch": torch.__version__,
           "machine": platform.processor() or platform.machine(), "cpu_count": os.cpu_count(),
           "note": "seconds per sample (median), random-weight cpu-preset models, 3 classes",
           "ig_best_seconds": best, "ig_under_5s": {k: v < 5 for k, v in best.items()},
           "by_threads": by_threads}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=2))
    print(f"written {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
