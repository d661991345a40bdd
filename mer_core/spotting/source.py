"""Frames of a long video, streamed: a video file or a folder of frames, one frame at a time.

A long recording (minutes to hours) is never held in memory: :func:`iter_frames`
yields one grey frame at a time (decoded by OpenCV's FFmpeg back end, or read
from its image file), and every consumer keeps only what it needs (a window of
small frames, one number per frame). :func:`video_info` gives the number of
frames cheaply (a folder's listing, a container's declared count) and
:func:`decode_count` by decoding every frame, which is what the dataset check
does to find a file that is damaged or shorter than it says.

Errors are :class:`~mer_core.preprocess.video.ClipError` naming the file.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator

import cv2
import numpy as np

from mer_core.paths import natural_key
from mer_core.preprocess.video import FRAME_SUFFIXES, MAX_DECLARED_FPS, VIDEO_SUFFIXES, ClipError, open_capture


def source_kind(path: str | Path) -> str:
    """'frames' (a folder), 'video' (a file), or a ClipError naming the path."""
    path = Path(path)
    if path.is_dir():
        return "frames"
    if path.is_file():
        return "video"
    raise ClipError(f"{path}: no such video file or frame folder")


def frame_files(folder: str | Path) -> list[str]:
    """The image files of a frame folder in natural order (listing only: nothing is decoded)."""
    with os.scandir(folder) as it:
        names = [e.name for e in it if e.is_file() and Path(e.name).suffix.lower() in FRAME_SUFFIXES
                 and not e.name.startswith(".")]
    names.sort(key=natural_key)
    return [str(Path(folder) / n) for n in names]


def _open(path: Path) -> cv2.VideoCapture:
    return open_capture(path, f"{', '.join(VIDEO_SUFFIXES)} or a folder of frames")


def video_info(path: str | Path) -> tuple[int, float | None]:
    """(declared frame count, declared fps or None) of a video file, from its header; frames of a folder."""
    path = Path(path)
    if source_kind(path) == "frames":
        return len(frame_files(path)), None
    if path.stat().st_size == 0:
        raise ClipError(f"{path.name}: the file is empty (0 bytes)")
    cap = _open(path)
    try:
        n = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
    finally:
        cap.release()
    return max(n, 0), (fps if np.isfinite(fps) and 0 < fps <= MAX_DECLARED_FPS else None)


def _grey(frame: np.ndarray) -> np.ndarray:
    if frame.ndim == 3:
        frame = cv2.cvtColor(frame, cv2.COLOR_BGRA2GRAY if frame.shape[2] == 4 else cv2.COLOR_BGR2GRAY)
    if frame.dtype != np.uint8:
        frame = cv2.normalize(frame, None, 0, 255, cv2.NORM_MINMAX).astype(np.uint8)
    return frame


def iter_frames(path: str | Path, start: int = 0, stop: int | None = None) -> Iterator[tuple[int, np.ndarray]]:
    """``(index, grey uint8 frame)`` for frames ``start`` .. ``stop - 1`` (all by default), one at a time.

    A video file is decoded from its start (frames before ``start`` are grabbed,
    not converted: exact where seeking in a compressed file is not); a frame
    folder reads only the files asked for. An image that cannot be decoded is
    a ClipError naming it.
    """
    path = Path(path)
    if source_kind(path) == "frames":
        files = frame_files(path)
        for i in range(max(0, start), len(files) if stop is None else min(stop, len(files))):
            img = cv2.imread(files[i], cv2.IMREAD_GRAYSCALE)
            if img is None:
                raise ClipError(f"{Path(files[i]).name} (frame {i} of {path.name}) is not an image OpenCV can read")
            yield i, img
        return
    cap = _open(path)
    try:
        for _ in range(start):
            if not cap.grab():
                return
        i = max(0, start)
        while stop is None or i < stop:
            ok, frame = cap.read()
            if not ok or frame is None:
                return
            yield i, _grey(frame)
            i += 1
    finally:
        cap.release()


def decode_count(path: str | Path) -> int:
    """Frames that really decode (every frame read, one at a time: bounded memory); 0 for an empty file."""
    return sum(1 for _ in iter_frames(path))
