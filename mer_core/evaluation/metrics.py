"""One metrics core for every figure of a run (MEGC2019 convention).

Every UF1, UAR, accuracy and per-class F1/recall in MER Bench comes from
:func:`confusion_scores`, which works on one confusion matrix or on a stack
of them (per subject, per fold, per bootstrap resample, per permutation):
the headline, the per-subject bars, the intervals and the paired tests are
one computation, so they cannot disagree.

On a confusion matrix C (rows: true class, columns: predicted class)::

    support_c = sum_j C[c, j]     predicted_c = sum_i C[i, c]     TP_c = C[c, c]
    F1_c      = 2 TP_c / (support_c + predicted_c)      (= 2TP / (2TP + FP + FN))
    recall_c  = TP_c / support_c
    UF1 = mean_c F1_c      UAR = mean_c recall_c      accuracy = trace(C) / sum(C)

The headline figures are computed on predictions *pooled over all folds*
(MEGC2019), over *all* classes of the class set: a fold or a subject that
lacks a class cannot shrink the average, because pooling comes first.

One rule for classes without data. A per-class figure whose denominator is
zero is *undefined* and is left out of its average: never counted as 0, never
as 1.

- A class with no true clip and no prediction (an *absent* class): F1 and
  recall are undefined; it is left out of both UF1 and UAR.
- A class with no true clip that the model predicts anyway: every such
  prediction is a false positive, F1 = 0 and counts in UF1; recall is
  undefined and left out of UAR.
- A class with clips: both figures are defined and count (recall 0 if the
  model never finds it).

This is scikit-learn's ``f1_score`` / ``recall_score`` with ``labels=`` all
classes, ``average='macro'`` and ``zero_division=np.nan``. It is also what the
MEGC2019 evaluation script (``recognition_evaluation``, copied into most MER
code) does for an absent class: its one-vs-rest confusion matrix is
degenerate and the class is skipped; a class predicted without clips gets F1
0 there too, and a recall of 0/0 that turns its UAR into NaN, where here that
recall is left out. On the full pooled predictions of a dataset
every class has clips and the rule never triggers. It matters on subsets: a
subject's clips, one part of a composite, one bootstrap resample. Counting an
absent class as 0 instead would score a subject with only negative clips, all
right, at UF1 1/3, and a resample that happens to draw no surprise clip would
lose a third of its UF1 for a reason unrelated to the model: the interval
would slide below the headline figure. With the rule, a run's headline UF1,
its interval's point and its per-subject figures are the same definition.

Per-class F1/recall that are undefined are stored as NaN (shown as blank).
The fold-averaged variant (mean of per-fold UF1) is kept separately and
labelled: some papers report it, and it is not comparable with the pooled
figure.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import pandas as pd

from mer_core.errors import MerError

METRICS = ("uf1", "uar", "accuracy")


@dataclass
class Scores:
    uf1: float
    uar: float
    accuracy: float
    n: int
    f1: dict[str, float] = field(default_factory=dict)  # NaN: undefined (no clip and no prediction)
    recall: dict[str, float] = field(default_factory=dict)  # NaN: undefined (no clip)
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


# --- the core ---------------------------------------------------------------------
def confusion_scores(cm: np.ndarray) -> dict[str, np.ndarray]:
    """Per-class F1/recall and UF1, UAR, accuracy of one or many confusion matrices (..., K, K).

    Returns arrays: ``f1`` and ``recall`` of shape (..., K), NaN where undefined;
    ``uf1``, ``uar``, ``accuracy`` and ``n`` (clips) of shape (...). UF1/UAR
    average the defined classes only (the module's one rule); a matrix with no
    clip at all has NaN for every figure.
    """
    cm = np.asarray(cm, dtype=float)
    if cm.ndim < 2 or cm.shape[-1] != cm.shape[-2]:
        raise ValueError(f"a confusion matrix must be square (..., K, K); got shape {cm.shape}")
    tp = np.diagonal(cm, axis1=-2, axis2=-1)
    support = cm.sum(axis=-1)
    predicted = cm.sum(axis=-2)
    denom = support + predicted  # = 2TP + FP + FN
    f1 = np.divide(2 * tp, denom, out=np.full_like(tp, np.nan), where=denom > 0)
    recall = np.divide(tp, support, out=np.full_like(tp, np.nan), where=support > 0)
    n = support.sum(axis=-1)
    accuracy = np.divide(tp.sum(axis=-1), n, out=np.full_like(n, np.nan), where=n > 0)
    return {"f1": f1, "recall": recall, "uf1": _mean_defined(f1), "uar": _mean_defined(recall),
            "accuracy": accuracy, "n": n}


def _mean_defined(values: np.ndarray) -> np.ndarray:
    """Mean over the last axis of the finite entries (NaN where none), without warnings."""
    defined = np.isfinite(values)
    count = defined.sum(axis=-1)
    total = np.where(defined, values, 0.0).sum(axis=-1)
    return np.divide(total, count, out=np.full(total.shape, np.nan), where=count > 0)


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


def group_confusions(pred: pd.DataFrame, n_classes: int, *, by: str = "subject",
                     order: Sequence[str] | None = None, column: str = "y_pred") -> tuple[list[str], np.ndarray]:
    """One confusion matrix per group (subject, fold, part), shape (G, K, K), rows = true class.

    Groups are named by ``str(value)``; ``order`` fixes their order (and may
    hold groups absent from ``pred``, which get an all-zero matrix); default:
    the sorted groups of ``pred``.
    """
    missing_cols = [c for c in (by, "y_true", column) if c not in pred.columns]
    if missing_cols:
        raise MerError(f"predictions lack column(s) {missing_cols}; have {list(pred.columns)}")
    keys = pred[by].astype(str)
    order = sorted(keys.unique()) if order is None else [str(s) for s in order]
    index = {s: i for i, s in enumerate(order)}
    yt = pred["y_true"].to_numpy(dtype=int)
    yp = pred[column].to_numpy(dtype=int)
    if len(yt) and (yt.min() < 0 or yp.min() < 0 or yt.max() >= n_classes or yp.max() >= n_classes):
        raise MerError(f"predictions hold labels outside 0..{n_classes - 1} (classes of the run)")
    gi = keys.map(index)
    if gi.isna().any():
        unknown = sorted(set(keys) - set(order))[:5]
        raise MerError(f"{by}(s) {unknown} are not in the given {by} order")
    cms = np.zeros((len(order), n_classes, n_classes), dtype=np.int64)
    np.add.at(cms, (gi.to_numpy(dtype=int), yt, yp), 1)
    return order, cms


# --- views of the core ------------------------------------------------------------
def scores_from_confusion(cm: np.ndarray, classes: Sequence[str]) -> Scores:
    """:class:`Scores` of one confusion matrix (K, K) with K = len(classes)."""
    cm = np.asarray(cm, dtype=np.int64)
    if cm.shape != (len(classes), len(classes)):
        raise ValueError(f"confusion matrix of shape {cm.shape} for {len(classes)} classes")
    s = confusion_scores(cm)
    return Scores(
        uf1=float(s["uf1"]),
        uar=float(s["uar"]),
        accuracy=float(s["accuracy"]),
        n=int(cm.sum()),
        f1={c: float(v) for c, v in zip(classes, s["f1"])},
        recall={c: float(v) for c, v in zip(classes, s["recall"])},
        confusion=cm.tolist(),
    )


def scores(y_true: Sequence[int], y_pred: Sequence[int], classes: Sequence[str]) -> Scores:
    """UF1, UAR, accuracy, per-class F1/recall and the confusion matrix (the module's one rule)."""
    return scores_from_confusion(confusion_matrix(y_true, y_pred, len(classes)), classes)


def per_group(pred: pd.DataFrame, classes: Sequence[str], by: str) -> pd.DataFrame:
    """Per-subject (or per-part, per-fold) figures: n, accuracy, UF1, UAR, in one vectorised pass.

    ``pred`` needs integer columns ``y_true``, ``y_pred`` and the grouping
    column; groups come out sorted by name. A subject's UF1 averages the
    classes it shows or is predicted as (the module's one rule).
    """
    cols = [by, "n", "accuracy", "uf1", "uar"]
    if pred.empty:
        return pd.DataFrame(columns=cols)
    order, cms = group_confusions(pred, len(classes), by=by)
    s = confusion_scores(cms)
    return pd.DataFrame({by: order, "n": s["n"].astype(int), "accuracy": s["accuracy"], "uf1": s["uf1"],
                         "uar": s["uar"]}, columns=cols)


def fold_averaged(pred: pd.DataFrame, classes: Sequence[str]) -> dict[str, float]:
    """Mean over folds of per-fold UF1/UAR: the *labelled* variant, not comparable with the pooled figure."""
    per = per_group(pred, classes, "fold")
    return {m: float(per[m].mean()) if len(per) else float("nan") for m in ("uf1", "uar")}


def absent_classes(y_true: Sequence[int], classes: Sequence[str]) -> list[str]:
    """Classes with no clip among ``y_true`` (integer labels): their recall is undefined."""
    counts = np.bincount(np.asarray(y_true, dtype=int), minlength=len(classes))
    return [c for c, n in zip(classes, counts) if n == 0]


def _rule_note(where: str, s: Scores, classes: Sequence[str], missing: list[str]) -> str:
    """What the one rule did to the averages of ``where`` (a class with no clip)."""
    k = len(classes)
    predicted = [c for c in missing if np.isfinite(s.f1[c])]
    n_f1 = sum(np.isfinite(s.f1[c]) for c in classes)
    text = (f"{where}: class(es) {', '.join(missing)} have no clip, so their recall is undefined and left out of "
            f"UAR (averaged over {k - len(missing)} of {k} classes)")
    if predicted:
        return text + (f"; {', '.join(predicted)} predicted anyway: F1 0, counted in UF1 (averaged over {n_f1} "
                       f"of {k} classes)")
    return text + f"; never predicted either, so left out of UF1 too (averaged over {n_f1} of {k} classes)"


def summarize(pred: pd.DataFrame, classes: Sequence[str]) -> dict:
    """Everything the store keeps as a run's summary (JSON-serialisable).

    Pooled, fold-averaged and (composite runs) per-part figures, all under the
    module's one rule; ``notes`` says where a class had no clip and what that
    did to the averages.
    """
    pooled = scores(pred["y_true"], pred["y_pred"], classes)
    absent = absent_classes(pred["y_true"], classes)
    out = {"pooled": pooled.as_dict(), "fold_averaged": fold_averaged(pred, classes), "classes": list(classes),
           "absent_classes": absent, "notes": []}
    if absent:
        out["notes"].append(_rule_note("evaluated table", pooled, classes, absent))
    if "part" in pred and pred["part"].nunique() > 1:
        out["per_part"] = {}
        for part, g in pred.groupby("part"):
            missing = absent_classes(g["y_true"], classes)
            s = scores(g["y_true"], g["y_pred"], classes)
            out["per_part"][str(part)] = {**s.as_dict(), "absent_classes": missing}
            if missing and set(missing) != set(absent):
                out["notes"].append(_rule_note(f"part {part}", s, classes, missing))
    return out
