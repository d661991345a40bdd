"""Dashboard pages rendered with Streamlit's AppTest from stored runs."""
import re

import pandas as pd
import pytest

from mer_core.config import ExperimentConfig
from mer_core.evaluation.metrics import summarize
from mer_core.store.db import RunStore
from apptest_helpers import assert_no_markup, page_app, unescape

CLASSES = ["negative", "positive", "surprise"]


@pytest.fixture
def stored_run() -> str:
    pred = pd.DataFrame({
        "sample_id": [f"synthetic/s{i % 4}/c{i}" for i in range(12)],
        "subject": [f"synthetic:s{i % 4}" for i in range(12)], "part": "synthetic", "clip": [f"c{i}" for i in range(12)],
        "y_true": [i % 3 for i in range(12)], "y_pred": [(i % 3) if i % 4 else 0 for i in range(12)],
        "probs": [[0.6, 0.3, 0.1]] * 12, "oracle_pred": [i % 3 for i in range(12)],
    })
    with RunStore() as store:
        rid = store.create_run(ExperimentConfig(), classes=CLASSES, n_folds=4, n_samples=12, run_id="fixture-run")
        for k in range(4):
            part = pred[pred["subject"] == f"synthetic:s{k}"]
            store.start_fold(rid, k, f"synthetic:s{k}", [f"synthetic:s{k}"], 9, 0, 3)
            store.finish_fold(rid, k, part, epochs_run=1, selected_epoch=1)
        store.finish_run(rid, status="done", summary=summarize(pred.rename(columns={}).assign(fold=0), CLASSES))
    return rid


def test_run_page_shows_metrics_confusion_and_subjects(stored_run):
    at = page_app("run", run=stored_run)
    assert not at.exception, at.exception
    labels = [m.label for m in at.metric]
    assert "UF1 (pooled)" in labels and "UAR (pooled)" in labels
    uf1 = [m.value for m in at.metric if m.label == "UF1 (pooled)"][0]
    assert float(uf1) == pytest.approx(RunStore().get_run(stored_run)["uf1"], abs=1e-3)
    charts = at.get("plotly_chart")
    assert len(charts) == 2
    assert at.query_params["run"] == [stored_run] or at.query_params["run"] == stored_run


def _qp(at, key):
    value = at.query_params[key]
    return value[0] if isinstance(value, list) and len(value) == 1 else value


def test_run_page_with_an_unknown_run_says_so_and_keeps_the_url(stored_run):
    at = page_app("run", run="does-not-exist")
    assert not at.exception
    assert any("not in the store" in e.value and "does" in e.value for e in at.error)
    assert _qp(at, "run") == "does-not-exist"  # a reload asks for the same run again
    assert at.selectbox[0].value is None and not at.metric  # no other run shown in its place
    at.selectbox[0].set_value(stored_run).run()  # picking a run is what changes the address
    assert _qp(at, "run") == stored_run and at.metric


CRAFTED = "[x](http://evil) ![i](http://evil/i.png) :red[big] <b>b</b> www.evil.com"


def test_a_crafted_run_id_in_the_url_is_shown_as_text(stored_run):
    at = page_app("run", run=CRAFTED)
    assert not at.exception
    (error,) = [e.value for e in at.error]
    assert_no_markup(error)
    assert unescape(error).count(CRAFTED) == 2  # the id itself, unchanged, once per mention
    assert _qp(at, "run") == CRAFTED


@pytest.mark.parametrize("text", [CRAFTED, "# heading", "- item", "1. item", "a\n===", "back`tick`", "a_b*c*"])
def test_plain_escapes_markdown_and_keeps_the_text(text):
    from dashboard.widgets import plain

    shown = plain(text)
    assert unescape(shown) == text  # nothing lost but the escapes
    assert_no_markup(shown)
    for line in shown.split("  \n"):
        assert not re.match(r"\s*([-+#=>*]|\d+[.)])", line), line  # no heading, list, quote or underline


def test_runs_page_lists_the_run(stored_run):
    at = page_app("runs")
    assert not at.exception
    df = at.dataframe[0].value
    assert any(stored_run in str(v) for v in df["run"])


def test_empty_store_shows_guidance():
    at = page_app("run")
    assert not at.exception
    assert any("No runs stored yet" in i.value for i in at.info)


def test_overview_describes_every_page():
    from dashboard.nav import PAGES
    from dashboard.views.home import guide_line

    lines = {entry.url: guide_line(entry.url) for entry in PAGES if entry.url != "overview"}
    assert all(lines.values()), [url for url, line in lines.items() if not line]
    at = page_app("home")
    assert not at.exception
    captions = " ".join(c.value for c in at.caption)
    assert all(text in captions for text in lines.values())
