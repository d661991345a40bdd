"""Engine end to end on a tiny clip manifest: LOSO, determinism, resume, oracle."""
from pathlib import Path

import numpy as np
import pytest

from fixtures_clips import make_clip_manifest, tiny_config
from mer_core.config import ExperimentConfig
from mer_core.store.db import RunStore
from mer_core.training import executors
from mer_core.training.engine import run_experiment


@pytest.fixture
def manifest(tmp_path) -> Path:
    return make_clip_manifest(tmp_path / "clips", subjects=3, clips_per_subject=6, size=32, frames=5)


def cfg(manifest, **kw) -> ExperimentConfig:
    return tiny_config(manifest, **kw)


def test_loso_stores_every_fold_and_pooled_metrics(manifest):
    events = []
    rid = run_experiment(cfg(manifest), progress=events.append)
    with RunStore() as store:
        run = store.get_run(rid)
        pred = store.predictions(rid)
        assert run["status"] == "done" and run["n_folds"] == 3
        assert len(pred) == 18 and pred["sample_id"].is_unique
        assert store.completed_folds(rid) == {0, 1, 2}
        assert len(store.epochs(rid)) == 3 * 2
        assert 0 <= run["uf1"] <= 1
        assert "oracle" in run["summary"] and "diagnostic" in run["summary"]["oracle"]["note"]
        for f in store.folds(rid).itertuples():
            assert Path(f.checkpoint).exists()
    kinds = {e["event"] for e in events}
    assert {"fold_start", "epoch", "fold_done", "done"} <= kinds


def test_same_config_gives_identical_predictions(manifest):
    a = run_experiment(cfg(manifest, seed=7))
    b = run_experiment(cfg(manifest, seed=7))
    with RunStore() as store:
        pa, pb = store.predictions(a), store.predictions(b)
    assert pa["y_pred"].tolist() == pb["y_pred"].tolist()
    assert np.allclose(np.stack(pa["probs"]), np.stack(pb["probs"]))


def test_resume_after_a_crash_mid_run_does_not_retrain_finished_folds(manifest, monkeypatch):
    real = executors.run_fold
    calls = []

    def crash_on_second(task, emit=None, should_stop=None):
        calls.append(task.fold.index)
        if len(calls) == 2:
            raise RuntimeError("simulated crash")
        return real(task, emit, should_stop)

    monkeypatch.setattr(executors, "run_fold", crash_on_second)
    config = cfg(manifest)
    with pytest.raises(Exception, match="simulated crash"):
        run_experiment(config, run_id="resume-me")
    with RunStore() as store:
        assert store.get_run("resume-me")["status"] == "failed"
        assert store.completed_folds("resume-me") == {0}
    calls.clear()
    monkeypatch.setattr(executors, "run_fold", lambda t, e=None, s=None: (calls.append(t.fold.index), real(t, e, s))[1])
    run_experiment(config, run_id="resume-me")
    assert calls == [1, 2]  # fold 0 was not retrained
    with RunStore() as store:
        assert store.get_run("resume-me")["status"] == "done"
        assert len(store.predictions("resume-me")) == 18


def test_early_stopping_uses_training_subjects_only(manifest):
    rid = run_experiment(cfg(manifest, selection="early_stop", val_subjects=1, epochs=3, patience=1))
    with RunStore() as store:
        folds = store.folds(rid)
    assert (folds["n_val"] > 0).all()
    assert (folds["n_train"] + folds["n_val"] + folds["n_test"] == 18).all()


@pytest.mark.parametrize("executor", ["sequential", "process"])
def test_the_cancel_flag_stops_the_run_and_keeps_finished_folds(manifest, executor):
    # the store's cancel flag is the one channel: the processes training the folds poll it themselves
    def progress(e):
        if e["event"] == "fold_done":
            with RunStore() as store:
                store.request_cancel("cancel-me")

    # process: the pool hands the third fold to the first free worker before the parent stores the first fold and
    # sets the flag, so a fold must outlast that delay plus a poll (CANCEL_POLL_S) by a margin even on a busy machine
    run_experiment(cfg(manifest, executor=executor, workers=1 if executor == "sequential" else 2,
                       epochs=3 if executor == "sequential" else 200),
                   run_id="cancel-me", progress=progress)
    with RunStore() as store:
        run = store.get_run("cancel-me")
        assert run["status"] == "cancelled"
        done = store.completed_folds("cancel-me")
        assert 1 <= len(done) < 3 and store.cancel_requested("cancel-me")
        if executor == "sequential":
            assert len(done) == 1
    run_experiment(cfg(manifest, executor=executor, workers=1 if executor == "sequential" else 2,
                       epochs=3 if executor == "sequential" else 200), run_id="cancel-me")  # resumed: flag cleared
    with RunStore() as store:
        assert store.get_run("cancel-me")["status"] == "done" and not store.cancel_requested("cancel-me")


def test_macro_pretraining_then_finetuning_end_to_end():
    """DenseAttention pre-trains once on a (tiny) synthetic macro set, then every fold fine-tunes from it."""
    macro = "synthetic-macro?subjects=2&clips_per_subject=6&size=64&frames=12"
    config = ExperimentConfig.from_dict(dict(
        dataset="synthetic", dataset_options=dict(subjects=2, clips_per_subject=4, size=64, frames=12),
        model="dense_attention", model_options=dict(block_layers=[1, 1], growth_rate=4, init_features=8),
        epochs=1, batch_size=8, executor="sequential", workers=1, pretrain=macro, pretrain_epochs=1,
        freeze="early", preprocess=dict(channels=["apex", "diff"], input_size=32)))
    events = []
    rid = run_experiment(config, progress=events.append)
    stages = {e.get("stage") for e in events if e["event"] == "stage"}
    assert "pretrain" in stages
    with RunStore() as store:
        assert store.get_run(rid)["status"] == "done"
    from mer_core.paths import checkpoints_dir

    assert list((checkpoints_dir() / "pretrain").glob("*.pt"))


def test_a_clear_error_inside_a_fold_still_closes_the_run(manifest, monkeypatch):
    from mer_core.errors import MerError
    from mer_core.training import executors

    def refuse(task, emit=None, should_stop=None):
        raise MerError("checkpoint architecture differs")

    monkeypatch.setattr(executors, "run_fold", refuse)
    with pytest.raises(MerError, match="architecture differs"):
        run_experiment(cfg(manifest), run_id="closed")
    with RunStore() as store:
        run = store.get_run("closed")
    assert run["status"] == "failed" and "architecture differs" in run["error"]
