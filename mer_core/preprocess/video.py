"""A user's clip -> grey frames in memory, bounded: decode, downscale, window.

:func:`decode_clip` reads a video (anything OpenCV's FFmpeg back end opens:
mp4, avi, mov, webm...), a ``.zip`` of frame images or a folder of frames,
and returns a :class:`DecodedClip` of grey uint8 frames. Memory is bounded
whatever the file holds:

* every frame is shrunk on arrival so its longer side is at most
  ``limits.max_side`` (a 4K clip never sits in memory at 4K);
* at most ``limits.max_frames`` frames are kept. A longer clip is scanned
  once at a tiny size (at most ``limits.max_scan_frames`` frames) for its
  motion, and only a window of ``max_frames`` frames centred on the largest
  motion is decoded in full (``notes`` says which frames, and why);
* a zip is read one member at a time, members larger than
  ``limits.max_member_bytes`` or a total over ``limits.max_zip_bytes``
  uncompressed are refused (zip bombs), and so is a frame whose header
  declares more than ``limits.max_pixels``, before it is decoded (image bombs).

Every unusable input raises :class:`ClipError` (a :class:`MerError`) whose
message names the file and what is wrong: not a video, no frames, a single
frame, damaged. Softer problems (a frame rate the container does not declare,
a truncated file that still gave frames, a downscale, a window) are returned
as ``notes`` and flags for the caller to show.
"""
from __future__ import annotations

import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import cv2
import numpy as np

from mer_core.errors import MerError
from mer_core.paths import natural_key

VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".webm", ".mkv", ".m4v")
FRAME_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
MIN_FRAMES = 3  # onset, a frame of motion, apex
SCAN_SIDE = 32  # side of the tiny frames of the motion scan of a long clip
MAX_DECLARED_FPS = 2000.0  # above this a container's frame rate is taken as undeclared


class ClipError(MerError, ValueError):
    """A clip cannot be analysed; the message names the file and the cause."""


@dataclass(frozen=True)
class ClipLimits:
    """How much of a clip is ever held in memory (see the module docstring)."""

    max_side: int = 640  # longer side of a kept frame, pixels
    max_frames: int = 300  # frames analysed (a window of a longer clip)
    max_scan_frames: int = 20000  # frames looked at for the window of a long clip
    max_member_bytes: int = 64 * 2**20  # one image inside a zip, uncompressed
    max_pixels: int = 40_000_000  # one frame, width x height as its header declares it (checked before decoding)
    max_zip_bytes: int = 2 * 2**30  # a zip's members together, uncompressed


@dataclass
class DecodedClip:
    """Grey uint8 frames of the analysed window and what was done to get them."""

    frames: list[np.ndarray]
    fps: float | None  # None: the file does not declare a frame rate
    source: str  # 'video' | 'zip' | 'folder'
    original_size: tuple[int, int]  # (width, height) as stored
    scale: float = 1.0  # kept frames = original * scale
    total_frames: int = 0  # frames found in the file (scanned)
    window: tuple[int, int] = (0, 0)  # [start, stop) of the kept frames in the file
    truncated: bool = False
    notes: list[str] = field(default_factory=list)

    @property
    def windowed(self) -> bool:
        return self.window != (0, self.total_frames)


