"""Content-addressed cache of preprocessed samples.

One entry = one sample under one set of options: an uncompressed ``.npz``
holding the stacked channels ``x`` (C, H, W) float32, a checksum of ``x``
and the sample's report fields (JSON). The file name is the key:

    key = sha256(sample identity, source file fingerprints, channels, size,
                 every transform's name + parameters + code version)

Fingerprints are (path, size, mtime_ns) of every source file read, so an
edited frame, a re-annotated onset or a new parameter all give a new key and
the stale entry is simply never asked for again. Writes go to a temporary
file in the same folder then ``os.replace`` (atomic on POSIX), so a crash
leaves either the old entry or none; a truncated or otherwise corrupt entry
(unreadable zip, wrong shape/dtype, checksum mismatch) is treated as a miss,
deleted, and recomputed, never served.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
import zlib
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from mer_core.paths import preprocessed_dir

CACHE_FORMAT = "npz-1"


def fingerprint(paths: Iterable[str]) -> list[tuple[str, int, int]]:
    """(path, size, mtime_ns) per file; a missing file gets (path, -1, -1).

    A missing file is not an error here: the sample will fail when it is read
    and the failure is reported there, not cached.
    """
    out = []
    for p in paths:
        try:
            st = os.stat(p)
            out.append((str(p), st.st_size, st.st_mtime_ns))
        except OSError:
            out.append((str(p), -1, -1))
    return out


def make_key(parts: dict[str, Any]) -> str:
    """Stable hex key of a JSON-able description (sorted keys, no whitespace)."""
    canonical = json.dumps(parts, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:32]


def _checksum(x: np.ndarray) -> int:
    return zlib.crc32(np.ascontiguousarray(x).view(np.uint8).reshape(-1).data)


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name) or "dataset"


def entry_path(key: str, dataset: str = "", root: Path | None = None) -> Path:
    """Where a key lives: ``<preprocessed>/<dataset>/<key[:2]>/<key>.npz``."""
    base = root if root is not None else preprocessed_dir()
    return base / _safe(dataset or "misc") / key[:2] / f"{key}.npz"


def save(path: Path, x: np.ndarray, meta: dict[str, Any]) -> None:
    """Write an entry atomically (temporary file + os.replace)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    x = np.ascontiguousarray(x, np.float32)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".npz", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            np.savez(
                fh,
                x=x,
                crc=np.array([_checksum(x)], np.int64),
                meta=np.array(json.dumps(meta, default=str)),
                fmt=np.array(CACHE_FORMAT),
            )
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def load(path: Path, shape: tuple[int, ...]) -> tuple[np.ndarray, dict[str, Any]] | None:
    """Read an entry; None when absent or corrupt (a corrupt file is removed)."""
    if not path.exists():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            if str(z["fmt"]) != CACHE_FORMAT:
                raise ValueError("format")
            x = z["x"]
            crc = int(z["crc"][0])
            meta = json.loads(str(z["meta"]))
        if x.shape != tuple(shape) or x.dtype != np.float32 or _checksum(x) != crc:
            raise ValueError("shape/dtype/checksum mismatch")
        return x, meta
    except Exception:  # truncated zip, bad JSON, mismatch: all mean "recompute"
        try:
            path.unlink()
        except OSError:
            pass
        return None
