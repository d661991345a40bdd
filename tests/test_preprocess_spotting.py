"""Spotting with blinks: eye regions left out of the motion curve when a blink is found.

A blink moves the lids far more than a micro-expression moves any skin; the
old curve (whole crop) peaks on it. These tests render one synthetic clip
with a blink moved well after the apex, and a textured clip with no face (no
eyes for the cascade) with a burst in the fixed eye band.
"""
from __future__ import annotations

import dataclasses

import cv2
import numpy as np

from mer_core.datasets.synthetic import SynthOptions, plan_dataset
from mer_core.datasets.synthetic.generate import render_clip, subject_face
from mer_core.preprocess.spotting import EYE_BAND, SPOT_SIZE, find_eyes, motion_curve, small_frames, spot


def _old_apex(frames) -> int:
    """The apex the whole-crop curve (nothing excluded, the method before blink handling) gives."""
    n = len(frames)
    curve = motion_curve(small_frames(frames), 0, n - 1)
    return 1 + int(np.argmax(curve[1 : n - 1]))


def test_a_blink_far_from_the_apex_no_longer_takes_the_apex():
    opt = SynthOptions()
    plan = [p for p in plan_dataset(opt) if p.subject_index == 0][3]
    plan = dataclasses.replace(plan, blink_start=plan.apex + 6, blink_length=10)
    frames = list(render_clip(opt, plan, subject_face(opt, 0)))
    blink = range(plan.blink_start, plan.blink_start + plan.blink_length + 1)
    assert _old_apex(frames) in blink  # whole crop: the blink wins
    s = spot(frames)
    assert abs(s.apex - plan.apex) <= 3
    assert s.excluded == ("eye regions (Haar eye cascade)",) and "excluded for a blink" in s.method
    assert any(n.startswith("blink found") for n in s.notes) and s.blink_score > 1.0
    d = s.as_dict()
    assert d["excluded"] == list(s.excluded) and "synthetic" in d["developed_on"]


def test_the_same_clip_without_its_blink_keeps_the_eyes():
    opt = SynthOptions()
    plan = dataclasses.replace([p for p in plan_dataset(opt) if p.subject_index == 0][3], blink_start=-1, blink_length=0)
    s = spot(list(render_clip(opt, plan, subject_face(opt, 0))))
    assert s.excluded == () and any(n.startswith("no blink found") for n in s.notes)
    assert abs(s.apex - plan.apex) <= 3


def _noise_clip_with_band_burst(n: int = 20, apex: int = 5, burst: int = 14) -> np.ndarray:
    """A wall-like texture (no face) whose lower patch shifts 1 px at ``apex``; a bright blob in the eye band at ``burst``."""
    rng = np.random.default_rng(1)
    size = SPOT_SIZE
    base = cv2.GaussianBlur((rng.random((size, size)) * 255).astype(np.float32), (0, 0), 2.0)
    base = (base - base.min()) / (base.max() - base.min()) * 150 + 50
    moved = cv2.warpAffine(base, np.float32([[1, 0, 1.0], [0, 1, 0]]), (size, size), borderMode=cv2.BORDER_REFLECT)
    rows = slice(int(0.70 * size), int(0.90 * size))  # below the eye band
    band_y = int((EYE_BAND[0] + EYE_BAND[1]) / 2 * size)
    out = []
    for t in range(n):
        img = base.copy()
        if abs(t - apex) <= 1:
            img[rows, 16:48] = moved[rows, 16:48]
        if abs(t - burst) <= 1:
            cv2.ellipse(img, (24, band_y), (6, 3), 0, 0, 360, 255.0, -1)
        out.append(np.clip(img, 0, 255).astype(np.uint8))
    return np.stack(out)


def test_a_clip_without_detectable_eyes_falls_back_to_the_fixed_band_and_says_so():
    frames = _noise_clip_with_band_burst()
    eyes = find_eyes(frames[0])
    assert eyes.source == "fixed eye band" and not eyes.boxes and "no eye pair found" in eyes.note
    assert eyes.mask[int((EYE_BAND[0] + EYE_BAND[1]) / 2 * SPOT_SIZE), SPOT_SIZE // 2] and not eyes.mask[2, 2]
    assert abs(_old_apex(list(frames)) - 14) <= 1  # whole crop: the burst in the band wins
    s = spot(list(frames))
    assert abs(s.apex - 5) <= 1
    assert s.excluded == ("eye band (fixed eye band)",)
    assert any("no eye pair found" in n for n in s.notes)
