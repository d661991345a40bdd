"""Results pages (Run, Compare, Leaderboard) rendered with AppTest from stored fixture runs.

``store_fixture_run`` (also used by tests/test_export.py and benchmarks/bench_pages.py)
writes a finished fake run straight through RunStore: folds, epochs, predictions
with probabilities and oracle predictions, and a summary computed by the metrics
core, so pages see exactly what a real run leaves. ``composite=True`` reproduces
the MEGC2019 composite shape: 442 clips of 68 subjects in three parts (SMIC
16/164, CASME II 24/145, SAMM 28/133).
"""
from __future__ import annotations

import json

from typing import Any

import numpy as np
import pandas as pd
import pytest

from mer_core.config import ExperimentConfig
from mer_core.evaluation.metrics import scores, summarize
from mer_core.store.db import RunStore

CLASSES = ["negative", "positive", "surprise"]
COMPOSITE_PARTS = (("smic", 16, 164), ("casme2", 24, 145), ("samm", 28, 133))


def _layout(composite: bool, subjects: int, per_subject: int, dataset: str) -> list[tuple[str, str]]:
    """(subject, part) for every sample."""
    rows: list[tuple[str, str]] = []
    if composite:
        for part, n_subj, n_clips in COMPOSITE_PARTS:
            for i in range(n_clips):
                rows.append((f"{part}:s{i % n_subj:02d}", part))
    else:
        for i in range(subjects * per_subject):
            rows.append((f"{dataset}:s{i % subjects:02d}", dataset))
    return rows


def store_fixture_run(run_id: str, *, dataset: str = "synthetic", protocol: str = "loso", composite: bool = False,
                      subjects: int = 6, per_subject: int = 6, accuracy: float = 0.7, seed: int = 0,
                      epochs: int = 4, model: str = "baseline", fingerprint: str = "fp-fixture",
                      truth_seed: int = 123, config: dict[str, Any] | None = None, store: RunStore | None = None) -> str:
    """Store a finished fake run; same ``truth_seed`` + layout = same samples and labels."""
    if composite:
        dataset, protocol = "megc2019", "composite"
    layout = _layout(composite, subjects, per_subject, dataset)
    n = len(layout)
    truth = np.random.default_rng(truth_seed)
    rng = np.random.default_rng(seed)
    y_true = truth.integers(0, 3, n)
    wrong = (y_true + rng.integers(1, 3, n)) % 3
    y_pred = np.where(rng.random(n) < accuracy, y_true, wrong)
    oracle = np.where(rng.random(n) < 0.5, y_true, y_pred)
    probs = []
    for p in y_pred:
        v = rng.random(3) * 0.3
        v[p] += 1.0
        probs.append((v / v.sum()).round(4).tolist())
    subjects_all = sorted({s for s, _ in layout})
    fold_of = {s: k for k, s in enumerate(subjects_all)}
    pred = pd.DataFrame({
        "sample_id": [f"{s.replace(':', '/')}/clip{i:03d}" for i, (s, _) in enumerate(layout)],
        "subject": [s for s, _ in layout], "part": [p for _, p in layout],
        "clip": [f"clip{i:03d}" for i in range(n)], "y_true": y_true, "y_pred": y_pred,
        "probs": probs, "oracle_pred": oracle,
    })
    pred["fold"] = pred["subject"].map(fold_of)
    cfg = ExperimentConfig(dataset=dataset, protocol=protocol, model=model, epochs=epochs, seed=seed,
                           **(config or {}))
    own = store is None
    store = store or RunStore()
    try:
        rid = store.create_run(cfg, classes=CLASSES, n_folds=len(subjects_all), n_samples=n,
                               dataset_fingerprint=fingerprint, device="cpu", run_id=run_id,
                               notes=["fixture run stored by tests/test_results_pages.py"])
        for s, k in fold_of.items():
            part = pred[pred["fold"] == k]
            store.start_fold(rid, k, s, [s], n - len(part), 0, len(part))
            for e in range(1, epochs + 1):
                store.add_epoch(rid, k, e, train_loss=1.1 / e + 0.05 * rng.random(), train_acc=min(1.0, 0.4 + 0.1 * e),
                                test_acc=accuracy + 0.05 * rng.standard_normal(), test_uf1=accuracy - 0.1, lr=1e-3 / e)
            store.finish_fold(rid, k, part.drop(columns=["fold"]), epochs_run=epochs, selected_epoch=epochs,
                              oracle_epoch=max(1, epochs - 1), wall_time=1.5)
        stored = store.predictions(rid)
        summary = summarize(stored, CLASSES)
        o = scores(stored["y_true"], stored["oracle_pred"].astype(int), CLASSES)
        summary["oracle"] = {"uf1": o.uf1, "uar": o.uar, "accuracy": o.accuracy,
                             "note": "diagnostic: each fold's best epoch chosen on its own test subject"}
        store.finish_run(rid, status="done", summary=summary, wall_time=12.5)
    finally:
        if own:
            store.close()
    return rid


