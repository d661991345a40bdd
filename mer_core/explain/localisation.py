"""Localisation scores: does a map point at the motion that really happened?

Real datasets never say which pixels moved; the synthetic set does (per-clip
``.npz`` masks: ``au`` = skin moved by the expression, ``blink`` = eye region
of a distractor blink, at frame resolution). For a non-negative map ``m``
(an attribution's ``combined`` map, or an attention map):

* ``au_share``: sum(m inside AU) / sum(m) — share of the positive mass on the
  true action-unit regions (1 = all of it; a uniform map scores the AU
  regions' area fraction, the chance level reported as ``au_area``);
* ``blink_share``: the same on the blink region (distractor motion; lower is
  better);
* ``pointing``: pointing-game hit (Zhang et al. 2016) — is the maximum inside
  the AU region (dilated by ``tolerance`` px)? When several pixels tie for the
  maximum (flat maps), it is a hit only if most of them are inside, so a
  uniform map does not score by accident.

Masks are resized to the map's size (area interpolation, kept where at least
half a pixel is covered). This assumes the model input is the whole frame
(synthetic clips are stored pre-cropped, so no face crop moves them).
"""
from __future__ import annotations

from typing import Any, Iterable

import cv2
import numpy as np
import pandas as pd

from mer_core.errors import MerError

SCORE_COLUMNS = ("au_share", "blink_share", "pointing", "au_area")


def resize_mask(mask: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Bool mask resized to ``shape`` (H, W): area coverage >= 0.5."""
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise MerError(f"localisation: a mask must be 2-D (H, W), got shape {mask.shape}")
    if mask.shape == tuple(shape):
        return mask.astype(bool)
    cover = cv2.resize(mask.astype(np.float32), (int(shape[1]), int(shape[0])), interpolation=cv2.INTER_AREA)
    return cover >= 0.5


def score_map(attr: np.ndarray, au_mask: np.ndarray, blink_mask: np.ndarray | None = None, *,
              tolerance: int = 0) -> dict[str, float]:
    """Scores of one (H, W) map against the true masks (see module doc)."""
    m = np.asarray(attr, dtype=np.float64)
    if m.ndim != 2:
        raise MerError(f"localisation: expected a 2-D map (H, W), got shape {m.shape}")
    m = np.nan_to_num(np.clip(m, 0, None))
    au = resize_mask(au_mask, m.shape)
    blink = resize_mask(blink_mask, m.shape) if blink_mask is not None else np.zeros_like(au)
    total = m.sum()
    area = float(au.mean())
    if total <= 0 or not au.any():
        return {"au_share": float("nan"), "blink_share": float("nan"), "pointing": float("nan"), "au_area": area}
    target = au
    if tolerance > 0:
        k = 2 * int(tolerance) + 1
        target = cv2.dilate(au.astype(np.uint8), np.ones((k, k), np.uint8)).astype(bool)
    top = m >= m.max() * (1 - 1e-6)
    hit = float(target[top].mean() > 0.5)
    return {"au_share": float(m[au].sum() / total), "blink_share": float(m[blink].sum() / total),
            "pointing": hit, "au_area": area}


def aggregate_scores(rows: Iterable[dict[str, Any]], by: tuple[str, ...] = ("model", "method")) -> pd.DataFrame:
    """Mean scores per group, with n (maps scored) and empty (all-zero maps, left out of the means)."""
    df = pd.DataFrame(list(rows))
    if df.empty:
        return pd.DataFrame(columns=[*by, *SCORE_COLUMNS, "n", "n_empty"])
    cols = [c for c in SCORE_COLUMNS if c in df]
    groups = df.groupby(list(by), sort=True)
    out = groups[cols].mean().reset_index()
    # n = maps scored; empty = all-zero maps (e.g. Grad-CAM whose ReLU removed everything), left out of the means
    out["n"] = groups["au_share"].count().to_numpy()
    out["n_empty"] = (groups.size() - groups["au_share"].count()).to_numpy()
    return out
