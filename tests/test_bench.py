"""mer bench: a tiny smoke run writes a valid report; the report's schema, machine kind and lookup."""
from __future__ import annotations

import copy
import dataclasses
import json

import pytest

from mer_core.cli import main
from mer_core.errors import MerError
from mer_core.benchmarking import bench, bench_report
from mer_core.benchmarking.bench_report import find_results, machine_kind, read_report, spread, validate

TINY = bench.BenchPlan(
    quick=True, models=("ststnet",), fwd_presets=("cpu",), fwd_batch=4, fwd_seconds=0.05, flow_methods=("dis",),
    flow_sizes=(32,), preprocess_clips=2, preprocess_reps=2, loso_models=("ststnet",), executors=("sequential",),
    loso_epochs=2, loso_reps=2, dataset_options={"subjects": 3, "clips_per_subject": 3, "clip_jitter": 0, "size": 48, "frames": 10},
    pretrain_models=(), page_repeats=0)


@pytest.fixture(scope="module")
def tiny_report(tmp_path_factory) -> dict:
    """``mer bench --quick --out FILE`` with the quick plan swapped for tiny sizes (seconds)."""
    out = tmp_path_factory.mktemp("bench") / "report.json"
    mp = pytest.MonkeyPatch()
    mp.setattr(bench, "quick_plan", lambda: TINY)
    try:
        assert main(["bench", "--quick", "--out", str(out)]) == 0
    finally:
        mp.undo()
    return json.loads(out.read_text())


def test_smoke_bench_writes_a_valid_report(tiny_report, isolated_cache):
    # the run used a private cache: nothing of it lands in the user's (this test's) cache root
    assert not (isolated_cache / "runs.sqlite").exists() and not (isolated_cache / "preprocessed").exists()
    report = validate(tiny_report)
    assert report["quick"] is True and report["machine"]["kind"] == machine_kind()
    assert report["machine"]["torch"] and report["machine"]["cores"] >= 1 and report["machine"]["date"]
    (pre,) = report["preprocess"]
    assert (pre["method"], pre["size"], pre["clips"], pre["ok"]) == ("dis", 32, 2, 2)
    for key in ("cold_ms_per_clip", "cached_ms_per_clip"):
        s = pre[key]
        assert s["n"] == 2 and s["min"] <= s["median"] <= s["max"] and s["min"] > 0
    (fwd,) = report["fwd_bwd"]
    assert (fwd["model"], fwd["preset"], fwd["batch"]) == ("ststnet", "cpu", 4) and fwd["samples_per_s"]["n"] >= 1
    (loso,) = report["loso"]
    assert (loso["model"], loso["executor"], loso["epochs"], loso["n_samples"], loso["n_folds"]) == (
        "ststnet", "sequential", 2, 9, 3)
    assert loso["wall_s"]["n"] == 2 and 0 <= loso["uf1"]["median"] <= 1 and 0 <= loso["uar"]["median"] <= 1
    assert loso["cpu_s"]["median"] > 0 and loso["peak_rss_mb"]["median"] > 50  # torch alone is bigger
    assert loso["train_ms_per_sample_epoch"] > 0 and loso["preprocess_cold_ms_per_clip"] > 0
    # the timing model: epoch 2 timed from the epoch events, the start-up the rest of the wall time
    assert loso["parallel"] == 1  # sequential: one fold at a time
    steady, setup, startup = (loso[k] for k in ("steady_ms_per_sample_epoch", "fold_setup_s", "startup_s"))
    assert steady["n"] == setup["n"] == startup["n"] == 2 and steady["min"] > 0 and setup["min"] >= 0
    assert 0 < startup["median"] < loso["wall_s"]["median"]
    n_train = 9 - 9 / 3
    modelled = startup["median"] + 3 * (setup["median"] + 2 * n_train * steady["median"] / 1000)
    assert modelled == pytest.approx(loso["wall_s"]["median"] - 9 * loso["preprocess_cached_ms_per_clip"] / 1000,
                                     rel=0.25)  # medians of two runs each: close to, not exactly, the median wall
    assert report["pretrain"] == [] and "skipped" in report["pages"]


