"""Reads of the Spotting page (and of the Analyse page's long clips): stored spotting runs, their curves and frames.

The same rules as :mod:`dashboard.reads`: views call these, these call mer_core; the store path is part of
every cache key, and reads of a run carry a stamp that moves when the run gets new folds.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import streamlit as st

from dashboard.reads import run_stamp, shrunk_grey
from mer_core.errors import MerError
from mer_core.paths import store_path
from mer_core.preprocess.video import ClipError
from mer_core.spotting.indexers import list_long_datasets, long_dataset_info
from mer_core.spotting.source import iter_frames, video_info
from mer_core.store.db import RunStore

QP_SPOT = "spot"  # the spotting run shown (?spot=ID)
QP_VIDEO = "video"  # the video of its timeline (?video=ID)
PLAYER_FRAMES = 120  # an interval's player holds at most this many frames (the apex in the middle when cut)
PLAYER_SIDE = 160  # its frames are shrunk to this many pixels on their longer side
SOURCE_WORDS = {"truth": "true", "predicted": "spotted"}
OUTCOME_WORDS = {"hit": "hit", "miss": "miss", "false_alarm": "false alarm", "ignored": "ignored"}


def spot_runs() -> pd.DataFrame:
    """Every stored spotting run, newest first (live within 3 s)."""
    return _spot_runs(str(store_path()))


@st.cache_data(ttl=3, show_spinner=False)
def _spot_runs(path: str) -> pd.DataFrame:
    with RunStore(path) as store:
        return store.list_spot_runs()


def spot_run(run_id: str) -> dict[str, Any]:
    """A spotting run: ``run`` (with config, videos, summary), ``folds``, ``items`` (every true and spotted
    interval once, with its outcome, fold, apex, score, labels and the interval it matched) and ``videos``
    (a table: video, subject, n_frames, fps, path, fold and the outcome counts). MerError when unknown."""
    return _spot_run(str(store_path()), run_id, run_stamp(run_id, spot_runs()))


@st.cache_data(ttl=600, max_entries=8, show_spinner=False)
def _spot_run(path: str, run_id: str, stamp: tuple) -> dict[str, Any]:
    from mer_core.spotting.scoring import match_spots  # lazy: loads scipy (about 1 s)

    with RunStore(path) as store:
        run = store.get_spot_run(run_id)
        folds = store.spot_folds(run_id)
        iv = store.spot_intervals(run_id)
    iou = float(run["config"].get("iou", 0.5))
    cols = ["video", "subject", "onset", "apex", "offset", "type"]
    truth = iv[iv["source"] == "truth"].reset_index(drop=True)
    pred = iv[iv["source"] == "predicted"].reset_index(drop=True)
    m = match_spots(truth[cols], pred[cols], iou=iou)
    detail = pd.concat([truth.assign(row=range(len(truth))), pred.assign(row=range(len(pred)))], ignore_index=True)
    items = m.timeline.merge(detail[["source", "row", "fold", "subject", "apex", "label", "score", "pred_label"]],
                             on=["source", "row"], how="left")
    items["id"] = [f"{s[0]}{r}" for s, r in zip(items["source"], items["row"])]
    items["matched"] = _partners(items, m.pairs)
    return {"run": run, "folds": folds, "items": items, "videos": _video_table(run, folds, items), "iou": iou,
            "truth": truth, "predicted": pred}


def _partners(items: pd.DataFrame, pairs: pd.DataFrame) -> list[str]:
    """For each hit, the interval it was matched with and their IoU, in words ('' otherwise)."""
    words: dict[tuple[str, int], str] = {}
    for p in pairs.itertuples(index=False):
        words[("truth", int(p.truth_row))] = f"spotted {p.pred_onset}-{p.pred_offset} (IoU {p.iou:.2f})"
        words[("predicted", int(p.pred_row))] = f"true {p.truth_onset}-{p.truth_offset} (IoU {p.iou:.2f})"
    return [words.get((s, int(r)), "") for s, r in zip(items["source"], items["row"])]


def _video_table(run: dict[str, Any], folds: pd.DataFrame, items: pd.DataFrame) -> pd.DataFrame:
    fold_of = {v: int(f.fold_index) for f in folds.itertuples() for v in f.test_videos}
    rows = []
    for v in run["videos"]:
        mine = items[items["video"] == v["video"]]
        counts = mine["outcome"].value_counts()
        rows.append({"video": v["video"], "subject": v["subject"], "n_frames": int(v["n_frames"]),
                     "fps": float(v["fps"]), "path": v["path"], "cropped": bool(v.get("cropped")),
                     "fold": fold_of.get(v["video"]), "truths": int((mine["source"] == "truth").sum()),
                     "spotted": int((mine["source"] == "predicted").sum()),
                     "hits": int(((mine["source"] == "truth") & (mine["outcome"] == "hit")).sum()),
                     "misses": int(counts.get("miss", 0)), "false_alarms": int(counts.get("false_alarm", 0))})
    return pd.DataFrame(rows, columns=["video", "subject", "n_frames", "fps", "path", "cropped", "fold", "truths",
                                       "spotted", "hits", "misses", "false_alarms"])


def spot_scores(run_id: str, fold: int) -> dict[str, dict[str, np.ndarray]]:
    """The stored per-frame scores of a fold's test videos ({video: {type: scores}}; {} when not stored)."""
    return _spot_scores(str(store_path()), run_id, int(fold), run_stamp(run_id, spot_runs()))


