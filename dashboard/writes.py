"""Writes: every action of the dashboard that changes stored state, in one place.

Submit, cancel and resume jobs, delete a run, set a dataset root, generate a
synthetic set. Views call these and never ``mer_core.store`` or
``mer_core.jobs`` directly; each function raises :class:`MerError` with a
message a view can show as text. Caches that the action makes stale are
cleared here, so a view does not need to know which.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import streamlit as st

from dashboard import reads
from mer_core.paths import store_path
from mer_core.store.db import RunStore


def submit(config: Any, *, name: str = "") -> str:
    """Queue an ExperimentConfig as a background job; returns the job id."""
    from mer_core.jobs import queue as jobs

    return jobs.submit(config, name=name)


def cancel(job_id: str) -> str:
    """Ask a job to stop between batches; returns its new status."""
    return _job_action("cancel", job_id)


def resume(job_id: str) -> str:
    """Re-queue a failed or cancelled job; it continues its run without retraining finished folds."""
    return _job_action("resume", job_id)


def _job_action(action: str, job_id: str) -> str:
    from mer_core.jobs import queue as jobs

    with RunStore(store_path()) as store:
        return getattr(jobs, action)(store, job_id)


def delete_run(run_id: str) -> None:
    """Remove a run's rows from the store (its folder under cache/runs stays)."""
    with RunStore(store_path()) as store:
        store.delete_run(run_id)
    st.cache_data.clear()


def set_root(name: str, root: str) -> Path:
    """Save where a licensed dataset lies on this machine (cache/datasets.toml); returns the file it is saved in."""
    from mer_core.datasets.roots import set_dataset_root

    saved = set_dataset_root(name, root)
    reads.clear_dataset_caches()
    return saved


def generate_synthetic(options: Any) -> Path:
    """Generate (or reuse) a synthetic set with these SynthOptions; returns its manifest."""
    from mer_core.datasets.synthetic import ensure_dataset

    manifest = ensure_dataset(options)
    reads.clear_dataset_caches()
    return manifest


def on_dashboard_start() -> None:
    """Once per server process: mark dead workers and start queued jobs, so a restarted dashboard resumes the queue."""
    _kick_once(str(store_path()))


@st.cache_resource(show_spinner=False)
def _kick_once(path: str) -> bool:
    from mer_core.jobs import queue as jobs

    with RunStore(path) as store:
        jobs.kick(store)
    return True
