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


def test_an_interval_always_contains_its_point_estimate():
    from dashboard.views.run import interval_bounds

    assert interval_bounds(0.50, 0.55, 0.70) == (0.50, 0.70)
    assert interval_bounds(0.80, 0.55, 0.70) == (0.55, 0.80)
    assert interval_bounds(0.60, 0.55, 0.70) == (0.55, 0.70)
