"""The one metrics core: each convention stated against scikit-learn, and worked by hand."""
import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import accuracy_score, f1_score, recall_score

from mer_core.evaluation.metrics import (
    confusion_matrix,
    confusion_scores,
    fold_averaged,
    group_confusions,
    per_group,
    scores,
    summarize,
)

CLASSES = ("negative", "positive", "surprise")
LABELS = [0, 1, 2]


def sk_uf1(y_true, y_pred, labels=LABELS):
    """MEGC2019 UF1 in scikit-learn terms: macro F1 over all classes, undefined classes left out."""
    return f1_score(y_true, y_pred, labels=labels, average="macro", zero_division=np.nan)


def sk_uar(y_true, y_pred, labels=LABELS):
    return recall_score(y_true, y_pred, labels=labels, average="macro", zero_division=np.nan)


def test_hand_worked_example():
    # true:  n n n p p s ; pred: n n p p s s
    y_true = [0, 0, 0, 1, 1, 2]
    y_pred = [0, 0, 1, 1, 2, 2]
    s = scores(y_true, y_pred, CLASSES)
    # negative: TP2 FP0 FN1 -> F1 4/5; positive: TP1 FP1 FN1 -> 2/4; surprise: TP1 FP1 FN0 -> 2/3
    assert s.f1 == pytest.approx({"negative": 0.8, "positive": 0.5, "surprise": 2 / 3})
    assert s.uf1 == pytest.approx((0.8 + 0.5 + 2 / 3) / 3)
    assert s.recall == pytest.approx({"negative": 2 / 3, "positive": 0.5, "surprise": 1.0})
    assert s.uar == pytest.approx((2 / 3 + 0.5 + 1) / 3)
    assert s.accuracy == pytest.approx(4 / 6)
    assert s.confusion == [[2, 1, 0], [0, 1, 1], [0, 0, 1]]


def test_matches_sklearn_on_random_predictions():
    rng = np.random.default_rng(0)
    y_true = rng.integers(0, 3, 200)
    y_pred = np.where(rng.random(200) < 0.6, y_true, rng.integers(0, 3, 200))
    s = scores(y_true, y_pred, CLASSES)
    # every class has clips: all zero_division conventions agree, and labels= all classes is plain macro F1
    assert s.uf1 == pytest.approx(f1_score(y_true, y_pred, average="macro", labels=LABELS))
    assert s.uar == pytest.approx(recall_score(y_true, y_pred, average="macro", labels=LABELS))
    assert s.accuracy == pytest.approx(accuracy_score(y_true, y_pred))


@pytest.mark.parametrize("k", [2, 3, 5])
def test_the_absent_class_rule_is_sklearn_zero_division_nan_on_small_subsets(k: int):
    """Small subsets (a subject, a resample) often lack classes: the rule must still be scikit-learn's."""
    rng = np.random.default_rng(k)
    labels = list(range(k))
    classes = [f"c{i}" for i in labels]
    seen_absent = seen_predicted_only = 0
    for _ in range(300):
        n = int(rng.integers(1, 6))
        y_true = rng.integers(0, k, n)
        y_pred = np.where(rng.random(n) < 0.5, y_true, rng.integers(0, k, n))
        s = scores(y_true, y_pred, classes)
        assert s.uf1 == pytest.approx(sk_uf1(y_true, y_pred, labels))
        assert s.uar == pytest.approx(sk_uar(y_true, y_pred, labels))
        f1 = f1_score(y_true, y_pred, labels=labels, average=None, zero_division=np.nan)
        rec = recall_score(y_true, y_pred, labels=labels, average=None, zero_division=np.nan)
        np.testing.assert_allclose([s.f1[c] for c in classes], f1)  # NaN where sklearn has NaN
        np.testing.assert_allclose([s.recall[c] for c in classes], rec)
        seen_absent += int(np.isnan(f1).any())
        seen_predicted_only += int((~np.isnan(f1) & np.isnan(rec)).any())
    assert seen_absent > 20 and seen_predicted_only > 20  # both cases of the rule were exercised


