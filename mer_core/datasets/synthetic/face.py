"""Procedural faces: one identity per subject, rendered once as a neutral face.

An identity is a handful of numbers drawn from the subject's random generator:
face shape, feature positions and proportions, skin tone, hair, background,
skin texture and lighting. :func:`render_face` turns it into image layers at
the output size:

* ``albedo``: the neutral face (eyes open) with its skin texture. Texture
  matters: real skin has pores and shading that optical flow can track, so
  the motion of cheeks and chin is visible, not only that of feature edges.
* ``skin``: the same face without eyes, what a closed eyelid shows (blinks).
* ``lighting``: a multiplicative gain fixed to the camera (a lighting
  gradient and shading toward the face border); applied after the warp, so
  moving skin slides under fixed light as in a real recording.
* ``landmarks``: named points (pixels at output size) that the action-unit
  displacement fields are anchored to, plus the eye geometry for blinks.

Shapes are drawn with anti-aliasing on a 4x canvas and reduced by area
averaging, so edges are smooth and sub-pixel motion changes grey levels
gradually, as it does through a camera lens.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

SUPERSAMPLE = 4


@dataclass(frozen=True)
class Identity:
    """A subject's face, in image fractions (x right, y down) unless noted."""

    cx: float
    cy: float
    face_a: float  # half width of the face
    face_b: float  # half height of the face
    jaw: float  # 0 = elliptic jaw, larger = narrower chin
    eye_y: float
    eye_dx: float  # horizontal distance of each eye centre from cx
    eye_w: float  # half width of an eye
    eye_h: float  # half height of an open eye
    iris_tone: float
    brow_gap: float  # vertical distance brow - top of eye
    brow_thick: float
    brow_arch: float
    brow_tone: float
    nose_y: float  # nose tip
    nose_w: float  # half width of the nostrils
    mouth_y: float
    mouth_w: float  # half width of the mouth
    lip_up: float
    lip_low: float
    lip_tone: float  # lip darkness relative to skin (0..1)
    skin: float  # grey level of the skin, 0..255
    warmth: float  # colour tint of the skin (colour frames only)
    hair_tone: float
    hairline: float  # hairline height above the eyes, fraction of face_b
    background: float
    light_angle: float
    light_strength: float
    texture_fine: float
    texture_coarse: float
    freckles: int
    folds: float  # nasolabial fold darkness


@dataclass
class FaceLayers:
    albedo: np.ndarray  # float32 HxW or HxWx3, 0..255: neutral face with texture
    skin: np.ndarray  # same shape: the face without eyes (closed lids)
    lighting: np.ndarray  # float32 HxW gain (about 0.7..1.3)
    face_mask: np.ndarray  # bool HxW: pixels of the face ellipse
    landmarks: dict[str, np.ndarray] = field(default_factory=dict)  # name -> (x, y) pixels
    eyes: tuple[tuple[float, float, float, float], ...] = ()  # (cx, cy, half w, half h) pixels
    face_width: float = 0.0  # pixels


def sample_identity(rng: np.random.Generator) -> Identity:
    """Draw a face. Ranges keep every feature on the face and the layout plausible."""
    u = rng.uniform
    cx, cy = 0.5 + u(-0.03, 0.03), 0.53 + u(-0.035, 0.035)
    a, b = u(0.28, 0.36), u(0.39, 0.46)
    eye_y = cy - b * u(0.12, 0.20)
    eye_w = a * u(0.15, 0.19)
    eye_h = eye_w * u(0.38, 0.50)
    nose_y = eye_y + b * u(0.36, 0.46)
    skin = u(105, 205)
    background = u(30, 230)
    if abs(background - skin) < 35:  # keep the face visible against the background
        background = float(np.clip(skin + 60 * (1 if skin < 130 else -1), 20, 240))
    return Identity(
        cx=cx, cy=cy, face_a=a, face_b=b, jaw=u(0.0, 0.35),
        eye_y=eye_y, eye_dx=a * u(0.38, 0.45), eye_w=eye_w, eye_h=eye_h,
        iris_tone=u(25, 110),
        brow_gap=a * u(0.13, 0.21), brow_thick=u(0.013, 0.024), brow_arch=u(0.008, 0.03), brow_tone=u(20, 90),
        nose_y=nose_y, nose_w=a * u(0.15, 0.22),
        mouth_y=nose_y + b * u(0.20, 0.28), mouth_w=a * u(0.27, 0.37),
        lip_up=u(0.012, 0.02), lip_low=u(0.016, 0.03), lip_tone=u(0.55, 0.8),
        skin=skin, warmth=u(0.0, 1.0), hair_tone=u(15, 100), hairline=u(0.55, 0.8),
        background=background, light_angle=u(0.0, 2 * np.pi), light_strength=u(0.05, 0.22),
        texture_fine=u(0.025, 0.06), texture_coarse=u(0.02, 0.06), freckles=int(rng.integers(0, 30)),
        folds=u(0.05, 0.2),
    )


