"""Spotting copes with head motion: a sway is no expression once the head motion is taken out.

The clips are one synthetic face (rendered clean: no noise, drift or blink)
at 30 fps with sensor noise added; a *sway* moves the whole head out by a few
pixels and back within about half a second, as a quick head movement does,
and carries no expression.
"""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from mer_core.datasets.synthetic import SynthOptions, plan_dataset
from mer_core.datasets.synthetic.generate import render_clip, subject_face
from mer_core.errors import ConfigError
from mer_core.preprocess.spotting import spot
from mer_core.preprocess.stabilise import align, border_mask, positions
from mer_core.spotting.features import compute
from mer_core.spotting.loso import SpotConfig
from mer_core.spotting.spotters import TypeParams, spot_intervals

FPS = 30.0
SWAY_PX = 3.0  # at the 128 px frame: 1.5 px at the spotter's 64 px


@pytest.fixture(scope="module")
def face_clip():
    opt = SynthOptions()
    plan = max((p for p in plan_dataset(opt) if p.subject_index == 0 and p.blink_start < 0), key=lambda p: p.peak_px)
    return plan, render_clip(opt, plan, subject_face(opt, 0), clean=True)


def _stream(face_clip, n: int, expression_apex: int | None = None, sway_at: int | None = None,
            seed: int = 0) -> list[np.ndarray]:
    """``n`` frames of the neutral face; the clip's expression with its apex at ``expression_apex``; a sway."""
    plan, clip = face_clip
    rng = np.random.default_rng(seed)
    out = []
    for t in range(n):
        k = None if expression_apex is None else t - expression_apex + plan.apex
        f = clip[k if k is not None and 0 <= k < len(clip) else 0].astype(np.float32)
        if sway_at is not None:
            d = SWAY_PX * np.exp(-0.5 * ((t - sway_at) / 3.0) ** 2)
            f = cv2.warpAffine(f, np.float32([[1, 0, d], [0, 1, -0.6 * d]]), f.shape[::-1],
                               borderMode=cv2.BORDER_REFLECT101)
        out.append(np.clip(np.rint(f + rng.normal(0, 2.0, f.shape)), 0, 255).astype(np.uint8))
    return out


def _micro(frames, kind: str) -> np.ndarray:
    return compute(enumerate(frames), FPS, kind)["micro"]


def test_a_head_sway_alone_is_no_expression_for_the_long_video_spotter(face_clip):
    sway = _stream(face_clip, 90, sway_at=45)
    expression = _stream(face_clip, 90, expression_apex=45)
    raw_sway, raw_expr = _micro(sway, "raw_curves"), _micro(expression, "raw_curves")
    stab_sway, stab_expr = _micro(sway, "curves"), _micro(expression, "curves")
    assert raw_sway.max() > raw_expr.max()  # raw differences: the sway looks like a larger expression than the real one
    assert stab_sway.max() < 0.5 * stab_expr.max() and stab_sway.max() < 0.2 * raw_sway.max()

    def found(curve: np.ndarray, threshold: float) -> list[int]:
        params = {"micro": TypeParams(threshold, 15, 4, 4)}
        return spot_intervals("v", {"micro": curve}, params)["apex"].tolist()

    # a threshold that finds the real expression finds nothing in the sway once the head motion is out
    assert [abs(a - 45) <= 2 for a in found(stab_expr, 0.5 * stab_expr.max())] == [True]
    assert found(stab_sway, 0.5 * stab_expr.max()) == []
    assert [abs(a - 45) <= 2 for a in found(raw_sway, 0.5 * raw_expr.max())] == [True]  # raw: a false alarm


def test_an_expression_is_still_found_beside_a_head_sway(face_clip):
    frames = _stream(face_clip, 90, expression_apex=30, sway_at=65)
    assert abs(int(np.argmax(_micro(frames, "raw_curves"))) - 65) <= 2  # raw: the sway is the largest motion
    assert abs(int(np.argmax(_micro(frames, "curves"))) - 30) <= 2


def test_the_clip_spotter_finds_the_apex_and_not_the_sway(face_clip):
    plan, clip = face_clip
    apex, sway_at = plan.apex + 4, len(clip) - 6
    frames = _stream(face_clip, len(clip), expression_apex=apex, sway_at=sway_at)
    assert abs(spot(frames, stabilise=False).apex - sway_at) <= 2
    s = spot(frames)
    assert abs(s.apex - apex) <= 1 and "head-stabilised" in s.method
    assert any(n.startswith("head motion removed") for n in s.notes)


def test_the_stabiliser_recovers_known_shifts_and_invents_none():
    rng = np.random.default_rng(3)
    texture = cv2.GaussianBlur(rng.random((96, 96)).astype(np.float32) * 255, (0, 0), 2.0)
    truth = np.array([[0, 0], [0.4, -0.3], [1.7, 0.9], [5.2, -3.1], [-0.6, 2.4]], np.float32)
    frames = np.stack([cv2.warpAffine(texture, np.float32([[1, 0, dx], [0, 1, dy]]), (96, 96),
                                      flags=cv2.INTER_CUBIC)[16:80, 16:80] * (1 + 0.02 * i)  # and a flicker
                       for i, (dx, dy) in enumerate(truth)])
    before = frames.copy()
    found = positions(frames)
    assert np.abs(found - truth).max() < 0.1, found
    assert np.array_equal(frames, before)  # the frames are not touched (cv2.phaseCorrelate writes into its inputs)
    back = align(frames, found)
    border = border_mask(found, (64, 64))
    still = frames[3] / (1 + 0.02 * 3)  # the flicker undone
    moved_back = back[3] / (1 + 0.02 * 3)
    assert np.abs(moved_back - frames[0])[~border].mean() < 0.1 * np.abs(still - frames[0])[~border].mean()
    assert border[:, -6:].all() and border[:4].all() and not border[10:50, 10:50].any()
    flat = np.full((4, 64, 64), 100.0, np.float32) + rng.normal(0, 1, (4, 64, 64)).astype(np.float32)
    assert np.abs(positions(flat)).max() < 0.5  # noise alone: no head motion made up


def test_the_head_motion_option_is_stored_and_old_runs_read_as_raw():
    assert SpotConfig().stabilise is True
    assert SpotConfig.from_dict({"dataset": "synthetic-long"}).stabilise is False  # stored before the option
    assert SpotConfig.from_dict(SpotConfig(stabilise=False).to_dict()).stabilise is False
    with pytest.raises(ConfigError, match="stabilise='no'"):
        SpotConfig(stabilise="no")
