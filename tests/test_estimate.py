"""The job estimate reads the mer bench results file: hand-computed figures, the labelled fallback."""
from __future__ import annotations

import json

import pytest

from mer_core.config import ExperimentConfig
from mer_core.jobs import plan as plan_mod
from mer_core.benchmarking.bench_report import SCHEMA, machine_kind
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


# --- the timing model: start-up + folds / parallel x (fold set-up + epochs x clips x steady ms) -----------
def _timed_loso(model, ms_old, startup, setup, steady, parallel, executor="process"):
    return {**_loso(model, ms_old, executor=executor), "startup_s": _spread(startup), "fold_setup_s": _spread(setup),
            "steady_ms_per_sample_epoch": _spread(steady), "parallel": parallel}


T = report(loso=[_timed_loso("baseline", 9.0, startup=5.0, setup=0.2, steady=0.1, parallel=2),
                 _timed_loso("baseline", 9.0, startup=1.0, setup=0.05, steady=0.3, parallel=1, executor="sequential")],
           fwd_bwd=[_fwd("baseline", 0.05), _fwd("mfdan", 2.0)])


def test_the_estimate_uses_start_up_per_fold_set_up_and_steady_cost():
    seconds, source = plan_mod.estimate_seconds("baseline", "cpu", n_samples=18, n_folds=3, epochs=10,
                                                executor="process", results=T)
    # 5 s once + 3 folds over 2 workers x (0.2 s + 10 epochs x 12 clips x 0.1 ms); never train_ms_per_sample_epoch (9.0)
    assert seconds == pytest.approx(5.0 + 3 / 2 * (0.2 + 10 * 12 * 0.1 / 1000))
    assert "LOSO process" in source and "start-up 5.0 s" in source
    one = plan_mod.estimate_seconds("baseline", "cpu", n_samples=18, n_folds=3, epochs=11, executor="process",
                                    results=T)[0]
    assert one - seconds == pytest.approx(3 / 2 * 12 * 0.1 / 1000)  # one more epoch: per-fold steady cost only
    fewer = plan_mod.estimate_seconds("baseline", "cpu", n_samples=12, n_folds=2, epochs=10, executor="process",
                                      results=T)[0]
    assert fewer == pytest.approx(5.0 + 2 / 2 * (0.2 + 10 * 6 * 0.1 / 1000))  # the start-up is paid once
    # a pool of one worker runs in-process: the sequential row's figures
    seq = plan_mod.estimate_seconds("baseline", "cpu", n_samples=18, n_folds=3, epochs=10, executor="process",
                                    workers=1, results=T)[0]
    assert seq == pytest.approx(1.0 + 3 * (0.05 + 10 * 12 * 0.3 / 1000))
    cfg = ExperimentConfig(model="baseline", epochs=10, executor="process",
                           preprocess={"flow_method": "dis", "input_size": 32})
    parts = plan_mod.estimate_parts(cfg, n_samples=18, n_folds=3, results=T)
    assert parts["train_s"] == pytest.approx(seconds)
    assert parts["total_s"] == pytest.approx(parts["train_s"] + parts["preprocess_s"] + parts["pretrain_s"]
                                             + parts["final_s"])
    holdout = plan_mod.estimate_parts(cfg, n_samples=18, n_folds=1, train_samples=14, results=T)
    assert holdout["train_s"] == pytest.approx(1.0 + 0.05 + 10 * 14 * 0.3 / 1000)  # one split: in-process


def test_a_model_without_a_loso_row_gets_the_steady_overhead_and_the_executors_start_up():
    seconds, source = plan_mod.estimate_seconds("mfdan", "cpu", n_samples=18, n_folds=3, epochs=10,
                                                executor="process", results=T)
    ms = 2.0 * (0.1 / 0.05)  # mfdan's forward+backward x the process row's steady / forward+backward ratio
    assert seconds == pytest.approx(5.0 + 3 / 2 * (0.2 + 10 * 12 * ms / 1000))
    assert "forward+backward x 2.00" in source