def _tint(grey: float, warmth: float, kind: str) -> tuple[float, float, float]:
    """BGR colour for a feature of the given grey level."""
    if kind == "skin":
        r, g, bl = 1.0 + 0.12 * warmth, 0.96, 0.86 - 0.1 * warmth
    elif kind == "lip":
        r, g, bl = 1.25, 0.82, 0.85
    elif kind == "iris":
        r, g, bl = 0.9 + 0.2 * warmth, 1.0, 1.1 - 0.2 * warmth
    else:
        r, g, bl = 1.0, 1.0, 1.0
    return (float(np.clip(grey * bl, 0, 255)), float(np.clip(grey * g, 0, 255)), float(np.clip(grey * r, 0, 255)))


class _Pen:
    """Normalised face coordinates -> supersampled canvas pixels."""

    def __init__(self, S: int) -> None:
        self.S = S

    def P(self, x: float, y: float) -> tuple[int, int]:
        return int(round(x * self.S)), int(round(y * self.S))

    def L(self, v: float) -> int:
        return max(1, int(round(v * self.S)))


_AA = cv2.LINE_AA


def _draw_head(canvas: np.ndarray, ident: Identity, pen: _Pen) -> np.ndarray:
    """Neck, hair, ears, face outline and fringe; returns the high-resolution face mask."""
    P, L, S = pen.P, pen.L, pen.S
    skin_c = _tint(ident.skin, ident.warmth, "skin")
    hair_c = _tint(ident.hair_tone, 0.3, "grey")
    cx, cy, a, b = ident.cx, ident.cy, ident.face_a, ident.face_b
    neck_c = _tint(ident.skin * 0.85, ident.warmth, "skin")
    cv2.rectangle(canvas, P(cx - a * 0.45, cy + b * 0.5), P(cx + a * 0.45, 1.0), neck_c, -1, _AA)
    cv2.ellipse(canvas, P(cx, cy - b * 0.08), (L(a * 1.1), L(b * 1.02)), 0, 180, 360, hair_c, -1, _AA)
    for side in (-1, 1):  # ears
        ear = P(cx + side * a * 0.98, ident.eye_y + b * 0.15)
        cv2.ellipse(canvas, ear, (L(a * 0.12), L(b * 0.17)), 0, 0, 360, skin_c, -1, _AA)
    # face outline: an ellipse whose lower half narrows toward the chin
    theta = np.linspace(0, 2 * np.pi, 180, endpoint=False)
    sx = np.cos(theta) * (1.0 - ident.jaw * np.clip(np.sin(theta), 0, None) ** 2)
    outline = np.stack([(cx + a * sx) * S, (cy + b * np.sin(theta)) * S], 1).round().astype(np.int32)
    cv2.fillPoly(canvas, [outline], skin_c, _AA)
    face_mask_hr = np.zeros((S, S), np.uint8)
    cv2.fillPoly(face_mask_hr, [outline], 255, cv2.LINE_8)
    top, hl = cy - b, ident.eye_y - ident.hairline * b  # hair fringe above the hairline
    cv2.ellipse(canvas, P(cx, hl), (L(a * 1.02), L(hl - top + 0.02)), 0, 180, 360, hair_c, -1, _AA)
    return face_mask_hr


