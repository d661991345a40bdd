"""The per-sample task of ``prepare_inputs``, in a module light enough for pool workers.

Pool workers import this module, not :mod:`.pipeline`, so they never load
pandas; the forkserver preloads it, so each worker starts already
initialised instead of importing OpenCV and NumPy again (imports dominate
the start of a pool on a busy machine).
"""
from __future__ import annotations

import time
import warnings
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from mer_core.config import PreprocessConfig
from mer_core.preprocess import cache
from mer_core.preprocess.sample import SampleError, process_sample


def init_worker() -> None:
    """Pool initializer: one OpenCV thread per worker (the pool is the parallelism)."""
    cv2.setNumThreads(1)


def run_one(
    i: int, row: dict[str, Any], channels: tuple[str, ...], size: int, options: PreprocessConfig, entry: str | None
) -> tuple[int, np.ndarray | None, dict[str, Any]]:
    """Process one sample (in a worker or in-process) and cache it; never raises.

    Returns (row index, array or None, report facts incl. ok/error/seconds).
    """
    t0 = time.perf_counter()
    sid = row.get("sample_id", f"row {i}")
    try:
        x, info = process_sample(row, channels, size, options)
        info.update(ok=True, error="")
        if entry is not None:
            try:
                cache.save(Path(entry), x, info, sample_id=str(sid))
            except OSError as exc:  # a full disk must not fail the sample
                warnings.warn(f"cannot write cache entry {entry}: {exc}", stacklevel=1)
    except SampleError as exc:
        msg = str(exc)
        x, info = None, {"ok": False, "error": msg if msg.startswith(f"{sid}:") else f"{sid}: {msg}"}
    except Exception as exc:  # cv2.error, MemoryError...: stored, never raised
        x, info = None, {"ok": False, "error": f"{sid}: {type(exc).__name__}: {exc}"}
    info["seconds"] = round(time.perf_counter() - t0, 4)
    return i, x, info
