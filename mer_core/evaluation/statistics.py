"""Uncertainty and paired tests for MER metrics, at the level of subjects.

Why subjects and not clips: under LOSO the unit that varies between folds is
the held-out person; clips of one person are strongly correlated (same face,
same recording session). Resampling clips would pretend we have 442
independent draws when we really have 68 people, and the intervals would be
far too narrow. So every procedure here resamples or swaps *whole subjects*.

Every figure comes from the one metrics core,
:func:`mer_core.evaluation.metrics.confusion_scores`, on per-subject
confusion matrices: a bootstrap of 2000 replicates over 68 subjects is a
single matrix product (milliseconds), and the interval's point *is* the run's
headline figure (same pooled matrix, same rule for a class without clips).

- :func:`bootstrap_intervals` - percentile CIs of pooled UF1 / UAR / accuracy:
  subjects resampled with replacement, their predictions pooled and rescored.
- :func:`sign_flip_test` - THE paired test of MER Bench, used by Compare (two
  runs) and by a two-arm Study alike: per-subject differences A - B of a
  metric, two-sided sign-flip permutation test of their mean. Under the null
  "A and B are equally good", swapping A's and B's predictions for any
  subject (flipping the sign of its difference) leaves the distribution
  unchanged. Exact (every sign pattern) when 2^subjects <= n_perm.
- :func:`paired_permutation` / :func:`paired_bootstrap` - that test, and a
  subject bootstrap CI of the same mean difference, for two runs' predictions
  on the samples both tested (:func:`paired_subject_scores`).
- :func:`compare_problems` - why two runs cannot be compared (different data).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from mer_core.errors import MerError
from mer_core.evaluation.metrics import METRICS, confusion_scores, group_confusions


@dataclass(frozen=True)
class Interval:
    """A point estimate with a percentile bootstrap confidence interval.

    The point and the resampled figures use the same definition, so the
    interval normally contains its point; a percentile interval is not forced
    to (strongly skewed resamples), and :attr:`contains_point` says so.
    """

    point: float
    low: float
    high: float
    level: float = 0.95

    @property
    def contains_point(self) -> bool:
        return self.low - 1e-12 <= self.point <= self.high + 1e-12

    def as_dict(self) -> dict[str, float]:
        return asdict(self)

    def text(self, digits: int = 3) -> str:
        return f"{self.point:.{digits}f} [{self.low:.{digits}f}, {self.high:.{digits}f}]"


@dataclass(frozen=True)
class PairedResult:
    """Outcome of a paired test of run A against run B over shared subjects.

    ``a`` and ``b`` are the mean per-subject metric of each run on the shared
    samples, ``delta`` = a - b the mean per-subject difference: the statistic
    both tests are about.
    """

    method: str  # 'permutation' or 'bootstrap'
    metric: str
    a: float
    b: float
    delta: float  # a - b
    p_value: float
    n_subjects: int
    n_samples: int
    n_resamples: int
    exact: bool = False  # permutation: every sign pattern enumerated
    low: float = float("nan")  # bootstrap: CI of the mean difference
    high: float = float("nan")
    level: float = 0.95

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class SignFlip:
    """Outcome of :func:`sign_flip_test`."""

    delta: float  # mean of a - b
    p_value: float
    exact: bool
    n_resamples: int
    n_subjects: int


# --- subject resampling ------------------------------------------------------
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
    rescores them with the metrics core. The point estimate is the run's
    pooled figure (``summarize(pred, classes)["pooled"]``, the same core on the
    same matrix); the interval is the plain percentile interval of the
    replicates. The seed is fixed so a page reload shows the same interval.
    """
    _check_level(level)
    if pred.empty:
        raise MerError("no predictions: a confidence interval needs at least one finished fold")
    _, cms = group_confusions(pred, len(classes))
    point = confusion_scores(cms.sum(axis=0))
    rng = np.random.default_rng(seed)
    boot = confusion_scores(_pool(_resample_weights(rng, n_boot, cms.shape[0]), cms))
    out = {}
    for m in METRICS:
        lo, hi = _percentiles(boot[m], level)
        out[m] = Interval(float(point[m]), lo, hi, level)
    return out


def per_subject_confusions(pred: pd.DataFrame, classes: Sequence[str]) -> dict[str, list[list[int]]]:
    """{subject: confusion matrix as nested lists} (for hover text and exports)."""
    order, cms = group_confusions(pred, len(classes))
    return {s: cm.tolist() for s, cm in zip(order, cms)}


