"""Clips -> model inputs (N, C, H, W), one row per sample.

Minimal first version (the preprocessing issue replaces the internals, keeping
this signature): grey frames, resize, DIS flow onset->apex, strain, image
channels. No face crop, no cache yet.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import cv2
import numpy as np
import pandas as pd

from mer_core.config import PreprocessConfig
from mer_core.preprocess.channels import DIFF_GAIN, FLOW_SCALE, STRAIN_SCALE, check_channels

Progress = Callable[[int, int], None]


@dataclass
class PreparedInputs:
    x: np.ndarray  # float32 (N, C, H, W); rows of failed samples are zeros
    ok: np.ndarray  # bool (N,): False where preprocessing failed
    report: pd.DataFrame  # one row per sample: sample_id, ok, error, apex_method, ...


def prepare_inputs(
    table: pd.DataFrame,
    channels: tuple[str, ...],
    size: int,
    options: PreprocessConfig | None = None,
    *,
    workers: int = 1,
    progress: Progress | None = None,
    use_cache: bool = True,
) -> PreparedInputs:
    options = options or PreprocessConfig()
    channels = check_channels(channels)
    n = len(table)
    x = np.zeros((n, len(channels), size, size), np.float32)
    ok = np.zeros(n, bool)
    rows = []
    for i, row in enumerate(table.itertuples(index=False)):
        try:
            x[i] = _one(row, channels, size)
            ok[i] = True
            rows.append(dict(sample_id=row.sample_id, ok=True, error=""))
        except Exception as exc:  # stored per sample, never stops the dataset
            rows.append(dict(sample_id=row.sample_id, ok=False, error=f"{type(exc).__name__}: {exc}"))
        if progress:
            progress(i + 1, n)
    return PreparedInputs(x, ok, pd.DataFrame(rows))


def _grey(path: str, size: int) -> np.ndarray:
    img = cv2.imread(path, cv2.IMREAD_GRAYSCALE)
    if img is None:
        raise ValueError(f"cannot read frame {path}")
    return cv2.resize(img, (size, size), interpolation=cv2.INTER_AREA).astype(np.float32) / 255.0


def _one(row, channels: tuple[str, ...], size: int) -> np.ndarray:
    onset = _grey(row.frames[row.onset], size)
    apex = _grey(row.frames[row.apex], size)
    dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
    flow = dis.calc((onset * 255).astype(np.uint8), (apex * 255).astype(np.uint8), None)
    u, v = flow[..., 0], flow[..., 1]
    uy, ux = np.gradient(u)
    vy, vx = np.gradient(v)
    strain = np.sqrt(ux**2 + vy**2 + 0.5 * (uy + vx) ** 2)
    maps = {
        "flow_u": u / FLOW_SCALE,
        "flow_v": v / FLOW_SCALE,
        "strain": strain / STRAIN_SCALE,
        "onset": onset,
        "apex": apex,
        "diff": (apex - onset) * DIFF_GAIN,
        "magnified_apex": apex,
        "magnified_onset": onset,
    }
    return np.stack([maps[c] for c in channels]).astype(np.float32)
