"""Context beside a number: chance levels for a run's class counts, and the oracle gap's sentence."""
from __future__ import annotations

import numpy as np
import pytest

from mer_core.evaluation.context import chance_levels, oracle_gap_sentence
from mer_core.evaluation.metrics import scores


def test_chance_levels_match_simulated_guessers():
    counts = [250, 109, 83]  # the MEGC2019 composite's negative / positive / surprise
    levels = chance_levels(counts)
    assert levels.uar == pytest.approx(1 / 3) and levels.classes == 3
    assert levels.uf1_priors == pytest.approx(1 / 3)
    y = np.repeat(np.arange(3), counts)
    rng = np.random.default_rng(0)
    shares = np.array(counts) / sum(counts)
    uniform = np.mean([scores(y, rng.integers(0, 3, len(y)), ["n", "p", "s"]).uf1 for _ in range(200)])
    priors = np.mean([scores(y, rng.choice(3, len(y), p=shares), ["n", "p", "s"]).uf1 for _ in range(200)])
    assert levels.uf1_uniform == pytest.approx(uniform, abs=0.01)
    assert levels.uf1_priors == pytest.approx(priors, abs=0.01)
    assert "guessing uniformly" in levels.text() and "class frequencies" in levels.text()


def test_chance_levels_leave_out_classes_without_clips():
    assert chance_levels({"a": 10, "b": 10, "c": 0}).uar == pytest.approx(0.5)
    with pytest.raises(ValueError, match="at least one clip"):
        chance_levels([0, 0])


def test_a_negative_oracle_gap_is_not_called_an_inflation():
    negative = oracle_gap_sentence(0.60, 0.57)
    assert "0.030 UF1 below the honest figure" in negative and "fixed epoch happened to be the better choice" in negative
    assert "would inflate" not in negative
    assert "would inflate this run" in oracle_gap_sentence(0.50, 0.62)
    assert "scores the same" in oracle_gap_sentence(0.5, 0.5002)
