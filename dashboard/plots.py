"""Plotly figures shared by the pages (pure functions of data frames)."""
from __future__ import annotations

import math
from typing import Sequence

import cv2
import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from dashboard import palette
from dashboard.palette import CLASS_COLOURS, SOURCE_COLOURS


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
        zmin=0, zmax=1 if normalise else None, showscale=True,
        colorbar=dict(title=dict(text="share of the row" if normalise else "clips", side="right"), thickness=12),
        hovertemplate="true %{y} → predicted %{x}<br>%{text}<extra></extra>",
    ))
    fig.update_layout(
        title=title or None, xaxis_title="predicted", yaxis_title="true", yaxis_autorange="reversed",
        margin=dict(l=10, r=10, t=40 if title else 10, b=10), height=120 + 70 * len(classes),
    )
    fig.update_xaxes(side="bottom", type="category")
    fig.update_yaxes(type="category")
    return fig


def subject_bars(per_subject: pd.DataFrame, metric: str = "uf1", *, hover: dict[str, str] | None = None,
                 chance: pd.DataFrame | None = None) -> go.Figure:
    """Per-subject scores sorted best to worst, with the sample count on each bar; ``hover`` adds a text per
    subject (e.g. its confusion matrix) and ``chance`` (a frame with ``subject`` and the metric, e.g.
    :func:`~mer_core.evaluation.context.group_chance`) a tick per bar at what a uniform guess scores there."""
    df = per_subject.sort_values(metric, ascending=False)
    extra = [(hover or {}).get(str(s), "") for s in df["subject"]]
    fig = go.Figure(go.Bar(
        x=df["subject"].astype(str), y=df[metric], text=[f"n={n}" for n in df["n"]], textposition="outside",
        marker_color=palette.ACCENT, name="held-out subject", showlegend=False,
        customdata=np.stack([df["n"], df["accuracy"], df["uf1"], df["uar"], extra], axis=1),
        hovertemplate=("<b>%{x}</b>  n=%{customdata[0]}<br>accuracy %{customdata[1]:.3f} · "
                       "UF1 %{customdata[2]:.3f} · UAR %{customdata[3]:.3f}<br>%{customdata[4]}<extra></extra>"),
        hoverlabel=dict(font_family="monospace"),
    ))
    if chance is not None and len(chance):
        level = chance.set_index(chance["subject"].astype(str))[metric]
        fig.add_trace(go.Scatter(
            x=df["subject"].astype(str), y=[level.get(str(s), np.nan) for s in df["subject"]], mode="markers",
            marker=dict(symbol="line-ew-open", size=26, color=palette.DARK, line=dict(width=3, color=palette.DARK)),
            name="chance (a uniform guess, expected)",
            hovertemplate="%{x}: a uniform guess scores %{y:.3f} on average<extra></extra>"))
        fig.update_layout(legend=dict(orientation="h", yanchor="bottom", y=1.0, x=0))
    fig.update_layout(yaxis_title={"uf1": "UF1", "uar": "UAR"}.get(metric, metric), yaxis_range=[0, 1.12],
                      xaxis_title="held-out subject",
                      margin=dict(l=10, r=10, t=30 if chance is not None else 10, b=10), height=360)
    fig.update_xaxes(type="category")
    return fig


# --- results pages: curves, confusion, subjects, leaderboard ---------------------------


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
        marker=dict(symbol="square", size=60, opacity=0.01, color=palette.CLICK_TARGET),
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


CURVE_NAMES = {  # every curve is named by what it was measured on: training, validation or test subject
    "train_loss": "training loss", "train_acc": "training accuracy", "val_loss": "validation loss",
    "val_acc": "validation accuracy", "val_uf1": "validation UF1", "lr": "learning rate",
    "test_acc": "test-subject accuracy (diagnostic)", "test_uf1": "test-subject UF1 (diagnostic)",
}


def integer_epochs(fig: go.Figure, last_epoch: float | None, **where) -> go.Figure:
    """Epoch axes with whole-number ticks only (1, 2, 3... or every k-th when there are many)."""
    step = max(1, math.ceil((float(last_epoch) if last_epoch and last_epoch == last_epoch else 1) / 10))
    fig.update_xaxes(tickmode="linear", tick0=1 if step > 1 else 0, dtick=step, tickformat="d", **where)
    return fig


