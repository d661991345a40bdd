"""Reads of an explanation report's time estimates, for the Explain page's Faithfulness tab.

Kept beside :mod:`dashboard.reads` (at its size limit) with the same rules:
views call these, these call mer_core. Both are live (uncached).
"""
from __future__ import annotations

import json
from typing import Any

from mer_core.errors import MerError
from mer_core.paths import store_path
from mer_core.store.db import RunStore


def report_job_estimates(job_id: str) -> list[str]:
    """The time estimates a report job measured on its first clip (its log's ``[estimate]`` lines)."""
    from mer_core.jobs import queue as jobs
    from mer_core.jobs.report_job import estimate_lines

    with RunStore(store_path()) as store:
        try:
            return estimate_lines(jobs.get_job(store, job_id))
        except MerError:
            return []


def report_estimate(run_id: str, settings_json: str) -> dict[str, Any]:
    """How long the report with these ReportConfig settings (JSON) would take: a committed benchmark figure
    when one matches, else one clip measured now (:mod:`mer_core.explain.report_time`), so it costs that clip."""
    from mer_core.explain.report import ReportConfig
    from mer_core.explain.report_time import estimate_report_seconds

    with RunStore(store_path()) as store:
        return estimate_report_seconds(run_id, ReportConfig.from_dict(json.loads(settings_json)), store=store)
