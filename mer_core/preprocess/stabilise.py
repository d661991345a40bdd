"""Head motion out of a face crop: each frame's rigid shift against the first, and the frame moved back.

A head that sways or shifts moves every pixel of a fixed face crop, so raw
frame differences see it as an expression. :class:`Stabiliser` follows the
head through a stream of grey crops (the spotter's ``SPOT_SIZE`` crops in
practice) and gives each frame its position (x, y pixels) against the first:

1. a coarse shift against the current *keyframe* by phase correlation
   (``cv2.phaseCorrelate``, Hann-windowed): it finds a jump of several pixels,
   but its sub-pixel part can be a quarter pixel off, as much as a
   micro-expression moves;
2. refined by ``REFINE_STEPS`` Gauss-Newton steps (Lucas-Kanade on the
   keyframe's gradients, prepared once per keyframe) that fit a gain and an
   offset too, so a flicker is not taken for motion; only the inner part of
   the crop (``MARGIN`` of its side left out at each edge) is compared, and
   the last step leaves out the pixels that the plain fit leaves far off
   (``OUTLIER``): a blink or a moving mouth would otherwise pull the whole
   face's shift by a tenth of a pixel, enough to make the face "move";
3. the keyframe is renewed every ``KEY_EVERY`` frames and positions are
   chained through keyframes, so a head may wander over a long video while
   each estimate compares frames close in time.

An estimate that fails (a weak correlation peak, a shift over ``MAX_SHIFT``
of the side in one step, a refinement that does not settle) is not trusted:
the frame keeps the keyframe's position, so nothing is invented. Only
translation is followed (no rotation or scale). :func:`align` moves frames
back by their positions (bicubic, sub-pixel) and :func:`border_mask` marks
the border that moving back filled from beyond the crop's edge.
``benchmarks/bench_stabilise.py`` measures the cost per frame.
"""
from __future__ import annotations

from typing import Iterable

import cv2
import numpy as np

MIN_RESPONSE = 0.1  # a phase-correlation peak below this: the shift is not trusted
MAX_SHIFT = 1 / 8  # the largest shift trusted between a frame and its keyframe, share of the crop side
MARGIN = 1 / 8  # share of the side left out at each edge when comparing with the keyframe
REFINE_STEPS = 2  # Gauss-Newton steps after phase correlation
SETTLED = 0.25  # px: the last refinement step must be smaller than this
OUTLIER = 3.0  # the last step leaves out pixels this many robust deviations off the plain fit (a blink)
KEY_EVERY = 30  # frames between keyframes

_HANN: dict[tuple[int, int], np.ndarray] = {}


