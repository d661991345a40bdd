"""The batched executor: each fold trained beside others gives what it gives trained alone."""
import csv
import dataclasses

import numpy as np
import pytest

from fixtures_clips import make_clip_manifest
from mer_core.config import ExperimentConfig
from mer_core.models import registry
from mer_core.store.db import RunStore
from mer_core.training import batched
from mer_core.training.engine import run_experiment

CLIPS = {"s00": 3, "s01": 6, "s02": 5, "s03": 6}  # unequal subjects: unequal folds and last batches


@pytest.fixture
def manifest(tmp_path):
    path = make_clip_manifest(tmp_path / "clips", subjects=len(CLIPS), clips_per_subject=6, size=32, frames=5)
    with path.open() as fh:
        rows = list(csv.DictReader(fh))
    kept = [r for r in rows if int(r["clip"][4:]) < CLIPS[r["subject"]]]
    with path.open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(kept)
    return path


def cfg(manifest, **kw):
    base = dict(dataset="manifest", dataset_options={"manifest": str(manifest)}, class_set="native",
                model="ststnet", epochs=3, batch_size=4, executor="sequential", workers=1, seed=5)
    base.update(kw)
    return ExperimentConfig.from_dict(base)


def stored(run_id):
    with RunStore() as store:
        return store.predictions(run_id), store.folds(run_id), store.epochs(run_id), store.get_run(run_id)


@pytest.mark.parametrize("model,selection", [("ststnet", "fixed"), ("baseline", "early_stop")])
def test_each_fold_in_a_batch_predicts_as_it_does_alone(manifest, model, selection):
    kw = dict(model=model, model_options={"dropout": 0.0}, selection=selection, patience=1, val_subjects=1,
              epochs=4 if selection == "early_stop" else 3)
    seq = stored(run_experiment(cfg(manifest, **kw)))
    bat = stored(run_experiment(cfg(manifest, executor="batched", max_batched_folds=3, **kw)))
    assert bat[3]["status"] == "done"
    (ps, fs, es, _), (pb, fb, eb, _) = seq, bat
    ps, pb = ps.sort_values("sample_id"), pb.sort_values("sample_id")
    assert np.abs(np.stack(ps["probs"]) - np.stack(pb["probs"])).max() < 1e-4
    assert ps["oracle_pred"].tolist() == pb["oracle_pred"].tolist()
    key = ["fold_index", "epoch"]
    es, eb = es.sort_values(key).reset_index(drop=True), eb.sort_values(key).reset_index(drop=True)
    assert es[key].equals(eb[key])  # the same epochs run per fold (early stopping included)
    assert np.allclose(es["train_loss"], eb["train_loss"], atol=1e-4)
    cols = ["fold_index", "selected_epoch", "epochs_run"]
    assert fs.sort_values("fold_index")[cols].values.tolist() == fb.sort_values("fold_index")[cols].values.tolist()
    assert all(fb["checkpoint"])


def test_no_training_batch_holds_a_sample_of_the_folds_test_or_validation_subjects(manifest, monkeypatch):
    seen = []
    real = batched._audit

    def spy(run, idx):
        meta = run.task.meta
        fold = run.task.fold
        held_out = set(meta["subject"].iloc[np.r_[fold.test_idx, fold.val_idx]])
        seen.append((fold.index, set(meta["subject"].iloc[idx]), held_out))
        real(run, idx)

    monkeypatch.setattr(batched, "_audit", spy)
    run_experiment(cfg(manifest, executor="batched", selection="early_stop", val_subjects=1))
    assert {f for f, _, _ in seen} == {0, 1, 2, 3}
    assert all(subjects and not (subjects & held_out) for _, subjects, held_out in seen)


def test_audit_refuses_a_batch_with_a_foreign_sample():
    run = type("Run", (), {"allowed": np.array([True, True, False]), "index": 7})()
    batched._audit(run, np.array([0, 1]))
    with pytest.raises(RuntimeError, match="fold 7.*\\[2\\]"):
        batched._audit(run, np.array([1, 2]))


def test_cancel_stops_inside_a_chunk_keeps_stored_folds_and_resume_trains_only_the_rest(manifest):
    config = cfg(manifest, executor="batched", max_batched_folds=2, epochs=3)
    events = []

    def progress(e):
        events.append(e)

    def stop():  # once the second chunk has run one epoch
        return any(e.get("event") == "epoch" and e["fold"] >= 2 for e in events)

    rid = run_experiment(config, run_id="cut", progress=progress, should_stop=stop)
    _, folds, epochs, run = stored(rid)
    assert run["status"] == "cancelled"
    with RunStore() as store:
        assert store.completed_folds(rid) == {0, 1}
    assert epochs.query("fold_index >= 2").groupby("fold_index").size().tolist() == [1, 1]  # stopped mid-fold
    events.clear()
    run_experiment(config, run_id="cut", progress=progress)
    assert {e["fold"] for e in events if e.get("event") == "fold_start"} == {2, 3}
    pred, _, epochs, run = stored(rid)
    assert run["status"] == "done" and epochs.groupby("fold_index").size().tolist() == [3, 3, 3, 3]
    alone = stored(run_experiment(cfg(manifest, epochs=3)))[0]
    a, b = alone.sort_values("sample_id"), pred.sort_values("sample_id")
    assert np.abs(np.stack(a["probs"]) - np.stack(b["probs"])).max() < 1e-4


def test_a_model_that_cannot_be_batched_falls_back_with_a_note(manifest, monkeypatch):
    spec = registry.model_spec("ststnet")
    monkeypatch.setitem(registry._MODELS, "ststnet", dataclasses.replace(spec, batchable=False))
    events = []
    rid = run_experiment(cfg(manifest, executor="batched"), progress=events.append)
    _, folds, _, run = stored(rid)
    assert run["status"] == "done" and len(folds) == 4
    assert any("batchable=False" in n and "'process'" in n for n in run["notes"])
    assert any(e.get("event") == "note" and "fell back" in e["message"] for e in events)


def test_chunk_size_follows_the_budget():
    c = ExperimentConfig(executor="batched")
    assert batched.chunk_size(c, 68, per_fold=100, free=1000) == 5
    assert batched.chunk_size(c, 3, per_fold=100, free=10**9) == 3
    assert batched.chunk_size(c, 68, per_fold=10**9, free=100) == 1
    assert batched.chunk_size(dataclasses.replace(c, max_batched_folds=4), 68, per_fold=10**9, free=1) == 4


def test_batched_replaces_the_default_pool_on_one_cuda_device_only(monkeypatch):
    import torch

    from mer_core.training import executors, trainer

    c = ExperimentConfig(model="ststnet", executor="process", workers=0)
    monkeypatch.setattr(trainer, "resolve_device", lambda name="auto": torch.device("cpu"))
    assert executors.effective_executor(c, 68) == "process"
    monkeypatch.setattr(trainer, "resolve_device", lambda name="auto": torch.device("cuda"))
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    assert executors.effective_executor(c, 68) == "batched"
    assert executors.effective_executor(dataclasses.replace(c, workers=1), 68) == "process"  # an explicit choice
    assert executors.effective_executor(dataclasses.replace(c, executor="sequential"), 68) == "sequential"
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert executors.effective_executor(c, 68) == "process"  # a pool, one worker per GPU
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    spec = registry.model_spec("ststnet")
    monkeypatch.setitem(registry._MODELS, "ststnet", dataclasses.replace(spec, batchable=False))
    assert executors.effective_executor(c, 68) == "process"
