"""A spotting run under leave-one-subject-out: folds, per-fold parameters, stored intervals, pooled scores.

:func:`run_spotting` indexes a long-video dataset, splits its videos by
subject with scikit-learn's ``LeaveOneGroupOut`` (:func:`spot_folds`) and,
per fold (:func:`run_fold`):

1. fits the spotter on the training subjects' videos (the learned spotter
   trains its regressors; the motion-curve spotter learns nothing);
2. chooses each type's threshold and peak distance on the training subjects'
   videos only (:func:`~.spotters.choose_params`). For a learned spotter the
   training videos are scored out of fold first (:data:`INNER_FOLDS` groups of
   training subjects, each scored by regressors trained on the others), so the
   regressors' fit to their own training frames does not set the threshold;
3. spots the test subject's videos with those parameters and stores the
   fold's intervals (truth and predicted), the parameters it chose and the
   test videos' per-frame scores.

Finished folds are kept: a resumed run (same run id) computes only the folds
not marked done. When every fold is stored the predictions are scored pooled
over all videos with MER Bench's one-to-one scorer (and, labelled, with the
official script's counting), per subject too, and, when the config names a
recognition run, classified and scored for spot-then-recognise
(:mod:`.recognise`).
"""
from __future__ import annotations

import json
import os
import socket
import time
import uuid
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Callable

import numpy as np
import pandas as pd
from sklearn.model_selection import GroupKFold, LeaveOneGroupOut

from mer_core.errors import ConfigError, MerError, ProtocolError
from mer_core.evaluation.export import json_safe
from mer_core.spotting.indexers import index_long, long_dataset_info
from mer_core.spotting.scoring import score_spots
from mer_core.spotting.spotters import SPOTTERS, Spotter, TypeParams, choose_params, make_spotter, spot_intervals
from mer_core.spotting.tables import LongDataset
from mer_core.store.db import RunStore, code_version, using_store
from mer_core.store.spotting import scores_path

INNER_FOLDS = 3  # groups of training subjects scored out of fold for a learned spotter's parameter choice
Progress = Callable[[dict[str, Any]], None]
JOB_DISPLAY_KEYS = ("model", "protocol")  # added to a job's stored config for the Jobs list; not config fields


