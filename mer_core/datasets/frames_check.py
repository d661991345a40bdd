"""Decode a dataset's frames and say what is wrong with them (``mer datasets check``).

Indexing only looks at file names (and, when verifying, the key frames). This
pass opens the frames themselves: every frame of every clip, or with
``quick`` the onset, apex and offset plus a few frames between them. It flags
zero-byte files, files that are not images, truncated JPEG/PNG files (their
end marker is missing even when OpenCV decodes the top part), 1x1 images,
clips whose frames change size, and clips whose onset, apex and offset are the
same frame.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import cv2
import numpy as np
import pandas as pd

from mer_core.datasets._common import Problems

QUICK_BETWEEN = 3  # frames decoded between the key frames with --quick


def _frames_to_read(frames: tuple[str, ...], onset: int, apex: int, offset: int, quick: bool) -> list[int]:
    if not quick:
        return list(range(len(frames)))
    keys = [i for i in (onset, apex, offset) if 0 <= i < len(frames)]
    lo, hi = (min(keys), max(keys)) if keys else (0, len(frames) - 1)
    between = np.linspace(lo, hi, QUICK_BETWEEN + 2).round().astype(int).tolist()
    return sorted(set(keys) | set(between) | {0, len(frames) - 1})


def frame_problem(path: Path) -> tuple[str | None, tuple[int, int] | None]:
    """(what is wrong with one frame file or None, its (height, width) when it decodes)."""
    try:
        size = path.stat().st_size
    except OSError:
        return "missing", None
    if size == 0:
        return "zero-byte file", None
    with open(path, "rb") as fh:
        head = fh.read(8)
        fh.seek(max(0, size - 12))
        tail = fh.read()
    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if img is None:
        kind = "PNG" if head.startswith(b"\x89PNG") else "JPEG" if head.startswith(b"\xff\xd8") else ""
        return (f"truncated or damaged {kind} (cannot be decoded)" if kind
                else "not an image (cannot be decoded)"), None
    if head.startswith(b"\xff\xd8") and b"\xff\xd9" not in tail:
        return "truncated JPEG (no end marker)", img.shape[:2]
    if head.startswith(b"\x89PNG") and b"IEND" not in tail:
        return "truncated PNG (no IEND chunk)", img.shape[:2]
    if img.shape[0] <= 1 or img.shape[1] <= 1:
        return f"a {img.shape[1]}x{img.shape[0]} image", img.shape[:2]
    return None, img.shape[:2]


def check_frames(table: pd.DataFrame, problems: Problems, *, quick: bool = False,
                 progress: Callable[[int, int], None] | None = None) -> int:
    """Decode the clips' frames; add one problem per bad clip aspect. Returns the frames decoded."""
    decoded = 0
    rows = [r for r in table.itertuples(index=False) if len(getattr(r, "frames", ()) or ())]
    for n, row in enumerate(rows, start=1):
        frames = tuple(row.frames)
        onset, apex, offset = int(row.onset), int(row.apex), int(row.offset)
        if len(frames) > 1 and onset == apex == offset:
            problems.add("warning", "annotation", f"{row.sample_id}: onset = apex = offset = frame {onset}: "
                         "no motion between onset and apex", sample_id=row.sample_id)
        sizes: dict[tuple[int, int], int] = {}
        for i in _frames_to_read(frames, onset, apex, offset, quick):
            what, shape = frame_problem(Path(frames[i]))
            decoded += 1
            if what:
                problems.add("error", "corrupt_image", f"{row.sample_id}: frame {i} {frames[i]}: {what}",
                             file=frames[i], sample_id=row.sample_id)
            if shape is not None:
                sizes.setdefault(shape, i)
        if len(sizes) > 1:
            seen = ", ".join(f"{w}x{h} (from frame {i})" for (h, w), i in sizes.items())
            problems.add("error", "mixed_size", f"{row.sample_id}: frames of different sizes: {seen}",
                         sample_id=row.sample_id)
        if progress:
            progress(n, len(rows))
    return decoded
