"""Clip figures: frame-slider labels that are always visible, one colour scale for compared maps."""
from __future__ import annotations

import numpy as np

from dashboard import palette, plots_clip


def _labels(fig) -> dict[str, dict]:
    out = {}
    for a in fig.layout.annotations:
        for name in ("onset", "apex", "offset"):
            if f"<b>{name}</b>" in (a.text or ""):
                out[name] = a
    return out


def test_onset_apex_and_offset_are_named_on_every_clip_slider():
    clip = np.zeros((30, 16, 16), np.float32)
    fig = plots_clip.clip_animation(clip, 3, 13, 29)
    labels = _labels(fig)
    assert set(labels) == {"onset", "apex", "offset"}
    for name, a in labels.items():
        assert a.font.color == palette.MARKER_COLOURS[name]
        for width in (300, 900):  # right of the buttons, the last label not clipped at the right edge
            assert plots_clip.BUTTONS_PX < a.x * width + a.xshift < width - 25


def test_every_frame_is_read_out_in_frames_of_the_file():
    """One numbering: a clip cut from onset (frame 4 of the file) to offset is numbered 4, 5, ... not 0, 1, ..."""
    fig = plots_clip.clip_animation(np.zeros((19, 8, 8), np.float32), 4, 12, 22, first=4)
    steps = fig.layout.sliders[0].steps
    assert [s.label for s in steps] == [str(f) for f in range(4, 23)]  # "frame N" reads the step's label
    assert {name: a.text for name, a in _labels(fig).items()} == {
        "onset": "<b>onset</b> 4", "apex": "<b>apex</b> 12", "offset": "<b>offset</b> 22"}
    numbers = [a.text for a in fig.layout.annotations if a.text.isdigit()]
    assert numbers == ["5", "10", "15", "20"]
    whole = plots_clip.clip_animation(np.zeros((30, 8, 8), np.float32), 4, 12, 22)
    apex_cut, apex_whole = _labels(fig)["apex"], _labels(whole)["apex"]
    assert apex_cut.x == 8 / 18 and apex_whole.x == 12 / 29  # the same frame, placed on each clip's own rail


def test_close_markers_are_stacked_instead_of_overlapping():
    pos = plots_clip.marker_positions(30, {"onset": 10, "apex": 11, "offset": 12})
    rows = [p["row"] for p in pos]
    assert rows[0] != rows[1] and rows[1] != rows[2]
    far = plots_clip.marker_positions(30, {"onset": 0, "apex": 15, "offset": 29})
    assert [p["row"] for p in far] == [0, 0, 0]


def test_slider_frame_numbers_leave_the_marker_names_uncrowded():
    fig = plots_clip.clip_animation(np.zeros((30, 8, 8), np.float32), 3, 13, 21)
    assert fig.layout.sliders[0].font.color == "rgba(0,0,0,0)"  # Plotly's own step labels: one per frame, hidden
    assert sum(bool(a.text.isdigit()) for a in fig.layout.annotations) <= 7


def test_compared_maps_share_one_colour_scale():
    small, large = np.full((4, 4), 0.01, np.float32), np.full((4, 4), 0.1, np.float32)
    bound = plots_clip.shared_bound(small, large)
    a, b = plots_clip.signed_image(small, "a", bound), plots_clip.signed_image(large, "b", bound)
    assert a.data[0].zmax == b.data[0].zmax == bound
    assert plots_clip.signed_image(small, "alone").data[0].zmax < bound  # without sharing, each is stretched
