"""Subject-level bootstrap intervals and the paired test (known answers, scipy, the metrics core)."""
import numpy as np
import pandas as pd
import pytest
from scipy.stats import permutation_test as scipy_permutation_test

from mer_core.errors import MerError
from mer_core.evaluation.metrics import confusion_scores, group_confusions, per_group, scores, summarize
from mer_core.evaluation.statistics import (
    bootstrap_intervals,
    compare_problems,
    disagreements,
    paired_bootstrap,
    paired_frame,
    paired_permutation,
    paired_subject_scores,
    sign_flip_test,
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


def test_per_subject_confusions_pool_to_the_metrics_core():
    pred = make_pred(accuracy=0.5)
    ref = scores(pred["y_true"], pred["y_pred"], CLASSES)
    _, cms = group_confusions(pred, 3)
    got = confusion_scores(cms.sum(0))
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
        assert ci[m].low < value < ci[m].high and ci[m].contains_point
        assert 0.02 < ci[m].high - ci[m].low < 0.4  # a real spread, not degenerate
    again = bootstrap_intervals(pred, CLASSES, n_boot=500, seed=3)
    assert again["uf1"] == ci["uf1"]


def test_a_run_without_surprise_clips_has_its_headline_as_the_interval_point():
    """Worked by hand: negative and positive clips only, all right. The headline UF1 is (1 + 1) / 2 = 1.0;
    every resample is again all right on the classes it holds, so the interval is [1.0, 1.0] around the
    same 1.0 (counting the absent class as 0 made the point and the whole interval 2/3)."""
    pred = make_pred(n_subjects=6, per_subject=5, accuracy=1.0)
    pred["y_true"] = pred["y_pred"] = np.arange(len(pred)) % 2
    headline = summarize(pred, CLASSES)["pooled"]
    ci = bootstrap_intervals(pred, CLASSES, n_boot=300)
    for m in ("uf1", "uar", "accuracy"):
        assert headline[m] == pytest.approx(1.0)
        assert ci[m].point == headline[m] and ci[m].low == ci[m].high == pytest.approx(1.0)


def test_the_interval_point_is_the_headline_when_resamples_lose_a_class():
    """Few surprise clips, on two subjects: many resamples hold none. The point is still summarize's figure
    and the percentile interval contains it without any widening."""
    pred = make_pred(n_subjects=12, per_subject=6, accuracy=0.7, seed=7)
    rare = pred["y_true"] == 2
    keep = pred["subject"].isin(["d:s00", "d:s05"])
    pred.loc[rare & ~keep, "y_true"] = 0
    pred.loc[(pred["y_pred"] == 2) & ~keep, "y_pred"] = 1
    assert pred.loc[pred["y_true"] == 2, "subject"].nunique() == 2
    _, cms = group_confusions(pred, 3)
    weights = np.random.default_rng(0).multinomial(12, [1 / 12] * 12, size=400).astype(float)
    assert ((weights[:, [0, 5]].sum(1)) == 0).mean() > 0.1  # resamples without a surprise clip do occur
    headline = summarize(pred, CLASSES)["pooled"]
    ci = bootstrap_intervals(pred, CLASSES, n_boot=2000, seed=0)
    for m in ("uf1", "uar", "accuracy"):
        assert ci[m].point == pytest.approx(headline[m], abs=1e-12)
        assert ci[m].low <= headline[m] <= ci[m].high


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
    assert "same mean per-subject UF1" in verdict(res)


def test_clearly_different_runs_give_small_p_and_a_verdict():
    good = make_pred(accuracy=0.9, seed=1)
    poor = make_pred(accuracy=0.35, seed=2)
    res = paired_permutation(good, poor, CLASSES, n_perm=2000)
    assert res.delta > 0.3
    assert res.p_value < 0.01 and not res.exact
    boot = paired_bootstrap(good, poor, CLASSES, n_boot=1000)
    assert boot.delta == pytest.approx(res.delta)  # the bootstrap is about the permutation test's statistic
    assert boot.p_value < 0.01 and 0 < boot.low < boot.delta < boot.high
    text = verdict(res, names=("good", "poor"))
    assert text.startswith("good scores") and "unlikely to be luck" in text
    # direction: B better than A
    assert verdict(paired_permutation(poor, good, CLASSES, n_perm=500), names=("poor", "good")).startswith("good")


def test_the_statistic_is_the_mean_per_subject_difference():
    a = make_pred(accuracy=0.7, seed=3)
    b = make_pred(accuracy=0.5, seed=4)
    per_a = per_group(a, CLASSES, "subject").set_index("subject")["uf1"]
    per_b = per_group(b, CLASSES, "subject").set_index("subject")["uf1"]
    res = paired_permutation(a, b, CLASSES, n_perm=1000)
    assert res.delta == pytest.approx(float((per_a - per_b).mean()))
    assert res.a == pytest.approx(per_a.mean()) and res.b == pytest.approx(per_b.mean())
    assert res.n_subjects == 30 and res.n_samples == len(a)
    subj = paired_subject_scores(a, b, CLASSES)
    assert list(subj["subject"]) == list(per_a.index)
    assert np.allclose(subj["a"], per_a) and np.allclose(subj["b"], per_b)


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


@pytest.mark.parametrize("n", [3, 6, 9])
def test_sign_flip_test_agrees_with_scipy_when_exact(n: int):
    rng = np.random.default_rng(n)
    a, b = rng.random(n), rng.random(n) * 0.8
    ours = sign_flip_test(a, b, n_perm=10000)
    ref = scipy_permutation_test((a, b), lambda x, y, axis: np.mean(x - y, axis=axis), vectorized=True,
                                 permutation_type="samples", n_resamples=10000, alternative="two-sided")
    assert ours.exact and ours.n_resamples == 2 ** n
    assert ours.p_value == pytest.approx(ref.pvalue) and ours.delta == pytest.approx(np.mean(a - b))


def test_sign_flip_test_by_hand_and_monte_carlo():
    # differences 0.1, 0.2, 0.3: of the 8 sign patterns only +++ and --- reach |mean| >= 0.2
    t = sign_flip_test([0.6, 0.7, 0.8], [0.5, 0.5, 0.5])
    assert t.exact and t.p_value == pytest.approx(2 / 8) and t.delta == pytest.approx(0.2)
    # 30 subjects, all better by about 0.2: random patterns only; p = (hits + 1) / (n + 1) with hits ~ 0
    rng = np.random.default_rng(0)
    b = rng.random(30) * 0.5
    mc = sign_flip_test(b + 0.2 + 0.01 * rng.random(30), b, n_perm=999, seed=3)
    assert not mc.exact and mc.n_resamples == 999 and mc.p_value == pytest.approx(1 / 1000)
    assert sign_flip_test(b + 0.2, b, n_perm=999, seed=3) == sign_flip_test(b + 0.2, b, n_perm=999, seed=3)
    with pytest.raises(MerError, match="missing"):
        sign_flip_test([0.5, np.nan], [0.4, 0.4])


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
