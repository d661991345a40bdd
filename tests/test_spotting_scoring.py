"""Spotting scorer on hand-worked cases: IoU, one-to-one matching, types, empty videos, official mode, STRS.

Every expected figure is worked by hand in the comments; intervals are
inclusive frame ranges, IoU = inter / union with inter = min(off) - max(on) + 1.
"""
from __future__ import annotations

import math

import pandas as pd
import pytest

from mer_core.spotting.scoring import ScoringError, interval_iou, match_spots, score_spots, strs


def spots(rows: list[tuple], columns: str = "video onset offset type") -> pd.DataFrame:
    return pd.DataFrame(rows, columns=columns.split())


def test_iou_on_inclusive_frames():
    # [0,9] vs [0,4]: inter 5, union 10; [0,9] vs [5,14]: inter 5, union 15; [3,3] vs [3,3]: 1/1
    assert interval_iou([0, 0, 3, 0], [9, 9, 3, 4], [0, 5, 3, 5], [4, 14, 3, 9]).tolist() == [0.5, 1 / 3, 1.0, 0.0]


def test_two_predictions_over_one_truth_make_one_hit_and_one_false_alarm():
    truth = spots([("v", 50, 59, "micro")])
    pred = spots([("v", 50, 59, "micro"), ("v", 51, 60, "micro")])  # IoU 1 and 9/11: both reach the truth
    for mode in ("mer", "official"):  # officially the second finds its truth taken: the same counts
        r = score_spots(truth, pred, mode=mode)["overall"]
        # TP 1, FP 1, FN 0: P = 1/2, R = 1, F1 = 2/(2+1) = 2/3
        assert (r["tp"], r["fp"], r["fn"]) == (1, 1, 0), mode
        assert r["precision"] == 0.5 and r["recall"] == 1.0 and r["f1"] == pytest.approx(2 / 3)
    m = match_spots(truth, pred)
    assert m.pairs[["truth_row", "pred_row", "iou"]].values.tolist() == [[0, 0, 1.0]]
    assert m.false_alarms["pred_row"].tolist() == [1] and m.misses.empty


@pytest.mark.parametrize("offset, hit", [(4, True), (3, False)])
def test_iou_of_exactly_one_half_matches(offset, hit):
    # [0,9] vs [0,4]: 5/10 = 0.5, a match; [0,9] vs [0,3]: 4/10, none
    r = score_spots(spots([("v", 0, 9, "micro")]), spots([("v", 0, offset, "micro")]))["overall"]
    assert (r["tp"], r["fp"], r["fn"]) == ((1, 0, 0) if hit else (0, 1, 1))
    stricter = score_spots(spots([("v", 0, 9, "micro")]), spots([("v", 0, offset, "micro")]), iou=0.6)
    assert stricter["overall"]["tp"] == 0


def test_matching_has_maximum_cardinality_and_official_is_greedy_in_row_order():
    # truths T0 [0,9], T1 [2,11]; predictions A [1,9] and B [0,5]
    # A-T0: 9/10 = .9, A-T1: 8/11 = .73; B-T0: 6/10 = .6, B-T1: 4/12 = .33 (no match)
    # A greedy best-IoU pairing A-T0 would leave B without a truth (1 TP); the maximum is A-T1, B-T0
    truth = spots([("v", 0, 9, "micro"), ("v", 2, 11, "micro")])
    pred = spots([("v", 1, 9, "micro"), ("v", 0, 5, "micro")])
    m = match_spots(truth, pred)
    assert sorted(m.pairs[["truth_row", "pred_row"]].values.tolist()) == [[0, 1], [1, 0]]
    assert m.pairs["iou"].sum() == pytest.approx(8 / 11 + 0.6)
    assert score_spots(truth, pred)["overall"]["f1"] == 1.0
    # the row order does not change a one-to-one result
    assert score_spots(truth, pred.iloc[::-1])["overall"] == score_spots(truth, pred)["overall"]
    # officially A comes first and takes both truths (2 TP), B finds T0 taken (FP):
    # P = 2/3, R = 1, F1 = 2(2/3)/(5/3) = 0.8; with B first, B takes T0 and A takes T1: F1 = 1
    off = score_spots(truth, pred, mode="official")["overall"]
    assert (off["tp"], off["fp"], off["fn"]) == (2, 1, 0) and off["f1"] == pytest.approx(0.8)
    assert score_spots(truth, pred.iloc[::-1], mode="official")["overall"]["f1"] == 1.0


