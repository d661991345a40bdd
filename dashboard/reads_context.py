"""Reads that put a number in context: a run's preset as modified, the executor an estimate is for, the load.

The same rules as :mod:`dashboard.reads`: views call these, these call mer_core.
"""
from __future__ import annotations

import json

import streamlit as st

from dashboard.reads import _run_details, experiment_plan
from mer_core.config import ExperimentConfig
from mer_core.errors import MerError
from mer_core.jobs import plan, queue as jobs, study
from mer_core.jobs.plan import identical_jobs
from mer_core.paths import store_path
from mer_core.store.db import RunStore
from mer_core.training.experiment import preset_label


def preset_labels(run_ids: tuple[str, ...]) -> dict[str, str]:
    """Run id -> "cpu preset" or "cpu preset, modified: epochs 3 (preset 15)" (mer_core.training.experiment)."""
    return _preset_labels(str(store_path()), tuple(run_ids))


@st.cache_data(ttl=30, max_entries=32, show_spinner=False)
def _preset_labels(path: str, run_ids: tuple[str, ...]) -> dict[str, str]:
    return {r["id"]: preset_label(r["config"]) for r in _run_details(path, run_ids)}


def executor_that_runs(executor: str, n_folds: int, workers: int | None) -> str:
    """The executor that will actually run the folds (mer_core.jobs.plan)."""
    return plan.executor_that_runs(executor, n_folds, workers) or executor


def machine_load() -> tuple[float, int, bool]:
    """(1-minute load, cores, high) of this machine (mer_core.jobs.plan); not cached: it is now."""
    return plan.machine_load()


def identical_active_jobs(config_json: str) -> list[str]:
    """Queued or running jobs whose config is this one exactly (mer_core.jobs.plan.identical_jobs)."""
    with RunStore(store_path()) as store:
        table = jobs.list_jobs(store)
        active = table[table["status"].isin(("queued", "running"))]
        rows = [jobs.get_job(store, j) for j in active["id"]]
    return identical_jobs(ExperimentConfig.from_json(config_json), rows)


def study_preview(definition_json: str) -> dict:
    """Jobs and estimated time of a study definition (mer_core.jobs.study.preview), or {"error": message}."""
    try:
        spec = study.parse_study(json.loads(definition_json))
        return study.preview(spec, plan_fn=_plan)
    except MerError as exc:
        return {"error": str(exc)}


def _plan(config) -> dict:
    out = experiment_plan(config.to_json())
    if "error" in out:
        raise MerError(out["error"])
    return out
