"""The New experiment form with AppTest: defaults, field-level validation, submit -> job row."""
from __future__ import annotations

from pathlib import Path

import pytest

from apptest_helpers import unescape
from fixtures_clips import make_clip_manifest
from mer_core.config import ExperimentConfig
from mer_core.jobs import queue as jobs
from mer_core.store.db import RunStore
from streamlit.testing.v1 import AppTest

from dashboard.views import new_experiment as ne


@pytest.fixture
def manifest(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("MER_ALLOWED_ROOTS", str(tmp_path))  # the form reads browser paths only in allowed folders
    return make_clip_manifest(tmp_path / "clips", subjects=3, clips_per_subject=4, size=32, frames=5)


@pytest.fixture
def no_workers(monkeypatch):
    """Submitting queues the job but starts no process (the queue is tested in test_jobs.py)."""
    monkeypatch.setattr(jobs, "kick", lambda *a, **k: [])


def form(manifest: Path, **state) -> AppTest:
    def script():
        from dashboard.views import new_experiment

        new_experiment.render()

    at = AppTest.from_function(script, default_timeout=60)
    at.session_state[ne.K_DATASET] = "manifest"
    at.session_state["ne_options_manifest"] = f"manifest={manifest}"
    at.session_state["ne_class_set_manifest"] = "native"
    for k, v in state.items():
        at.session_state[k] = v
    return at.run()


def errors_text(at: AppTest) -> str:
    return "\n".join(e.value for e in at.error)


def test_form_defaults_summary_and_submit_queues_a_job(manifest, no_workers):
    at = form(manifest)
    assert not at.exception, at.exception
    assert not at.error, errors_text(at)
    epochs = at.number_input(key=ne.key("epochs", "baseline", "cpu"))
    from mer_core.models.registry import train_defaults

    assert epochs.value == train_defaults("baseline", "cpu").get("epochs", 20)  # the preset's default
    assert any("Preset values: " in c.value and "tuned on synthetic seed 0" in c.value
               for c in at.caption)  # provenance next to the preset
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["folds"] == "3" and metrics["clips"] == "12" and metrics["subjects"] == "3"
    epochs.set_value(2)
    at.text_input(key="ne_name").set_value("from the form")
    at.run()
    submit = at.button(key=ne.K_SUBMIT)
    assert not submit.disabled
    submit.click()
    at.run()
    assert not at.exception, at.exception
    with RunStore() as store:
        table = jobs.list_jobs(store)
        assert len(table) == 1
        job = jobs.get_job(store, table["id"][0])
    assert job["status"] == "queued" and job["name"] == "from the form"
    assert job["config"]["epochs"] == 2 and job["config"]["dataset_options"] == {"manifest": str(manifest)}
    assert job["config"]["class_set"] == "native" and job["config"]["model"] == "baseline"
    assert any(job["id"] in s.value for s in at.success)
    links = [(e.proto.page, e.proto.query_string) for e in at.get("page_link")]
    assert ("jobs", f"job={job['id']}") in links  # link to the live view


def test_bad_inputs_are_refused_next_to_their_field(manifest, no_workers, tmp_path):
    at = form(manifest)
    at.number_input(key=ne.key("epochs", "baseline", "cpu")).set_value(0)
    at.number_input(key=ne.key("lr", "baseline", "cpu")).set_value(-0.01)
    at.run()
    text = errors_text(at)
    assert "epochs=0" in text and "lr=-0.01" in text
    assert at.button(key=ne.K_SUBMIT).disabled

    at.number_input(key=ne.key("epochs", "baseline", "cpu")).set_value(1)
    at.number_input(key=ne.key("lr", "baseline", "cpu")).set_value(0.001)
    at.text_area(key="ne_options_manifest").set_value(f"manifest={tmp_path / 'nowhere.csv'}")
    at.run()
    assert "nowhere.csv" in errors_text(at)  # the indexer's own message
    assert at.button(key=ne.K_SUBMIT).disabled

    at.text_area(key="ne_options_manifest").set_value(f"manifest={manifest}")
    at.selectbox(key=ne.K_MODEL).set_value("mfdan")
    at.run()
    at.number_input(key=ne.key("input_size", "mfdan", "cpu")).set_value(36)
    at.run()
    assert "mfdan does not accept this input" in errors_text(at)
    assert at.button(key=ne.K_SUBMIT).disabled
    with RunStore() as store:
        assert jobs.list_jobs(store).empty  # nothing was queued


def test_model_specific_fields_come_from_the_config_dataclass(manifest, no_workers):
    at = form(manifest, **{ne.K_MODEL: "mfdan"})
    assert not at.exception, at.exception
    labels = [s.label for s in at.slider]
    assert "DropKey rate" in labels
    from mer_core.models.registry import model_config

    assert at.slider(key=ne.key("dropkey", "mfdan", "cpu")).value == pytest.approx(model_config("mfdan").dropkey)
    at = form(manifest)
    assert "DropKey rate" not in [s.label for s in at.slider]  # baseline has no DropKey


def test_pretraining_fields_only_for_dense_attention(manifest, no_workers):
    at = form(manifest, **{ne.K_MODEL: "dense_attention"})
    assert not at.exception, at.exception
    assert "pre-train on (macro dataset)" in [s.label for s in at.selectbox]
    at.selectbox(key=ne.key("pretrain", "dense_attention", "cpu")).set_value("synthetic-macro")
    at.run()
    assert "pre-training epochs" in [n.label for n in at.number_input]
    assert "DropKey rate" not in [s.label for s in at.slider]


def test_a_batch_larger_than_the_training_set_is_flagged_and_noted(tmp_path):
    from mer_core.training.engine import runtime_notes

    cfg = ExperimentConfig.from_dict({"model": "baseline", "batch_size": 512})
    assert any("larger than the smallest training set (40 clips)" in n for n in runtime_notes(cfg, 4, 40))
    assert not [n for n in runtime_notes(cfg.replace(batch_size=8), 4, 40) if "batch" in n]


def test_a_negative_seed_is_refused():
    from mer_core.errors import ConfigError

    with pytest.raises(ConfigError, match="seed=-1: expected an integer >= 0"):
        ExperimentConfig.from_dict({"seed": -1})


def test_the_form_flags_a_batch_larger_than_the_training_set(manifest):
    at = form(manifest)
    batch = at.number_input(key=ne.key("batch_size", "baseline", "cpu"))
    batch.set_value(4)
    at.run()
    assert not any("larger than the smallest training set" in w.value for w in at.warning)
    at.number_input(key=ne.key("batch_size", "baseline", "cpu")).set_value(100)
    at.run()
    assert not at.exception, at.exception
    assert any("Batch size 100 is larger than the smallest training set (8 clips)" in w.value for w in at.warning)


@pytest.mark.parametrize("executor, workers, named", [("process", 0, "Estimated for the process executor"),
                                                        ("sequential", 0, "Estimated for the sequential executor"),
                                                        ("process", 1, "Estimated for the sequential executor (the "
                                                                       "process executor selected")])
def test_the_estimate_names_the_executor_that_runs(manifest, executor, workers, named, monkeypatch):
    from dashboard import reads

    seen = {}

    def fake(model, preset, **kw):
        seen.update(kw)
        return 60.0, f"measured, LOSO {kw.get('executor')} executor"

    monkeypatch.setattr(reads, "estimate_seconds", fake)
    monkeypatch.setattr("mer_core.jobs.plan.machine_load", lambda: (7.5, 2, True))
    at = form(manifest, ne_executor=executor, **({"ne_workers": workers} if workers else {}))
    assert not at.exception, at.exception
    captions = "\n".join(c.value for c in at.caption).replace("\\", "")
    assert named in captions
    assert seen["executor"] == named.split("the ")[1].split(" ")[0]
    assert "load 7.5 on 2 cores" in " ".join(w.value for w in at.warning).replace("\\", "")
    (details,) = [e for e in at.expander if e.label == "how the estimate is made"]
    assert "folds at a time" in details.caption[0].value


def test_submitting_a_config_identical_to_a_queued_job_asks_first(manifest, no_workers):
    at = form(manifest)
    at.button(key=ne.K_SUBMIT).click()
    at.run()
    with RunStore() as store:
        assert len(jobs.list_jobs(store)) == 1
    first = at.session_state[ne.K_LAST_JOB]
    at.button(key=ne.K_SUBMIT).click()  # the same config again
    at.run()
    assert not at.exception, at.exception
    with RunStore() as store:
        assert len(jobs.list_jobs(store)) == 1  # asked, not queued
    assert any(first in w.value and "already queued or running" in w.value for w in at.warning)
    at.button(key=ne.K_AGAIN).click()
    at.run()
    with RunStore() as store:
        assert len(jobs.list_jobs(store)) == 2
    assert not any("already queued" in w.value for w in at.warning)


def test_epoch_choice_weight_averaging_and_models_per_fold_reach_the_submitted_config(manifest, no_workers,
                                                                                      monkeypatch):
    from dashboard import reads

    seen = {}

    def fake(model, preset, **kw):
        seen.update(kw)
        return 60.0, "measured, LOSO sequential executor"

    monkeypatch.setattr(reads, "estimate_seconds", fake)
    at = form(manifest)
    k = lambda name: ne.key(name, "baseline", "cpu")  # noqa: E731
    helps = {w.label: w.help for w in [*at.radio, *at.selectbox, *at.number_input]}
    assert "never used to choose" in helps["epoch choice"] and "inner folds" in helps["epoch choice"]
    assert "EMA" in helps["weight averaging"] and "SWA" in helps["weight averaging"]
    assert "average their predicted probabilities" in helps["models per fold (seeds averaged)"]
    assert seen["passes"] == 1
    at.number_input(key=k("epochs")).set_value(3)
    at.radio(key=k("selection")).set_value("nested")
    at.run()
    # 3 subjects: each fold trains on 2, too few for the default 4 inner folds; said under that field
    assert "needs at least 4 training subjects per fold" in errors_text(at)
    assert at.button(key=ne.K_SUBMIT).disabled
    at.number_input(key=k("nested_folds")).set_value(2)
    at.selectbox(key=k("average")).set_value("swa")
    at.number_input(key=k("seeds_per_fold")).set_value(2)
    at.run()
    at.number_input(key=k("swa_epochs")).set_value(2)
    at.run()
    assert not at.error, errors_text(at)
    assert seen["passes"] == 3  # 2 inner fits (1 fit's worth) + 2 models, per fold
    captions = unescape(" ".join(c.value for c in at.caption))
    assert "2 inner fits to choose the epoch" in captions and "2 models (seeds averaged)" in captions
    at.button(key=ne.K_SUBMIT).click()
    at.run()
    at.selectbox(key=k("average")).set_value("ema")
    at.run()
    at.number_input(key=k("ema_decay")).set_value(0.995)
    at.radio(key=k("selection")).set_value("early_stop")
    at.run()
    assert "needs selection='fixed' or 'nested'" in errors_text(at)  # averaging replaces early stop's epoch
    at.radio(key=k("selection")).set_value("fixed")
    at.run()
    at.button(key=ne.K_SUBMIT).click()
    at.run()
    assert not at.exception, at.exception
    with RunStore() as store:
        table = jobs.list_jobs(store)
        configs = sorted((jobs.get_job(store, j)["config"] for j in table["id"]), key=lambda c: c["average"])
    ema, swa = configs
    assert (swa["selection"], swa["nested_folds"], swa["average"], swa["swa_epochs"], swa["seeds_per_fold"]) == (
        "nested", 2, "swa", 2, 2)
    assert (ema["selection"], ema["average"], ema["ema_decay"], ema["seeds_per_fold"]) == ("fixed", "ema", 0.995, 2)
