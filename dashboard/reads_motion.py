"""Reads of the motion views (Datasets' Motion tab, the Lesson, the Overview's showcase): cached arrays.

Beside :mod:`dashboard.reads` (whose ``sample_views`` computes a clip's flow, strain and magnification): the
synthetic face's mask that tells the motion figures where the face is, and the same clip magnified with the
largest α the page offers, whose range is the magnification's one colour scale.
"""
from __future__ import annotations

import json

import numpy as np
import streamlit as st

from dashboard import reads, widgets
from mer_core.datasets.synthetic import load_masks


@st.cache_data(max_entries=32, show_spinner=False)
def face_mask(mask_path: str) -> np.ndarray | None:
    """The face mask of a synthetic clip's ground truth (None for real data or a set without one)."""
    if not mask_path:
        return None

    return load_masks(mask_path).get("face")


def magnified_max(name: str, options_json: str, sample_id: str, preprocess_json: str, size: int) -> np.ndarray | None:
    """The clip magnified with :data:`widgets.EVM_ALPHA_MAX` (the rest of ``preprocess_json`` kept): the scale of
    every α's picture."""
    pre = json.loads(preprocess_json) | {"evm_alpha": widgets.EVM_ALPHA_MAX}
    return reads.sample_views(name, options_json, sample_id, json.dumps(pre, sort_keys=True), size)["magnified_clip"]
