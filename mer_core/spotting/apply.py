"""Spot every interval of one long video of one's own (the Analyse page, a script).

:func:`spot_video` runs the motion-curve spotter (nothing learned, so it
applies to any video) over a video file or a frame folder, streamed, and
returns every interval it finds with the per-frame curves. Its thresholds and
peak distances come from a stored motion-curve spotting run (the median over
the run's folds of what each chose on its training subjects) or are given; a
learned spotting run keeps no model to apply (its regressors live only while
the run trains), so only a motion-curve run is accepted. The head motion is
taken out of the curve when the run took it out (its thresholds were chosen
on such curves).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mer_core.errors import MerError
from mer_core.spotting.source import video_info
from mer_core.spotting.spotters import MotionCurveSpotter, TypeParams, spot_intervals
from mer_core.spotting.tables import TYPES
from mer_core.store.db import RunStore, using_store


def run_params(run_id: str, store: RunStore | None = None) -> dict[str, TypeParams]:
    """A stored motion-curve run's parameters per type: the median over its folds of what each chose."""
    with using_store(store) as store:
        run = store.get_spot_run(run_id)
        folds = store.spot_folds(run_id)
    if run["spotter"] != "motion_curve":
        raise MerError(f"spotting run {run_id} used the {run['spotter']} spotter, which keeps no model to apply to "
                       "a new video; pick a motion_curve run")
    done = folds[folds["status"] == "done"]
    if done.empty:
        raise MerError(f"spotting run {run_id} has no finished fold yet")
    out = {}
    for kind in TYPES:
        chosen = [p[kind] for p in done["params"] if p.get(kind)]
        if chosen:
            out[kind] = TypeParams(*(float(np.median([c[k] for c in chosen])) if k == "threshold" else
                                     int(round(np.median([c[k] for c in chosen])))
                                     for k in ("threshold", "distance", "before", "after")))
    return out


def run_stabilise(run_id: str, store: RunStore | None = None) -> bool:
    """Whether a stored spotting run took the head motion out (runs stored before the option did not)."""
    from mer_core.spotting.loso import SpotConfig  # lazy: loads scikit-learn and scipy (about 1 s)

    with using_store(store) as store:
        return SpotConfig.from_dict(store.get_spot_run(run_id)["config"]).stabilise


def spot_video(path: str | Path, *, params: dict[str, TypeParams] | None = None, run_id: str = "",
               fps: float | None = None, cropped: bool = False, store: RunStore | None = None,
               stabilise: bool | None = None) -> dict[str, Any]:
    """Every interval the motion-curve spotter finds in one video: ``{"intervals", "scores", "params", "fps",
    "n_frames", "source", "stabilise"}`` (intervals: onset, apex, offset, type, score, frames of the video).

    ``stabilise`` (take the head motion out) defaults to what the run did, so its thresholds fit the curve;
    with ``params=`` and no run, to True.
    """
    if params is None:
        if not run_id:
            raise MerError("spot_video needs the thresholds: a motion_curve spotting run (run_id=) or params=")
        params = run_params(run_id, store)
    if stabilise is None:
        stabilise = run_stabilise(run_id, store) if run_id else True
    n, declared = video_info(path)
    rate = fps or declared or 30.0
    video = {"video": Path(path).name, "path": str(path), "fps": rate, "cropped": cropped, "n_frames": n}
    scores = MotionCurveSpotter(stabilise).scores(video)
    intervals = spot_intervals(video["video"], scores, params).drop(columns="video")
    return {"intervals": intervals.reset_index(drop=True), "scores": scores, "fps": rate,
            "n_frames": len(next(iter(scores.values()), [])),
            "params": {k: p.as_dict() for k, p in params.items()}, "stabilise": stabilise,
            "source": f"spotting run {run_id} (median of its folds' choices)" if run_id else "given parameters"}


def intervals_frame(result: dict[str, Any]) -> pd.DataFrame:
    """The intervals with their times in seconds, for a table."""
    iv = result["intervals"].copy()
    for col in ("onset", "apex", "offset"):
        iv[f"{col}_s"] = (iv[col] / float(result["fps"])).round(3)
    return iv