def test_an_absent_class_worked_by_hand():
    # 'surprise' has no clip and is never predicted: its F1 2TP/(2TP+FP+FN) = 0/0 and recall 0/0 are undefined
    s = scores([0, 0, 1], [0, 0, 1], CLASSES)
    assert s.uf1 == pytest.approx(1.0) and s.uar == pytest.approx(1.0)  # mean over negative, positive: (1+1)/2
    assert np.isnan(s.f1["surprise"]) and np.isnan(s.recall["surprise"])
    assert s.uf1 == pytest.approx(sk_uf1([0, 0, 1], [0, 0, 1]))
    # the convention MER Bench does NOT use: counting it as 0 gives (1+1+0)/3
    assert f1_score([0, 0, 1], [0, 0, 1], labels=LABELS, average="macro", zero_division=0) == pytest.approx(2 / 3)


def test_a_class_predicted_but_without_clips_worked_by_hand():
    # true n n p p ; pred n s p p. negative: TP1 FP0 FN1 -> F1 2/3, recall 1/2; positive: F1 1, recall 1;
    # surprise: TP0 FP1 FN0 -> F1 0 (counted), recall 0/0 (undefined, left out)
    s = scores([0, 0, 1, 1], [0, 2, 1, 1], CLASSES)
    assert s.f1["surprise"] == 0.0 and np.isnan(s.recall["surprise"])
    assert s.uf1 == pytest.approx((2 / 3 + 1 + 0) / 3) == pytest.approx(sk_uf1([0, 0, 1, 1], [0, 2, 1, 1]))
    assert s.uar == pytest.approx((0.5 + 1) / 2) == pytest.approx(sk_uar([0, 0, 1, 1], [0, 2, 1, 1]))


def test_confusion_scores_is_vectorised_over_a_stack():
    rng = np.random.default_rng(1)
    stack = rng.integers(0, 4, size=(7, 3, 3))
    stack[2] = 0  # no clip at all: every figure undefined
    stack[3, 2, :] = 0
    stack[3, :, 2] = 0  # an absent class
    got = confusion_scores(stack)
    assert got["uf1"].shape == (7,) and got["f1"].shape == (7, 3)
    for i, cm in enumerate(stack):
        if i == 2:
            assert np.isnan(got["uf1"][i]) and np.isnan(got["uar"][i]) and np.isnan(got["accuracy"][i])
            continue
        y_true = np.repeat(np.repeat([0, 1, 2], 3), cm.ravel())
        y_pred = np.repeat(np.tile([0, 1, 2], 3), cm.ravel())
        assert got["uf1"][i] == pytest.approx(sk_uf1(y_true, y_pred))
        assert got["uar"][i] == pytest.approx(sk_uar(y_true, y_pred))
        assert got["accuracy"][i] == pytest.approx(accuracy_score(y_true, y_pred))
    assert np.isnan(got["f1"][3, 2])


def test_pooled_differs_from_fold_average():
    pred = pd.DataFrame({
        "fold": [0, 0, 1, 1, 1], "subject": ["a", "a", "b", "b", "b"], "part": ["x"] * 5,
        "y_true": [0, 1, 2, 2, 0], "y_pred": [0, 1, 2, 0, 0],
    })
    pooled = scores(pred.y_true, pred.y_pred, CLASSES)
    fa = fold_averaged(pred, CLASSES)
    # fold 0: negative, positive right -> 1.0; fold 1: negative F1 2/3, surprise F1 2/3 -> 2/3 (positive absent)
    assert fa["uf1"] == pytest.approx((1.0 + 2 / 3) / 2)
    assert pooled.uf1 != pytest.approx(fa["uf1"])
    summary = summarize(pred, CLASSES)
    assert summary["pooled"]["uf1"] == pytest.approx(pooled.uf1)
    assert "per_part" not in summary  # a single part


