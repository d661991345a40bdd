"""Table of the LOSO runs stored on the realism-calibrated variant, beside the real composite's figures.

Reads the run store (``mer show RUN --json``, the same numbers the Run page
shows) and writes ``benchmarks/results/realism_models.md`` and ``.json``: per
run its model, preset, seed, pooled UF1/UAR, the test-selected "oracle" UF1
(a labelled diagnostic, never a result), per-part UF1 and wall time. The
runs are made by

    mer synth --realism composite
    mer loso --dataset synthetic-realism --model MODEL     # preset auto

and listed with ``--runs RUN_ID ...`` (default: every finished LOSO run on
synthetic-realism with the calibrated variant's default options).
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from mer_core.store.db import RunStore

RESULTS = Path(__file__).resolve().parent / "results"
# measured on a real MEGC2019 composite that MER Bench does not ship (commit c578abe)
REAL = {"linear": (0.719, 0.729, None), "ststnet": (0.717, 0.742, 0.773), "dense_attention": (0.605, 0.645, 0.749),
        "mfdan": (0.582, 0.599, 0.668)}


def mer(*args: str) -> str:
    exe = Path(sys.executable).with_name("mer")
    return subprocess.run([str(exe), *args], check=True, capture_output=True, text=True).stdout


def stored_runs() -> list[str]:
    with RunStore() as store:
        table = store.list_runs()
    keep = table[(table["dataset"] == "synthetic-realism") & (table["status"] == "done") & (table["protocol"] == "loso")]
    return list(keep["id"])


def row(run_id: str) -> dict:
    data = json.loads(mer("show", run_id, "--json"))
    with RunStore() as store:
        info = store.get_run(run_id)
    cfg = info["config"]
    s = data["summary"]
    return dict(run=run_id, model=cfg.get("model"), preset=cfg.get("preset"), seed=cfg.get("seed"),
                options=cfg.get("dataset_options", {}), epochs=cfg.get("epochs"), weight_decay=cfg.get("weight_decay"),
                uf1=round(s["pooled"]["uf1"], 4), uar=round(s["pooled"]["uar"], 4),
                oracle_uf1=round(s["oracle"]["uf1"], 4) if s.get("oracle") else None,
                parts={p: round(v["uf1"], 4) for p, v in (s.get("per_part") or {}).items()},
                seconds=round(info["wall_time"]) if info.get("wall_time") else None)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", nargs="*", default=None)
    ap.add_argument("--out", type=Path, default=RESULTS / "realism_models")
    ap.add_argument("--note", default="", help="a line under the table (e.g. what else the machine ran)")
    args = ap.parse_args()
    rows = [row(r) for r in (args.runs or stored_runs())]
    lines = ["# Models on the realism-calibrated variant (synthetic, calibration composite-1)", "",
             "Synthetic data: the realism variant (`mer synth --realism composite`, seed 0, 68 subjects, 442 clips,",
             "flow + apex form). Honest LOSO, last epoch; the oracle column is a test-selected diagnostic, never a",
             "result. The real column was measured on a real MEGC2019 composite that MER Bench does not ship",
             "(commit c578abe, same presets). One training seed per row: seed noise is not in these figures.", "",
             "| model | preset | epochs, weight decay | seed | UF1 | UAR | oracle UF1 (gap) | CASME II / SAMM / SMIC UF1 | real UF1 / UAR | wall (s) | run |",
             "|---|---|---|---:|---:|---:|---:|---|---|---:|---|"]
    for r in rows:
        gap = f"{r['oracle_uf1']:.3f} ({r['oracle_uf1'] - r['uf1']:+.3f})" if r["oracle_uf1"] is not None else "-"
        parts = " / ".join(f"{r['parts'].get(p, float('nan')):.3f}" for p in ("casme2", "samm", "smic"))
        real = REAL.get(r["model"])
        real_s = f"{real[0]:.3f} / {real[1]:.3f}" if real else "-"
        lines.append(f"| {r['model']} | {r['preset']} | {r['epochs']}, {r['weight_decay']:g} | {r['seed']} | {r['uf1']:.3f} | {r['uar']:.3f} | {gap} | "
                     f"{parts} | {real_s} | {r['seconds'] or '-'} | `{r['run']}` |")
    lines += ["", args.note] if args.note else []
    lines += ["", "Command: `python benchmarks/realism_runs_table.py" + (" --runs " + " ".join(args.runs) if args.runs else "")
              + "` (reads the run store)."]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(rows, indent=2) + "\n")
    args.out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