class _Key:
    """A keyframe prepared for registering others onto it (its gradients, a gain and an offset: 4 unknowns)."""

    def __init__(self, frame: np.ndarray) -> None:
        self.frame = np.asarray(frame, np.float32)
        h, w = self.frame.shape
        if (h, w) not in _HANN:
            _HANN[(h, w)] = cv2.createHanningWindow((w, h), cv2.CV_32F)
        self.hann = _HANN[(h, w)]
        self.m = m = max(1, int(round(MARGIN * min(h, w))))
        self.limit = MAX_SHIFT * min(h, w)
        gy, gx = np.gradient(self.frame)
        inner = (slice(m, h - m), slice(m, w - m))
        self.jac = np.stack([-gx[inner].ravel(), -gy[inner].ravel(), self.frame[inner].ravel(),
                             np.ones(gx[inner].size, np.float32)], 1).astype(np.float32)
        self.solve = np.linalg.pinv(self.jac.astype(np.float64)).astype(np.float32)  # (4, N): least-squares step
        self.outer = (self.jac[:, :, None] * self.jac[:, None, :]).reshape(len(self.jac), 16)  # per pixel J^T J
        self.inner = inner

    def _step(self, residual: np.ndarray, robust: bool) -> np.ndarray:
        """One Gauss-Newton step (shift, gain, offset) from the residual; ``robust``: pixels the plain fit leaves
        far off (more than ``OUTLIER`` robust deviations: a blink, a moving mouth) are left out and it is refitted."""
        p = self.solve @ residual
        if not robust:
            return p
        r = np.abs(residual - self.jac @ p)
        median = float(np.partition(r, len(r) // 2)[len(r) // 2])
        keep = (r <= OUTLIER * 1.4826 * max(median, 1e-3)).astype(np.float32)
        if keep.sum() < 0.5 * len(r):
            return p
        try:  # the normal equations over the kept pixels (matrix-vector products only: no copy of the kept rows)
            return np.linalg.solve((keep @ self.outer).reshape(4, 4).astype(np.float64),
                                   ((keep * residual) @ self.jac).astype(np.float64))
        except np.linalg.LinAlgError:
            return p

    def shift(self, frame: np.ndarray) -> np.ndarray | None:
        """``frame``'s shift (x, y px) against the keyframe, or None when the estimate is not trusted."""
        h, w = self.frame.shape
        # copies: cv2.phaseCorrelate multiplies its inputs by the window in place
        (dx, dy), response = cv2.phaseCorrelate(self.frame.copy(), frame.copy(), self.hann)
        if not response >= MIN_RESPONSE or max(abs(dx), abs(dy)) > self.limit:
            return None
        d = np.array([dx, dy], np.float64)
        step = np.zeros(2)
        for k in range(REFINE_STEPS):
            back = cv2.warpAffine(frame, np.float32([[1, 0, -d[0]], [0, 1, -d[1]]]), (w, h),
                                  flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
            step = self._step((back[self.inner] - self.frame[self.inner]).ravel(), robust=k == REFINE_STEPS - 1)[:2]
            d += step
        if not np.isfinite(d).all() or np.abs(d).max() > self.limit or np.abs(step).max() > SETTLED:
            return None
        return d


class Stabiliser:
    """The head's position (x, y px) in each frame of a stream against its first frame (see the module docstring)."""

    def __init__(self) -> None:
        self.key: _Key | None = None
        self.key_position = np.zeros(2)
        self.since_key = 0
        self.untrusted = 0  # frames whose shift was not trusted (kept at their keyframe's position)

    def push(self, frame: np.ndarray) -> np.ndarray:
        """The next frame's position, float32 (2,); the first frame is at (0, 0)."""
        frame = np.asarray(frame, np.float32)
        if self.key is None:
            self.key = _Key(frame)
            return np.zeros(2, np.float32)
        rel = self.key.shift(frame)
        if rel is None:
            self.untrusted += 1
        position = self.key_position + (0.0 if rel is None else rel)
        self.since_key += 1
        if self.since_key >= KEY_EVERY and rel is not None:
            self.key, self.key_position, self.since_key = _Key(frame), position, 0
        return position.astype(np.float32)


def positions(frames: Iterable[np.ndarray]) -> np.ndarray:
    """(T, 2) float32: each frame's position against the first (a :class:`Stabiliser` over the frames)."""
    stab = Stabiliser()
    out = [stab.push(f) for f in frames]
    return np.stack(out) if out else np.zeros((0, 2), np.float32)


def align(frames: np.ndarray, shifts: np.ndarray) -> np.ndarray:
    """Each frame moved back by its shift (x, y px; bicubic, sub-pixel; edges repeated), float32.

    Bicubic: a bilinear shift smooths the texture by a different amount at
    each fractional shift, which the curve would see (about twice as much
    as bicubic on the synthetic faces).
    """
    frames = np.asarray(frames, np.float32)
    h, w = frames.shape[1:]
    out = np.empty(frames.shape, np.float32)
    for i, (f, (dx, dy)) in enumerate(zip(frames, np.asarray(shifts, np.float32))):
        if dx == 0 and dy == 0:
            out[i] = f
        else:
            out[i] = cv2.warpAffine(f, np.float32([[1, 0, -dx], [0, 1, -dy]]), (w, h),
                                    flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REPLICATE)
    return out


def border_mask(shifts: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Bool (H, W): pixels that some frame, moved back by its shift, took from beyond the crop's edge.

    A quarter pixel of repeated edge or less is nothing to leave out; at most
    a quarter of the side is left out at each edge.
    """
    s = np.asarray(shifts, np.float32).reshape(-1, 2)
    h, w = shape
    mask = np.zeros((h, w), bool)
    if not len(s):
        return mask

    def width(v: float) -> int:
        return min(int(np.ceil(v)), min(h, w) // 4) if v > 0.25 else 0

    right, left = width(float(s[:, 0].max())), width(float(-s[:, 0].min()))
    bottom, top = width(float(s[:, 1].max())), width(float(-s[:, 1].min()))
    mask[:, :left] = True
    mask[:, w - right:] = True  # right = 0: the slice w: is empty
    mask[:top] = True
    mask[h - bottom:] = True
    return mask
