"""Figures of the motion from onset to apex: optical flow (colour wheel, arrows) and optical strain.

The face region, when known (the synthetic face's mask, or the ellipse of a
detected face box: :func:`face_region`), decides what is drawn strongly:
outside it the picture is greyed (blended towards white, :data:`OUTSIDE_KEEP`
of it kept) and its arrows are thin and grey, and the colour ranges and the
arrow scale are taken inside it, so head drift at the crop's border and camera
noise on the background cannot outshine the expression. Without a face region
everything is drawn alike and the caption says so.
"""
from __future__ import annotations

import cv2
import numpy as np
import plotly.graph_objects as go

from dashboard import palette
from dashboard.plots_clip import _IMG_LAYOUT, _mask_traces, picture_fig, png_uri, shared_bound
from mer_core.preprocess.flow import flow_to_rgb

OUTSIDE_KEEP = 0.35        # share of a picture's own colour kept outside the face (the rest is white)
WHEEL_SIDE = 0.34          # the colour wheel's width, as a share of the flow figure's width
STRAIN_PERCENTILE = 99.0   # strain colours end at this percentile inside the face (a few hot pixels saturate)
STRAIN_SMOOTH_PX = 1.0     # strain is smoothed this much for display: single-pixel noise of the flow's derivative


def face_region(shape: tuple[int, int], truth: np.ndarray | None = None,
                detected: np.ndarray | None = None) -> tuple[np.ndarray | None, str]:
    """The face region at ``shape`` and what it is: the synthetic face's mask (``truth``), else the detected
    face box (``detected``, mer_core's ``sample_views()['face_region']``), else (None, '')."""
    for mask, words in ((truth, "the synthetic face's mask"), (detected, "the detected face box")):
        if mask is not None and np.asarray(mask).any():
            m = np.asarray(mask, np.uint8)
            if m.shape != tuple(shape):
                m = cv2.resize(m, (shape[1], shape[0]), interpolation=cv2.INTER_NEAREST)
            return m.astype(bool), words
    return None, ""


def dim_outside(rgb: np.ndarray, face: np.ndarray | None) -> np.ndarray:
    """RGB uint8 with the pixels outside ``face`` blended towards white (only :data:`OUTSIDE_KEEP` kept)."""
    if face is None:
        return rgb
    out = rgb.astype(np.float32)
    out[~face] = out[~face] * OUTSIDE_KEEP + 255.0 * (1 - OUTSIDE_KEEP)
    return out.astype(np.uint8)


def _grey_rgb(img: np.ndarray) -> np.ndarray:
    g = np.clip(np.round(np.asarray(img, np.float32) * 255), 0, 255).astype(np.uint8)
    return np.stack([g, g, g], axis=-1)


def _face_outline(face: np.ndarray | None) -> list[go.Contour]:
    if face is None:
        return []
    trace = _mask_traces({"face": face}, face.shape)
    for t in trace:
        t.update(line=dict(color=palette.DARK, width=1, dash="dot"), name="face region", showlegend=False)
    return trace


def flow_wheel_rgb(size: int = 81) -> np.ndarray:
    """The flow colour wheel, RGB uint8 (size, size, 3): a pixel's direction from the centre is the hue its
    motion direction gets, its distance the brightness of its speed (white outside the disc).

    Drawn with :func:`mer_core.preprocess.flow.flow_to_rgb` itself, so the legend cannot disagree with the map.
    """
    c = (size - 1) / 2
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    u, v = (xx - c) / c, (yy - c) / c
    rgb = flow_to_rgb(u, v, max_magnitude=1.0)
    rgb[np.hypot(u, v) > 1.0] = 255
    return rgb


def _speed_top(mag: np.ndarray, face: np.ndarray | None) -> float:
    inside = mag[face] if face is not None and face.any() else mag
    return float(np.percentile(inside, 99)) or float(mag.max()) or 1.0


def flow_colour(u: np.ndarray, v: np.ndarray, title: str, face: np.ndarray | None = None) -> go.Figure:
    """The flow as colours (hue = direction, brightness = speed up to the face's 99th percentile), greyed outside
    the face, with the colour wheel that reads it drawn beside the map."""
    u, v = np.asarray(u, np.float32), np.asarray(v, np.float32)
    top = _speed_top(np.hypot(u, v), face)
    rgb = dim_outside(flow_to_rgb(u, v, max_magnitude=top), face)
    h, w = u.shape
    fig = go.Figure(go.Image(source=png_uri(rgb), hovertemplate="x %{x}, y %{y}<extra></extra>"))
    for trace in _face_outline(face):
        fig.add_trace(trace)
    wheel = flow_wheel_rgb()
    fig.add_trace(go.Image(source=png_uri(wheel), xaxis="x2", yaxis="y2", hoverinfo="skip"))
    n = wheel.shape[0]
    pad = 0.75 * n  # room around the wheel for its labels (annotations outside an axis range are not drawn)
    labels = [("right", n, n / 2, "left", "middle"), ("left", -1, n / 2, "right", "middle"),
              ("down", n / 2, n, "center", "top"), ("up", n / 2, -1, "center", "bottom")]
    fig.update_layout(
        title=title, **_IMG_LAYOUT, showlegend=False,
        xaxis=dict(domain=[0, 1 - WHEEL_SIDE], visible=False, constrain="domain"),
        yaxis=dict(autorange="reversed", scaleanchor="x", visible=False),
        xaxis2=dict(domain=[1 - WHEEL_SIDE, 1], visible=False, range=[-pad, n + pad], anchor="y2"),
        yaxis2=dict(domain=[0.4, 1], anchor="x2", range=[n + pad, -pad], scaleanchor="x2", visible=False),
        annotations=[dict(x=x, y=y, xref="x2", yref="y2", text=t, showarrow=False, xanchor=xa, yanchor=ya,
                          font=dict(size=9, color=palette.DARK)) for t, x, y, xa, ya in labels]
        + [dict(x=n / 2, y=n + pad, xref="x2", yref="y2", showarrow=False, yanchor="top", xanchor="center",
                text=f"full colour:<br>{top:.2g} px", font=dict(size=9, color=palette.DARK))],
    )
    return fig


