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


# --- results pages: intervals, paired tests, leaderboard (issue 10) -----------------
def _stamp(run_id: str) -> tuple:
    """What changes when a run gets new results: part of the statistics cache keys."""
    row = runs_table().set_index("id")
    if run_id not in row.index:
        return (run_id,)
    r = row.loc[run_id]
    return (str(r["status"]), r["finished"], int(r["folds_done"]))


def run_intervals(run_id: str) -> dict[str, Any]:
    """Subject-level bootstrap 95% CIs of pooled UF1/UAR/accuracy (fixed seed, cached)."""
    return _run_intervals(str(store_path()), run_id, _stamp(run_id))


def paired_tests(run_a: str, run_b: str) -> dict[str, Any]:
    """Paired permutation and bootstrap tests of UF1 over subjects, A vs B (cached)."""
    return _paired_tests(str(store_path()), run_a, run_b, _stamp(run_a), _stamp(run_b))


def run_record_json(run_id: str) -> str:
    """The whole run as JSON text (same content as ``mer export RUN --format json``)."""
    return _run_record_json(str(store_path()), run_id, _stamp(run_id))


def published_results() -> pd.DataFrame:
    """The MEGC2019 composite results as reported in the papers (shipped CSV)."""
    return _published()


def run_details(run_ids: tuple[str, ...]) -> list[dict[str, Any]]:
    """Run rows with config and summary (no predictions) for many runs, for tables and plots."""
    return _run_details(str(store_path()), tuple(run_ids))


@st.cache_data(max_entries=64, show_spinner=False)
def _run_intervals(path: str, run_id: str, stamp: tuple) -> dict[str, Any]:
    from mer_core.evaluation.statistics import bootstrap_intervals

    with RunStore(path) as store:
        run = store.get_run(run_id)
        pred = store.predictions(run_id)
    if pred.empty:
        return {}
    return bootstrap_intervals(pred, run["classes"], n_boot=2000, seed=0)


@st.cache_data(max_entries=64, show_spinner=False)
def _paired_tests(path: str, run_a: str, run_b: str, stamp_a: tuple, stamp_b: tuple) -> dict[str, Any]:
    from mer_core.evaluation.statistics import paired_bootstrap, paired_permutation

    with RunStore(path) as store:
        classes = store.get_run(run_a)["classes"]
        pa, pb = store.predictions(run_a), store.predictions(run_b)
    return {"permutation": paired_permutation(pa, pb, classes, n_perm=5000, seed=0),
            "bootstrap": paired_bootstrap(pa, pb, classes, n_boot=2000, seed=0)}


@st.cache_data(max_entries=16, show_spinner=False)
def _run_record_json(path: str, run_id: str, stamp: tuple) -> str:
    from mer_core.runs.export import record_json, run_record

    with RunStore(path) as store:
        return record_json(run_record(run_id, store))


@st.cache_data(show_spinner=False)
def _published() -> pd.DataFrame:
    from mer_core.evaluation.leaderboard import load_published

    return load_published()


@st.cache_data(ttl=3, show_spinner=False)
def _run_details(path: str, run_ids: tuple[str, ...]) -> list[dict[str, Any]]:
    with RunStore(path) as store:
        return [store.get_run(r) for r in run_ids if store.has_run(r)]


# --- jobs (issue 9): the queue, the live job view, the new-experiment plan ------------
def jobs_table() -> pd.DataFrame:
    """All jobs, active and queued first. Not cached: it is the live status.

    Every read kicks the scheduler (starts queued jobs, marks jobs whose
    worker died), which is how a restarted dashboard picks the queue up again.
    """
    from mer_core.runs import jobs

    with RunStore(store_path()) as store:
        jobs.kick(store)
        return jobs.list_jobs(store)


def job_detail(job_id: str) -> dict[str, Any] | None:
    """A job with its run's folds, epochs, predictions and log tail (None if unknown); uncached (live)."""
    from mer_core.runs import jobs

    with RunStore(store_path()) as store:
        try:
            job = jobs.get_job(store, job_id)
        except MerError:
            return None
        out: dict[str, Any] = {"job": job, "run": None, "folds": pd.DataFrame(), "epochs": pd.DataFrame(),
                               "predictions": pd.DataFrame(), "log": jobs.log_tail(job, 40)}
        if store.has_run(job["run_id"]):
            out.update(run=store.get_run(job["run_id"]), folds=store.folds(job["run_id"]),
                       epochs=store.epochs(job["run_id"]), predictions=store.predictions(job["run_id"]))
        return out


def experiment_plan(config_json: str) -> dict[str, Any]:
    """mer_core.runs.jobs.plan of a config (samples, folds, estimate) or {'error': message}; cached."""
    return _experiment_plan(str(store_path()), config_json)


@st.cache_data(ttl=300, max_entries=32, show_spinner="Indexing the dataset…")
def _experiment_plan(path: str, config_json: str) -> dict[str, Any]:
    from mer_core.config import ExperimentConfig
    from mer_core.runs import jobs

    try:
        return jobs.plan(ExperimentConfig.from_json(config_json))
    except MerError as exc:
        return {"error": str(exc)}
    except Exception as exc:  # an indexer bug must not take the page down
        return {"error": f"{type(exc).__name__}: {exc}"}


def explain_url(run_id: str, sample_id: str) -> str:
    """Relative link to the Explain page for one clip of a run (``explain?run=ID&sample=SAMPLE``)."""
    from urllib.parse import quote

    return f"explain?{QP_RUN}={quote(run_id, safe='')}&{QP_SAMPLE}={quote(str(sample_id), safe='')}"


# --- jobs (issue 9): the queue, the live job view, the new-experiment plan ------------
def jobs_table() -> pd.DataFrame:
    """All jobs, active and queued first. Not cached: it is the live status.

    Every read kicks the scheduler (starts queued jobs, marks jobs whose
    worker died), which is how a restarted dashboard picks the queue up again.
    """
    from mer_core.runs import jobs

    with RunStore(store_path()) as store:
        jobs.kick(store)
        return jobs.list_jobs(store)


def job_detail(job_id: str) -> dict[str, Any] | None:
    """A job with its run's folds, epochs, predictions and log tail (None if unknown); uncached (live)."""
    from mer_core.runs import jobs

    with RunStore(store_path()) as store:
        try:
            job = jobs.get_job(store, job_id)
        except MerError:
            return None
        out: dict[str, Any] = {"job": job, "run": None, "folds": pd.DataFrame(), "epochs": pd.DataFrame(),
                               "predictions": pd.DataFrame(), "log": jobs.log_tail(job, 40)}
        if store.has_run(job["run_id"]):
            out.update(run=store.get_run(job["run_id"]), folds=store.folds(job["run_id"]),
                       epochs=store.epochs(job["run_id"]), predictions=store.predictions(job["run_id"]))
        return out


def experiment_plan(config_json: str) -> dict[str, Any]:
    """mer_core.runs.jobs.plan of a config (samples, folds, estimate) or {'error': message}; cached."""
    return _experiment_plan(str(store_path()), config_json)


@st.cache_data(ttl=300, max_entries=32, show_spinner="Indexing the dataset…")
def _experiment_plan(path: str, config_json: str) -> dict[str, Any]:
    from mer_core.config import ExperimentConfig
    from mer_core.runs import jobs

    try:
        return jobs.plan(ExperimentConfig.from_json(config_json))
    except MerError as exc:
        return {"error": str(exc)}
    except Exception as exc:  # an indexer bug must not take the page down
        return {"error": f"{type(exc).__name__}: {exc}"}
