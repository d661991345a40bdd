"""Evaluation protocols: which samples train and which test, per fold.

All protocols split by *subject*, never by clip: a person's face must not be
on both sides. LOSO is scikit-learn's ``LeaveOneGroupOut`` over subjects;
k-fold uses ``GroupKFold``; hold-out uses ``GroupShuffleSplit``. The MEGC2019
composite is LOSO over the union (subject ids are already unique per part);
its per-part figures come from the metrics.

Honest selection: when early stopping is asked for, a validation set is
carved from the *training* subjects of each fold (``val_idx``); the test
subject is never used to pick an epoch. ``check_folds`` asserts that.

Nested selection (``selection='nested'``): each fold also holds inner splits
of its *training* indices by subject (``inner``: (train, validation) pairs,
``GroupKFold`` with ``nested_folds`` folds, or leave one training subject out
for 0); the epoch count is chosen on them, so the test subject is in none of
them, which ``check_folds`` asserts too.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from sklearn.model_selection import GroupKFold, GroupShuffleSplit, LeaveOneGroupOut

from mer_core.errors import ProtocolError


@dataclass
class Fold:
    index: int
    name: str  # the held-out subject for LOSO, else "fold k"
    train_idx: np.ndarray
    test_idx: np.ndarray
    val_idx: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=int))
    test_subjects: list[str] = field(default_factory=list)
    inner: list[tuple[np.ndarray, np.ndarray]] = field(default_factory=list)  # nested: (train, val) of train_idx


# Datasets recorded from the same people; combining them leaks identity.
SHARED_PEOPLE: list[tuple[set[str], str]] = [
    ({"smic", "smic-hs", "smic-vis", "smic-nir"}, "SMIC HS/VIS/NIR record the same people"),
    ({"casme2", "casme3"}, "CASME II and CAS(ME)^3 come from the same lab; check participant overlap"),
]


def make_folds(
    table: pd.DataFrame,
    protocol: str = "loso",
    *,
    folds: int = 5,
    holdout_fraction: float = 0.25,
    val_subjects: int = 0,
    seed: int = 0,
    nested_folds: int | None = None,
) -> list[Fold]:
    """Split a sample table into folds; validation subjects carved from training.

    ``nested_folds`` (not None): every fold also gets its inner splits (see :func:`inner_splits`).
    """
    subjects = table["subject"].astype(str).to_numpy()
    unique = np.unique(subjects)
    if len(unique) < 2:
        raise ProtocolError(
            f"protocol {protocol!r} needs at least 2 subjects; the table has {len(unique)} "
            f"({', '.join(unique) or 'none'})"
        )
    idx = np.arange(len(table))
    if protocol in ("loso", "composite"):
        splits = LeaveOneGroupOut().split(idx, groups=subjects)
    elif protocol == "kfold":
        if folds > len(unique):
            raise ProtocolError(f"k-fold with {folds} folds needs at least {folds} subjects; the table has {len(unique)}")
        splits = GroupKFold(n_splits=folds).split(idx, groups=subjects)
    elif protocol == "holdout":
        splits = GroupShuffleSplit(n_splits=1, test_size=holdout_fraction, random_state=seed).split(idx, groups=subjects)
    else:
        raise ProtocolError(f"unknown protocol {protocol!r}; valid: loso, composite, kfold, holdout")
    out = []
    for k, (train, test) in enumerate(splits):
        test_subj = sorted(set(subjects[test]))
        name = test_subj[0] if protocol in ("loso", "composite") else f"fold {k + 1}"
        train, val = _carve_validation(train, subjects, val_subjects, seed + k)
        fold = Fold(k, name, np.sort(train), np.sort(test), np.sort(val), test_subj)
        if nested_folds is not None:
            fold.inner = inner_splits(fold.train_idx, subjects, nested_folds, f"fold {k} ({name})")
        out.append(fold)
    check_folds(table, out, protocol)
    return out


def _carve_validation(train: np.ndarray, subjects: np.ndarray, n_val: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    if n_val <= 0:
        return train, np.zeros(0, dtype=int)
    train_subjects = np.unique(subjects[train])
    if len(train_subjects) <= n_val:
        raise ProtocolError(
            f"cannot hold out {n_val} validation subject(s): the fold trains on only {len(train_subjects)} subject(s)"
        )
    rng = np.random.default_rng(seed)
    val_subj = set(rng.choice(train_subjects, size=n_val, replace=False))
    is_val = np.isin(subjects[train], list(val_subj))
    return train[~is_val], train[is_val]


def inner_splits(train_idx: np.ndarray, subjects: np.ndarray, nested_folds: int,
                 label: str = "the fold") -> list[tuple[np.ndarray, np.ndarray]]:
    """(train, validation) index pairs over ``train_idx`` by subject: ``GroupKFold(nested_folds)``, or one
    pair per training subject (leave one out) for ``nested_folds=0``. Only ``train_idx`` is split."""
    train_idx = np.asarray(train_idx)
    groups = subjects[train_idx]
    n_subjects = len(np.unique(groups))
    need = max(2, int(nested_folds))  # the fewest training subjects for nested_folds inner folds (or leave one out)
    if n_subjects < need:
        raise ProtocolError(f"selection='nested' needs at least {need} training subjects per fold "
                            f"(nested_folds={nested_folds}); {label} has {n_subjects}")
    splitter = LeaveOneGroupOut() if nested_folds == 0 else GroupKFold(n_splits=nested_folds)
    return [(np.sort(train_idx[a]), np.sort(train_idx[b])) for a, b in splitter.split(train_idx, groups=groups)]


def check_folds(table: pd.DataFrame, folds: list[Fold], protocol: str) -> None:
    """Leakage and coverage invariants; raises ProtocolError when broken."""
    subjects = table["subject"].astype(str).to_numpy()
    if table["sample_id"].duplicated().any():
        dup = table.loc[table["sample_id"].duplicated(), "sample_id"].tolist()[:3]
        raise ProtocolError(f"clip(s) appear twice in the table: {dup}")
    tested = np.zeros(len(table), dtype=int)
    for f in folds:
        train_s, test_s, val_s = (set(subjects[i]) for i in (f.train_idx, f.test_idx, f.val_idx))
        if train_s & test_s or val_s & test_s or train_s & val_s:
            leaked = sorted((train_s | val_s) & test_s or train_s & val_s)
            raise ProtocolError(f"fold {f.name}: subject(s) {leaked} on both sides of the split")
        for inner_train, inner_val in f.inner:  # nested selection: inside the fold's training subjects only
            inside = set(subjects[inner_train]) | set(subjects[inner_val])
            if not inside <= train_s or set(subjects[inner_train]) & set(subjects[inner_val]):
                raise ProtocolError(f"fold {f.name}: an inner split of nested selection leaves the training "
                                    f"subjects or shares a subject: {sorted(inside - train_s)}")
        tested[f.test_idx] += 1
    if protocol in ("loso", "composite", "kfold"):
        if not (tested == 1).all():
            bad = table["sample_id"].to_numpy()[tested != 1][:3].tolist()
            raise ProtocolError(f"every sample must be tested exactly once; not so for {bad}")
    if protocol in ("loso", "composite") and len(folds) != len(np.unique(subjects)):
        raise ProtocolError(f"LOSO must have one fold per subject: {len(folds)} folds for {len(np.unique(subjects))} subjects")


def shared_people_warnings(table: pd.DataFrame) -> list[str]:
    """Warnings when the table combines datasets known to share people."""
    parts = {str(p).lower() for p in table["part"].unique()} if "part" in table else set()
    out = []
    for group, why in SHARED_PEOPLE:
        if len(parts & group) > 1:
            out.append(f"the table combines {sorted(parts & group)}: {why}; LOSO may leak identity across folds")
    return out
