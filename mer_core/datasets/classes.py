"""Class sets and label mappings.

A dataset's indexer keeps the dataset's own label in ``emotion``; the class
set chosen for an experiment decides the ``label`` column and which rows are
dropped (e.g. CASME II 'fear' under the MEGC2019 composite). Mappings are the
official ones (see shared/reference/megc2019.md).
"""
from __future__ import annotations

import re
from typing import Any, Iterable

import pandas as pd

from mer_core.errors import UnknownNameError

COMPOSITE3 = ("negative", "positive", "surprise")

CLASS_SETS: dict[str, tuple[str, ...]] = {
    "composite3": COMPOSITE3,
    "casme2_5": ("happiness", "disgust", "repression", "surprise", "others"),
    "samm_5": ("anger", "happiness", "other", "surprise", "contempt"),
    # CAS(ME)^3 part A, its seven emotions (native labels normalised: happy -> happiness)
    "casme3_7": ("anger", "disgust", "fear", "happiness", "sadness", "surprise", "others"),
}

# native emotion (lower case) -> composite class; anything absent is dropped.
COMPOSITE_MAPPING: dict[str, str] = {
    # SAMM
    "anger": "negative",
    "contempt": "negative",
    "disgust": "negative",
    "fear": "negative",  # SAMM fear is negative; CASME II fear is dropped (below)
    "sadness": "negative",
    "happiness": "positive",
    "surprise": "surprise",
    # CASME II
    "repression": "negative",
    # SMIC and synthetic already use the composite names
    "negative": "negative",
    "positive": "positive",
}

# The one table of label spellings: variant (lower case, single-spaced) ->
# canonical emotion name. Used by every indexer and by macro pre-training.
LABEL_SYNONYMS: dict[str, str] = {
    "happy": "happiness",
    "joy": "happiness",
    "sad": "sadness",
    "angry": "anger",
    "surprised": "surprise",
    "disgusted": "disgust",
    "repressed": "repression",
    "fearful": "fear",
    "afraid": "fear",
    "contemptuous": "contempt",
    "neutrality": "neutral",
    "other": "others",  # SAMM spells it 'other': its vocabulary keeps that (see normalise_label)
}


def normalise_label(value: Any, vocabulary: Iterable[str] = ()) -> str:
    """A label as lower-case, single-spaced text with synonyms unified (``Happy`` -> ``happiness``).

    ``vocabulary``: the labels a dataset spells its own way (SAMM's 'other');
    a label that is a synonym of one of them comes back in that spelling
    ('others' -> 'other' for SAMM, 'other' -> 'others' for CASME II). Without
    a vocabulary the canonical name of :data:`LABEL_SYNONYMS` is returned.
    """
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    text = re.sub(r"\s+", " ", ("" if value is None else str(value)).strip().lower())
    vocabulary = tuple(vocabulary)
    if text in vocabulary:
        return text
    label = LABEL_SYNONYMS.get(text, text)
    if vocabulary and label not in vocabulary:
        label = next((v for v in vocabulary if LABEL_SYNONYMS.get(v, v) == label), label)
    return label


# CASME II fear/sadness/others are excluded from the composite.
_COMPOSITE_DROP: dict[str, set[str]] = {
    "casme2": {"fear", "sadness", "others"},
    "samm": {"other"},
    "casme3": {"others"},
}


def list_class_sets() -> list[str]:
    return sorted(CLASS_SETS) + ["native"]


_CLASS_SET_ORIGIN = {"composite3": "the MEGC2019 composite's", "casme2_5": "CASME II's", "samm_5": "SAMM's",
                     "casme3_7": "CAS(ME)^3 part A's"}


def class_set_words(class_set: str) -> str:
    """A class set named in words for people: ``composite3`` -> "3 classes: negative, positive, surprise
    (the MEGC2019 composite's)"; ``native`` -> "the dataset's own labels"; an unknown name as given."""
    if class_set == "native":
        return "the dataset's own labels"
    if class_set not in CLASS_SETS:
        return class_set
    names = CLASS_SETS[class_set]
    origin = _CLASS_SET_ORIGIN.get(class_set)
    return f"{len(names)} classes: {', '.join(names)}" + (f" ({origin})" if origin else "")


def classes_for(class_set: str, table: pd.DataFrame | None = None) -> tuple[str, ...]:
    """The ordered class names of a class set (``native``: the table's emotions)."""
    if class_set == "native":
        if table is None:
            raise ValueError("class_set 'native' needs the table to read its labels from")
        return tuple(sorted(table["emotion"].astype(str).unique()))
    if class_set not in CLASS_SETS:
        raise UnknownNameError(f"unknown class set {class_set!r}; valid: {list_class_sets()}")
    return CLASS_SETS[class_set]


def composite_label(dataset: str, emotion: str) -> str | None:
    """The MEGC2019 composite class of a native label, or None when dropped."""
    e = emotion.strip().lower()
    if e in _COMPOSITE_DROP.get(dataset, set()):
        return None
    return COMPOSITE_MAPPING.get(e)


class Shared:
    """A value kept in ``DataFrame.attrs`` that table copies share instead of deep-copying."""

    def __init__(self, value: object) -> None:
        self.value = value

    def __deepcopy__(self, memo: dict) -> "Shared":
        return self


def remember_dropped(kept: pd.DataFrame, dropped: pd.DataFrame, class_set: str) -> pd.DataFrame:
    """Mark ``kept`` as labelled for ``class_set`` and remember the rows it dropped.

    Indexers call this, so that :func:`apply_class_set` can later relabel the
    table for another class set without losing the clips the first one left
    out (SAMM 'disgust' is outside samm_5 but inside composite3).
    """
    kept.attrs["class_set"] = class_set
    kept.attrs["class_set_dropped"] = Shared(dropped.drop(columns=["reason"], errors="ignore").reset_index(drop=True))
    return kept


def apply_class_set(table: pd.DataFrame, class_set: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Set ``label`` for a class set; return (kept rows, dropped rows with a reason).

    A table an indexer already labelled for this class set (``attrs['class_set']``)
    is returned as is: its labels may come from an authority the rules cannot
    reproduce (the MEGC2019 official list). A table labelled for another class
    set gets back the rows its indexer dropped (see :func:`remember_dropped`),
    for the subjects still in the table, before the new class set is applied.
    """
    attrs = dict(table.attrs)
    table = table.copy()
    if attrs.get("class_set") == class_set and (table["label"].astype(str) != "").all():
        dropped = table.iloc[0:0].copy()
        dropped["reason"] = []
        return table.reset_index(drop=True), dropped.reset_index(drop=True)
    earlier = attrs.get("class_set_dropped")
    if isinstance(earlier, Shared) and len(earlier.value):
        back = earlier.value[earlier.value["subject"].isin(set(table["subject"]))]  # not subjects the caller removed
        if len(back):
            table = pd.concat([table, back], ignore_index=True)
    table.attrs = {k: v for k, v in attrs.items() if k not in ("class_set", "class_set_dropped")}
    if class_set == "composite3":
        table["label"] = [composite_label(d, e) or "" for d, e in zip(table["dataset"], table["emotion"])]
    else:
        classes = classes_for(class_set, table)
        table["label"] = [e if e in classes else "" for e in table["emotion"].str.lower()]
    dropped = table[table["label"] == ""].copy()
    dropped["reason"] = [f"label {e!r} is not in class set {class_set!r}" for e in dropped["emotion"]]
    kept = table[table["label"] != ""].reset_index(drop=True)
    return kept, dropped.reset_index(drop=True)
