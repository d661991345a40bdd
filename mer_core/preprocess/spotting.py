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

Blinks. A blink moves the lids far more than a micro-expression moves any
skin, so on a clip with a blink the raw curve peaks on the blink. As in the
spotting literature (eye regions masked out before the motion measure), the
eye regions are found on the first analysed frame: OpenCV's Haar eye cascade
(the one face detection uses) on the crop enlarged ``EYE_UPSCALE`` times, one
eye on each side of the crop's mid-line in its upper part; when no such pair
is found, a fixed band of the aligned face crop (``EYE_BAND``, where face
geometry puts the eyes) stands in, and the result's notes say so. A *blink*
is declared when the eye regions' ``BLINK_TOP_PIXELS`` most-moving pixels
move more (``BLINK_RATIO``) than the same number of most-moving pixels
anywhere else on the face; only then are the eye pixels left out of the
curve (and of the brightness centring), so the eyes' own expression motion
(lid raiser, cheek raiser) still counts on clips without a blink. What was
excluded, and why, is in :attr:`Spotting.excluded` and :attr:`Spotting.notes`
(and in the method string the Analyse page and ``mer predict`` print).

These choices (the mask shape, the blink test, its threshold) were developed
and checked on the synthetic default set only (its generator draws blinks as
lids sweeping over the eye ellipse); they are not tuned on any real dataset's
labels, and real recordings (glasses, hair, partial blinks) may need others.

Head motion. A head that sways or shifts moves every pixel of the fixed
crop, so raw frame differences see it as an expression (quick head shifts
were the strongest false alarms in long videos). Before anything is
compared, :mod:`.stabilise` measures each frame's rigid shift (phase
correlation refined by a Lucas-Kanade fit of shift, gain and offset) and
moves the frame back onto the reference frame (the onset, else the first);
the border that this fills from beyond the crop's edge is left out of the
curve (and of the blink test). Only translation is removed (no rotation or
scale). ``spot(..., stabilise=False)`` measures the raw differences, for
comparison.

The user may override any of the three (``onset=``, ``apex=``, ``offset=``);
the others are then spotted around the given ones and the result says which
were given. ``benchmarks/bench_spotting.py`` reports how close the spotted
apex lands to the generator's apex on the synthetic set.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from .face import _cascade
from .stabilise import align, border_mask, positions

SPOTTING_VERSION = "spot-3"
SPOT_METHOD = "two-reference cell vote"
DEVELOPED_ON = "synthetic default set (no real dataset's labels)"
SPOT_SIZE = 64
CELL = 4  # cells of CELL x CELL pixels at SPOT_SIZE
TOP = 0.05  # share of the face cells that vote
ONSET_LEVEL = 0.1
OFFSET_LEVEL = 0.5
EYE_UPSCALE = 4  # the SPOT_SIZE crop is enlarged this much for the Haar eye cascade
EYE_AXES = (0.5, 0.4)  # excluded ellipse per detected eye: half-axes as shares of the eye box side (x, y)
EYE_BAND = (0.36, 0.56, 0.12, 0.88)  # fallback eye band: top, bottom, left, right as shares of the face crop
BLINK_TOP_PIXELS = 32  # pixels compared, inside the eye regions and elsewhere
BLINK_RATIO = 1.0  # a blink: the eye regions move more than the rest of the face's most-moving pixels
MIN_KEPT = 0.25  # a cell partly in an excluded region is kept with at least this share of its pixels


@dataclass
class EyeRegions:
    """Where the eyes are in the SPOT_SIZE crop: a pixel mask, how it was found, and a note when it is a guess."""

    mask: np.ndarray  # bool (SPOT_SIZE, SPOT_SIZE): True on an eye pixel
    source: str  # "Haar eye cascade" or "fixed eye band"
    boxes: tuple[tuple[float, float, float, float], ...] = ()  # detected eye boxes (x, y, w, h), crop pixels
    note: str = ""


