"""Spotters: a score per frame and type, then peaks -> intervals with parameters chosen on training videos.

Every spotter gives each frame of a video one score per type (micro, macro).
Intervals come from the scores by one rule, :func:`spot_intervals`: the peaks
of the score (``scipy.signal.find_peaks``) at least ``threshold`` high and at
least ``distance`` frames apart; each peak is an apex, the interval runs from
``before`` frames ahead of it to ``after`` frames behind it (the training
intervals' mean onset-to-apex and apex-to-offset durations of the type).

:func:`choose_params` picks ``threshold`` and ``distance`` per type by grid
search maximising the type's F1 (MER Bench's one-to-one scorer) over the
training videos it is given, and nothing else: the LOSO in :mod:`.loso` gives
it the training subjects' videos only, and stores what it chose per fold.

* :class:`MotionCurveSpotter`: the motion-curve method of
  :mod:`mer_core.preprocess.spotting` over sliding windows
  (:mod:`.features`, ``curves``: head motion taken out first; ``raw_curves``
  with ``stabilise=False``); nothing is learned, the score is the curve.
* :class:`LearnedSpotter`: a frame-score regressor per type on optical-flow
  features (:mod:`.features`, ``flow``, with the frames a span before and after
  as context), trained per fold on the training subjects' videos with soft
  labels in the spirit of the field's soft-labelling approaches: a frame's
  target is a Gaussian of its distance to the nearest apex of the type
  (sigma: a quarter of the interval's length), 0 far from any. scikit-learn's
  ``HistGradientBoostingRegressor`` (small, CPU-fast; one thread: its OpenMP
  threads only wait on each other on a shared 2-core machine); frames far from
  every apex are subsampled for training (seeded).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy.signal import find_peaks
from threadpoolctl import threadpool_limits

from mer_core.errors import MerError
from mer_core.spotting.features import MICRO_SPAN_S, video_features
from mer_core.spotting.scoring import score_spots
from mer_core.spotting.tables import TYPES

SPOTTERS = ("motion_curve", "learned")
# used when the training videos hold no interval of a type: a typical micro- (0.5 s) and macro-expression (2 s)
FALLBACK_SECONDS = {"micro": (0.15, 0.2), "macro": (0.7, 1.0)}
THRESHOLD_QUANTILES = np.linspace(0.5, 0.995, 24)  # of the training peaks' heights
DISTANCE_FACTORS = (1.0, 2.0, 4.0)  # times the type's mean interval length
PRED_COLUMNS = ["video", "onset", "apex", "offset", "type", "score"]


@dataclass(frozen=True)
class TypeParams:
    """What a fold chose for one type: peak threshold and distance, interval extent, training F1."""

    threshold: float
    distance: int
    before: int
    after: int
    train_f1: float = math.nan
    train_intervals: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in asdict(self).items()}


def spot_intervals(video: str, scores: dict[str, np.ndarray], params: dict[str, TypeParams]) -> pd.DataFrame:
    """Intervals of one video from its per-type scores (see the module docstring)."""
    rows = []
    for kind in TYPES:
        s, p = scores.get(kind), params.get(kind)
        if s is None or p is None or len(s) == 0:
            continue
        peaks, _ = find_peaks(s, height=p.threshold, distance=max(1, p.distance))
        n = len(s)
        for k in peaks.tolist():
            rows.append((video, max(0, k - p.before), k, min(n - 1, k + p.after), kind, float(s[k])))
    return pd.DataFrame(rows, columns=PRED_COLUMNS)


def extents(truth: pd.DataFrame, kind: str, fps: float) -> tuple[int, int, int]:
    """(before, after, count) of a type's training intervals: mean apex - onset and offset - apex, frames."""
    iv = truth[truth["type"] == kind]
    if iv.empty:
        b, a = FALLBACK_SECONDS[kind]
        return max(1, round(b * fps)), max(1, round(a * fps)), 0
    return (max(1, int(round(float((iv["apex"] - iv["onset"]).mean())))),
            max(1, int(round(float((iv["offset"] - iv["apex"]).mean())))), len(iv))


def choose_params(scores: dict[str, dict[str, np.ndarray]], truth: pd.DataFrame, fps: float) -> dict[str, TypeParams]:
    """Threshold and distance per type maximising the type's F1 over these (training) videos.

    ``scores``: {video: {type: per-frame score}} of the videos to choose on;
    ``truth``: their intervals (any other video's are ignored). Ties go to the
    higher threshold, then the larger distance (fewer intervals).
    """
    videos = list(scores)
    truth = truth[truth["video"].isin(videos)]
    out: dict[str, TypeParams] = {}
    for kind in TYPES:
        before, after, count = extents(truth, kind, fps)
        length = before + after + 1
        target = truth[truth["type"] == kind][["video", "onset", "offset", "type"]]
        best = (-math.inf, 0.0, 0)  # (F1, or -1 where undefined; threshold; distance)
        heights = np.concatenate([np.asarray(scores[v][kind])[find_peaks(scores[v][kind])[0]]
                                  for v in videos if len(scores[v][kind])] or [np.zeros(0)])
        if count == 0 or heights.size == 0:
            thr = float(heights.max()) + 1.0 if heights.size else 1.0  # nothing to find: predict nothing
            out[kind] = TypeParams(thr, length, before, after, math.nan, count)
            continue
        thresholds = np.unique(np.quantile(heights, THRESHOLD_QUANTILES))
        for factor in DISTANCE_FACTORS:
            distance = max(1, int(round(factor * length)))
            peaks = {v: find_peaks(scores[v][kind], distance=distance) for v in videos}
            for thr in thresholds:
                pred = [(v, max(0, k - before), min(len(scores[v][kind]) - 1, k + after), kind)
                        for v, (pk, props) in peaks.items() for k in pk.tolist()
                        if scores[v][kind][k] >= thr]
                table = pd.DataFrame(pred, columns=["video", "onset", "offset", "type"])
                f1 = score_spots(target, table)[kind]["f1"]
                best = max(best, (-1.0 if f1 != f1 else float(f1), float(thr), distance))
        f1, thr, distance = best
        out[kind] = TypeParams(float(thr), int(distance), before, after, f1 if f1 >= 0 else math.nan, count)
    return out


