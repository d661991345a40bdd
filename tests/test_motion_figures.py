"""Motion figures say what they show: the flow's colour wheel, the face before the background, a readable
strain scale, one magnification scale for every α, players sent as lossless PNG frames, curves per fold."""
from __future__ import annotations

import base64

import cv2
import numpy as np
import pandas as pd

from dashboard import palette, plots, plots_clip, plots_motion
from dashboard.plots_motion import OUTSIDE_KEEP, flow_wheel_rgb


def _decode(source: str) -> np.ndarray:
    """A PNG data URI -> RGB (or grey) uint8."""
    raw = np.frombuffer(base64.b64decode(source.split(",", 1)[1]), np.uint8)
    img = cv2.imdecode(raw, cv2.IMREAD_UNCHANGED)
    if img.ndim == 2:
        return img
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB if img.shape[2] == 3 else cv2.COLOR_BGRA2RGBA)


def _face(size: int = 64) -> np.ndarray:
    yy, xx = np.mgrid[0:size, 0:size]
    return (xx - size / 2) ** 2 + (yy - size / 2) ** 2 < (size / 4) ** 2


def test_the_flow_colours_come_with_the_wheel_that_reads_them():
    u = np.ones((64, 64), np.float32)  # everything moves right
    fig = plots_motion.flow_colour(u, np.zeros_like(u), "flow")
    images = [t for t in fig.data if t.type == "image"]
    assert len(images) == 2 and images[1].xaxis == "x2"  # the map, and the wheel beside it
    shown, wheel = _decode(images[0].source), _decode(images[1].source)
    assert np.array_equal(wheel, flow_wheel_rgb())
    c = wheel.shape[0] // 2
    # the map's colour for rightward motion is the wheel's colour on its right edge, and not its left edge's
    assert np.abs(shown[32, 32].astype(int) - wheel[c, -2]).max() <= 40
    assert np.abs(shown[32, 32].astype(int) - wheel[c, 1]).max() > 100
    labels = {a.text for a in fig.layout.annotations}
    assert {"right", "left", "up", "down"} <= labels


def test_motion_outside_the_face_is_drawn_weaker_than_inside():
    face = _face()
    u = np.where(face, 0.5, 5.0).astype(np.float32)  # the background (head drift, noise) moves ten times more
    v = np.zeros_like(u)
    colours = _decode(plots_motion.flow_colour(u, v, "flow", face).data[0].source).astype(int)
    chroma = colours.max(axis=-1) - colours.min(axis=-1)
    assert chroma[face].mean() > 200 and chroma[~face].max() <= 255 * OUTSIDE_KEEP + 1
    from mer_core.preprocess.flow import flow_arrows

    arrows = flow_arrows(u, v, step=8)
    fig = plots_motion.flow_arrows(np.full((64, 64), 0.5, np.float32), arrows, "arrows", face=face)
    lines = {t.name: t for t in fig.data if t.type == "scatter" and t.mode == "lines"}
    inside, outside = lines["arrows inside the face"], lines["arrows outside the face"]

    def longest(trace) -> float:
        x, y = np.array(trace.x, dtype=float), np.array(trace.y, dtype=float)
        return float(np.nanmax(np.hypot(x[1::3] - x[0::3], y[1::3] - y[0::3])))

    assert inside.line.color == palette.FLOW_ARROWS and inside.line.width > outside.line.width
    assert longest(outside) <= 1.2 * 8 + 1e-6  # capped at a cell and a fifth, however far the background moved
    assert longest(inside) >= 0.85 * 8  # the arrow scale is the face's, not the background's


def test_strain_has_a_percent_colour_bar_set_by_the_face_not_by_hot_background_pixels():
    face = _face()
    rng = np.random.default_rng(0)
    strain = np.where(face, 0.01 + 0.002 * rng.random((64, 64)), 0.5).astype(np.float32)
    fig = plots_motion.strain_figure(strain, "strain", face)
    heat = fig.data[0]
    assert heat.showscale is not False and heat.colorbar.tickformat.endswith("%")
    assert 0.005 < heat.zmax < 0.05  # the face's range; the background's 0.5 saturates instead
    alpha = _decode(fig.data[1].source)[..., 3]  # a white veil: clear over the face, opaque enough elsewhere
    assert (alpha[face] == 0).all() and (alpha[~face] >= 255 * (1 - OUTSIDE_KEEP) - 1).all()


