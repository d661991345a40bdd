"""Content-addressed cache of preprocessed samples.

One entry = one sample under one set of options: a ``.npy`` file holding
the stacked channels ``x`` (C, H, W) float32 (``np.load`` reads it as is),
followed by a trailer that ``np.load`` ignores: the sample's report fields
and a checksum of ``x`` as JSON, the JSON's length and a magic tag. Reading an
entry is one ``read()`` and a ``frombuffer`` (a zip-based .npz costs several
times more, and a cache hit must be much cheaper than DIS flow itself).
The file name is the key:

    key = sha256(sample identity, source file fingerprints, channels, size,
                 every transform's name + parameters + code version)

Fingerprints are (path, size, mtime_ns) of every source file read, so an
edited frame, a re-annotated onset or a new parameter all give a new key and
the stale entry is simply never asked for again. Writes go to a temporary
file in the same folder then ``os.replace`` (atomic on POSIX), so a crash
leaves either the old entry or none; a truncated or otherwise corrupt entry
(no trailer, wrong shape/dtype/size, checksum mismatch) is treated as a miss,
deleted, and recomputed, never served.
"""
from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import re
import tempfile
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from mer_core.paths import preprocessed_dir

CACHE_FORMAT = "npy-trailer-3"  # 3: the trailer records its key and sample id
_MAGIC = b"MERCACHE"


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
    """Sum of the array's 32-bit words (mod 2**64): any flipped bit changes it.

    Ten times cheaper than CRC-32 here, and truncation is caught by the size
    check anyway; this guards against damaged data of the right length.
    """
    return int(np.ascontiguousarray(x).reshape(-1).view(np.uint32).sum(dtype=np.uint64))


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name) or "dataset"


def entry_path(key: str, dataset: str = "") -> Path:
    """Where a key lives: ``<preprocessed>/<dataset>/<key[:2]>/<key>.npy``."""
    return preprocessed_dir() / _safe(dataset or "misc") / key[:2] / f"{key}.npy"


def save(path: Path, x: np.ndarray, meta: dict[str, Any], *, sample_id: str = "") -> None:
    """Write an entry atomically (temporary file in the same folder + os.replace).

    The trailer records the entry's key (its file name) and the sample id, so
    an entry copied or moved to another name is a miss on load, never served.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    x = np.ascontiguousarray(x, np.float32)
    trailer = json.dumps({"format": CACHE_FORMAT, "key": path.stem, "sample_id": str(sample_id),
                          "crc": _checksum(x), "meta": meta}, default=str).encode()
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".npy", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            np.lib.format.write_array(fh, x, allow_pickle=False)
            fh.write(trailer)
            fh.write(len(trailer).to_bytes(8, "little"))
            fh.write(_MAGIC)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def load(path: Path, shape: tuple[int, ...], sample_id: str | None = None) -> tuple[np.ndarray, dict[str, Any]] | None:
    """Read an entry; None when absent, corrupt or misplaced (such a file is removed).

    Misplaced: its recorded key is not its file name, or (when ``sample_id``
    is given) it was written for another sample.
    """
    try:
        with open(path, "rb") as fh:
            data = fh.read()
    except OSError:
        return None
    try:
        if data[-8:] != _MAGIC:
            raise ValueError("no trailer: truncated or not a cache entry")
        n = int.from_bytes(data[-16:-8], "little")
        info = json.loads(data[-16 - n : -16]) if 0 < n < len(data) else {}
        if info.get("format") != CACHE_FORMAT:
            raise ValueError("format")
        if info.get("key") != path.stem or (sample_id is not None and info.get("sample_id") != str(sample_id)):
            raise ValueError("misplaced entry: written under another key or for another sample")
        head = io.BytesIO(data[:4096])
        version = np.lib.format.read_magic(head)
        if version not in ((1, 0), (2, 0)):
            raise ValueError(f"npy version {version}")
        reader = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        got_shape, fortran, dtype = reader(head)
        start = head.tell()
        size = int(np.prod(got_shape)) * 4
        if tuple(got_shape) != tuple(shape) or fortran or dtype != np.float32 or start + size != len(data) - 16 - n:
            raise ValueError("shape/dtype/size mismatch")
        x = np.frombuffer(data, np.float32, count=size // 4, offset=start).reshape(got_shape)
        if _checksum(x) != int(info["crc"]):
            raise ValueError("checksum mismatch")
        return x, info["meta"]
    except Exception:  # truncated, flipped bits, foreign file: all mean "recompute"
        with contextlib.suppress(OSError):
            path.unlink()
        return None
