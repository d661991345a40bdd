"""Showcase clips: per class a clip without a blink near the expression and with clear motion."""
from __future__ import annotations

import json

from mer_core.datasets.synthetic import SynthOptions, generate, plan_dataset, showcase_clips
from mer_core.datasets.synthetic.generate import BLINK_MARGIN, showcase_score


def _plans(options):
    return {f"{p.subject}/{p.clip}": p for p in plan_dataset(options)}


def test_each_class_gets_a_clip_without_a_blink_near_its_expression():
    options = SynthOptions()
    plans = _plans(options)
    chosen = showcase_clips(options)
    assert set(chosen) == set(options.class_shares())
    for label, key in chosen.items():
        p = plans[key]
        assert p.label == label
        assert not p.distractor_aus
        if p.blink_start >= 0:
            assert p.blink_start > p.offset + BLINK_MARGIN or p.blink_start + p.blink_length < p.onset - BLINK_MARGIN


def test_the_showcase_has_the_clearest_motion_of_its_class_among_blink_free_clips():
    options = SynthOptions()
    plans = _plans(options)
    for label, key in showcase_clips(options).items():
        rivals = [p for p in plans.values() if p.label == label and p.blink_start < 0 and not p.distractor_aus]
        assert showcase_score(plans[key]) >= max(showcase_score(p) for p in rivals)
        # clearer than the typical clip of its class
        typical = sorted(showcase_score(p) for p in plans.values() if p.label == label)
        assert showcase_score(plans[key]) > typical[len(typical) // 2]


def test_generated_meta_names_the_showcase_clips(tmp_path):
    options = SynthOptions(subjects=3, clips_per_subject=4, size=32, frames=8)
    manifest = generate(tmp_path / "set", options)
    meta = json.loads((manifest.parent / "meta.json").read_text())
    assert meta["showcase"] == showcase_clips(options)
    assert meta["showcase"]
