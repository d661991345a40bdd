"""Facial motion: action-unit displacement fields, timing, blinks, head drift.

An action unit (AU, FACS) moves a few facial landmarks in a fixed direction;
here each AU is a list of anchors (landmark, radius, direction), and the skin
around an anchor moves with a smooth, compactly supported weight
``(1 - (r/R)^2)^3``. Compact support is what makes the ground truth exact:
outside an AU's support the skin does not move at all, so the AU mask is the
region that really moved, not a blurred guess.

Directions are given for the image-left side of the face and mirrored for the
right. Radii are fractions of the face width, so fields scale with the face.
The class -> AU combinations follow the issue (and FACS prototypes for the six
basic emotions of the macro variant); combinations and intensities vary per
clip, so no single AU pattern identifies a class.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

# FACS numbers and names of the action units the generator can move.
ACTION_UNITS: dict[int, str] = {
    1: "inner brow raiser",
    2: "outer brow raiser",
    4: "brow lowerer",
    5: "upper lid raiser",
    6: "cheek raiser",
    7: "lid tightener",
    9: "nose wrinkler",
    12: "lip corner puller",
    15: "lip corner depressor",
    16: "lower lip depressor",
    17: "chin raiser",
    20: "lip stretcher",
    23: "lip tightener",
    26: "jaw drop",
}

# AU -> anchors (landmark without side suffix or with it, radius as a fraction
# of the face width, direction (dx, dy) for the image-left side).
AU_ANCHORS: dict[int, tuple[tuple[str, float, tuple[float, float]], ...]] = {
    1: (("brow_inner", 0.13, (0.0, -1.0)), ("glabella", 0.08, (0.0, -0.5))),
    2: (("brow_outer", 0.14, (-0.2, -1.0)), ("brow_mid", 0.1, (0.0, -0.5))),
    4: (("brow_inner", 0.13, (0.55, 0.85)), ("brow_mid", 0.11, (0.2, 0.9)), ("glabella", 0.07, (0.0, 0.4))),
    5: (("eye_top", 0.07, (0.0, -1.0)),),
    6: (("cheek", 0.14, (-0.15, -1.0)), ("eye_bottom", 0.07, (0.0, -0.6))),
    7: (("eye_bottom", 0.07, (0.0, -1.0)), ("eye_top", 0.06, (0.0, 0.4))),
    9: (("nose_wing", 0.09, (0.1, -1.0)), ("nose_bridge", 0.08, (0.0, -0.6)), ("upper_lip", 0.08, (0.0, -0.4))),
    12: (("mouth_corner", 0.14, (-0.75, -0.65)),),
    15: (("mouth_corner", 0.12, (-0.15, 1.0)),),
    16: (("lower_lip", 0.11, (0.0, 1.0)),),
    17: (("chin_boss", 0.14, (0.0, -1.0)), ("lower_lip", 0.09, (0.0, -0.6))),
    20: (("mouth_corner", 0.12, (-1.0, 0.15)),),
    23: (("mouth_corner", 0.09, (0.7, 0.0)), ("upper_lip", 0.07, (0.0, 0.3)), ("lower_lip", 0.07, (0.0, -0.3))),
    26: (("chin", 0.26, (0.0, 1.0)), ("lower_lip", 0.13, (0.0, 0.8))),
}

# emotion class -> (AU combination, weight) choices.
CLASS_ACTION_UNITS: dict[str, tuple[tuple[tuple[int, ...], float], ...]] = {
    # MEGC2019 composite classes (the micro default)
    "negative": (((4,), 0.25), ((4, 15), 0.3), ((4, 17), 0.25), ((4, 15, 17), 0.1), ((4, 9), 0.1)),
    "positive": (((12,), 0.35), ((6, 12), 0.65)),
    "surprise": (((1, 2), 0.45), ((1, 2, 5), 0.3), ((1, 2, 26), 0.25)),
    # six basic emotions (the macro default), FACS prototypes
    "happiness": (((6, 12), 0.7), ((12,), 0.3)),
    "sadness": (((1, 4, 15), 0.6), ((1, 4, 15, 17), 0.25), ((4, 15), 0.15)),
    "anger": (((4, 5, 7, 23), 0.5), ((4, 7, 23), 0.3), ((4, 7, 17, 23), 0.2)),
    "fear": (((1, 2, 4, 5, 20), 0.5), ((1, 2, 4, 5, 20, 26), 0.3), ((1, 4, 20), 0.2)),
    "disgust": (((9, 15, 16), 0.5), ((9, 17), 0.3), ((9, 16), 0.2)),
}
COMPOSITE_CLASSES = ("negative", "positive", "surprise")
BASIC_CLASSES = ("happiness", "surprise", "sadness", "anger", "fear", "disgust")


# AUs that may occur on one side of the face only (all their anchors are sided).
UNILATERAL_AUS = frozenset({2, 6, 7, 12, 15, 20})
# weak AUs that accompany expressions of any class (distractor motion)
DISTRACTOR_AUS = (7, 20, 23)


def prototype(label: str, rng: np.random.Generator) -> tuple[int, ...]:
    """One of a class's prototype AU combinations, drawn with the class's weights."""
    combos = CLASS_ACTION_UNITS[label]
    weights = np.array([w for _, w in combos])
    return tuple(combos[int(rng.choice(len(combos), p=weights / weights.sum()))][0])


def au_string(aus: tuple[int, ...], sides: tuple[str, ...] = ()) -> str:
    """'AU4+AU15' or 'AU4+R15' (the manifests' action_units format)."""
    sides = sides or ("",) * len(aus)
    return "+".join(au_label(a, s) for a, s in sorted(zip(aus, sides)))


def _kernel(xx: np.ndarray, yy: np.ndarray, centre: np.ndarray, radius: float) -> np.ndarray:
    r2 = ((xx - centre[0]) ** 2 + (yy - centre[1]) ** 2) / (radius * radius)
    return np.where(r2 < 1.0, (1.0 - np.minimum(r2, 1.0)) ** 3, 0.0).astype(np.float32)


def au_field(au: int, landmarks: dict[str, np.ndarray], face_width: float, size: int, side: str = "") -> np.ndarray:
    """Unit displacement field of one AU, (2, H, W) float32, max magnitude 1.

    ``side`` '' moves both sides; 'R' / 'L' only the subject's right (image
    left) or left side (FACS unilateral AUs, e.g. R12); midline anchors move
    either way.
    """
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    field = np.zeros((2, size, size), np.float32)
    for name, radius, (dx, dy) in AU_ANCHORS[au]:
        if name in landmarks:
            places = [(landmarks[name], 1.0)]
        else:
            places = [(landmarks[f"{name}_l"], 1.0), (landmarks[f"{name}_r"], -1.0)]
            if side == "R":
                places = places[:1]
            elif side == "L":
                places = places[1:]
        for centre, mirror in places:
            k = _kernel(xx, yy, centre, radius * face_width)
            field[0] += k * dx * mirror
            field[1] += k * dy
    peak = float(np.sqrt((field**2).sum(0)).max())
    return field / peak if peak > 0 else field


def au_label(au: int, side: str = "") -> str:
    """FACS notation of one AU: 'AU12', or 'R12' / 'L12' when unilateral."""
    return f"{side}{au}" if side else f"AU{au}"


@dataclass(frozen=True)
class Motion:
    """A clip's expression motion at the apex, in pixels, with its ground truth."""

    flow: np.ndarray  # (2, H, W) forward displacement at the apex
    regions: np.ndarray  # (K, H, W) bool: support of each active AU
    aus: tuple[int, ...]


def expression_motion(
    aus: tuple[int, ...],
    intensities: tuple[float, ...],
    sides: tuple[str, ...],
    peak_px: float,
    landmarks: dict[str, np.ndarray],
    face_width: float,
    size: int,
    *,
    max_strain: float = 0.35,
) -> Motion:
    """Sum the AUs' fields, scaled so the largest displacement is ``peak_px``.

    Each AU's share is then capped so that its spatial derivatives stay below
    ``max_strain`` (a steeper field would fold the skin over itself in large
    macro motions): small regions such as the lids move less than the brows or
    the mouth, as in real faces. A last global cap covers overlapping AUs.
    """
    unit, regions = [], []
    for au, side in zip(aus, sides):
        f = au_field(au, landmarks, face_width, size, side)
        unit.append(f)
        regions.append(np.sqrt((f**2).sum(0)) > 0)
    total = np.zeros((2, size, size), np.float32)
    for f, w in zip(unit, intensities):
        total += w * f
    peak = float(np.sqrt((total**2).sum(0)).max())
    scale = peak_px / peak if peak > 0 else 0.0
    total[:] = 0
    for f, w in zip(unit, intensities):
        amp = scale * w
        cap = max_strain / max(_max_gradient(f), 1e-6)
        total += min(amp, cap) * f
    g = _max_gradient(total)
    if g > max_strain:
        total *= max_strain / g
    return Motion(flow=total, regions=np.stack(regions) if regions else np.zeros((0, size, size), bool), aus=tuple(aus))


def _max_gradient(field: np.ndarray) -> float:
    return float(max(np.abs(np.gradient(field[c], axis=ax)).max() for c in (0, 1) for ax in (0, 1)))


def intensity_profile(n: int, onset: int, apex: int, offset: int) -> np.ndarray:
    """Expression intensity per frame: 0 up to the onset, a smooth rise to 1 at
    the apex, a smooth fall back to 0 at the offset, 0 after it."""
    s = np.zeros(n, np.float32)
    for t in range(onset + 1, min(apex, n - 1) + 1):
        r = (t - onset) / (apex - onset)
        s[t] = r * r * (3 - 2 * r)
    for t in range(apex + 1, min(offset, n - 1) + 1):
        f = (t - apex) / (offset - apex)
        s[t] = 1 - f * f * (3 - 2 * f)
    s[apex] = 1.0
    return s


def blink_profile(n: int, start: int, length: int) -> np.ndarray:
    """Lid closure per frame (0 open, 1 closed): a fast close and a slower reopen."""
    c = np.zeros(n, np.float32)
    if length <= 0 or start < 0:
        return c
    close = max(1, int(round(length * 0.4)))
    for i in range(start, min(n, start + length + 1)):
        k = i - start
        if k <= close:
            c[i] = np.sin(0.5 * np.pi * k / close)
        else:
            c[i] = np.cos(0.5 * np.pi * (k - close) / max(1, length - close))
    return np.clip(c, 0, 1)


def blink_overlay(
    eyes: tuple[tuple[float, float, float, float], ...], closure: float, size: int,
    grid: tuple[np.ndarray, np.ndarray] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Lid blending weights for a lid closure in 0..1.

    Returns ``(alpha, lash)``: ``frame = albedo * (1 - alpha) + skin * alpha``
    covers the eye with the lid, ``lash`` (a grey-level drop) draws the lash
    line along the lid edge.
    """
    xx, yy = grid if grid is not None else _grid(size)
    alpha = np.zeros((size, size), np.float32)
    lash = np.zeros((size, size), np.float32)
    if closure <= 0:
        return alpha, lash
    for ex, ey, ew, eh in eyes:
        xn = (xx - ex) / (ew * 1.1)
        span = np.sqrt(np.clip(1 - xn * xn, 0, None))
        half = eh * 1.3 * span  # the lid travels from above the eye to below it
        lid = ey - half + closure * 2 * half
        inside = np.clip((1 - ((xx - ex) / (ew * 1.15)) ** 2 - ((yy - ey) / (eh * 1.6)) ** 2) * 10, 0, 1)
        alpha = np.maximum(alpha, inside * np.clip(lid - yy + 0.5, 0, 1))
        lash += np.exp(-(((yy - lid) / 0.8) ** 2)) * min(1.0, closure * 3) * span
    return alpha, np.clip(lash, 0, 1) * 60.0


def blink_region(eyes: tuple[tuple[float, float, float, float], ...], size: int) -> np.ndarray:
    """Bool mask of where a blink changes the image (both eyes, lids included)."""
    mask = np.zeros((size, size), np.uint8)
    for ex, ey, ew, eh in eyes:
        cv2.ellipse(mask, (int(round(ex)), int(round(ey))), (int(np.ceil(ew * 1.15 + 2)), int(np.ceil(eh * 1.6 + 2))), 0, 0, 360, 1, -1)
    return mask.astype(bool)


def _grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    return xx, yy


def drift_grid(
    size: int, shift: tuple[float, float], angle_deg: float, centre: tuple[float, float],
    grid: tuple[np.ndarray, np.ndarray] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Sampling grid of a rigid head motion (rotation about ``centre`` then shift).

    Backward map: output pixel ``p`` reads the source at ``R^-1 (p - c - t) + c``.
    ``grid`` (pixel x, y coordinates) may be passed to save recomputing it.
    """
    xx, yy = grid if grid is not None else _grid(size)
    th = np.deg2rad(-angle_deg)
    c, s = np.float32(np.cos(th)), np.float32(np.sin(th))
    x0 = xx - centre[0] - shift[0]
    y0 = yy - centre[1] - shift[1]
    gx = (c * x0 - s * y0 + np.float32(centre[0])).astype(np.float32, copy=False)
    gy = (s * x0 + c * y0 + np.float32(centre[1])).astype(np.float32, copy=False)
    return gx, gy


def inverse_field(
    forward: np.ndarray, iterations: int = 3, grid: tuple[np.ndarray, np.ndarray] | None = None
) -> np.ndarray:
    """Backward displacement ``b`` with ``b(y) = f(y - b(y))`` (fixed point).

    Warping by the forward field ``f`` means the output at ``y`` shows the
    neutral face at ``y - b(y)``; for small motions ``b ~ f``, the iterations
    keep large (macro) motions exact too.
    """
    xx, yy = grid if grid is not None else _grid(forward.shape[1])
    fx, fy = forward[0], forward[1]
    bx, by = fx.copy(), fy.copy()
    for _ in range(iterations):
        mx, my = xx - bx, yy - by
        bx = cv2.remap(fx, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
        by = cv2.remap(fy, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    return np.stack([bx, by])
