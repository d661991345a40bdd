"""The run-level explanation report: faithfulness, sanity and localisation per method.

``explanation_report(run_id, ReportConfig(...))`` explains a sample of a
stored run's tested clips (evenly spread, or all) with each method, by the
fold model that held each clip out, and measures per clip (see
:data:`MEASURES`): deletion/insertion areas against their random-order chance
levels, ROAD MoRF/LeRF areas, Captum's infidelity, the rank correlation with
the model's own attention, and on synthetic runs the localisation scores.
The cascading randomisation check runs on the first ``sanity_samples`` clips.
Per method and measure: mean and 95% percentile-bootstrap interval over the
clips. The result is plain JSON cached in ``cache/runs/<id>/explain/``
(``report-<key>.json``), keyed by config, clips and checkpoints.

:func:`report_sentences` reads a report in words (below chance, failed
sanity check); :func:`compare_reports` tests two runs' reports paired over
their shared clips (sign-flip permutation of the per-clip differences).

How long it takes is measured, not assumed: every method and the
randomisation check are timed on the first clip before their pass over the
others, and the slow parts (:data:`SLOW_METHODS`, the randomisation check) are
extrapolated to the number of clips and announced through ``note``
(:func:`slow_estimates`: "Integrated Gradients: about 4 min for 24 clips
(measured 9.8 s on the first clip)"). :mod:`mer_core.explain.report_time`
estimates a report before it is submitted.
"""
from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch

from mer_core.errors import MerError
from mer_core.evaluation.export import json_safe
from mer_core.explain.attention import model_attention
from mer_core.explain.attributions import METHODS, explain, make_baseline
from mer_core.explain.faithfulness import infidelity_score, perturbation_curves, random_curves
from mer_core.explain.localisation import score_map
from mer_core.explain.runs import ATTENTION, EXPLAIN_VERSION, FAST_OPTIONS, RunExplainer, _digest
from mer_core.explain.sanity import randomisation_check, rank_correlation
from mer_core.store.folders import EXPLAIN_DIR, REPORT_GLOB, report_name, run_folder

_clock = time.perf_counter  # every duration of the report and its estimates (tests swap in a fake clock)

REPORT_VERSION = 2  # 2: one random-order chance reference per clip
FAST_METHODS = ("saliency", "gradcam", ATTENTION)
SLOW_METHODS = ("integrated_gradients", "smoothgrad", "occlusion")  # timed and announced before their full pass
SANITY_LABEL = "randomisation check"
LABELS = {"integrated_gradients": "Integrated Gradients", "saliency": "Saliency", "gradcam": "Grad-CAM",
          "occlusion": "Occlusion", "smoothgrad": "SmoothGrad", ATTENTION: "attention"}

