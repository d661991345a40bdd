"""Context for a score, in words and numbers: what chance scores, and what an honest-vs-oracle gap means.

* :func:`chance_levels`: the UF1 and UAR a predictor that ignores the clips
  would get on a run's class counts, for two such guessers: one drawing each
  class with equal probability ("uniform"), one drawing with the class
  frequencies ("priors"). UAR is 1 / (classes with clips) for any guesser
  that ignores the clips; UF1 is the expected per-class F1 ``2 p q / (p + q)``
  (``p`` the class's share of clips, ``q`` the guesser's probability of it),
  averaged over the classes with clips (the large-set expectation: ratio of
  expected counts).
* :func:`uniform_guess` / :func:`group_chance`: what guessing each class
  with equal probability scores on one subject's (or part's) clips, to draw
  beside per-subject bars.
* :func:`oracle_gap_sentence`: the honest-vs-oracle panel's sentence, which
  must not call a negative gap an inflation.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

GAP_TOLERANCE = 0.0005  # |oracle - honest| below this is "no gap" (scores are shown with 3 decimals)


@dataclass(frozen=True)
class ChanceLevels:
    """Expected scores of guessers that ignore the clips, for one set of class counts."""

    uf1_uniform: float
    uf1_priors: float
    uar: float
    classes: int  # classes with at least one clip

    def text(self) -> str:
        return (f"chance: UF1 {self.uf1_uniform:.3f} guessing uniformly, {self.uf1_priors:.3f} guessing with the "
                f"class frequencies; UAR {self.uar:.3f} for any guess ({self.classes} classes)")


def chance_levels(counts: Mapping[str, int] | Sequence[int]) -> ChanceLevels:
    """:class:`ChanceLevels` for clips per class (a mapping or a sequence); classes without clips are left out,
    as the metrics core leaves them out of UF1 and UAR. ValueError when no class has a clip."""
    values = [int(v) for v in (counts.values() if isinstance(counts, Mapping) else counts)]
    present = [v for v in values if v > 0]
    if not present:
        raise ValueError(f"chance levels need at least one clip; got class counts {values}")
    k = len(present)
    priors = 1.0 / k  # q = p: each class's F1 is its share, and the shares sum to one
    return ChanceLevels(uf1_uniform=uniform_guess(present, k)["uf1"], uf1_priors=priors, uar=1.0 / k, classes=k)


def uniform_guess(counts: Sequence[int], n_classes: int) -> dict[str, float]:
    """Expected accuracy, UAR and UF1 of guessing each of ``n_classes`` classes with equal probability, on clips
    with these class counts (large-sample expectation; ValueError without a clip).

    Accuracy and UAR are ``1 / n_classes`` whatever the counts. UF1 averages the per-class F1 ``2 p q / (p + q)``
    (``q = 1 / n_classes``) over all ``n_classes`` classes, because a group's UF1 averages the classes it shows or
    is predicted as, and a uniform guess predicts every class: a class the group never shows scores F1 0.
    """
    values = np.asarray(counts, dtype=float)
    if values.sum() <= 0 or n_classes < 1:
        raise ValueError(f"a chance level needs at least one clip and one class; got counts {list(counts)}, "
                         f"{n_classes} classes")
    p, q = values / values.sum(), 1.0 / n_classes
    f1 = np.where(p > 0, 2 * p * q / np.maximum(p + q, 1e-12), 0.0)
    return {"accuracy": q, "uar": q, "uf1": float(f1.sum() / n_classes)}


def group_chance(pred: pd.DataFrame, classes: Sequence[str], by: str = "subject") -> pd.DataFrame:
    """:func:`uniform_guess` per group of ``pred`` (integer ``y_true`` and the ``by`` column), sorted by name as
    :func:`~mer_core.evaluation.metrics.per_group` sorts its rows."""
    cols = [by, "accuracy", "uar", "uf1"]
    if pred.empty:
        return pd.DataFrame(columns=cols)
    rows = []
    for name, grp in pred.groupby(by, sort=True):
        counts = np.bincount(grp["y_true"].to_numpy(dtype=int), minlength=len(classes))
        rows.append({by: name, **uniform_guess(counts, len(classes))})
    return pd.DataFrame(rows, columns=cols)


def oracle_gap_sentence(honest_uf1: float, oracle_uf1: float) -> str:
    """What the oracle (each fold's epoch chosen on its own test subject) against the honest figure means here."""
    gap = oracle_uf1 - honest_uf1
    head = ("The oracle keeps, for each fold, the epoch that scored best on that fold's own test subject: a choice "
            "no real deployment can make. ")
    if gap > GAP_TOLERANCE:
        return head + (f"The gap of {gap:+.3f} UF1 is how much that selection, common in published code, would "
                       "inflate this run. It is not a result.")
    if gap < -GAP_TOLERANCE:
        return head + (f"Here it scores {-gap:.3f} UF1 below the honest figure: picking each fold's epoch on its own "
                       "test subject did not pay off once all folds' predictions were pooled, so the fixed epoch "
                       "happened to be the better choice on these subjects. That is no inflation, and no reason to "
                       "prefer the oracle: it is still not a result.")
    return head + ("On this run it scores the same as the honest figure: selecting on the test subject would not have "
                   "changed the score. It is still not a result.")