@dataclass
class Spotting:
    """Spotted (or given) frames, relative to the analysed window, and the curve."""

    onset: int
    apex: int
    offset: int
    curve: np.ndarray  # float32 (T,): motion magnitude per frame (mean grey levels 0..255)
    method: str = SPOT_METHOD
    given: tuple[str, ...] = field(default_factory=tuple)  # which of onset/apex/offset the user gave
    excluded: tuple[str, ...] = field(default_factory=tuple)  # face regions left out of the curve, in words
    notes: tuple[str, ...] = field(default_factory=tuple)  # eye finding / blink decision, in words
    blink_score: float = 0.0  # eye regions' motion / the rest of the face's (> BLINK_RATIO: a blink)

    def as_dict(self) -> dict:
        return {"onset": self.onset, "apex": self.apex, "offset": self.offset, "method": self.method,
                "given": list(self.given), "excluded": list(self.excluded), "notes": list(self.notes),
                "blink_score": round(float(self.blink_score), 3), "developed_on": DEVELOPED_ON,
                "curve": [round(float(v), 4) for v in self.curve]}


def _spot_size(frame: np.ndarray) -> np.ndarray:
    """A grey crop (uint8 0..255 or float 0..1) as float32 0..255 at SPOT_SIZE."""
    f = np.asarray(frame)
    f = f.astype(np.float32) * (1.0 if f.dtype == np.uint8 else 255.0)
    if f.shape != (SPOT_SIZE, SPOT_SIZE):
        interp = cv2.INTER_AREA if min(f.shape) > SPOT_SIZE else cv2.INTER_LINEAR
        f = cv2.resize(f, (SPOT_SIZE, SPOT_SIZE), interpolation=interp)
    return f


def small_frames(frames: np.ndarray | list[np.ndarray]) -> np.ndarray:
    """(T, SPOT_SIZE, SPOT_SIZE) float32 blurred copies of grey crops (uint8 0..255 or float 0..1)."""
    return np.stack([cv2.GaussianBlur(_spot_size(f), (0, 0), 1.0) for f in frames])


def _band_mask() -> np.ndarray:
    top, bottom, left, right = (round(v * SPOT_SIZE) for v in EYE_BAND)
    mask = np.zeros((SPOT_SIZE, SPOT_SIZE), bool)
    mask[top:bottom, left:right] = True
    return mask


