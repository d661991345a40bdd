"""The final model: trained on every subject after the LOSO, stored beside the folds, never evaluated.

Engine tests use the tiny clip manifest of test_engine; the predict, CLI and
Analyse page tests use one tiny synthetic run with a final model and one
without (tests/fixtures_clips.py).
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from apptest_helpers import page_app
from fixtures_clips import TINY_SYNTH, cache_at, make_clip_manifest, tiny_config, tiny_run_with_videos
from mer_core.config import ExperimentConfig
from mer_core.errors import ConfigError, MerError
from mer_core.store.db import RunStore
from mer_core.store.folders import run_folder
from mer_core.training import final as final_mod
from mer_core.training.checkpoints import FINAL_FOLD, load_fold_checkpoint
from mer_core.training.engine import run_experiment


@pytest.fixture
def manifest(tmp_path) -> Path:
    return make_clip_manifest(tmp_path / "clips", subjects=3, clips_per_subject=6, size=32, frames=5)


def cfg(manifest, **kw) -> ExperimentConfig:
    return tiny_config(manifest, **kw)


def _stored(rid: str) -> tuple[dict, "object"]:
    with RunStore() as store:
        return store.get_run(rid), store.predictions(rid)


# --- the engine --------------------------------------------------------------------------
def test_final_model_is_stored_beside_the_folds_and_the_loso_is_unchanged(manifest):
    plain_id = run_experiment(cfg(manifest, seed=3))
    events: list[dict] = []
    rid = run_experiment(cfg(manifest, seed=3, final_model=True), progress=events.append)
    plain, plain_pred = _stored(plain_id)
    run, pred = _stored(rid)
    assert run["status"] == "done" and run["summary"] == plain["summary"]
    assert np.allclose(np.stack(pred["probs"]), np.stack(plain_pred["probs"]))
    folder = run_folder(rid, create=False)
    assert not (run_folder(plain_id, create=False) / final_mod.FINAL_CHECKPOINT).exists()
    record = json.loads((folder / final_mod.FINAL_RECORD).read_text())
    assert record["evaluated"] is False and record["epochs"] == 2 and record["n_samples"] == 18
    assert record["subjects"] == ["blobs:s00", "blobs:s01", "blobs:s02"] and "fixed" in record["epochs_rule"]
    ckpt = load_fold_checkpoint(folder / final_mod.FINAL_CHECKPOINT, model="baseline", fold=FINAL_FOLD,
                                config_hash=run["config_hash"])
    assert ckpt["test_subjects"] == [] and ckpt["content_hash"] == record["content_hash"]
    assert sorted(p.name for p in folder.glob("*.pt")) == ["final.pt", "fold_000.pt", "fold_001.pt", "fold_002.pt"]
    stages = [e for e in events if e.get("stage") == final_mod.FINAL_STAGE]
    assert stages and stages[-1]["done"] == stages[-1]["total"] == 2
    assert any("training the final model on all 3 subjects" in e.get("message", "") for e in events)
    assert events[-1]["event"] == "done"  # the final model trains before the run reports done
    assert any("final model trained on all 3 subjects" in n and "not evaluated" in n for n in run["notes"])


def test_early_stop_takes_the_median_of_the_folds_selected_epochs(manifest):
    rid = run_experiment(cfg(manifest, epochs=4, selection="early_stop", val_subjects=1, patience=1,
                             final_model=True))
    with RunStore() as store:
        selected = sorted(int(e) for e in store.folds(rid)["selected_epoch"])
    record = json.loads((run_folder(rid, create=False) / final_mod.FINAL_RECORD).read_text())
    assert record["epochs"] == int(np.floor(np.median(selected) + 0.5))
    assert "median" in record["epochs_rule"] and str(selected) in record["epochs_rule"]


def test_final_epochs_rule():
    early = ExperimentConfig(selection="early_stop", epochs=10)
    assert final_mod.final_epochs(early, [2, 7, 4])[0] == 4
    assert final_mod.final_epochs(early, [2, 3])[0] == 3  # 2.5 rounds up
    assert final_mod.final_epochs(ExperimentConfig(epochs=6), [1, 2])[0] == 6  # fixed: the folds' epochs
    nested, rule = final_mod.final_epochs(ExperimentConfig(selection="nested", nested_folds=3, epochs=10), [2, 7, 4])
    assert nested == 4 and "median" in rule and "[2, 4, 7]" in rule and "inner 3-fold" in rule
    loo = final_mod.final_epochs(ExperimentConfig(selection="nested", nested_folds=0, epochs=10), [3, 3])[1]
    assert "leave-one-subject-out over that fold's training subjects only" in loo
    with pytest.raises(MerError, match="no fold recorded a selected epoch"):
        final_mod.final_epochs(early, [])


def test_a_failed_final_model_keeps_the_run_done_with_a_note(manifest, monkeypatch):
    from mer_core.training import trainer

    real_fit = trainer.fit

    def failing_fit(*args, **kwargs):
        if kwargs.get("stage") == "final":
            raise OSError("disk full")
        return real_fit(*args, **kwargs)

    monkeypatch.setattr(trainer, "fit", failing_fit)
    rid = run_experiment(cfg(manifest, final_model=True))
    run, pred = _stored(rid)
    assert run["status"] == "done" and len(pred) == 18 and run["summary"]["pooled"]["uf1"] is not None
    assert any("final model not trained: failed (OSError: disk full)" in n for n in run["notes"])
    folder = run_folder(rid, create=False)
    assert not (folder / final_mod.FINAL_CHECKPOINT).exists() and not (folder / final_mod.FINAL_RECORD).exists()
    assert len(list(folder.glob("fold_*.pt"))) == 3


def test_cancelling_the_final_model_stops_it_and_keeps_the_run(manifest):
    state = {"stop": False, "epochs": 0}

    def progress(event):
        if event.get("stage") == final_mod.FINAL_STAGE:
            state["stop"] = True  # cancel as soon as the final model starts
            state["epochs"] = max(state["epochs"], int(event.get("done", 0)))

    rid = run_experiment(cfg(manifest, epochs=3, final_model=True), progress=progress,
                         should_stop=lambda: state["stop"])
    run, pred = _stored(rid)
    assert run["status"] == "done" and len(pred) == 18
    assert any("final model not trained: cancelled by the user" in n for n in run["notes"])
    assert state["epochs"] == 0  # stopped within its first epoch
    assert not (run_folder(rid, create=False) / final_mod.FINAL_CHECKPOINT).exists()


# --- where final_model is set ---------------------------------------------------------------
def test_final_model_is_a_config_key_of_the_cli_and_of_studies():
    import argparse

    from mer_core.cli.cmd_loso import add_experiment_args, config_from_args
    from mer_core.jobs.study import cell_config, parse_study

    assert ExperimentConfig().final_model is False
    with pytest.raises(ConfigError, match="final_model='yes': expected true or false"):
        ExperimentConfig.from_dict({"final_model": "yes"})
    p = argparse.ArgumentParser()
    add_experiment_args(p, protocol_default="loso")
    assert config_from_args(p.parse_args(["--final-model"]), "loso").final_model is True
    assert config_from_args(p.parse_args(["--set", "final_model=true"]), "loso").final_model is True
    assert config_from_args(p.parse_args([]), "loso").final_model is False
    spec = parse_study({"name": "s", "dataset": "synthetic", "options": {"epochs": 1},
                        "arms": [{"name": "a", "model": "baseline", "options": {"final_model": True}},
                                 {"name": "b", "model": "baseline"}]})
    assert cell_config(spec, spec.arms[0], 0).final_model is True
    assert cell_config(spec, spec.arms[1], 0).final_model is False


def test_the_new_experiment_form_offers_the_final_model():
    at = page_app("new_experiment")
    assert not at.exception
    box = at.checkbox(key="ne_final_model")
    assert box.value is False and "never evaluated" in box.help and "every subject" in box.help
    box.check().run()
    assert not at.exception
    assert '"final_model": true' in " ".join(c.value for c in at.code)


# --- predicting with it ---------------------------------------------------------------------
@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A tiny synthetic run with a final model, one without, and exported videos, in one cache."""
    root = tmp_path_factory.mktemp("final_cache")
    tiny = tiny_run_with_videos(root, clips=2, fmt="mp4", videos_dir="video_clips", final_model=True)
    with cache_at(root):
        plain = run_experiment(ExperimentConfig.from_dict(dict(dataset="synthetic", dataset_options=TINY_SYNTH,
                                                               model="baseline", epochs=1, batch_size=8,
                                                               executor="sequential")))
    return {**tiny, "final": tiny["run"], "plain": plain}


