"""How long an explanation report will take, before it is submitted: a measured figure, never a constant.

:func:`estimate_report_seconds` uses, in this order,

1. a committed benchmark figure: ``explain_report*.json`` in the shipped
   results (:func:`mer_core.paths.bench_results_dir`) as written by
   ``benchmarks/bench_explain_report.py`` (``seconds_per_clip``
   of a synthetic DenseAttention run), only when its settings are the
   report's (the same methods and steps; ROAD, infidelity and the
   randomisation check all on for a ``--full`` figure, all off otherwise);
2. otherwise a measurement now: the run's first report clip is measured with
   every chosen method (maps computed, the map cache neither read nor
   written) and, when the report runs it, the randomisation check on it, and
   the seconds are extrapolated to the report's clips.

The answer says which (``source``) and where the figure comes from; a
benchmark figure is of another run and perhaps another machine, which the
sentence says too. During the report itself the slow parts are measured
again on its first clip (:func:`mer_core.explain.report.slow_estimates`).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from mer_core.explain import report as _report
from mer_core.explain.report import (ATTENTION, ReportConfig, about, clip_rows, report_ids, sanity_rows,
                                     slow_estimates)
from mer_core.explain.runs import RunExplainer
from mer_core.paths import bench_results_dir

BENCH_PATTERN = "explain_report*.json"


def benchmark_figure(cfg: ReportConfig, results: Path | None = None) -> dict[str, Any] | None:
    """The first committed explanation-report benchmark measured with ``cfg``'s settings (``path`` added), or None."""
    folder = results or bench_results_dir()
    if not folder.is_dir():
        return None
    for path in sorted(folder.glob(BENCH_PATTERN)):
        try:
            b = json.loads(path.read_text())
            full = bool(b.get("full"))
            same = (sorted(b["methods"]) == sorted(cfg.methods) and int(b["steps"]) == cfg.steps
                    and cfg.road == full and cfg.infidelity == full and (cfg.sanity_samples > 0) == full)
            per_clip = float(b["seconds_per_clip"])
        except (OSError, ValueError, KeyError, TypeError):
            continue
        if same and per_clip > 0:
            return {**b, "path": str(path)}
    return None


def estimate_report_seconds(run_id: str, cfg: ReportConfig | None = None, *, store: Any = None,
                            results: Path | None = None, measure: bool = True) -> dict[str, Any]:
    """How long ``explanation_report(run_id, cfg)`` should take (see module doc).

    Returns ``seconds`` (None when there is no benchmark figure and
    ``measure`` is False), ``clips``, ``sanity_clips``, ``source``
    ('benchmark' | 'measured' | 'none'), ``parts`` (the per-part estimates of
    a measurement) and ``text``, one sentence naming where the figure comes from.
    """
    cfg = cfg or ReportConfig()
    ex = RunExplainer(run_id, store)
    ids = report_ids(ex, cfg.max_samples)
    n, n_sanity = len(ids), min(cfg.sanity_samples, len(ids))
    clips = f"{n} clip{'' if n == 1 else 's'}"
    out: dict[str, Any] = {"clips": n, "sanity_clips": n_sanity, "parts": []}
    bench = benchmark_figure(cfg, results)
    if bench is not None:
        seconds = float(bench["seconds_per_clip"]) * n
        load = (bench.get("load_average_1min") or [None])[0]
        where = Path(bench["path"]).name
        return {**out, "seconds": seconds, "source": "benchmark", "text": (
            f"{about(seconds)} for {clips}: the committed benchmark {where} took "
            f"{float(bench['seconds_per_clip']):.2f} s per clip ({bench.get('clips')} clips of a synthetic "
            f"DenseAttention run, {bench.get('threads')} threads, load {load}); this run's model and this machine "
            f"may differ")}
    if not measure:
        return {**out, "seconds": None, "source": "none",
                "text": "no committed benchmark figure for these settings; the job measures its first clip"}
    with_attention = ATTENTION in cfg.methods and ex.has_attention()
    methods = [m for m in cfg.methods if m != ATTENTION or with_attention]
    clip_t: dict[str, float] = {}
    sanity_t: dict[str, float] = {}
    t0 = _report._clock()
    clip_rows(ex, ids[0], cfg, with_attention=with_attention, timings=clip_t, cache=False)
    if n_sanity:
        sanity_rows(ex, ids[0], cfg, with_attention=with_attention, timings=sanity_t)
    took = _report._clock() - t0
    parts = slow_estimates(clip_t, sanity_t, methods, n, n_sanity, on=f"clip {ids[0]}")
    seconds = parts[-1]["seconds"]
    check = f" and its {n_sanity}-clip randomisation check" if n_sanity else ""
    return {**out, "seconds": seconds, "source": "measured", "parts": parts, "text": (
        f"{about(seconds)} for {clips}{check}: measured just now on clip {ids[0]} of run {run_id} "
        f"({took:.1f} s, no committed benchmark figure for these settings) and multiplied by the clips")}