def test_overlapping_predictions_each_hit_their_own_truth():
    # truths [0,9] and [8,17] overlap; so do predictions [1,9] and [8,16] (frames 8-9)
    # [1,9]-[0,9]: 9/10; [1,9]-[8,17]: 2/17; [8,16]-[8,17]: 9/10; [8,16]-[0,9]: 2/17
    truth = spots([("v", 0, 9, "micro"), ("v", 8, 17, "micro")])
    pred = spots([("v", 1, 9, "micro"), ("v", 8, 16, "micro"), ("v", 2, 10, "micro")])  # third: 8/10 on [0,9]
    r = score_spots(truth, pred)["overall"]
    assert (r["tp"], r["fp"], r["fn"]) == (2, 1, 0)
    assert match_spots(truth, pred).false_alarms["pred_row"].tolist() == [2]  # the lower IoU loses


def test_empty_videos_count_their_false_alarms_and_misses():
    truth = spots([("a", 0, 9, "micro"), ("b", 20, 29, "macro")])
    pred = spots([("a", 0, 9, "micro"), ("c", 5, 9, "micro"), ("c", 40, 49, "macro")])  # video c: no truth
    r = score_spots(truth, pred)
    # overall TP 1 (a), FP 2 (video c), FN 1 (video b, no prediction): P 1/3, R 1/2, F1 2/(2+2+1)
    assert (r["overall"]["tp"], r["overall"]["fp"], r["overall"]["fn"]) == (1, 2, 1)
    assert r["overall"]["f1"] == pytest.approx(0.4) and r["videos"] == 3
    # nothing predicted: recall 0, precision undefined (NaN, not 0 or 1)
    none = score_spots(truth, pred.iloc[:0])["overall"]
    assert (none["tp"], none["fn"], none["recall"], none["f1"]) == (0, 2, 0.0, 0.0) and math.isnan(none["precision"])
    # no truth at all: every prediction is a false alarm, recall undefined
    alarms = score_spots(truth.iloc[:0], pred)["overall"]
    assert (alarms["fp"], alarms["precision"]) == (3, 0.0) and math.isnan(alarms["recall"])


def test_per_type_split_and_untyped_predictions():
    truth = spots([("v", 0, 9, "micro"), ("v", 100, 149, "macro"), ("v", 200, 209, "micro")])
    pred = spots([
        ("v", 0, 9, "macro"),  # right place, wrong type: cannot hit the micro truth -> macro FP, micro FN
        ("v", 100, 149, None),  # no type: hits the macro truth -> macro TP
        ("v", 200, 209, "micro"),  # micro TP
        ("v", 400, 409, None),  # no type, no truth: an overall FP only
    ])
    r = score_spots(truth, pred)
    # micro: TP 1, FP 0, FN 1 -> P 1, R 1/2, F1 2/3; macro: TP 1, FP 1, FN 0 -> P 1/2, R 1, F1 2/3
    assert [r["micro"][k] for k in ("tp", "fp", "fn", "precision", "recall")] == [1, 0, 1, 1.0, 0.5]
    assert [r["macro"][k] for k in ("tp", "fp", "fn", "precision", "recall")] == [1, 1, 0, 0.5, 1.0]
    # overall: TP 2, FP 2, FN 1 -> F1 = 4/(4+2+1) = 4/7
    assert (r["overall"]["tp"], r["overall"]["fp"], r["overall"]["fn"]) == (2, 2, 1)
    assert r["overall"]["f1"] == pytest.approx(4 / 7) and r["untyped_false_alarms"] == 1