# measure -> (plain name, better: 'lower'|'higher', chance: a per-clip column, a number, or None, reading)
MEASURES: dict[str, tuple[str, str, Any, str]] = {
    "deletion_auc": ("deletion area", "lower", "deletion_random_auc",
                     "Removing the pixels the map ranks highest first: how much of the model's confidence survives "
                     "on average. Low = the map found what the model relies on; chance = removing pixels in a "
                     "random order."),
    "insertion_auc": ("insertion area", "higher", "insertion_random_auc",
                      "Revealing the highest-ranked pixels first on a no-expression input: how fast the confidence "
                      "comes back. High = faithful; chance = a random order."),
    "morf_auc": ("ROAD, most relevant removed first", "lower", None,
                 "Like deletion, but removed pixels are filled from their neighbours (noisy linear imputation), so "
                 "the model never sees holes. Low = faithful; compare with the least-relevant-first area."),
    "lerf_auc": ("ROAD, least relevant removed first", "higher", None,
                 "Removing the pixels the map ranks lowest first (filled from neighbours): the confidence should "
                 "stay. High = faithful; it should sit above the most-relevant-first area."),
    "infidelity": ("infidelity", "lower", None,
                   "Captum's infidelity: how badly the map predicts the score change under small random "
                   "perturbations of the input. Low = faithful."),
    "attention_rank_corr": ("agreement with the model's attention", "higher", 0.0,
                            "Rank correlation over pixels between this map and the model's own attention: 1 = they "
                            "rank pixels alike, 0 = unrelated, negative = opposite."),
    "au_share": ("mass on true AUs", "higher", "au_area",
                 "Share of the map's mass on the skin the expression really moved; chance = that skin's area."),
    "rank_accuracy": ("relevance rank accuracy", "higher", "au_area",
                      "Of the K top-ranked pixels (K = the moved area's size), the share inside the moved area; "
                      "chance = its area."),
    "roc_auc": ("ROC AUC on the true mask", "higher", 0.5,
                "How well the map separates moved from unmoved pixels: 1 = perfectly, 0.5 = chance."),
    "topk_iou": ("top-K IoU", "higher", "iou_chance",
                 "Overlap (intersection over union) of the K top-ranked pixels with the moved area."),
    "blink_share": ("mass on blinks", "lower", None,
                    "Share of the map's mass on a distractor blink; lower is better."),
    "pointing": ("pointing game", "higher", "au_area",
                 "How often the map's maximum falls inside the moved area (a hit); chance about that area's size."),
}
SANITY_READING = ("Model-parameter randomisation (Adebayo et al. 2018): the model's layers are re-initialised from the "
                  "top down and the map recomputed. A method that explains the model must change; one whose map "
                  "still looks like the original (rank correlation or SSIM at or above {threshold:.1f}) shows the "
                  "input, not what the model learned, and fails the check.")


@dataclass(frozen=True)
class ReportConfig:
    """What one report computes (stored in the report; part of its cache key)."""

    methods: tuple[str, ...] = FAST_METHODS  # attribution methods and/or 'attention'
    max_samples: int = 0  # clips, evenly spread over the run's tested clips; 0 = all
    steps: int = 10  # deletion/insertion (and ROAD) steps
    road: bool = True  # ROAD MoRF/LeRF curves (noisy linear imputation; costs a sparse solve per step)
    infidelity: bool = True  # Captum's infidelity (16 perturbed forward passes per clip)
    sanity_samples: int = 4  # clips on which the randomisation check runs (0 = off)
    seed: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "methods", tuple(self.methods))
        bad = [m for m in self.methods if m not in METHODS and m != ATTENTION]
        if bad or not self.methods:
            raise MerError(f"explanation report: unknown method(s) {bad or '(none given)'}; "
                           f"valid: {', '.join([*METHODS, ATTENTION])}")
        if self.steps < 1 or self.max_samples < 0 or self.sanity_samples < 0:
            raise MerError(f"explanation report: steps={self.steps} (>= 1), max_samples={self.max_samples} (>= 0), "
                           f"sanity_samples={self.sanity_samples} (>= 0)")

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["methods"] = list(self.methods)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "ReportConfig":
        unknown = sorted(set(d) - set(cls.__dataclass_fields__))
        if unknown:
            raise MerError(f"explanation report: unknown setting(s) {unknown}")
        return cls(**d)


@dataclass
class _Clip:
    sid: str
    x: np.ndarray
    model: Any
    target: int
    channels: list[str]
    maps: dict[str, np.ndarray] = field(default_factory=dict)
    cached: set[str] = field(default_factory=set)  # methods whose map was read from the cache, not computed


def report_ids(ex: RunExplainer, max_samples: int) -> list[str]:
    ids = sorted(s for s in ex.sample_ids() if ex.prediction(s) is not None)
    if not ids:
        raise MerError(f"run {ex.run_id}: no tested clip to explain (no stored prediction)")
    if max_samples and len(ids) > max_samples:
        ids = [ids[int(i)] for i in np.linspace(0, len(ids) - 1, max_samples).round()]
    return ids


