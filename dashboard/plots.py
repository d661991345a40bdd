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


# --- results pages (issue 10) ------------------------------------------------------
SOURCE_COLOURS = {"reported in paper": "#adb5bd", "measured here, honest protocol": "#2f6fdf"}


def confusion_clickable(cm: Sequence[Sequence[int]], classes: Sequence[str], *, normalise: bool = False) -> go.Figure:
    """The confusion heatmap with an invisible marker on each cell, so a click selects that cell.

    Plotly heatmaps do not report point selections; scatter points do. Each
    marker's customdata is (true index, predicted index).
    """
    fig = confusion_figure(cm, classes, normalise=normalise)
    k = len(classes)
    xs = [classes[j] for i in range(k) for j in range(k)]
    ys = [classes[i] for i in range(k) for j in range(k)]
    counts = np.asarray(cm, dtype=int)
    fig.add_trace(go.Scatter(
        x=xs, y=ys, mode="markers", customdata=[[i, j] for i in range(k) for j in range(k)],
        marker=dict(symbol="square", size=60, opacity=0.01, color="#000"),
        hovertemplate=[f"true {classes[i]} → predicted {classes[j]}: {counts[i, j]} clip(s)<br>click to list them"
                       "<extra></extra>" for i in range(k) for j in range(k)],
        showlegend=False,
    ))
    fig.update_layout(clickmode="event+select", dragmode=False)
    return fig


def confusion_text(cm: Sequence[Sequence[int]], classes: Sequence[str]) -> str:
    """A small confusion matrix as hover text (rows true, columns predicted)."""
    short = [c[:3] for c in classes]
    lines = ["true\\pred " + " ".join(f"{s:>3}" for s in short)]
    for name, row in zip(short, cm):
        lines.append(f"{name:>9} " + " ".join(f"{int(v):>3}" for v in row))
    return "<br>".join(lines)


def subject_bars_detail(per_subject: pd.DataFrame, hover: dict[str, str], metric: str = "uf1") -> go.Figure:
    """Per-subject bars sorted best to worst (n on each bar) with the subject's confusion on hover."""
    df = per_subject.sort_values(metric, ascending=False)
    fig = go.Figure(go.Bar(
        x=df["subject"].astype(str), y=df[metric], text=[f"n={n}" for n in df["n"]], textposition="outside",
        marker_color="#2f6fdf",
        customdata=np.stack([df["n"], df["accuracy"], df["uf1"], df["uar"],
                             [hover.get(str(s), "") for s in df["subject"]]], axis=1),
        hovertemplate=("<b>%{x}</b>  n=%{customdata[0]}<br>accuracy %{customdata[1]:.3f} · "
                       "UF1 %{customdata[2]:.3f} · UAR %{customdata[3]:.3f}<br>%{customdata[4]}<extra></extra>"),
        hoverlabel=dict(font_family="monospace"),
    ))
    fig.update_layout(yaxis_title=metric.upper(), yaxis_range=[0, 1.12], xaxis_title="held-out subject",
                      margin=dict(l=10, r=10, t=10, b=10), height=360)
    fig.update_xaxes(type="category")
    return fig


def curves_figure(epochs: pd.DataFrame, metric: str, *, title: str = "") -> go.Figure:
    """One thin line per fold and the mean over folds (bold) of an epoch metric."""
    fig = go.Figure()
    df = epochs.dropna(subset=[metric])
    for fold, g in df.groupby("fold_index"):
        fig.add_trace(go.Scatter(x=g["epoch"], y=g[metric], mode="lines", line=dict(width=1, color="#ced4da"),
                                 name=f"fold {fold}", showlegend=False,
                                 hovertemplate=f"fold {fold}<br>epoch %{{x}}: %{{y:.3f}}<extra></extra>"))
    mean = df.groupby("epoch")[metric].mean()
    fig.add_trace(go.Scatter(x=mean.index, y=mean.values, mode="lines+markers", line=dict(width=3, color="#2f6fdf"),
                             name="mean over folds", hovertemplate="mean, epoch %{x}: %{y:.3f}<extra></extra>"))
    fig.update_layout(xaxis_title="epoch", yaxis_title=metric, title=title or None, height=340,
                      margin=dict(l=10, r=10, t=40 if title else 10, b=10), legend=dict(orientation="h", y=1.08))
    return fig


def interval_figure(rows: pd.DataFrame) -> go.Figure:
    """Point estimates with 95% intervals, one row per run (columns label, point, low, high)."""
    fig = go.Figure(go.Scatter(
        x=rows["point"], y=rows["label"], mode="markers", marker=dict(size=11, color="#2f6fdf"),
        error_x=dict(type="data", symmetric=False, array=rows["high"] - rows["point"],
                     arrayminus=rows["point"] - rows["low"], thickness=2, width=6),
        hovertemplate="%{y}<br>%{x:.3f}<extra></extra>",
    ))
    fig.update_layout(xaxis_title="UF1 (pooled) with 95% subject-bootstrap interval", xaxis_range=[0, 1],
                      height=80 + 45 * len(rows), margin=dict(l=10, r=10, t=10, b=10))
    fig.update_yaxes(type="category", autorange="reversed")
    return fig


