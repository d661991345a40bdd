"""Clip figures: frame-slider labels that are always visible, one colour scale for compared maps."""
from __future__ import annotations

import numpy as np

from dashboard import palette, plots


def _labels(fig) -> dict[str, dict]:
    out = {}
    for a in fig.layout.annotations:
        for name in ("onset", "apex", "offset"):
            if f"<b>{name}</b>" in (a.text or ""):
                out[name] = a
    return out


def test_onset_apex_and_offset_are_named_on_every_clip_slider():
    clip = np.zeros((30, 16, 16), np.float32)
    fig = plots.clip_animation(clip, 3, 13, 29)
    labels = _labels(fig)
    assert set(labels) == {"onset", "apex", "offset"}
    for name, a in labels.items():
        assert a.font.color == palette.MARKER_COLOURS[name]
        assert 0.0 < a.x < 0.97  # inside the figure: the last label is not clipped at the right edge
    slider = fig.layout.sliders[0]
    assert slider.x + slider.len <= 0.95


def test_close_markers_are_stacked_instead_of_overlapping():
    pos = plots.marker_positions(30, {"onset": 10, "apex": 11, "offset": 12})
    rows = [p["row"] for p in pos]
    assert rows[0] != rows[1] and rows[1] != rows[2]
    far = plots.marker_positions(30, {"onset": 0, "apex": 15, "offset": 29})
    assert [p["row"] for p in far] == [0, 0, 0]


def test_slider_step_labels_leave_the_marker_names_uncrowded():
    fig = plots.clip_animation(np.zeros((30, 8, 8), np.float32), 3, 13, 21)
    labels = [s.label for s in fig.layout.sliders[0].steps]
    assert sum(bool(label) for label in labels) <= 7


def test_compared_maps_share_one_colour_scale():
    small, large = np.full((4, 4), 0.01, np.float32), np.full((4, 4), 0.1, np.float32)
    bound = plots.shared_bound(small, large)
    a, b = plots.signed_image(small, "a", bound), plots.signed_image(large, "b", bound)
    assert a.data[0].zmax == b.data[0].zmax == bound
    assert plots.signed_image(small, "alone").data[0].zmax < bound  # without sharing, each is stretched