def report_path(ex: RunExplainer, cfg: ReportConfig, ids: Sequence[str]) -> Path:
    ckpts = sorted(str(c) for c in ex.folds["checkpoint"])
    key = _digest([REPORT_VERSION, EXPLAIN_VERSION, cfg.as_dict(), list(ids), ckpts, FAST_OPTIONS])
    return ex.folder / EXPLAIN_DIR / report_name(key)


def _method_map(ex: RunExplainer, c: _Clip, method: str, cache: bool = True) -> np.ndarray:
    """The map of one method; ``cache=False``: computed here and not stored (a timing probe)."""
    if method == ATTENTION:
        att = ex.attention(c.sid) if cache else model_attention(c.model, c.x)
        return att.maps[att.aggregate]
    if not cache:
        return explain(c.model, c.x, c.target, method, **FAST_OPTIONS.get(method, {})).combined
    e = ex.explain(c.sid, method, c.target, **FAST_OPTIONS.get(method, {}))
    if e.options.get("cached"):
        c.cached.add(method)
    return e.combined


def clip_rows(ex: RunExplainer, sid: str, cfg: ReportConfig, *, with_attention: bool,
              timings: dict[str, float] | None = None, cached: set[str] | None = None,
              cache: bool = True) -> list[dict[str, Any]]:
    """One row of measures per method for one clip.

    ``timings`` (when given) gets each method's seconds (its map and its
    measures) and ``"shared"`` (loading, baseline, the chance curves);
    ``cached`` the methods whose map came from the cache; ``cache=False``
    computes the maps without reading or writing the cache.
    """
    t = timings if timings is not None else {}
    start = _clock()
    model, fold = ex.model_for(sid)
    x = ex.sample_input(sid)
    target = ex.resolve_target(sid, "pred")
    if target is None:
        target = int(np.argmax(ex.prediction(sid)["probs"]))
    c = _Clip(sid, x, model, int(target), ex.channels())
    methods = [m for m in cfg.methods if m != ATTENTION or with_attention]
    for m in dict.fromkeys([*methods, *([ATTENTION] if with_attention else [])]):
        s = _clock()
        c.maps[m] = np.asarray(_method_map(ex, c, m, cache), dtype=np.float64)
        t[m] = t.get(m, 0.0) + _clock() - s
    baseline = make_baseline(torch.as_tensor(x)[None], c.channels)[0].numpy()
    masks = ex.masks(sid) if ex.has_masks() and ex._masks_align(sid) else None
    chance = random_curves(model, x, c.target, baseline=baseline, steps=cfg.steps, seed=cfg.seed)  # once per clip
    rows = []
    for method in methods:
        s = _clock()
        m = c.maps[method]
        row: dict[str, Any] = {"sample_id": sid, "method": method, "fold": fold, "target": c.target,
                               "empty": bool(not np.any(m > 0))}
        curves = perturbation_curves(model, x, m, c.target, baseline=baseline, steps=cfg.steps, seed=cfg.seed,
                                     random_reference=False)
        row.update({k: curves[k] for k in ("deletion_auc", "insertion_auc", "deletion", "insertion")})
        row.update({k: chance[k] for k in ("deletion_random_auc", "insertion_random_auc")})
        if cfg.road:
            road = perturbation_curves(model, x, m, c.target, steps=cfg.steps, fill="road", random_reference=False,
                                       seed=cfg.seed)
            row.update({"morf_auc": road["morf_auc"], "lerf_auc": road["lerf_auc"]})
        if cfg.infidelity:
            row["infidelity"] = infidelity_score(model, x, m, c.target, seed=cfg.seed)
        if with_attention and method != ATTENTION:
            row["attention_rank_corr"] = rank_correlation(m, c.maps[ATTENTION])
        if masks is not None:
            row.update(score_map(m, masks["au"], masks["blink"]))
        rows.append(row)
        t[method] = t.get(method, 0.0) + _clock() - s
    t["shared"] = max(_clock() - start - sum(v for k, v in t.items() if k != "shared"), 0.0)
    if cached is not None:
        cached |= c.cached
    return rows


