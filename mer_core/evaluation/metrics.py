"""One metrics core for every run (MEGC2019 convention).

The headline figures are computed on predictions *pooled over all folds*:
per class F1_c = 2TP / (2TP + FP + FN) and recall_c = TP / N_c, then
UF1 = mean F1_c and UAR = mean recall_c over *all* classes of the class set.
Passing the full label list matters: a fold (or a subject) that lacks a class
must not shrink the average to the classes it happens to contain.

A class with no clip in the evaluated table has an undefined recall and an F1
of 0 at best: counted, it would pull UF1 down by a third on three classes. The
run summary (:func:`summarize`) leaves such classes out of the pooled and
per-part averages and says so in its ``notes``; :func:`scores` itself counts
every class it is given (as scikit-learn's ``labels=`` does) unless told to
skip. Per-subject figures skip classes the subject lacks, as routine. The
fold-averaged variant (mean of per-fold UF1) is kept separately and labelled:
some papers report it, and it is not comparable with the pooled figure.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import pandas as pd


@dataclass
class Scores:
    uf1: float
    uar: float
    accuracy: float
    n: int
    f1: dict[str, float] = field(default_factory=dict)
    recall: dict[str, float] = field(default_factory=dict)
    confusion: list[list[int]] = field(default_factory=list)  # rows: true, cols: predicted

    def as_dict(self) -> dict:
        return {
            "uf1": self.uf1,
            "uar": self.uar,
            "accuracy": self.accuracy,
            "n": self.n,
            "f1": dict(self.f1),
            "recall": dict(self.recall),
            "confusion": [list(map(int, r)) for r in self.confusion],
        }


def confusion_matrix(y_true: Sequence[int], y_pred: Sequence[int], n_classes: int) -> np.ndarray:
    """Counts, rows = true class, columns = predicted class (all classes present)."""
    cm = np.zeros((n_classes, n_classes), dtype=np.int64)
    yt = np.asarray(y_true, dtype=int)
    yp = np.asarray(y_pred, dtype=int)
    if yt.shape != yp.shape:
        raise ValueError(f"y_true has {yt.size} entries but y_pred has {yp.size}")
    if yt.size and (yt.min() < 0 or yp.min() < 0 or yt.max() >= n_classes or yp.max() >= n_classes):
        raise ValueError(f"labels must lie in 0..{n_classes - 1}")
    np.add.at(cm, (yt, yp), 1)
    return cm


def scores(y_true: Sequence[int], y_pred: Sequence[int], classes: Sequence[str], *, skip_absent: bool = False,
           exclude: Sequence[str] = ()) -> Scores:
    """UF1, UAR, accuracy, per-class F1/recall and the confusion matrix.

    ``skip_absent``: average only over classes that occur in ``y_true`` or
    ``y_pred`` (used for per-subject figures); otherwise every class counts.
    ``exclude``: classes left out of the UF1/UAR averages (still in the confusion).
    """
    k = len(classes)
    cm = confusion_matrix(y_true, y_pred, k)
    tp = np.diag(cm).astype(float)
    support = cm.sum(axis=1).astype(float)
    predicted = cm.sum(axis=0).astype(float)
    denom_f1 = 2 * tp + (predicted - tp) + (support - tp)
    f1 = np.divide(2 * tp, denom_f1, out=np.zeros(k), where=denom_f1 > 0)
    recall = np.divide(tp, support, out=np.zeros(k), where=support > 0)
    if skip_absent:
        present = (support > 0) | (predicted > 0)
        uf1 = float(f1[present].mean()) if present.any() else float("nan")
        present_r = support > 0
        uar = float(recall[present_r].mean()) if present_r.any() else float("nan")
    else:
        keep = np.array([c not in set(exclude) for c in classes], bool)
        uf1 = float(f1[keep].mean()) if keep.any() else float("nan")
        uar = float(recall[keep].mean()) if keep.any() else float("nan")
    n = int(cm.sum())
    acc = float(tp.sum() / n) if n else float("nan")
    return Scores(
        uf1=uf1,
        uar=uar,
        accuracy=acc,
        n=n,
        f1={c: float(v) for c, v in zip(classes, f1)},
        recall={c: float(v) for c, v in zip(classes, recall)},
        confusion=cm.tolist(),
    )


def per_group(pred: pd.DataFrame, classes: Sequence[str], by: str) -> pd.DataFrame:
    """Per-subject (or per-part) figures: n, accuracy, UF1, UAR.

    ``pred`` needs integer columns ``y_true``, ``y_pred`` and the grouping
    column. Per-subject figures skip classes absent for that subject; per-part
    figures (a part is a whole dataset) count every class, as the papers do.
    """
    rows = []
    skip = by == "subject"
    for key, g in pred.groupby(by, sort=True):
        s = scores(g["y_true"], g["y_pred"], classes, skip_absent=skip)
        rows.append({by: key, "n": s.n, "accuracy": s.accuracy, "uf1": s.uf1, "uar": s.uar})
    return pd.DataFrame(rows, columns=[by, "n", "accuracy", "uf1", "uar"])


def fold_averaged(pred: pd.DataFrame, classes: Sequence[str]) -> dict[str, float]:
    """Mean over folds of per-fold UF1/UAR (all classes): the *labelled* variant."""
    per = [scores(g["y_true"], g["y_pred"], classes) for _, g in pred.groupby("fold")]
    return {
        "uf1": float(np.mean([s.uf1 for s in per])) if per else float("nan"),
        "uar": float(np.mean([s.uar for s in per])) if per else float("nan"),
    }


def absent_classes(y_true: Sequence[int], classes: Sequence[str]) -> list[str]:
    """Classes with no clip among ``y_true`` (integer labels)."""
    counts = np.bincount(np.asarray(y_true, dtype=int), minlength=len(classes))
    return [c for c, n in zip(classes, counts) if n == 0]


def summarize(pred: pd.DataFrame, classes: Sequence[str]) -> dict:
    """Everything the store keeps as a run's summary (JSON-serialisable).

    Classes absent from the evaluated predictions are left out of the pooled
    and per-part averages, and ``notes`` says which and why.
    """
    absent = absent_classes(pred["y_true"], classes)
    pooled = scores(pred["y_true"], pred["y_pred"], classes, exclude=absent)
    out = {"pooled": pooled.as_dict(), "fold_averaged": fold_averaged(pred, classes), "classes": list(classes),
           "absent_classes": absent, "notes": []}
    if absent:
        out["notes"].append(f"class(es) {', '.join(absent)} have no clip in the evaluated table: left out of "
                            f"UF1/UAR (averaged over {len(classes) - len(absent)} of {len(classes)} classes)")
    if "part" in pred and pred["part"].nunique() > 1:
        out["per_part"] = {}
        for part, g in pred.groupby("part"):
            missing = absent_classes(g["y_true"], classes)
            out["per_part"][str(part)] = {**scores(g["y_true"], g["y_pred"], classes, exclude=missing).as_dict(),
                                          "absent_classes": missing}
            if missing and set(missing) != set(absent):
                out["notes"].append(f"part {part}: {', '.join(missing)} absent, left out of its averages")
    return out
