"""How hard a flow + apex dataset is, measured without any deep model.

These are the model-independent statistics that the realism-calibrated
synthetic variant is calibrated against (figures of a real MEGC2019 composite
in ``REAL_COMPOSITE``; see shared/reference/real_composite_statistics.md).
Each classifier statistic is a leave-one-subject-out (scikit-learn's
``LeaveOneGroupOut`` over subjects) with predictions pooled over all folds and
scored by the one metrics core (UF1 / UAR over every class):

* ``lr_flow``: logistic regression on the flow image's pixels (28x28x3, scaled
  to 0..1, standardised on the training subjects, C=0.01, balanced classes);
* ``nn_flow``: 1-nearest-neighbour on the same pixels;
* ``lr_apex`` / ``nn_apex``: the same on the apex image, grey, 32x32;
* ``apex_nn_same_subject``: over all clips, the share whose nearest apex
  neighbour (another clip) belongs to the same subject: how much identity
  dominates appearance. ``flow_nn_same_subject`` is its flow counterpart.

Nothing is chosen on a test subject: the classifiers' settings are fixed.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import LeaveOneGroupOut
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

from mer_core.errors import DatasetError
from mer_core.evaluation.metrics import scores

FLOW_PX, APEX_PX = 28, 32

# Measured on a real MEGC2019 composite (442 clips, 68 subjects; 28x28 min-max
# flow images and 224x224 apex crops) that MER Bench does not ship.
REAL_COMPOSITE: dict[str, float] = {
    "lr_flow": 0.719,
    "nn_flow": 0.584,
    "lr_apex": 0.480,
    "nn_apex": 0.352,
    "apex_nn_same_subject": 0.977,
    "flow_nn_same_subject": 0.319,
}
# The statistics a calibration must match (UF1, or the share), and the tolerance.
CALIBRATED = ("lr_flow", "nn_flow", "lr_apex", "nn_apex", "apex_nn_same_subject")
TOLERANCE = 0.04
STAT_LABELS = {
    "lr_flow": "logistic regression on flow pixels (UF1)",
    "nn_flow": "1-nearest-neighbour on flow pixels (UF1)",
    "lr_apex": "logistic regression on the apex, grey, 32 px (UF1)",
    "nn_apex": "1-nearest-neighbour on the apex, grey, 32 px (UF1)",
    "apex_nn_same_subject": "share of apex nearest neighbours from the same subject",
    "flow_nn_same_subject": "share of flow nearest neighbours from the same subject",
}


@dataclass(frozen=True)
class Features:
    flow: np.ndarray  # (N, 28*28*3) in 0..1
    apex: np.ndarray  # (N, 32*32) in 0..1
    labels: np.ndarray  # (N,) int
    subjects: np.ndarray  # (N,) str
    classes: tuple[str, ...]


def load_features(manifest: str | Path) -> Features:
    """Read a flow + apex manifest (``mer synth --export flow-apex`` writes one) into pixel features."""
    path = Path(manifest)
    if path.is_dir():
        path = path / "manifest.csv"
    if not path.is_file():
        raise DatasetError(f"{path}: no manifest.csv here (expected a flow + apex export)")
    table = pd.read_csv(path, dtype=str, keep_default_na=False)
    missing = [c for c in ("subject", "label", "flow_image", "apex_image") if c not in table.columns]
    if missing:
        raise DatasetError(f"{path}: missing column(s) {missing}; a flow + apex manifest needs them")
    flow, apex = [], []
    for i, row in enumerate(table.itertuples(index=False), start=2):
        f = cv2.imread(str(path.parent / row.flow_image), cv2.IMREAD_COLOR)
        a = cv2.imread(str(path.parent / row.apex_image), cv2.IMREAD_GRAYSCALE)
        if f is None or a is None:
            raise DatasetError(f"{path} row {i}: cannot read {row.flow_image if f is None else row.apex_image}")
        f = cv2.resize(f[..., ::-1], (FLOW_PX, FLOW_PX), interpolation=cv2.INTER_AREA)
        flow.append(f.astype(np.float32).ravel() / 255.0)
        apex.append(cv2.resize(a, (APEX_PX, APEX_PX), interpolation=cv2.INTER_AREA).astype(np.float32).ravel() / 255.0)
    classes = tuple(sorted(set(table["label"])))
    labels = np.array([classes.index(v) for v in table["label"]])
    return Features(np.stack(flow), np.stack(apex), labels, table["subject"].to_numpy(), classes)


def _logistic():
    return make_pipeline(StandardScaler(), LogisticRegression(C=0.01, class_weight="balanced", max_iter=2000))


def _nearest():
    return KNeighborsClassifier(n_neighbors=1)


def loso_scores(x: np.ndarray, y: np.ndarray, groups: np.ndarray, make, classes: Sequence[str]) -> tuple[float, float]:
    """Pooled LOSO (UF1, UAR) of a scikit-learn classifier factory."""
    pred = np.empty_like(y)
    for train, test in LeaveOneGroupOut().split(x, y, groups):
        pred[test] = make().fit(x[train], y[train]).predict(x[test])
    s = scores(y, pred, classes)
    return s.uf1, s.uar


def same_subject_share(x: np.ndarray, subjects: np.ndarray) -> float:
    """Share of samples whose nearest other sample (Euclidean) has the same subject."""
    sq = (x * x).sum(1)
    d = sq[:, None] + sq[None, :] - 2.0 * (x @ x.T)
    np.fill_diagonal(d, np.inf)
    return float((subjects[d.argmin(1)] == subjects).mean())


def difficulty_statistics(features: Features) -> dict[str, float]:
    """Every statistic of the module docstring (UF1 for the classifiers, plus ``*_uar``)."""
    f, y, g, k = features, features.labels, features.subjects, features.classes
    out: dict[str, float] = {}
    # small problems (a few hundred samples): one BLAS thread is ~10x faster than several on a busy machine
    with threadpool_limits(1):
        for name, x, make in (("lr_flow", f.flow, _logistic), ("nn_flow", f.flow, _nearest),
                              ("lr_apex", f.apex, _logistic), ("nn_apex", f.apex, _nearest)):
            out[name], out[f"{name}_uar"] = loso_scores(x, y, g, make, k)
        out["apex_nn_same_subject"] = same_subject_share(f.apex, g)
        out["flow_nn_same_subject"] = same_subject_share(f.flow, g)
    return {k_: round(float(v), 4) for k_, v in out.items()}