@pytest.fixture
def env(runs, monkeypatch):
    monkeypatch.setenv("MER_CACHE", str(runs["root"]))
    import streamlit as st

    st.cache_data.clear()
    st.cache_resource.clear()
    return runs


def _video(env) -> Path:
    return env["root"] / "video_clips" / env["metas"][0]["video"]


def test_predict_uses_the_final_model_when_stored(env):
    from mer_core.explain.inference import RunPredictor, analyse_clip

    p = RunPredictor(env["final"])
    assert p.kind == "final" and len(p.models) == 1 and p.final["evaluated"] is False
    a = analyse_clip(_video(env), env["final"], cropped=True, predictor=p)
    s = a.summary()
    assert s["model_used"] == "final" and "Final model trained on all 3 subjects (not evaluated)" in s["model"]
    assert len(a.fold_probs) == 1 and np.allclose(a.fold_probs[0], a.probs)
    ens = RunPredictor(env["final"], model="ensemble")
    assert ens.kind == "ensemble" and len(ens.models) == 3 and "Ensemble of 3 fold models" in ens.note
    assert not np.allclose(ens.predict(a.x)[0], a.probs)  # another model: other probabilities


def test_a_run_without_a_final_model_falls_back_to_the_ensemble_and_says_so(env):
    from mer_core.explain.inference import NO_FINAL_NOTE, RunPredictor, analyse_clip

    a = analyse_clip(_video(env), env["plain"], cropped=True)
    assert a.model_used == "ensemble" and "Ensemble of 3 fold models" in a.model_note
    assert NO_FINAL_NOTE in a.notes and "final_model = true" in NO_FINAL_NOTE
    with pytest.raises(MerError, match="has no final model"):
        RunPredictor(env["plain"], model="final")
    with pytest.raises(MerError, match="model='best': expected one of final, ensemble"):
        RunPredictor(env["plain"], model="best")