def test_per_type_counts_do_not_depend_on_row_order_when_matchings_tie():
    # one micro truth [1,5]; a micro and an untyped prediction, both [2,5] (IoU 4/5): either one
    # can be the hit, and the other is a micro FP or an untyped false alarm; the rule picks one
    # by (onset, offset, type), never by row position
    truth = spots([("v", 1, 5, "micro")])
    pred = spots([("v", 2, 5, "micro"), ("v", 2, 5, None)])
    forward, backward = score_spots(truth, pred), score_spots(truth, pred.iloc[::-1])
    assert forward["micro"] == backward["micro"] and forward["micro"]["tp"] == 1
    assert forward["untyped_false_alarms"] == backward["untyped_false_alarms"]

def official_fixture() -> tuple[pd.DataFrame, pd.DataFrame]:
    cols = "subject video onset offset type label"
    truth = spots([
        ("s1", "v1", 10, 19, "micro", "negative"),  # G0
        ("s1", "v1", 12, 21, "micro", "positive"),  # G1 (overlaps G0)
        ("s1", "v2", 50, 59, "micro", "surprise"),  # G2
        ("s2", "v4", 30, 39, "micro", "negative"),  # G3: subject s2 has no prediction at all
    ], cols)
    pred = spots([
        ("s1", "v1", 11, 19, "micro", "negative"),  # P0: G0 9/10 = .9, G1 8/11 = .73
        ("s1", "v2", 50, 59, "micro", "surprise"),  # P1: G2 1.0
        ("s1", "v2", 51, 60, "micro", "positive"),  # P2: G2 9/11
        ("s1", "v3", 5, 9, "micro", "negative"),  # P3: video v3 has no truth
    ], cols)
    return truth, pred


def test_official_mode_reproduces_the_script_counting_on_its_fixture():
    truth, pred = official_fixture()
    mer = score_spots(truth, pred)
    # mer: v1 P0-G0 (G1 missed), v2 P1-G2 (P2 FP), v3 P3 FP, v4 G3 missed
    # TP 2, FP 2, FN 2: P = R = F1 = 1/2
    assert (mer["overall"]["tp"], mer["overall"]["fp"], mer["overall"]["fn"]) == (2, 2, 2)
    assert mer["overall"]["f1"] == 0.5
    # recognition on the hits (negative/negative, surprise/surprise): F1 1 for both classes;
    # 'positive' has neither a truth nor a prediction among the hits: left out -> UF1 = UAR = 1
    assert (mer["recognition"]["uf1"], mer["recognition"]["uar"], mer["recognition"]["n"]) == (1.0, 1.0, 2)
    assert mer["strs"] == 0.5  # 0.5 x 1.0

    off = score_spots(truth, pred, mode="official")
    # official: P0 takes G0 and G1 (2 TP); P1 takes G2 (TP), P2 finds it taken (FP);
    # v3 has no truth and s2 no prediction: P3 and G3 are ignored.
    # TP 3, FP 1, FN 0: P = 3/4, R = 1, F1 = 2(3/4)/(7/4) = 6/7
    assert (off["overall"]["tp"], off["overall"]["fp"], off["overall"]["fn"]) == (3, 1, 0)
    assert off["overall"]["f1"] == pytest.approx(6 / 7)
    assert (off["ignored_truth"], off["ignored_predicted"]) == (1, 1)
    # analysis on the 3 TP pairs (truth, predicted): (neg, neg), (pos, neg), (sur, sur), one-vs-rest:
    #   negative: TP 1, FP 1, FN 0 -> P 1/2, R 1, F1 2/3
    #   positive: TP 0, FP 0, FN 1 -> P 0 (0/0 taken as 0), R 0, F1 0
    #   surprise: TP 1 -> P 1, R 1, F1 1
    # mean P = 1/2, mean R = 2/3; F1 = 2(1/2)(2/3)/(7/6) = 4/7; UF1 = (2/3 + 0 + 1)/3 = 5/9;
    # its "UAR" is the mean precision, 1/2 (the mean recall would be 2/3)
    rec = off["recognition"]
    assert rec["f1"] == pytest.approx(4 / 7) and rec["uf1"] == pytest.approx(5 / 9)
    assert rec["uar"] == pytest.approx(0.5) and rec["recall"] == pytest.approx(2 / 3)
    assert off["strs"] == pytest.approx(6 / 7 * 4 / 7)  # 24/49

    timeline = match_spots(truth, pred, mode="official").timeline
    outcome = {(r.source, r.row): r.outcome for r in timeline.itertuples()}
    assert outcome == {("truth", 0): "hit", ("truth", 1): "hit", ("truth", 2): "hit", ("truth", 3): "ignored",
                       ("predicted", 0): "hit", ("predicted", 1): "hit", ("predicted", 2): "false_alarm",
                       ("predicted", 3): "ignored"}


