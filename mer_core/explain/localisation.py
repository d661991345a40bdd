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
  uniform map does not score by accident;
* ``rank_accuracy``: relevance rank accuracy (Arras et al. 2022) — of the K
  highest-ranked pixels (K = the AU region's size), the share inside it
  (chance = ``au_area``);
* ``roc_auc``: area under the ROC curve of the map as a score for "this
  pixel is in the AU region" (chance 0.5; ties count half);
* ``topk_iou``: intersection over union of the top-K pixels and the AU
  region (chance ``au_area / (2 - au_area)``, reported as ``iou_chance``).

Ties at the K-th value are shared out in expectation (as if broken at
random), so a flat map scores exactly at chance.

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

SCORE_COLUMNS = ("au_share", "blink_share", "pointing", "rank_accuracy", "roc_auc", "topk_iou", "au_area",
                 "iou_chance")


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
    chance = {"au_area": area, "iou_chance": area / (2 - area)}
    if total <= 0 or not au.any():
        return {**dict.fromkeys(SCORE_COLUMNS[:6], float("nan")), **chance}
    target = au
    if tolerance > 0:
        k = 2 * int(tolerance) + 1
        target = cv2.dilate(au.astype(np.uint8), np.ones((k, k), np.uint8)).astype(bool)
    top = m >= m.max() * (1 - 1e-6)
    hit = float(target[top].mean() > 0.5)
    return {"au_share": float(m[au].sum() / total), "blink_share": float(m[blink].sum() / total),
            "pointing": hit, **rank_scores(m, au), **chance}


def rank_scores(m: np.ndarray, au: np.ndarray) -> dict[str, float]:
    """Relevance rank accuracy, ROC AUC and top-K IoU of map ``m`` against bool mask ``au`` (same shape)."""
    from scipy.stats import rankdata  # lazy: loads scipy (about 1 s)

    v, inside = np.asarray(m, dtype=np.float64).ravel(), np.asarray(au, dtype=bool).ravel()
    k = n_in = int(inside.sum())
    n_out = v.size - n_in
    if k == 0:
        return {"rank_accuracy": float("nan"), "roc_auc": float("nan"), "topk_iou": float("nan")}
    kth = np.sort(v)[::-1][k - 1]
    above, tied = v > kth, v == kth
    share = (k - int(above.sum())) / int(tied.sum())  # each tied pixel is in the top K with this probability
    hits = float(inside[above].sum() + share * inside[tied].sum())
    ranks = rankdata(v)  # average ranks: ties count half in the AUC
    auc = (ranks[inside].sum() - n_in * (n_in + 1) / 2) / (n_in * n_out) if n_out else float("nan")
    return {"rank_accuracy": hits / k, "roc_auc": float(auc), "topk_iou": hits / (2 * k - hits)}


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
