"""What chance would score: a spotter's intervals placed at random, scored by the same rule.

A spotting F1 means little without a floor. :func:`chance_scores` keeps
everything a spotter decided except *where*: each predicted interval keeps its
video, its type and its length, and its onset is drawn uniformly among the
positions that keep it inside its video. The truth is left as it is and the
placements are scored with :func:`~.scoring.score_spots` (one-to-one, IoU >=
``iou``), pooled over ``draws`` independent placements.

Pooling is the mean: with the number of predictions and truths fixed, TP is
the only count that moves (FP = predictions - TP, FN = truths - TP), and
precision, recall and F1 are linear in TP, so the pooled figure of all draws
equals the mean of the draws' figures. The draws are scored in one call (each
draw's videos are told apart by a suffix), which is what keeps 200 draws fast.
:func:`run_chance` is the chance floor of a stored spotting run (the Spotting
page's and a spotting study's).
"""
from __future__ import annotations

from typing import Any, Mapping

import numpy as np
import pandas as pd

from mer_core.spotting.scoring import ScoringError, score_spots

DRAWS = 200


def chance_scores(truth: pd.DataFrame, predicted: pd.DataFrame, n_frames: Mapping[str, int], *, iou: float = 0.5,
                  draws: int = DRAWS, seed: int = 0) -> dict[str, Any]:
    """Mean precision, recall and F1 (overall, micro, macro) of ``predicted`` placed at random (module doc).

    ``n_frames`` gives each video's frame count; a predicted video missing from it, or an interval longer
    than its video, is a ScoringError naming it. Returns ``{"overall", "micro", "macro", "draws", "seed"}``,
    each figure set holding precision, recall, f1 and tp (the mean hits per draw).
    """
    if not isinstance(draws, int) or draws < 1:
        raise ScoringError(f"draws={draws!r}: expected a whole number >= 1")
    pred = predicted[["video", "onset", "offset", "type"]].reset_index(drop=True)
    videos = pred["video"].astype(str)
    unknown = sorted(set(videos) - set(map(str, n_frames)))
    if unknown:
        raise ScoringError(f"predicted video {unknown[0]!r} has no frame count; expected one for every video")
    frames = {str(k): int(v) for k, v in n_frames.items()}
    length = (pred["offset"] - pred["onset"] + 1).to_numpy(np.int64)
    room = videos.map(frames).to_numpy(np.int64) - length + 1
    if (room < 1).any():
        i = int(np.flatnonzero(room < 1)[0])
        raise ScoringError(f"predicted row {i} (video {videos[i]!r}): {length[i]} frames do not fit in the "
                           f"video's {frames[videos[i]]}")
    rng = np.random.default_rng(seed)
    onset = np.floor(rng.random((draws, len(pred))) * room).astype(np.int64)  # uniform over 0..room-1
    placed = pd.concat([pred] * draws, ignore_index=True)
    placed["onset"], placed["offset"] = onset.ravel(), (onset + length).ravel() - 1
    copies = pd.concat([truth[list(pred.columns)]] * draws, ignore_index=True)
    for copy, n in ((placed, len(pred)), (copies, len(truth))):
        copy["video"] = copy["video"].astype(str) + "\x1f" + np.repeat(np.arange(draws), n).astype(str)
    s = score_spots(copies, placed, iou=iou)
    out: dict[str, Any] = {"draws": draws, "seed": seed}
    for kind in ("overall", "micro", "macro"):
        out[kind] = {k: s[kind][k] for k in ("precision", "recall", "f1")} | {"tp": s[kind]["tp"] / draws}
    return out


def run_chance(store: Any, run_id: str, *, draws: int = DRAWS, seed: int = 0) -> dict[str, Any] | None:
    """:func:`chance_scores` of a stored spotting run's intervals (its folds stored so far), at the run's IoU;
    None while it has no stored interval."""
    run = store.get_spot_run(run_id)
    iv = store.spot_intervals(run_id)
    if iv.empty:
        return None
    frames = {v["video"]: int(v["n_frames"]) for v in run["videos"]}
    return chance_scores(iv[iv["source"] == "truth"], iv[iv["source"] == "predicted"], frames,
                         iou=float(run["config"].get("iou", 0.5)), draws=draws, seed=seed)