def _draw_nose_and_mouth(canvas: np.ndarray, ident: Identity, pen: _Pen) -> None:
    """Nose (bridge, tip, nostrils), nasolabial folds, lips and the line between them."""
    P, L, S = pen.P, pen.L, pen.S
    cx = ident.cx
    nose_c = _tint(ident.skin * 0.8, ident.warmth, "skin")
    nostril_c = _tint(ident.skin * 0.35, ident.warmth, "skin")
    nw, ny = ident.nose_w, ident.nose_y
    for side in (-1, 1):
        cv2.line(canvas, P(cx + side * nw * 0.45, ident.eye_y + 0.02), P(cx + side * nw * 0.8, ny - 0.01), nose_c, L(0.008), _AA)
        cv2.ellipse(canvas, P(cx + side * nw * 0.55, ny), (L(nw * 0.32), L(nw * 0.18)), 0, 0, 360, nostril_c, -1, _AA)
        cv2.ellipse(canvas, P(cx + side * nw * 0.95, ny - 0.01), (L(nw * 0.35), L(nw * 0.45)), 0, 200, 340, nose_c, L(0.006), _AA)
    # nasolabial folds (make lip-corner motion visible, as wrinkles do)
    fold_c = _tint(ident.skin * (1 - ident.folds), ident.warmth, "skin")
    for side in (-1, 1):
        pts = np.array([
            P(cx + side * nw * 1.25, ny - 0.01),
            P(cx + side * ident.mouth_w * 1.05, (ny + ident.mouth_y) / 2),
            P(cx + side * ident.mouth_w * 1.18, ident.mouth_y + 0.03),
        ], np.int32)
        cv2.polylines(canvas, [pts], False, fold_c, L(0.007), _AA)
    lip_c = _tint(ident.skin * ident.lip_tone, ident.warmth, "lip")
    mw, my = ident.mouth_w, ident.mouth_y
    xs = np.linspace(-1, 1, 41)
    upper = np.stack([(cx + mw * xs), my - ident.lip_up * (1 - xs**2) * (1 + 0.12 * np.cos(3 * np.pi * xs))], 1)
    lower = np.stack([(cx + mw * xs[::-1]), my + ident.lip_low * (1 - xs[::-1] ** 2)], 1)
    cv2.fillPoly(canvas, [(np.concatenate([upper, lower]) * S).round().astype(np.int32)], lip_c, _AA)
    line = (np.stack([cx + mw * xs, my + 0.002 * (1 - xs**2)], 1) * S).round().astype(np.int32)
    cv2.polylines(canvas, [line], False, _tint(ident.skin * 0.3, ident.warmth, "lip"), L(0.006), _AA)


def _draw_brows(canvas: np.ndarray, ident: Identity, pen: _Pen) -> list[tuple[float, float]]:
    """Eyebrows as thick arcs; returns the eye centres."""
    brow_c = _tint(ident.brow_tone, 0.3, "grey")
    eyes = []
    for side in (-1, 1):
        ex = ident.cx + side * ident.eye_dx
        by = ident.eye_y - ident.eye_h - ident.brow_gap
        bx = np.linspace(-1.0, 1.25, 24)
        pts = np.stack([ex + side * ident.eye_w * bx, by - ident.brow_arch * (1 - ((bx - 0.15) / 1.2) ** 2)], 1)
        thick = ident.brow_thick * (1.15 - 0.35 * (bx + 1) / 2.25)
        for k in range(len(bx) - 1):
            cv2.line(canvas, pen.P(*pts[k]), pen.P(*pts[k + 1]), brow_c, pen.L(thick[k]), _AA)
        eyes.append((ex, ident.eye_y))
    return eyes