def grouped_bars(df: pd.DataFrame, x: str, y: str, group: str, *, y_title: str = "") -> go.Figure:
    """Bars of ``y`` per ``x``, one colour per ``group`` (per-class / per-part side by side)."""
    fig = go.Figure()
    for i, (name, g) in enumerate(df.groupby(group, sort=False)):
        fig.add_trace(go.Bar(x=g[x].astype(str), y=g[y], name=str(name),
                             marker_color=CLASS_COLOURS[i % len(CLASS_COLOURS)],
                             hovertemplate=f"{name}<br>%{{x}}: %{{y:.3f}}<extra></extra>"))
    fig.update_layout(barmode="group", yaxis_title=y_title or y, yaxis_range=[0, 1], height=320,
                      margin=dict(l=10, r=10, t=10, b=10), legend=dict(orientation="h", y=1.1))
    return fig


def paired_scatter(df: pd.DataFrame, names: tuple[str, str], metric: str = "uf1") -> go.Figure:
    """Each subject's score under run A (x) and run B (y); points above the diagonal favour B."""
    fig = go.Figure(go.Scatter(
        x=df["a"], y=df["b"], mode="markers", marker=dict(size=6 + 2 * np.sqrt(df["n"]), color="#2f6fdf",
                                                           opacity=0.7, line=dict(width=1, color="white")),
        text=df["subject"], customdata=df["n"],
        hovertemplate=f"%{{text}} (n=%{{customdata}})<br>{names[0]}: %{{x:.3f}}<br>{names[1]}: %{{y:.3f}}<extra></extra>",
    ))
    fig.add_trace(go.Scatter(x=[0, 1], y=[0, 1], mode="lines", line=dict(dash="dash", color="#adb5bd"),
                             hoverinfo="skip", showlegend=False))
    fig.update_layout(xaxis_title=f"{names[0]} {metric.upper()}", yaxis_title=f"{names[1]} {metric.upper()}",
                      xaxis_range=[-0.03, 1.03], yaxis_range=[-0.03, 1.03], height=380, showlegend=False,
                      margin=dict(l=10, r=10, t=10, b=10))
    return fig


def difference_bars(df: pd.DataFrame, names: tuple[str, str], metric: str = "uf1") -> go.Figure:
    """Per-subject B - A, sorted; green where B is better, red where A is better."""
    d = df.assign(diff=df["b"] - df["a"]).sort_values("diff", ascending=False)
    colours = ["#2b8a3e" if v > 0 else ("#c92a2a" if v < 0 else "#adb5bd") for v in d["diff"]]
    fig = go.Figure(go.Bar(x=d["subject"].astype(str), y=d["diff"], marker_color=colours, customdata=d["n"],
                           hovertemplate="%{x} (n=%{customdata})<br>difference %{y:+.3f}<extra></extra>"))
    fig.update_layout(yaxis_title=f"{names[1]} − {names[0]} ({metric.upper()})", xaxis_title="subject",
                      height=340, margin=dict(l=10, r=10, t=10, b=10))
    fig.update_xaxes(type="category")
    return fig


def hyperparameter_figure(df: pd.DataFrame, params: Sequence[str], metric: str = "uf1") -> go.Figure:
    """Parallel coordinates of varying hyper-parameters, coloured and ended by ``metric``.

    Text parameters are drawn as categorical axes (ticks at their codes). With a
    single parameter a scatter is clearer than a one-axis parallel plot.
    """
    if len(params) == 1:
        p = params[0]
        fig = go.Figure(go.Scatter(x=df[p].astype(str) if df[p].dtype == object else df[p], y=df[metric],
                                   mode="markers", marker=dict(size=10, color="#2f6fdf"), text=df["id"],
                                   hovertemplate=f"%{{text}}<br>{p}=%{{x}}<br>{metric}=%{{y:.3f}}<extra></extra>"))
        fig.update_layout(xaxis_title=p, yaxis_title=metric.upper(), height=340, margin=dict(l=10, r=10, t=10, b=10))
        return fig
    dims = []
    for p in params:
        col = df[p]
        numeric = pd.to_numeric(col, errors="coerce")
        if numeric.notna().all():
            dims.append(dict(label=p, values=numeric))
        else:
            cats = sorted(col.astype(str).unique())
            codes = col.astype(str).map({c: i for i, c in enumerate(cats)})
            dims.append(dict(label=p, values=codes, tickvals=list(range(len(cats))), ticktext=cats))
    dims.append(dict(label=metric.upper(), values=df[metric], range=[0, 1]))
    fig = go.Figure(go.Parcoords(line=dict(color=df[metric], colorscale="Viridis", cmin=0, cmax=1, showscale=True),
                                 dimensions=dims))
    fig.update_layout(height=380, margin=dict(l=60, r=40, t=40, b=20))
    return fig


