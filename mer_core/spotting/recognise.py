"""Spot, then recognise: a stored recognition run classifies every spotted interval.

For each interval a spotting run predicted, the frames onset..offset are read
from the long video (one streamed pass per video, only the frames of its
intervals kept), turned into the recognition run's model input by the very
preprocessing its training used (:func:`mer_core.preprocess.sample.compute_maps`
with the run's channels, size and options; the spotted apex as the apex) and
classified by the run's final model, or the ensemble of its fold models when
it has none (:class:`mer_core.explain.inference.RunPredictor`).

Scores, from :func:`mer_core.spotting.scoring.score_spots`: recognition UF1
and UAR over the run's classes on the *true-positive* spots (a hit whose truth
has a label among those classes), and STRS = spotting F1 x recognition UF1,
for all types and for micro-expressions alone (the MEGC spot-then-recognise
setting). The recognition run must not have seen the spotting dataset's
people: its models are used as they are, whatever subject a spot belongs to
(the synthetic long-video faces are drawn apart from the default set's).
"""
from __future__ import annotations

from typing import Any, Callable

import numpy as np
import pandas as pd

from mer_core.errors import MerError
from mer_core.explain.inference import RunPredictor
from mer_core.preprocess.sample import SampleError, compute_maps
from mer_core.spotting.scoring import score_spots
from mer_core.spotting.source import iter_frames
from mer_core.spotting.tables import LongDataset
from mer_core.store.db import RunStore

MIN_FRAMES = 3  # a spotted interval shorter than this is widened around its apex for the recognition input


def interval_inputs(video: dict[str, Any], intervals: pd.DataFrame, predictor: RunPredictor
                    ) -> list[np.ndarray | None]:
    """The model input of each interval of one video (None where the frames cannot give one)."""
    n = int(video["n_frames"])
    spans = []
    for r in intervals.itertuples(index=False):
        on, off = int(r.onset), int(r.offset)
        if off - on + 1 < MIN_FRAMES:
            on, off = max(0, int(r.apex) - 1), min(n - 1, int(r.apex) + 1) if n > 0 else int(r.apex) + 1
        spans.append((on, int(r.apex), off))
    if not spans:
        return []
    wanted = {t for on, _, off in spans for t in range(on, off + 1)}
    frames = {i: frame for i, frame in iter_frames(str(video["path"]), min(wanted), max(wanted) + 1) if i in wanted}
    out: list[np.ndarray | None] = []
    opt = predictor.config.preprocess
    for on, apex, off in spans:
        clip = [frames[t] for t in range(on, off + 1) if t in frames]
        if len(clip) != off - on + 1:
            out.append(None)
            continue
        row = {"sample_id": f"{video['video']}@{on}-{off}", "frames": clip, "onset": 0,
               "apex": min(max(apex - on, 1), off - on), "offset": off - on, "cropped": bool(video.get("cropped"))}
        try:
            maps, _ = compute_maps(row, tuple(predictor.channels), predictor.size, opt)
        except SampleError:
            out.append(None)
            continue
        out.append(np.stack([maps[c] for c in predictor.channels]).astype(np.float32))
    return out


def classify(ds: LongDataset, predicted: pd.DataFrame, predictor: RunPredictor,
             progress: Callable[[int, int], None] | None = None) -> pd.DataFrame:
    """``predicted`` with ``pred_label`` and ``probs`` (the run's classes; '' / None where no input was made)."""
    out = predicted.copy()
    labels, probs = [""] * len(out), [None] * len(out)
    videos = ds.videos.set_index("video", drop=False)
    done = 0
    for video, group in out.groupby("video", sort=True):
        if video not in videos.index:
            continue
        for pos, x in zip(group.index, interval_inputs(videos.loc[video].to_dict(), group, predictor)):
            if x is not None:
                p, _ = predictor.predict(x)
                k = out.index.get_loc(pos)
                labels[k], probs[k] = predictor.classes[int(np.argmax(p))], [float(v) for v in p]
        done += len(group)
        if progress is not None:
            progress(done, len(out))
    out["pred_label"], out["probs"] = labels, probs
    return out


def recognition_scores(truth: pd.DataFrame, predicted: pd.DataFrame, classes: list[str], *, iou: float = 0.5
                       ) -> dict[str, Any]:
    """Recognition UF1/UAR on true-positive spots and STRS, for all types and for micro alone."""
    cols = ["video", "subject", "onset", "offset", "type", "label"]
    t = truth.copy()
    t["label"] = [lab if lab in classes else None for lab in t["label"]]
    p = predicted.copy()
    p["label"] = [lab if lab else None for lab in p["pred_label"]]
    out: dict[str, Any] = {"classes": list(classes),
                           "unlabelled_truth": int(t["label"].isna().sum())}
    for scope, keep_t, keep_p in (("all", slice(None), slice(None)),
                                  ("micro", t["type"] == "micro", p["type"] == "micro")):
        s = score_spots(t.loc[keep_t, cols].reset_index(drop=True), p.loc[keep_p, cols].reset_index(drop=True),
                        iou=iou, classes=list(classes))
        rec = s["recognition"] or {}
        out[scope] = {"spot_f1": s["overall"]["f1"], "recognition_uf1": rec.get("uf1"),
                      "recognition_uar": rec.get("uar"), "n_true_positives": rec.get("n"), "strs": s["strs"]}
    return out


def recognise_run(store: RunStore, spot_run: str, recognition_run: str, ds: LongDataset, *, iou: float = 0.5,
                  progress: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
    """Classify a spotting run's predicted intervals with ``recognition_run``; store labels; the figures."""
    rec_run = store.get_run(recognition_run)
    if rec_run["status"] not in ("done", "partial"):
        raise MerError(f"recognition run {recognition_run} is {rec_run['status']}; spot-then-recognise needs a "
                       "finished run (see `mer runs`)")
    predictor = RunPredictor(recognition_run, store)
    iv = store.spot_intervals(spot_run)
    truth = iv[iv["source"] == "truth"].reset_index(drop=True)
    pred = iv[iv["source"] == "predicted"].reset_index(drop=True)
    emit = progress or (lambda e: None)
    labelled = classify(ds, pred, predictor, lambda d, n: emit({"event": "stage", "stage": "recognise", "done": d,
                                                                "total": n}))
    store.set_spot_labels(spot_run, labelled[labelled["probs"].notna()])
    figures = recognition_scores(truth, labelled, predictor.classes, iou=iou)
    return {"strs": figures["all"]["strs"], "recognition": {
        **figures, "run": recognition_run, "model": predictor.kind, "model_note": predictor.note,
        "trained_on": predictor.trained_on, "no_input": int((labelled["probs"].isna()).sum()),
        "caveat": (f"the recognition run was trained on {rec_run['dataset']}; if it saw any person of this "
                   "spotting dataset, the recognition figures are optimistic")}}
