"""Figures of the Spotting page (and of the Analyse page's long clips): a video's timeline.

One figure per video, x = frames of the video (from 0): a score curve per
type (micro above, macro below) with the threshold the fold chose across it
and the true intervals of that type shaded behind it; under them, four lanes
(true micro, true macro, spotted micro, spotted macro) hold one bar per
interval, coloured by what became of it (:data:`dashboard.palette.SPOT_OUTCOME_COLOURS`).
A diamond at each interval's apex is the click target: its ``customdata`` is
the interval's id, so a click on the timeline chooses the interval to play.
"""
from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from dashboard import palette

TYPES = ("micro", "macro")
LANES = [("truth", "micro"), ("truth", "macro"), ("predicted", "micro"), ("predicted", "macro")]
LANE_WORDS = {"truth": "true", "predicted": "spotted"}
OUTCOME_LEGEND = {"hit": "hit (a true interval found: IoU ≥ 0.5)", "miss": "miss (a true interval not found)",
                  "false_alarm": "false alarm (spotted where there is none)", "ignored": "ignored",
                  "found": "spotted"}
MAX_POINTS = 3000  # a curve longer than this is drawn as the maximum of each of this many bins (peaks kept)


def thin(curve: np.ndarray, limit: int = MAX_POINTS) -> tuple[np.ndarray, np.ndarray]:
    """(frames, values) to draw: every frame, or the maximum of each bin of a longer curve (at its first frame)."""
    y = np.asarray(curve, dtype=np.float64)
    if len(y) <= limit:
        return np.arange(len(y)), y
    step = int(np.ceil(len(y) / limit))
    pad = (-len(y)) % step
    padded = np.concatenate([y, np.full(pad, -np.inf)]) if pad else y
    return np.arange(0, len(y), step), padded.reshape(-1, step).max(axis=1)


def _rects(rows: pd.DataFrame, lane: dict[tuple[str, str], int]) -> tuple[list, list]:
    xs: list = []
    ys: list = []
    for r in rows.itertuples(index=False):
        y = lane[(r.source, r.type)]
        xs += [r.onset - 0.5, r.offset + 0.5, r.offset + 0.5, r.onset - 0.5, r.onset - 0.5, None]
        ys += [y - 0.35, y - 0.35, y + 0.35, y + 0.35, y - 0.35, None]
    return xs, ys


def _hover(r, fps: float) -> str:
    what = f"{LANE_WORDS.get(r.source, r.source)} {r.type}: frames {r.onset}-{r.offset}"
    secs = f" ({r.onset / fps:.2f}-{(r.offset + 1) / fps:.2f} s)" if fps else ""
    extra = f"<br>score {r.score:.3g}" if getattr(r, "score", None) is not None and r.score == r.score else ""
    return f"{what}{secs}<br>{OUTCOME_LEGEND.get(r.outcome, r.outcome)}{extra}"


def _curves(fig: go.Figure, curves: Mapping[str, np.ndarray], thresholds: Mapping[str, float | None],
            items: pd.DataFrame, fps: float, threshold_name: str) -> None:
    for k, kind in enumerate(TYPES, start=1):
        curve = curves.get(kind)
        if curve is not None and len(curve):
            x, y = thin(curve)
            fig.add_trace(go.Scatter(x=x, y=y, mode="lines", line=dict(color=palette.DARK, width=1.2),
                                     name="score", legendgroup="score", showlegend=k == 1,
                                     customdata=x / fps if fps else x,
                                     hovertemplate=f"{kind} score %{{y:.3g}}<br>frame %{{x}} (%{{customdata:.2f}} s)"
                                                   "<extra></extra>"), row=k, col=1)
        th = thresholds.get(kind)
        if th is not None:
            fig.add_hline(y=th, line=dict(color=palette.SPOT_THRESHOLD, dash="dash", width=1.5), row=k, col=1,
                          annotation_text=f"threshold {th:.3g}", annotation_position="top left",
                          annotation_font=dict(color=palette.SPOT_THRESHOLD, size=11))
        for r in items[(items["source"] == "truth") & (items["type"] == kind)].itertuples(index=False):
            fig.add_vrect(x0=r.onset - 0.5, x1=r.offset + 0.5, row=k, col=1, line_width=0, layer="below",
                          fillcolor=palette.SPOT_OUTCOME_COLOURS.get(r.outcome, palette.MUTED), opacity=0.18)
    if thresholds:  # one legend entry for the dashed lines
        fig.add_trace(go.Scatter(x=[None], y=[None], mode="lines", name=threshold_name,
                                 line=dict(color=palette.SPOT_THRESHOLD, dash="dash")), row=1, col=1)