def test_validate_names_what_is_missing(tiny_report):
    broken = copy.deepcopy(tiny_report)
    del broken["loso"][0]["uf1"]
    with pytest.raises(MerError, match="loso row 0 .*uf1"):
        validate(broken)
    partial = copy.deepcopy(tiny_report)
    del partial["loso"][0]["startup_s"]
    with pytest.raises(MerError, match="loso row 0 .*lacks startup_s"):
        validate(partial)
    partial["loso"][0]["startup_s"] = {"median": -1.0, "min": -1.0, "max": -1.0, "n": 1}
    with pytest.raises(MerError, match="startup_s="):
        validate(partial)
    old = copy.deepcopy(tiny_report)  # a report of the mer bench before the timing model: still valid
    for key in bench_report.LOSO_TIMING_KEYS:
        del old["loso"][0][key]
    assert validate(old) is old
    with pytest.raises(MerError, match="missing section 'pages'"):
        validate({k: v for k, v in tiny_report.items() if k != "pages"})
    with pytest.raises(MerError, match="not a mer-bench/1 report"):
        validate({"timings": []})


def test_spread_is_median_min_max():
    assert spread([3.0, 1.0, 10.0]) == {"median": 3.0, "min": 1.0, "max": 10.0, "n": 3}
    assert spread([]) == {"median": None, "min": None, "max": None, "n": 0}


@pytest.mark.parametrize("device, cores, kind", [("cpu", 2, "cpu-2core"), ("cpu", 16, "cpu-16core"),
                                                  ("NVIDIA H200", 16, "cuda-h200"),
                                                  ("Tesla T4", 4, "cuda-tesla-t4")])
def test_machine_kind(device, cores, kind):
    assert machine_kind(device, cores) == kind


def _file(folder, report, name):
    (folder / name).write_text(json.dumps(report))


def test_find_results_prefers_this_machine_and_skips_other_files(tiny_report, tmp_path):
    other = copy.deepcopy(tiny_report)
    other["machine"].update(kind="cpu-64core", cores=64)
    gpu = copy.deepcopy(tiny_report)
    gpu["machine"].update(kind="cuda-h200", device="NVIDIA H200")
    _file(tmp_path, other, "cpu-64core.json")
    _file(tmp_path, gpu, "cuda-h200.json")
    (tmp_path / "batched_cpu.json").write_text(json.dumps({"folds": [1, 2]}))  # another tool's file
    assert set(bench_report.list_results(tmp_path)) == {"cpu-64core.json", "cuda-h200.json"}
    report, label = find_results("cpu-2core", tmp_path)  # no exact file: the same family, labelled
    assert report["machine"]["kind"] == "cpu-64core" and "this machine is cpu-2core" in label
    _file(tmp_path, tiny_report, "mine.json")
    report, label = find_results(tiny_report["machine"]["kind"], tmp_path)
    assert report["machine"] == tiny_report["machine"] and label == "measured (mine.json)"
    assert find_results("cuda-a100", tmp_path / "none") == (None, "no benchmark report for cuda-a100")


def test_written_report_reads_back(tiny_report, tmp_path):
    path = bench.write_report(tiny_report, tmp_path / "sub" / "x.json")
    assert read_report(path) == tiny_report
    assert "| ststnet | cpu | sequential | 2 |" in bench_report.readme_table(tiny_report)


def test_full_plan_compares_executors_on_the_fast_models_only():
    from mer_core.benchmarking.bench import _loso_executors, full_plan

    plan = full_plan()
    assert _loso_executors(plan, "ststnet") == ["sequential", "process"]
    assert _loso_executors(plan, "mfdan") == ["process"]  # the default executor, which the estimate uses
    asked = dataclasses.replace(plan, executors=("sequential",))
    assert _loso_executors(asked, "mfdan") == ["sequential"]  # --executors applies to every model


def test_loso_presets_are_cpu_here_and_cpu_plus_paper_on_a_cuda_device():
    from mer_core.benchmarking.bench import _loso_presets, full_plan

    plan = full_plan()
    assert _loso_presets(plan, "mfdan", "cpu") == ["cpu"]
    assert _loso_presets(plan, "mfdan", "NVIDIA H200") == ["cpu", "paper"]
    asked = dataclasses.replace(plan, loso_presets=("paper", "cpu_flow_apex"))
    assert _loso_presets(asked, "dense_attention", "cpu") == ["paper", "cpu_flow_apex"]
    assert _loso_presets(asked, "ststnet", "cpu") == ["paper"]  # a preset the model lacks is skipped


