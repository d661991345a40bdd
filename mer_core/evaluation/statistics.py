"""Uncertainty and paired tests for pooled MER metrics, at the level of subjects.

Why subjects and not clips: under LOSO the unit that varies between folds is
the held-out person; clips of one person are strongly correlated (same face,
same recording session). Resampling clips would pretend we have 442
independent draws when we really have 68 people, and the intervals would be
far too narrow. So every procedure here resamples or swaps *whole subjects*
and then recomputes the pooled figure (MEGC2019 convention: pool the
predictions of the chosen subjects, then UF1 = mean per-class F1 over all
classes of the class set).

Everything works on per-subject confusion matrices, so a bootstrap of 2000
replicates over 68 subjects is a single matrix product (milliseconds).

- :func:`bootstrap_intervals` - percentile CIs for UF1 / UAR / accuracy.
- :func:`paired_bootstrap` - CI and p-value of the difference A - B, resampling
  subjects jointly for both runs.
- :func:`paired_permutation` - sign-flip test: under the null "A and B are
  equally good", swapping A's and B's predictions for any subject leaves the
  distribution unchanged; p = share of swaps giving a gap at least as large.
- :func:`compare_problems` - why two runs cannot be compared (different data).
"""
from __future__ import annotations

import itertools
import math
from dataclasses import asdict, dataclass
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from mer_core.errors import MerError

METRICS = ("uf1", "uar", "accuracy")


@dataclass(frozen=True)
class Interval:
    """A point estimate with a (percentile bootstrap) confidence interval."""

    point: float
    low: float
    high: float
    level: float = 0.95

    def as_dict(self) -> dict[str, float]:
        return asdict(self)

    def text(self, digits: int = 3) -> str:
        return f"{self.point:.{digits}f} [{self.low:.{digits}f}, {self.high:.{digits}f}]"


@dataclass(frozen=True)
class PairedResult:
    """Outcome of a paired test of run A against run B over shared subjects."""

    method: str  # 'permutation' or 'bootstrap'
    metric: str
    a: float  # pooled metric of A on the shared samples
    b: float
    delta: float  # a - b
    p_value: float
    n_subjects: int
    n_samples: int
    n_resamples: int
    exact: bool = False  # permutation: every swap pattern enumerated
    low: float = float("nan")  # bootstrap: CI of the difference
    high: float = float("nan")
    level: float = 0.95

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


# --- confusion matrices ------------------------------------------------------
def subject_confusions(pred: pd.DataFrame, n_classes: int, subjects: Sequence[str] | None = None,
                       column: str = "y_pred") -> tuple[list[str], np.ndarray]:
    """Per-subject confusion matrices, shape (S, K, K), rows = true class.

    ``subjects`` fixes the order (and may include subjects absent from
    ``pred``, which get an all-zero matrix); default: sorted subjects of pred.
    """
    _need_columns(pred, ("subject", "y_true", column))
    order = sorted(pred["subject"].astype(str).unique()) if subjects is None else [str(s) for s in subjects]
    index = {s: i for i, s in enumerate(order)}
    yt = pred["y_true"].to_numpy(dtype=int)
    yp = pred[column].to_numpy(dtype=int)
    if len(yt) and (yt.min() < 0 or yp.min() < 0 or yt.max() >= n_classes or yp.max() >= n_classes):
        raise MerError(f"predictions hold labels outside 0..{n_classes - 1} (classes of the run)")
    si = pred["subject"].astype(str).map(index)
    if si.isna().any():
        missing = sorted(set(pred["subject"].astype(str)) - set(order))[:5]
        raise MerError(f"subject(s) {missing} are not in the given subject order")
    cms = np.zeros((len(order), n_classes, n_classes), dtype=np.int64)
    np.add.at(cms, (si.to_numpy(dtype=int), yt, yp), 1)
    return order, cms


