"""Figures of clips and frames: datasets page, lesson and overview (pure functions of arrays).

Frame sliders carry their onset, apex and offset labels as annotations above
the slider (coloured as in :mod:`dashboard.palette`), so Plotly can neither
drop a label that crowds its neighbours nor clip the last one at the edge.

Grey frames travel to the browser as 8-bit PNG images (:func:`png_uri`), not
as Plotly heat maps of floats: a 33-frame player is about 0.5 MB instead of
6 MB of JSON. Maps that need a colour bar (differences, strain) stay heat maps.
"""
from __future__ import annotations

import base64

import cv2
import numpy as np
import pandas as pd
import plotly.graph_objects as go

from dashboard import palette
from dashboard.palette import CLASS_COLOURS, MASK_COLOURS

_IMG_LAYOUT = dict(margin=dict(l=0, r=0, t=30, b=0), height=300)


def class_counts(table: pd.DataFrame) -> go.Figure:
    counts = table["label"].value_counts().sort_index()
    share = counts / counts.sum()
    fig = go.Figure(go.Bar(x=counts.index.astype(str), y=counts.values,
                           text=[f"{n} ({s:.0%})" for n, s in zip(counts.values, share.values)],
                           textposition="outside", marker_color=CLASS_COLOURS[: len(counts)]))
    fig.update_layout(title="clips per class", yaxis_title="clips", margin=dict(l=10, r=10, t=40, b=10),
                      height=320, yaxis_range=[0, counts.max() * 1.2])
    return fig


def subject_counts(table: pd.DataFrame) -> go.Figure:
    fig = go.Figure()
    key = "native_subject" if table["dataset"].nunique() == 1 else "subject"
    pivot = table.groupby([key, "label"]).size().unstack(fill_value=0)
    for i, label in enumerate(pivot.columns):
        fig.add_bar(x=pivot.index.astype(str), y=pivot[label], name=str(label),
                    marker_color=CLASS_COLOURS[i % len(CLASS_COLOURS)])
    fig.update_layout(barmode="stack", title="clips per subject (one LOSO fold each)", yaxis_title="clips",
                      margin=dict(l=10, r=10, t=60, b=10), height=320,
                      legend=dict(orientation="h", y=1.02, yanchor="bottom", x=1, xanchor="right", title=None))
    fig.update_xaxes(type="category")
    return fig


def _mask_traces(masks: dict | None, shape: tuple[int, int]) -> list[go.Contour]:
    traces = []
    for key, mask in (masks or {}).items():
        m = np.asarray(mask, dtype=np.float32)
        if not m.any():
            continue
        if m.shape != shape:
            m = cv2.resize(m, (shape[1], shape[0]), interpolation=cv2.INTER_NEAREST)
        colour = MASK_COLOURS.get(key, "#ffffff")
        traces.append(go.Contour(z=(m > 0.5).astype(np.uint8), showscale=False,  # 1 byte a pixel in the JSON
                                 contours=dict(start=0.5, end=0.5, coloring="none"),
                                 line=dict(color=colour, width=2), name="true AU motion" if key == "au" else key,
                                 hoverinfo="skip", showlegend=True))
    return traces


def _framed(picture: go.Image | go.Heatmap, shape: tuple[int, int], title: str, masks: dict | None) -> go.Figure:
    """A picture trace without axes (y down, square pixels), with the masks' outlines."""
    fig = go.Figure([picture, *_mask_traces(masks, shape)])
    fig.update_layout(title=title, legend=dict(orientation="h", y=-0.02, yanchor="top"), **_IMG_LAYOUT)
    fig.update_yaxes(autorange="reversed", scaleanchor="x", visible=False)
    fig.update_xaxes(visible=False, constrain="domain")
    return fig


def _heat_fig(img: np.ndarray, title: str, colorscale: str, zmin: float, zmax: float) -> go.Figure:
    """A map drawn as a heat map with its colour bar."""
    return _framed(go.Heatmap(z=img, colorscale=colorscale, zmin=zmin, zmax=zmax, showscale=True,
                              hovertemplate="x %{x}, y %{y}: %{z:.3f}<extra></extra>"), img.shape[:2], title, None)