def find_eyes(frame: np.ndarray) -> EyeRegions:
    """Eye regions of one face crop (any size, grey): Haar eye cascade, else the fixed band (with a note)."""
    grey = np.clip(_spot_size(frame), 0, 255).astype(np.uint8)
    up = SPOT_SIZE * EYE_UPSCALE
    big = cv2.resize(grey, (up, up), interpolation=cv2.INTER_CUBIC)
    found = _cascade("haarcascade_eye.xml").detectMultiScale(big, scaleFactor=1.1, minNeighbors=3,
                                                            minSize=(up // 12, up // 12))
    k = 1.0 / EYE_UPSCALE
    boxes = [(x * k, y * k, w * k, h * k) for x, y, w, h in found if (y + h / 2) * k < 0.6 * SPOT_SIZE]
    mid = SPOT_SIZE / 2
    left = [b for b in boxes if b[0] + b[2] / 2 < mid]
    right = [b for b in boxes if b[0] + b[2] / 2 >= mid]

    def centre(b):
        return b[0] + b[2] / 2, b[1] + b[3] / 2

    def face_like(a, b) -> bool:
        """Two boxes placed as a face crop's eyes are: level, side by side, about the mid-line, alike in size."""
        (ax, ay), (bx, by) = centre(a), centre(b)
        side = (a[2] + b[2]) / 2
        return (abs(ay - by) < 0.25 * side and 0.2 * SPOT_SIZE < bx - ax < 0.6 * SPOT_SIZE
                and abs((ax + bx) / 2 - mid) < 0.1 * SPOT_SIZE and 0.25 * SPOT_SIZE < (ay + by) / 2
                and abs(a[2] - b[2]) < 0.3 * side)

    pairs = [(a, b) for a in left for b in right if face_like(a, b)]
    if not pairs:
        top, bottom, left_, right_ = EYE_BAND
        return EyeRegions(_band_mask(), "fixed eye band", (),
                          f"no eye pair found by the Haar eye cascade: the fixed eye band (rows {top:.0%}-{bottom:.0%}, "
                          f"columns {left_:.0%}-{right_:.0%} of the face crop) stands for the eyes")
    pair = min(pairs, key=lambda p: abs(centre(p[0])[1] - centre(p[1])[1]) + abs(p[0][2] - p[1][2]))
    yy, xx = np.mgrid[0:SPOT_SIZE, 0:SPOT_SIZE] + 0.5
    mask = np.zeros((SPOT_SIZE, SPOT_SIZE), bool)
    for b in pair:
        cx, cy = centre(b)
        mask |= ((xx - cx) / (EYE_AXES[0] * b[2])) ** 2 + ((yy - cy) / (EYE_AXES[1] * b[3])) ** 2 <= 1
    return EyeRegions(mask, "Haar eye cascade", tuple(tuple(round(float(v), 2) for v in b) for b in pair))


def blink_score(small: np.ndarray, eye_mask: np.ndarray, first: int = 0, last: int = -1,
                ignore: np.ndarray | None = None) -> float:
    """How much more the eye regions move than the rest of the face (peak over frames; > BLINK_RATIO: a blink).

    Per frame, the mean of the ``BLINK_TOP_PIXELS`` largest two-reference
    differences inside the eye mask and outside it; the score is the ratio of
    their peaks over the clip. ``ignore`` (bool, frame-shaped): pixels in
    neither set (a stabilised clip's border).
    """
    valid = np.ones(eye_mask.shape, bool) if ignore is None else ~np.asarray(ignore, bool)
    eyes, rest = eye_mask & valid, ~eye_mask & valid
    if not eyes.any() or not rest.any():
        return 0.0
    centred = small - small.mean(axis=(1, 2), keepdims=True)
    d = np.minimum(np.abs(centred - centred[first]), np.abs(centred - centred[last]))
    k_in, k_out = min(BLINK_TOP_PIXELS, int(eyes.sum())), min(BLINK_TOP_PIXELS, int(rest.sum()))
    inside = -np.partition(-d[:, eyes], k_in - 1, axis=1)[:, :k_in].mean(axis=1)
    outside = -np.partition(-d[:, rest], k_out - 1, axis=1)[:, :k_out].mean(axis=1)
    return float(inside.max() / max(float(outside.max()), 1e-6))


def motion_curve(small: np.ndarray, first: int = 0, last: int = -1, exclude: np.ndarray | None = None, *,
                 relative: bool = True) -> np.ndarray:
    """Share of its own peak each moving cell reaches per frame, averaged over the moving cells (0..1).

    Per cell of ``CELL`` x ``CELL`` pixels: the smaller of the mean absolute
    difference from frame ``first`` and from frame ``last`` (both taken as
    neutral), so a slow head drift, which grows away from one and towards the
    other, scores low while a motion that comes and goes scores high. The
    ``TOP`` share of cells that move most are kept and each is divided by its
    own peak, so every moving cell votes for *when* equally. ``exclude``
    (bool, frame-shaped): pixels left out (the eyes on a clip with a blink),
    of the brightness centring too; a cell keeps its other pixels when at
    least ``MIN_KEPT`` of them are left. ``relative=False`` returns the moving
    cells' mean difference itself (grey levels), comparable between windows
    of a long video (each window's relative curve reaches 1 even on noise).
    """
    if small.ndim != 3 or len(small) < 1:
        raise ValueError(f"expected frames of shape (T, H, W), got {small.shape}")
    t, h, w = small.shape
    gh, gw = h // CELL, w // CELL
    keep = np.ones((h, w), np.float32) if exclude is None else (~np.asarray(exclude, bool)).astype(np.float32)
    if keep.shape != (h, w):
        raise ValueError(f"exclude mask {keep.shape} does not match frames {(h, w)}")
    if not keep.any():
        keep[:] = 1.0
    # a global brightness change is not motion (measured where the curve looks)
    centred = small - ((small * keep).sum(axis=(1, 2), keepdims=True) / keep.sum())
    kc = keep[: gh * CELL, : gw * CELL].reshape(gh, CELL, gw, CELL).sum(axis=(1, 3)).reshape(-1)
    use = kc >= MIN_KEPT * CELL * CELL

    def cells(ref: int) -> np.ndarray:
        d = (np.abs(centred - centred[ref]) * keep)[:, : gh * CELL, : gw * CELL]
        return d.reshape(t, gh, CELL, gw, CELL).sum(axis=(2, 4)).reshape(t, -1)[:, use] / kc[use]

    both = np.minimum(cells(first), cells(last))
    peak = both.max(axis=0)
    moving = peak >= np.quantile(peak, 1.0 - TOP)
    if not relative:
        return both[:, moving].mean(axis=1).astype(np.float32)
    return (both[:, moving] / np.maximum(peak[moving], 1e-6)).mean(axis=1).astype(np.float32)


def _level(curve: np.ndarray, apex: int, share: float) -> float:
    """``share`` of the way from the curve's floor up to the apex (the floor: its lowest point up to the apex)."""
    floor = float(curve[:apex + 1].min())
    return floor + share * (float(curve[apex]) - floor)


def spot(frames: np.ndarray | list[np.ndarray], *, onset: int | None = None, apex: int | None = None,
         offset: int | None = None, given_by: str = "given", stabilise: bool = True) -> Spotting:
    """Onset, apex and offset of the clip's largest motion; given values are kept (validated).

    ``given_by`` names where given values came from in the method string ("given", "from the sidecar").
    ``stabilise=False`` keeps the head motion in (raw frame differences, for comparison).
    """
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
    border = np.zeros(small.shape[1:], bool)
    notes = []
    if stabilise:
        shifts = positions(small)
        shifts -= shifts[first]
        small, border = align(small, shifts), border_mask(shifts, small.shape[1:])
        notes.append(f"head motion removed: every frame moved back onto frame {first} (largest shift "
                     f"{float(np.abs(shifts).max()):.1f} px at {SPOT_SIZE} px"
                     + ("; the border this uncovered is left out)" if border.any() else ")"))
    eyes = find_eyes(frames[first])
    score = blink_score(small, eyes.mask, first, last, ignore=border)
    if eyes.note:
        notes.insert(0, eyes.note)
    if score > BLINK_RATIO:
        where = "eye band" if eyes.source == "fixed eye band" else "eye regions"
        excluded = (f"{where} ({eyes.source})",)
        notes.append(f"blink found: the {where} moved {score:.1f}x as much as the rest of the face, so they are "
                     "left out of the motion curve")
        curve = motion_curve(small, first, last, exclude=eyes.mask | border)
    else:
        excluded = ()
        notes.append(f"no blink found (the eyes moved {score:.1f}x the rest of the face): the whole crop is used"
                     + (" but its border" if border.any() else ""))
        curve = motion_curve(small, first, last, exclude=border if border.any() else None)
    if apex is None:
        lo, hi = first + 1, (last if offset is not None else n - 2)
        hi = max(hi, lo)
        if hi > n - 1 or lo > last:
            raise ValueError(f"no frame between onset={first} and offset={last} for the apex")
        apex = lo + int(np.argmax(curve[lo:hi + 1]))
    apex = int(apex)
    if onset is None:
        level = _level(curve, apex, ONSET_LEVEL)
        below = [t for t in range(apex) if curve[t] <= level]
        onset = below[-1] if below else 0
    onset = int(onset)
    if offset is None:
        level = _level(curve, apex, OFFSET_LEVEL)
        after = [t for t in range(apex + 1, n) if curve[t] <= level]
        offset = after[0] if after else n - 1
    offset = int(offset)
    if not onset < apex <= offset:
        raise ValueError(f"expected onset < apex <= offset, got onset={onset}, apex={apex}, offset={offset}")
    method = SPOT_METHOD + (" on head-stabilised frames" if stabilise else "") + (
        f", {excluded[0]} excluded for a blink" if excluded else "")
    if given:
        method += f" ({given_by}: {', '.join(given)})"
    return Spotting(onset, apex, offset, curve, method, given, excluded, tuple(notes), score)
