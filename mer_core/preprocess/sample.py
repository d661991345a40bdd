"""One sample -> its channel maps: the per-sample half of the pipeline.

``compute_maps`` runs the steps in order (read frames, one face crop for the
clip, apex spotting if the apex is estimated, optical flow + strain, EVM) and
returns every requested channel as a normalised float32 map of the requested
size, plus the facts the report records (apex used, how the face was found,
flow method, EVM note). It raises ``SampleError`` with a message naming the
sample and the file or index at fault; the pipeline stores that message in
the report and carries on with the next sample.

Frames are processed at a *working size* ``max(size, MIN_WORK_SIZE)``:
flow on a 28-pixel face would miss sub-pixel micro-motion, so it is computed
on a larger crop and then resized, its vectors scaled to pixels at the input
size (the channel convention in ``channels.py``). Strain is scale-free.

Rows without frames use their precomputed inputs (``flow_path``,
``apex_image_path``, ``onset_image_path``) and compute only what is missing:
'diff' from the onset and apex images, flow from the onset and apex images
when no flow image is given; 'magnified_*' fall back to the unmagnified image
and the report says so.
"""
from __future__ import annotations

from typing import Any

import cv2
import numpy as np

from mer_core.config import PreprocessConfig
from mer_core.preprocess import apex as apex_mod
from mer_core.preprocess import face, flow, magnify
from mer_core.preprocess.channels import DIFF_GAIN, FLOW_CHANNELS, FLOW_SCALE, STRAIN_SCALE

MIN_WORK_SIZE = 128
PIPELINE_VERSION = "sample-1"
MAGNIFIED = ("magnified_apex", "magnified_onset")


class SampleError(ValueError):
    """A sample cannot be preprocessed; the message names the sample and cause."""


def as_dict(row: Any) -> dict[str, Any]:
    """A table row (pandas Series, itertuples namedtuple or dict) as a plain dict."""
    if isinstance(row, dict):
        return dict(row)
    if hasattr(row, "_asdict"):
        return dict(row._asdict())
    if hasattr(row, "to_dict"):
        return dict(row.to_dict())
    raise TypeError(f"expected a sample-table row (Series, namedtuple or dict), got {type(row).__name__}")


def work_size(size: int) -> int:
    return max(int(size), MIN_WORK_SIZE)


def read_grey(path: str | np.ndarray) -> np.ndarray:
    """Read an image as grey uint8; SampleError naming the file if unreadable.

    A grey uint8 array is returned as it is: a decoded clip's frames (``mer
    predict``) go through the very same steps as frames on disk.
    """
    if isinstance(path, np.ndarray):
        return path
    if not path:
        raise SampleError("empty image path")
    img = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    if img is None:
        raise SampleError(f"cannot read image {path} (missing, unreadable or not an image)")
    return img


def _resize(img: np.ndarray, size: int) -> np.ndarray:
    interp = cv2.INTER_AREA if size < min(img.shape[:2]) else cv2.INTER_LINEAR
    return cv2.resize(img, (size, size), interpolation=interp)


def frame_indices(row: dict[str, Any], channels: tuple[str, ...]) -> tuple[int, int, int, bool]:
    """Validated (onset, apex, offset, needs_whole_range) for a frames row."""
    frames = row.get("frames") or ()
    n = len(frames)
    sid = row.get("sample_id", "?")
    if n < 2:
        raise SampleError(f"{sid}: clip has {n} frame(s); onset->apex flow and magnification need at least 2")
    on, ap, off = (int(row.get(k, -1)) for k in ("onset", "apex", "offset"))
    for name, val in (("onset", on), ("apex", ap), ("offset", off)):
        if not 0 <= val < n:
            raise SampleError(f"{sid}: {name}={val} is outside the clip's {n} frames (expected 0..{n - 1})")
    estimated = bool(row.get("apex_estimated", False))
    if on >= off:
        raise SampleError(f"{sid}: onset={on} must come before offset={off}")
    if not estimated and not on < ap <= off:
        raise SampleError(
            f"{sid}: expected onset < apex <= offset, got onset={on}, apex={ap}, offset={off} "
            "(mark the apex as estimated to have it spotted)"
        )
    whole = estimated or any(c in MAGNIFIED for c in channels)
    return on, ap, off, whole


