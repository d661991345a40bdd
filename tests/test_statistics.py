"""Subject-level bootstrap intervals and paired tests (known answers)."""
import numpy as np
import pandas as pd
import pytest

from mer_core.errors import MerError
from mer_core.evaluation.metrics import scores
from mer_core.evaluation.statistics import (
    bootstrap_intervals,
    compare_problems,
    confusion_metrics,
    disagreements,
    paired_bootstrap,
    paired_frame,
    paired_permutation,
    subject_confusions,
    verdict,
)

CLASSES = ["negative", "positive", "surprise"]


def make_pred(n_subjects: int = 30, per_subject: int = 8, accuracy: float = 0.6, seed: int = 0,
              truth_seed: int = 100) -> pd.DataFrame:
    """Predictions of a fake run: same samples/labels for a given truth_seed, accuracy controls the errors."""
    truth_rng = np.random.default_rng(truth_seed)
    rng = np.random.default_rng(seed)
    n = n_subjects * per_subject
    y_true = truth_rng.integers(0, 3, n)
    wrong = (y_true + rng.integers(1, 3, n)) % 3
    y_pred = np.where(rng.random(n) < accuracy, y_true, wrong)
    return pd.DataFrame({
        "sample_id": [f"d/s{i // per_subject:02d}/c{i}" for i in range(n)],
        "subject": [f"d:s{i // per_subject:02d}" for i in range(n)],
        "fold": [i // per_subject for i in range(n)],
        "y_true": y_true, "y_pred": y_pred,
    })


def test_confusion_metrics_match_the_metrics_core():
    pred = make_pred(accuracy=0.5)
    ref = scores(pred["y_true"], pred["y_pred"], CLASSES)
    _, cms = subject_confusions(pred, 3)
    got = confusion_metrics(cms.sum(0))
    assert got["uf1"] == pytest.approx(ref.uf1)
    assert got["uar"] == pytest.approx(ref.uar)
    assert got["accuracy"] == pytest.approx(ref.accuracy)
    assert cms.sum() == len(pred) and cms.shape == (30, 3, 3)


def test_bootstrap_interval_covers_the_pooled_value_and_is_reproducible():
    pred = make_pred(accuracy=0.6)
    ci = bootstrap_intervals(pred, CLASSES, n_boot=500, seed=3)
    ref = scores(pred["y_true"], pred["y_pred"], CLASSES)
    for m, value in (("uf1", ref.uf1), ("uar", ref.uar), ("accuracy", ref.accuracy)):
        assert ci[m].point == pytest.approx(value)
        assert ci[m].low < value < ci[m].high
        assert 0.02 < ci[m].high - ci[m].low < 0.4  # a real spread, not degenerate
    again = bootstrap_intervals(pred, CLASSES, n_boot=500, seed=3)
    assert again["uf1"] == ci["uf1"]


def test_bootstrap_resamples_subjects_not_clips():
    """Perfect subjects and hopeless subjects: clip resampling would be far narrower."""
    pred = make_pred(n_subjects=10, per_subject=20, accuracy=1.0)
    bad = pred["fold"] % 2 == 0
    pred.loc[bad, "y_pred"] = (pred.loc[bad, "y_true"] + 1) % 3
    ci = bootstrap_intervals(pred, CLASSES, n_boot=1000)["accuracy"]
    assert ci.point == pytest.approx(0.5)
    # binomial over 200 clips: +-0.07; over 10 subjects of all-or-nothing: about +-0.3
    assert ci.high - ci.low > 0.4


def test_single_subject_interval_is_a_point():
    pred = make_pred(n_subjects=1, per_subject=12)
    ci = bootstrap_intervals(pred, CLASSES, n_boot=50)
    assert ci["uf1"].low == ci["uf1"].high == pytest.approx(ci["uf1"].point)


def test_permutation_on_identical_runs_gives_p_one():
    pred = make_pred()
    res = paired_permutation(pred, pred.copy(), CLASSES, n_perm=500)
    assert res.delta == 0 and res.p_value == pytest.approx(1.0)
    boot = paired_bootstrap(pred, pred.copy(), CLASSES, n_boot=300)
    assert boot.p_value == pytest.approx(1.0) and boot.low == boot.high == 0
    assert "same pooled UF1" in verdict(res)


def test_clearly_different_runs_give_small_p_and_a_verdict():
    good = make_pred(accuracy=0.9, seed=1)
    poor = make_pred(accuracy=0.35, seed=2)
    res = paired_permutation(good, poor, CLASSES, n_perm=2000)
    assert res.delta > 0.3
    assert res.p_value < 0.01 and not res.exact
    boot = paired_bootstrap(good, poor, CLASSES, n_boot=1000)
    assert boot.p_value < 0.01 and 0 < boot.low < boot.delta < boot.high
    text = verdict(res, names=("good", "poor"))
    assert text.startswith("good scores") and "unlikely to be luck" in text
    # direction: B better than A
    assert verdict(paired_permutation(poor, good, CLASSES, n_perm=500), names=("poor", "good")).startswith("good")


def test_similar_runs_are_not_called_different():
    a = make_pred(accuracy=0.6, seed=5)
    b = a.copy()
    b.loc[[3, 50, 100, 170], "y_pred"] = (b.loc[[3, 50, 100, 170], "y_pred"] + 1) % 3  # 4 of 240 clips differ
    res = paired_permutation(a, b, CLASSES, n_perm=2000)
    assert res.p_value > 0.05
    assert "no evidence" in verdict(res)


def test_exact_enumeration_with_few_subjects():
    good = make_pred(n_subjects=4, per_subject=10, accuracy=1.0, seed=1)
    poor = make_pred(n_subjects=4, per_subject=10, accuracy=0.0, seed=2)
    res = paired_permutation(good, poor, CLASSES)
    assert res.exact and res.n_resamples == 16
    # only the observed pattern and its mirror image reach the observed gap: p = 2/16
    assert res.p_value == pytest.approx(2 / 16)
    assert "only 4 subjects" in verdict(res)


def test_pairing_uses_shared_samples_and_rejects_label_clashes():
    a = make_pred()
    b = make_pred().iloc[10:]
    assert len(paired_frame(a, b)) == len(a) - 10
    clash = make_pred()
    clash.loc[0, "y_true"] = (clash.loc[0, "y_true"] + 1) % 3
    with pytest.raises(MerError, match="different labels"):
        paired_frame(a, clash)
    other = make_pred().assign(sample_id=lambda d: "x" + d["sample_id"])
    with pytest.raises(MerError, match="share no tested sample"):
        paired_permutation(a, other, CLASSES)


def test_disagreements_say_who_was_right():
    a = make_pred(accuracy=0.6, seed=1)
    b = make_pred(accuracy=0.6, seed=2)
    d = disagreements(a, b)
    assert len(d) == int((a["y_pred"] != b["y_pred"]).sum())
    row = d.iloc[0]
    expected = "A" if row.pred_a == row.y_true else ("B" if row.pred_b == row.y_true else "neither")
    assert row.right == expected


def test_compare_problems():
    base = {"id": "r1", "dataset": "synthetic", "protocol": "loso", "class_set": "composite3",
            "classes": CLASSES, "dataset_fingerprint": "abc"}
    assert compare_problems([base, dict(base, id="r2")]) == []
    msg = compare_problems([base, dict(base, id="r2", dataset="casme2")])
    assert msg and "different datasets" in msg[0] and "casme2" in msg[0]
    assert "different protocols" in compare_problems([base, dict(base, id="r2", protocol="holdout")])[0]
    assert "fingerprint" in compare_problems([base, dict(base, id="r2", dataset_fingerprint="xyz")])[0]
    assert compare_problems([base])  # one run is not a comparison


def test_bad_inputs_raise_clear_errors():
    pred = make_pred()
    with pytest.raises(MerError, match="metric"):
        paired_permutation(pred, pred, CLASSES, metric="f2")
    with pytest.raises(MerError, match="labels outside"):
        bootstrap_intervals(pred.assign(y_pred=5), CLASSES)
    with pytest.raises(MerError, match="no predictions"):
        bootstrap_intervals(pred.iloc[:0], CLASSES)