def test_an_old_report_keeps_the_old_formula():
    assert plan_mod.bench_timing("baseline", "cpu", "process", R)[0] is None
    seconds, _ = plan_mod.estimate_seconds("baseline", "cpu", n_samples=18, n_folds=3, epochs=10,
                                           executor="process", workers=0, results=R)
    assert seconds == pytest.approx(3 * 10 * 12 * 2.0 / 1000)
    from mer_core.benchmarking.bench_report import validate

    assert validate(R) is R and validate(T) is T
    broken = json.loads(json.dumps(T))
    del broken["loso"][0]["parallel"]
    with pytest.raises(Exception, match="lacks parallel"):
        validate(broken)


def _pool_events(n_folds, workers, n_train, epochs, lead, setup, warm, steady_ms):
    """Time-stamped fold_start / epoch events of a pool: each worker runs its folds back to back."""
    events, lane = [], [lead] * workers
    for f in range(n_folds):
        w = f % workers
        t = lane[w]
        events.append(("fold_start", f, 0, t))
        t += setup
        for e in range(1, epochs + 1):
            t += n_train * steady_ms / 1000 + (warm if e == 1 else 0.0)
            events.append(("epoch", f, e, t))
        lane[w] = t
    return sorted(events, key=lambda ev: ev[3]), max(lane)


def test_a_30_epoch_estimate_from_a_3_epoch_bench_is_not_inflated_by_start_up():
    from mer_core.benchmarking import bench

    n, k, workers, n_train = 160, 16, 2, 150
    lead, tail, setup, warm, steady = 4.0, 1.0, 0.2, 0.1, 0.1  # start-up 5 s = 4 s before the folds + 1 s after

    def truth(epochs):
        return lead + tail + k / workers * (setup + warm + epochs * n_train * steady / 1000)

    cfg = ExperimentConfig(model="ststnet", epochs=3, executor="process",
                           preprocess={"flow_method": "dis", "input_size": 28})
    runs = []
    for _ in range(2):
        events, last = _pool_events(k, workers, n_train, 3, lead, setup, warm, steady)
        timing = bench.fold_timing(events, {f: n_train for f in range(k)})
        assert timing["overlap"] == workers
        timing["parallel"] = timing.pop("overlap")
        assert last + tail == pytest.approx(truth(3))
        runs.append({"wall": last + tail, "cpu": 1.0, "rss": 100.0, "uf1": 0.5, "uar": 0.5, "n_samples": n,
                     "n_folds": k, "timing": timing})
    row = bench.loso_row(cfg, runs, {"cold_s_per_clip": 0.0, "cached_s_per_clip": 0.0})
    assert row["steady_ms_per_sample_epoch"]["median"] == pytest.approx(steady)
    assert row["fold_setup_s"]["median"] == pytest.approx(setup + warm)
    assert row["startup_s"]["median"] == pytest.approx(lead + tail, abs=1e-3) and row["parallel"] == workers
    rep = report(loso=[row], fwd_bwd=[_fwd("ststnet", 0.05)])
    for epochs in (3, 30):
        seconds, _ = plan_mod.estimate_seconds("ststnet", "cpu", n_samples=n, n_folds=k, epochs=epochs,
                                               executor="process", results=rep)
        assert seconds == pytest.approx(truth(epochs), rel=1e-3)
    # the old formula, linear in epochs from the same row, would be ~6x the truth at 30 epochs
    old = k * 30 * n_train * row["train_ms_per_sample_epoch"] / 1000
    assert old > 5 * truth(30)


def test_the_final_model_is_one_in_process_fit_at_the_sequential_steady_cost():
    cfg = ExperimentConfig(model="baseline", epochs=10, executor="process", final_model=True,
                           preprocess={"flow_method": "dis", "input_size": 32})
    parts = plan_mod.estimate_parts(cfg, n_samples=18, n_folds=3, results=T)
    # one fold's set-up + 10 epochs x all 18 clips x 0.3 ms (the sequential row): no pool start-up, no 9.0 ms
    assert parts["final_s"] == pytest.approx(0.05 + 10 * 18 * 0.3 / 1000)
    assert "LOSO sequential" in parts["sources"]["final"]