def source_files(row: dict[str, Any], channels: tuple[str, ...]) -> list[str]:
    """The files a sample reads for these channels (for cache fingerprints)."""
    frames = tuple(row.get("frames") or ())
    if len(frames) >= 2:
        try:
            on, ap, off, whole = frame_indices(row, channels)
        except SampleError:
            return list(frames)
        return list(frames[on : off + 1]) if whole else [frames[on], frames[ap]]
    if frames:
        return list(frames)
    return [str(row.get(k) or "") for k in ("flow_path", "apex_image_path", "onset_image_path") if row.get(k)]


def compute_maps(
    row: Any,
    channels: tuple[str, ...],
    size: int,
    options: PreprocessConfig,
    *,
    keep_clip: bool = False,
    lenient: bool = False,
) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Normalised (size, size) float32 maps for ``channels`` and report facts.

    ``keep_clip`` also returns the cropped clip and its magnification
    (onset..offset, keys 'clip' and 'magnified_clip', (T, size, size) 0..1)
    and the raw flow in pixels at ``size`` ('u_px', 'v_px'); ``lenient``
    skips channels that this row cannot provide instead of failing (views).
    """
    r = as_dict(row)
    if len(tuple(r.get("frames") or ())) > 0:
        return _from_frames(r, channels, size, options, keep_clip)
    return _from_precomputed(r, channels, size, options, lenient)


def _from_frames(
    r: dict[str, Any], channels: tuple[str, ...], size: int, opt: PreprocessConfig, keep_clip: bool
) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    frames = tuple(r["frames"])
    on, ap, off, whole = frame_indices(r, channels)
    whole = whole or keep_clip
    work = work_size(size)
    onset_img = read_grey(frames[on])
    crop = face.find_crop(onset_img, cropped=bool(r.get("cropped", False)), enabled=opt.face_crop)
    info: dict[str, Any] = {"face": crop.mode, "apex_method": str(r.get("apex_method") or "annotated"), "evm": ""}

    clip = None
    if whole:
        clip = np.stack([face.apply_crop(onset_img if i == on else read_grey(frames[i]), crop, work) for i in range(on, off + 1)])
        if bool(r.get("apex_estimated", False)):
            rel, method = apex_mod.spot_apex(clip)
            ap = on + rel
            info["apex_method"] = method
        onset_w, apex_w = clip[0], clip[ap - on]
    else:
        onset_w = face.apply_crop(onset_img, crop, work)
        apex_w = face.apply_crop(read_grey(frames[ap]), crop, work)
    info["apex"] = ap

    maps: dict[str, np.ndarray] = {}
    onset_f = onset_w.astype(np.float32) / 255.0
    apex_f = apex_w.astype(np.float32) / 255.0
    if any(c in FLOW_CHANNELS for c in channels) or keep_clip:
        small = _flow_maps(maps, onset_w, apex_w, size, opt.flow_method)
        info["flow_method"] = opt.flow_method
        if keep_clip:
            maps["u_px"], maps["v_px"] = small[..., 0], small[..., 1]
    maps["onset"] = _resize(onset_f, size)
    maps["apex"] = _resize(apex_f, size)
    maps["diff"] = (maps["apex"] - maps["onset"]) * DIFF_GAIN
    if any(c in MAGNIFIED for c in channels) or keep_clip:
        assert clip is not None
        if len(clip) < 3:
            info["evm"] = f"not magnified: {len(clip)} frames between onset and offset (the band-pass needs 3)"
        mag = magnify.magnify(
            clip.astype(np.float32) / 255.0,
            alpha=opt.evm_alpha,
            low=opt.evm_low,
            high=opt.evm_high,
            levels=opt.evm_levels,
            pyramid=opt.evm_pyramid,
            filter=opt.evm_filter,
        )
        info["evm"] = info["evm"] or "magnified"
        maps["magnified_onset"] = _resize(mag[0], size)
        maps["magnified_apex"] = _resize(mag[ap - on], size)
        if keep_clip:
            maps["clip"] = np.stack([_resize(f.astype(np.float32) / 255.0, size) for f in clip])
            maps["magnified_clip"] = np.stack([_resize(f, size) for f in mag])
            maps["apex_in_clip"] = np.array(ap - on)
            maps["clip_first"] = np.array(on)  # the file's frame number of the clip's first frame
    return {k: v.astype(np.float32) for k, v in maps.items()}, info


def _flow_maps(maps: dict[str, np.ndarray], first: np.ndarray, second: np.ndarray, size: int, method: str
               ) -> np.ndarray:
    """Put the flow channels of ``first`` -> ``second`` at ``size`` into ``maps``; returns u, v in px at ``size``."""
    fl = flow.compute_flow(first, second, method)
    small = flow.resize_flow(fl, size)
    maps["flow_u"] = small[..., 0] / FLOW_SCALE
    maps["flow_v"] = small[..., 1] / FLOW_SCALE
    maps["strain"] = _resize(flow.optical_strain(fl[..., 0], fl[..., 1]), size) / STRAIN_SCALE
    return small


def _from_precomputed(
    r: dict[str, Any], channels: tuple[str, ...], size: int, opt: PreprocessConfig, lenient: bool
) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    sid = r.get("sample_id", "?")
    info: dict[str, Any] = {"face": "precomputed", "apex": -1, "apex_method": "precomputed", "evm": ""}
    flow_path = str(r.get("flow_path") or "")
    apex_path = str(r.get("apex_image_path") or "")
    onset_path = str(r.get("onset_image_path") or "")
    maps: dict[str, np.ndarray] = {}
    notes: list[str] = []
    if apex_path:
        maps["apex"] = _resize(read_grey(apex_path).astype(np.float32) / 255.0, size)
    if onset_path:
        maps["onset"] = _resize(read_grey(onset_path).astype(np.float32) / 255.0, size)
    if "apex" in maps and "onset" in maps:
        maps["diff"] = (maps["apex"] - maps["onset"]) * DIFF_GAIN
    wants_flow = any(c in FLOW_CHANNELS for c in channels)
    if wants_flow and flow_path:
        encoding = flow_encoding(r)
        try:
            maps["flow_u"], maps["flow_v"], maps["strain"] = flow.read_flow_file(flow_path, encoding, size)
        except ValueError as exc:
            raise SampleError(f"{sid}: {exc}") from None
        info["flow_method"] = "precomputed" if encoding == "centered" else f"precomputed ({encoding})"
    elif wants_flow and apex_path and onset_path:
        first, second = (_resize(read_grey(p), work_size(size)) for p in (onset_path, apex_path))
        _flow_maps(maps, first, second, size, opt.flow_method)
        info["flow_method"] = f"{opt.flow_method} (onset/apex images)"
    for mag, plain in (("magnified_apex", "apex"), ("magnified_onset", "onset")):
        if mag in channels and plain in maps:
            maps[mag] = maps[plain]
            notes.append(f"{mag}: no frames to magnify, used the {plain} image unmagnified")
    info["evm"] = "; ".join(notes)
    missing = [c for c in channels if c not in maps]
    if missing and not lenient:
        have = [k for k, p in (("flow_path", flow_path), ("apex_image_path", apex_path), ("onset_image_path", onset_path)) if p]
        raise SampleError(
            f"{sid}: no frames, and channel(s) {missing} cannot be made from {have or 'nothing'} "
            "(flow needs a flow image or onset+apex images; 'diff' needs onset and apex images)"
        )
    return {k: v.astype(np.float32) for k, v in maps.items()}, info


def flow_encoding(row: dict[str, Any]) -> str:
    """How a row's precomputed flow file is encoded: its ``flow_encoding``, else ``npy`` for .npy, else ``centered``."""
    given = str(row.get("flow_encoding") or "").strip().lower()
    if given and given != "nan":
        return given
    return "npy" if str(row.get("flow_path") or "").lower().endswith(".npy") else "centered"


