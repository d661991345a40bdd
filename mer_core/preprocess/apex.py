"""Apex spotting for clips whose apex is missing or marked estimated.

SMIC has no apex annotation and some SAMM rows have an impossible one; the
common remedy in the field is the frame that differs most from the onset.
Frames are compared after the clip's face crop, slightly blurred and at a
small size, so sensor noise and fine texture do not pick the apex.
"""
from __future__ import annotations

import cv2
import numpy as np

APEX_VERSION = "apex-1"
APEX_METHOD = "max-diff"  # the method name recorded in the report
_COMPARE_SIZE = 64


def frame_differences(frames: np.ndarray) -> np.ndarray:
    """Mean absolute difference of every frame from frame 0 (float, length T).

    ``frames`` is (T, H, W) grey (uint8 or float 0..1).
    """
    if frames.ndim != 3 or len(frames) < 1:
        raise ValueError(f"expected frames of shape (T, H, W), got {frames.shape}")
    small = []
    for f in frames:
        f = f.astype(np.float32) / (255.0 if frames.dtype == np.uint8 else 1.0)
        if min(f.shape) > _COMPARE_SIZE:
            f = cv2.resize(f, (_COMPARE_SIZE, _COMPARE_SIZE), interpolation=cv2.INTER_AREA)
        small.append(cv2.GaussianBlur(f, (0, 0), 1.0))
    stack = np.stack(small)
    return np.abs(stack - stack[0]).mean(axis=(1, 2))


def spot_apex(frames: np.ndarray) -> tuple[int, str]:
    """Index (relative to frames[0] = onset) of the apex, and the method name.

    ``frames`` runs from onset to offset; needs at least two frames. The onset
    itself is never returned.
    """
    if len(frames) < 2:
        raise ValueError(f"apex spotting needs at least 2 frames between onset and offset, got {len(frames)}")
    diffs = frame_differences(frames)
    return int(np.argmax(diffs[1:]) + 1), APEX_METHOD
