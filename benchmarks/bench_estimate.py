"""How good is the job time estimate? Estimate vs measured wall time of finished runs (the target: within +-30%).

    .venv/bin/mer study submit benchmarks/study_synthetic.toml --wait    # 4 models x 3 seeds on the default set
    .venv/bin/python benchmarks/bench_estimate.py --study synthetic-4x3  # writes benchmarks/results/estimate_<kind>.json
    .venv/bin/python benchmarks/bench_estimate.py --runs RUN [RUN ...]

For every finished run it re-plans the run's stored config with
:func:`mer_core.jobs.plan.plan` against the committed results file (the
estimate a user sees in the form and at ``mer submit``), then compares it with
the run's stored wall time (which ends before a ``final_model`` fit, so the
estimate's ``final_s`` is left out of the comparison). Preprocessing is
estimated as cold for every clip (the planner would see a warm cache now,
after the run) unless an earlier run in the store prepared the same inputs
(dataset fingerprint, model, preset and preprocessing settings: the cache
then served this run) or the run's notes say its inputs came from the cache.
Prints one row per run and per model the median ratio estimate / measured.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from mer_core.config import ExperimentConfig  # noqa: E402
from mer_core.errors import MerError  # noqa: E402
from mer_core.jobs.plan import estimate_parts, find_results  # noqa: E402
from mer_core.store.db import RunStore  # noqa: E402


def inputs_cached(store: RunStore, run: dict[str, Any], config: ExperimentConfig) -> bool:
    """Whether a run created before ``run`` prepared the same inputs (so this one read them from the cache)."""
    mine = (config.model, config.preset, config.preprocess)
    return bool(run.get("dataset_fingerprint")) and any(
        (other.model, other.preset, other.preprocess) == mine
        for other in map(ExperimentConfig.from_dict, store.earlier_configs(run)))


def one(store: RunStore, rid: str, results: dict[str, Any], label: str) -> dict[str, Any] | None:
    try:
        run = store.get_run(rid)
    except MerError:  # a cell not started yet
        return None
    if run["status"] != "done" or not run.get("wall_time"):
        return None
    config = ExperimentConfig.from_dict(run["config"])
    notes = " ".join(str(n) for n in (run.get("notes") or []))
    cached = "from the cache" in notes or "cached" in notes or inputs_cached(store, run, config)
    parts = estimate_parts(config, n_samples=int(run["n_samples"]), n_folds=int(run["n_folds"]),
                           n_cached=int(run["n_samples"]) if cached else 0, results=results)
    measured = float(run["wall_time"])
    estimate = parts["total_s"] - parts.get("final_s", 0.0)  # the stored wall time ends before the final model
    return {"run_id": rid, "model": config.model, "preset": config.preset, "executor": config.executor,
            "epochs": config.epochs, "seed": config.seed, "n_samples": int(run["n_samples"]),
            "n_folds": int(run["n_folds"]), "estimate_s": round(estimate, 1),
            "estimate_parts_s": {k: round(parts[k], 1) for k in ("preprocess_s", "pretrain_s", "train_s")},
            "preprocess": "cached" if cached else "cold",
            "measured_s": round(measured, 1), "ratio": round(estimate / measured, 3),
            "source": parts["sources"]["train"], "results_file": label}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--study", default=None, help="a study name: every finished cell")
    ap.add_argument("--runs", nargs="*", default=[])
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    results, label = find_results()
    if results is None:
        print(f"no committed benchmark results ({label}): the estimate would use rough constants", file=sys.stderr)
        return 2
    with RunStore() as store:
        ids = [str(r) for r in store.study_cells(args.study)["run_id"] if r] if args.study else args.runs
        rows = [r for rid in ids if (r := one(store, rid, results, label))]
    if not rows:
        print("no finished runs to compare", file=sys.stderr)
        return 2
    per_model: dict[str, dict[str, float]] = {}
    for model in sorted({r["model"] for r in rows}):
        ratios = [r["ratio"] for r in rows if r["model"] == model]
        per_model[model] = {"median_ratio": round(statistics.median(ratios), 3), "min": min(ratios),
                            "max": max(ratios), "runs": len(ratios),
                            "within_30pct": all(0.7 <= x <= 1.3 for x in ratios)}
    for r in rows:
        print(f"{r['model']:16s} seed {r['seed']}: estimate {r['estimate_s']:7.1f} s, measured {r['measured_s']:7.1f} s,"
              f" ratio {r['ratio']:.2f}  ({r['source']})")
    for model, s in per_model.items():
        verdict = "within +-30%" if s["within_30pct"] else "OUTSIDE +-30%"
        print(f"{model:16s} median ratio {s['median_ratio']:.2f} (min {s['min']:.2f}, max {s['max']:.2f}): {verdict}")
    kind = (results.get("machine", {}) or {}).get("kind", "cpu-2core")
    out = args.json or ROOT / "benchmarks" / "results" / f"estimate_{kind}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"results_file": label, "study": args.study, "per_model": per_model, "runs": rows,
                               "machine": {"cpu": platform.processor() or platform.machine(),
                                           "cores": os.cpu_count(), "load_avg": os.getloadavg()[0]}},
                              indent=1) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
