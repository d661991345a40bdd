"""Run management: names, tags and notes, search and filters, delete with files, clone into the form,
Compare's settings diff and overlaid curves."""
from __future__ import annotations

import pytest

from apptest_helpers import page_app
from dashboard.views import new_experiment as ne
from dashboard.views import runs as runs_view
from mer_core.config import ExperimentConfig
from mer_core.errors import MerError
from mer_core.jobs import queue
from mer_core.store.db import RunStore
from mer_core.store.folders import run_folder
from test_results_pages import store_fixture_run


def _texts(at) -> str:
    parts = [m.value for m in at.markdown] + [c.value for c in at.caption] + [e.value for e in at.error]
    parts += [i.value for i in at.info] + [w.value for w in at.warning] + [s.value for s in at.success]
    return "\n".join(map(str, parts))


def test_store_keeps_names_tags_and_notes() -> None:
    with RunStore() as store:
        store_fixture_run("r1", store=store)
        store.rename_run("r1", "  my run ")
        assert store.set_run_tags("r1", [" ablation", "", "cpu", "ablation"]) == ["ablation", "cpu"]
        store.set_run_note("r1", "lr too high?\nsecond line")
        run, row = store.get_run("r1"), store.list_runs().iloc[0]
        assert (run["name"], run["tags"], run["note"]) == ("my run", ["ablation", "cpu"], "lr too high?\nsecond line")
        assert (row["name"], row["tags"], row["note"]) == ("my run", ["ablation", "cpu"], "lr too high?\nsecond line")
        with pytest.raises(MerError, match="cannot contain a comma"):
            store.set_run_tags("r1", ["a,b"])
        with pytest.raises(MerError, match="no run 'nope'"):
            store.rename_run("nope", "x")


def test_delete_removes_rows_and_files_but_never_a_running_run() -> None:
    with RunStore() as store:
        store_fixture_run("gone", store=store)
        store_fixture_run("busy", store=store)
        folder = run_folder("gone")
        (folder / "fold_000.pt").write_bytes(b"x")
        store.delete_run_with_files("gone")
        assert not store.has_run("gone") and not folder.exists() and store.predictions("gone").empty
        store.set_run_status("busy", "running")
        with pytest.raises(MerError, match="run busy cannot be deleted: it is running"):
            store.delete_run_with_files("busy")
        job = queue.submit(ExperimentConfig(epochs=1), store=store, start=False)
        run_id = queue.get_job(store, job)["run_id"]
        store_fixture_run(run_id, store=store)  # the queued job's run exists (a resumed job)
        with pytest.raises(MerError, match=f"its job {job} is queued"):
            store.delete_run_with_files(run_id)
        assert store.has_run("busy") and store.has_run(run_id)


def test_search_matches_every_word_in_name_tags_note_model() -> None:
    with RunStore() as store:
        for rid, model in (("a", "baseline"), ("b", "mfdan"), ("c", "mfdan")):
            store_fixture_run(rid, store=store, model=model)
        store.set_run_tags("b", ["ablation"])
        store.set_run_note("c", "Ablation without DropKey")
        runs = store.list_runs()
    assert sorted(runs_view.search(runs, "ABLATION")["id"]) == ["b", "c"]
    assert list(runs_view.search(runs, "mfdan dropkey")["id"]) == ["c"]
    assert len(runs_view.search(runs, "  ")) == 3


def test_runs_page_edits_searches_and_deletes_with_confirmation() -> None:
    store_fixture_run("keep", subjects=3, per_subject=3)
    store_fixture_run("drop", subjects=3, per_subject=3)
    at = page_app("runs")
    at.selectbox(key=runs_view.K_PICK).set_value("keep").run()
    at.text_input(key=f"{runs_view.K_NAME}_keep").input("the keeper")
    at.text_input(key=f"{runs_view.K_TAG_EDIT}_keep").input("paper, cpu")
    at.text_area(key=f"{runs_view.K_NOTE}_keep").input("best so far")
    at.button(key=runs_view.K_SAVE).click().run()
    with RunStore() as store:
        run = store.get_run("keep")
    assert (run["name"], run["tags"], run["note"]) == ("the keeper", ["paper", "cpu"], "best so far")
    at.text_input(key=runs_view.K_SEARCH).input("keeper").run()
    assert list(at.dataframe[0].value["name"]) == ["the keeper"]
    at.text_input(key=runs_view.K_SEARCH).input("").run()
    at.multiselect(key=runs_view.K_TAGS).select("paper").run()
    assert list(at.dataframe[0].value["tags"]) == ["paper, cpu"]
    at.multiselect(key=runs_view.K_TAGS).set_value([]).run()
    at.selectbox(key=runs_view.K_PICK).set_value("drop").run()
    assert not [b for b in at.button if b.key == runs_view.K_CONFIRM]  # nothing deleted before confirming
    at.button(key=runs_view.K_DELETE).click().run()
    assert "Delete run drop with its predictions" in _texts(at)
    at.button(key=runs_view.K_CONFIRM).click().run()
    assert not at.exception
    with RunStore() as store:
        assert not store.has_run("drop") and store.has_run("keep")


def test_a_running_run_offers_no_delete_button() -> None:
    store_fixture_run("live", subjects=3, per_subject=3)
    with RunStore() as store:
        store.set_run_status("live", "running")
    at = page_app("runs")
    assert "A running run cannot be deleted" in _texts(at)
    assert not [b for b in at.button if b.key == runs_view.K_DELETE]


def test_clone_prefills_the_new_experiment_form() -> None:
    store_fixture_run("src", subjects=3, per_subject=3, model="mfdan", epochs=3, config={"lr": 2e-4, "loss": "focal"})
    at = page_app("new_experiment", clone="src")
    assert not at.exception
    assert at.selectbox(key=ne.K_MODEL).value == "mfdan"
    assert at.number_input(key=ne.key("epochs", "mfdan", "cpu")).value == 3
    assert at.number_input(key=ne.key("lr", "mfdan", "cpu")).value == pytest.approx(2e-4)
    assert at.selectbox(key=ne.key("loss", "mfdan", "cpu")).value == "focal"
    assert "Prefilled from run src" in _texts(at)


def test_compare_shows_only_differing_settings_and_one_curve_chart() -> None:
    store_fixture_run("ca", subjects=6, per_subject=4, accuracy=0.9, seed=1)
    store_fixture_run("cb", subjects=6, per_subject=4, accuracy=0.4, seed=2, config={"lr": 3e-4})
    at = page_app("compare", runs="ca,cb")
    assert not at.exception
    diff = next(d.value for d in at.dataframe if "setting" in d.value.columns)
    # the settings the runs differ in, the seed always, and a training value both changed from its preset alike
    assert set(diff["setting"]) == {"lr", "seed", "epochs"}
    epochs = diff[diff["setting"] == "epochs"].drop(columns="setting").iloc[0]
    assert all("(preset " in str(v) for v in epochs), epochs
    assert "Per-subject UF1 difference A − B" in _texts(at)
    assert "mean per-subject UF1 A − B" in [m.label for m in at.metric]