# --- the paired test ---------------------------------------------------------------
def sign_flip_test(a: Sequence[float], b: Sequence[float], *, n_perm: int = 10000, seed: int = 0) -> SignFlip:
    """Two-sided paired sign-flip permutation test of mean(a - b) over subjects.

    ``a[i]`` and ``b[i]`` are one subject's scores under A and B. Every sign
    pattern of the differences is equally likely under the null; p = share
    of patterns whose |mean| reaches the observed |mean| (the observed pattern
    included, so p > 0). Exact (all 2^S patterns, p = hits / 2^S) when
    2^S <= n_perm; otherwise n_perm random patterns from ``seed`` and
    p = (hits + 1) / (n_perm + 1).
    """
    d = np.asarray(a, dtype=float) - np.asarray(b, dtype=float)
    if d.ndim != 1:
        raise MerError(f"per-subject scores must be two equal-length lists; got shapes {np.shape(a)}, {np.shape(b)}")
    if not len(d):
        raise MerError("no shared subject: a paired test needs at least one subject scored by both")
    if not np.isfinite(d).all():
        raise MerError("a per-subject score is missing (NaN): every shared subject needs a score under both")
    s = len(d)
    exact = s <= 20 and 2 ** s <= n_perm
    if exact:
        signs = 1.0 - 2.0 * ((np.arange(2 ** s)[:, None] >> np.arange(s)) & 1)
    else:
        signs = 1.0 - 2.0 * np.random.default_rng(seed).integers(0, 2, size=(n_perm, s))
    delta = float(d.mean())
    gaps = signs @ d / s
    hits = int(np.sum(np.abs(gaps) >= abs(delta) - 1e-10))
    p = hits / len(signs) if exact else (hits + 1) / (len(signs) + 1)
    return SignFlip(delta, min(1.0, p), exact, len(signs), s)


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


def paired_subject_scores(pred_a: pd.DataFrame, pred_b: pd.DataFrame, classes: Sequence[str], *,
                          metric: str = "uf1") -> pd.DataFrame:
    """One row per shared subject: ``metric`` of A (``a``) and of B (``b``) on the clips both runs tested, ``n``.

    These are the numbers the paired tests are about (sorted by subject).
    """
    _check_metric(metric)
    paired = paired_frame(pred_a, pred_b)
    order, ca = group_confusions(paired, len(classes), column="pred_a")
    _, cb = group_confusions(paired, len(classes), order=order, column="pred_b")
    sa, sb = confusion_scores(ca), confusion_scores(cb)
    return pd.DataFrame({"subject": order, "a": sa[metric], "b": sb[metric], "n": sa["n"].astype(int)})


def paired_permutation(pred_a: pd.DataFrame, pred_b: pd.DataFrame, classes: Sequence[str], *,
                       metric: str = "uf1", n_perm: int = 10000, seed: int = 0) -> PairedResult:
    """:func:`sign_flip_test` of the per-subject ``metric`` of A against B (shared samples)."""
    subj = paired_subject_scores(pred_a, pred_b, classes, metric=metric)
    t = sign_flip_test(subj["a"], subj["b"], n_perm=n_perm, seed=seed)
    return PairedResult("permutation", metric, float(subj["a"].mean()), float(subj["b"].mean()), t.delta,
                        t.p_value, t.n_subjects, int(subj["n"].sum()), t.n_resamples, exact=t.exact)


def paired_bootstrap(pred_a: pd.DataFrame, pred_b: pd.DataFrame, classes: Sequence[str], *,
                     metric: str = "uf1", n_boot: int = 2000, seed: int = 0, level: float = 0.95) -> PairedResult:
    """Subject bootstrap of the mean per-subject difference A - B in ``metric`` (the permutation test's statistic).

    Resampling subjects keeps each subject's A and B scores together, so what
    the runs share (hard subjects) cancels out. Two-sided p-value = twice the
    smaller share of replicates on either side of zero (capped at 1).
    """
    _check_level(level)
    subj = paired_subject_scores(pred_a, pred_b, classes, metric=metric)
    d = (subj["a"] - subj["b"]).to_numpy(dtype=float)
    weights = _resample_weights(np.random.default_rng(seed), n_boot, len(d))
    gaps = weights @ d / len(d)
    lo, hi = _percentiles(gaps, level)
    p = min(1.0, 2 * min(float(np.mean(gaps <= 0)), float(np.mean(gaps >= 0))))
    a, b = float(subj["a"].mean()), float(subj["b"].mean())
    return PairedResult("bootstrap", metric, a, b, float(d.mean()), p, len(d), int(subj["n"].sum()), n_boot,
                        low=lo, high=hi, level=level)


def verdict(result: PairedResult, *, names: tuple[str, str] = ("A", "B"), alpha: float = 0.05) -> str:
    """A plain-language reading of a paired test, for people who do not read p-values."""
    a, b = names
    m = result.metric.upper()
    n = result.n_subjects
    gap = abs(result.delta)
    if result.delta == 0 and result.p_value >= 1 - 1e-9:
        return f"{a} and {b} make the same mean per-subject {m} on the {n} shared subjects: no difference to test."
    better, worse = (a, b) if result.delta > 0 else (b, a)
    head = f"{better} scores {gap:.3f} {m} higher than {worse} per subject (mean over {n} shared subjects)"
    floor = ""
    if result.method == "permutation" and result.exact and n and 2.0 / 2 ** n > alpha:
        floor = f" With only {n} subjects no result can reach p < {alpha:g}; more subjects are needed for a conclusion."
    if result.p_value < alpha:
        return (f"{head}, and a gap this large rarely appears by chance when subjects' predictions are swapped "
                f"between the runs (p = {result.p_value:.3g}): the difference is unlikely to be luck.")
    return (f"{head}, but swapping subjects' predictions between the runs produces gaps this large often "
            f"(p = {result.p_value:.3g}): no evidence that one run is better.{floor}")


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
