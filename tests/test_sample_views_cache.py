"""A clip's views (what the Lesson, Overview and Datasets pages draw) are kept in the preprocessed cache:
served again only while the frames, the row and the options are unchanged, and equal to a fresh computation."""
from __future__ import annotations

import os

import numpy as np

from mer_core.config import PreprocessConfig
from mer_core.preprocess import pipeline
from test_preprocess_pipeline import clip_row


def _same(a: dict, b: dict) -> None:
    for key, value in a.items():
        if isinstance(value, np.ndarray):
            assert np.array_equal(value, b[key]), key
        elif key == "arrows":
            assert all(np.array_equal(value[k], b[key][k]) for k in value), key
        else:
            assert value == b[key], key


def test_views_are_read_back_until_the_frames_or_the_options_change(tmp_path, monkeypatch, isolated_cache):
    row = clip_row(tmp_path, "a") | {"sample_id": "toy/a"}
    options = PreprocessConfig(evm_alpha=10.0, evm_low=0.02, evm_high=0.2)
    fresh = pipeline.sample_views(row, options, size=32)
    _same(fresh, pipeline.cached_sample_views(row, options, size=32))  # a miss: computed, then stored
    computed = []
    real = pipeline.sample_views
    monkeypatch.setattr(pipeline, "sample_views", lambda *a, **k: computed.append(1) or real(*a, **k))
    _same(fresh, pipeline.cached_sample_views(row, options, size=32))
    assert computed == []  # read back, not recomputed
    pipeline.cached_sample_views(row, PreprocessConfig(evm_alpha=20.0, evm_low=0.02, evm_high=0.2), size=32)
    assert computed == [1]  # another alpha is another entry
    os.utime(row["frames"][3], ns=(1, 1))  # a frame edited since
    pipeline.cached_sample_views(row, options, size=32)
    assert computed == [1, 1]