# --- tests ------------------------------------------------------------------------------

from apptest_helpers import assert_no_markup, page_app, unescape  # noqa: E402


def rerun(element, module: str):
    """Rerun the page after a widget change (``module`` kept for readability at call sites)."""
    return element.run()


def _texts(at) -> str:
    parts = [m.value for m in at.markdown] + [c.value for c in at.caption] + [e.value for e in at.error]
    parts += [i.value for i in at.info] + [w.value for w in at.warning] + [s.value for s in at.success]
    parts += [h.value for h in at.subheader]
    return "\n".join(map(str, parts))


@pytest.fixture
def two_runs() -> tuple[str, str]:
    a = store_fixture_run("run-good", subjects=8, per_subject=8, accuracy=0.9, seed=1)
    b = store_fixture_run("run-poor", subjects=8, per_subject=8, accuracy=0.4, seed=2,
                          config={"lr": 3e-4, "batch_size": 16})
    return a, b


def test_run_page_headline_intervals_oracle_and_tabs(two_runs):
    at = page_app("run", run="run-good")
    assert not at.exception, at.exception
    run = RunStore().get_run("run-good")
    values = {m.label: m.value for m in at.metric}
    assert float(values["UF1 (pooled)"]) == pytest.approx(run["uf1"], abs=1e-3)
    assert float(values["UF1, oracle (diagnostic)"]) == pytest.approx(run["oracle_uf1"], abs=1e-3)
    text = _texts(at)
    assert "95% CI" in text and "Fold-averaged variant" in text and "own test subject" in text
    ci = [c.value for c in at.caption if c.value.startswith("95% CI")][0]
    low, high = map(float, ci.replace("95% CI", "").split("–"))
    assert low <= run["uf1"] <= high
    assert len(at.tabs) == 5
    assert "single part" in text  # a one-dataset run has no per-part table
    # predictions table with explain links, one row per clip
    tables = [d.value for d in at.dataframe]
    preds = [t for t in tables if "explain" in t.columns and len(t) == 64]
    assert preds and set(preds[0]["explain"]) == {"open →"}  # a click opens the clip (tests/test_page_links.py)
    assert any(t.columns.tolist()[:2] == ["field", "value"] for t in tables)  # provenance
    # per-subject UF1 bars, each with chance beside it: the uniform guess's expected UF1 on that subject's clips
    bars = [json.loads(c.proto.spec)["data"] for c in at.get("plotly_chart")]
    bars = [d for d in bars if any(t.get("name", "").startswith("chance") for t in d)][0]
    pred = RunStore().predictions("run-good")
    counts = pred[pred["subject"] == bars[0]["x"][0]]["y_true"].value_counts().reindex(range(3), fill_value=0)
    p = counts.to_numpy() / counts.sum()
    expected = sum(2 * pi / 3 / (pi + 1 / 3) for pi in p if pi > 0) / 3
    assert bars[1]["y"][0] == pytest.approx(expected)


def test_run_page_lists_the_clips_of_a_confusion_cell(two_runs):
    at = page_app("run", run="run-poor")
    picker = [s for s in at.selectbox if s.label.startswith("list the clips")][0]
    option = [o for o in picker.options if o.startswith("negative → positive")][0]
    rerun(picker.set_value(option), "run")
    assert not at.exception
    n = int(option.rsplit("(", 1)[1].rstrip(")"))
    pred = RunStore().predictions("run-poor")
    assert n == int(((pred.y_true == 0) & (pred.y_pred == 1)).sum())
    assert any(len(d.value) == n and "explain" in d.value.columns for d in at.dataframe)