def curves_figure(epochs: pd.DataFrame, metric: str, *, title: str = "", highlight: int | None = None) -> go.Figure:
    """One thin grey line per fold and the mean over folds (bold) of an epoch metric, named in words.

    ``highlight`` (a fold index) draws that fold in its own colour on top of the grey ones, so one of many
    folds can be followed; every line names its fold on hover.
    """
    fig = go.Figure()
    df = epochs.dropna(subset=[metric])
    name = CURVE_NAMES.get(metric, metric.replace("_", " "))
    for i, (fold, g) in enumerate(df.groupby("fold_index")):
        if int(fold) == highlight:
            continue
        fig.add_trace(go.Scatter(x=g["epoch"], y=g[metric], mode="lines", line=dict(width=1, color=palette.FAINT),
                                 name="other folds" if highlight is not None else "each fold", legendgroup="folds",
                                 showlegend=not any(t.legendgroup == "folds" for t in fig.data),
                                 hovertemplate=f"fold {int(fold) + 1}<br>epoch %{{x}}: %{{y:.3f}}<extra></extra>"))
    mean = df.groupby("epoch")[metric].mean()
    fig.add_trace(go.Scatter(x=mean.index, y=mean.values, mode="lines+markers", line=dict(width=3, color=palette.ACCENT),
                             name=f"{name}, mean over folds", hovertemplate="mean, epoch %{x}: %{y:.3f}<extra></extra>"))
    lit = df[df["fold_index"] == highlight] if highlight is not None else df.iloc[:0]
    if len(lit):  # drawn last: on top of the mean where they cross
        fig.add_trace(go.Scatter(x=lit["epoch"], y=lit[metric], mode="lines+markers",
                                 line=dict(width=2, color=palette.HIGHLIGHT), name=f"fold {int(highlight) + 1}",
                                 hovertemplate=f"fold {int(highlight) + 1}<br>epoch %{{x}}: %{{y:.3f}}<extra></extra>"))
    fig.update_layout(xaxis_title="epoch", yaxis_title=name, title=title or None, height=360,
                      margin=dict(l=10, r=10, t=70 if title else 40, b=10),
                      legend=dict(orientation="h", yanchor="bottom", y=1.02, x=0))
    return integer_epochs(fig, df["epoch"].max() if len(df) else None)


def interval_figure(rows: pd.DataFrame) -> go.Figure:
    """Point estimates with 95% intervals, one row per run (columns label, point, low, high)."""
    fig = go.Figure(go.Scatter(
        x=rows["point"], y=rows["label"], mode="markers", marker=dict(size=11, color=palette.ACCENT),
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
        x=df["a"], y=df["b"], mode="markers", marker=dict(size=6 + 2 * np.sqrt(df["n"]), color=palette.ACCENT,
                                                           opacity=0.7, line=dict(width=1, color="white")),
        text=df["subject"], customdata=df["n"],
        hovertemplate=f"%{{text}} (n=%{{customdata}})<br>{names[0]}: %{{x:.3f}}<br>{names[1]}: %{{y:.3f}}<extra></extra>",
    ))
    fig.add_trace(go.Scatter(x=[0, 1], y=[0, 1], mode="lines", line=dict(dash="dash", color=palette.MUTED),
                             hoverinfo="skip", showlegend=False))
    fig.update_layout(xaxis_title=f"{names[0]} {metric.upper()}", yaxis_title=f"{names[1]} {metric.upper()}",
                      xaxis_range=[-0.03, 1.03], yaxis_range=[-0.03, 1.03], height=380, showlegend=False,
                      margin=dict(l=10, r=10, t=10, b=10))
    return fig


def difference_bars(df: pd.DataFrame, names: tuple[str, str], metric: str = "uf1") -> go.Figure:
    """Per-subject B - A, sorted; green where B is better, red where A is better."""
    d = df.assign(diff=df["b"] - df["a"]).sort_values("diff", ascending=False)
    colours = [palette.GOOD if v > 0 else (palette.BAD if v < 0 else palette.MUTED) for v in d["diff"]]
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
                                   mode="markers", marker=dict(size=10, color=palette.ACCENT), text=df["id"],
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
        orientation="h", marker_color=[SOURCE_COLOURS.get(s, palette.MUTED) for s in d["source"]],
        customdata=d["source"], hovertemplate="%{y}: UF1 %{x:.4f}<br>%{customdata}<extra></extra>",
    ))
    fig.update_layout(xaxis_title="full composite UF1", xaxis_range=[0, 1], height=120 + 24 * len(d),
                      margin=dict(l=10, r=10, t=10, b=10))
    fig.update_yaxes(type="category")
    return fig


