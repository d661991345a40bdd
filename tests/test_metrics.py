"""Metrics: pooled UF1/UAR against scikit-learn and a hand-worked example."""
import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import f1_score, recall_score

from mer_core.evaluation.metrics import confusion_matrix, fold_averaged, per_group, scores, summarize

CLASSES = ("negative", "positive", "surprise")


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
    assert s.uf1 == pytest.approx(f1_score(y_true, y_pred, average="macro", labels=[0, 1, 2]))
    assert s.uar == pytest.approx(recall_score(y_true, y_pred, average="macro", labels=[0, 1, 2]))


def test_missing_class_counts_in_pooled_average():
    # a class that never occurs and is never predicted must still count (as 0) in the pooled average
    s = scores([0, 0, 1], [0, 0, 1], CLASSES)
    assert s.uf1 == pytest.approx(2 / 3)
    assert s.uf1 == pytest.approx(f1_score([0, 0, 1], [0, 0, 1], average="macro", labels=[0, 1, 2], zero_division=0))
    # per-subject figures skip classes the subject does not show
    assert scores([0, 0, 1], [0, 0, 1], CLASSES, skip_absent=True).uf1 == pytest.approx(1.0)


def test_pooled_differs_from_fold_average():
    pred = pd.DataFrame({
        "fold": [0, 0, 1, 1, 1], "subject": ["a", "a", "b", "b", "b"], "part": ["x"] * 5,
        "y_true": [0, 1, 2, 2, 0], "y_pred": [0, 1, 2, 0, 0],
    })
    pooled = scores(pred.y_true, pred.y_pred, CLASSES)
    fa = fold_averaged(pred, CLASSES)
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
    summary = summarize(pred, CLASSES)
    assert set(summary["per_part"]) == {"casme2", "samm"}
    assert summary["per_part"]["casme2"]["accuracy"] == 1.0


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
    # a part lacking a class is averaged over the classes it has, and says so
    # part y: true [surprise, positive], predicted [negative, positive] -> F1 surprise 0, positive 1
    assert s_full["per_part"]["y"]["absent_classes"] == ["negative"]
    assert s_full["per_part"]["y"]["uf1"] == pytest.approx(0.5)