def test_every_alpha_is_drawn_on_one_colour_scale_so_a_larger_alpha_looks_stronger():
    from streamlit.testing.v1 import AppTest

    def page():
        import numpy as np

        from dashboard import widgets
        from mer_core.preprocess.magnify import magnify

        t = np.arange(24, dtype=np.float32)[:, None, None]
        yy, xx = np.mgrid[0:32, 0:32]
        blob = np.exp(-((xx - 16.0 - 0.8 * np.sin(np.pi * t / 23)) ** 2 + (yy - 16.0) ** 2) / 20)
        clip = (0.3 + 0.4 * blob).astype(np.float32)
        top = magnify(clip, alpha=widgets.EVM_ALPHA_MAX, low=0.02, high=0.2)
        for alpha in (10.0, 20.0):
            widgets.evm_comparison(clip, magnify(clip, alpha=alpha, low=0.02, high=0.2), 12, alpha,
                                   key=f"evm{alpha:g}", magnified_max=top)

    at = AppTest.from_function(page, default_timeout=30).run()
    assert not at.exception, at.exception
    import json

    specs = {}
    for chart in at.get("plotly_chart"):
        spec = json.loads(chart.proto.spec)
        title = spec["layout"]["title"]["text"]
        if "magnified" in title and spec["data"][0]["type"] == "heatmap":
            specs[title] = spec["data"][0]
    a10, a20 = specs["apex − onset, magnified α = 10"], specs["apex − onset, magnified α = 20"]
    assert (a10["zmin"], a10["zmax"]) == (a20["zmin"], a20["zmax"])

    def z(trace) -> np.ndarray:
        data = trace["z"]
        if isinstance(data, dict):  # Plotly's typed-array encoding
            return np.frombuffer(base64.b64decode(data["bdata"]), dtype=np.dtype(data["dtype"])).reshape([int(n) for n in str(data["shape"]).split(",")])
        return np.asarray(data, dtype=float)

    assert np.abs(z(a20)).max() > 1.5 * np.abs(z(a10)).max()


def test_players_send_each_frame_as_a_lossless_png():
    rng = np.random.default_rng(1)
    clip = rng.random((6, 20, 24)).astype(np.float32)
    fig = plots_clip.clip_animation(clip, 1, 3, 5)
    assert fig.data[0].type == "image" and len(fig.frames) == 6
    for t, frame in enumerate(fig.frames):
        img = _decode(frame.data[0].source)
        assert img.shape == (20, 24)
        assert np.abs(img.astype(float) - clip[t] * 255).max() <= 0.5 + 1e-3


def test_one_fold_of_sixteen_can_be_followed_and_study_curves_have_whole_epochs():
    from dashboard import study_plots

    rows = [{"fold_index": f, "epoch": e, "train_loss": 1.0 / e + f / 100} for f in range(16) for e in (1, 2, 3)]
    fig = plots.curves_figure(pd.DataFrame(rows), "train_loss", highlight=6)
    lit = [t for t in fig.data if t.line.color == palette.HIGHLIGHT]
    assert [t.name for t in lit] == ["fold 7"] and list(lit[0].y) == [1.06, 0.56, 1 / 3 + 0.06]
    grey = [t for t in fig.data if t.line.color == palette.FAINT]
    assert len(grey) == 15 and {t.name for t in grey} == {"other folds"}
    curves = pd.DataFrame({"arm": ["a"] * 3, "metric": ["uf1"] * 3, "epoch": [1, 2, 3], "mean": [0.3, 0.4, 0.5],
                           "sd": [0.01] * 3, "n": [3] * 3})
    band = study_plots.band_curves(curves, "uf1", ["a"])
    assert band.layout.xaxis.dtick == 1 and band.layout.xaxis.tickformat == "d"


def test_a_detected_face_region_lies_inside_the_detector_box():
    from mer_core.preprocess.face import MARGIN, face_region

    size = 130
    region = face_region(size)
    inset = int(np.floor(size * MARGIN / (1 + 2 * MARGIN)))
    assert region[size // 2, size // 2] and not region[0, 0]
    assert not region[:inset].any() and not region[:, :inset].any()
    assert not region[size - inset:].any() and not region[:, size - inset:].any()