def confusion_metrics(cm: np.ndarray) -> dict[str, np.ndarray]:
    """UF1, UAR and accuracy of one or many pooled confusion matrices (..., K, K).

    Same conventions as :func:`mer_core.evaluation.metrics.scores` (every class
    counts; an empty class scores 0), vectorised over leading axes.
    """
    cm = np.asarray(cm, dtype=float)
    tp = np.diagonal(cm, axis1=-2, axis2=-1)
    support = cm.sum(axis=-1)
    predicted = cm.sum(axis=-2)
    denom = support + predicted  # = 2TP + FP + FN
    f1 = np.divide(2 * tp, denom, out=np.zeros_like(tp), where=denom > 0)
    recall = np.divide(tp, support, out=np.zeros_like(tp), where=support > 0)
    n = support.sum(axis=-1)
    acc = np.divide(tp.sum(axis=-1), n, out=np.full_like(n, np.nan), where=n > 0)
    return {"uf1": f1.mean(axis=-1), "uar": recall.mean(axis=-1), "accuracy": acc}


def _resample_weights(rng: np.random.Generator, n_boot: int, n_subjects: int) -> np.ndarray:
    """(B, S) multiplicities of each subject in B bootstrap resamples."""
    idx = rng.integers(0, n_subjects, size=(n_boot, n_subjects))
    weights = np.zeros((n_boot, n_subjects))
    np.add.at(weights, (np.arange(n_boot)[:, None], idx), 1.0)
    return weights


def _pool(weights: np.ndarray, cms: np.ndarray) -> np.ndarray:
    k = cms.shape[-1]
    return (weights @ cms.reshape(cms.shape[0], k * k)).reshape(weights.shape[0], k, k)


def _percentiles(values: np.ndarray, level: float) -> tuple[float, float]:
    values = values[np.isfinite(values)]
    if not len(values):
        return float("nan"), float("nan")
    tail = (1 - level) / 2 * 100
    lo, hi = np.percentile(values, [tail, 100 - tail])
    return float(lo), float(hi)


# --- one run -------------------------------------------------------------------
def bootstrap_intervals(pred: pd.DataFrame, classes: Sequence[str], *, n_boot: int = 2000, seed: int = 0,
                        level: float = 0.95) -> dict[str, Interval]:
    """Subject-level bootstrap CIs of pooled UF1, UAR and accuracy.

    Each replicate draws as many subjects as the run has, with replacement,
    pools their predictions (a subject drawn twice counts twice) and
    recomputes the metric. The point estimate is the ordinary pooled figure.
    The seed is fixed so a page reload shows the same interval.
    """
    _check_level(level)
    if pred.empty:
        raise MerError("no predictions: a confidence interval needs at least one finished fold")
    _, cms = subject_confusions(pred, len(classes))
    point = confusion_metrics(cms.sum(axis=0))
    rng = np.random.default_rng(seed)
    boot = confusion_metrics(_pool(_resample_weights(rng, n_boot, cms.shape[0]), cms))
    out = {}
    for m in METRICS:
        lo, hi = _percentiles(boot[m], level)
        out[m] = Interval(float(point[m]), lo, hi, level)
    return out


def per_subject_confusions(pred: pd.DataFrame, classes: Sequence[str]) -> dict[str, list[list[int]]]:
    """{subject: confusion matrix as nested lists} (for hover text and exports)."""
    order, cms = subject_confusions(pred, len(classes))
    return {s: cm.tolist() for s, cm in zip(order, cms)}


# --- two runs ------------------------------------------------------------------
def paired_frame(pred_a: pd.DataFrame, pred_b: pd.DataFrame) -> pd.DataFrame:
    """Samples tested by both runs, one row each: subject, y_true, pred_a, pred_b (+ part, clip, fold_a)."""
    _need_columns(pred_a, ("sample_id", "subject", "y_true", "y_pred"))
    _need_columns(pred_b, ("sample_id", "subject", "y_true", "y_pred"))
    keep_a = [c for c in ("sample_id", "subject", "part", "clip", "fold", "y_true", "y_pred") if c in pred_a]
    merged = pred_a[keep_a].merge(
        pred_b[["sample_id", "y_true", "y_pred"]], on="sample_id", suffixes=("", "_b"), how="inner"
    )
    if merged.empty:
        raise MerError("the two runs share no tested sample: they cannot be paired")
    clash = merged[merged["y_true"] != merged["y_true_b"]]
    if len(clash):
        raise MerError(f"sample {clash['sample_id'].iloc[0]!r} has label {clash['y_true'].iloc[0]} in run A but "
                       f"{clash['y_true_b'].iloc[0]} in run B: the runs use different labels (class sets?)")
    return merged.rename(columns={"y_pred": "pred_a", "y_pred_b": "pred_b"}).drop(columns=["y_true_b"])


