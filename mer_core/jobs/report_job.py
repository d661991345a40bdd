"""The worker of an explanation-report job: ``python -m mer_core.jobs.report_job JOB_ID``.

:func:`mer_core.jobs.queue.submit_explain_report` queues it; ``kick`` starts
this module instead of :mod:`mer_core.jobs.worker` for a job of kind
``explain_report``. It is the ordinary worker (claim, heartbeat, cancel flag,
final status, next job kicked) with one different
piece of work: :func:`mer_core.explain.report.explanation_report` on the
job's run, progress = clips done, cached in the run folder. A cancelled
report stores nothing; a resumed one recomputes (the per-clip maps are cached).

The report's time estimates (the slow methods and the randomisation check,
measured on the first clip and extrapolated) go to the job's log as
``[estimate] ...`` lines (:data:`ESTIMATE_PREFIX`, read back by
:func:`estimate_lines`) and become the job's message until the next clip,
whose message says the time left.
"""
from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

from mer_core.jobs import worker as base
from mer_core.store.jobs import EXPLAIN_REPORT

ESTIMATE_PREFIX = "[estimate] "


class ReportRunner(base.JobRunner):
    """A JobRunner whose work is the explanation report of ``job['config']['run']``."""

    kind = EXPLAIN_REPORT
    cancelled_note = "; nothing stored"

    def report_progress(self, done: int, total: int, text: str) -> None:
        if self.stop_event.is_set():
            raise base.Stopped(self.stop_reason)
        self._write(done >= total, stage="explain", progress=done / max(total, 1), message=text)

    def report_note(self, estimate: dict[str, Any]) -> None:
        """A measured estimate of the report (see explain.report.slow_estimates): log line and job message."""
        print(ESTIMATE_PREFIX + estimate["text"], flush=True)
        self._write(True, message=estimate["text"])

    def work(self) -> tuple[str, str, str]:
        from mer_core.explain.report import ReportConfig, explanation_report  # lazy: loads torch (about 2 s)

        cfg = self.job["config"]
        print(f"[worker] job {self.job_id}: explanation report of run {cfg['run']}", flush=True)
        t0 = time.time()
        report = explanation_report(cfg["run"], ReportConfig.from_dict(cfg.get("report") or {}),
                                    store=self.store, progress=self.report_progress, note=self.report_note)
        return "done", f"report of {len(report['sample_ids'])} clips ready ({time.time() - t0:.0f} s)", ""


def estimate_lines(job: dict[str, Any]) -> list[str]:
    """The estimates the job's latest worker wrote to its log (prefix stripped; [] without a log)."""
    path = Path(job.get("log_path") or "")
    try:
        text = path.read_text(errors="replace") if path.is_file() else ""
    except OSError:
        return []
    latest = text.rsplit("starting worker for job", 1)[-1]  # the marker jobs.queue._launch writes per attempt
    return [ln[len(ESTIMATE_PREFIX):].strip() for ln in latest.splitlines() if ln.startswith(ESTIMATE_PREFIX)]


if __name__ == "__main__":
    sys.exit(base.main(None, "mer_core.jobs.report_job", ReportRunner))