# --- jobs: live training curves ------------------------------------------------------
def training_curves(epochs: pd.DataFrame, highlight: int | None = None) -> go.Figure:
    """Per-epoch loss and accuracy: one fold highlighted (the latest by default), every other fold grey.

    Training curves are solid, validation curves (when stored) dotted, and the
    legend says which is which. Test-subject curves are not drawn: picking
    epochs by them is the dishonest selection this project avoids.
    """
    fig = make_subplots(rows=1, cols=2, subplot_titles=("loss", "accuracy"), horizontal_spacing=0.08)
    folds = sorted(int(f) for f in epochs["fold_index"].unique()) if len(epochs) else []
    lit = highlight if highlight in folds else (folds[-1] if folds else None)
    shown: set[str] = set()
    for fold, df in epochs.groupby("fold_index", sort=True):
        on = int(fold) == lit
        colour, width = (palette.ACCENT, 2.5) if on else (palette.FAINT, 1)
        for col, (key, split, dash) in enumerate((("train_loss", "training", "solid"), ("train_acc", "training", "solid"),
                                                  ("val_loss", "validation", "dot"), ("val_acc", "validation", "dot"))):
            if key not in df or not df[key].notna().any():
                continue
            name = f"{split}, fold {int(fold) + 1}" if on else f"{split}, other folds"
            fig.add_trace(go.Scatter(x=df["epoch"], y=df[key], mode="lines+markers" if on and len(df) <= 60 else "lines",
                                     name=name, legendgroup=name, showlegend=name not in shown,
                                     line=dict(color=colour, dash=dash, width=width),
                                     hovertemplate=f"{split}, fold {int(fold) + 1}, epoch %{{x}}: %{{y:.3f}}<extra></extra>"),
                          row=1, col=1 + col % 2)
            shown.add(name)
    # the highlighted fold is drawn on top of the grey ones
    fig.data = tuple(sorted(fig.data, key=lambda t: "other folds" not in str(t.name)))
    fig.update_xaxes(title_text="epoch")
    integer_epochs(fig, epochs["epoch"].max() if len(epochs) else None)
    fig.update_yaxes(range=[0, 1.02], row=1, col=2)
    fig.update_layout(height=360, margin=dict(l=10, r=10, t=70, b=10),
                      legend=dict(orientation="h", yanchor="bottom", y=1.12, x=0))
    return fig


# --- explanations (Explain page) ------------------------------------------------------


def _grey_rgb(img: np.ndarray) -> np.ndarray:
    """Any grey image -> RGB uint8, stretched to its own range (robust 1-99 %)."""
    a = np.asarray(img, dtype=np.float32)
    lo, hi = np.percentile(a, 1), np.percentile(a, 99)
    a = np.clip((a - lo) / (hi - lo if hi > lo else 1.0), 0, 1)
    g = (a * 255).astype(np.uint8)
    return np.stack([g, g, g], axis=-1)


def colour_bar_rgb(width: int = 256, height: int = 10) -> np.ndarray:
    """The inferno scale that :func:`heat_rgb` and :func:`overlay_image` use, low (left) to high, RGB uint8."""
    ramp = np.tile(np.linspace(0, 255, width).astype(np.uint8), (height, 1))
    return cv2.cvtColor(cv2.applyColorMap(ramp, cv2.COLORMAP_INFERNO), cv2.COLOR_BGR2RGB)


def heat_rgb(heat: np.ndarray) -> np.ndarray:
    """A non-negative map -> RGB uint8 with the inferno colour map, scaled to its 99th percentile."""
    h = np.clip(np.asarray(heat, dtype=np.float32), 0, None)
    top = float(np.percentile(h, 99.5)) or float(h.max()) or 1.0
    g = (np.clip(h / top, 0, 1) * 255).astype(np.uint8)
    return cv2.cvtColor(cv2.applyColorMap(g, cv2.COLORMAP_INFERNO), cv2.COLOR_BGR2RGB)


