"""Context beside a number: chance levels for a run's class counts, and the oracle gap's sentence."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mer_core.evaluation.context import chance_levels, group_chance, oracle_gap_sentence, uniform_guess
from mer_core.evaluation.metrics import per_group, scores


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


def test_per_subject_chance_matches_a_simulated_uniform_guess_under_the_per_subject_rule():
    # subject a shows all three classes, b only one (its UF1 averages the classes it shows or is predicted as:
    # a uniform guess predicts all three, two of them never right)
    truth = {"a": [0] * 300 + [1] * 100 + [2] * 50, "b": [1] * 400}
    classes = ["n", "p", "s"]
    rng = np.random.default_rng(1)
    sims = []
    for _ in range(40):
        pred = pd.DataFrame([(s, t, int(rng.integers(0, 3))) for s, ys in truth.items() for t in ys],
                            columns=["subject", "y_true", "y_pred"])
        sims.append(per_group(pred, classes, "subject").set_index("subject")[["accuracy", "uar", "uf1"]])
    simulated = sum(sims) / len(sims)
    chance = group_chance(pred, classes).set_index("subject")
    assert list(chance.index) == ["a", "b"]
    for metric in ("accuracy", "uar", "uf1"):
        assert chance[metric].to_numpy() == pytest.approx(simulated[metric].to_numpy(), abs=0.015), metric
    assert chance.loc["b", "uf1"] == pytest.approx(2 * (1 / 3) / (4 / 3) / 3)  # F1 0.5 on its class, 0 on two
    with pytest.raises(ValueError, match="at least one clip"):
        uniform_guess([0, 0, 0], 3)


def test_a_negative_oracle_gap_is_not_called_an_inflation():
    negative = oracle_gap_sentence(0.60, 0.57)
    assert "0.030 UF1 below the honest figure" in negative and "fixed epoch happened to be the better choice" in negative
    assert "would inflate" not in negative
    assert "would inflate this run" in oracle_gap_sentence(0.50, 0.62)
    assert "scores the same" in oracle_gap_sentence(0.5, 0.5002)