def _draw_eyes(canvas: np.ndarray, ident: Identity, pen: _Pen, eyes: list[tuple[float, float]]) -> np.ndarray:
    """Sclera, iris and pupil inside the eye opening, lids on top; returns the new canvas."""
    P, L, S = pen.P, pen.L, pen.S
    eye_mask_hr = np.zeros((S, S), np.uint8)
    eye_layer = canvas.copy()
    sclera_c = _tint(min(250.0, ident.skin + 45), 0.2, "grey")
    iris_c = _tint(ident.iris_tone, ident.warmth, "iris")
    axes = (L(ident.eye_w), L(ident.eye_h))
    for ex, ey in eyes:
        cv2.ellipse(eye_mask_hr, P(ex, ey), axes, 0, 0, 360, 255, -1, _AA)
        cv2.ellipse(eye_layer, P(ex, ey), axes, 0, 0, 360, sclera_c, -1, _AA)
        cv2.circle(eye_layer, P(ex, ey + ident.eye_h * 0.1), L(ident.eye_h * 0.95), iris_c, -1, _AA)
        cv2.circle(eye_layer, P(ex, ey + ident.eye_h * 0.1), L(ident.eye_h * 0.4), (12.0, 12.0, 12.0), -1, _AA)
    m = (eye_mask_hr.astype(np.float32) / 255.0)[..., None]
    canvas = canvas * (1 - m) + eye_layer * m
    upper_lid_c = _tint(ident.brow_tone * 0.8, 0.3, "grey")
    lower_lid_c = _tint(ident.skin * 0.7, ident.warmth, "skin")
    crease_c = _tint(ident.skin * 0.82, ident.warmth, "skin")
    crease_axes = (L(ident.eye_w * 1.05), L(ident.eye_h * 1.3))
    for ex, ey in eyes:
        cv2.ellipse(canvas, P(ex, ey), axes, 0, 180, 360, upper_lid_c, L(0.008), _AA)
        cv2.ellipse(canvas, P(ex, ey), axes, 0, 20, 160, lower_lid_c, L(0.004), _AA)
        cv2.ellipse(canvas, P(ex, ey - ident.eye_h * 0.35), crease_axes, 0, 200, 340, crease_c, L(0.005), _AA)
    return canvas


def _skin_texture(ident: Identity, size: int, rng: np.random.Generator, face_mask: np.ndarray) -> np.ndarray:
    """Pores, blotches and freckles as a multiplicative map (weaker outside the face)."""
    cx, a = ident.cx, ident.face_a
    fine = cv2.GaussianBlur(rng.standard_normal((size, size)).astype(np.float32), (0, 0), 0.7 * size / 128)
    coarse = cv2.GaussianBlur(rng.standard_normal((size, size)).astype(np.float32), (0, 0), 4.0 * size / 128)
    tex = 1.0 + ident.texture_fine * fine / (fine.std() + 1e-6) + ident.texture_coarse * coarse / (coarse.std() + 1e-6)
    spots = np.zeros((size, size), np.float32)
    fx = np.clip(rng.uniform(cx - a * 0.8, cx + a * 0.8, ident.freckles) * size, 0, size - 1).astype(int)
    fy = np.clip(rng.uniform(ident.eye_y + 0.03, ident.mouth_y, ident.freckles) * size, 0, size - 1).astype(int)
    spots[fy, fx] = 1.0
    spots = cv2.GaussianBlur(spots, (0, 0), 0.8 * size / 128)
    spots /= max(float(spots.max()), 1e-6)
    tex = tex * (1.0 - 0.3 * spots)
    return np.where(face_mask, tex, 1.0 + 0.4 * (tex - 1.0)).astype(np.float32)


