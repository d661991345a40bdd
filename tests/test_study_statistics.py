"""Study statistics against hand-worked figures and scipy: mean +- sd over seeds, the paired
permutation test, Friedman + Nemenyi + critical difference, flagged partial studies."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy.stats import chi2, studentized_range

from mer_core.evaluation.statistics import bootstrap_intervals
from mer_core.evaluation.study_stats import analyse, cliques, compare_arms
from mer_core.jobs.study import study_inputs, study_report
from mer_core.store.db import RunStore
from test_results_pages import store_fixture_run


def test_two_arms_exact_sign_flip_p_value_by_hand() -> None:
    # differences 0.1, 0.2, 0.3: of the 8 sign patterns only +++ and --- reach |mean| >= 0.2
    scores = pd.DataFrame({"A": [0.6, 0.7, 0.8], "B": [0.5, 0.5, 0.5]}, index=["s1", "s2", "s3"])
    t = compare_arms(scores)
    assert t["kind"] == "permutation" and t["exact"]
    assert t["delta"] == pytest.approx(0.2) and t["p_value"] == pytest.approx(2 / 8)
    assert "A scores 0.200 UF1 higher than B" in t["verdict"] and "no evidence" in t["verdict"]
    assert "With 3 subjects no result can reach p < 0.05" in t["verdict"]


def test_two_arms_far_apart_over_many_subjects_is_significant() -> None:
    rng = np.random.default_rng(0)
    b = rng.random(12) * 0.5
    t = compare_arms(pd.DataFrame({"good": b + 0.2 + 0.01 * rng.random(12), "poor": b}))
    assert t["p_value"] == pytest.approx(2 / 2 ** 12)  # exact: only all-plus / all-minus reach the gap
    assert t["verdict"].startswith("good scores") and "unlikely to be seed or subject luck" in t["verdict"]


def test_friedman_nemenyi_and_cd_by_hand() -> None:
    # 4 subjects, A > B > C on every one: rank sums 4, 8, 12
    scores = pd.DataFrame({"A": [0.9, 0.8, 0.7, 0.95], "B": [0.5, 0.6, 0.55, 0.7], "C": [0.1, 0.2, 0.3, 0.4]})
    t = compare_arms(scores)
    assert t["kind"] == "friedman"
    statistic = 12 / (4 * 3 * 4) * (4 ** 2 + 8 ** 2 + 12 ** 2) - 3 * 4 * 4  # = 8
    assert t["statistic"] == pytest.approx(statistic) == pytest.approx(8.0)
    assert t["p_value"] == pytest.approx(chi2.sf(8.0, 2)) == pytest.approx(math.exp(-4))
    assert list(t["ranks"]) == [1.0, 2.0, 3.0]
    se = math.sqrt(3 * 4 / (6 * 4))
    assert t["posthoc"].loc["A", "C"] == pytest.approx(studentized_range.sf(2 / se * math.sqrt(2), 3, np.inf), rel=1e-6)
    assert t["cd"] == pytest.approx(2.343 * se, abs=1e-3)  # Demsar (2006) table: q_0.05 for k = 3 is 2.343
    assert "Friedman test says the arms differ" in t["verdict"]


def test_cliques_join_arms_the_post_hoc_cannot_tell_apart() -> None:
    ranks = pd.Series({"A": 1.2, "B": 1.9, "C": 2.9})
    p = pd.DataFrame([[1, 0.5, 0.01], [0.5, 1, 0.2], [0.01, 0.2, 1]], index=list("ABC"), columns=list("ABC"))
    assert cliques(ranks, p, 0.05) == [["A", "B"], ["B", "C"]]


def _stored_study(store: RunStore, *, failed: bool = False, composite: bool = False) -> None:
    store.create_study("s", dataset="synthetic", protocol="loso", definition={"arms": [
        {"name": "good"}, {"name": "poor"}, {"name": "mid"}]})
    for arm, acc in (("good", 0.9), ("poor", 0.4), ("mid", 0.65)):
        for seed in (0, 1):
            rid = store_fixture_run(f"{arm}-{seed}", subjects=8, per_subject=6, accuracy=acc, seed=seed + 10 * len(arm),
                                    store=store, composite=composite)
            store.set_study_cell("s", arm, seed, job_id="", run_id=rid)
    if failed:
        store.set_run_status("mid-1", "failed", "worker died")


def test_stored_study_means_sds_intervals_and_flags() -> None:
    with RunStore() as store:
        _stored_study(store, failed=True)
        report = study_report(store, "s", n_boot=200)
        data = study_inputs(store, "s")
        uf1 = {r: store.get_run(r)["uf1"] for r in ("good-0", "good-1")}
    row = report.table.set_index("arm").loc["good"]
    assert row["uf1_mean"] == pytest.approx(np.mean(list(uf1.values())))
    assert row["uf1_sd"] == pytest.approx(np.std(list(uf1.values()), ddof=1))
    preds = pd.concat([c["predictions"] for c in data["cells"] if c["arm"] == "good"], ignore_index=True)
    ci = bootstrap_intervals(preds, ["negative", "positive", "surprise"], n_boot=200)["uf1"]
    assert (row["uf1_low"], row["uf1_high"]) == pytest.approx((ci.low, ci.high))
    assert row["oracle_gap_uf1"] == pytest.approx(np.mean([c["run"]["oracle_uf1"] - c["run"]["uf1"]
                                                           for c in data["cells"] if c["arm"] == "good"]))
    mid = report.table.set_index("arm").loc["mid"]
    assert mid["flagged"] and mid["complete"] == 1 and mid["seeds"] == 2
    assert any("arm 'mid' seed 1: failed" in f for f in report.flags)
    assert report.best == "good" and report.test["kind"] == "friedman"
    assert report.marks["good"] == "" and report.marks["poor"] in ("*", "**")
    assert list(report.subject_scores.columns) == ["good", "poor", "mid"] and len(report.subject_scores) == 8
    curves = report.curves[(report.curves["arm"] == "good") & (report.curves["metric"] == "train_loss")]
    assert list(curves["epoch"]) == [1, 2, 3, 4] and (curves["n"] == 2).all()


def test_composite_study_reports_per_part() -> None:
    with RunStore() as store:
        _stored_study(store, composite=True)
        report = study_report(store, "s", n_boot=50)
    assert set(report.parts["part"]) == {"smic", "casme2", "samm"}
    assert set(report.parts["arm"]) == {"good", "poor", "mid"} and (report.parts["n_seeds"] == 2).all()


def test_an_arm_without_complete_cells_is_left_out_and_named() -> None:
    cells = [{"arm": "x", "seed": 0, "run_status": "failed", "run": None, "predictions": pd.DataFrame(),
              "error": "boom"}]
    report = analyse(cells, arms=["x"], name="broken")
    assert report.arms == [] and report.test["kind"] == "none"
    assert report.flags == ["arm 'x' seed 0: failed (boom)", "arm 'x': no complete cell, left out of the statistics"]


@pytest.mark.parametrize("subjects", [8, 16])
def test_compare_and_a_two_arm_study_give_the_same_p_value_on_the_same_runs(subjects: int) -> None:
    """One paired test: Compare's p-value for two runs is the study's for two arms of one seed each.
    8 subjects: exact enumeration; 16 subjects (2^16 > 10000 patterns): the same random patterns."""
    from dashboard import reads
    from mer_core.evaluation.statistics import paired_permutation

    with RunStore() as store:
        store.create_study("pair", dataset="synthetic", protocol="loso", definition={"arms": [
            {"name": "good"}, {"name": "poor"}]})
        for arm, acc, seed in (("good", 0.75, 1), ("poor", 0.55, 2)):
            rid = store_fixture_run(f"{arm}-{subjects}", subjects=subjects, per_subject=5, accuracy=acc, seed=seed,
                                    store=store)
            store.set_study_cell("pair", arm, 0, job_id="", run_id=rid)
        report = study_report(store, "pair", n_boot=50)
        pa, pb = store.predictions(f"good-{subjects}"), store.predictions(f"poor-{subjects}")
    compare = reads.paired_tests(f"good-{subjects}", f"poor-{subjects}")["permutation"]
    assert report.test["kind"] == "permutation" and report.test["exact"] == (subjects == 8) == compare.exact
    assert report.test["p_value"] == compare.p_value and 0 < compare.p_value < 1
    assert report.test["delta"] == pytest.approx(compare.delta)
    assert report.test["n_subjects"] == compare.n_subjects == subjects
    # and the statistic is the per-subject one, not the pooled gap
    assert compare == paired_permutation(pa, pb, ["negative", "positive", "surprise"])
    per_subject = report.subject_scores
    assert compare.delta == pytest.approx(float((per_subject["good"] - per_subject["poor"]).mean()))


def test_a_zero_mean_difference_is_not_called_identical() -> None:
    crossed = compare_arms(pd.DataFrame({"A": [0.6, 0.4, 0.5], "B": [0.4, 0.6, 0.5]}))
    assert crossed["delta"] == pytest.approx(0.0) and crossed["p_value"] == 1.0
    assert "winning on different subjects" in crossed["verdict"] and "every one" not in crossed["verdict"]
    same = compare_arms(pd.DataFrame({"A": [0.6, 0.4, 0.5], "B": [0.6, 0.4, 0.5]}))
    assert same["p_value"] == 1.0 and "same seed-averaged UF1 on every one of the 3" in same["verdict"]
