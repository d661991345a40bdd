"""Run page of a running or resumed run: computed from the folds stored now; intervals contain their point."""
from __future__ import annotations

import pandas as pd
import pytest

from apptest_helpers import page_app
from mer_core.config import ExperimentConfig
from mer_core.evaluation.metrics import summarize
from mer_core.store.db import RunStore

CLASSES = ["negative", "positive", "surprise"]


def _pred(n: int, right: bool) -> pd.DataFrame:
    return pd.DataFrame({
        "sample_id": [f"synthetic/s{i % 4}/c{i}" for i in range(n)], "subject": [f"synthetic:s{i % 4}" for i in range(n)],
        "part": "synthetic", "clip": [f"c{i}" for i in range(n)], "y_true": [i % 3 for i in range(n)],
        "y_pred": [i % 3 if right else 0 for i in range(n)], "probs": [[0.6, 0.3, 0.1]] * n,
        "oracle_pred": [i % 3 for i in range(n)],
    })


@pytest.fixture
def resumed_run() -> str:
    """A run that finished once with perfect scores (stored summary), then resumed: one fold stored now, wrong."""
    perfect = _pred(12, right=True)
    with RunStore() as store:
        rid = store.create_run(ExperimentConfig(), classes=CLASSES, n_folds=4, n_samples=12, run_id="resumed-run")
        store.start_fold(rid, 0, "synthetic:s0", ["synthetic:s0"], 9, 0, 3)
        now = _pred(12, right=False)
        store.finish_fold(rid, 0, now[now["subject"] == "synthetic:s0"], epochs_run=1, selected_epoch=1)
        store.finish_run(rid, status="done", summary=summarize(perfect.assign(fold=0), CLASSES))
        store.conn.execute("UPDATE runs SET status='running' WHERE id=?", (rid,))
        store.conn.commit()
    return rid


def test_a_resumed_run_is_scored_from_the_folds_stored_now_with_a_banner(resumed_run):
    at = page_app("run", run=resumed_run)
    assert not at.exception, at.exception
    uf1 = float([m.value for m in at.metric if m.label == "UF1 (pooled)"][0])
    assert uf1 < 0.99  # not the earlier attempt's perfect summary
    assert any("in progress" in i.value and "stored now" in i.value for i in at.info)


def test_the_interval_caption_is_the_percentile_interval_as_computed():
    from dashboard.views.run import interval_caption
    from mer_core.evaluation.statistics import Interval

    assert interval_caption(0.60, Interval(0.60, 0.55, 0.70)) == "95% CI 0.550 – 0.700"
    # never widened: an interval that leaves out its point is shown as computed, and says so
    text = interval_caption(0.50, Interval(0.50, 0.55, 0.70))
    assert text.startswith("95% CI 0.550 – 0.700") and "lies above its point 0.500" in text
    assert "lies below its point 0.800" in interval_caption(0.80, Interval(0.80, 0.55, 0.70))
    # a summary stored under the earlier rule is named, not silently mixed with the rescored interval
    assert "stored 0.667 was scored by an earlier rule" in interval_caption(2 / 3, Interval(1.0, 1.0, 1.0))


def test_a_run_without_surprise_clips_shows_one_uf1_in_headline_and_interval():
    """Perfect predictions on negative and positive clips only: UF1 1.000 with the interval 1.000 - 1.000 (the
    headline used to be 1.000 and the interval's point 0.667, the caption widened to 0.667 - 1.000)."""
    pred = _pred(12, right=True)
    pred["y_true"] = pred["y_pred"] = pred["oracle_pred"] = [i % 2 for i in range(12)]
    pred["fold"] = pred["subject"].str[-1].astype(int)
    with RunStore() as store:
        rid = store.create_run(ExperimentConfig(), classes=CLASSES, n_folds=4, n_samples=12, run_id="no-surprise")
        for k in range(4):
            part = pred[pred["fold"] == k]
            store.start_fold(rid, k, f"synthetic:s{k}", [f"synthetic:s{k}"], 12 - len(part), 0, len(part))
            store.finish_fold(rid, k, part.drop(columns=["fold"]), epochs_run=1, selected_epoch=1)
        store.finish_run(rid, status="done", summary=summarize(pred, CLASSES))
    at = page_app("run", run=rid)
    assert not at.exception, at.exception
    values = {m.label: m.value for m in at.metric}
    assert values["UF1 (pooled)"] == "1.000" and values["UAR (pooled)"] == "1.000"
    captions = [c.value for c in at.caption if c.value.startswith("95% CI")]
    assert captions[:2] == ["95% CI 1.000 – 1.000", "95% CI 1.000 – 1.000"]