def test_run_page_filters_predictions(two_runs):
    at = page_app("run", run="run-poor")
    rerun(at.radio(key="run_pred_correct").set_value("wrong"), "run")
    pred = RunStore().predictions("run-poor")
    wrong = int((pred.y_true != pred.y_pred).sum())
    assert any(len(d.value) == wrong and "explain" in d.value.columns and not d.value["correct"].any()
               for d in at.dataframe)


def test_run_page_composite_shows_the_paper_layout():
    store_fixture_run("run-composite", composite=True, accuracy=0.7)
    at = page_app("run", run="run-composite")
    assert not at.exception, at.exception
    assert "MEGC2019 layout" in _texts(at)
    table = at.table[0].value
    assert len(table) == 1
    flat = " ".join(map(str, table.columns.tolist()))
    for heading in ("Full", "SMIC", "CASME II", "SAMM"):
        assert heading in flat


def test_compare_page_tables_and_paired_test(two_runs):
    at = page_app("compare", runs="run-good,run-poor")
    assert not at.exception, at.exception
    text = _texts(at)
    assert "unlikely to be luck" in text  # 0.9 vs 0.4 accuracy over 8 subjects
    headline = at.dataframe[0].value
    assert len(headline) == 2 and "UF1 [95% CI]" in headline.columns
    assert any("right" in d.value.columns for d in at.dataframe)  # disagreements
    assert len(at.get("plotly_chart")) >= 4


def test_compare_shows_a_run_listed_twice_once(two_runs):
    at = page_app("compare", runs="run-good,run-good,run-poor")
    assert not at.exception, at.exception
    assert at.multiselect[0].value == ["run-good", "run-poor"]
    assert at.dataframe[0].value["id"].tolist() == ["run-good", "run-poor"]
    assert at.query_params["runs"] in ("run-good,run-good,run-poor", ["run-good,run-good,run-poor"])  # kept as given
    at = page_app("compare", runs="run-good,run-good")
    assert not at.exception, at.exception
    assert at.multiselect[0].value == ["run-good"] and "at least two" in _texts(at)


def test_compare_names_unknown_runs_as_text_and_keeps_the_url(two_runs):
    crafted = "![i](http://evil/i.png)[x](http://evil)"
    at = page_app("compare", runs=f"run-good,{crafted},run-poor")
    assert not at.exception, at.exception
    (warning,) = [w.value for w in at.warning]
    assert "not in the store" in warning and crafted in unescape(warning)
    assert_no_markup(warning)
    assert at.dataframe[0].value["id"].tolist() == ["run-good", "run-poor"]
    assert at.query_params["runs"] in (f"run-good,{crafted},run-poor", [f"run-good,{crafted},run-poor"])


def test_compare_page_identical_runs_say_no_difference():
    store_fixture_run("twin-a", accuracy=0.7, seed=3)
    store_fixture_run("twin-b", accuracy=0.7, seed=3)
    at = page_app("compare", runs="twin-a,twin-b")
    assert not at.exception, at.exception
    assert "no difference to test" in _texts(at)


def test_compare_refuses_runs_on_different_datasets():
    store_fixture_run("on-synth", accuracy=0.7)
    store_fixture_run("on-casme", dataset="casme2", accuracy=0.7, fingerprint="other")
    at = page_app("compare", runs="on-synth,on-casme")
    assert not at.exception
    errors = " ".join(e.value for e in at.error)
    assert "cannot be compared" in errors and "different datasets" in errors and "casme2" in errors
    assert not at.get("plotly_chart")


def test_compare_refuses_different_fingerprints():
    store_fixture_run("fp-a", fingerprint="aaaa")
    store_fixture_run("fp-b", fingerprint="bbbb")
    at = page_app("compare", runs="fp-a,fp-b")
    assert "fingerprint" in " ".join(e.value for e in at.error)


