"""Plotly figures of the Study page and Compare's overlay (pure functions of data frames)."""
from __future__ import annotations

from typing import Sequence

import pandas as pd
import plotly.graph_objects as go

from dashboard.palette import CLASS_COLOURS, DARK, MUTED, rgb
from dashboard.plots import CURVE_NAMES, integer_epochs


def _colour(i: int) -> str:
    return CLASS_COLOURS[i % len(CLASS_COLOURS)]


def _rgba(hex_colour: str, alpha: float) -> str:
    return "rgba({},{},{},{})".format(*rgb(hex_colour), alpha)


def cd_figure(ranks: pd.Series, cd: float, groups: Sequence[Sequence[str]]) -> go.Figure:
    """Critical-difference diagram: average ranks on one axis (1 = best), the CD bar, groups not told apart.

    Each arm's name sits on its own row above the axis, joined to its marker by a leader line, so arms
    with equal or close ranks (common at a few subjects) never print over each other.
    """
    order = ranks.sort_values()
    k = len(order)
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=order.values, y=[0] * k, mode="markers", text=list(order.index),
                             marker=dict(size=12, color=[_colour(i) for i in range(k)]), showlegend=False,
                             hovertemplate="%{text}: average rank %{x:.2f}<extra></extra>"))
    for i, (arm, rank) in enumerate(order.items()):
        fig.add_annotation(x=float(rank), y=0, text=str(arm), showarrow=True, arrowhead=0, arrowwidth=1,
                           arrowcolor=MUTED, ax=0, ay=-(22 + 18 * i), font=dict(color=_colour(i)))
    for j, group in enumerate(groups):
        xs = [float(ranks[a]) for a in group]
        y = -0.35 - 0.15 * j
        fig.add_trace(go.Scatter(x=[min(xs), max(xs)], y=[y, y], mode="lines", line=dict(color=DARK, width=5),
                                 showlegend=False, hovertemplate="not told apart: " + ", ".join(group) +
                                 "<extra></extra>"))
    y_cd = -0.35 - 0.15 * len(groups) - 0.1
    fig.add_trace(go.Scatter(x=[1, 1 + cd], y=[y_cd, y_cd], mode="lines+text", text=["", f"CD = {cd:.2f}"],
                             textposition="middle left", line=dict(color=MUTED, width=3), showlegend=False,
                             hoverinfo="skip"))
    label_px = 40 + 18 * k  # the rows of names above the axis
    height = 170 + label_px + 20 * len(groups)
    fig.update_xaxes(range=[k + 0.3, 0.7], title="average rank over subjects (1 = best)", dtick=1)
    fig.update_yaxes(visible=False, range=[y_cd - 0.15, 0.05 + label_px / (height - 70)])
    fig.update_layout(height=height, margin=dict(l=10, r=10, t=10, b=10))
    return fig


def band_curves(curves: pd.DataFrame, metric: str, arms: Sequence[str]) -> go.Figure:
    """One line per arm (mean over seeds of the fold-averaged curve) with a mean +- sd band."""
    fig = go.Figure()
    for i, arm in enumerate(arms):
        d = curves[(curves["arm"] == arm) & (curves["metric"] == metric)].sort_values("epoch")
        if d.empty:
            continue
        c = _colour(i)
        fig.add_trace(go.Scatter(x=list(d["epoch"]) + list(d["epoch"])[::-1],
                                 y=list(d["mean"] + d["sd"]) + list(d["mean"] - d["sd"])[::-1], fill="toself",
                                 fillcolor=_rgba(c, 0.18), line=dict(width=0), hoverinfo="skip", showlegend=False,
                                 legendgroup=arm))
        fig.add_trace(go.Scatter(x=d["epoch"], y=d["mean"], mode="lines+markers", name=arm, line=dict(color=c),
                                 legendgroup=arm, customdata=d[["sd", "n"]],
                                 hovertemplate=f"{arm}<br>epoch %{{x}}: %{{y:.3f}} ± %{{customdata[0]:.3f}} "
                                               "(%{customdata[1]} seeds)<extra></extra>"))
    fig.update_layout(xaxis_title="epoch", yaxis_title=metric, height=340, margin=dict(l=10, r=10, t=10, b=10))

    last = curves.loc[curves["metric"] == metric, "epoch"].max() if len(curves) else None
    return integer_epochs(fig, last)


def seed_spread(cells: pd.DataFrame, arms: Sequence[str], metric: str = "uf1") -> go.Figure:
    """Every complete cell as a point per arm (one per seed) beside the arm's mean: is one lucky seed carrying it?"""
    fig = go.Figure()
    for i, arm in enumerate(arms):
        d = cells[(cells["arm"] == arm) & cells["complete"]]
        fig.add_trace(go.Scatter(x=[arm] * len(d), y=d[metric], mode="markers+text", text=[f"s{s}" for s in d["seed"]],
                                 textposition="middle right", marker=dict(size=10, color=_colour(i)), name=arm,
                                 showlegend=False, hovertemplate=f"{arm} seed %{{text}}: %{{y:.3f}}<extra></extra>"))
        if len(d):
            fig.add_trace(go.Scatter(x=[arm], y=[d[metric].mean()], mode="markers", showlegend=False,
                                     marker=dict(symbol="line-ew-open", size=30, color=DARK, line=dict(width=3)),
                                     hovertemplate=f"{arm} mean %{{y:.3f}}<extra></extra>"))
    fig.update_layout(yaxis_title=f"pooled {metric.upper()}", height=320, margin=dict(l=10, r=10, t=10, b=10))
    return fig


def overlay_curves(epochs: dict[str, pd.DataFrame], metric: str) -> go.Figure:
    """Compare: the fold-averaged curve of each run on one chart (label -> that run's epochs)."""
    fig = go.Figure()
    for i, (label, ep) in enumerate(epochs.items()):
        if ep.empty or metric not in ep or ep[metric].isna().all():
            continue
        d = ep.groupby("epoch")[metric].mean().reset_index()
        fig.add_trace(go.Scatter(x=d["epoch"], y=d[metric], mode="lines+markers", name=label,
                                 line=dict(color=_colour(i))))

    fig.update_layout(xaxis_title="epoch", yaxis_title=f"{CURVE_NAMES.get(metric, metric)} (mean over folds)",
                      height=340, margin=dict(l=10, r=10, t=40, b=10),
                      legend=dict(orientation="h", yanchor="bottom", y=1.02, x=0))
    last = max((float(e["epoch"].max()) for e in epochs.values() if len(e)), default=None)
    return integer_epochs(fig, last)
