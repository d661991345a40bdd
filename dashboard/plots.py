"""Plotly figures shared by the pages (pure functions of data frames)."""
from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go

CLASS_COLOURS = ["#2f6fdf", "#e8590c", "#2b8a3e", "#ae3ec9", "#f08c00", "#1098ad", "#c92a2a"]


def confusion_figure(cm: Sequence[Sequence[int]], classes: Sequence[str], *, normalise: bool = False,
                     title: str = "") -> go.Figure:
    """Heatmap, rows = true class, columns = predicted; counts or row-normalised."""
    counts = np.asarray(cm, dtype=float)
    rows = counts.sum(axis=1, keepdims=True)
    shown = np.divide(counts, rows, out=np.zeros_like(counts), where=rows > 0) if normalise else counts
    text = [[(f"{shown[i, j]:.2f}<br>({int(counts[i, j])})" if normalise else f"{int(counts[i, j])}")
             for j in range(len(classes))] for i in range(len(classes))]
    fig = go.Figure(go.Heatmap(
        z=shown, x=list(classes), y=list(classes), text=text, texttemplate="%{text}", colorscale="Blues",
        zmin=0, zmax=1 if normalise else None, showscale=False,
        hovertemplate="true %{y} → predicted %{x}<br>%{text}<extra></extra>",
    ))
    fig.update_layout(
        title=title or None, xaxis_title="predicted", yaxis_title="true", yaxis_autorange="reversed",
        margin=dict(l=10, r=10, t=40 if title else 10, b=10), height=120 + 70 * len(classes),
    )
    fig.update_xaxes(side="bottom", type="category")
    fig.update_yaxes(type="category")
    return fig


def subject_bars(per_subject: pd.DataFrame, metric: str = "uf1") -> go.Figure:
    """Per-subject scores sorted best to worst, with the sample count on each bar."""
    df = per_subject.sort_values(metric, ascending=False)
    fig = go.Figure(go.Bar(
        x=df["subject"].astype(str), y=df[metric], text=[f"n={n}" for n in df["n"]], textposition="outside",
        marker_color="#2f6fdf",
        customdata=np.stack([df["n"], df["accuracy"], df["uf1"], df["uar"]], axis=1),
        hovertemplate=("%{x}<br>n=%{customdata[0]}<br>accuracy %{customdata[1]:.3f}<br>"
                       "UF1 %{customdata[2]:.3f}<br>UAR %{customdata[3]:.3f}<extra></extra>"),
    ))
    fig.update_layout(yaxis_title=metric.upper(), yaxis_range=[0, 1.12], xaxis_title="held-out subject",
                      margin=dict(l=10, r=10, t=10, b=10), height=360)
    fig.update_xaxes(type="category")
    return fig
