"""Spotting studies: arms that are spotters on a long-video dataset, refusals naming the arm, cells that are spotting
jobs, a report whose figures are the stored runs' (mean/sd over seeds, chance beside them), the CLI and the Study page.

One tiny spotting study (2 spotters x 2 seeds, 3 subjects with one 4 s video each at 20 fps, 48 px; about 10 s) is
run to done in the test process, once for the module.
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from apptest_helpers import page_app, unescape
from mer_core.errors import MerError
from mer_core.jobs import queue
from mer_core.jobs import study as st
from mer_core.store.jobs import SPOTTING
from fixtures_clips import cache_at

TINY = dict(subjects=3, videos_per_subject=1, min_seconds=4, max_seconds=4, fps=20, size=48, max_micro=2,
            max_macro=1)
ARMS = [{"name": "motion", "spotter": "motion_curve"}, {"name": "learned", "spotter": "learned"}]


def spec(**changes):
    data = {"name": "spot", "dataset": "synthetic-long", "seeds": [0, 1], "options": {"dataset_options": TINY},
            "arms": ARMS}
    data.update(changes)
    return st.parse_study(data)


# --- the definition ------------------------------------------------------------------------------------------
def test_a_spotting_study_resolves_one_spot_config_per_arm_and_seed() -> None:
    from mer_core.spotting.loso import SpotConfig

    s = spec(arms=[*ARMS, {"name": "raw", "spotter": "motion_curve", "options": {"stabilise": False, "iou": 0.3}}])
    assert s.kind == "spotting"
    configs = st.validate(s)
    assert list(configs) == ["motion", "learned", "raw"]
    assert configs["learned"][1] == SpotConfig(dataset="synthetic-long", dataset_options=TINY, spotter="learned",
                                               seed=1)
    assert configs["raw"][0].stabilise is False and configs["raw"][0].iou == 0.3
    assert {c.dataset_options["subjects"] for cs in configs.values() for c in cs} == {3}
    assert st.parse_study({"name": "x", "arms": ARMS}).dataset == "synthetic-long"  # the default for spotters
    assert st.parse_study(s.to_dict()) == s  # the stored definition reads back


@pytest.mark.parametrize("changes, message", [
    ({"arms": [ARMS[0], {"name": "rec", "model": "baseline"}]},
     "arm 'rec' is a recognition arm (model 'baseline') but arm 'motion' is a spotting arm: a study compares "
     "spotters or recognition models, not both"),
    ({"dataset": "synthetic"}, "arm 'motion' is a spotter but dataset 'synthetic' is not a long-video dataset"),
    ({"arms": [{"name": "a", "model": "baseline"}, {"name": "b", "model": "linear"}]},
     "arm 'a' is a recognition arm (model 'baseline') but 'synthetic-long' is a long-video dataset"),
    ({"arms": [ARMS[0], {"name": "both", "model": "baseline", "spotter": "learned"}]},
     "arm 'both': names both a model and a spotter"),
    ({"arms": [ARMS[0], {"name": "p", "spotter": "learned", "preset": "cpu"}]},
     "arm 'p': a spotting arm takes no ['preset']"),
    ({"arms": [ARMS[0], {"name": "e", "spotter": "learned", "options": {"epochs": 2, "iou": 0.5}}]},
     "arm 'e': its options: unknown spotting option(s) ['epochs']"),
    ({"arms": [ARMS[0], {"name": "d", "spotter": "learned", "options": {"dataset_options": {"subjects": 2}}}]},
     "arm 'd': its options: ['dataset_options'] cannot be set here (every arm spots the same videos"),
    ({"options": {"seed": 3}}, "arm 'motion': the study's [options]: ['seed'] cannot be set here"),
    ({"arms": [ARMS[0], {"name": "n", "spotter": "nope"}]}, "arm 'n': spotter 'nope': expected one of"),
    ({"arms": [ARMS[0], {"name": "again", "spotter": "motion_curve", "options": {"iou": 0.5}}]},
     "arm 'again' is a duplicate of arm 'motion' (same spotter and options)"),
    ({"protocol": "holdout"}, "protocol 'holdout': spotting is scored under LOSO only"),
    ({"arms": [ARMS[0]]}, "has 1 arm (only 'motion')"),
])
def test_bad_spotting_studies_are_refused_naming_the_arm(changes, message) -> None:
    with pytest.raises(MerError) as err:
        st.validate(spec(**changes))
    assert message in str(err.value)
    assert "\n" not in str(err.value)


def test_the_deep_check_indexes_the_long_dataset_once() -> None:
    seen = []
    st.validate(spec(), check=lambda config: seen.append(config.spotter))
    assert seen == ["motion_curve"]  # every arm spots the same videos
    with pytest.raises(MerError, match="arm 'motion': the dataset 'synthetic-long' cannot be spotted: "
                                       "synthetic-long option subjects=1"):
        st.validate(spec(options={"dataset_options": {**TINY, "subjects": 1}}), check=st.plan_check)


def test_the_shipped_spotting_study_file_is_valid() -> None:
    from pathlib import Path

    s = st.load_study_file(Path(__file__).resolve().parents[1] / "benchmarks" / "study_spotting.toml")
    configs = st.validate(s)
    assert s.kind == "spotting" and s.dataset == "synthetic-long" and s.seeds == (0, 1, 2)
    assert sorted(c[0].spotter for c in configs.values()) == ["learned", "motion_curve"]
    assert all(not c.dataset_options for cs in configs.values() for c in cs)  # the default size


def test_the_report_is_the_mean_and_sd_of_the_given_figures_and_names_deterministic_arms() -> None:
    from mer_core.evaluation.study_stats import analyse_spotting
    from mer_core.evaluation.study_table import paper_table

    def cell(arm, seed, f1, per_subject, deterministic, status="done"):
        summary = {"iou": 0.5, "per_subject": [{"subject": s, "type": "overall", "f1": v}
                                               for s, v in per_subject.items()]}
        run = {"status": status, "f1": f1, "micro_f1": f1 / 2, "macro_f1": None, "summary": summary}
        return {"arm": arm, "seed": seed, "run_id": f"{arm}{seed}", "run_status": status, "run": run,
                "chance": {"overall": {"f1": 0.1}, "micro": {"f1": 0.05}, "macro": {"f1": None}},
                "deterministic": deterministic}

    subj = {"s1": 0.2, "s2": 0.4, "s3": 0.6}
    cells = [cell("mc", s, 0.3, subj, True) for s in (0, 1, 2)]
    cells += [cell("learned", s, v, {k: x + v for k, x in subj.items()}, False) for s, v in ((0, 0.5), (1, 0.7))]
    cells += [cell("learned", 2, 0.9, subj, False, status="failed")]
    r = analyse_spotting(cells, arms=["mc", "learned"], name="t")
    row = r.table.set_index("arm")
    assert row.loc["learned", "f1_mean"] == pytest.approx(0.6) and row.loc["learned", "f1_sd"] == pytest.approx(
        np.std([0.5, 0.7], ddof=1))
    assert row.loc["learned", "complete"] == 2 and bool(row.loc["learned", "flagged"])
    assert math.isnan(row.loc["mc", "macro_f1_mean"]) and row.loc["mc", "chance_f1_mean"] == pytest.approx(0.1)
    assert r.best == "learned" and r.test["kind"] == "permutation" and "F1 higher" in r.test["verdict"]
    assert "UF1" not in r.test["verdict"]
    assert list(r.subject_scores["learned"]) == pytest.approx([0.8, 1.0, 1.2])  # seed-averaged per subject
    assert any("mc: its spotter uses no seed" in n for n in r.notes)
    md = paper_table(r, "md")
    assert "| mc | 0.300 (deterministic) |" in md and "| learned † | **0.600 ± 0.141** |" in md
    assert "learned 2 of 3 seeds" in md and "UF1" not in md
    csv = pd.read_csv(__import__("io").StringIO(paper_table(r, "csv"))).set_index("arm")
    assert csv.loc["learned", "F1 sd"] == pytest.approx(0.141421, abs=1e-6) and math.isnan(csv.loc["mc", "F1 sd"])
    one = analyse_spotting(cells[:1] + cells[3:4], arms=["mc", "learned"])
    assert "0.500 (1 seed)" in paper_table(one, "md") and "0.300 (1 seed)" in paper_table(one, "md")


# --- a tiny study, run ---------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def spot_study(tmp_path_factory):
    """A cache holding the tiny spotting study 'spot', every cell run to done in this process."""
    from mer_core.jobs.spot_job import SpotRunner
    from mer_core.jobs.worker import run_job
    from mer_core.store.db import RunStore

    root = tmp_path_factory.mktemp("spot_study")
    with cache_at(root):
        with RunStore() as store:
            cells = st.submit_study(spec(), store=store, start=False)
            for job_id in cells["job_id"]:
                assert run_job(job_id, store=store, kick_next=False, runner_cls=SpotRunner) == 0
    return {"root": root, "cells": cells}


@pytest.fixture
def done_study(spot_study, monkeypatch):
    import streamlit

    monkeypatch.setenv("MER_CACHE", str(spot_study["root"]))
    streamlit.cache_data.clear()
    return spot_study


def test_each_cell_is_a_spotting_job_with_its_seed_and_pre_assigned_run(done_study) -> None:
    from mer_core.store.db import RunStore

    with RunStore() as store:
        cells = store.study_cells("spot")
        assert sorted(zip(cells["arm"], cells["seed"])) == [("learned", 0), ("learned", 1), ("motion", 0),
                                                            ("motion", 1)]
        assert set(cells["kind"]) == {"spotting"} and set(cells["run_status"]) == {"done"}
        assert (cells["folds_done"] == 3).all() and (cells["n_folds"] == 3).all()
        for c in cells.itertuples():
            job = queue.get_job(store, c.job_id)
            run = store.get_spot_run(c.run_id)
            assert job["kind"] == SPOTTING and job["run_id"] == c.run_id and job["name"] == f"spot / {c.arm} / " \
                                                                                               f"seed {c.seed}"
            assert run["config"]["seed"] == c.seed and run["spotter"] == {"motion": "motion_curve",
                                                                          "learned": "learned"}[c.arm]
            assert c.f1 == run["f1"] or (c.f1 != c.f1 and run["f1"] is None)
        assert store.list_studies().set_index("name").loc["spot", "done"] == 4


def test_the_report_equals_the_stored_runs_figures(done_study) -> None:
    from mer_core.evaluation.study_table import paper_table
    from mer_core.spotting.chance import run_chance
    from mer_core.store.db import RunStore

    with RunStore() as store:
        report = st.study_report(store, "spot", n_boot=10)
        cells = store.study_cells("spot")
        runs = {c.run_id: store.get_spot_run(c.run_id) for c in cells.itertuples()}
        chance = {rid: run_chance(store, rid) for rid in runs}
    assert report.kind == "spotting" and report.arms == ["motion", "learned"] and not report.flags
    table = report.table.set_index("arm")
    for arm in ("motion", "learned"):
        mine = [runs[c.run_id] for c in cells.itertuples() if c.arm == arm]
        for col in ("f1", "micro_f1", "macro_f1"):
            values = pd.Series([r[col] for r in mine], dtype=float).dropna()
            mean = table.loc[arm, f"{col}_mean"]
            assert (math.isnan(mean) and values.empty) or mean == pytest.approx(values.mean())
            if len(values) == 2:
                assert table.loc[arm, f"{col}_sd"] == pytest.approx(values.std(ddof=1))
        expect = np.mean([chance[c.run_id]["overall"]["f1"] for c in cells.itertuples() if c.arm == arm])
        assert table.loc[arm, "chance_f1_mean"] == pytest.approx(expect)
    per = {}
    for c in cells.itertuples():
        for r in runs[c.run_id]["summary"]["per_subject"]:
            if r["type"] == "overall" and r["f1"] is not None:
                per.setdefault((c.arm, r["subject"]), []).append(r["f1"])
    for subject, row in report.subject_scores.iterrows():
        for arm in ("motion", "learned"):
            assert row[arm] == pytest.approx(np.mean(per[(arm, subject)]))
    assert bool(table.loc["motion", "deterministic"]) and not bool(table.loc["learned", "deterministic"])
    md = paper_table(report, "md")
    assert "| arm | F1 | micro F1 | macro F1 | chance F1 | chance micro F1 | chance macro F1 |" in md
    assert "(deterministic)" in md.split("\n")[2]  # the motion-curve row: its seeds repeat one run
    assert "UF1" not in md and "\\textbf" in paper_table(report, "latex")


def test_mer_study_show_export_cancel_and_resume_work_on_a_spotting_study(done_study, capsys, monkeypatch) -> None:
    from mer_core.cli import main
    from mer_core.store.db import RunStore

    assert main(["study", "show", "spot"]) == 0
    out = capsys.readouterr().out
    assert "4/4 cells done" in out and "micro_f1" in out and "| arm | F1 |" in out and "note: motion:" in out
    assert main(["study", "export", "spot", "--format", "csv"]) == 0
    assert "chance F1 mean" in capsys.readouterr().out
    assert main(["study", "export", "spot", "--format", "mlflow"]) != 0
    assert "'spot' is a spotting study: MLflow export covers recognition studies only" in capsys.readouterr().err
    monkeypatch.setattr(queue, "kick", lambda *a, **k: [])
    with RunStore() as store:
        st.submit_study(spec(name="again"), store=store, start=False)
        store.conn.execute("DELETE FROM study_cells WHERE study='again' AND arm='learned' AND seed=1")
        assert st.cancel_study(store, "again") == {"cancelled": 3}
        assert st.resume_study(store, "again", start=False) == {"resumed": 3, "submitted": 1}
        cells = store.study_cells("again")
        assert set(cells["job_status"]) == {"queued"} and set(cells["kind"]) == {"spotting"}
        added = cells[(cells["arm"] == "learned") & (cells["seed"] == 1)].iloc[0]
        assert queue.get_job(store, added["job_id"])["kind"] == SPOTTING


def test_the_study_page_shows_a_spotting_study_in_f1(done_study) -> None:
    at = page_app("study", study="spot")
    assert not at.exception, at.exception
    parts = [e.value for kind in ("markdown", "caption", "info", "warning", "error", "subheader", "success")
             for e in getattr(at, kind)]
    text = unescape("\n".join(map(str, parts)))
    assert "| arm | F1 | micro F1 | macro F1 | chance F1 |" in text and "Chance F1" in text
    assert "motion: its spotter uses no seed" in text and "per-subject" in text
    assert "UF1" not in text and "Learning curves" not in text
    shown = at.dataframe[0].value
    assert {"F1", "micro F1", "macro F1"} <= set(shown.columns) and "UF1" not in shown.columns
    assert len(at.get("plotly_chart")) == 1  # the seeds' spread (no learning curves: a spotter has no epochs)
    assert [b.label for b in at.get("download_button")] == ["paper table (csv)", "paper table (md)",
                                                           "paper table (latex)"]