@dataclass(frozen=True)
class SpotConfig:
    """A spotting run's settings (stored with the run; unknown keys raise)."""

    dataset: str = "synthetic-long"  # a long-video dataset (mer datasets list)
    dataset_options: dict[str, Any] = field(default_factory=dict)  # its indexer's options (manifest=PATH, ...)
    root: str = ""  # its root, when not the configured one
    spotter: str = "motion_curve"  # motion_curve | learned
    iou: float = 0.5  # a prediction hits a truth of its type at IoU >= this (MEGC: 0.5)
    seed: int = 0  # the learned spotter's subsampling and trees
    recognise: str = ""  # a finished recognition run that classifies the spotted intervals ('' : none)
    stabilise: bool = True  # motion curve: take the head motion out first (False: raw differences, to compare)

    def __post_init__(self) -> None:
        long_dataset_info(self.dataset)  # unknown dataset: the list of valid ones
        if self.spotter not in SPOTTERS:
            raise ConfigError(f"spotter {self.spotter!r}: expected one of {', '.join(SPOTTERS)}")
        if not isinstance(self.iou, (int, float)) or not 0 < float(self.iou) <= 1:
            raise ConfigError(f"iou={self.iou!r}: expected a number in (0, 1]")
        if not isinstance(self.stabilise, bool):
            raise ConfigError(f"stabilise={self.stabilise!r}: expected true or false")
        if not isinstance(self.dataset_options, dict):
            raise ConfigError(f"dataset_options={self.dataset_options!r}: expected a mapping of option names")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    def job_json(self) -> str:
        """The config as a job stores it, with what the Jobs list shows (model, protocol)."""
        return json.dumps({**self.to_dict(), "model": f"spotter {self.spotter}", "protocol": "spotting LOSO"},
                          sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "SpotConfig":
        data = {k: v for k, v in data.items() if k not in JOB_DISPLAY_KEYS}
        data.setdefault("stabilise", False)  # stored before the option existed: the raw differences were used
        valid = [f.name for f in fields(cls)]
        unknown = sorted(set(data) - set(valid))
        if unknown:
            raise ConfigError(f"unknown spotting setting(s) {unknown}; valid: {', '.join(valid)}")
        return cls(**data)


@dataclass
class SpotFold:
    index: int
    subject: str
    train: list[str]  # video ids
    test: list[str]


@dataclass
class FoldResult:
    params: dict[str, TypeParams]
    predicted: pd.DataFrame  # video, subject, onset, apex, offset, type, score
    scores: dict[str, dict[str, np.ndarray]]  # test video -> type -> per-frame score


def spot_folds(ds: LongDataset) -> list[SpotFold]:
    """One fold per subject: its videos are the test set, every other subject's videos the training set."""
    videos = ds.videos["video"].astype(str).to_numpy()
    subjects = ds.videos["subject"].astype(str).to_numpy()
    if len(np.unique(subjects)) < 2:
        raise ProtocolError(f"{ds.name}: spotting under LOSO needs at least 2 subjects; found "
                            f"{', '.join(np.unique(subjects)) or 'none'}")
    out = []
    for k, (train, test) in enumerate(LeaveOneGroupOut().split(videos, groups=subjects)):
        out.append(SpotFold(k, str(subjects[test[0]]), videos[train].tolist(), videos[test].tolist()))
    return out


def _rows(ds: LongDataset, ids: list[str]) -> list[dict[str, Any]]:
    by_id = ds.videos.set_index("video", drop=False)
    return [by_id.loc[v].to_dict() for v in ids]


def _fps(rows: list[dict[str, Any]]) -> float:
    return float(np.median([float(r["fps"]) for r in rows])) if rows else 30.0


def training_scores(spotter_name: str, ds: LongDataset, train: list[str], seed: int,
                    cache: dict[str, dict[str, np.ndarray]] | None = None, *, stabilise: bool = True
                    ) -> dict[str, dict[str, np.ndarray]]:
    """Scores of the training videos to choose parameters on (out of fold for a learned spotter)."""
    rows = _rows(ds, train)
    spotter = make_spotter(spotter_name, stabilise)
    if spotter_name == "motion_curve":
        return {r["video"]: _cached(cache, spotter, r) for r in rows}
    subjects = np.array([r["subject"] for r in rows])
    groups = min(INNER_FOLDS, len(np.unique(subjects)))
    if groups < 2:
        fitted = spotter.fit(rows, ds.truth(train), seed=seed)  # one training subject: in-sample scores
        return {r["video"]: fitted.scores(r) for r in rows}
    out: dict[str, dict[str, np.ndarray]] = {}
    for inner, held in GroupKFold(n_splits=groups).split(rows, groups=subjects):
        fit_rows = [rows[i] for i in inner]
        fitted = make_spotter(spotter_name).fit(fit_rows, ds.truth([r["video"] for r in fit_rows]), seed=seed)
        for i in held:
            out[rows[i]["video"]] = fitted.scores(rows[i])
    return out


def _cached(cache: dict[str, dict[str, np.ndarray]] | None, spotter: Spotter, row: dict[str, Any]
            ) -> dict[str, np.ndarray]:
    if cache is None:
        return spotter.scores(row)
    if row["video"] not in cache:
        cache[row["video"]] = spotter.scores(row)
    return cache[row["video"]]


def run_fold(ds: LongDataset, fold: SpotFold, spotter_name: str, *, seed: int = 0,
             cache: dict[str, dict[str, np.ndarray]] | None = None, stabilise: bool = True) -> FoldResult:
    """Fit on the training subjects, choose parameters on them, spot the test subject (see the module doc)."""
    train_rows, test_rows = _rows(ds, fold.train), _rows(ds, fold.test)
    params = choose_params(training_scores(spotter_name, ds, fold.train, seed, cache, stabilise=stabilise),
                           ds.truth(fold.train), _fps(train_rows))
    spotter = make_spotter(spotter_name, stabilise)
    if spotter_name != "motion_curve":
        spotter.fit(train_rows, ds.truth(fold.train), seed=seed)
    scores = {r["video"]: _cached(cache, spotter, r) if spotter_name == "motion_curve" else spotter.scores(r)
              for r in test_rows}
    frames = [spot_intervals(v, s, params) for v, s in scores.items()]
    predicted = pd.concat(frames, ignore_index=True) if frames else spot_intervals("", {}, {})
    predicted.insert(1, "subject", fold.subject)
    return FoldResult(params, predicted, scores)


def _save_scores(run_id: str, fold: int, scores: dict[str, dict[str, np.ndarray]]) -> None:
    arrays: dict[str, np.ndarray] = {}
    index = []
    for i, (video, per_type) in enumerate(scores.items()):
        index.append(video)
        for kind, s in per_type.items():
            arrays[f"v{i}_{kind}"] = np.asarray(s, np.float32)
    arrays["videos"] = np.array(index, dtype=str)
    path = scores_path(run_id, fold)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp.npz")
    np.savez_compressed(tmp, **arrays)
    os.replace(tmp, path)


def load_scores(run_id: str, fold: int) -> dict[str, dict[str, np.ndarray]]:
    """The stored per-frame scores of a fold's test videos: {video: {type: scores}} ({} when not stored)."""
    path = scores_path(run_id, fold, create=False)
    if not path.is_file():
        return {}
    with np.load(path, allow_pickle=False) as data:
        videos = [str(v) for v in data["videos"]]
        out: dict[str, dict[str, np.ndarray]] = {v: {} for v in videos}
        for key in data.files:
            if key == "videos":
                continue
            i, kind = key[1:].split("_", 1)
            out[videos[int(i)]][kind] = data[key]
    return out


def new_spot_run_id(spotter: str) -> str:
    return f"{time.strftime('%Y%m%d-%H%M%S')}-spot-{spotter.replace('_', '-')}-{uuid.uuid4().hex[:4]}"


def load_dataset(config: SpotConfig) -> LongDataset:
    return index_long(config.dataset, config.root or None, **config.dataset_options)


def run_spotting(config: SpotConfig, *, store: RunStore | None = None, run_id: str | None = None,
                 progress: Progress | None = None, should_stop: Callable[[], bool] | None = None,
                 name: str = "", dataset: LongDataset | None = None) -> str:
    """Run (or resume: an existing ``run_id``) a spotting LOSO; returns the run id (see the module docstring)."""
    with using_store(store) as store:
        emit = progress or (lambda e: None)
        stop = should_stop or (lambda: False)
        t0 = time.time()
        owner = (os.getpid(), socket.gethostname())
        claimed = False
        try:
            ds = dataset if dataset is not None else load_dataset(config)
            folds = spot_folds(ds)
            run_id = run_id or new_spot_run_id(config.spotter)
            if store.has_spot_run(run_id):
                stored = store.get_spot_run(run_id)
                if SpotConfig.from_dict(stored["config"]) != config:
                    raise MerError(f"spotting run {run_id} was started with other settings ({stored['config_json']}); "
                                   "resume it with its own settings, or start a new run")
                store.claim_spot_run(run_id, owner)
                claimed = True
            else:
                columns = ["video", "subject", "name", "path", "n_frames", "fps", "cropped"]
                store.create_spot_run(run_id, dataset=config.dataset, spotter=config.spotter,
                                      config_json=config.to_json(), n_folds=len(folds),
                                      videos=ds.videos[columns].to_dict("records"), name=name,
                                      code_version=code_version(), owner=owner)
                claimed = True
            done = store.spot_done_folds(run_id)
            cache: dict[str, dict[str, np.ndarray]] = {}
            for fold in folds:
                if fold.index in done:
                    continue
                if stop():
                    store.finish_spot_run(run_id, status="cancelled", summary={}, wall_time=time.time() - t0,
                                          error="stopped before every fold was stored; finished folds are kept")
                    return run_id
                emit({"event": "fold_start", "fold": fold.index, "n_folds": len(folds), "name": fold.subject})
                started = time.time()
                store.start_spot_fold(run_id, fold.index, fold.subject, fold.train, fold.test)
                result = run_fold(ds, fold, config.spotter, seed=config.seed, cache=cache, stabilise=config.stabilise)
                _save_scores(run_id, fold.index, result.scores)
                truth = ds.intervals[ds.intervals["video"].isin(fold.test)]
                store.finish_spot_fold(run_id, fold.index, params={k: p.as_dict() for k, p in result.params.items()},
                                       truth=truth, predicted=result.predicted, wall_time=time.time() - started)
                done.add(fold.index)
                emit({"event": "fold_done", "fold": fold.index, "n_folds": len(folds), "done": len(done)})
            summary = summarise(store, run_id, iou=config.iou)
            if config.recognise:
                from mer_core.spotting.recognise import recognise_run  # lazy: loads torch (about 2 s)

                summary.update(recognise_run(store, run_id, config.recognise, ds, iou=config.iou, progress=emit))
            store.finish_spot_run(run_id, status="done", summary=summary, wall_time=time.time() - t0)
            emit({"event": "done", "run_id": run_id, "f1": summary["scores"]["overall"]["f1"]})
            return run_id
        except BaseException as exc:
            if claimed:
                status = "cancelled" if isinstance(exc, KeyboardInterrupt) else "failed"
                store.finish_spot_run(run_id, status=status, summary={}, wall_time=time.time() - t0,
                                      error=f"{type(exc).__name__}: {exc}")
            raise


def per_subject(truth: pd.DataFrame, predicted: pd.DataFrame, iou: float = 0.5) -> pd.DataFrame:
    """TP, FP, FN, precision, recall and F1 per subject and type (overall, micro, macro)."""
    rows = []
    for subject in sorted(set(truth["subject"]) | set(predicted["subject"])):
        s = score_spots(truth[truth["subject"] == subject], predicted[predicted["subject"] == subject], iou=iou)
        for kind in ("overall", "micro", "macro"):
            rows.append({"subject": subject, "type": kind, **{k: s[kind][k] for k in
                                                               ("tp", "fp", "fn", "precision", "recall", "f1")}})
    return pd.DataFrame(rows, columns=["subject", "type", "tp", "fp", "fn", "precision", "recall", "f1"])


def summarise(store: RunStore, run_id: str, *, iou: float = 0.5) -> dict[str, Any]:
    """Pooled scores (MER Bench's rule, and the official script's counting, labelled), per subject, per fold."""
    iv = store.spot_intervals(run_id)
    truth = iv[iv["source"] == "truth"].reset_index(drop=True)
    pred = iv[iv["source"] == "predicted"].reset_index(drop=True)
    cols = ["video", "subject", "onset", "apex", "offset", "type"]
    scores = score_spots(truth[cols], pred[cols], iou=iou)
    official = score_spots(truth[cols], pred[cols], iou=iou, mode="official")
    folds = store.spot_folds(run_id)
    return json_safe({
        "scores": {k: scores[k] for k in ("overall", "micro", "macro")},
        "official": {k: official[k] for k in ("overall", "micro", "macro")},
        "per_subject": per_subject(truth, pred, iou).to_dict("records"),
        "chosen": [{"fold": int(f.fold_index), "subject": f.subject, **{k: v for k, v in f.params.items()}}
                   for f in folds.itertuples()],
        "n_truth": len(truth), "n_predicted": len(pred), "iou": iou,
    })