@st.cache_data(ttl=600, max_entries=8, show_spinner=False)
def _spot_scores(path: str, run_id: str, fold: int, stamp: tuple) -> dict[str, dict[str, np.ndarray]]:
    from mer_core.spotting.loso import load_scores  # lazy: loads scikit-learn and scipy (about 1 s)

    return load_scores(run_id, fold)


def spot_chance(run_id: str) -> dict[str, Any] | None:
    """The run's intervals placed at random in their videos, scored alike (mer_core.spotting.chance); None
    while the run has no finished fold."""
    return _spot_chance(str(store_path()), run_id, run_stamp(run_id, spot_runs()))


@st.cache_data(ttl=600, max_entries=8, show_spinner="placing the spotted intervals at random…")
def _spot_chance(path: str, run_id: str, stamp: tuple) -> dict[str, Any] | None:
    # lazy: loads scipy (about 1 s)
    from mer_core.spotting.chance import run_chance  # one chance floor: the Study page's spotting table uses it too

    with RunStore(path) as store:
        return run_chance(store, run_id)


def play_window(onset: int, apex: int, offset: int, n_frames: int, cap: int = PLAYER_FRAMES) -> tuple[int, int]:
    """Frames ``first``..``stop - 1`` a player of the interval shows: the interval with half its length
    (at least 3 frames) before and after it, inside the video; at most ``cap`` frames, centred on the apex."""
    margin = max(3, (offset - onset + 1) // 2)
    first, stop = max(0, onset - margin), offset + margin + 1
    if n_frames > 0:
        stop = min(stop, n_frames)
    if stop - first > cap:
        first = max(0, min(apex - cap // 2, (n_frames or stop) - cap))
        stop = first + cap
    return first, stop


@st.cache_data(max_entries=8, show_spinner="reading the interval's frames…")
def interval_frames(path: str, first: int, stop: int, max_side: int = PLAYER_SIDE) -> np.ndarray:
    """Frames ``first``..``stop - 1`` of a long video (streamed: only these are kept) as grey float (T, H, W)
    in 0..1, shrunk to ``max_side``; MerError when the video holds none of them."""
    out = [shrunk_grey(img, max_side) for _i, img in iter_frames(path, first, stop)]
    if not out:
        raise MerError(f"{Path(path).name}: no frame between {first} and {stop - 1} could be read")
    return np.stack(out)


def long_datasets() -> dict[str, str]:
    """Long-video datasets a spotting run can use: name -> description."""
    return {n: long_dataset_info(n).description for n in list_long_datasets()}


# --- the Analyse page's long clips ------------------------------------------------------------------------
def clip_length(path: str) -> tuple[int, float | None] | None:
    """(declared frames, declared fps or None) of an uploaded video; None when it is no video file."""
    try:
        return video_info(path)
    except (ClipError, OSError):
        return None


def motion_curve_runs() -> list[str]:
    """Finished motion-curve spotting runs (their folds' thresholds can spot a new video), newest first."""
    runs = spot_runs()
    done = runs[(runs["spotter"] == "motion_curve") & (runs["status"] == "done")]
    return done["id"].tolist()


def spot_upload(path: str, run_id: str, cropped: bool) -> dict[str, Any]:
    """Every interval the motion-curve spotter finds in ``path`` with the thresholds of spotting run ``run_id``
    (mer_core.spotting.apply.spot_video), cached per file and run."""
    stamp = Path(path).stat().st_mtime_ns if Path(path).exists() else 0
    return _spot_upload(str(store_path()), path, stamp, run_id, cropped)


@st.cache_data(ttl=600, max_entries=4, show_spinner="spotting every interval of the clip…")
def _spot_upload(store: str, path: str, stamp: int, run_id: str, cropped: bool) -> dict[str, Any]:
    from mer_core.spotting.apply import intervals_frame, spot_video  # lazy: loads scipy (about 1 s)

    with RunStore(store) as s:
        found = spot_video(path, run_id=run_id, cropped=cropped, store=s)
    return found | {"table": intervals_frame(found)}