def leaderboard_bars(df: pd.DataFrame) -> go.Figure:
    """Full-composite UF1 per method, grey = reported in a paper, blue = measured here."""
    d = df.dropna(subset=["full_uf1"]).sort_values("full_uf1")
    fig = go.Figure(go.Bar(
        x=d["full_uf1"], y=d["method"] + np.where(d["source"].str.startswith("measured"), " ★", ""),
        orientation="h", marker_color=[SOURCE_COLOURS.get(s, "#adb5bd") for s in d["source"]],
        customdata=d["source"], hovertemplate="%{y}: UF1 %{x:.4f}<br>%{customdata}<extra></extra>",
    ))
    fig.update_layout(xaxis_title="full composite UF1", xaxis_range=[0, 1], height=120 + 24 * len(d),
                      margin=dict(l=10, r=10, t=10, b=10))
    fig.update_yaxes(type="category")
    return fig


# --- jobs (issue 9): live training curves ------------------------------------------
def training_curves(epochs: pd.DataFrame) -> go.Figure:
    """Per-epoch training loss and accuracy, one line per fold (validation when stored).

    Test-subject curves are not drawn: picking epochs by them is the dishonest
    selection this project avoids.
    """
    from plotly.subplots import make_subplots

    fig = make_subplots(rows=1, cols=2, subplot_titles=("loss", "accuracy"), horizontal_spacing=0.08)
    for i, (fold, df) in enumerate(epochs.groupby("fold_index", sort=True)):
        colour = CLASS_COLOURS[i % len(CLASS_COLOURS)]
        name = f"fold {int(fold) + 1}"
        for col, (key, dash) in enumerate((("train_loss", "solid"), ("train_acc", "solid")), start=1):
            fig.add_trace(go.Scatter(x=df["epoch"], y=df[key], mode="lines+markers", name=name, legendgroup=name,
                                     showlegend=col == 1, line=dict(color=colour, dash=dash),
                                     hovertemplate=f"{name} epoch %{{x}}: {key} %{{y:.3f}}<extra></extra>"),
                          row=1, col=col)
        for col, key in ((1, "val_loss"), (2, "val_acc")):
            if key in df and df[key].notna().any():
                fig.add_trace(go.Scatter(x=df["epoch"], y=df[key], mode="lines", name=f"{name} validation",
                                         legendgroup=name, showlegend=False, line=dict(color=colour, dash="dot"),
                                         hovertemplate=f"{name} epoch %{{x}}: {key} %{{y:.3f}}<extra></extra>"),
                              row=1, col=col)
    fig.update_xaxes(title_text="epoch")
    fig.update_yaxes(range=[0, 1.02], row=1, col=2)
    fig.update_layout(height=320, margin=dict(l=10, r=10, t=30, b=10), legend=dict(orientation="h", y=-0.25))
    return fig


# --- jobs (issue 9): live training curves ------------------------------------------
def training_curves(epochs: pd.DataFrame) -> go.Figure:
    """Per-epoch training loss and accuracy, one line per fold (validation when stored).

    Test-subject curves are not drawn: picking epochs by them is the dishonest
    selection this project avoids.
    """
    from plotly.subplots import make_subplots

    fig = make_subplots(rows=1, cols=2, subplot_titles=("loss", "accuracy"), horizontal_spacing=0.08)
    for i, (fold, df) in enumerate(epochs.groupby("fold_index", sort=True)):
        colour = CLASS_COLOURS[i % len(CLASS_COLOURS)]
        name = f"fold {int(fold) + 1}"
        for col, (key, dash) in enumerate((("train_loss", "solid"), ("train_acc", "solid")), start=1):
            fig.add_trace(go.Scatter(x=df["epoch"], y=df[key], mode="lines+markers", name=name, legendgroup=name,
                                     showlegend=col == 1, line=dict(color=colour, dash=dash),
                                     hovertemplate=f"{name} epoch %{{x}}: {key} %{{y:.3f}}<extra></extra>"),
                          row=1, col=col)
        for col, key in ((1, "val_loss"), (2, "val_acc")):
            if key in df and df[key].notna().any():
                fig.add_trace(go.Scatter(x=df["epoch"], y=df[key], mode="lines", name=f"{name} validation",
                                         legendgroup=name, showlegend=False, line=dict(color=colour, dash="dot"),
                                         hovertemplate=f"{name} epoch %{{x}}: {key} %{{y:.3f}}<extra></extra>"),
                              row=1, col=col)
    fig.update_xaxes(title_text="epoch")
    fig.update_yaxes(range=[0, 1.02], row=1, col=2)
    fig.update_layout(height=320, margin=dict(l=10, r=10, t=30, b=10), legend=dict(orientation="h", y=-0.25))
    return fig
