"""``mer explain`` and ``mer explain-localisation``: explanations from the command line.

``mer explain RUN SAMPLE_ID --method integrated_gradients --method attention``
explains one sample of a stored run with the fold model that held it out and
prints, per method, where the mass sits (share per input channel, the peak
pixel, the localisation scores on synthetic data). ``--save FILE.npz`` writes
the maps. ``mer explain-localisation RUN [RUN ...]`` prints the per-model,
per-method localisation table of synthetic runs. ``mer explain-report RUN
[--methods ...] [--max-samples N]`` computes (or reads from the cache) the
run-level faithfulness / sanity / localisation report, in this process or, with
``--background``, as a job of the queue. It prints, before the other clips,
how long the slow parts will take as measured on the first clip;
``--estimate`` only prints how long the report would take (a committed
benchmark figure, else one clip measured now) and stops.
"""
from __future__ import annotations

import argparse
import json
import sys
from typing import Any

import numpy as np

from mer_core.jobs.queue import submit_explain_report


# The explainers' names, spelled out so that building the `mer` parser does not import
# torch and captum (tests/test_explain_runs.py checks they match the explain package).
METHOD_CHOICES = ("integrated_gradients", "saliency", "gradcam", "occlusion", "smoothgrad", "attention")


def register(sub: Any) -> None:
    choices = list(METHOD_CHOICES)
    p = sub.add_parser("explain", help="explain one sample of a stored run (Captum attributions, attention)",
                       description="Explain a sample with the fold model that held it out; results are cached "
                                   "under the run folder.")
    p.add_argument("run", help="run id (see `mer runs`)")
    p.add_argument("sample_id", help="sample id as in the run's predictions (see `mer show RUN`)")
    p.add_argument("--method", action="append", choices=choices, default=None,
                   help="attribution method or 'attention' (repeatable; default integrated_gradients)")
    p.add_argument("--target", default="pred", help="class to explain: pred (default), true, an index or a class name")
    p.add_argument("--layer", help="Grad-CAM layer (default: the model's coarsest offered layer)")
    p.add_argument("--steps", type=int, help="Integrated Gradients steps (default 32)")
    p.add_argument("--save", help="write the maps to this .npz file")
    p.add_argument("--no-cache", action="store_true", help="recompute even when a cached result exists")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.set_defaults(handler=cmd_explain)

    q = sub.add_parser("explain-localisation", help="localisation scores per model and method (synthetic runs)",
                       description="Share of attribution mass on the true action-unit regions, on blinks, and "
                                   "the pointing-game hit rate, per model and method.")
    q.add_argument("runs", nargs="+", help="run id(s) on the synthetic dataset")
    q.add_argument("--method", action="append", choices=choices, default=None,
                   help="methods to score (repeatable; default all and the model's attention)")
    q.add_argument("--max-samples", type=int, default=24, help="samples per run (evenly spread; 0 = all)")
    q.add_argument("--json", action="store_true")
    q.set_defaults(handler=cmd_localisation)

    r = sub.add_parser("explain-report", help="faithfulness, sanity and localisation report of a run's explanations",
                       description="Per method: deletion/insertion and ROAD areas against chance, infidelity, "
                                   "agreement with the model's attention, localisation on synthetic masks, and the "
                                   "model-randomisation sanity check; mean and 95% interval over clips. Cached in the "
                                   "run folder.")
    r.add_argument("run", help="run id (see `mer runs`)")
    r.add_argument("--methods", nargs="+", choices=choices, default=None,
                   help="methods (default: saliency gradcam attention, the fast ones)")
    r.add_argument("--max-samples", type=int, default=0, help="clips, evenly spread (default 0 = all tested clips)")
    r.add_argument("--steps", type=int, default=10, help="deletion/insertion steps (default 10)")
    r.add_argument("--no-road", action="store_true", help="skip the ROAD (noisy linear imputation) curves")
    r.add_argument("--sanity-samples", type=int, default=4, help="clips for the randomisation check (0 = off)")
    r.add_argument("--background", action="store_true", help="queue it as a job instead (see `mer jobs`)")
    r.add_argument("--estimate", action="store_true",
                   help="only say how long it would take (a committed benchmark figure, else one clip measured now)")
    r.add_argument("--json", action="store_true", help="print the summary as JSON")
    r.set_defaults(handler=cmd_report)