# --- folds that train several models: nested epoch choice and seeds per fold ------------------------------
def test_nested_inner_fits_and_seeds_per_fold_are_counted():
    cfg = ExperimentConfig(model="baseline", epochs=10, executor="process",
                           preprocess={"flow_method": "dis", "input_size": 32})
    one = plan_mod.estimate_parts(cfg, n_samples=18, n_folds=3, results=T)["train_s"]
    per_fit = 10 * 12 * 0.1 / 1000  # epochs x training clips x steady ms: one fit of a fold
    assert one == pytest.approx(5.0 + 3 / 2 * (0.2 + per_fit))
    # 2 seeds + 3 inner folds, each on 2/3 of the fold's training clips: 2 + 3 x 2/3 = 4 fits' worth per fold
    both = plan_mod.estimate_parts(cfg.replace(selection="nested", nested_folds=3, seeds_per_fold=2),
                                   n_samples=18, n_folds=3, results=T)
    assert both["train_s"] == pytest.approx(5.0 + 3 / 2 * (0.2 + 4 * per_fit))
    assert "3 inner fits" in both["sources"]["train"] and "2 models (seeds averaged)" in both["sources"]["train"]
    seeds = plan_mod.estimate_parts(cfg.replace(seeds_per_fold=3), n_samples=18, n_folds=3, results=T)
    assert seeds["train_s"] == pytest.approx(5.0 + 3 / 2 * (0.2 + 3 * per_fit))
    # leave one training subject out: as many inner fits as training subjects (here 5, each on 4/5 of the clips)
    loo = plan_mod.estimate_parts(cfg.replace(selection="nested", nested_folds=0), n_samples=18, n_folds=3,
                                  train_subjects=5, results=T)
    assert loo["train_s"] == pytest.approx(5.0 + 3 / 2 * (0.2 + (1 + 5 * 4 / 5) * per_fit))
    old = plan_mod.estimate_parts(cfg.replace(seeds_per_fold=2), n_samples=18, n_folds=3, results=R)
    assert old["train_s"] == pytest.approx(2 * 3 * 10 * 12 * 2.0 / 1000)  # an older report: the same factor
    final = plan_mod.estimate_parts(cfg.replace(seeds_per_fold=2, final_model=True), n_samples=18, n_folds=3,
                                    results=T)
    assert final["final_s"] == pytest.approx(0.05 + 10 * 18 * 0.3 / 1000)  # the final model is one model


def test_plan_counts_the_inner_folds_of_its_own_folds_and_refuses_too_few(tmp_path, monkeypatch):
    manifest = make_clip_manifest(tmp_path / "clips", subjects=3, clips_per_subject=6, size=32, frames=5)
    folder = tmp_path / "results"
    folder.mkdir()
    (folder / f"{machine_kind()}.json").write_text(json.dumps(T))
    monkeypatch.setenv("MER_BENCH_RESULTS", str(folder))
    cfg = ExperimentConfig(dataset="manifest", dataset_options={"manifest": str(manifest)}, class_set="native",
                           model="baseline", epochs=10, executor="process", selection="nested", nested_folds=0)
    p = plan_mod.plan(cfg)  # LOSO over 3 subjects: 2 training subjects per fold, so 2 inner fits of 1 subject
    assert p["train_subjects"] == 2
    assert p["estimate"]["train_s"] == pytest.approx(5.0 + 3 / 2 * (0.2 + (1 + 2 * 1 / 2) * 10 * 12 * 0.1 / 1000))
    from mer_core.errors import ProtocolError

    with pytest.raises(ProtocolError, match="needs at least 3 training subjects per fold"):
        plan_mod.plan(cfg.replace(nested_folds=3))  # refused before queueing, as the run would refuse it
