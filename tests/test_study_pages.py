"""New study form and Study page with AppTest (fixture runs, no training)."""
from __future__ import annotations

import pytest

from apptest_helpers import page_app
from dashboard.views import new_study as ns
from mer_core.errors import MerError
from mer_core.jobs import queue
from mer_core.store.db import RunStore
from test_results_pages import store_fixture_run


@pytest.fixture
def no_workers(monkeypatch):
    monkeypatch.setattr(queue, "kick", lambda *a, **k: [])


def _texts(at) -> str:
    parts = [m.value for m in at.markdown] + [c.value for c in at.caption] + [e.value for e in at.error]
    parts += [i.value for i in at.info] + [w.value for w in at.warning] + [s.value for s in at.success]
    return "\n".join(map(str, parts))


def test_new_study_form_submits_every_cell(no_workers) -> None:
    at = page_app("new_study")
    at.text_input(key=ns.K_NAME).input("form-study")
    at.text_input(key=ns.K_SEEDS).input("0, 1")
    at.checkbox(key=ns.K_SAME_EPOCHS).check().run()
    at.number_input(key=ns.K_EPOCHS).set_value(1)
    at.multiselect(key=ns.K_ARMS).select("baseline / cpu").select("ststnet / cpu")
    at.run()
    at.button(key=ns.K_SUBMIT).click().run()
    assert not at.exception and "Study 'form-study' queued: 4 jobs." in _texts(at)
    with RunStore() as store:
        cells = store.study_cells("form-study")
        job = queue.get_job(store, cells["job_id"].iloc[0])
    assert sorted(set(cells["arm"])) == ["baseline", "ststnet"] and sorted(set(cells["seed"])) == [0, 1]
    assert job["config"]["epochs"] == 1 and set(cells["job_status"]) == {"queued"}


def test_each_arm_trains_its_own_presets_epochs_by_default_and_the_jobs_are_previewed(no_workers) -> None:
    from mer_core.models.registry import train_defaults

    at = page_app("new_study")
    at.text_input(key=ns.K_NAME).input("own-epochs")
    at.text_input(key=ns.K_SEEDS).input("0, 1")
    at.multiselect(key=ns.K_ARMS).select("baseline / cpu").select("ststnet / cpu")
    at.run()
    assert not at.exception, at.exception
    own = {m: train_defaults(m, "cpu")["epochs"] for m in ("baseline", "ststnet")}
    text = _texts(at).replace("\\", "")
    assert "4 jobs (2 arm(s) x 2 seed(s)), estimated" in text
    assert f"baseline: {own['baseline']} epochs (its preset's)" in text and f"ststnet: {own['ststnet']} epochs" in text
    at.button(key=ns.K_SUBMIT).click().run()
    with RunStore() as store:
        cells = store.study_cells("own-epochs")
        epochs = {arm: queue.get_job(store, j)["config"]["epochs"] for arm, j in zip(cells["arm"], cells["job_id"])}
    assert epochs == own


def test_new_study_form_refuses_one_arm_naming_it(no_workers) -> None:
    at = page_app("new_study")
    at.text_input(key=ns.K_NAME).input("solo")
    at.multiselect(key=ns.K_ARMS).select("baseline / cpu")
    at.run()
    at.button(key=ns.K_SUBMIT).click().run()
    assert "has 1 arm (only 'baseline')" in _texts(at).replace("\\", "")
    with RunStore() as store, pytest.raises(MerError):
        store.get_study("solo")


def test_ablate_one_component_fills_the_arms(no_workers) -> None:
    at = page_app("new_study")
    at.radio(key=ns.K_MODE).set_value(ns.MODES[1]).run()
    arms = at.multiselect(key=f"{ns.K_ABL_ARMS}_mfdan_cpu")
    assert arms.value[0] == "mfdan" and "mfdan without dropkey" in arms.value
    arms.set_value(["mfdan", "mfdan without dropkey"])
    at.text_input(key=ns.K_NAME).input("abl")
    at.text_input(key=ns.K_SEEDS).input("7")
    at.run()
    at.button(key=ns.K_SUBMIT).click().run()
    with RunStore() as store:
        cells = store.study_cells("abl")
        cfg = queue.get_job(store, cells["job_id"].iloc[1])["config"]
    assert list(cells["arm"]) == ["mfdan", "mfdan without dropkey"] and cfg["model_options"]["dropkey"] == 0.0


def test_parse_seeds_names_a_bad_value() -> None:
    assert ns.parse_seeds("0, 1;2") == [0, 1, 2]
    with pytest.raises(MerError, match="seed 'x'"):
        ns.parse_seeds("0, x")


