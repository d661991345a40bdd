"""Fingerprint of the stored predictions of a few small runs: a refactor's check that nothing moved.

Runs every registered model with the process executor, plus the baseline with
the sequential executor, on a small synthetic set (the default generator with
a few subjects), for one or two epochs, each in a throwaway cache and run
store, and writes one JSON: per configuration, a sha256 of the stored
per-sample predicted labels and one of the stored probabilities (bit for bit,
as the store keeps them), with the resolved config's hash beside them.

Run it before a change and after it, and compare the files::

    nice python benchmarks/predictions_fingerprint.py /tmp/fp_before.json
    ...change...
    nice python benchmarks/predictions_fingerprint.py /tmp/fp_after.json
    python benchmarks/predictions_fingerprint.py --compare /tmp/fp_before.json /tmp/fp_after.json

On two cores the five runs take about a minute or two. Equal prediction
hashes mean the change moved no prediction, label or probability; the config
hash changes when the change touches what a config says (a renamed key).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from mer_core.models.registry import list_models  # noqa: E402
from mer_core.store.db import RunStore  # noqa: E402
from mer_core.training.engine import run_experiment  # noqa: E402
from mer_core.training.experiment import resolve_experiment  # noqa: E402


def _runs(models: list[str]) -> list[tuple[str, str]]:
    """(model, executor) pairs: every model on the process pool, the baseline (or the first model) sequentially."""
    seq = "baseline" if "baseline" in models else models[0]
    return [(m, "process") for m in models] + [(seq, "sequential")]


def _digest(values: list[Any]) -> str:
    return hashlib.sha256(json.dumps(values, separators=(",", ":")).encode()).hexdigest()[:16]


def fingerprint(models: list[str] | None, subjects: int, clips: int, epochs: int, workers: int) -> dict[str, Any]:
    models = models or list_models()
    out: dict[str, Any] = {"subjects": subjects, "clips_per_subject": clips, "epochs": epochs, "workers": workers,
                           "runs": {}}
    with RunStore(Path(os.environ["MER_CACHE"]) / "fingerprint.sqlite") as store:
        for model, executor in _runs(models):
            config = resolve_experiment(
                "synthetic", model, "auto",
                overrides={"epochs": epochs, "executor": executor, "workers": workers, "seed": 0,
                           "keep_checkpoints": False},
                dataset_options={"subjects": subjects, "clips_per_subject": clips},
            )
            t0 = time.time()
            run_id = run_experiment(config, store=store)
            pred = store.predictions(run_id)
            key = f"{model}/{executor}"
            out["runs"][key] = {
                "preset": config.preset,
                "config_hash": config.stable_hash(),
                "n": int(len(pred)),
                "labels": _digest([[str(s), int(p)] for s, p in zip(pred["sample_id"], pred["y_pred"])]),
                "probs": _digest([[float(v) for v in p] for p in pred["probs"]]),
                "seconds": round(time.time() - t0, 1),
            }
            print(f"{key:28s} {out['runs'][key]['labels']} {out['runs'][key]['probs']} "
                  f"({out['runs'][key]['seconds']} s)", flush=True)
    return out


def compare(a: dict[str, Any], b: dict[str, Any]) -> tuple[list[str], list[str]]:
    """(differences in the predictions of the runs both files have, runs only one file has)."""
    diffs, only = [], []
    for key in sorted(set(a["runs"]) | set(b["runs"])):
        ra, rb = a["runs"].get(key), b["runs"].get(key)
        if ra is None or rb is None:  # a model registered (or removed) in between: nothing to compare
            only.append(f"{key}: only in {'the second' if ra is None else 'the first'} file")
            continue
        for field in ("n", "labels", "probs"):
            if ra[field] != rb[field]:
                diffs.append(f"{key}: {field} {ra[field]} -> {rb[field]}")
    return diffs, only


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out", nargs="?", help="where to write the JSON")
    ap.add_argument("--compare", nargs=2, metavar=("BEFORE", "AFTER"), help="compare two fingerprint files")
    ap.add_argument("--models", nargs="+", help="models (default: every registered model)")
    ap.add_argument("--subjects", type=int, default=3)
    ap.add_argument("--clips", type=int, default=8, help="clips per subject")
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--workers", type=int, default=2, help="process pool workers")
    ap.add_argument("--cache", help="cache folder (default: a temporary one, removed afterwards)")
    args = ap.parse_args(argv)
    if args.compare:
        a, b = (json.loads(Path(p).read_text()) for p in args.compare)
        diffs, only = compare(a, b)
        print("\n".join(only + diffs))
        print(f"{len(set(a['runs']) & set(b['runs'])) - len({d.split(':')[0] for d in diffs})} run(s) with "
              f"identical predictions, {len({d.split(':')[0] for d in diffs})} differing")
        return 1 if diffs else 0
    if not args.out:
        ap.error("give the output path (or --compare BEFORE AFTER)")
    with tempfile.TemporaryDirectory(prefix="mer-fp-") as tmp:
        os.environ["MER_CACHE"] = args.cache or tmp
        os.environ.pop("MER_STORE", None)
        result = fingerprint(args.models, args.subjects, args.clips, args.epochs, args.workers)
    Path(args.out).write_text(json.dumps(result, indent=1, sort_keys=True) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