def test_on_a_cuda_device_the_loso_section_measures_the_paper_preset_too(isolated_cache, monkeypatch):
    """The device is only named CUDA here (the runs still train on this CPU): one row per preset, each
    preset's own preprocessing and the estimate's key (model, preset)."""
    monkeypatch.setattr(bench_report, "device_name", lambda: "NVIDIA H200")
    plan = dataclasses.replace(TINY, loso_reps=1, loso_epochs=1)
    lines: list[str] = []
    with bench.private_cache():
        rows = bench.bench_loso(plan, lines.append)
    assert [(r["model"], r["preset"], r["executor"]) for r in rows] == [("ststnet", "cpu", "sequential"),
                                                                        ("ststnet", "paper", "sequential")]
    assert all(r["wall_s"]["median"] > 0 and 0 <= r["uf1"]["median"] <= 1 for r in rows)
    assert any("ststnet" in line and " paper " in line for line in lines)


def test_tree_monitor_measures_another_root_and_its_children_not_this_process():
    """The bench measures each LOSO in a spawned child (a job's cold start) and waits: the figures must be the
    child tree's CPU, not the waiting bench process's."""
    import subprocess
    import sys

    from mer_core.benchmarking.proctree import TreeMonitor

    burn = "import time\nt = time.process_time()\nwhile time.process_time() - t < 0.6: pass\ntime.sleep(0.3)"
    code = f"import subprocess, sys\nsubprocess.run([sys.executable, '-c', {burn!r}])\nexec({burn!r})"
    child = subprocess.Popen([sys.executable, "-c", code])
    try:
        with TreeMonitor(interval=0.05, root=child.pid) as mon:
            child.wait(timeout=60)
    finally:
        child.kill()
    # the child's own 0.6 s and its grandchild's 0.6 s; the grandchild is read at its last sighting
    assert 0.9 <= mon.cpu_s <= 3.0, mon.cpu_s
    assert mon.peak_rss_mb > 1


def test_update_re_measures_only_the_named_models_and_keeps_every_other_row(tiny_report, tmp_path, monkeypatch):
    old = copy.deepcopy(tiny_report)
    other = copy.deepcopy(old["loso"][0])
    other.update(model="baseline", wall_s={"median": 123.0, "min": 120.0, "max": 126.0, "n": 2})
    old["loso"].append(other)
    old["fwd_bwd"].append({**old["fwd_bwd"][0], "model": "baseline"})
    old["loso"][0]["wall_s"] = {"median": 9999.0, "min": 9999.0, "max": 9999.0, "n": 2}  # the stale row
    path = tmp_path / "report.json"
    path.write_text(json.dumps(old))
    monkeypatch.setattr(bench, "quick_plan", lambda: TINY)
    assert main(["bench", "--quick", "--models", "ststnet", "--update", "--out", str(path)]) == 0
    new = read_report(path)
    assert new["preprocess"] == old["preprocess"] and new["pages"] == old["pages"]  # not re-measured
    (kept,) = [r for r in new["loso"] if r["model"] == "baseline"]
    assert kept == other
    (fresh,) = [r for r in new["loso"] if r["model"] == "ststnet"]
    assert fresh["wall_s"]["median"] < 9999.0 and fresh["n_samples"] == 9
    assert sorted(r["model"] for r in new["fwd_bwd"]) == ["baseline", "ststnet"]
    (update,) = new["updates"]
    assert update["models"] == ["ststnet"] and update["date"] and update["seconds"] > 0
    assert new["machine"] == old["machine"]  # the report's machine is the one its other rows were measured on


def test_update_refuses_another_machine_and_a_missing_model_list(tiny_report, tmp_path, monkeypatch, capsys):
    elsewhere = copy.deepcopy(tiny_report)
    elsewhere["machine"]["cores"] = 96
    path = tmp_path / "report.json"
    path.write_text(json.dumps(elsewhere))
    before = path.read_text()
    monkeypatch.setattr(bench, "run_bench", lambda *a, **k: pytest.fail("measured before checking the report"))
    assert main(["bench", "--quick", "--models", "ststnet", "--update", "--out", str(path)]) == 2
    assert "cores=96" in capsys.readouterr().err and path.read_text() == before
    path.write_text(json.dumps(tiny_report))
    assert main(["bench", "--quick", "--update", "--out", str(path)]) == 2
    assert "--models" in capsys.readouterr().err
    assert main(["bench", "--quick", "--models", "ststnet", "--update", "--out", str(tmp_path / "none.json")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_readme_table_names_the_re_measured_rows(tiny_report):
    merged = bench.merge_report(tiny_report, copy.deepcopy(tiny_report), ("ststnet",))
    merged["updates"][0].update(date="2026-12-01T18:00:00", commit="abc123")
    text = bench_report.readme_table(merged)
    assert "the rows of ststnet re-measured on 2026-12-01, commit abc123 (`mer bench --models ststnet --update`)" in text
    assert "re-measured" not in bench_report.readme_table(tiny_report)