def process_sample(
    row: Any, channels: tuple[str, ...], size: int, options: PreprocessConfig
) -> tuple[np.ndarray, dict[str, Any]]:
    """(C, size, size) float32 stack of ``channels`` and the report facts."""
    maps, info = compute_maps(row, channels, size, options)
    return np.stack([maps[c] for c in channels]).astype(np.float32), info


def sample_views(row: Any, options: PreprocessConfig | None = None, *, size: int = 128, arrow_step: int = 8) -> dict[str, Any]:
    """Everything the dashboard shows for one sample, as plain arrays.

    Keys (absent items are None when the row cannot provide them):

    * ``onset``, ``apex``: grey (size, size) float 0..1 after the face crop;
      ``diff``: apex - onset, float about -1..1 (no gain);
    * ``flow_u``, ``flow_v``: flow in pixels at ``size``; ``strain`` raw
      (dimensionless); ``flow_rgb``: colour-wheel RGB uint8 (size, size, 3);
      ``arrows``: dict x, y, u, v (1-D) for a quiver plot;
    * ``clip``, ``magnified_clip``: (T, size, size) 0..1, onset..offset,
      ``apex_index``: position of the apex in them, and ``clip_first``: the
      frame of the file (counted from 0) their first frame is, so pages can
      number a clip's frames as in the file;
    * ``face_region``: bool (size, size), where the detected face lies in the
      crop (:func:`face.face_region`); None unless a face was detected;
    * ``info``: the report facts (face, apex, apex_method, flow_method, evm).

    Precomputed rows give what their images allow (flow_u/v are then
    normalised channel values, not pixels: see ``info['flow_method']``).
    """
    opt = options or PreprocessConfig()
    r = as_dict(row)
    has_frames = len(tuple(r.get("frames") or ())) >= 2
    wanted = ("flow_u", "flow_v", "strain", "onset", "apex", "diff") + (MAGNIFIED if has_frames else ())
    maps, info = compute_maps(r, wanted, size, opt, keep_clip=has_frames, lenient=True)
    strain = maps.get("strain")
    if strain is not None and has_frames:
        strain = strain * STRAIN_SCALE
    arrays = {"onset": maps.get("onset"), "apex": maps.get("apex"),
              "diff": maps["diff"] / DIFF_GAIN if "diff" in maps else None,
              "flow_u": maps.get("u_px", maps.get("flow_u")), "flow_v": maps.get("v_px", maps.get("flow_v")),
              "strain": strain, "clip": maps.get("clip"), "magnified_clip": maps.get("magnified_clip")}
    return views_from_arrays(arrays, info, int(maps["apex_in_clip"]) if "apex_in_clip" in maps else None,
                             int(maps["clip_first"]) if "clip_first" in maps else None, size=size,
                             arrow_step=arrow_step)


def views_from_arrays(arrays: dict[str, np.ndarray | None], info: dict[str, Any], apex_index: int | None,
                      clip_first: int | None, *, size: int, arrow_step: int = 8) -> dict[str, Any]:
    """:func:`sample_views`' result from its computed arrays (onset, apex, diff, flow_u, flow_v, strain, clip,
    magnified_clip) and facts: the colour-wheel picture, the arrow grid and the face region are derived here."""
    u, v = arrays.get("flow_u"), arrays.get("flow_v")
    return {
        **{k: arrays.get(k) for k in ("onset", "apex", "diff", "flow_u", "flow_v", "strain")},
        "flow_rgb": flow.flow_to_rgb(u, v) if u is not None else None,
        "arrows": flow.flow_arrows(u, v, arrow_step) if u is not None else None,
        "clip": arrays.get("clip"),
        "magnified_clip": arrays.get("magnified_clip"),
        "apex_index": apex_index,
        "clip_first": clip_first,
        "face_region": face.face_region(size) if info.get("face") == "detected" else None,
        "info": info,
    }
