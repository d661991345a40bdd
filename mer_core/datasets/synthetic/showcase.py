"""Showcase clips: per class, the clip a lesson or a first look should open on.

A showcase clip has no blink anywhere near its expression (a blink is the
largest motion in a clip and would steal the eye), no distractor action unit,
little head drift, and the largest expression displacement of its class. The
choice is a pure function of the clip plans (no pixel is read), so it is the
same on every machine for the same options; :func:`generate` also writes it to
``meta.json`` under ``showcase``.
"""
from __future__ import annotations

import math

from mer_core.datasets.synthetic.generate import ClipPlan, plan_dataset
from mer_core.datasets.synthetic.options import SynthOptions

BLINK_MARGIN = 5  # frames: a blink this close to onset..offset counts as "near the apex"


def _blink_is_near(plan: ClipPlan) -> bool:
    if plan.blink_start < 0:
        return False
    start, end = plan.blink_start, plan.blink_start + plan.blink_length
    return start <= plan.offset + BLINK_MARGIN and end >= plan.onset - BLINK_MARGIN


def showcase_score(plan: ClipPlan) -> float:
    """How clearly the clip shows its expression: peak displacement less head motion (pixels)."""
    drift = math.hypot(*plan.drift_shift) + abs(plan.wobble[0])
    return plan.peak_px - drift


def is_showcase_candidate(plan: ClipPlan) -> bool:
    return not _blink_is_near(plan) and not plan.distractor_aus


def showcase_clips(options: SynthOptions | None = None) -> dict[str, str]:
    """{label: "subject/clip"} of each class's showcase clip (classes without a candidate are left out)."""
    best: dict[str, ClipPlan] = {}
    for plan in plan_dataset(options or SynthOptions()):
        if not is_showcase_candidate(plan):
            continue
        if plan.label not in best or showcase_score(plan) > showcase_score(best[plan.label]):
            best[plan.label] = plan
    return {label: f"{p.subject}/{p.clip}" for label, p in sorted(best.items())}