def png_uri(img: np.ndarray, lo: float = 0.0, hi: float = 1.0) -> str:
    """A grey map (values ``lo``..``hi`` -> black..white, 8 bits) or an RGB(A) uint8 image as a PNG data URI."""
    a = np.asarray(img)
    if a.ndim == 2:
        a = np.clip(np.round((a.astype(np.float32) - lo) * (255.0 / ((hi - lo) or 1.0))), 0, 255).astype(np.uint8)
    else:
        a = cv2.cvtColor(np.asarray(a, np.uint8), cv2.COLOR_RGB2BGR if a.shape[2] == 3 else cv2.COLOR_RGBA2BGRA)
    ok, buf = cv2.imencode(".png", a)
    if not ok:
        raise ValueError(f"cannot encode an image of shape {a.shape} as PNG")
    return "data:image/png;base64," + base64.b64encode(buf.tobytes()).decode("ascii")


def picture_fig(img: np.ndarray, title: str, *, masks: dict | None = None, lo: float = 0.0,
                hi: float = 1.0) -> go.Figure:
    """A grey (``lo``..``hi``) or RGB uint8 picture drawn as a PNG image (no colour bar), with mask outlines."""
    return _framed(go.Image(source=png_uri(img, lo, hi), hovertemplate="x %{x}, y %{y}<extra></extra>"),
                   np.asarray(img).shape[:2], title, masks)


def shared_bound(*imgs: np.ndarray, q: float = 99.8) -> float:
    """One colour bound for several signed maps (a high percentile of |value| over all of them).

    Maps drawn side by side with this bound are comparable: a magnified difference looks stronger than the
    original because it is, not because each picture was stretched to its own range.
    """
    values = np.concatenate([np.abs(np.asarray(i, dtype=np.float32)).ravel() for i in imgs])
    return float(np.percentile(values, q)) or float(values.max()) or 1.0


def signed_image(img: np.ndarray, title: str, bound: float | None = None) -> go.Figure:
    """A signed map (e.g. apex − onset) on a diverging scale centred on zero; ``bound`` shares a scale."""
    bound = bound or float(np.abs(img).max()) or 1.0
    return _heat_fig(img, title, "RdBu", -bound, bound)


def heat_image(img: np.ndarray, title: str) -> go.Figure:
    return _heat_fig(img, title, "Inferno", 0.0, float(img.max()) or 1.0)


# The slider is laid out in pixels, whatever the figure's width: the ▶ and ❚❚ buttons take the first
# BUTTONS_PX, so the slider, its "frame N" read-out and its grip start right of them (in paper units, a
# narrow player put the read-out under the pause button), and RIGHT_PX stay free for the last label.
BUTTONS_PX, RIGHT_PX = 100, 40
_RAIL_PX = 10            # Plotly draws a slider's first and last step this far inside its padding
_SLIDER_Y = -0.11        # top of the buttons and the slider, paper units under the picture
_TICK_NUMBERS_PX = -66   # the frame numbers under the rail, pixels below the slider's top
_MIN_LABEL_GAP = 0.3     # share of the rail (a label is ~50 px; a half-page rail 254 px): closer ones are stacked


def rail_position(index: int, n_frames: int) -> tuple[float, float]:
    """Where the step ``index`` of an ``n_frames``-step slider sits: (x in paper units, shift in pixels);
    the pixel is x * width + shift at any figure width."""
    f = index / (n_frames - 1 or 1)
    return f, (BUTTONS_PX + _RAIL_PX) * (1 - f) - (RIGHT_PX + _RAIL_PX) * f


def marker_positions(n_frames: int, marks: dict[str, int], first: int = 0) -> list[dict]:
    """Where each marker label sits above a slider of ``n_frames`` steps whose first step is frame ``first`` of
    the file: name, frame (of the file), x (paper), xshift (pixels), row.

    Labels closer than :data:`_MIN_LABEL_GAP` of the rail go on alternating rows, so none hides another.
    """
    out: list[dict] = []
    for name, frame in sorted(marks.items(), key=lambda kv: kv[1]):
        x, shift = rail_position(frame - first, n_frames)
        row = 0
        if out and x - out[-1]["x"] < _MIN_LABEL_GAP:
            row = 1 - out[-1]["row"]
        out.append({"name": name, "frame": int(frame), "x": x, "xshift": shift, "row": row})
    return out


def _marker_annotations(n_frames: int, marks: dict[str, int], first: int) -> list[dict]:
    return [dict(x=m["x"], xshift=m["xshift"], y=-0.01 - 0.05 * m["row"], xref="paper", yref="paper",
                 xanchor="center", yanchor="top", text=f"<b>{m['name']}</b> {m['frame']}", showarrow=False,
                 font=dict(color=palette.MARKER_COLOURS.get(m["name"], palette.DARK), size=12))
            for m in marker_positions(n_frames, marks, first)]