def test_compare_page_needs_two_runs():
    store_fixture_run("lonely")
    at = page_app("compare", runs="lonely")
    assert not at.exception
    assert "at least two" in _texts(at)


def test_leaderboard_marks_reported_and_measured():
    store_fixture_run("lb-composite", composite=True, accuracy=0.6)
    at = page_app("leaderboard")
    assert not at.exception, at.exception
    board = at.dataframe[0].value
    sources = set(board["source"])
    assert sources == {"reported in paper", "measured here, honest protocol"}
    htnet = board[board["method"] == "HTNet"].iloc[0]
    assert "best epoch on the test subject" in htnet["note"]
    measured = board[board["source"].str.startswith("measured")].iloc[0]
    assert measured["Full UF1"] == pytest.approx(RunStore().get_run("lb-composite")["uf1"])
    assert "test subject never used" in measured["note"]


def test_leaderboard_without_composite_runs_shows_synthetic_apart():
    store_fixture_run("lb-synth", accuracy=0.8)
    at = page_app("leaderboard")
    assert not at.exception, at.exception
    text = _texts(at)
    assert "not comparable: synthetic data" in text.lower()
    boards = [d.value for d in at.dataframe]
    assert set(boards[0]["source"]) == {"reported in paper"}
    assert any("lb-synth" in " ".join(map(str, d.get("run", []))) for d in boards[1:])


def test_run_page_scores_a_running_run_live():
    store = RunStore()
    rid = store_fixture_run("live-run", subjects=4, per_subject=5, store=store)
    store.finish_run(rid, status="running", summary={})  # as the engine leaves it until the last fold
    store.close()
    at = page_app("run", run=rid)
    assert not at.exception, at.exception
    assert "in progress" in _texts(at)
    values = {m.label: m.value for m in at.metric}
    pred = RunStore().predictions(rid)
    assert float(values["accuracy"]) == pytest.approx((pred.y_true == pred.y_pred).mean(), abs=1e-3)


def test_compare_pairs_the_two_runs_explanation_reports(two_runs):
    import json as _json

    from mer_core.store.folders import run_folder

    page = page_app("compare", runs="run-good,run-poor")
    assert "No explanation report" in _texts(page)
    ids = [f"s{i}" for i in range(8)]
    for rid, share in (("run-good", 0.8), ("run-poor", 0.3)):
        folder = run_folder(rid) / "explain"
        folder.mkdir(parents=True, exist_ok=True)
        rows = [{"method": "saliency", "sample_id": s, "au_share": share + 0.01 * i} for i, s in enumerate(ids)]
        (folder / "report-fixture.json").write_text(_json.dumps(
            {"run": rid, "model": "baseline", "methods": ["saliency"], "rows": rows}))
    at = page_app("compare", runs="run-good,run-poor")
    assert not at.exception, at.exception
    text = _texts(at)
    assert "localise the true AUs better than" in text and "0.0078" in text, text  # 8 clips, all differences > 0


def test_leaderboard_names_the_realism_variant_and_the_linear_floor():
    store_fixture_run("lb-floor", dataset="synthetic-realism", model="linear", epochs=30,
                      config={"dataset_options": {"version": "composite-1"}})
    store_fixture_run("lb-default", accuracy=0.8)
    at = page_app("leaderboard")
    assert not at.exception, at.exception
    table = next(d.value for d in at.dataframe if "data" in d.value.columns)
    rows = {r["run"]: r for r in table.to_dict("records")}
    assert rows["lb-floor"]["data"] == "realism variant, calibration composite-1"
    assert rows["lb-floor"]["method"].startswith("linear · the floor")
    assert rows["lb-default"]["data"] == "synthetic (default set)"


def test_explain_defaults_to_a_finished_run_not_a_newer_cancelled_one():
    store = RunStore()
    store_fixture_run("ex-done", store=store)
    rid = store_fixture_run("ex-zz-cancelled", store=store)
    store.finish_run(rid, status="cancelled", summary={})  # newest, but nothing to explain
    store.close()
    at = page_app("explain")
    assert not at.exception, at.exception
    assert at.selectbox[0].value == "ex-done"
    assert "ex-zz-cancelled" in at.selectbox[0].options[-1]  # still offered, last
