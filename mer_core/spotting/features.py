"""Per-frame features of a long video, computed in one streamed pass and cached.

Three feature sets, each one number (or one short vector) per frame of the video:

* ``curves``: the motion-curve method of :mod:`mer_core.preprocess.spotting`
  over sliding windows. The face crop (found on the first frame, or the whole
  frame for crops) is shrunk to ``SPOT_SIZE`` px; frames are taken at about
  :data:`MICRO_RATE` per second for the *micro* curve and :data:`MACRO_RATE`
  for the *macro* curve; windows of :data:`MICRO_WINDOW_S` / :data:`MACRO_WINDOW_S`
  seconds slide by a quarter of their length. In each window the two-reference
  cell vote (the window's first and last frames taken as neutral) gives every
  frame the moving cells' mean difference in grey levels (``relative=False``:
  comparable between windows); a frame keeps its largest value over the
  windows holding it. The eye regions (found on the first frame, as the clip
  spotter finds them) are always left out: a person blinks every few seconds,
  so nearly every window holds a blink, and the clip spotter's per-window
  blink test would cost more than the rest of the curve. A motion that comes
  and goes inside a window scores; a head shift that stays does not (it
  differs from one reference only). Head motion is taken out first: a
  :class:`~mer_core.preprocess.stabilise.Stabiliser` follows the head
  through the analysed frames (one shift estimate a frame, against a
  keyframe renewed every second or so) and every frame is moved back onto
  the first frame's position, so a sway or a quick head shift is not an
  expression and the eye regions stay on the eyes; in each window the
  border that moving back filled from beyond the crop is left out.
* ``raw_curves``: the same without taking the head motion out (the method
  before stabilisation, kept for comparison: ``SpotConfig(stabilise=False)``).
* ``flow``: optical flow (Farneback, on the ``SPOT_SIZE`` crops) from the
  frame ``k`` steps back to each frame, at the micro rate with ``k`` =
  :data:`MICRO_SPAN_S` and at the macro rate with ``k`` = :data:`MACRO_SPAN_S`;
  the median flow (head motion) is removed and the magnitude pooled over a
  4 x 4 grid: 32 numbers per frame, for the learned spotter.

Memory is bounded: a window of small frames at a time, never the video. The
arrays are cached under ``cache/spotting/features/`` by the video's path,
size and modification time and the feature version; values at the slower
rates are spread to every frame by linear interpolation.
"""
from __future__ import annotations

import hashlib
import os
from collections import deque
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import cv2
import numpy as np

from mer_core.paths import cache_root
from mer_core.preprocess import face as face_mod
from mer_core.preprocess.spotting import SPOT_SIZE, find_eyes, motion_curve, small_frames
from mer_core.preprocess.stabilise import Stabiliser, align, border_mask
from mer_core.spotting.source import iter_frames

FEATURE_VERSION = "feat-1"
KIND_VERSION = {"curves": "stabilised-1"}  # a kind's own version, bumped when only its values change
KINDS = ("curves", "raw_curves", "flow")
CURVE_KINDS = ("curves", "raw_curves")
MICRO_RATE, MACRO_RATE = 30.0, 10.0  # analysis frames per second (at most the video's rate)
MICRO_WINDOW_S, MACRO_WINDOW_S = 1.0, 5.0  # sliding-window lengths, seconds
MICRO_SPAN_S, MACRO_SPAN_S = 0.2, 0.6  # flow from this long before each frame
GRID = 4  # flow magnitude pooled over GRID x GRID cells
FLOW_DIMS = 2 * GRID * GRID


def crop_frames(path: str, cropped: bool, start: int = 0, stop: int | None = None
                ) -> Iterator[tuple[int, np.ndarray]]:
    """``(index, SPOT_SIZE grey uint8 face crop)`` of a video, streamed; the crop is fixed on the first frame."""
    crop = None
    for i, frame in iter_frames(path, start, stop):
        if crop is None:
            crop = face_mod.find_crop(frame, cropped=cropped)
        yield i, face_mod.apply_crop(frame, crop, SPOT_SIZE)