def _tick_numbers(n_frames: int, first: int) -> list[dict]:
    """Frame numbers (of the file) under the rail, every fifth frame (every tenth past 60 frames).

    Plotly's own step labels cannot do this: the "frame N" read-out shows the step's label, so every step
    is labelled with its frame and those labels are drawn transparent."""
    every = 5 if n_frames <= 60 else 10
    out = []
    for t in range(n_frames):
        if (first + t) % every == 0:
            x, shift = rail_position(t, n_frames)
            out.append(dict(x=x, xshift=shift, y=_SLIDER_Y, yshift=_TICK_NUMBERS_PX, xref="paper", yref="paper",
                            xanchor="center", yanchor="top", text=str(first + t), showarrow=False,
                            font=dict(color=palette.DARK, size=10)))
    return out


def clip_animation(clip: np.ndarray, onset: int, apex: int, offset: int, masks: dict | None = None,
                   title: str = "", *, frame_ms: int = 120, zmin: float = 0.0, zmax: float = 1.0,
                   first: int = 0) -> go.Figure:
    """A playable clip: one picture per video frame, ▶/❚❚ buttons and a frame slider.

    Frames are numbered as in the file: ``clip[0]`` is frame ``first`` (a clip cut from onset to offset
    passes its onset), and ``onset``, ``apex``, ``offset`` are frames of the file too. They are named above
    the slider in their palette colours, frame numbers sit under it every fifth frame, and "frame N" right of
    the buttons reads the frame shown. ``frame_ms`` sets the playback speed (a slowed-down clip: larger).
    """
    marks = {"onset": int(onset), "apex": int(apex), "offset": int(offset)}
    sources = [png_uri(frame, zmin, zmax) for frame in clip]
    base = picture_fig(clip[0], title or "clip", masks=masks, lo=zmin, hi=zmax)
    # frames as plain dicts without validation: a 30-frame clip otherwise costs ~0.15 s of Plotly checks
    frames = [dict(data=[dict(type="image", source=src)], traces=[0], name=str(t)) for t, src in enumerate(sources)]
    steps = [dict(method="animate", label=str(first + t),
                  args=[[str(t)], dict(mode="immediate", frame=dict(duration=0, redraw=True), transition=dict(duration=0))])
             for t in range(len(clip))]
    layout = base.layout.to_plotly_json()
    layout.update(
        height=440, margin=dict(l=0, r=0, t=30, b=120), showlegend=False,
        annotations=list(layout.get("annotations", [])) + _marker_annotations(len(clip), marks, first)
        + _tick_numbers(len(clip), first),
        updatemenus=[dict(type="buttons", direction="left", x=0, y=_SLIDER_Y, xanchor="left", yanchor="top",
                          buttons=[dict(label="▶", method="animate",
                                        args=[None, dict(frame=dict(duration=frame_ms, redraw=True), fromcurrent=True)]),
                                   dict(label="❚❚", method="animate",
                                        args=[[None], dict(mode="immediate", frame=dict(duration=0, redraw=False))])])],
        sliders=[dict(active=0, steps=steps, x=0, len=1, y=_SLIDER_Y, yanchor="top",
                      pad=dict(t=10, l=BUTTONS_PX, r=RIGHT_PX), font=dict(color="rgba(0,0,0,0)"),
                      currentvalue=dict(visible=True, prefix="frame ", font=dict(size=11, color=palette.DARK)))],
    )
    return go.Figure(dict(data=[d.to_plotly_json() for d in base.data], layout=layout, frames=frames),
                     _validate=False)


def au_regions(img: np.ndarray, regions: dict[str, np.ndarray], title: str) -> go.Figure:
    """A grey frame with one outlined region per action unit (name -> bool mask), each in its own colour."""
    fig = picture_fig(img, title)
    for k, (name, mask) in enumerate(regions.items()):
        m = np.asarray(mask, dtype=np.float32)
        if m.shape != img.shape[:2]:
            m = cv2.resize(m, (img.shape[1], img.shape[0]), interpolation=cv2.INTER_NEAREST)
        if not m.any():
            continue
        fig.add_trace(go.Contour(z=(m > 0.5).astype(np.uint8), showscale=False,
                                 contours=dict(start=0.5, end=0.5, coloring="none"),
                                 line=dict(color=CLASS_COLOURS[k % len(CLASS_COLOURS)], width=2), name=name,
                                 hoverinfo="skip", showlegend=True))
    return fig
