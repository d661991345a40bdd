"""Optical flow onset -> apex, optical strain, and flow pictures.

Three methods share one signature, ``compute_flow(first, second, method)``
on grey uint8 images of equal shape, returning float32 (H, W, 2) with
``[..., 0] = u`` (positive = motion to the right) and ``[..., 1] = v``
(positive = motion down), in pixels of the images given:

* ``tvl1``: Zach-Pock-Bischof dual TV-L1 (``cv2.optflow``), the choice of
  the MER papers (STSTNet, MFDAN). Accurate, slow (~0.1 s at 128 px).
* ``dis``: dense inverse search (Kroeger et al.), the fast CPU default
  (a few ms at 224 px), slightly noisier on texture-poor skin.
* ``farneback``: polynomial expansion, a classic third option.

Optical strain is the magnitude of the (infinitesimal) strain tensor of the
displacement field: ``|e| = sqrt(ux^2 + vy^2 + 0.5 (uy + vx)^2)`` with central
differences. A pure translation has zero strain; the papers use it because
skin stretching shows where the muscle acts, independent of head motion.

Flow pictures for people (the dashboard): :func:`flow_to_rgb` (Middlebury
style colour wheel: hue = direction, brightness = magnitude) and
:func:`flow_arrows` (a subsampled grid for quiver plots). The precomputed
flow-image convention of manifests is :func:`encode_flow_image` /
:func:`decode_flow_image` (see ``channels.py``); :func:`read_flow_file`
reads one in any of :data:`FLOW_ENCODINGS`:

* ``centered``: the project's own images, 128 = no motion (``encode_flow_image``);
* ``minmax``: each channel min-max scaled to 0..255 on its own, as many public
  pipelines write them. Zero motion is no longer a known grey level, so u and
  v are re-centred on their median (most of a face does not move) and scaled
  by 127.5; strain is taken as 0..255 -> 0..1. Magnitudes are relative to the
  image's own largest motion, not pixels;
* ``npy``: a raw float array ``(H, W, 2|3)`` or ``(2|3, H, W)``: u, v in
  pixels at the array's size (and optionally strain); strain is computed when
  absent. Vectors are rescaled to the input size like computed flow.
"""
from __future__ import annotations

import cv2
import numpy as np

from mer_core.preprocess.channels import FLOW_IMAGE_RANGE, FLOW_IMAGE_ZERO, FLOW_SCALE, STRAIN_SCALE

FLOW_METHODS = ("dis", "tvl1", "farneback")
FLOW_ENCODINGS = ("centered", "minmax", "npy")
# Bump when the output of compute_flow / optical_strain changes for the same input.
FLOW_VERSION = "flow-1"