def test_mer_predict_model_option(env, tmp_path, capsys):
    from mer_core.cli import main

    def run(*extra: str) -> dict:
        assert main(["predict", "--run", *extra, str(_video(env)), "--cropped", "--json", "--out",
                     str(tmp_path / "out")]) == 0
        return json.loads(capsys.readouterr().out)

    assert run(env["final"])["model_used"] == "final"
    out = run(env["final"], "--model", "ensemble")
    assert out["model_used"] == "ensemble" and "Ensemble of 3 fold models" in out["model"]
    out = run(env["plain"])
    assert out["model_used"] == "ensemble" and any("no final model" in n for n in out["notes"])
    assert main(["predict", "--run", env["plain"], "--model", "final", str(_video(env)), "--cropped"]) != 0
    assert "has no final model" in capsys.readouterr().err


def _texts(at) -> str:
    kinds = ("markdown", "caption", "info", "warning", "error", "subheader")
    parts = [e.value for kind in kinds for e in getattr(at, kind)]
    return "\n".join(str(p) for p in parts).replace("\\", "")


def _upload(at, env):
    at.file_uploader[0].set_value(("clip.mp4", _video(env).read_bytes(), "video/mp4")).run()
    assert not at.exception, at.exception
    return at


def test_analyse_page_offers_the_model_choice(env):
    at = _upload(page_app("analyse", run=env["final"]), env)
    choice = at.radio(key=f"analyse_model_{env['final']}")
    assert choice.options == ["final model trained on all 3 subjects (not evaluated)", "ensemble of 3 fold models"]
    assert choice.value == "final"
    assert "Final model trained on all 3 subjects (not evaluated)" in _texts(at)
    choice.set_value("ensemble").run()
    assert not at.exception
    assert "Ensemble of 3 fold models" in _texts(at)