def sanity_rows(ex: RunExplainer, sid: str, cfg: ReportConfig, *, with_attention: bool,
                timings: dict[str, float] | None = None) -> list[dict[str, Any]]:
    """The cascading randomisation check of every method on one clip (``timings``: seconds per method)."""
    spent = timings if timings is not None else {}
    model, _ = ex.model_for(sid)
    x = ex.sample_input(sid)
    t = ex.resolve_target(sid, "pred")
    channels = ex.channels()
    rows = []
    for method in cfg.methods:
        if method == ATTENTION and not with_attention:
            continue

        def map_fn(mod: Any, method: str = method) -> np.ndarray:
            if method == ATTENTION:
                att = model_attention(mod, x)
                return att.maps[att.aggregate]
            return explain(mod, x, t, method, channels=channels, **FAST_OPTIONS.get(method, {})).combined

        s = _clock()
        check = randomisation_check(model, map_fn, seed=cfg.seed)
        spent[method] = spent.get(method, 0.0) + _clock() - s
        rows.append({"sample_id": sid, "method": method, **check})
    return rows


def interval(values: Sequence[float], *, n_boot: int = 1000, seed: int = 0) -> dict[str, float]:
    """Mean and 95% percentile-bootstrap interval over clips (NaNs left out; n = values used)."""
    v = np.asarray([x for x in values if x is not None and np.isfinite(x)], dtype=np.float64)
    if not len(v):
        return {"mean": float("nan"), "low": float("nan"), "high": float("nan"), "n": 0}
    idx = np.random.default_rng(seed).integers(0, len(v), size=(n_boot, len(v)))
    means = v[idx].mean(1)
    lo, hi = np.percentile(means, [2.5, 97.5])
    return {"mean": float(v.mean()), "low": float(lo), "high": float(hi), "n": int(len(v))}


def summarise(rows: Sequence[dict[str, Any]], sanity: Sequence[dict[str, Any]], methods: Sequence[str],
              seed: int = 0) -> dict[str, Any]:
    """Per method: each measure's interval with its chance level, the empty-map count and the sanity verdict."""
    out: dict[str, Any] = {}
    for method in methods:
        mine = [r for r in rows if r["method"] == method]
        if not mine:
            continue
        measures = {}
        for name, (_, _, chance, _) in MEASURES.items():
            if not any(name in r for r in mine):
                continue
            iv = interval([r.get(name, np.nan) for r in mine], seed=seed)
            if isinstance(chance, str):
                iv["chance"] = float(np.nanmean([r.get(chance, np.nan) for r in mine]))
            elif chance is not None:
                iv["chance"] = float(chance)
            measures[name] = iv
        checks = [s for s in sanity if s["method"] == method]
        san = None
        if checks:
            rhos = [s["spearman"][-1] for s in checks if s["spearman"][-1] is not None and np.isfinite(s["spearman"][-1])]
            san = {"spearman": float(np.mean(rhos)) if rhos else float("nan"),
                   "ssim": float(np.mean([s["ssim"][-1] for s in checks])),
                   "flagged": int(sum(s["flagged"] for s in checks)), "n": len(checks),
                   "threshold": float(checks[0]["threshold"])}
        out[method] = {"measures": measures, "n_clips": len(mine), "n_empty": int(sum(r["empty"] for r in mine)),
                       "sanity": san}
    return out


def chance_verdict(measure: str, iv: dict[str, float]) -> str:
    """'below' / 'at' / 'above' chance for an interval with a chance level ('' when it has none)."""
    lo, hi, ch, mean = (np.nan if iv.get(k) is None else float(iv[k]) for k in ("low", "high", "chance", "mean"))
    if not (np.isfinite(mean) and np.isfinite(ch) and np.isfinite(lo) and np.isfinite(hi)):
        return ""
    better = MEASURES[measure][1]
    if lo <= ch <= hi:
        return "at"
    good = hi < ch if better == "lower" else lo > ch
    return "above" if good else "below"


