"""Executors give the same predictions; a crash mid-fold is redone on resume; Ray runs folds."""
import re

import numpy as np
import pytest
import torch

from fixtures_clips import make_clip_manifest
from mer_core.config import ExperimentConfig
from mer_core.store.db import RunStore
from mer_core.training import trainer
from mer_core.training.engine import run_experiment
from mer_core.training.losses import FocalLoss, build_loss


@pytest.fixture
def manifest(tmp_path):
    return make_clip_manifest(tmp_path / "clips", subjects=3, clips_per_subject=4, size=32, frames=5)


def cfg(manifest, **kw):
    base = dict(dataset="manifest", dataset_options={"manifest": str(manifest)}, class_set="native",
                model="baseline", epochs=2, batch_size=8, executor="sequential", workers=1, seed=3)
    base.update(kw)
    return ExperimentConfig.from_dict(base)


def preds(run_id):
    with RunStore() as store:
        p = store.predictions(run_id)
    return p["y_pred"].tolist(), np.stack(p["probs"])


def test_process_pool_matches_sequential(manifest):
    a = preds(run_experiment(cfg(manifest, executor="sequential")))
    b = preds(run_experiment(cfg(manifest, executor="process", workers=2)))
    assert a[0] == b[0]
    assert np.allclose(a[1], b[1], atol=1e-5)


def test_ray_runs_two_folds_on_a_local_instance(tmp_path):
    ray = pytest.importorskip("ray")
    manifest = make_clip_manifest(tmp_path / "two", subjects=2, clips_per_subject=4, size=32, frames=5)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        rid = run_experiment(cfg(manifest, executor="ray", workers=2))
    finally:
        ray.shutdown()
    with RunStore() as store:
        run = store.get_run(rid)
        assert run["status"] == "done" and store.completed_folds(rid) == {0, 1}
        assert len(store.epochs(rid)) == 4  # curves written by the driver
        assert all(p for p in store.folds(rid)["checkpoint"])
    seq = preds(run_experiment(cfg(manifest, executor="sequential")))
    assert preds(rid)[0] == seq[0]


def test_crash_mid_fold_is_redone_on_resume(manifest, monkeypatch):
    real_fit = trainer.fit
    state = {"calls": 0}

    def flaky_fit(model, config, train, **kw):
        state["calls"] += 1
        if state["calls"] == 2:  # second fold dies after its first epoch was stored
            on_epoch = kw["on_epoch"]
            kw["on_epoch"] = lambda row: (on_epoch(row), (_ for _ in ()).throw(RuntimeError("killed mid-fold")))
        return real_fit(model, config, train, **kw)

    monkeypatch.setattr(trainer, "fit", flaky_fit)
    with pytest.raises(Exception, match="killed mid-fold"):
        run_experiment(cfg(manifest), run_id="mid")
    with RunStore() as store:
        assert store.fold_status("mid") == {0: "done", 1: "running"}
        assert len(store.epochs("mid").query("fold_index == 1")) == 1
    monkeypatch.setattr(trainer, "fit", real_fit)
    run_experiment(cfg(manifest), run_id="mid")
    with RunStore() as store:
        ep = store.epochs("mid")
        assert store.completed_folds("mid") == {0, 1, 2}
        assert ep.groupby("fold_index").size().tolist() == [2, 2, 2]  # no leftover epoch rows
    assert preds("mid")[0] == preds(run_experiment(cfg(manifest)))[0]


REMOVED = "executor 'batched' was removed (it was slower than the process pool where it was measured); " \
          "use executor='process'"


def test_a_stored_run_naming_the_removed_batched_executor_loads_and_shows_but_is_not_run_again(manifest, tmp_path,
                                                                                                capsys):
    from mer_core.cli import main
    from mer_core.errors import ConfigError
    from mer_core.jobs import queue

    old = cfg(manifest, executor="batched")  # a config stored before the executor was removed still loads
    with RunStore() as store:
        store.create_run(old, classes=("a", "b"), n_folds=3, n_samples=12, run_id="old")
        stored = ExperimentConfig.from_json(store.get_run("old")["config_json"])
        assert stored.executor == "batched" and store.get_run("old")["config_hash"] == old.stable_hash()
        job = queue.submit(cfg(manifest), store=store, start=False)
        store.conn.execute("UPDATE jobs SET status='failed', config_json=? WHERE id=?", (old.to_json(), job))
        assert queue.get_job(store, job)["config"]["executor"] == "batched"  # the Jobs page shows it
        with pytest.raises(ConfigError, match=re.escape(REMOVED)):
            queue.resume(store, job, start=False)
        assert queue.get_job(store, job)["status"] == "failed"  # left as it was
        with pytest.raises(ConfigError, match=re.escape(REMOVED)):
            queue.submit(old, store=store, start=False)
    assert main(["runs"]) == 0 and "old" in capsys.readouterr().out
    with pytest.raises(ConfigError, match=re.escape(REMOVED)):
        run_experiment(old, run_id="old")
    (tmp_path / "old.json").write_text(old.to_json())
    assert main(["loso", "--config", str(tmp_path / "old.json"), "--resume", "old"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"mer loso: error: {REMOVED} (valid: sequential, process, ray)"  # one line
    with pytest.raises(SystemExit):
        main(["loso", "--executor", "batched"])  # no longer offered
    assert "invalid choice: 'batched'" in capsys.readouterr().err


def test_the_executor_that_runs_is_the_one_asked_for(manifest, monkeypatch):
    """No executor is chosen for the user: one CUDA device and workers=0 once made 'process' run another one."""
    from mer_core.training import executors

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    pools = []
    monkeypatch.setattr(executors, "_run_process_pool", lambda cfg, todo, *a: pools.append((cfg.executor, len(todo))))
    monkeypatch.setattr(executors, "resolve_workers", lambda cfg, n=None: 2)
    run_experiment(cfg(manifest, executor="process", workers=0, device="auto"), run_id="asked")  # 'auto' -> cuda
    assert pools == [("process", 3)]  # the stub pool trained nothing; the pool was what ran
    with RunStore() as store:
        assert not any("executor" in note for note in store.get_run("asked")["notes"])


def test_focal_loss_hand_computation():
    logits = torch.tensor([[2.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    target = torch.tensor([0, 2])
    p = torch.softmax(logits, 1)
    pt = torch.stack([p[0, 0], p[1, 2]])
    expected = (-(1 - pt) ** 2 * torch.log(pt)).mean()
    assert FocalLoss(gamma=2.0)(logits, target).item() == pytest.approx(expected.item(), rel=1e-6)
    ce = torch.nn.functional.cross_entropy(logits, target)
    assert FocalLoss(gamma=0.0)(logits, target).item() == pytest.approx(ce.item(), rel=1e-6)
    w = torch.tensor([1.0, 1.0, 3.0])
    assert build_loss("focal", gamma=0.0, weight=w)(logits, target).item() == pytest.approx(
        torch.nn.functional.cross_entropy(logits, target, weight=w).item(), rel=1e-6)


@pytest.mark.parametrize("name", ["adamw", "adam", "sgd", "adan"])
def test_every_optimizer_is_available(name):
    model = torch.nn.Linear(3, 2)
    opt = trainer.build_optimizer(model.parameters(), ExperimentConfig(optimizer=name))
    model(torch.ones(1, 3)).sum().backward()
    opt.step()
    if name == "adan":
        assert type(opt).__name__ == "Adan"
