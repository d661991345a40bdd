"""Figures of the Analyse a clip page: the motion curve with the spotted frames."""
from __future__ import annotations

from typing import Sequence

import plotly.graph_objects as go

from dashboard import palette


def motion_curve(curve: Sequence[float], marks: dict[str, int], *, start: int = 0, fps: float | None = None) -> go.Figure:
    """The motion curve over the analysed frames (frame numbers of the file) with onset/apex/offset lines."""
    frames = [start + i for i in range(len(curve))]
    fig = go.Figure(go.Scatter(x=frames, y=list(curve), mode="lines", line=dict(color=palette.DARK),
                               name="motion", hovertemplate="frame %{x}: %{y:.3f}<extra></extra>"))
    for name, idx in marks.items():
        fig.add_vline(x=start + int(idx), line_color=palette.MARKER_COLOURS[name], line_width=2,
                      annotation_text=name, annotation_position="top")
    title = "frame" + (f" (at {fps:g} fps)" if fps else "")
    fig.update_layout(xaxis_title=title, yaxis_title="motion (0-1)", height=260,
                      margin=dict(l=10, r=10, t=30, b=10), showlegend=False)
    return fig