def test_analyse_page_says_a_run_has_no_final_model(env):
    at = _upload(page_app("analyse", run=env["plain"]), env)
    assert len(at.radio) == 1  # the clip source only: nothing to choose
    text = _texts(at)
    assert "Predicting with the ensemble of 3 fold models: this run has no final model" in text


# --- keep_checkpoints = false (the final model is kept anyway) --------------------------------
def test_keep_checkpoints_false_keeps_the_final_model_and_says_so(manifest):
    rid = run_experiment(cfg(manifest, final_model=True, keep_checkpoints=False))
    run, _ = _stored(rid)
    folder = run_folder(rid, create=False)
    assert sorted(p.name for p in folder.glob("*.pt")) == ["final.pt"]  # no fold checkpoint, the final one kept
    record, problem = final_mod.final_record_state(folder)
    assert problem == "" and record["keep_checkpoints"] is False
    assert "kept although keep_checkpoints = false" in record["note"]
    note = next(n for n in run["notes"] if n.startswith("final model trained"))
    assert final_mod.KEPT_ANYWAY in note
    kept = json.loads((run_folder(run_experiment(cfg(manifest, final_model=True, seed=1)), create=False)
                       / final_mod.FINAL_RECORD).read_text())
    assert kept["keep_checkpoints"] is True and "keep_checkpoints" not in kept["note"]


# --- the record's validation ------------------------------------------------------------------
GOOD = {"evaluated": False, "epochs": 2, "epochs_rule": "fixed: 2", "n_samples": 9, "subjects": ["a", "b", "c"],
        "n_subjects": 3, "checkpoint": "final.pt", "seed": 1, "train_loss": 0.5, "note": "n"}


@pytest.mark.parametrize("text, why", [
    ("{not json", "cannot be read"),
    (json.dumps([1, 2]), "not a MER Bench final-model record"),
    (json.dumps({**GOOD, "evaluated": True}), "not a MER Bench final-model record"),
    (json.dumps({**GOOD, "epochs": "2"}), '"epochs" is not a whole number'),
    (json.dumps({**GOOD, "epochs": True}), '"epochs" is not a whole number'),
    (json.dumps({**GOOD, "subjects": "abc"}), '"subjects" is not a non-empty list'),
    (json.dumps({**GOOD, "n_subjects": 4}), "is not the number of subjects listed"),
    (json.dumps({k: v for k, v in GOOD.items() if k != "epochs_rule"}), '"epochs_rule" is missing'),
    (json.dumps({**GOOD, "train_loss": "low"}), '"train_loss" has the wrong type'),
])
def test_a_malformed_record_is_a_reason_never_an_exception(tmp_path, text, why):
    (tmp_path / final_mod.FINAL_CHECKPOINT).write_bytes(b"x")
    (tmp_path / final_mod.FINAL_RECORD).write_text(text)
    record, problem = final_mod.final_record_state(tmp_path)
    assert record is None and why in problem
    with pytest.raises(MerError, match="re-run the run with final_model=true"):
        final_mod.read_final_record(tmp_path)


def test_record_state_of_whole_and_half_stored_final_models(tmp_path):
    assert final_mod.final_record_state(tmp_path) == (None, "")
    (tmp_path / final_mod.FINAL_RECORD).write_text(json.dumps(GOOD))
    assert "checkpoint final.pt is missing" in final_mod.final_record_state(tmp_path)[1]
    (tmp_path / final_mod.FINAL_CHECKPOINT).write_bytes(b"x")
    assert final_mod.final_record_state(tmp_path) == (GOOD, "")
    (tmp_path / final_mod.FINAL_RECORD).unlink()
    assert "without its record final.json" in final_mod.final_record_state(tmp_path)[1]


