"""Fold-batched executor benchmark (issue 16): per-fold step cost per K, and LOSO wall time per executor.

1. Step cost: one optimiser step of K STSTNet folds (CPU preset, batch 32, 28 px) through
   ``batched.vmapped_step`` (K stacked models, one vmapped forward/backward), reported as
   milliseconds per fold-step, against the plain single-model ``TrainState.step``.
2. LOSO: a composite-sized synthetic set (68 subjects, ~7 clips each) trained by
   ``sequential`` (torch on ``--threads`` threads), ``process`` (2 workers, 1 thread each) and
   ``batched``, with the same short schedule, reporting wall time and pooled UF1/UAR.

Usage::

    .venv/bin/python benchmarks/bench_batched.py [--epochs 3] [--ks 1 4 16 68] [--skip-loso]

Writes ``benchmarks/results/batched_<device>.json``. Runs use a private cache
(``bench_out/cache``) so they never touch your runs.
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

ROOT = Path(__file__).resolve().parent.parent
os.environ.setdefault("MER_CACHE", str(ROOT / "bench_out" / "cache"))
sys.path.insert(0, str(ROOT))

COMPOSITE = {"subjects": 68, "clips_per_subject": 7, "size": 64, "frames": 16}


def step_cost(k: int, steps: int, reps: int) -> dict:
    """Median (min, max) ms per fold-step of K folds stepped together, over ``reps`` timings of ``steps`` steps."""
    import numpy as np
    import torch

    from mer_core.config import ExperimentConfig
    from mer_core.models.registry import create_model
    from mer_core.training import batched, trainer as tr

    cfg = ExperimentConfig(model="ststnet", optimizer="adam", lr=1e-3, batch_size=32, augment=False)
    y = np.arange(64) % 3
    runs = []
    for i in range(k):
        torch.manual_seed(i)
        st = tr.TrainState.create(create_model("ststnet"), cfg, y, 3, ("flow_u", "flow_v", "strain"),
                                  torch.device("cpu"))
        run = batched.FoldRun(None, cfg, st, None, None, None, None, None,  # type: ignore[arg-type]
                              dict(st.model.named_parameters()), dict(st.model.named_buffers()))
        run.sums = [torch.zeros((), dtype=torch.float64) for _ in range(3)]
        runs.append(run)
    xs = [torch.randn(32, 3, 28, 28) for _ in range(k)]
    ys = [torch.randint(0, 3, (32,)) for _ in range(k)]
    batched.vmapped_step(runs, xs, ys)  # warm-up
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        for _ in range(steps):
            batched.vmapped_step(runs, xs, ys)
        times.append((time.perf_counter() - t0) / steps / k * 1e3)
    return {"k": k, "ms_per_fold_step": round(statistics.median(times), 2), "min": round(min(times), 2),
            "max": round(max(times), 2), "path": "TrainState.step" if k == 1 else "vmap(functional_call)"}


def loso(executor: str, epochs: int, threads: int) -> dict:
    import torch

    from mer_core.store.db import RunStore
    from mer_core.training.engine import run_experiment
    from mer_core.training.experiment import resolve_experiment

    torch.set_num_threads(threads)
    over = {"executor": executor, "workers": 2 if executor == "process" else 1, "epochs": epochs,
            "dataset_options": COMPOSITE, "record_oracle": False}
    cfg = resolve_experiment("synthetic", "ststnet", "cpu", overrides=over)
    t0 = time.perf_counter()
    rid = run_experiment(cfg)
    wall = time.perf_counter() - t0
    with RunStore() as store:
        run = store.get_run(rid)
    return {"executor": executor, "workers": over["workers"], "threads": threads, "epochs": epochs,
            "wall_s": round(wall, 2), "uf1": run["uf1"], "uar": run["uar"], "n_samples": run["n_samples"],
            "n_folds": run["n_folds"], "status": run["status"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=3, help="LOSO epochs (the CPU preset trains 30)")
    parser.add_argument("--ks", type=int, nargs="+", default=[1, 4, 16, 68])
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--skip-loso", action="store_true")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    report: dict = {"machine": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
                                "torch": torch.__version__, "device": "cpu", "threads": args.threads,
                                "load_avg_at_start": os.getloadavg()[0]},
                    "model": "ststnet (cpu preset, batch 32, 28 px)", "step_cost": []}
    out = ROOT / "benchmarks" / "results" / "batched_cpu.json"

    def save() -> None:  # after every measurement, so an interrupted run keeps what it measured
        report["machine"]["load_avg_at_end"] = os.getloadavg()[0]
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(report, indent=1) + "\n")

    for k in args.ks:
        report["step_cost"].append(step_cost(k, args.steps, args.reps))
        print(report["step_cost"][-1], flush=True)
        save()
    if not args.skip_loso:
        report["loso"] = {"dataset": {"name": "synthetic", **COMPOSITE}, "runs": []}
        # a warm-up run fills the preprocessing cache, so every executor below trains on cached arrays
        loso("sequential", 1, args.threads)
        for executor in ("sequential", "process", "batched"):
            report["loso"]["runs"].append(loso(executor, args.epochs, args.threads))
            print(report["loso"]["runs"][-1], flush=True)
            save()
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