def report_sentences(report: dict[str, Any]) -> list[str]:
    """Plain sentences: a method below or at chance on a measure, or failing the sanity check."""
    out = []
    model = report.get("model", "the model")
    for method, s in report["summary"].items():
        name = f"{model}'s {LABELS.get(method, method)}"
        at_chance = []
        for measure, iv in s["measures"].items():
            v = chance_verdict(measure, iv)
            label = MEASURES[measure][0]
            if v == "below":
                out.append(f"{name} scores below chance on {label} ({iv['mean']:.3f}, 95% interval "
                           f"{iv['low']:.3f} to {iv['high']:.3f}, chance {iv['chance']:.3f}): on these clips the "
                           "map points away from what it should, so do not read it as where the model looked.")
            elif v == "at":
                at_chance.append(label)
        if at_chance:
            out.append(f"{name} is indistinguishable from chance on {', '.join(at_chance)} (the 95% interval "
                       "contains the chance level): by these measures the map is no better than a random one.")
        san = s.get("sanity")
        if san and san["flagged"]:
            out.append(f"{name} fails the randomisation check on {san['flagged']} of {san['n']} clips: its map barely "
                       f"changes when the model's weights are replaced by random ones (rank correlation "
                       f"{san['spearman']:.2f}, SSIM {san['ssim']:.2f}), so it does not explain this model.")
    return out


def about(seconds: float) -> str:
    """'about 40 s', 'about 2.5 min', 'about 12 min'."""
    if seconds < 90:
        return f"about {max(round(seconds), 1)} s"
    minutes = seconds / 60
    return f"about {round(minutes, 1):g} min" if minutes < 10 else f"about {round(minutes)} min"


def part_estimate(part: str, label: str, measured_s: float, clips: int, *, on: str = "the first clip",
                  cached: bool = False) -> dict[str, Any]:
    """One part's extrapolation: ``measured_s`` per clip times ``clips``, with its sentence (``text``)."""
    seconds = float(measured_s) * clips
    note = "; its map was read from the cache, so uncached clips take longer" if cached else ""
    text = (f"{label}: {about(seconds)} for {clips} clip{'' if clips == 1 else 's'} "
            f"(measured {measured_s:.1f} s on {on}{note})")
    return {"part": part, "label": label, "measured_s": float(measured_s), "clips": int(clips),
            "seconds": seconds, "text": text}


def slow_estimates(clip_t: dict[str, float], sanity_t: dict[str, float], methods: Sequence[str], n_clips: int,
                   n_sanity: int, *, cached: set[str] | frozenset[str] = frozenset(),
                   on: str = "the first clip") -> list[dict[str, Any]]:
    """The slow parts' estimates from one clip's timings (:func:`clip_rows`, :func:`sanity_rows`), then the total.

    Per slow method (:data:`SLOW_METHODS`): its seconds on the clip times
    ``n_clips``; the randomisation check: its seconds (all methods) times
    ``n_sanity``; ``part='total'``: every method, the shared work and the check.
    """
    out = [part_estimate(m, LABELS.get(m, m), clip_t[m], n_clips, on=on, cached=m in cached)
           for m in methods if m in SLOW_METHODS and m in clip_t]
    if n_sanity and sanity_t:
        out.append(part_estimate("sanity", SANITY_LABEL, sum(sanity_t.values()), n_sanity, on=on))
    total = sum(clip_t.values()) * n_clips + sum(sanity_t.values()) * n_sanity
    check = f" and the {SANITY_LABEL} on {n_sanity}" if n_sanity and sanity_t else ""
    out.append({"part": "total", "label": "the whole report", "measured_s": sum(clip_t.values()),
                "clips": int(n_clips), "seconds": total,
                "text": f"the whole report: {about(total)} for {n_clips} clip{'' if n_clips == 1 else 's'}{check} "
                        f"(measured {sum(clip_t.values()) + sum(sanity_t.values()):.1f} s on {on})"})
    return out


