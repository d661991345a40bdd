"""The job estimate reads the mer bench results file: hand-computed figures, the labelled fallback."""
from __future__ import annotations

import json

import pytest

from mer_core.config import ExperimentConfig
from mer_core.jobs import plan as plan_mod
from mer_core.jobs.bench_report import SCHEMA, machine_kind
from fixtures_clips import make_clip_manifest


def _spread(v):
    return {"median": v, "min": v, "max": v, "n": 1}


def _loso(model, ms, executor="process", size=32, cold=40.0, cached=1.0):
    return {"model": model, "preset": "cpu", "executor": executor, "epochs": 3, "n_samples": 167, "n_folds": 16,
            "wall_s": _spread(1.0), "cpu_s": _spread(1.0), "peak_rss_mb": _spread(100.0), "uf1": _spread(0.5),
            "uar": _spread(0.5), "train_ms_per_sample_epoch": ms, "flow_method": "dis", "input_size": size,
            "preprocess_cold_ms_per_clip": cold, "preprocess_cached_ms_per_clip": cached}


def _fwd(model, ms):
    return {"model": model, "preset": "cpu", "ms_per_sample": _spread(ms), "samples_per_s": _spread(1000 / ms)}


def report(kind=None, **sections):
    base = {"schema": SCHEMA, "quick": True, "machine": {
        "kind": kind or machine_kind(), "cpu": "test", "cores": 2, "torch": "x", "device": "cpu", "date": "2026",
        "commit": "abc", "python": "3"}, "preprocess": [], "fwd_bwd": [], "loso": [], "pretrain": [], "pages": {}}
    base.update(sections)
    return base


R = report(loso=[_loso("baseline", 2.0), _loso("baseline", 3.0, executor="sequential")],
           fwd_bwd=[_fwd("baseline", 0.5), _fwd("mfdan", 5.0)],
           preprocess=[{"method": "tvl1", "size": 128, "cold_ms_per_clip": _spread(300.0),
                        "cached_ms_per_clip": _spread(2.0)}],
           pretrain=[{"model": "dense_attention", "preset": "cpu", "n_samples": 100, "epochs": 1,
                      "preprocess_ms_per_clip": 50.0, "ms_per_sample_epoch": 4.0}])


def test_training_estimate_is_the_measured_cost_times_the_work():
    # 3 folds x 10 epochs x (18 - 18/3) training clips x 2.0 ms (the process-executor row)
    seconds, source = plan_mod.estimate_seconds("baseline", "cpu", n_samples=18, n_folds=3, epochs=10,
                                                executor="process", results=R)
    assert seconds == pytest.approx(3 * 10 * 12 * 2.0 / 1000) and "LOSO process" in source
    seconds, _ = plan_mod.estimate_seconds("baseline", "cpu", n_samples=18, n_folds=3, epochs=10,
                                           executor="sequential", results=R)
    assert seconds == pytest.approx(3 * 10 * 12 * 3.0 / 1000)


def test_a_model_without_a_loso_row_scales_its_forward_backward_figure():
    ms, source = plan_mod.bench_ms_per_sample("mfdan", "cpu", results=R)
    assert ms == pytest.approx(5.0 * (2.0 / 0.5 + 3.0 / 0.5) / 2)  # x the median LOSO / fwd-bwd ratio of baseline
    assert "forward+backward x" in source


def test_preprocessing_and_pretraining_are_counted():
    cfg = ExperimentConfig(model="baseline", epochs=10, executor="process",
                           preprocess={"flow_method": "dis", "input_size": 32})
    parts = plan_mod.estimate_parts(cfg, n_samples=18, n_folds=3, n_cached=6, results=R)
    assert parts["preprocess_s"] == pytest.approx((12 * 40.0 + 6 * 1.0) / 1000)  # 12 cold clips, 6 cached
    assert parts["pretrain_s"] == 0.0
    assert parts["total_s"] == pytest.approx(3 * 10 * 12 * 2.0 / 1000 + 0.486)
    tv = ExperimentConfig(model="baseline", preprocess={"flow_method": "tvl1", "input_size": 112})
    cold, cached, source = plan_mod.preprocess_ms_per_clip(tv, R)  # no model row at tvl1: the flow table
    assert (cold, cached) == (300.0, 2.0) and "tvl1 flow at 128 px" in source
    da = ExperimentConfig(model="dense_attention", pretrain="synthetic-macro", pretrain_epochs=5)
    seconds, source = plan_mod.pretrain_seconds(da, R)
    assert seconds == pytest.approx((100 * 50.0 + 100 * 5 * 4.0) / 1000) and "100 macro clips" in source


def test_plan_reads_the_results_file_of_this_machine(tmp_path, monkeypatch):
    manifest = make_clip_manifest(tmp_path / "clips", subjects=3, clips_per_subject=6, size=32, frames=5)
    folder = tmp_path / "results"
    folder.mkdir()
    (folder / f"{machine_kind()}.json").write_text(json.dumps(R))
    monkeypatch.setenv("MER_BENCH_RESULTS", str(folder))
    cfg = ExperimentConfig(dataset="manifest", dataset_options={"manifest": str(manifest)}, class_set="native",
                           model="baseline", epochs=10, executor="process")
    p = plan_mod.plan(cfg)
    assert p["estimate"]["n_cached"] == 0 and p["estimate"]["n_uncached"] == 18  # fresh cache: all cold
    assert p["estimated_seconds"] == pytest.approx(3 * 10 * 12 * 2.0 / 1000 + 18 * 40.0 / 1000)
    assert p["estimate_source"].startswith("measured")


def test_without_any_matching_file_the_fallback_is_labelled(tmp_path, monkeypatch):
    monkeypatch.setenv("MER_BENCH_RESULTS", str(tmp_path))
    (tmp_path / "cuda-h200.json").write_text(json.dumps(report(kind="cuda-h200")))  # another family
    ms, source = plan_mod.bench_ms_per_sample("baseline", "cpu")
    if machine_kind().startswith("cpu"):
        assert ms == plan_mod.ROUGH_MS_PER_SAMPLE["baseline"] and source.startswith(plan_mod.ROUGH_LABEL)


def test_the_final_model_adds_one_fit_of_every_clip():
    cfg = ExperimentConfig(model="baseline", epochs=10, executor="process",
                           preprocess={"flow_method": "dis", "input_size": 32})
    without = plan_mod.estimate_parts(cfg, n_samples=18, n_folds=3, results=R)
    final = plan_mod.estimate_parts(cfg.replace(final_model=True), n_samples=18, n_folds=3, results=R)
    ms, source = plan_mod.bench_ms_per_sample("baseline", "cpu", "process", R)  # 2.0, the process row
    assert without["final_s"] == 0.0 and without["sources"]["final"] == "no final model"
    assert final["final_s"] == pytest.approx(10 * 18 * ms / 1000)  # epochs x all clips, not N - N/folds
    assert final["total_s"] - without["total_s"] == pytest.approx(10 * 18 * ms / 1000)
    assert final["train_s"] == without["train_s"] and final["sources"]["final"] == source
    single = plan_mod.estimate_parts(cfg.replace(final_model=True), n_samples=18, n_folds=1, train_samples=12,
                                     results=R)  # holdout: the folds train on 12, the final model on all 18
    assert single["final_s"] == pytest.approx(10 * 18 * ms / 1000)
    assert single["total_s"] == pytest.approx(single["train_s"] + single["preprocess_s"] + single["final_s"])
