"""Face detection, eye-line alignment and one crop for the whole clip.

Micro-expressions move skin by a pixel or two, so a crop that jitters from
frame to frame would swamp them. The face is therefore found once, on the
onset frame, and the *same* similarity transform (rotation on the eye line,
crop with a margin, scale to the working size) is applied to every frame.

Detection uses OpenCV's Haar cascades (``cv2.data.haarcascades``): the
largest frontal face, then the two eyes in its upper half; the eye line
gives the roll angle (ignored beyond ``MAX_ROLL_DEG`` as a likely false
eye). When no face is found the largest centred square is used instead and
the sample's report says ``centre-fallback``. Pre-cropped datasets
(``cropped=True``) skip detection and use the whole frame.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

FACE_VERSION = "face-1"
MARGIN = 0.15  # crop side = face side * (1 + 2 * MARGIN)
MAX_ROLL_DEG = 20.0
DETECT_MAX_SIDE = 480  # frames are shrunk to this for detection (speed)

_CASCADES: dict[str, cv2.CascadeClassifier] = {}


def _cascade(name: str) -> cv2.CascadeClassifier:
    """Load a bundled cascade once per process (classifiers are not picklable)."""
    if name not in _CASCADES:
        path = cv2.data.haarcascades + name
        clf = cv2.CascadeClassifier(path)
        if clf.empty():
            raise RuntimeError(f"cannot load Haar cascade {path}")
        _CASCADES[name] = clf
    return _CASCADES[name]


@dataclass(frozen=True)
class FaceCrop:
    """A square crop: centre (cx, cy), side and roll angle, in frame pixels.

    ``mode`` is how it was found: 'detected', 'centre-fallback',
    'precropped' (whole frame of a pre-cropped clip) or 'disabled' (face
    cropping switched off: whole frame).
    """

    cx: float
    cy: float
    side: float
    angle: float = 0.0  # degrees; the frame is rotated by this to level the eyes
    mode: str = "detected"
    whole_frame: bool = False  # use the full frame (resized), not a square crop


def detect_face(grey: np.ndarray) -> tuple[tuple[float, float, float, float], list[tuple[float, float]]] | None:
    """Largest face box (x, y, w, h) and eye centres in frame pixels, or None."""
    h, w = grey.shape
    scale = min(1.0, DETECT_MAX_SIDE / max(h, w))
    small = cv2.resize(grey, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_AREA) if scale < 1 else grey
    small = cv2.equalizeHist(small)
    side = min(small.shape)
    faces = _cascade("haarcascade_frontalface_default.xml").detectMultiScale(
        small, scaleFactor=1.1, minNeighbors=5, minSize=(max(24, side // 5),) * 2
    )
    if len(faces) == 0:
        return None
    fx, fy, fw, fh = max(faces, key=lambda b: b[2] * b[3])
    upper = small[fy : fy + fh // 2, fx : fx + fw]
    eyes = _cascade("haarcascade_eye.xml").detectMultiScale(
        upper, scaleFactor=1.1, minNeighbors=5, minSize=(max(8, fw // 10),) * 2
    )
    centres = sorted(((fx + ex + ew / 2) / scale, (fy + ey + eh / 2) / scale) for ex, ey, ew, eh in eyes)
    box = (fx / scale, fy / scale, fw / scale, fh / scale)
    return box, _eye_pair(centres, box)


def _eye_pair(centres: list[tuple[float, float]], box: tuple[float, float, float, float]) -> list[tuple[float, float]]:
    """One eye on each side of the face's vertical mid-line, or nothing."""
    mid = box[0] + box[2] / 2
    left = [c for c in centres if c[0] < mid]
    right = [c for c in centres if c[0] >= mid]
    if not left or not right:
        return []
    return [max(left, key=lambda c: c[0]), min(right, key=lambda c: c[0])]


def roll_angle(eyes: list[tuple[float, float]]) -> float:
    """Roll (degrees) of the line from the image-left eye to the image-right eye."""
    if len(eyes) != 2:
        return 0.0
    (x1, y1), (x2, y2) = eyes
    angle = math.degrees(math.atan2(y2 - y1, x2 - x1))
    return angle if abs(angle) <= MAX_ROLL_DEG else 0.0


def find_crop(grey: np.ndarray, *, cropped: bool = False, enabled: bool = True) -> FaceCrop:
    """The crop to use for a clip, decided on its onset frame."""
    h, w = grey.shape
    if cropped or not enabled:
        return FaceCrop(w / 2, h / 2, min(h, w), 0.0, "precropped" if cropped else "disabled", whole_frame=True)
    found = detect_face(grey)
    if found is None:
        return FaceCrop(w / 2, h / 2, min(h, w), 0.0, "centre-fallback")
    (x, y, bw, bh), eyes = found
    return FaceCrop(x + bw / 2, y + bh / 2, max(bw, bh) * (1 + 2 * MARGIN), roll_angle(eyes), "detected")


def face_region(size: int) -> np.ndarray:
    """Where the face lies in a (size, size) crop of a *detected* face: the disc inscribed in the detector's box.

    The crop is the box grown by ``MARGIN`` on every side (:func:`find_crop`), so the box spans the central
    ``1 / (1 + 2 * MARGIN)`` of the crop; the disc leaves out its corners (hair, background). Bool (size, size).
    """
    radius = size / (2 * (1 + 2 * MARGIN))
    yy, xx = np.mgrid[0:size, 0:size] + 0.5
    return (xx - size / 2) ** 2 + (yy - size / 2) ** 2 <= radius**2


def crop_matrix(crop: FaceCrop, out_size: int, prescale: float = 1.0) -> np.ndarray:
    """2x3 affine matrix mapping frame pixels (after ``prescale``) to the crop.

    Rotation by ``crop.angle`` about the face centre, scale ``out_size/side``,
    face centre -> crop centre. ``cx, cy`` are continuous coordinates (pixel
    i spans [i, i+1)); OpenCV's matrices act on pixel indices (centres), hence
    the half-pixel shifts, without which a large down-scale drifts by half
    an output pixel.
    """
    cx, cy = crop.cx * prescale - 0.5, crop.cy * prescale - 0.5
    m = cv2.getRotationMatrix2D((cx, cy), crop.angle, out_size / (crop.side * prescale))
    m[0, 2] += (out_size / 2 - 0.5) - cx
    m[1, 2] += (out_size / 2 - 0.5) - cy
    return m


def apply_crop(frame: np.ndarray, crop: FaceCrop, out_size: int) -> np.ndarray:
    """Apply a clip's crop to one frame -> (out_size, out_size), same dtype.

    Large down-scales are done in two steps (area resize, then the warp at
    about 2x) so the warp's bilinear sampling does not alias fine texture.
    """
    if crop.whole_frame:
        interp = cv2.INTER_AREA if out_size < min(frame.shape[:2]) else cv2.INTER_LINEAR
        return cv2.resize(frame, (out_size, out_size), interpolation=interp)
    prescale = 1.0
    if out_size / crop.side < 0.5:
        prescale = 2.0 * out_size / crop.side
        h, w = frame.shape[:2]
        frame = cv2.resize(frame, (max(1, round(w * prescale)), max(1, round(h * prescale))), interpolation=cv2.INTER_AREA)
    m = crop_matrix(crop, out_size, prescale)
    return cv2.warpAffine(frame, m, (out_size, out_size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