def _target(text: str) -> Any:
    return int(text) if text.lstrip("-").isdigit() else text


def cmd_explain(args: argparse.Namespace) -> int:
    from mer_core.explain.localisation import score_map  # lazy: loads torch (about 2 s)
    from mer_core.explain.runs import ATTENTION, RunExplainer  # lazy: loads torch (about 2 s)

    ex = RunExplainer(args.run)
    ex.row(args.sample_id)  # unknown sample: a clear error before any work
    pred = ex.prediction(args.sample_id)
    masks = ex.masks(args.sample_id)
    methods = args.method or ["integrated_gradients"]
    channels = ex.channels()
    report: dict[str, Any] = {"run": args.run, "sample_id": args.sample_id, "fold": ex.fold_of(args.sample_id),
                              "classes": ex.classes, "prediction": pred, "methods": {}}
    saved: dict[str, np.ndarray] = {}
    for method in methods:
        if method == ATTENTION:
            att = ex.attention(args.sample_id, use_cache=not args.no_cache)
            m = att.maps[att.aggregate]
            entry: dict[str, Any] = {"maps": att.names(), "shown": att.aggregate}
            saved.update({f"attention/{k}": v for k, v in att.maps.items()})
        else:
            opts: dict[str, Any] = {}
            if method == "gradcam" and args.layer:
                opts["layer"] = args.layer
            if method == "integrated_gradients" and args.steps:
                opts["steps"] = args.steps
            e = ex.explain(args.sample_id, method, _target(args.target), use_cache=not args.no_cache, **opts)
            m = e.combined
            total = sum(float(np.abs(v).sum()) for v in e.channels.values()) or 1.0
            entry = {"target": ex.classes[e.target], "seconds": round(e.seconds, 3),
                     "channel_share": {k: round(float(np.abs(v).sum()) / total, 3) for k, v in e.channels.items()},
                     "options": {k: v for k, v in e.options.items() if k != "cached"}, "cached": bool(e.options.get("cached"))}
            saved[method] = m
            saved.update({f"{method}/{k}": v for k, v in e.channels.items()})
        peak = np.unravel_index(int(np.argmax(m)), m.shape)
        entry["peak_yx"] = [int(peak[0]), int(peak[1])]
        if masks is not None:
            entry["localisation"] = {k: round(v, 3) for k, v in score_map(m, masks["au"], masks["blink"]).items()}
        report["methods"][method] = entry
    if args.save:
        np.savez_compressed(args.save, **saved)
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    print(f"run {args.run} · sample {args.sample_id} · explained by fold {report['fold']} (which held it out)")
    print(f"input channels: {', '.join(channels)}")
    if pred:
        probs = ", ".join(f"{c} {p:.2f}" for c, p in zip(ex.classes, pred["probs"]))
        print(f"true {ex.classes[pred['y_true']]} · predicted {ex.classes[pred['y_pred']]} ({probs})")
    for method, e in report["methods"].items():
        line = f"- {method}: peak at (y, x) = {tuple(e['peak_yx'])}"
        if "target" in e:
            line += f", target {e['target']}, {e['seconds']} s{' (cached)' if e['cached'] else ''}"
            if e["channel_share"]:
                line += "; mass per channel " + ", ".join(f"{k} {v:.0%}" for k, v in e["channel_share"].items())
            if "layer" in e["options"]:
                line += f"; layer {e['options']['layer']} ({'x'.join(map(str, e['options']['layer_shape']))})"
        else:
            line += f"; maps {', '.join(e['maps'])}"
        if "localisation" in e:
            s = e["localisation"]
            line += (f"; on true AUs {s['au_share']:.0%} (area {s['au_area']:.0%}), on blinks {s['blink_share']:.0%}, "
                     f"pointing {'hit' if s['pointing'] == 1 else 'miss'}")
        print(line)
    if args.save:
        print(f"maps written to {args.save}")
    return 0


