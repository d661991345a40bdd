"""Spotting in long videos under LOSO: F1 per type and wall time of both spotters on the synthetic long-video variant.

    .venv/bin/python benchmarks/bench_spotting_loso.py                       # default size, both spotters
    .venv/bin/python benchmarks/bench_spotting_loso.py --recognise RUN_ID    # + spot-then-recognise (STRS)
    .venv/bin/python benchmarks/bench_spotting_loso.py --dataset-option subjects=2 --dataset-option max_seconds=5 \
        --out bench_out/spotting_tiny                                         # a quick check of the script
    .venv/bin/python benchmarks/bench_spotting_loso.py --spotters motion_curve --compare-stabilise \
        --out bench_out/spotting_stabilise                                    # motion curve with and without
                                                                              # head-motion removal

For each spotter (motion_curve, learned) it runs the whole spotting LOSO of
:func:`mer_core.spotting.loso.run_spotting` from cold features (the cached
features of the set's videos are removed first, so feature extraction is
timed), in a temporary run store, and reports the pooled precision, recall
and F1 per type (MER Bench's one-to-one rule, and the official script's
counting beside it, labelled), the thresholds the folds chose, the wall and
CPU time, and the load average before and after (the machine is shared: a
high load stretches the wall time). Generating the set is timed apart
(done once, then reused). Targets on 2 cores: the motion-curve LOSO within
5 minutes, the learned one within 15.

Writes ``<out>.json`` and ``<out>.md`` (default ``benchmarks/results/spotting``).
All figures are on synthetic data.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from mer_core.keyvalue import parse_pairs  # noqa: E402
from mer_core.spotting.features import KINDS, cache_key, features_dir  # noqa: E402
from mer_core.spotting.loso import SpotConfig, load_dataset, run_spotting  # noqa: E402
from mer_core.store.db import RunStore, code_version  # noqa: E402

TARGET_S = {"motion_curve": 5 * 60, "learned": 15 * 60}


def _cpu_s() -> float:
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def _load() -> list[float]:
    return [round(v, 2) for v in os.getloadavg()]


def _f(v) -> str:
    return "-" if v is None else f"{v:.3f}"


def bench(spotter: str, options: dict, recognise: str, store: RunStore, stabilise: bool = True) -> dict:
    config = SpotConfig(dataset="synthetic-long", dataset_options=options, spotter=spotter, recognise=recognise,
                        stabilise=stabilise)
    ds = load_dataset(config)
    for video in ds.videos.to_dict("records"):  # cold: every feature of every video is computed in the run
        for kind in KINDS:
            (features_dir() / f"{cache_key(video, kind)}.npz").unlink(missing_ok=True)
    load_before, cpu0, t0 = _load(), _cpu_s(), time.time()
    run_id = run_spotting(config, store=store, dataset=ds)
    wall, cpu = time.time() - t0, _cpu_s() - cpu0
    run = store.get_spot_run(run_id)
    s = run["summary"]
    out = {"spotter": spotter if spotter != "motion_curve" or stabilise else "motion_curve, head motion kept",
           "stabilise": stabilise, "wall_s": round(wall, 1), "cpu_s": round(cpu, 1), "load_before": load_before,
           "load_after": _load(), "target_s": TARGET_S[spotter], "within_target": wall <= TARGET_S[spotter],
           "scores": s["scores"], "official": s["official"], "chosen": s["chosen"], "n_folds": run["n_folds"]}
    if s.get("recognition"):
        out["recognition"] = s["recognition"]
        out["strs"] = s.get("strs")
        out["recognition_run"] = recognition_run(store, recognise)
    return out


def recognition_run(store: RunStore, run_id: str) -> dict:
    """What the recognition run is: its model, preset, data and its own LOSO figures."""
    r = store.get_run(run_id)
    return {"id": run_id, "model": r["model"], "preset": r["config"].get("preset", ""), "dataset": r["dataset"],
            "n_samples": r.get("n_samples"), "uf1": r["uf1"], "uar": r["uar"]}


def markdown(report: dict) -> str:
    d = report["data"]
    lines = ["# Spotting in long videos, LOSO (synthetic data)", "",
             f"Synthetic long-video variant (`synthetic-long`, options {report['options'] or 'default'}): "
             f"{d['videos']} videos of {d['subjects']} subjects, {d['frames']} frames, {d['micro']} micro- and "
             f"{d['macro']} macro-expressions; generated in {report['generate_s']} s (once, then reused). "
             f"{report['cores']} cores, commit {report['commit']}. Command: `{report['command']}`.", "",
             "Pooled over all videos, one-to-one matching at IoU >= 0.5 (MER Bench's rule); the official MEGC "
             "script's counting in brackets (docs/spotting.md). Thresholds chosen per fold on the training "
             "subjects only.", "",
             "| spotter | micro F1 | macro F1 | overall F1 (official) | TP / FP / FN | wall s (target) | CPU s | "
             "load before / after |", "|---|---:|---:|---:|---:|---:|---:|---|"]
    for r in report["runs"]:
        o = r["scores"]["overall"]
        lines.append(f"| {r['spotter']} | {_f(r['scores']['micro']['f1'])} | {_f(r['scores']['macro']['f1'])} | "
                     f"{_f(o['f1'])} ({_f(r['official']['overall']['f1'])}) | {o['tp']} / {o['fp']} / {o['fn']} | "
                     f"{r['wall_s']} ({r['target_s']}) | {r['cpu_s']} | {r['load_before'][0]} / {r['load_after'][0]} |")
    for r in report["runs"]:
        if r.get("recognition"):
            a, m = r["recognition"]["all"], r["recognition"]["micro"]
            rr = r.get("recognition_run")
            what = (f", {rr['model']} at preset {rr['preset']} trained on {rr['dataset']}, its own LOSO UF1 "
                    f"{_f(rr['uf1'])} / UAR {_f(rr['uar'])}") if rr else ""
            lines += ["", f"Spot-then-recognise with the {r['spotter']} spotter (recognition run "
                          f"{r['recognition']['run']}{what}): "
                          f"recognition UF1 {_f(a['recognition_uf1'])} / UAR {_f(a['recognition_uar'])} on "
                          f"{a['n_true_positives']} true-positive spots, STRS {_f(a['strs'])}; micro only: UF1 "
                          f"{_f(m['recognition_uf1'])}, STRS {_f(m['strs'])}."]
    return "\n".join(lines) + "\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--spotters", default="motion_curve,learned")
    ap.add_argument("--dataset-option", action="append", default=[], metavar="KEY=VALUE",
                    help="synthetic-long option (default size when none)")
    ap.add_argument("--recognise", default="", metavar="RUN_ID", help="a finished recognition run for STRS")
    ap.add_argument("--compare-stabilise", action="store_true",
                    help="also run the motion curve with the head motion kept in (raw differences)")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "spotting"),
                    help="writes OUT.json and OUT.md")
    args = ap.parse_args()
    options = parse_pairs(args.dataset_option, None, "--dataset-option")
    t0 = time.time()
    ds = load_dataset(SpotConfig(dataset="synthetic-long", dataset_options=options))
    generate_s = round(time.time() - t0, 1)
    counts = ds.counts()
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        # runs go to a temporary store; with --recognise to the run store that holds the recognition run
        with RunStore(None if args.recognise else Path(tmp) / "runs.sqlite") as store:
            arms = [(s.strip(), True) for s in args.spotters.split(",") if s.strip()]
            if args.compare_stabilise and ("motion_curve", True) in arms:
                arms.insert(arms.index(("motion_curve", True)) + 1, ("motion_curve", False))
            for spotter, stabilise in arms:
                print(f"[bench] {spotter}{'' if stabilise else ' (head motion kept)'} ...", flush=True)
                runs.append(bench(spotter, options, args.recognise, store, stabilise))
                r = runs[-1]
                print(f"[bench] {r['spotter']}: micro F1 {_f(r['scores']['micro']['f1'])}, macro F1 "
                      f"{_f(r['scores']['macro']['f1'])}, {r['wall_s']} s (load {r['load_before'][0]} -> "
                      f"{r['load_after'][0]})", flush=True)
    report = {"data": counts, "options": options, "generate_s": generate_s, "cores": os.cpu_count(),
              "commit": code_version(), "date": time.strftime("%Y-%m-%d"), "synthetic": True,
              "command": "python benchmarks/bench_spotting_loso.py " + " ".join(sys.argv[1:]), "runs": runs}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(report, indent=1, default=str) + "\n")
    out.with_suffix(".md").write_text(markdown(report))
    print(f"[bench] wrote {out.with_suffix('.json')} and {out.with_suffix('.md')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