def flow_arrows(background: np.ndarray, arrows: dict, title: str, masks: dict | None = None,
                face: np.ndarray | None = None, gain: float | None = None) -> go.Figure:
    """Arrows (tail → head) over the apex frame, scaled so the longest arrow inside the face spans one grid
    cell; arrows outside the face are thin and grey (and no longer than a cell), the frame greyed there."""
    x, y, u, v = (np.asarray(arrows[k], dtype=float) for k in ("x", "y", "u", "v"))
    h, w = np.asarray(background).shape[:2]
    fig = picture_fig(dim_outside(_grey_rgb(background), face), title, masks=masks)
    for trace in _face_outline(face):
        fig.add_trace(trace)
    mag = np.hypot(u, v)
    inside = (face[np.clip(y.astype(int), 0, h - 1), np.clip(x.astype(int), 0, w - 1)] if face is not None
              else np.ones(len(x), bool))
    step = float(np.diff(np.unique(x))[:1].mean()) if len(np.unique(x)) > 1 else 8.0
    ref = float(mag[inside].max()) if inside.any() else float(mag.max())
    gain = gain or (0.9 * step / ref if ref > 0 else 1.0)
    scale = np.minimum(gain, 1.2 * step / np.maximum(mag, 1e-9))  # no arrow longer than a cell and a fifth
    keep = mag > 0.05 * (ref or 1)
    for sel, colour, width, name in ((keep & ~inside, palette.MUTED, 1, "outside the face"),
                                     (keep & inside, palette.FLOW_ARROWS, 2, "inside the face")):
        xs, ys = [], []
        for x0, y0, du, dv in zip(x[sel], y[sel], (u * scale)[sel], (v * scale)[sel]):
            xs += [x0, x0 + du, None]
            ys += [y0, y0 + dv, None]
        fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines", line=dict(color=colour, width=width), hoverinfo="skip",
                                 name=f"arrows {name}", showlegend=False))
        fig.add_trace(go.Scatter(x=(x + u * scale)[sel], y=(y + v * scale)[sel], mode="markers",
                                 marker=dict(color=colour, size=2 + width), hoverinfo="skip", showlegend=False))
    fig.update_layout(title=f"{title} (×{gain:.0f})")
    return fig


def strain_figure(strain: np.ndarray, title: str, face: np.ndarray | None = None) -> go.Figure:
    """Optical strain as a heat map with a colour bar in percent: smoothed by :data:`STRAIN_SMOOTH_PX`, colours
    ending at the :data:`STRAIN_PERCENTILE` th percentile inside the face, the outside greyed."""
    s = cv2.GaussianBlur(np.asarray(strain, np.float32), (0, 0), STRAIN_SMOOTH_PX)
    inside = s
    if face is not None:  # the range from the face, away from its edge (where the smoothing mixes the outside in)
        edge = int(np.ceil(3 * STRAIN_SMOOTH_PX))
        core = cv2.erode(face.astype(np.uint8), np.ones((2 * edge + 1, 2 * edge + 1), np.uint8)).astype(bool)
        inside = s[core] if core.any() else s[face] if face.any() else s
    top = float(np.percentile(inside, STRAIN_PERCENTILE)) or float(s.max()) or 1.0
    fig = go.Figure(go.Heatmap(
        z=s, colorscale="Inferno", zmin=0.0, zmax=top, hovertemplate="x %{x}, y %{y}: %{z:.2%}<extra></extra>",
        colorbar=dict(title=dict(text="stretch", side="right"), tickformat=".1%", thickness=12)))
    if face is not None:  # a white veil outside the face: a small RGBA picture over the heat map
        veil = np.zeros(face.shape + (4,), np.uint8)
        veil[~face] = (255, 255, 255, round(255 * (1 - OUTSIDE_KEEP)))
        fig.add_trace(go.Image(source=png_uri(veil), hoverinfo="skip", name="outside the face"))
        for trace in _face_outline(face):
            fig.add_trace(trace)
    fig.update_layout(title=title, showlegend=False, **_IMG_LAYOUT)
    fig.update_yaxes(autorange="reversed", scaleanchor="x", visible=False)
    fig.update_xaxes(visible=False, constrain="domain")
    return fig


def evm_bound(clip: np.ndarray, magnified_max: np.ndarray, apex: int, blur: float = 0.0) -> float:
    """One colour bound for the magnification's apex − onset at every α: the range that the largest α reaches
    (``magnified_max``), so a larger α is drawn stronger instead of being stretched to the same colours."""
    d0, d1 = clip[apex] - clip[0], magnified_max[apex] - magnified_max[0]
    if blur:
        d0, d1 = cv2.GaussianBlur(d0, (0, 0), blur), cv2.GaussianBlur(d1, (0, 0), blur)
    return shared_bound(d0, d1)