def _lanes(fig: go.Figure, items: pd.DataFrame, fps: float, selected: str | None, truth: bool) -> None:
    lanes = LANES if truth else [k for k in LANES if k[0] != "truth"]
    lane = {key: i for i, key in enumerate(reversed(lanes))}
    for outcome in ("hit", "miss", "false_alarm", "ignored", "found"):
        rows = items[items["outcome"] == outcome]
        if rows.empty:
            continue
        colour = palette.SPOT_OUTCOME_COLOURS[outcome]
        xs, ys = _rects(rows, lane)
        fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines", fill="toself", fillcolor=colour, line=dict(color=colour),
                                 name=OUTCOME_LEGEND[outcome], hoverinfo="skip", legendgroup=outcome), row=3, col=1)
    if not items.empty:
        apex = items["apex"].where(items["apex"].notna(), (items["onset"] + items["offset"]) // 2)
        fig.add_trace(go.Scatter(
            x=apex.astype(float), y=[lane[(s, t)] for s, t in zip(items["source"], items["type"])], mode="markers",
            marker=dict(symbol="diamond", size=11, color="white", line=dict(color=palette.DARK, width=1.5)),
            customdata=items["id"].tolist(), hovertext=[_hover(r, fps) for r in items.itertuples(index=False)],
            hovertemplate="%{hovertext}<br><i>click to play</i><extra></extra>", showlegend=False,
            name="intervals"), row=3, col=1)
    chosen = items[items["id"] == selected] if selected else items.iloc[:0]
    for r in chosen.itertuples(index=False):
        y = lane[(r.source, r.type)]
        fig.add_shape(type="rect", x0=r.onset - 1.5, x1=r.offset + 1.5, y0=y - 0.48, y1=y + 0.48, row=3, col=1,
                      line=dict(color=palette.DARK, width=2.5))
    fig.update_yaxes(tickvals=list(lane.values()), ticktext=[f"{LANE_WORDS[s]} {t}" for s, t in lane],
                     range=[-0.6, len(lanes) - 0.4], fixedrange=True, row=3, col=1)


def timeline(curves: Mapping[str, np.ndarray], thresholds: Mapping[str, float | None], items: pd.DataFrame,
             n_frames: int, fps: float, *, selected: str | None = None, title: str = "", truth: bool = True,
             threshold_name: str = "threshold the fold chose") -> go.Figure:
    """A video's timeline (module docstring). ``items``: one row per interval with id, source ('truth' or
    'predicted'), type, onset, apex, offset, outcome and optionally score; ``selected``: an id to outline;
    ``truth=False``: a video without annotation (no true lanes)."""
    fig = make_subplots(rows=3, cols=1, shared_xaxes=True, vertical_spacing=0.07, row_heights=[0.33, 0.33, 0.34],
                        subplot_titles=("micro-expression score", "macro-expression score", "intervals"))
    _curves(fig, curves, thresholds, items, fps, threshold_name)
    _lanes(fig, items, fps, selected, truth)
    last = max(int(n_frames) - 1, int(items["offset"].max()) if len(items) else 0, 1)
    fig.update_xaxes(range=[-0.5, last + 0.5])
    fig.update_xaxes(title_text="frame of the video (from 0)" + (f", {fps:g} fps" if fps else ""), row=3, col=1)
    fig.update_layout(height=520, margin=dict(l=10, r=10, t=50 if title else 30, b=10), title=title or None,
                      legend=dict(orientation="h", y=-0.14, yanchor="top", x=0, xanchor="left"),
                      clickmode="event+select", dragmode="zoom", hovermode="closest")
    return fig


def outcome_counts(items: pd.DataFrame, kinds: Sequence[str] = ("hit", "miss", "false_alarm")) -> str:
    """'1 hit, 1 miss, 6 false alarms' (hits counted once, by their true interval)."""
    hits = int(((items["source"] == "truth") & (items["outcome"] == "hit")).sum())
    n = {"hit": hits, "miss": int((items["outcome"] == "miss").sum()),
         "false_alarm": int((items["outcome"] == "false_alarm").sum())}
    words = {"hit": ("hit", "hits"), "miss": ("miss", "misses"), "false_alarm": ("false alarm", "false alarms")}
    return ", ".join(f"{n[k]} {words[k][n[k] != 1]}" for k in kinds)