def _shrink(img: np.ndarray, max_side: int) -> tuple[np.ndarray, float]:
    if img.ndim == 3:
        img = cv2.cvtColor(img, cv2.COLOR_BGRA2GRAY if img.shape[2] == 4 else cv2.COLOR_BGR2GRAY)
    h, w = img.shape[:2]
    scale = min(1.0, max_side / max(h, w))
    if scale < 1.0:
        img = cv2.resize(img, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
    if img.dtype != np.uint8:
        img = cv2.normalize(img, None, 0, 255, cv2.NORM_MINMAX).astype(np.uint8)
    return np.ascontiguousarray(img), scale


def _tiny(img: np.ndarray) -> np.ndarray:
    return cv2.resize(img, (SCAN_SIDE, SCAN_SIDE), interpolation=cv2.INTER_AREA).astype(np.float32)


def peak_window(tiny: list[np.ndarray], length: int) -> int:
    """Start of the ``length``-frame window with the most frame-to-frame motion (centred on it)."""
    n = len(tiny)
    if n <= length:
        return 0
    stack = np.stack(tiny)
    energy = np.abs(np.diff(stack, axis=0)).mean(axis=(1, 2))
    k = max(1, min(len(energy), length // 3))
    smooth = np.convolve(energy, np.ones(k) / k, mode="same")
    centre = int(np.argmax(smooth)) + 1
    return int(min(max(0, centre - length // 2), n - length))


def _check_count(path: Path, n: int, what: str) -> None:
    if n == 0:
        raise ClipError(f"{path.name}: {what} holds no frames that could be decoded (an empty or damaged file)")
    if n < MIN_FRAMES:
        raise ClipError(f"{path.name}: {what} holds {n} frame{'s' if n != 1 else ''}; a micro-expression needs "
                        f"a clip of at least {MIN_FRAMES} frames (a still image cannot show motion)")


def decode_clip(path: str | Path, limits: ClipLimits | None = None) -> DecodedClip:
    """Decode a video file, a zip of frames or a folder of frames (see the module docstring)."""
    limits = limits or ClipLimits()
    path = Path(path)
    if not path.exists():
        raise ClipError(f"{path}: no such file")
    if path.is_dir():
        files = sorted((p for p in path.iterdir() if p.suffix.lower() in FRAME_SUFFIXES), key=lambda p: natural_key(p.name))
        return _from_images(path, [(f.name, f.read_bytes) for f in files], "folder", limits)
    if path.stat().st_size == 0:
        raise ClipError(f"{path.name}: the file is empty (0 bytes)")
    if zipfile.is_zipfile(path):
        return _from_zip(path, limits)
    if path.suffix.lower() in FRAME_SUFFIXES:
        raise ClipError(f"{path.name}: a single image, not a clip; upload a video or a zip of at least "
                        f"{MIN_FRAMES} frames")
    return _from_video(path, limits)


def open_capture(path: Path, expected: str = "mp4, avi, mov or webm, or a zip of frames") -> cv2.VideoCapture:
    """An OpenCV capture of ``path``; ClipError naming the file and ``expected`` when it cannot be opened."""
    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        cap.release()
        raise ClipError(f"{path.name}: not a video OpenCV can read (expected {expected}); the file may also be "
                        "damaged or cut short")
    return cap


def _frames(cap: cv2.VideoCapture) -> Iterator[np.ndarray]:
    while True:
        ok, frame = cap.read()
        if not ok or frame is None:
            return
        yield frame


def _declared_fps(cap: cv2.VideoCapture) -> float | None:
    fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
    return fps if np.isfinite(fps) and 0.0 < fps <= MAX_DECLARED_FPS else None


def _from_video(path: Path, limits: ClipLimits) -> DecodedClip:
    cap = open_capture(path)
    try:
        fps = _declared_fps(cap)
        declared = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        kept: list[np.ndarray] = []
        tiny: list[np.ndarray] = []
        size, scale, n = (0, 0), 1.0, 0
        for frame in _frames(cap):
            if n == 0:
                size = (int(frame.shape[1]), int(frame.shape[0]))
            small, scale = _shrink(frame, limits.max_side)
            del frame
            tiny.append(_tiny(small))
            if n < limits.max_frames:
                kept.append(small)
            elif kept:
                kept = []  # too long: only the tiny scan goes on; the window is decoded again below
            n += 1
            if n >= limits.max_scan_frames:
                break
    finally:
        cap.release()
    if n == 0 and path.suffix.lower() not in VIDEO_SUFFIXES:
        raise ClipError(f"{path.name}: not a video OpenCV can read (expected mp4, avi, mov or webm, or a zip of frames)")
    _check_count(path, n, "the video")
    clip = DecodedClip(kept, fps, "video", size, scale, n, (0, n))
    if n > limits.max_frames:
        start = peak_window(tiny, limits.max_frames)
        clip.frames = _decode_range(path, start, start + limits.max_frames, limits)
        clip.window = (start, start + len(clip.frames))
    clip.truncated = declared > 0 and n < limits.max_scan_frames and n < declared - max(2, declared // 50)
    _add_notes(clip, path, declared, limits)
    return clip


def _decode_range(path: Path, start: int, stop: int, limits: ClipLimits) -> list[np.ndarray]:
    cap = open_capture(path)
    out: list[np.ndarray] = []
    try:
        for i in range(stop):
            if i < start:
                if not cap.grab():
                    break
                continue
            ok, frame = cap.read()
            if not ok or frame is None:
                break
            out.append(_shrink(frame, limits.max_side)[0])
    finally:
        cap.release()
    _check_count(path, len(out), f"frames {start}-{stop - 1} of the video")
    return out


def _add_notes(clip: DecodedClip, path: Path, declared: int, limits: ClipLimits) -> None:
    w, h = clip.original_size
    if clip.scale < 1.0:
        kw, kh = clip.frames[0].shape[1], clip.frames[0].shape[0]
        clip.notes.append(f"the clip is {w}x{h} px: frames were downscaled to {kw}x{kh} (at most {limits.max_side} px "
                          "on the longer side) to bound memory")
    if clip.fps is None:
        clip.notes.append("the file does not declare a frame rate: timings and the frame-rate check use an assumed rate")
    if clip.truncated:
        clip.notes.append(f"the file looks truncated: it declares {declared} frames but only {clip.total_frames} "
                          "could be decoded; the decoded part is analysed")
    if clip.windowed:
        a, b = clip.window
        more = " (or more: the scan stopped there)" if clip.total_frames >= limits.max_scan_frames else ""
        rate = f" ({(b - a) / clip.fps:.1f} s)" if clip.fps else ""
        clip.notes.append(f"the clip has {clip.total_frames} frames{more}; only frames {a}-{b - 1}{rate}, the window "
                          f"with the most motion, are analysed (at most {limits.max_frames} frames)")


_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}  # JPEG start-of-frame


def image_header_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) an image file declares in its header (PNG, JPEG, BMP, TIFF), read without
    decoding a pixel; None when the format is not one of these or the header is cut short."""
    try:
        if data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR":
            return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
        if data[:2] == b"BM" and len(data) >= 26:
            return abs(int.from_bytes(data[18:22], "little", signed=True)), abs(int.from_bytes(data[22:26], "little", signed=True))
        if data[:4] in (b"II*\0", b"MM\0*"):
            return _tiff_size(data)
        if data[:2] == b"\xff\xd8":
            i = 2
            while i + 4 <= len(data):
                if data[i] != 0xFF:
                    return None
                marker = data[i + 1]
                if marker == 0xFF:  # fill byte
                    i += 1
                    continue
                if marker in (0x01, *range(0xD0, 0xDA)):  # markers without a length
                    i += 2
                    continue
                if marker in _SOF and i + 9 <= len(data):
                    return int.from_bytes(data[i + 7:i + 9], "big"), int.from_bytes(data[i + 5:i + 7], "big")
                i += 2 + int.from_bytes(data[i + 2:i + 4], "big")
    except (IndexError, ValueError):
        return None
    return None


def _tiff_size(data: bytes) -> tuple[int, int] | None:
    order = "little" if data[:2] == b"II" else "big"
    ifd = int.from_bytes(data[4:8], order)
    count = int.from_bytes(data[ifd:ifd + 2], order)
    size: dict[int, int] = {}
    for k in range(count):
        entry = data[ifd + 2 + 12 * k: ifd + 14 + 12 * k]
        tag, kind = int.from_bytes(entry[0:2], order), int.from_bytes(entry[2:4], order)
        if tag in (256, 257):
            size[tag] = int.from_bytes(entry[8:10] if kind == 3 else entry[8:12], order)
    return (size[256], size[257]) if len(size) == 2 else None


def _from_zip(path: Path, limits: ClipLimits) -> DecodedClip:
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise ClipError(f"{path.name}: a damaged zip file ({exc})") from None
    with zf:
        members = [m for m in zf.infolist() if not m.is_dir() and Path(m.filename).suffix.lower() in FRAME_SUFFIXES
                   and not Path(m.filename).name.startswith(".")]
        members.sort(key=lambda m: natural_key(m.filename))
        big = next((m for m in members if m.file_size > limits.max_member_bytes), None)
        if big is not None:
            raise ClipError(f"{path.name}: {big.filename} is {big.file_size / 2**20:.0f} MB uncompressed; frames of "
                            f"at most {limits.max_member_bytes / 2**20:.0f} MB are accepted")
        total = sum(m.file_size for m in members[: limits.max_scan_frames])
        if total > limits.max_zip_bytes:
            raise ClipError(f"{path.name}: its frames hold {total / 2**30:.1f} GB uncompressed; at most "
                            f"{limits.max_zip_bytes / 2**30:.1f} GB are accepted")

        def reader(m: zipfile.ZipInfo):
            def read() -> bytes:
                try:
                    return zf.read(m)
                except (zipfile.BadZipFile, OSError, EOFError) as exc:
                    raise ClipError(f"{path.name}: cannot read {m.filename} from the zip ({exc})") from None
            return read

        return _from_images(path, [(m.filename, reader(m)) for m in members], "zip", limits)


def _from_images(path: Path, items: list, source: str, limits: ClipLimits) -> DecodedClip:
    """Frames from (name, read-bytes) pairs: a tiny scan when too many, then the window in full."""
    items = items[: limits.max_scan_frames]
    what = "the zip" if source == "zip" else "the folder"
    _check_count(path, len(items), what)

    def load(name: str, read) -> np.ndarray:
        data = read()
        declared = image_header_size(data[:65536])
        if declared and declared[0] * declared[1] > limits.max_pixels:
            w, h = declared
            raise ClipError(f"{path.name}: {name} declares {w}x{h} px ({w * h / 1e6:.0f} megapixels) in its header; "
                            f"frames of at most {limits.max_pixels / 1e6:.0f} megapixels are accepted "
                            "(refused before decoding)")
        img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
        if img is None:
            raise ClipError(f"{path.name}: {name} is not an image OpenCV can read")
        return img

    first = load(*items[0])
    size = (int(first.shape[1]), int(first.shape[0]))
    start = 0
    if len(items) > limits.max_frames:
        tiny = [_tiny(_shrink(load(*it), limits.max_side)[0]) for it in items]
        start = peak_window(tiny, limits.max_frames)
    frames, scale = [], 1.0
    for name, read in items[start : start + limits.max_frames]:
        img = load(name, read)
        if (int(img.shape[1]), int(img.shape[0])) != size:
            raise ClipError(f"{path.name}: {name} is {img.shape[1]}x{img.shape[0]} px but the first frame is "
                            f"{size[0]}x{size[1]}; all frames of a clip must have one size")
        small, scale = _shrink(img, limits.max_side)
        frames.append(small)
    clip = DecodedClip(frames, None, source, size, scale, len(items), (start, start + len(frames)))
    _add_notes(clip, path, 0, limits)
    return clip
