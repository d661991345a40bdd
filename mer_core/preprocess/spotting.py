"""Spotting a micro-expression in a clip: a motion curve over time, then onset, apex, offset.

A clip of one's own has no annotation. The clip's face crop (the same crop
for every frame) is shrunk to ``SPOT_SIZE`` pixels, slightly blurred and
centred on its mean brightness (flicker is not motion). Each frame is compared
with the first and the last frame of the analysed window, both taken as
neutral; per cell of a grid the smaller of the two differences is kept, so a
slow head drift (away from one, towards the other) scores low and a motion
that comes and goes scores high. The *motion curve* averages, over the
``TOP`` share of cells that move most, each cell's share of its own peak:
every moving cell votes equally for *when* the face moved.
* apex: the frame where the curve peaks (never the reference frame itself);
* onset: the last frame before the apex where the curve is still within
  ``ONSET_LEVEL`` of the way from its floor to its peak;
* offset: the first frame after the apex where it has fallen back below
  ``OFFSET_LEVEL`` of the way, else the last frame.

The user may override any of the three (``onset=``, ``apex=``, ``offset=``);
the others are then spotted around the given ones and the result says which
were given. ``benchmarks/bench_spotting.py`` reports how close the spotted
apex lands to the generator's apex on the synthetic set.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

SPOTTING_VERSION = "spot-1"
SPOT_METHOD = "two-reference cell vote"
SPOT_SIZE = 64
CELL = 4  # cells of CELL x CELL pixels at SPOT_SIZE
TOP = 0.05  # share of the face cells that vote
ONSET_LEVEL = 0.1
OFFSET_LEVEL = 0.5


@dataclass
class Spotting:
    """Spotted (or given) frames, relative to the analysed window, and the curve."""

    onset: int
    apex: int
    offset: int
    curve: np.ndarray  # float32 (T,): motion magnitude per frame (mean grey levels 0..255)
    method: str = SPOT_METHOD
    given: tuple[str, ...] = field(default_factory=tuple)  # which of onset/apex/offset the user gave

    def as_dict(self) -> dict:
        return {"onset": self.onset, "apex": self.apex, "offset": self.offset, "method": self.method,
                "given": list(self.given), "curve": [round(float(v), 4) for v in self.curve]}


def small_frames(frames: np.ndarray | list[np.ndarray]) -> np.ndarray:
    """(T, SPOT_SIZE, SPOT_SIZE) float32 blurred copies of grey crops (uint8 0..255 or float 0..1)."""
    out = []
    for f in frames:
        f = np.asarray(f, np.float32) * (1.0 if np.asarray(f).dtype == np.uint8 else 255.0)
        if f.shape != (SPOT_SIZE, SPOT_SIZE):
            interp = cv2.INTER_AREA if min(f.shape) > SPOT_SIZE else cv2.INTER_LINEAR
            f = cv2.resize(f, (SPOT_SIZE, SPOT_SIZE), interpolation=interp)
        out.append(cv2.GaussianBlur(f, (0, 0), 1.0))
    return np.stack(out)


def motion_curve(small: np.ndarray, first: int = 0, last: int = -1) -> np.ndarray:
    """Share of its own peak each moving cell reaches per frame, averaged over the moving cells (0..1).

    Per cell of ``CELL`` x ``CELL`` pixels: the smaller of the mean absolute
    difference from frame ``first`` and from frame ``last`` (both taken as
    neutral), so a slow head drift, which grows away from one and towards the
    other, scores low while a motion that comes and goes scores high. The
    ``TOP`` share of cells that move most are kept and each is divided by its
    own peak, so every moving cell votes for *when* equally.
    """
    if small.ndim != 3 or len(small) < 1:
        raise ValueError(f"expected frames of shape (T, H, W), got {small.shape}")
    t, h, w = small.shape
    centred = small - small.mean(axis=(1, 2), keepdims=True)  # a global brightness change is not motion
    gh, gw = h // CELL, w // CELL

    def cells(ref: int) -> np.ndarray:
        d = np.abs(centred - centred[ref])[:, : gh * CELL, : gw * CELL]
        return d.reshape(t, gh, CELL, gw, CELL).mean(axis=(2, 4)).reshape(t, -1)

    both = np.minimum(cells(first), cells(last))
    peak = both.max(axis=0)
    moving = peak >= np.quantile(peak, 1.0 - TOP)
    return (both[:, moving] / np.maximum(peak[moving], 1e-6)).mean(axis=1).astype(np.float32)


def _level(curve: np.ndarray, lo: int, hi: int, apex: int, share: float) -> float:
    floor = float(curve[lo:hi + 1].min()) if hi >= lo else 0.0
    return floor + share * (float(curve[apex]) - floor)


def spot(frames: np.ndarray | list[np.ndarray], *, onset: int | None = None, apex: int | None = None,
         offset: int | None = None) -> Spotting:
    """Onset, apex and offset of the clip's largest motion; given values are kept (validated)."""
    n = len(frames)
    if n < 3:
        raise ValueError(f"spotting needs at least 3 frames, got {n}")
    given = tuple(k for k, v in (("onset", onset), ("apex", apex), ("offset", offset)) if v is not None)
    for name, v in (("onset", onset), ("apex", apex), ("offset", offset)):
        if v is not None and not 0 <= int(v) < n:
            raise ValueError(f"{name}={v} is outside the analysed frames 0..{n - 1}")
    small = small_frames(frames)
    first = int(onset) if onset is not None else 0
    last = int(offset) if offset is not None else n - 1
    curve = motion_curve(small, first, last)
    if apex is None:
        lo, hi = first + 1, (last if offset is not None else n - 2)
        hi = max(hi, lo)
        if hi > n - 1 or lo > last:
            raise ValueError(f"no frame between onset={first} and offset={last} for the apex")
        apex = lo + int(np.argmax(curve[lo:hi + 1]))
    apex = int(apex)
    if onset is None:
        level = _level(curve, 0, apex, apex, ONSET_LEVEL)
        below = [t for t in range(apex) if curve[t] <= level]
        onset = below[-1] if below else 0
    onset = int(onset)
    if offset is None:
        level = _level(curve, 0, apex, apex, OFFSET_LEVEL)
        after = [t for t in range(apex + 1, n) if curve[t] <= level]
        offset = after[0] if after else n - 1
    offset = int(offset)
    if not onset < apex <= offset:
        raise ValueError(f"expected onset < apex <= offset, got onset={onset}, apex={apex}, offset={offset}")
    return Spotting(onset, apex, offset, curve, SPOT_METHOD if not given else f"{SPOT_METHOD} (given: {', '.join(given)})",
                    given)