def overlay_image(face: np.ndarray | None, heat: np.ndarray | None, *, opacity: float = 0.5,
                  outlines: Sequence[tuple[np.ndarray, tuple[int, int, int]]] = (), size: int = 256) -> np.ndarray:
    """Face (grey) with a heat map blended on top and mask outlines, RGB uint8 (size, size, 3).

    ``opacity`` is the heat map's weight (0 = face only, 1 = map only); the
    heat map is made transparent where it is near zero so the face shows through.
    ``outlines``: (bool mask, RGB colour) pairs drawn as 1-px contours at ``size``.
    """
    ref = heat if heat is not None else face
    if ref is None:
        return np.zeros((size, size, 3), np.uint8)
    h0, w0 = np.asarray(ref).shape[:2]
    out_w = size
    out_h = max(1, int(round(size * h0 / w0)))
    base = _grey_rgb(face) if face is not None else np.zeros((h0, w0, 3), np.uint8)
    base = cv2.resize(base, (out_w, out_h), interpolation=cv2.INTER_LINEAR).astype(np.float32)
    if heat is not None:
        hm = cv2.resize(np.asarray(heat, np.float32), (out_w, out_h), interpolation=cv2.INTER_LINEAR)
        # stretch between the map's 1st and 99.5th percentiles: a map with a high floor (attention
        # gates around 0.5) shows its contrast, not a uniform wash
        lo = max(0.0, float(np.percentile(hm, 1)))
        hm = np.clip(hm - lo, 0, None)
        col = heat_rgb(hm).astype(np.float32)
        top = float(np.percentile(hm, 99.5)) or float(hm.max()) or 1.0
        # transparent below a tenth of the top, then rising (sqrt: weak but real mass stays visible)
        alpha = (opacity * np.clip((hm / top - 0.1) / 0.9, 0, 1) ** 0.5)[..., None]
        base = base * (1 - alpha) + col * alpha
    img = np.clip(base, 0, 255).astype(np.uint8)
    for mask, colour in outlines:
        m = cv2.resize(np.asarray(mask, np.uint8), (out_w, out_h), interpolation=cv2.INTER_NEAREST)
        contours, _ = cv2.findContours(m, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
        cv2.drawContours(img, contours, -1, tuple(int(c) for c in colour), 1)
    return img


def probability_bars(probs: Sequence[float], classes: Sequence[str], *, true: int | None = None,
                     pred: int | None = None) -> go.Figure:
    """Horizontal bars of the class probabilities; the true class is green, a wrong prediction red."""
    colours = []
    for i in range(len(classes)):
        colours.append(palette.GOOD if i == true else palette.BAD if i == pred else palette.MUTED)
    fig = go.Figure(go.Bar(
        x=list(probs), y=list(classes), orientation="h", marker_color=colours,
        text=[f"{p:.2f}" for p in probs], textposition="outside",
        hovertemplate="%{y}: %{x:.3f}<extra></extra>",
    ))
    fig.update_layout(xaxis_range=[0, 1.15], xaxis_title="probability", margin=dict(l=10, r=10, t=10, b=10),
                      height=70 + 34 * len(classes), yaxis_autorange="reversed")
    fig.update_yaxes(type="category")
    return fig


def localisation_bars(table: pd.DataFrame, metric: str = "au_share") -> go.Figure:
    """Grouped bars: one group per method, one bar per model; chance level (AU area) as a dashed line."""
    fig = go.Figure()
    for k, (model, part) in enumerate(table.groupby("model", sort=True)):
        fig.add_bar(x=part["method"], y=part[metric], name=str(model), marker_color=CLASS_COLOURS[k % len(CLASS_COLOURS)],
                    customdata=np.stack([part["n"]], axis=1),
                    hovertemplate="%{x}<br>%{y:.3f} (n=%{customdata[0]})<extra>" + str(model) + "</extra>")
    if metric == "au_share" and "au_area" in table and len(table):
        fig.add_hline(y=float(table["au_area"].mean()), line_dash="dash", line_color=palette.DARK,
                      annotation_text="chance (AU area)", annotation_position="top left")
    labels = {"au_share": "mass on true AUs", "blink_share": "mass on blinks", "pointing": "pointing-game hits"}
    fig.update_layout(barmode="group", yaxis_range=[0, 1], yaxis_title=labels.get(metric, metric),
                      margin=dict(l=10, r=10, t=10, b=10), height=340, legend_title_text="model")
    fig.update_xaxes(type="category")
    return fig