def _paired_cms(paired: pd.DataFrame, n_classes: int) -> tuple[np.ndarray, np.ndarray]:
    order = sorted(paired["subject"].astype(str).unique())
    _, ca = subject_confusions(paired, n_classes, order, column="pred_a")
    _, cb = subject_confusions(paired, n_classes, order, column="pred_b")
    return ca, cb


def paired_permutation(pred_a: pd.DataFrame, pred_b: pd.DataFrame, classes: Sequence[str], *,
                       metric: str = "uf1", n_perm: int = 5000, seed: int = 0) -> PairedResult:
    """Paired permutation (sign-flip) test over subjects of pooled ``metric``.

    For each subject independently, A's and B's predictions are swapped with
    probability 1/2; the pooled A - B gap is recomputed. Two-sided p-value =
    share of swap patterns whose |gap| reaches the observed |gap| (the
    observed pattern included, so p > 0). With few subjects (2^S <= n_perm)
    every pattern is enumerated and the p-value is exact.
    """
    _check_metric(metric)
    paired = paired_frame(pred_a, pred_b)
    ca, cb = _paired_cms(paired, len(classes))
    s = ca.shape[0]
    observed_a = float(confusion_metrics(ca.sum(0))[metric])
    observed_b = float(confusion_metrics(cb.sum(0))[metric])
    delta = observed_a - observed_b
    exact = s <= 20 and 2 ** s <= n_perm
    if exact:
        swaps = np.array(list(itertools.product((0.0, 1.0), repeat=s))) if s else np.zeros((1, 0))
    else:
        swaps = np.random.default_rng(seed).integers(0, 2, size=(n_perm, s)).astype(float)
    pa = _pool(1 - swaps, ca) + _pool(swaps, cb)
    pb = _pool(swaps, ca) + _pool(1 - swaps, cb)
    gaps = confusion_metrics(pa)[metric] - confusion_metrics(pb)[metric]
    tol = 1e-12
    hits = int(np.sum(np.abs(gaps) >= abs(delta) - tol))
    p = hits / len(swaps) if exact else (hits + 1) / (len(swaps) + 1)
    return PairedResult("permutation", metric, observed_a, observed_b, delta, min(1.0, p), s, len(paired),
                        len(swaps), exact=exact)


def paired_bootstrap(pred_a: pd.DataFrame, pred_b: pd.DataFrame, classes: Sequence[str], *,
                     metric: str = "uf1", n_boot: int = 2000, seed: int = 0, level: float = 0.95) -> PairedResult:
    """Paired subject bootstrap of the gap A - B in pooled ``metric``.

    The same resampled subjects are used for both runs, so what the two runs
    share (hard subjects) cancels out. Two-sided p-value = twice the smaller
    share of replicates on either side of zero (capped at 1).
    """
    _check_metric(metric)
    _check_level(level)
    paired = paired_frame(pred_a, pred_b)
    ca, cb = _paired_cms(paired, len(classes))
    a = float(confusion_metrics(ca.sum(0))[metric])
    b = float(confusion_metrics(cb.sum(0))[metric])
    weights = _resample_weights(np.random.default_rng(seed), n_boot, ca.shape[0])
    gaps = confusion_metrics(_pool(weights, ca))[metric] - confusion_metrics(_pool(weights, cb))[metric]
    lo, hi = _percentiles(gaps, level)
    p = min(1.0, 2 * min(float(np.mean(gaps <= 0)), float(np.mean(gaps >= 0))))
    return PairedResult("bootstrap", metric, a, b, a - b, p, ca.shape[0], len(paired), n_boot,
                        low=lo, high=hi, level=level)


