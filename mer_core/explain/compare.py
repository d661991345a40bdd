"""Two runs' explanation reports compared, paired over the clips both explained.

``compare_reports(report_a, report_b, measure, method)`` takes the per-clip
values of one measure for one method from each report (reports of two runs
on the same dataset share sample ids), keeps the clips both have, and tests
the mean per-clip difference A - B with the paired sign-flip permutation test
of :func:`mer_core.evaluation.statistics.sign_flip_test` (each clip's
difference keeps or flips its sign with probability 1/2; exact while
2^clips <= n_perm, i.e. up to 12 clips at the default 5000). The answer
carries a plain sentence, e.g. "MFDAN's Integrated Gradients localise the
true AUs better than DenseAttention's (...), p = 0.004".
"""
from __future__ import annotations

from typing import Any

import numpy as np

from mer_core.errors import MerError
from mer_core.evaluation.statistics import sign_flip_test
from mer_core.explain.report import LABELS, MEASURES

LOCALISATION = ("au_share", "rank_accuracy", "roc_auc", "topk_iou", "pointing", "blink_share")


def _values(report: dict[str, Any], method: str, measure: str) -> dict[str, float]:
    out = {}
    for r in report.get("rows", []):
        v = r.get(measure)
        if r.get("method") == method and v is not None and np.isfinite(v):
            out[str(r["sample_id"])] = float(v)
    return out


def compare_reports(report_a: dict[str, Any], report_b: dict[str, Any], *, measure: str = "au_share",
                    method: str = "integrated_gradients", method_b: str | None = None,
                    names: tuple[str, str] | None = None, alpha: float = 0.05, n_perm: int = 5000,
                    seed: int = 0) -> dict[str, Any]:
    """Paired comparison of one measure between two reports; returns values, p and a ``sentence``."""
    if measure not in MEASURES:
        raise MerError(f"compare reports: unknown measure {measure!r}; valid: {', '.join(MEASURES)}")
    method_b = method_b or method
    va, vb = _values(report_a, method, measure), _values(report_b, method_b, measure)
    shared = sorted(set(va) & set(vb))
    if not shared:
        raise MerError(f"compare reports: runs {report_a.get('run')} and {report_b.get('run')} share no clip with "
                       f"a {measure} value for {method} / {method_b}; explain the same clips of the same dataset "
                       "(same --max-samples) in both")
    a = np.array([va[s] for s in shared])
    b = np.array([vb[s] for s in shared])
    diffs = a - b
    p = sign_flip_test(a, b, n_perm=n_perm, seed=seed).p_value
    na, nb = names or (str(report_a.get("model", "A")), str(report_b.get("model", "B")))
    if na == nb:
        na, nb = f"{na} (run {report_a.get('run')})", f"{nb} (run {report_b.get('run')})"
    label, better, _, _ = MEASURES[measure]
    ma, mb = LABELS.get(method, method), LABELS.get(method_b, method_b)
    subject_a, subject_b = f"{na}'s {ma}", (f"{nb}'s" if method_b == method else f"{nb}'s {mb}")
    a_wins = diffs.mean() < 0 if better == "lower" else diffs.mean() > 0
    win, lose = (subject_a, subject_b) if a_wins else (f"{nb}'s {mb}", f"{na}'s" if method_b == method else
                                                       f"{na}'s {ma}")
    verb = "localise the true AUs better than" if measure in LOCALISATION else f"do better on {label} than"
    numbers = (f"{label} {a.mean():.3f} vs {b.mean():.3f} over {len(shared)} shared clips, paired sign-flip test "
               f"p = {p:.3g}")
    if not np.any(diffs):
        sentence = f"{subject_a} and {subject_b} score the same {label} on the {len(shared)} shared clips."
    elif p < alpha:
        sentence = f"{win} {verb} {lose} ({numbers})."
    else:
        sentence = (f"{win} {verb} {lose} on average, but a gap this size is common when the clips' differences "
                    f"flip sign at random ({numbers}): no evidence that one is better.")
    return {"measure": measure, "method_a": method, "method_b": method_b, "a": float(a.mean()),
            "b": float(b.mean()), "delta": float(diffs.mean()), "p_value": float(p), "n_clips": len(shared),
            "sentence": sentence}