class WindowCurve:
    """Streamed sliding-window motion curve over frames fed one at a time (see the module docstring)."""

    def __init__(self, window: int, eyes: np.ndarray | None) -> None:
        self.window = max(3, window)
        self.hop = max(1, self.window // 4)
        self.eyes = eyes
        self.buffer: deque[np.ndarray] = deque(maxlen=self.window)
        self.shifts: deque[np.ndarray] = deque(maxlen=self.window)
        self.values: list[float] = []
        self.seen = 0

    def push(self, small: np.ndarray, shift: np.ndarray | None = None) -> None:
        """The next analysed frame; ``shift``: how far it was moved back (stabilised frames), for the border."""
        self.buffer.append(small)
        self.shifts.append(np.zeros(2, np.float32) if shift is None else shift)
        self.values.append(0.0)
        self.seen += 1
        if self.seen >= self.window and (self.seen - self.window) % self.hop == 0:
            self._window(self.seen - self.window)

    def _curve(self) -> np.ndarray:
        stack = np.stack(self.buffer)
        border = border_mask(np.stack(self.shifts), stack.shape[1:])
        exclude = self.eyes if not border.any() else border if self.eyes is None else self.eyes | border
        return motion_curve(stack, 0, -1, exclude=exclude, relative=False)

    def _window(self, first: int) -> None:
        curve = self._curve()
        seg = self.values[first:first + len(curve)]
        self.values[first:first + len(curve)] = np.maximum(seg, curve).tolist()

    def finish(self) -> np.ndarray:
        if self.seen < self.window and self.seen >= 3:  # a video shorter than one window: one window
            self.values = self._curve().tolist()
        elif self.seen >= self.window and (self.seen - self.window) % self.hop:
            self._window(self.seen - self.window)  # the tail
        return np.asarray(self.values, np.float32)


def flow_grid(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """GRID x GRID mean flow magnitude from ``a`` to ``b`` (uint8 crops), the median (head) motion removed."""
    flow = cv2.calcOpticalFlowFarneback(a, b, None, 0.5, 2, 9, 3, 5, 1.1, 0)
    flow -= np.median(flow.reshape(-1, 2), axis=0)
    mag = np.sqrt((flow ** 2).sum(-1))
    h, w = mag.shape
    return mag[: h // GRID * GRID, : w // GRID * GRID].reshape(GRID, h // GRID, GRID, w // GRID).mean(axis=(1, 3))


class FlowSpan:
    """Streamed flow features: frame ``k`` analysis steps back -> this one (uint8 crops fed one at a time)."""

    def __init__(self, k: int) -> None:
        self.k = max(1, k)
        self.buffer: deque[np.ndarray] = deque(maxlen=self.k + 1)
        self.rows: list[np.ndarray] = []

    def push(self, crop: np.ndarray) -> None:
        self.buffer.append(crop)
        if len(self.buffer) <= self.k:
            self.rows.append(np.zeros(GRID * GRID, np.float32))
        else:
            self.rows.append(flow_grid(self.buffer[0], self.buffer[-1]).reshape(-1).astype(np.float32))

    def finish(self) -> np.ndarray:
        return np.stack(self.rows) if self.rows else np.zeros((0, GRID * GRID), np.float32)


def _spread(values: np.ndarray, step: int, n: int) -> np.ndarray:
    """Values at frames 0, step, 2*step, ... spread to all ``n`` frames (linear interpolation)."""
    if step == 1 or len(values) == 0:
        return values[:n] if len(values) >= n else np.pad(values, [(0, n - len(values))] + [(0, 0)] * (values.ndim - 1))
    at = np.arange(len(values)) * step
    frames = np.arange(n)
    if values.ndim == 1:
        return np.interp(frames, at, values).astype(np.float32)
    return np.stack([np.interp(frames, at, values[:, j]) for j in range(values.shape[1])], 1).astype(np.float32)


def compute(frames: Iterable[tuple[int, np.ndarray]], fps: float, kind: str,
            progress: Callable[[int], None] | None = None) -> dict[str, np.ndarray]:
    """The ``kind`` features of a stream of ``(index, SPOT_SIZE crop)`` (see the module docstring)."""
    if kind not in KINDS:
        raise ValueError(f"unknown feature kind {kind!r}; expected one of {KINDS}")
    # every how many frames the micro and the macro analyses look (1 at or below their rates)
    r_mi, r_ma = (max(1, int(round(fps / rate))) for rate in (MICRO_RATE, MACRO_RATE))
    win_mi = int(round(MICRO_WINDOW_S * fps / r_mi))
    win_ma = int(round(MACRO_WINDOW_S * fps / r_ma))
    micro = macro = None
    stab = Stabiliser() if kind == "curves" else None
    n = 0
    for i, crop in frames:
        if micro is None:
            if kind in CURVE_KINDS:
                eyes = find_eyes(crop).mask
                micro, macro = WindowCurve(win_mi, eyes), WindowCurve(win_ma, eyes)
            else:
                micro = FlowSpan(int(round(MICRO_SPAN_S * fps / r_mi)))
                macro = FlowSpan(int(round(MACRO_SPAN_S * fps / r_ma)))
        if kind in CURVE_KINDS:
            if i % r_mi == 0 or i % r_ma == 0:
                small, shift = small_frames([crop])[0], None
                if stab is not None:  # moved back onto the first frame's head position
                    shift = stab.push(small)
                    small = align(small[None], shift[None])[0]
                if i % r_mi == 0:
                    micro.push(small, shift)
                if i % r_ma == 0:
                    macro.push(small, shift)
        else:
            if i % r_mi == 0:
                micro.push(crop)
            if i % r_ma == 0:
                macro.push(crop)
        n = i + 1
        if progress is not None and n % 500 == 0:
            progress(n)
    if micro is None:
        return {"micro": np.zeros(0, np.float32), "macro": np.zeros(0, np.float32)} if kind in CURVE_KINDS \
            else {"flow": np.zeros((0, FLOW_DIMS), np.float32)}
    a, b = _spread(micro.finish(), r_mi, n), _spread(macro.finish(), r_ma, n)
    if kind in CURVE_KINDS:
        return {"micro": a, "macro": b}
    return {"flow": np.concatenate([a, b], axis=1).astype(np.float32)}


def features_dir() -> Path:
    path = cache_root() / "spotting" / "features"
    path.mkdir(parents=True, exist_ok=True)
    return path


def cache_key(video: dict[str, Any], kind: str) -> str:
    path = Path(str(video["path"]))
    try:
        st = path.stat()
        stamp = (st.st_size, st.st_mtime_ns) if path.is_file() else (len(os.listdir(path)), st.st_mtime_ns)
    except OSError:
        stamp = (0, 0)
    version = FEATURE_VERSION + (f"+{KIND_VERSION[kind]}" if kind in KIND_VERSION else "")
    blob = f"{version}|{kind}|{path.resolve()}|{stamp}|{float(video['fps']):g}|{bool(video.get('cropped'))}"
    return hashlib.sha1(blob.encode()).hexdigest()[:20]


def video_features(video: dict[str, Any], kind: str, *, progress: Callable[[int], None] | None = None
                   ) -> dict[str, np.ndarray]:
    """The cached ``kind`` features of one video row (computed once, streamed)."""
    path = features_dir() / f"{cache_key(video, kind)}.npz"
    if path.is_file():
        try:
            with np.load(path, allow_pickle=False) as data:
                return {k: data[k] for k in data.files}
        except (OSError, ValueError):
            path.unlink(missing_ok=True)  # a damaged cache file is recomputed
    out = compute(crop_frames(str(video["path"]), bool(video.get("cropped"))), float(video["fps"]), kind, progress)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp.npz")
    np.savez(tmp, **out)
    os.replace(tmp, path)
    return out