def test_per_group_and_parts():
    pred = pd.DataFrame({
        "fold": [0, 1, 2, 3], "subject": ["casme2:s1", "casme2:s2", "samm:006", "samm:007"],
        "part": ["casme2", "casme2", "samm", "samm"], "y_true": [0, 1, 2, 0], "y_pred": [0, 1, 0, 0],
    })
    ps = per_group(pred, CLASSES, "subject")
    assert list(ps["n"]) == [1, 1, 1, 1]
    assert ps.set_index("subject").loc["samm:006", "accuracy"] == 0
    assert ps.set_index("subject").loc["casme2:s1", "uf1"] == 1.0  # one negative clip, right: not 1/3
    summary = summarize(pred, CLASSES)
    assert set(summary["per_part"]) == {"casme2", "samm"}
    assert summary["per_part"]["casme2"]["accuracy"] == 1.0


def test_per_subject_figures_match_sklearn_subject_by_subject():
    rng = np.random.default_rng(4)
    n = 120
    pred = pd.DataFrame({"subject": [f"s{i % 17:02d}" for i in range(n)], "y_true": rng.integers(0, 3, n)})
    pred["y_pred"] = np.where(rng.random(n) < 0.5, pred["y_true"], rng.integers(0, 3, n))
    got = per_group(pred, CLASSES, "subject").set_index("subject")
    for subject, g in pred.groupby("subject"):
        assert got.loc[subject, "uf1"] == pytest.approx(sk_uf1(g["y_true"], g["y_pred"]))
        assert got.loc[subject, "uar"] == pytest.approx(sk_uar(g["y_true"], g["y_pred"]))
        assert got.loc[subject, "n"] == len(g)


def test_group_confusions_sum_to_the_pooled_matrix():
    rng = np.random.default_rng(2)
    pred = pd.DataFrame({"subject": rng.choice(["a", "b", "c"], 50), "y_true": rng.integers(0, 3, 50),
                         "y_pred": rng.integers(0, 3, 50)})
    order, cms = group_confusions(pred, 3, order=["c", "a", "b", "z"])
    assert order == ["c", "a", "b", "z"] and cms[3].sum() == 0
    np.testing.assert_array_equal(cms.sum(0), confusion_matrix(pred["y_true"], pred["y_pred"], 3))
    np.testing.assert_array_equal(cms[0], confusion_matrix(pred.y_true[pred.subject == "c"],
                                                           pred.y_pred[pred.subject == "c"], 3))


def test_confusion_rejects_out_of_range():
    with pytest.raises(ValueError):
        confusion_matrix([0, 3], [0, 1], 3)


def test_a_class_absent_from_the_evaluated_table_is_left_out_and_noted():
    # three classes in the set, none of the clips is 'surprise': perfect predictions must score 1.0, not 2/3
    pred = pd.DataFrame({"fold": [0, 0, 1, 1], "subject": ["a", "a", "b", "b"], "part": ["x", "x", "y", "y"],
                         "y_true": [0, 1, 0, 1], "y_pred": [0, 1, 0, 1]})
    summary = summarize(pred, CLASSES)
    assert summary["pooled"]["uf1"] == pytest.approx(1.0) and summary["pooled"]["uar"] == pytest.approx(1.0)
    assert summary["absent_classes"] == ["surprise"]
    assert any("surprise" in n and "left out" in n for n in summary["notes"])
    # the same predictions with every class present keep counting all of them
    full = pred.assign(y_true=[0, 1, 2, 1], y_pred=[0, 1, 0, 1])
    s_full = summarize(full, CLASSES)
    assert s_full["absent_classes"] == []
    assert not any("evaluated table" in n for n in s_full["notes"])
    assert s_full["pooled"]["uf1"] == pytest.approx(scores(full.y_true, full.y_pred, CLASSES).uf1)
    # part y: true [surprise, positive], predicted [negative, positive]. negative has no clip but is predicted:
    # F1 0 and counted (as MEGC2019's script and sklearn do), recall undefined and left out of UAR
    part = s_full["per_part"]["y"]
    assert part["absent_classes"] == ["negative"]
    assert part["uf1"] == pytest.approx((0 + 1 + 0) / 3) == pytest.approx(sk_uf1([2, 1], [0, 1]))
    assert part["uar"] == pytest.approx((1 + 0) / 2) == pytest.approx(sk_uar([2, 1], [0, 1]))
    assert any("part y" in n and "negative" in n and "counted in UF1" in n for n in s_full["notes"])
