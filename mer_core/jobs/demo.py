"""First-start demo runs: what a newcomer sees when the store is empty.

``make demo`` calls ``python -m mer_core.jobs.demo`` before starting the
dashboard. When the run store holds no run and no job, it queues two short
background jobs on the synthetic dataset, the STSTNet-style baseline and the
project's flow CNN (about a minute together on two cores), so the dashboard
opens on live jobs that become comparable runs: the Jobs page shows them
training, then Run, Compare and Explain have something to show. A store that
has anything in it is left alone.
"""
from __future__ import annotations

import sys

from mer_core.config import ExperimentConfig
from mer_core.jobs import queue as jobs
from mer_core.store.db import RunStore, using_store
from mer_core.training.experiment import resolve_experiment

DEMO_MODELS = ("ststnet", "baseline")


def demo_configs() -> list[ExperimentConfig]:
    """The same configs the New experiment form builds for these models at their cpu preset."""
    return [resolve_experiment("synthetic", m, "cpu") for m in DEMO_MODELS]


def queue_demo_jobs(store: RunStore | None = None, *, start: bool = True) -> list[str]:
    """Queue the demo jobs if the store is empty; returns the job ids (empty when nothing was queued)."""
    with using_store(store) as store:
        if not store.list_runs().empty or not jobs.list_jobs(store).empty:
            return []
        return [jobs.submit(cfg, store=store, name=f"demo: {cfg.model} on synthetic", start=start)
                for cfg in demo_configs()]


def main() -> int:
    queued = queue_demo_jobs()
    if queued:
        print(f"empty run store: queued demo jobs {', '.join(queued)} (see the Jobs page)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
