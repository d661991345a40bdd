"""All cached data access of the dashboard, in one place.

Pages call these loaders; the loaders call mer_core. Reads of a finished run
are cached longer than reads of the run list (which changes while jobs run).
Nothing here trains or writes results: the store is written by workers.
"""
from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st

from mer_core.errors import MerError
from mer_core.paths import store_path
from mer_core.runs.store import RunStore

# Session-state and query-parameter keys (constants, never string literals in pages)
QP_RUN = "run"
QP_JOB = "job"
QP_RUNS = "runs"
QP_SAMPLE = "sample"
QP_DATASET = "dataset"


def runs_table() -> pd.DataFrame:
    """All stored runs, newest first (cached for a few seconds)."""
    return _runs_table(str(store_path()))


def run_bundle(run_id: str) -> dict[str, Any]:
    """A run with its predictions, folds and epochs; raises MerError if unknown."""
    return _run_bundle(str(store_path()), run_id)


# The store path is part of every cache key: tests and users may switch stores.
@st.cache_data(ttl=3, show_spinner=False)
def _runs_table(path: str) -> pd.DataFrame:
    with RunStore(path) as store:
        return store.list_runs()


@st.cache_data(ttl=3, show_spinner=False)
def _run_bundle(path: str, run_id: str) -> dict[str, Any]:
    with RunStore(path) as store:
        run = store.get_run(run_id)
        return {
            "run": run,
            "predictions": store.predictions(run_id),
            "folds": store.folds(run_id),
            "epochs": store.epochs(run_id),
        }


def try_run_bundle(run_id: str) -> tuple[dict[str, Any] | None, str]:
    try:
        return run_bundle(run_id), ""
    except MerError as exc:
        return None, str(exc)


def run_label(row: pd.Series) -> str:
    uf1 = "" if pd.isna(row.get("uf1")) else f" · UF1 {row['uf1']:.3f}"
    return f"{row['model']} on {row['dataset']} ({row['protocol']}){uf1} · {row['id']}"