def cmd_localisation(args: argparse.Namespace) -> int:
    from mer_core.explain.attributions import METHODS  # lazy: loads torch (about 2 s)
    from mer_core.explain.runs import ATTENTION, localisation_table  # lazy: loads torch (about 2 s)

    methods = args.method or [*METHODS, ATTENTION]

    def progress(done: int, total: int, message: str) -> None:
        print(f"\r  {done}/{total} clips ({message})", end="\n" if done == total else "", flush=True)

    table = localisation_table(args.runs, methods, max_samples=args.max_samples,
                               progress=None if args.json else progress)
    if args.json:
        print(table.to_json(orient="records", indent=2))
        return 0
    print("au_share: share of positive mass on the true AU regions (chance = au_area); blink_share: on blinks "
          "(lower is better); pointing: hit rate of the map's maximum; n: maps scored; n_empty: all-zero maps left out")
    print(table.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    settings: dict[str, Any] = {"max_samples": args.max_samples, "steps": args.steps, "road": not args.no_road,
                                "sanity_samples": args.sanity_samples}
    if args.methods:
        settings["methods"] = list(args.methods)
    if args.estimate:
        from mer_core.explain.report import ReportConfig  # lazy: loads torch (about 2 s)
        from mer_core.explain.report_time import estimate_report_seconds  # lazy: loads torch (about 2 s)

        est = estimate_report_seconds(args.run, ReportConfig.from_dict(settings))
        for part in est["parts"][:-1]:  # the slow parts of a measurement; the last one is the total
            print(f"  {part['text']}")
        print(f"estimate: {est['text']}")
        return 0
    if args.background:
        job = submit_explain_report(args.run, settings)
        print(f"queued job {job}: explanation report of run {args.run} (follow it with `mer jobs`)")
        return 0
    from mer_core.explain.report import MEASURES, ReportConfig, explanation_report  # lazy: loads torch (about 2 s)

    def progress(done: int, total: int, text: str) -> None:
        print(f"\r  {done}/{total}: {text}   ", end="\n" if done == total else "", file=sys.stderr, flush=True)

    def note(estimate: dict[str, Any]) -> None:
        print(f"\n  estimate: {estimate['text']}", file=sys.stderr, flush=True)

    report = explanation_report(args.run, ReportConfig.from_dict(settings), progress=progress, note=note)
    if args.json:
        print(json.dumps({k: report[k] for k in ("run", "model", "config", "sample_ids", "summary", "sentences")},
                         indent=2))
        return 0
    print(f"run {args.run} ({report['model']}) · {len(report['sample_ids'])} clips · {report['seconds']:.1f} s")
    for method, s in report["summary"].items():
        print(f"- {method} ({s['n_clips']} clips, {s['n_empty']} empty maps)")
        for name, iv in s["measures"].items():
            chance = f" (chance {iv['chance']:.3f})" if iv.get("chance") is not None else ""
            if iv["mean"] is None:
                continue
            print(f"    {MEASURES[name][0]}: {iv['mean']:.3f} [{iv['low']:.3f}, {iv['high']:.3f}]{chance}, "
                  f"{MEASURES[name][1]} is better")
        san = s.get("sanity")
        if san:
            print(f"    randomisation: rank corr {san['spearman']:.2f}, SSIM {san['ssim']:.2f} after full "
                  f"randomisation; flagged on {san['flagged']}/{san['n']} clips")
    for line in report["sentences"]:
        print("* " + line)
    return 0
