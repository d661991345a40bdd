"""Training engine benchmark (issue 6): wall time, speed-up, memory, throughput.

For each model at its CPU preset, runs a full LOSO on the default synthetic
set with the ``sequential`` executor (torch using every core) and with
``process`` x2 (one thread each), preprocessing cache warm for both, and reports the
speed-up (target >= 1.6x on 2 cores), the peak resident memory of the run
(including worker processes), and training throughput (samples/s). Results
go to ``bench_out/training.json`` for the benchmarks collection.

Usage::

    .venv/bin/python benchmarks/bench_training.py [--models baseline mfdan] [--epochs N]
        [--composite-size]   # also a 442-sample LOSO memory check (synthetic, 68 subjects)

Runs use a private cache (``bench_out/cache``) so they never touch your runs.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from pathlib import Path

OUT = Path(__file__).resolve().parent.parent / "bench_out"


def peak_rss_mb() -> float:
    """Peak RSS of this process and of its finished children, in MB (Linux: KiB units)."""
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return max(own, kids) / 1024


def run_once(model: str, executor: str, workers: int, epochs: int | None, dataset_options: dict) -> dict:
    from mer_core.store.db import RunStore
    from mer_core.training.engine import run_experiment
    from mer_core.training.experiment import resolve_experiment

    data = {"executor": executor, "workers": workers, "dataset_options": dataset_options, "record_oracle": False}
    if epochs:
        data["epochs"] = epochs
    cfg = resolve_experiment("synthetic", model, "cpu", overrides=data)
    t0 = time.perf_counter()
    rid = run_experiment(cfg)
    wall = time.perf_counter() - t0
    with RunStore() as store:
        run = store.get_run(rid)
        folds = store.folds(rid)
    train_samples = float((folds["n_train"] * folds["epochs_run"]).sum())
    fold_seconds = float(folds["wall_time"].sum())
    return {
        "model": model, "executor": executor, "workers": workers, "epochs": cfg.epochs, "wall_s": round(wall, 2),
        "uf1": run["uf1"], "uar": run["uar"], "n_samples": run["n_samples"], "n_folds": run["n_folds"],
        "train_samples_per_s": round(train_samples / fold_seconds, 1) if fold_seconds else None,
    }


def warm_cache(model: str) -> None:
    from mer_core.training.engine import prepare_experiment
    from mer_core.training.experiment import resolve_experiment

    prepare_experiment(resolve_experiment("synthetic", model, "cpu"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=None)
    parser.add_argument("--epochs", type=int, default=None, help="override the preset's epochs (quicker)")
    parser.add_argument("--composite-size", action="store_true", help="also measure a 442-sample LOSO")
    args = parser.parse_args()
    OUT.mkdir(exist_ok=True)
    os.environ.setdefault("MER_CACHE", str(OUT / "cache"))
    import torch

    from mer_core.models.registry import list_models

    models = args.models or list_models()
    results = []
    for model in models:
        torch.set_num_threads(os.cpu_count() or 1)
        warm_cache(model)  # both timed runs then read the same preprocessed arrays
        seq = run_once(model, "sequential", 1, args.epochs, {})
        par = run_once(model, "process", 2, args.epochs, {})
        speedup = seq["wall_s"] / par["wall_s"] if par["wall_s"] else None
        results += [seq, {**par, "speedup_vs_sequential": round(speedup, 2) if speedup else None}]
        print(f"{model:16s} sequential {seq['wall_s']:7.1f}s  process x2 {par['wall_s']:7.1f}s  "
              f"speed-up {speedup:.2f}x  UF1 {seq['uf1']:.3f}/{par['uf1']:.3f}  "
              f"{seq['train_samples_per_s']} samples/s", flush=True)
    report = {"machine": {"cpus": os.cpu_count(), "torch": torch.__version__,
                          "cuda": torch.cuda.is_available()}, "loso_default_synthetic": results}
    if args.composite_size:
        comp = run_once(models[0], "process", 2, args.epochs or 3,
                        {"subjects": 68, "clips_per_subject": 7, "size": 128})
        comp["peak_rss_mb_incl_workers"] = round(peak_rss_mb(), 1)
        report["composite_size"] = comp
        print(f"442-sample-size LOSO ({models[0]}): {comp['n_samples']} clips, peak RSS "
              f"{comp['peak_rss_mb_incl_workers']:.0f} MB (largest single process)")
    report["peak_rss_mb"] = round(peak_rss_mb(), 1)
    (OUT / "training.json").write_text(json.dumps(report, indent=1))
    print(f"wrote {OUT / 'training.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