# --- the Run page's Final model section ---------------------------------------------------------
def test_run_page_shows_the_final_model_record(env):
    at = page_app("run", run=env["final"])
    assert not at.exception, at.exception
    assert "Final model" in [s.value for s in at.subheader]
    text = _texts(at)
    n = final_mod.read_final_record(run_folder(env["final"], create=False))["n_samples"]
    assert f"Trained on all 3 subjects ({n} clips) for 1 epoch (rule: fixed: the config's epochs (1)" in text
    assert "never evaluated: its score is the LOSO above, not its own." in text
    table = next(d.value for d in at.dataframe if list(d.value.columns) == ["field", "value"]
                 and "epochs rule" in set(d.value["field"]))
    fields = dict(zip(table["field"], table["value"]))
    assert fields["evaluated"] == "False" and fields["n subjects"] == "3" and fields["checkpoint"] == "final.pt"
    assert fields["subjects"].count(",") == 2


def test_run_page_has_no_final_model_section_when_none_was_asked_for(env):
    at = page_app("run", run=env["plain"])
    assert not at.exception
    assert "Final model" not in [s.value for s in at.subheader]


def _asked(rid: str, note: str | None = None) -> str:
    from test_results_pages import store_fixture_run

    store_fixture_run(rid, subjects=3, per_subject=3, config={"final_model": True})
    if note:
        with RunStore() as store:
            store.add_run_note(rid, note)
    import streamlit as st

    st.cache_data.clear()  # the runs table of an earlier page run is cached
    return rid


def test_run_page_says_why_a_requested_final_model_is_missing():
    why = "final model not trained: failed (OSError: disk full); the LOSO folds and their summary are stored"
    at = page_app("run", run=_asked("fm_failed", why))
    assert not at.exception
    assert "Final model" in [s.value for s in at.subheader]
    assert why in [w.value.replace("\\", "") for w in at.warning]
    assert _texts(at).count(why) == 1  # in the Final model section only, not twice
    at = page_app("run", run=_asked("fm_gone"))
    assert "final_model = true was asked for, but no final model is stored" in _texts(at)


def test_run_page_survives_a_malformed_final_record():
    rid = _asked("fm_bad")
    folder = run_folder(rid)
    (folder / final_mod.FINAL_CHECKPOINT).write_bytes(b"x")
    (folder / final_mod.FINAL_RECORD).write_text(json.dumps({**GOOD, "n_samples": -1}))
    at = page_app("run", run=rid)
    assert not at.exception
    warnings = [w.value.replace("\\", "") for w in at.warning]
    assert any("Final model unusable" in w and '"n_samples" is not a whole number' in w for w in warnings)
    (folder / final_mod.FINAL_RECORD).write_text("{truncated")
    at = page_app("run", run=rid)
    assert not at.exception and any("cannot be read" in w.value for w in at.warning)


# --- clone and the estimate on New experiment -------------------------------------------------------
def test_clone_prefills_the_final_model_checkbox():
    from dashboard.views import new_experiment as ne
    from test_results_pages import store_fixture_run

    at = page_app("new_experiment", clone=_asked("fm_src"))
    assert not at.exception
    assert at.checkbox(key=ne.K_FINAL).value is True
    assert '"final_model": true' in " ".join(c.value for c in at.code)
    store_fixture_run("fm_plain", subjects=3, per_subject=3)
    import streamlit as st

    st.cache_data.clear()
    at.query_params["clone"] = "fm_plain"
    at.run()
    assert at.checkbox(key=ne.K_FINAL).value is False


def test_new_experiment_estimate_counts_the_final_model():
    at = page_app("new_experiment")
    assert not any("final model:" in c.value for c in at.caption)
    at.checkbox(key="ne_final_model").check().run()
    assert not at.exception
    caption = next(c.value for c in at.caption if c.value.startswith("ⓘ final model:"))
    assert "one more fit of" in caption and "clips at the same cost per clip" in caption
