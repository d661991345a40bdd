"""Calibration table of the realism-calibrated synthetic variant.

Writes the composite-shaped flow + apex export (68 subjects, 442 clips) with
the realism mechanisms at their calibrated defaults, measures the
model-independent statistics of :mod:`mer_core.evaluation.difficulty` on it,
and prints them beside the real MEGC2019 composite's (measured outside the
project) and, with ``--baseline``, beside the default export's.

    .venv/bin/python benchmarks/bench_realism.py [--baseline] [--seeds 0 1 2]

Writes ``benchmarks/results/realism_calibration.json`` and ``.md``. Every
classifier figure is a LOSO over the subjects with pooled UF1; nothing is
chosen on a test subject. ``--set KEY=VALUE`` overrides a realism option (for
calibrating; a changed default bumps ``REALISM_VERSION``), ``--out`` writes
elsewhere.
"""
from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path

import numpy as np

from mer_core.datasets.synthetic.export import export_public
from mer_core.datasets.synthetic.realism import REALISM_VERSION, Realism
from mer_core.evaluation.difficulty import CALIBRATED, REAL_COMPOSITE, STAT_LABELS, TOLERANCE, difficulty_statistics, load_features

RESULTS = Path(__file__).resolve().parent / "results"


def measure(realism: Realism | None, seed: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        manifest = export_public(Path(tmp) / "x", "flow-apex", seed=seed, realism=realism)
        return difficulty_statistics(load_features(manifest))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--baseline", action="store_true", help="also measure the default (no realism) export")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a realism option")
    ap.add_argument("--out", type=Path, default=RESULTS / "realism_calibration")
    args = ap.parse_args()
    realism = Realism.from_options(args.set)
    t0 = time.time()
    runs = {seed: measure(realism, seed) for seed in args.seeds}
    seconds = time.time() - t0
    base = measure(None, args.seeds[0]) if args.baseline else None
    names = list(REAL_COMPOSITE)
    mean = {n: float(np.mean([r[n] for r in runs.values()])) for n in names}
    result = dict(
        version=REALISM_VERSION, realism=realism.to_dict(), seeds=args.seeds, per_seed=runs,
        mean={n: round(v, 4) for n, v in mean.items()}, real=REAL_COMPOSITE, baseline=base, tolerance=TOLERANCE,
        within={n: abs(mean[n] - REAL_COMPOSITE[n]) <= TOLERANCE for n in CALIBRATED},
        seconds=round(seconds, 1), machine=platform.machine(),
        command="python benchmarks/bench_realism.py " + " ".join(
            [f"--seeds {' '.join(map(str, args.seeds))}"] + (["--baseline"] if args.baseline else [])
            + [f"--set {s}" for s in args.set]),
    )
    lines = [
        f"# Realism-calibrated synthetic variant, calibration {REALISM_VERSION}",
        "",
        "Model-independent statistics of the composite-shaped flow + apex export (68 subjects, 442 clips),",
        "each a LOSO over the subjects with pooled UF1. The real column was measured on a real MEGC2019",
        "composite that MER Bench does not ship. Synthetic figures are means over seeds "
        f"{', '.join(map(str, args.seeds))}. Target: within ±{TOLERANCE} on the calibrated rows.",
        "",
        "| statistic | real composite | realism variant | difference | within ±0.04 |"
        + (" default export |" if base else ""),
        "|---|---:|---:|---:|:---:|" + ("---:|" if base else ""),
    ]
    for n in names:
        within = ("yes" if result["within"][n] else "**no**") if n in CALIBRATED else "(not calibrated)"
        row = f"| {STAT_LABELS[n]} | {REAL_COMPOSITE[n]:.3f} | {mean[n]:.3f} | {mean[n] - REAL_COMPOSITE[n]:+.3f} | {within} |"
        lines.append(row + (f" {base[n]:.3f} |" if base else ""))
    lines += ["", f"Command: `{result['command']}` ({seconds:.0f} s on {platform.machine()})."]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
    args.out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
