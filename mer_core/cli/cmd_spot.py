"""``mer spot``: a spotting LOSO on a long-video dataset, stored in the run store; spot-then-recognise.

    mer spot [--dataset synthetic-long] [--dataset-option KEY=VALUE ...] [--spotter motion_curve|learned]
             [--no-stabilise]
             [--recognise RUN_ID] [--submit [--wait]] [--resume SPOT_RUN_ID] [--name NAME] [--json]
    mer spot --list
    mer spot --show SPOT_RUN_ID [--json]

Runs here with progress lines, or as a background job (``--submit``). Each
fold chooses its threshold and peak distance on its training subjects only;
the run stores them, with every fold's intervals. ``--resume`` computes only
the folds not stored yet. ``--recognise RUN_ID`` classifies each spotted
interval with a finished recognition run's model and reports recognition
UF1/UAR on the true-positive spots and STRS = spotting F1 x recognition UF1.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
from typing import Any

from mer_core.errors import MerError
from mer_core.jobs import queue
from mer_core.keyvalue import parse_pairs
from mer_core.store.db import RunStore


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("spot", help="spot micro- and macro-expressions in long videos (LOSO), then recognise",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", default="synthetic-long",
                   help="long-video dataset: synthetic-long (default), casme-sq, samm-lv, casme3-lv, long-manifest")
    p.add_argument("--dataset-option", action="append", default=[], metavar="KEY=VALUE",
                   help="indexer option, e.g. manifest=PATH for long-manifest, subjects=4 for synthetic-long")
    p.add_argument("--root", default="", help="dataset root (default: the configured one)")
    p.add_argument("--spotter", default="motion_curve", help="motion_curve (default) or learned")
    p.add_argument("--no-stabilise", dest="stabilise", action="store_false",
                   help="motion curve: keep the head motion in (raw frame differences, for comparison)")
    p.add_argument("--iou", type=float, default=0.5, help="IoU a hit needs (default 0.5, the MEGC rule)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--recognise", "--recognize", default="", metavar="RUN_ID",
                   help="a finished recognition run that classifies every spotted interval")
    p.add_argument("--submit", action="store_true", help="queue it as a background job instead of running here")
    p.add_argument("--wait", action="store_true", help="with --submit: wait for the job and print its result")
    p.add_argument("--resume", default="", metavar="SPOT_RUN_ID", help="continue a spotting run (finished folds "
                   "are kept); its stored settings are used")
    p.add_argument("--name", default="", help="a label for the run")
    p.add_argument("--list", action="store_true", help="list the stored spotting runs")
    p.add_argument("--show", default="", metavar="SPOT_RUN_ID", help="print a stored spotting run")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.set_defaults(handler=_spot)


def _config(args: argparse.Namespace) -> Any:
    from mer_core.spotting.loso import SpotConfig  # lazy: loads scikit-learn and scipy (about 1 s)

    options = parse_pairs(args.dataset_option, None, "--dataset-option")
    return SpotConfig(dataset=args.dataset, dataset_options=options, root=args.root, spotter=args.spotter,
                      iou=args.iou, seed=args.seed, recognise=args.recognise, stabilise=args.stabilise)


def _spot(args: argparse.Namespace) -> int:
    with RunStore() as store:
        if args.list:
            return _list(store)
        if args.show:
            return _show(store, args.show, args.json)
        if args.resume:
            from mer_core.spotting.loso import SpotConfig  # lazy: loads scikit-learn and scipy (about 1 s)

            config = SpotConfig.from_dict(store.get_spot_run(args.resume)["config"])
            if args.recognise and args.recognise != config.recognise:
                raise MerError(f"spotting run {args.resume} was started with recognise={config.recognise!r}; "
                               "start a new run to recognise with another run")
        else:
            config = _config(args)
        if config.recognise:
            store.get_run(config.recognise)  # an unknown run fails now, not after the LOSO
        if args.submit:
            return _submit(store, config, args)
        from mer_core.spotting.loso import run_spotting  # lazy: loads scikit-learn and scipy (about 1 s)

        t0 = time.time()

        def progress(e: dict[str, Any]) -> None:
            if e.get("event") == "fold_start":
                print(f"fold {e['fold'] + 1}/{e['n_folds']} ({e['name']}) ...", file=sys.stderr, flush=True)
            elif e.get("event") == "fold_done":
                print(f"  {e['done']}/{e['n_folds']} folds stored ({time.time() - t0:.0f} s)", file=sys.stderr,
                      flush=True)

        run_id = run_spotting(config, store=store, run_id=args.resume or None, progress=progress, name=args.name)
        return _show(store, run_id, args.json)


def _submit(store: Any, config: Any, args: argparse.Namespace) -> int:
    job_id = queue.submit_spotting(config, store=store, name=args.name)
    job = queue.get_job(store, job_id)
    print(f"job {job_id} queued -> spotting run {job['run_id']} (log: {job['log_path']})")
    if not args.wait:
        return 0
    job = queue.wait(store, job_id, timeout=24 * 3600)
    print(f"job {job_id} {job['status']}: {job['message']}")
    if job["status"] != "done":
        return 1
    return _show(store, job["run_id"], args.json)


def _fmt(v: Any) -> str:
    return "-" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.3f}"


def _list(store: Any) -> int:
    runs = store.list_spot_runs()
    if runs.empty:
        print("no spotting runs yet: `mer spot` starts one")
        return 0
    for r in runs.itertuples():
        print(f"{r.id}  {r.status:9s} {r.dataset:15s} {r.spotter:12s} folds {r.folds_done}/{r.n_folds}  "
              f"F1 {_fmt(r.f1)} (micro {_fmt(r.micro_f1)}, macro {_fmt(r.macro_f1)})  STRS {_fmt(r.strs)}")
    return 0


def _show(store: Any, run_id: str, as_json: bool) -> int:
    run = store.get_spot_run(run_id)
    s = run["summary"]
    if as_json:
        json.dump({k: run[k] for k in ("id", "status", "dataset", "spotter", "config", "n_folds", "wall_time",
                                       "error")} | {"summary": s}, sys.stdout, indent=1, default=str)
        print()
        return 0 if run["status"] == "done" else 1
    print(f"spotting run {run['id']}: {run['status']}, {run['dataset']}, spotter {run['spotter']}, "
          f"{run['n_folds']} folds, {run['wall_time']:.0f} s")
    if run["error"]:
        print(f"  {run['error']}")
    if not s:
        return 1
    print("pooled over all videos, one-to-one matching at IoU >= "
          f"{s.get('iou', 0.5)} (MER Bench's rule; docs/spotting.md):")
    for kind in ("overall", "micro", "macro"):
        x = s["scores"][kind]
        o = s["official"][kind]
        print(f"  {kind:8s} TP {x['tp']:4d} FP {x['fp']:4d} FN {x['fn']:4d}  P {_fmt(x['precision'])} "
              f"R {_fmt(x['recall'])} F1 {_fmt(x['f1'])}   (official script's counting: F1 {_fmt(o['f1'])})")
    print("chosen on the training subjects of each fold (threshold, peak distance in frames):")
    for c in s.get("chosen", []):
        parts = [f"{k} {c[k]['threshold']:.3g}/{c[k]['distance']}" for k in ("micro", "macro") if c.get(k)]
        print(f"  fold {c['fold'] + 1:3d} {c['subject']:24s} " + ", ".join(parts))
    rec = s.get("recognition")
    if rec:
        for scope in ("all", "micro"):
            r = rec[scope]
            print(f"spot-then-recognise ({scope}) with run {rec['run']} ({rec['model']}): recognition UF1 "
                  f"{_fmt(r['recognition_uf1'])}, UAR {_fmt(r['recognition_uar'])} on {r['n_true_positives'] or 0} "
                  f"true-positive spots; spotting F1 {_fmt(r['spot_f1'])}; STRS {_fmt(r['strs'])}")
        print(f"  {rec['caveat']}")
    return 0 if run["status"] == "done" else 1