def _three_arm_study(failed: bool = False) -> None:
    with RunStore() as store:
        store.create_study("page", dataset="synthetic", protocol="loso", definition={"arms": [
            {"name": "A"}, {"name": "B"}, {"name": "C"}]})
        for arm, acc, base in (("A", 0.9, 0), ("B", 0.6, 10), ("C", 0.35, 20)):
            for seed in (0, 1):
                rid = store_fixture_run(f"{arm}{seed}", subjects=8, per_subject=5, accuracy=acc, seed=base + seed,
                                        store=store)
                store.set_study_cell("page", arm, seed, job_id="", run_id=rid)
        if failed:
            store.set_run_status("C1", "failed", "worker died")


def test_study_page_shows_the_table_verdict_cd_diagram_and_curves() -> None:
    _three_arm_study(failed=True)
    at = page_app("study", study="page")
    assert not at.exception
    text = _texts(at)
    assert "| arm | UF1 | UAR | oracle gap UF1 |" in text and "Friedman test" in text
    assert "Flagged: arm 'C' seed 1: failed" in text.replace("\\", "")
    assert "Critical-difference diagram" in text
    assert "Data: synthetic (synthetic: these figures say nothing about real faces) · protocol loso · 6 cells" in text
    assert len(at.get("plotly_chart")) == 3  # CD diagram, learning curves, per-seed spread
    assert [b.label for b in at.get("download_button")] == ["paper table (csv)", "paper table (md)",
                                                           "paper table (latex)"]


def test_study_page_unknown_study_is_named() -> None:
    _three_arm_study()
    at = page_app("study", study="nope")
    assert "Study 'nope' is not in the store" in _texts(at).replace("\\", "")


def test_cd_diagram_names_arms_with_equal_ranks_on_separate_rows():
    import pandas as pd

    from dashboard.study_plots import cd_figure

    ranks = pd.Series({"Baseline": 2.84, "STSTNet": 1.28, "MFDAN": 2.84, "DenseAttention": 3.03})
    fig = cd_figure(ranks, 1.17, [["Baseline", "MFDAN", "DenseAttention"]])
    labels = {a.text: (a.x, a.ay) for a in fig.layout.annotations}
    assert set(labels) == set(ranks.index)
    assert all(labels[arm][0] == ranks[arm] for arm in ranks.index)  # each leader line ends at its arm's rank
    assert len({ay for _, ay in labels.values()}) == len(ranks)  # one row per arm: equal ranks do not overprint


def test_the_preview_says_whether_dense_attention_pre_trains(no_workers) -> None:
    at = page_app("new_study")
    at.multiselect(key=ns.K_ARMS).select("dense_attention / cpu").select("dense_attention / paper")
    at.text_input(key=ns.K_SEEDS).input("0")
    at.run()
    assert not at.exception, at.exception
    text = _texts(at).replace("\\", "")
    assert "dense_attention: no pre-training: trained from scratch" in text
    assert "dense_attention (paper): pre-trained on synthetic-macro for 20 epochs" in text


def test_a_failed_cells_partial_figures_are_not_shown_as_its_result() -> None:
    _three_arm_study(failed=True)
    with RunStore() as store:
        assert store.get_run("C1")["uf1"] is not None  # the run row keeps its figure over the folds it stored
        cells = store.study_cells("page").set_index(["arm", "seed"])
    assert cells.loc[("C", 1), "uf1"] != cells.loc[("C", 1), "uf1"]  # NaN: not the cell's result
    assert cells.loc[("C", 0), "uf1"] == cells.loc[("C", 0), "uf1"]
    at = page_app("study", study="page")
    shown = at.dataframe[0].value.set_index(["arm", "seed"])
    assert shown.loc[("C", 1), "UF1"] == "–" and shown.loc[("C", 1), "run status"] == "failed"
    assert shown.loc[("C", 1), "error"] == "worker died" and shown.loc[("A", 0), "UF1"] != "–"
    assert "None" not in shown.to_string() and "nan" not in shown.to_string()
    assert "finished cells only" in _texts(at)


def test_a_cells_run_id_opens_its_run_or_spotting_page() -> None:
    import pandas as pd

    from dashboard.views.study import cell_links

    cells = pd.DataFrame({"run_id": ["r1", "s1", None], "kind": ["recognition", "spotting", "recognition"]})
    link = cell_links(cells)
    assert link.params == [{"run": "r1"}, {"spot": "s1"}, None]  # a cell never queued has no run to open
    assert [p or link.page for p in link.pages] == ["run", "spotting", "run"]