def _lighting(ident: Identity, size: int, face_mask: np.ndarray) -> np.ndarray:
    """A gradient across the image and shading toward the face border."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    grad = 1.0 + ident.light_strength * ((xx - ident.cx) * np.cos(ident.light_angle)
                                         + (yy - ident.cy) * np.sin(ident.light_angle)) * 2
    shade = cv2.GaussianBlur(face_mask.astype(np.float32), (0, 0), 0.06 * size)
    return (grad * (0.8 + 0.2 * np.where(face_mask, shade, 1.0))).astype(np.float32)


def render_face(ident: Identity, size: int, rng: np.random.Generator, *, color: bool = False) -> FaceLayers:
    """Render an identity's layers at ``size`` x ``size`` (see module doc).

    ``rng`` draws the texture and freckles; pass the subject's generator so
    the same subject always has the same skin.
    """
    S = size * SUPERSAMPLE
    pen = _Pen(S)
    canvas = np.empty((S, S, 3), np.float32)
    canvas[:] = _tint(ident.background, 0.5, "grey")
    face_mask_hr = _draw_head(canvas, ident, pen)
    _draw_nose_and_mouth(canvas, ident, pen)
    eyes = _draw_brows(canvas, ident, pen)
    skin_canvas = canvas.copy()
    canvas = _draw_eyes(canvas, ident, pen, eyes)
    # area reduction to the output size: anti-aliased, slightly soft edges
    albedo = cv2.resize(canvas, (size, size), interpolation=cv2.INTER_AREA)
    skin_img = cv2.resize(skin_canvas, (size, size), interpolation=cv2.INTER_AREA)
    face_mask = cv2.resize(face_mask_hr, (size, size), interpolation=cv2.INTER_AREA) > 127
    tex = _skin_texture(ident, size, rng, face_mask)  # identical in both layers
    albedo = albedo * tex[..., None]
    skin_img = skin_img * tex[..., None]
    lighting = _lighting(ident, size, face_mask)
    if not color:
        albedo = cv2.cvtColor(albedo, cv2.COLOR_BGR2GRAY)
        skin_img = cv2.cvtColor(skin_img, cv2.COLOR_BGR2GRAY)
    eye_geo = tuple((ex * size, ey * size, ident.eye_w * size, ident.eye_h * size) for ex, ey in eyes)
    return FaceLayers(
        albedo=np.ascontiguousarray(albedo, np.float32),
        skin=np.ascontiguousarray(skin_img, np.float32),
        lighting=lighting,
        face_mask=face_mask,
        landmarks=_landmarks(ident, size),
        eyes=eye_geo,
        face_width=2 * ident.face_a * size,
    )


def _landmarks(ident: Identity, size: int) -> dict[str, np.ndarray]:
    """Named anchor points (pixels); '_l' is the image-left side, '_r' the right."""
    pts: dict[str, tuple[float, float]] = {}
    cx = ident.cx
    by = ident.eye_y - ident.eye_h - ident.brow_gap
    for tag, side in (("l", -1), ("r", 1)):
        ex = cx + side * ident.eye_dx
        pts[f"brow_inner_{tag}"] = (ex - side * ident.eye_w * 0.85, by)
        pts[f"brow_mid_{tag}"] = (ex + side * ident.eye_w * 0.1, by - ident.brow_arch)
        pts[f"brow_outer_{tag}"] = (ex + side * ident.eye_w * 1.05, by - ident.brow_arch * 0.5)
        pts[f"eye_top_{tag}"] = (ex, ident.eye_y - ident.eye_h)
        pts[f"eye_bottom_{tag}"] = (ex, ident.eye_y + ident.eye_h)
        pts[f"cheek_{tag}"] = (ex + side * ident.eye_w * 0.2, ident.eye_y + ident.eye_h + (ident.nose_y - ident.eye_y) * 0.45)
        pts[f"nose_wing_{tag}"] = (cx + side * ident.nose_w * 0.9, ident.nose_y - 0.015)
        pts[f"mouth_corner_{tag}"] = (cx + side * ident.mouth_w, ident.mouth_y)
    pts["glabella"] = (cx, by + 0.01)
    pts["nose_bridge"] = (cx, (ident.eye_y + ident.nose_y) / 2 - 0.02)
    pts["nose_tip"] = (cx, ident.nose_y)
    pts["upper_lip"] = (cx, ident.mouth_y - ident.lip_up)
    pts["lower_lip"] = (cx, ident.mouth_y + ident.lip_low)
    pts["chin_boss"] = (cx, ident.mouth_y + ident.lip_low + (ident.cy + ident.face_b - ident.mouth_y) * 0.45)
    pts["chin"] = (cx, ident.cy + ident.face_b * 0.92)
    return {k: np.array([x * size, y * size], np.float32) for k, (x, y) in pts.items()}