def explanation_report(run_id: str, cfg: ReportConfig | None = None, *, store: Any = None,
                       progress: Callable[[int, int, str], None] | None = None,
                       note: Callable[[dict[str, Any]], None] | None = None,
                       compute: bool = True) -> dict[str, Any] | None:
    """The report of one run (see module doc); cached. ``compute=False``: the cached one or None.

    ``progress(done, total, message)`` is called after each clip (and may
    raise to stop: nothing is cached then). The first clip's measures and
    its randomisation check run first, timed; then ``note(estimate)`` is
    called with each of :func:`slow_estimates` (every slow method, the
    randomisation check, the total) before the other clips, and the
    estimates are kept in the report (``estimates``, ``timings``).
    """
    cfg = cfg or ReportConfig()
    ex = RunExplainer(run_id, store)
    ids = report_ids(ex, cfg.max_samples)
    path = report_path(ex, cfg, ids)
    if path.exists():
        return json.loads(path.read_text())
    if not compute:
        return None
    with_attention = ATTENTION in cfg.methods and ex.has_attention()
    methods = [m for m in cfg.methods if m != ATTENTION or with_attention]
    sanity_ids = [ids[int(i)] for i in np.linspace(0, len(ids) - 1, min(cfg.sanity_samples, len(ids))).round()] \
        if cfg.sanity_samples else []
    total = len(ids) + len(sanity_ids)
    t0 = _clock()
    clip_t: dict[str, float] = {}
    sanity_t: dict[str, float] = {}
    cached: set[str] = set()
    # the first clip and its randomisation check, timed, before any pass over the other clips
    rows = clip_rows(ex, ids[0], cfg, with_attention=with_attention, timings=clip_t, cached=cached)
    if progress:
        progress(1, total, f"clip 1/{len(ids)} (timed)")
    sanity = sanity_rows(ex, sanity_ids[0], cfg, with_attention=with_attention, timings=sanity_t) if sanity_ids else []
    if progress and sanity_ids:
        progress(2, total, f"{SANITY_LABEL} 1/{len(sanity_ids)} (timed)")
    estimates = slow_estimates(clip_t, sanity_t, methods, len(ids), len(sanity_ids), cached=cached)
    for e in estimates if note else ():
        note(e)
    done = 1 + bool(sanity_ids)
    sanity_left = sum(sanity_t.values()) * max(len(sanity_ids) - 1, 0)
    t1 = _clock()
    for k, sid in enumerate(ids[1:], start=2):
        rows += clip_rows(ex, sid, cfg, with_attention=with_attention)
        done += 1
        if progress:
            left = (_clock() - t1) / (k - 1) * (len(ids) - k) + sanity_left
            progress(done, total, f"clip {k}/{len(ids)}, {about(left)} left")
    for k, sid in enumerate(sanity_ids[1:], start=2):
        sanity += sanity_rows(ex, sid, cfg, with_attention=with_attention)
        done += 1
        if progress:
            left = sum(sanity_t.values()) * (len(sanity_ids) - k)
            progress(done, total, f"{SANITY_LABEL} {k}/{len(sanity_ids)}, {about(left)} left")
    report = {"version": REPORT_VERSION, "run": run_id, "model": ex.run["model"], "dataset": ex.run["dataset"],
              "config": cfg.as_dict(), "methods": methods, "sample_ids": ids, "has_masks": ex.has_masks(),
              "created": time.time(), "seconds": _clock() - t0, "rows": rows, "sanity": sanity,
              "estimates": estimates, "timings": {"first_clip": clip_t, "first_sanity_clip": sanity_t},
              "summary": summarise(rows, sanity, methods, cfg.seed)}
    report["sentences"] = report_sentences(report)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(json_safe(report)))
    tmp.replace(path)
    return json.loads(path.read_text())


def cached_reports(run_id: str) -> list[dict[str, Any]]:
    """Every cached report of a run, newest first (for the Compare page)."""
    folder = run_folder(run_id, create=False) / EXPLAIN_DIR
    out = []
    for p in folder.glob(REPORT_GLOB):
        try:
            out.append(json.loads(p.read_text()))
        except (OSError, ValueError):
            continue
    return sorted(out, key=lambda r: -float(r.get("created") or 0))
