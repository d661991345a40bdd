"""The worker of a spotting job: ``python -m mer_core.jobs.spot_job JOB_ID``.

:func:`mer_core.jobs.queue.submit_spotting` queues it; ``kick`` starts this
module for a job of kind ``spotting``. It is the ordinary worker (claim,
heartbeat, cancel flag, final status, next job kicked) whose work is
:func:`mer_core.spotting.loso.run_spotting` on the job's config and
pre-assigned spotting run id: a resumed job keeps the folds already stored.
"""
from __future__ import annotations

import sys

from mer_core.jobs import worker as base
from mer_core.store.jobs import SPOTTING


class SpotRunner(base.JobRunner):
    """A JobRunner whose work is the spotting LOSO of ``job['config']``."""

    kind = SPOTTING
    cancelled_note = "; finished folds are kept"

    def spot_progress(self, e: dict) -> None:
        kind = e.get("event")
        if kind == "stage":  # spot-then-recognise: intervals classified
            self._write(e["done"] >= e["total"], stage="recognise", message=f"recognise {e['done']}/{e['total']} "
                        "spotted intervals")
            return
        if kind == "done":
            print(f"[worker] spotting run {e.get('run_id')}: F1 {e.get('f1')}", flush=True)
            return
        self.progress(e)

    def stored_folds(self) -> int:
        return len(self.store.spot_done_folds(self.job["run_id"]))  # the spotting folds a resumed run kept

    def work(self) -> tuple[str, str, str]:
        from mer_core.spotting.loso import SpotConfig, run_spotting  # lazy: loads scikit-learn and scipy (about 1 s)

        run_id = self.job["run_id"]
        config = SpotConfig.from_dict(self.job["config"])
        print(f"[worker] job {self.job_id} (attempt {self.job['attempts']}) -> spotting run {run_id}", flush=True)
        run_spotting(config, store=self.store, run_id=run_id, progress=self.spot_progress,
                     should_stop=self.should_stop, name=self.job.get("name") or "")
        run = self.store.get_spot_run(run_id)
        if run["status"] == "cancelled":
            return "cancelled", f"cancelled ({self._why_stopped()}); finished folds are kept", ""
        if run["status"] == "failed":
            return "failed", "", run["error"]
        f1 = run.get("f1")
        return "done", "finished" + (f": spotting F1 {f1:.3f}" if f1 is not None else ""), ""


if __name__ == "__main__":
    sys.exit(base.main(None, "mer_core.jobs.spot_job", SpotRunner))