class Spotter:
    """A frame scorer: ``fit`` on training videos (rows of the videos table) and their truth, then ``scores``."""

    uses_seed = False  # True: ``fit``'s seed changes what it learns (else every seed gives the same run)

    def fit(self, videos: list[dict[str, Any]], truth: pd.DataFrame, *, seed: int = 0) -> "Spotter":
        return self

    def scores(self, video: dict[str, Any]) -> dict[str, np.ndarray]:
        raise NotImplementedError


class MotionCurveSpotter(Spotter):
    """The motion-curve method over sliding windows: the score is the curve (nothing is learned)."""

    def __init__(self, stabilise: bool = True) -> None:
        self.feature_kind = "curves" if stabilise else "raw_curves"

    def scores(self, video: dict[str, Any]) -> dict[str, np.ndarray]:
        f = video_features(video, self.feature_kind)
        return {"micro": f["micro"], "macro": f["macro"]}


def _context(flow: np.ndarray, span: int) -> np.ndarray:
    """Each frame's flow features with those ``span`` frames before and after (edges repeated)."""
    n = len(flow)
    idx = np.arange(n)
    before = flow[np.clip(idx - span, 0, max(n - 1, 0))]
    after = flow[np.clip(idx + span, 0, max(n - 1, 0))]
    return np.concatenate([flow, before, after], axis=1)


def soft_labels(n: int, intervals: pd.DataFrame) -> np.ndarray:
    """Per-frame targets: max over intervals of exp(-d^2 / 2 sigma^2), d = distance to the apex."""
    y = np.zeros(n, np.float32)
    t = np.arange(n, dtype=np.float32)
    for r in intervals.itertuples(index=False):
        sigma = max(1.0, (r.offset - r.onset + 1) / 4.0)
        lo, hi = max(0, int(r.apex - 4 * sigma)), min(n, int(r.apex + 4 * sigma) + 1)
        y[lo:hi] = np.maximum(y[lo:hi], np.exp(-0.5 * ((t[lo:hi] - r.apex) / sigma) ** 2))
    return y


class LearnedSpotter(Spotter):
    """Frame-score regressors (one per type) on optical-flow features, soft labels around apexes."""

    uses_seed = True  # training frames subsampled and trees grown with the seed
    NEGATIVE_SHARE = 0.3  # share of the frames far from every apex kept for training
    MAX_ITER = 150

    def __init__(self) -> None:
        self.models: dict[str, Any] = {}

    def _x(self, video: dict[str, Any]) -> np.ndarray:
        span = max(1, int(round(MICRO_SPAN_S * float(video["fps"]))))
        return _context(video_features(video, "flow")["flow"], span)

    def fit(self, videos: list[dict[str, Any]], truth: pd.DataFrame, *, seed: int = 0) -> "LearnedSpotter":
        from sklearn.ensemble import HistGradientBoostingRegressor  # lazy: loads scikit-learn and scipy (about 1 s)

        if not videos:
            raise MerError("the learned spotter needs at least one training video")
        rng = np.random.default_rng(seed)
        xs = [self._x(v) for v in videos]
        for kind in TYPES:
            ys = [soft_labels(len(x), truth[(truth["video"] == v["video"]) & (truth["type"] == kind)])
                  for v, x in zip(videos, xs)]
            y = np.concatenate(ys)
            x = np.concatenate(xs)
            keep = (y > 0.01) | (rng.uniform(size=len(y)) < self.NEGATIVE_SHARE)
            if not (y > 0.01).any():
                self.models[kind] = None  # no interval of this type to learn from: scores stay 0
                continue
            model = HistGradientBoostingRegressor(max_iter=self.MAX_ITER, learning_rate=0.1, max_leaf_nodes=31,
                                                  random_state=seed)
            with threadpool_limits(1):
                self.models[kind] = model.fit(x[keep], y[keep])
        return self

    def scores(self, video: dict[str, Any]) -> dict[str, np.ndarray]:
        x = self._x(video)
        out = {}
        for kind in TYPES:
            model = self.models.get(kind)
            with threadpool_limits(1):
                s = np.zeros(len(x), np.float32) if model is None else model.predict(x).astype(np.float32)
            out[kind] = np.convolve(s, np.ones(3) / 3, mode="same").astype(np.float32) if len(s) >= 3 else s
        return out


def make_spotter(name: str, stabilise: bool = True) -> Spotter:
    """A spotter by name; ``stabilise=False``: the motion curve keeps the head motion in (the learned spotter's
    flow features always remove the median flow)."""
    if name == "motion_curve":
        return MotionCurveSpotter(stabilise)
    if name == "learned":
        return LearnedSpotter()
    raise MerError(f"unknown spotter {name!r}; valid spotters: {', '.join(SPOTTERS)}")