def test_official_analysis_counts_a_class_that_every_pair_shares_as_zero():
    # every TP pair is (negative, negative): the one-vs-rest table holds one value only and the
    # script counts TP = FP = FN = 0 for it: P = R = 0, its F1 = 2*0*0/0 = NaN, hence STRS NaN
    truth = spots([("s", "v", 0, 9, "micro", "negative")], "subject video onset offset type label")
    pred = truth.copy()
    off = score_spots(truth, pred, mode="official")
    assert off["overall"]["f1"] == 1.0 and off["recognition"]["uf1"] == 0.0
    assert math.isnan(off["recognition"]["f1"]) and math.isnan(off["strs"])
    assert score_spots(truth, pred)["strs"] == 1.0  # mer: a right label is a right label


def test_strs_is_the_product_of_the_two_f1():
    assert strs(0.5, 0.8) == pytest.approx(0.4)
    assert math.isnan(strs(math.nan, 0.8))
    with pytest.raises(ScoringError, match="recognition_f1=1.5"):
        strs(0.5, 1.5)


@pytest.mark.parametrize("table, change, message", [
    ("truth", lambda t: t.assign(onset=[0, 12]), r"truth row 1 \(video 'v'\): onset 12 > offset 10"),
    ("truth", lambda t: t.drop(columns="type"), r"truth table lacks column\(s\) \['type'\]"),
    ("predicted", lambda p: p.assign(type=["mirco"]), r"predicted row 0 \(video 'v'\): unknown type 'mirco'"),
    ("predicted", lambda p: p.assign(onset=[2.5]), r"predicted row 0 \(video 'v'\): onset=2.5; expected a frame"),
    ("truth", lambda t: t.assign(type=["micro", None]), r"truth row 1 \(video 'v'\): type is missing"),
])
def test_bad_tables_raise_one_line_naming_the_row(table, change, message):
    truth = spots([("v", 0, 9, "micro"), ("v", 5, 10, "macro")])
    pred = spots([("v", 0, 9, "micro")])
    args = {"truth": truth, "predicted": pred}
    args[table] = change(args[table])
    with pytest.raises(ValueError, match=message) as err:
        score_spots(args["truth"], args["predicted"])
    assert "\n" not in str(err.value)


def test_bad_arguments_raise():
    truth, pred = official_fixture()
    with pytest.raises(ScoringError, match="unknown scoring mode 'megc'"):
        score_spots(truth, pred, mode="megc")
    with pytest.raises(ScoringError, match="iou threshold 0 is not in"):
        score_spots(truth, pred, iou=0)
    with pytest.raises(ScoringError, match="'subject' column in both tables or in neither"):
        score_spots(truth, pred.drop(columns="subject"), mode="official")
