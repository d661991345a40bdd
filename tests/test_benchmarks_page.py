"""The Benchmarks page renders the mer bench results file (AppTest)."""
from __future__ import annotations

import json

from apptest_helpers import assert_no_markup, page_app
from test_estimate import R, report


def test_benchmarks_page_shows_the_results_of_this_machine(tmp_path, monkeypatch):
    crafted = dict(R, machine={**R["machine"], "cpu": "[x](http://evil) <b>cpu</b>"})
    (tmp_path / "mine.json").write_text(json.dumps(crafted))
    (tmp_path / "cuda-h200.json").write_text(json.dumps(report(kind="cuda-h200")))
    (tmp_path / "batched_cpu.json").write_text("{}")  # not a report: not listed
    monkeypatch.setenv("MER_BENCH_RESULTS", str(tmp_path))
    at = page_app("benchmarks")
    assert not at.exception, at.exception
    assert at.selectbox[0].options == ["cuda-h200.json", "mine.json"] and at.selectbox[0].value == "mine.json"
    loso = at.dataframe[0].value
    assert list(loso["model"]) == ["baseline", "baseline"] and "train ms / sample-epoch" in loso.columns
    machine = at.caption[0].value
    assert "mine.json" in machine and "cpu-" in machine
    assert_no_markup(machine.split(": ", 1)[1].replace("/", ""))


def test_benchmarks_page_without_results_says_how_to_make_them(tmp_path, monkeypatch):
    monkeypatch.setenv("MER_BENCH_RESULTS", str(tmp_path / "none"))
    at = page_app("benchmarks")
    assert not at.exception and "mer bench --quick" in at.info[0].value


def test_benchmarks_page_says_which_rows_an_update_re_measured(tmp_path, monkeypatch):
    updated = dict(R, updates=[{"models": ["mfdan"], "date": "2026-12-02T10:00:00", "commit": "abc123",
                                "load_avg": None, "seconds": 700.0}])
    (tmp_path / "mine.json").write_text(json.dumps(updated))
    monkeypatch.setenv("MER_BENCH_RESULTS", str(tmp_path))
    at = page_app("benchmarks")
    assert not at.exception, at.exception
    captions = [c.value for c in at.caption]
    assert any("The rows of mfdan re-measured on 2026-12-02, commit abc123" in c for c in captions), captions


def test_benchmarks_page_shows_no_raw_keys_blank_columns_or_doubled_parentheses(monkeypatch):
    """On the shipped results of this project's 2-core machine: every column named in words, none empty."""
    monkeypatch.delenv("MER_BENCH_RESULTS", raising=False)  # the package's own results
    at = page_app("benchmarks")
    assert not at.exception, at.exception
    at.selectbox[0].set_value("cpu-2core.json").run()
    for frame in (d.value for d in at.dataframe):
        assert not [c for c in frame.columns if "_" in str(c)], frame.columns  # n_samples, cold_s...
        for c in frame.columns:
            assert not frame[c].map(lambda v: v is None or v == "–" or v != v).all(), f"blank column {c!r}"
    captions = " ".join(c.value for c in at.caption)
    assert "))" not in captions.replace("\\", "")


def test_a_column_without_values_is_left_out_and_said_so(tmp_path, monkeypatch):
    """A results file whose rows never measured the training cost: no blank column, a line naming it instead."""
    no_train = dict(R, loso=[{**row, "train_ms_per_sample_epoch": None} for row in R["loso"]])
    (tmp_path / "mine.json").write_text(json.dumps(no_train))
    monkeypatch.setenv("MER_BENCH_RESULTS", str(tmp_path))
    at = page_app("benchmarks")
    assert not at.exception, at.exception
    assert "train ms / sample-epoch" not in at.dataframe[0].value.columns
    captions = [c.value for c in at.caption]
    assert "Left out: train ms / sample-epoch; no row of this file has a value for it." in captions, captions


def test_rows_of_a_removed_executor_are_said_to_be_history(tmp_path, monkeypatch):
    old = dict(R, loso=[*R["loso"], {**R["loso"][0], "executor": "batched"}])
    (tmp_path / "mine.json").write_text(json.dumps(old))
    monkeypatch.setenv("MER_BENCH_RESULTS", str(tmp_path))
    at = page_app("benchmarks")
    assert not at.exception, at.exception
    assert "batched" in list(at.dataframe[0].value["executor"])
    captions = [c.value for c in at.caption]
    assert any("batched (since removed; use process)" in c and "cannot be chosen" in c for c in captions), captions
    (tmp_path / "mine.json").write_text(json.dumps(R))  # every row from an executor that exists: no such line
    at = page_app("benchmarks")
    assert not any("since removed" in c.value for c in at.caption)