def _check_pair(first: np.ndarray, second: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    if first.shape != second.shape or first.ndim != 2:
        raise ValueError(f"optical flow needs two grey images of equal shape, got {first.shape} and {second.shape}")
    if min(first.shape) < 8:
        raise ValueError(f"image too small for optical flow: {first.shape} (need at least 8x8)")

    def u8(img: np.ndarray) -> np.ndarray:
        if img.dtype != np.uint8:
            img = np.clip(np.rint(img * 255.0), 0, 255).astype(np.uint8)  # floats are 0..1
        return np.ascontiguousarray(img)

    return u8(first), u8(second)


def compute_flow(first: np.ndarray, second: np.ndarray, method: str = "dis") -> np.ndarray:
    """Dense flow from ``first`` to ``second`` (grey, uint8 or float 0..1).

    Returns float32 (H, W, 2): u, v in pixels of the given images.
    """
    a, b = _check_pair(first, second)
    if method == "dis":
        dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
        flow = dis.calc(a, b, None)
    elif method == "tvl1":
        # OpenCV defaults = the published TV-L1 settings (tau .25, lambda .15,
        # theta .3, 5 scales, 5 warps); what STSTNet-style code uses.
        tvl1 = cv2.optflow.DualTVL1OpticalFlow_create()
        flow = tvl1.calc(a, b, None)
    elif method == "farneback":
        flow = cv2.calcOpticalFlowFarneback(a, b, None, 0.5, 3, 15, 3, 5, 1.2, 0)
    else:
        raise ValueError(f"unknown flow method {method!r}; expected one of {', '.join(FLOW_METHODS)}")
    return np.asarray(flow, np.float32)


def optical_strain(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Strain magnitude ``sqrt(ux^2 + vy^2 + 0.5 (uy + vx)^2)`` (dimensionless).

    Derivatives are central differences (``np.gradient``), so the value does
    not depend on the image scale: resizing u, v and the grid together leaves
    it unchanged.
    """
    uy, ux = np.gradient(u.astype(np.float32))
    vy, vx = np.gradient(v.astype(np.float32))
    return np.sqrt(ux**2 + vy**2 + 0.5 * (uy + vx) ** 2).astype(np.float32)


def resize_flow(flow: np.ndarray, size: int) -> np.ndarray:
    """Resize a (H, W, 2) flow to (size, size, 2), rescaling the vectors.

    Flow is measured in pixels, so when the grid shrinks by a factor the
    displacements shrink by the same factor (per axis).
    """
    h, w = flow.shape[:2]
    interp = cv2.INTER_AREA if size < min(h, w) else cv2.INTER_LINEAR
    out = cv2.resize(flow, (size, size), interpolation=interp)
    out[..., 0] *= size / w
    out[..., 1] *= size / h
    return out.astype(np.float32)


def flow_to_rgb(u: np.ndarray, v: np.ndarray, max_magnitude: float | None = None) -> np.ndarray:
    """Colour-wheel picture of a flow field: RGB uint8 (H, W, 3).

    Hue gives the direction (right = red, down = yellow-green, left = cyan,
    up = blue-violet), brightness the magnitude relative to ``max_magnitude``
    (default: the field's own maximum, so a tiny micro-expression still shows).
    """
    mag, ang = cv2.cartToPolar(u.astype(np.float32), v.astype(np.float32), angleInDegrees=True)
    top = float(max_magnitude) if max_magnitude else float(mag.max())
    hsv = np.zeros(u.shape + (3,), np.uint8)
    hsv[..., 0] = (ang / 2.0).astype(np.uint8)  # OpenCV hue is 0..179
    hsv[..., 1] = 255
    hsv[..., 2] = np.clip(mag / top * 255.0, 0, 255).astype(np.uint8) if top > 0 else 0
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)


def flow_arrows(u: np.ndarray, v: np.ndarray, step: int = 8) -> dict[str, np.ndarray]:
    """A subsampled grid for arrow (quiver) plots.

    Returns 1-D arrays ``x, y`` (arrow tails, pixel centres of ``step``-sized
    cells) and ``u, v`` (the flow averaged over each cell, so arrows do not
    alias on noisy fields).
    """
    h, w = u.shape
    step = max(1, int(step))
    gh, gw = max(1, h // step), max(1, w // step)
    um = cv2.resize(u.astype(np.float32), (gw, gh), interpolation=cv2.INTER_AREA)
    vm = cv2.resize(v.astype(np.float32), (gw, gh), interpolation=cv2.INTER_AREA)
    ys, xs = np.mgrid[0:gh, 0:gw]
    return {
        "x": ((xs + 0.5) * w / gw).ravel().astype(np.float32),
        "y": ((ys + 0.5) * h / gh).ravel().astype(np.float32),
        "u": um.ravel(),
        "v": vm.ravel(),
    }


def encode_flow_image(flow_u: np.ndarray, flow_v: np.ndarray, strain: np.ndarray) -> np.ndarray:
    """Normalised channel maps -> an RGB uint8 flow image (manifest convention).

    Inputs are the *normalised* channel values (as ``prepare_inputs`` returns
    them). Write the result with ``cv2.imwrite(path, rgb[..., ::-1])``.
    """
    r = FLOW_IMAGE_ZERO + FLOW_IMAGE_RANGE * np.clip(flow_u, -1, 1)
    g = FLOW_IMAGE_ZERO + FLOW_IMAGE_RANGE * np.clip(flow_v, -1, 1)
    b = 255.0 * np.clip(strain, 0, 1)
    return np.clip(np.rint(np.stack([r, g, b], -1)), 0, 255).astype(np.uint8)


def decode_flow_image(rgb: np.ndarray, *, minmax: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """An RGB flow image -> normalised (flow_u, flow_v, strain) float32 maps.

    ``minmax``: a per-image min-max image, whose u and v are re-centred on their median.
    """
    if rgb.ndim != 3 or rgb.shape[2] < 3:
        raise ValueError(f"a flow image needs 3 channels (u, v, strain as RGB), got shape {rgb.shape}")
    img = rgb[..., :3].astype(np.float32)
    if minmax:
        u = (img[..., 0] - float(np.median(img[..., 0]))) / 127.5
        v = (img[..., 1] - float(np.median(img[..., 1]))) / 127.5
    else:
        u = (img[..., 0] - FLOW_IMAGE_ZERO) / FLOW_IMAGE_RANGE
        v = (img[..., 1] - FLOW_IMAGE_ZERO) / FLOW_IMAGE_RANGE
    return np.clip(u, -1, 1), np.clip(v, -1, 1), img[..., 2] / 255.0


def read_flow_file(path: str, encoding: str, size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Normalised (flow_u, flow_v, strain) maps of ``size`` px from a precomputed flow file.

    ValueError naming the file for anything unreadable or of the wrong shape.
    """
    if encoding not in FLOW_ENCODINGS:
        raise ValueError(f"flow_encoding={encoding!r} for {path}: expected one of {', '.join(FLOW_ENCODINGS)}")
    if encoding == "npy":
        return _read_npy_flow(path, size)
    bgr = cv2.imread(path, cv2.IMREAD_UNCHANGED)
    if bgr is None:
        raise ValueError(f"cannot read flow image {path} (missing, unreadable or not an image)")
    if bgr.ndim != 3 or bgr.shape[2] not in (3, 4):
        shape = "1 channel (grey)" if bgr.ndim == 2 else f"{bgr.shape[2]} channels"
        raise ValueError(f"flow image {path} has {shape}; expected 3 channels (u, v, strain as RGB)")
    if bgr.dtype != np.uint8:
        bgr = (bgr.astype(np.float32) / float(np.iinfo(bgr.dtype).max) * 255.0).astype(np.uint8)
    rgb = cv2.cvtColor(bgr[..., :3], cv2.COLOR_BGR2RGB)
    maps = decode_flow_image(rgb, minmax=encoding == "minmax")
    return tuple(_fit(m, size) for m in maps)  # type: ignore[return-value]


def _read_npy_flow(path: str, size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    try:
        arr = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise ValueError(f"cannot read flow array {path} ({exc})") from exc
    if arr.ndim == 3 and arr.shape[0] in (2, 3) and arr.shape[2] not in (2, 3):
        arr = np.moveaxis(arr, 0, -1)
    if arr.ndim != 3 or arr.shape[2] not in (2, 3) or not np.issubdtype(arr.dtype, np.number):
        raise ValueError(f"flow array {path} has shape {arr.shape}; expected (H, W, 2|3) or (2|3, H, W) of numbers")
    arr = arr.astype(np.float32)
    bad = int(arr.size - np.count_nonzero(np.isfinite(arr)))
    if bad:  # never turned into zeros: a NaN flow would train as 'no motion'
        raise ValueError(f"flow array {path} holds {bad} non-finite value(s) (NaN or infinite) of {arr.size}; "
                         "expected finite flow values")
    small = resize_flow(arr[..., :2], size)
    strain = arr[..., 2] if arr.shape[2] == 3 else optical_strain(arr[..., 0], arr[..., 1])
    return small[..., 0] / FLOW_SCALE, small[..., 1] / FLOW_SCALE, _fit(strain, size) / STRAIN_SCALE


def _fit(img: np.ndarray, size: int) -> np.ndarray:
    interp = cv2.INTER_AREA if size < min(img.shape[:2]) else cv2.INTER_LINEAR
    return cv2.resize(img.astype(np.float32), (size, size), interpolation=interp)
