"""Protocol invariants: subject-wise splits, coverage, honest validation."""
import numpy as np
import pandas as pd
import pytest

from mer_core.errors import ProtocolError
from mer_core.training.protocols import check_folds, make_folds, shared_people_warnings


def table(subjects=("a", "a", "b", "b", "b", "c", "d", "d"), parts=None):
    n = len(subjects)
    return pd.DataFrame({"sample_id": [f"x/{s}/{i}" for i, s in enumerate(subjects)], "subject": list(subjects),
                         "label": ["negative"] * n, "part": parts or ["x"] * n})


@pytest.mark.parametrize("protocol", ["loso", "composite", "kfold"])
def test_every_sample_tested_once_and_no_subject_on_both_sides(protocol):
    t = table()
    folds = make_folds(t, protocol, folds=2)
    tested = np.concatenate([f.test_idx for f in folds])
    assert sorted(tested) == list(range(len(t)))
    for f in folds:
        assert not set(t.subject[f.train_idx]) & set(t.subject[f.test_idx])
        assert len(f.train_idx) + len(f.test_idx) == len(t)


def test_loso_has_one_fold_per_subject_named_after_it():
    folds = make_folds(table(), "loso")
    assert [f.name for f in folds] == ["a", "b", "c", "d"]
    assert [f.test_subjects for f in folds] == [["a"], ["b"], ["c"], ["d"]]


def test_validation_subjects_come_from_training_only():
    t = table()
    for f in make_folds(t, "loso", val_subjects=1, seed=3):
        val_s, test_s, train_s = (set(t.subject[i]) for i in (f.val_idx, f.test_idx, f.train_idx))
        assert len(val_s) == 1
        assert not val_s & test_s and not val_s & train_s
        assert sorted(np.concatenate([f.train_idx, f.val_idx, f.test_idx])) == list(range(len(t)))


def test_one_subject_is_refused_with_a_clear_message():
    with pytest.raises(ProtocolError, match="at least 2 subjects"):
        make_folds(table(("a", "a")), "loso")


def test_holdout_splits_by_subject():
    t = table()
    (f,) = make_folds(t, "holdout", holdout_fraction=0.25, seed=0)
    assert not set(t.subject[f.train_idx]) & set(t.subject[f.test_idx])


def test_check_folds_detects_leakage():
    t = table()
    folds = make_folds(t, "loso")
    folds[0].train_idx = np.arange(len(t))  # test subject leaks into training
    with pytest.raises(ProtocolError, match="both sides"):
        check_folds(t, folds, "loso")


def test_duplicate_clips_are_refused():
    t = table()
    t.loc[1, "sample_id"] = t.loc[0, "sample_id"]
    with pytest.raises(ProtocolError, match="twice"):
        make_folds(t, "loso")


def test_shared_people_warning():
    t = table(parts=["smic-hs"] * 4 + ["smic-vis"] * 4)
    assert shared_people_warnings(t)
    assert not shared_people_warnings(table())
