"""The chance floor of a spotting run: its intervals placed at random in their videos, worked by hand."""
from __future__ import annotations

import math

import pandas as pd
import pytest

from mer_core.spotting.chance import chance_scores
from mer_core.spotting.scoring import ScoringError


def spots(rows: list[tuple]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["video", "onset", "offset", "type"])


def test_random_placement_hits_as_often_as_the_positions_that_reach_iou_one_half():
    # a 20-frame video, truth [5, 14] (10 frames), one 10-frame prediction: onsets 0..10 (11 positions).
    # Shifted by d frames the overlap is 10 - |d| and the union 10 + |d|: IoU >= 0.5 for |d| <= 3, i.e.
    # onsets 2..8, 7 of 11. One truth and one prediction: P = R = F1 = TP = 7/11.
    truth = spots([("v", 5, 14, "micro")])
    pred = spots([("v", 0, 9, "micro")])  # where it lies does not matter: only its length
    c = chance_scores(truth, pred, {"v": 20}, draws=4000, seed=1)
    for kind in ("overall", "micro"):
        assert c[kind]["f1"] == pytest.approx(7 / 11, abs=0.03)  # 4 standard errors (0.0076 each)
        assert c[kind]["precision"] == c[kind]["recall"] == c[kind]["f1"] == pytest.approx(c[kind]["tp"])
    assert math.isnan(c["macro"]["f1"])  # no macro interval on either side: undefined, as in the scorer


def test_a_prediction_that_fills_its_video_always_hits_and_a_wrong_type_never_does():
    truth = spots([("a", 0, 9, "micro"), ("b", 2, 5, "micro")])
    pred = spots([("a", 0, 9, "micro"), ("b", 0, 7, "macro")])  # a: one possible place; b: a macro
    c = chance_scores(truth, pred, {"a": 10, "b": 8}, draws=50)
    assert c["micro"]["tp"] == 1 and c["micro"]["recall"] == 0.5 and c["micro"]["precision"] == 1.0
    assert c["macro"]["tp"] == 0 and c["macro"]["precision"] == 0.0
    assert c["overall"]["f1"] == pytest.approx(2 * 1 / (2 + 2))  # TP 1 of 2 predictions and 2 truths


def test_an_interval_longer_than_its_video_or_an_unknown_video_is_named():
    with pytest.raises(ScoringError, match=r"row 0 \(video 'v'\): 12 frames do not fit in the video's 10"):
        chance_scores(spots([]), spots([("v", 0, 11, "micro")]), {"v": 10})
    with pytest.raises(ScoringError, match="predicted video 'w' has no frame count"):
        chance_scores(spots([]), spots([("w", 0, 1, "micro")]), {"v": 10})
