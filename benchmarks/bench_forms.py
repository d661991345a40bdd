"""Every model at its ``auto`` preset on the composite-shaped synthetic export, against each preset's time target.

    .venv/bin/python benchmarks/bench_forms.py                          # flow + apex, 68 folds, all models
    .venv/bin/python benchmarks/bench_forms.py --models ststnet --seeds 0 1 2
    .venv/bin/python benchmarks/bench_forms.py --form apex-only --models dense_attention
    .venv/bin/python benchmarks/bench_forms.py --subjects 3 --epochs 1  # a smoke run, seconds

Writes ``mer synth --export FORM`` to a temporary folder (or ``--out``), then
runs an honest LOSO (one fold per subject, last epoch, nothing selected on the
test subject) for each model and seed through the same path as ``mer loso
--dataset manifest --dataset-option manifest=DIR`` (``resolve_experiment``
with preset ``auto``). Prints and writes (``bench_out/forms.json``) the
resolved preset, wall time, pooled UF1/UAR and per-part UF1/UAR per run.
Targets (2 CPU cores): ststnet under 3 minutes, MFDAN and DenseAttention
under 20 minutes each; the paper models at least as good as ststnet.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from mer_core.datasets.synthetic.export import export_public  # noqa: E402
from mer_core.benchmarking.proctree import TreeMonitor  # noqa: E402
from mer_core.store.db import RunStore  # noqa: E402
from mer_core.training.engine import run_experiment  # noqa: E402
from mer_core.training.experiment import resolve_experiment  # noqa: E402


def one_run(manifest_dir: Path, model: str, seed: int, epochs: int | None, executor: str = "process") -> dict[str, Any]:
    overrides: dict[str, Any] = {"seed": seed, "record_oracle": True, "executor": executor}
    if epochs is not None:
        overrides["epochs"] = epochs
    config = resolve_experiment("manifest", model, "auto", dataset_options={"manifest": str(manifest_dir)},
                                overrides=overrides)
    t0, load0 = time.time(), os.getloadavg()[0]
    with TreeMonitor() as tree, RunStore() as store:  # CPU and peak memory of the whole tree, pool workers too
        run = store.get_run(run_experiment(config, store=store, name=f"bench_forms {model} seed {seed}"))
    summary = run["summary"]
    pooled = summary.get("pooled", {})
    return dict(
        model=model, preset=config.preset, executor=executor, seed=seed, epochs=config.epochs,
        seconds=round(time.time() - t0, 1), cpu_s_tree=round(tree.cpu_s, 1),
        peak_rss_mb_tree=round(tree.peak_rss_mb),
        uf1=pooled.get("uf1"), uar=pooled.get("uar"), oracle_uf1=summary.get("oracle", {}).get("uf1"),
        per_part={p: {"uf1": s["uf1"], "uar": s["uar"], "n": s["n"]} for p, s in summary.get("per_part", {}).items()},
        run_id=run["id"], load_before=round(load0, 2), load_after=round(os.getloadavg()[0], 2),
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--form", default="flow-apex", choices=("flow-apex", "apex-only"))
    ap.add_argument("--models", nargs="+", default=["ststnet", "mfdan", "dense_attention"])
    ap.add_argument("--seeds", nargs="+", type=int, default=[0])
    ap.add_argument("--subjects", type=int, default=None, help="keep N of the 68 subjects (smoke runs)")
    ap.add_argument("--epochs", type=int, default=None, help="override the preset's epochs (smoke runs)")
    ap.add_argument("--executor", default="process", help="process (all cores, the target's setting) or sequential")
    ap.add_argument("--out", type=Path, default=None, help="export folder (default: a temporary one)")
    ap.add_argument("--json", type=Path, default=ROOT / "bench_out" / "forms.json")
    args = ap.parse_args()
    folder = args.out or Path(tempfile.mkdtemp(prefix="mer-forms-")) / args.form
    export_public(folder, args.form, subjects=args.subjects)
    rows = []
    for model in args.models:
        for seed in args.seeds:
            row = one_run(folder, model, seed, args.epochs, args.executor)
            rows.append(row)
            parts = "  ".join(f"{p} {s['uf1']:.3f}/{s['uar']:.3f}" for p, s in row["per_part"].items())
            print(f"{model:16s} {row['preset']:14s} seed {seed}: UF1 {row['uf1']:.3f} UAR {row['uar']:.3f} "
                  f"in {row['seconds']:.0f} s, peak {row['peak_rss_mb_tree']} MB  (per part UF1/UAR: {parts})", flush=True)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(dict(form=args.form, subjects=args.subjects, runs=rows), indent=2) + "\n")
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