def verdict(result: PairedResult, *, names: tuple[str, str] = ("A", "B"), alpha: float = 0.05) -> str:
    """A plain-language reading of a paired test, for people who do not read p-values."""
    a, b = names
    m = result.metric.upper()
    gap = abs(result.delta)
    if result.delta == 0 and result.p_value >= 1 - 1e-9:
        return f"{a} and {b} make the same pooled {m} on the shared subjects: no difference to test."
    better, worse = (a, b) if result.delta > 0 else (b, a)
    floor = ""
    if result.method == "permutation" and result.exact and result.n_subjects and 2.0 / 2 ** result.n_subjects > alpha:
        floor = (f" With only {result.n_subjects} subjects no result can reach p < {alpha:g}; "
                 "more subjects are needed for a conclusion.")
    if result.p_value < alpha:
        return (f"{better} scores {gap:.3f} {m} higher than {worse}, and a gap this large rarely appears by "
                f"chance when subjects' predictions are swapped between the runs (p = {result.p_value:.3g} "
                f"over {result.n_subjects} subjects): the difference is unlikely to be luck.")
    return (f"{better} scores {gap:.3f} {m} higher than {worse}, but swapping subjects' predictions between the "
            f"runs produces gaps this large often (p = {result.p_value:.3g} over {result.n_subjects} subjects): "
            f"no evidence that one run is better.{floor}")


# --- which runs can be compared --------------------------------------------------
def compare_problems(runs: Sequence[Mapping[str, Any]]) -> list[str]:
    """Reasons the given runs (store rows / ``RunStore.get_run`` dicts) cannot be compared.

    Runs must share the dataset, the protocol, the class list and, when both
    recorded one, the dataset fingerprint (same clips, labels, annotations).
    An empty list means they are comparable.
    """
    if len(runs) < 2:
        return ["pick at least two runs to compare"]
    problems = []
    ref = runs[0]
    for key, what in (("dataset", "dataset"), ("protocol", "protocol"), ("class_set", "class set")):
        values = {str(r.get(key, "")) for r in runs}
        if len(values) > 1:
            detail = ", ".join(f"{r['id']}: {r.get(key, '')!r}" for r in runs)
            problems.append(f"the runs use different {what}s ({detail}); scores on different {what}s are not comparable")
    classes = {tuple(r.get("classes", ())) for r in runs if r.get("classes") is not None}
    if len(classes) > 1:
        problems.append("the runs predict different class lists: " + "; ".join(
            f"{r['id']}: {list(r.get('classes', []))}" for r in runs))
    prints = {str(r.get("dataset_fingerprint", "")) for r in runs if r.get("dataset_fingerprint")}
    if len(prints) > 1 and not problems:
        detail = ", ".join(f"{r['id']}: {r.get('dataset_fingerprint') or '-'}" for r in runs)
        problems.append(f"the runs are on {ref.get('dataset')!r} but saw different data (dataset fingerprints "
                        f"{detail}): clips, labels or annotations changed between them")
    return problems


def disagreements(pred_a: pd.DataFrame, pred_b: pd.DataFrame) -> pd.DataFrame:
    """Samples the two runs predict differently, with who was right."""
    paired = paired_frame(pred_a, pred_b)
    out = paired[paired["pred_a"] != paired["pred_b"]].copy()
    ok_a = out["pred_a"] == out["y_true"]
    ok_b = out["pred_b"] == out["y_true"]
    out["right"] = np.select([ok_a, ok_b], ["A", "B"], default="neither")
    return out.reset_index(drop=True)


# --- helpers -----------------------------------------------------------------------
def _need_columns(df: pd.DataFrame, cols: Sequence[str]) -> None:
    missing = [c for c in cols if c not in df.columns]
    if missing:
        raise MerError(f"predictions lack column(s) {missing}; have {list(df.columns)}")


def _check_metric(metric: str) -> None:
    if metric not in METRICS:
        raise MerError(f"metric {metric!r}: expected one of {list(METRICS)}")


def _check_level(level: float) -> None:
    if not 0 < level < 1 or math.isnan(level):
        raise MerError(f"confidence level {level}: expected a share between 0 and 1 (e.g. 0.95)")
