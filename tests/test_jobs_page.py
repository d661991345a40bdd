"""The Jobs page and its live view, rendered with AppTest from stored jobs (no worker processes)."""
from __future__ import annotations

import json
import time

import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from apptest_helpers import page_app
from mer_core.config import ExperimentConfig
from mer_core.evaluation.metrics import summarize
from mer_core.jobs import queue as jobs
from mer_core.store import liveness
from mer_core.store.db import RunStore
from mer_core.store.jobs import FINISHED

CLASSES = ["negative", "positive", "surprise"]


class FakeProc:
    pid = 2**22 + 7  # above the default pid_max: never a live process

    def poll(self):
        return None


@pytest.fixture(autouse=True)
def launched(monkeypatch) -> list[str]:
    """Jobs the scheduler would have started (no worker process is started in these tests)."""
    started: list[str] = []
    monkeypatch.setattr(jobs, "_launch", lambda job_id, *a, **k: (started.append(job_id), FakeProc())[1])
    return started


def store_job(status: str, *, folds_done: int = 2, error: str = "") -> str:
    """A job whose run has ``folds_done`` of 3 folds stored, with epochs, predictions and a log."""
    config = ExperimentConfig(epochs=2)
    with RunStore() as store:
        job_id = jobs.submit(config, store=store, start=False)
        job = jobs.get_job(store, job_id)
        rid = store.create_run(config, classes=CLASSES, n_folds=3, n_samples=9, run_id=job["run_id"])
        pred = pd.DataFrame({"sample_id": [f"s{i}" for i in range(9)], "subject": [f"sub{i // 3}" for i in range(9)],
                             "part": "", "clip": "", "y_true": [i % 3 for i in range(9)],
                             "y_pred": [0, 1, 2, 0, 1, 2, 0, 0, 0], "probs": [[0.5, 0.3, 0.2]] * 9})
        for k in range(folds_done):
            store.start_fold(rid, k, f"sub{k}", [f"sub{k}"], 6, 0, 3)
            for e in (1, 2):
                store.add_epoch(rid, k, e, train_loss=1.2 / e, train_acc=0.4 * e)
            store.finish_fold(rid, k, pred[pred["subject"] == f"sub{k}"], epochs_run=2, selected_epoch=2)
        store.finish_run(rid, status="done" if folds_done == 3 else "running",
                         summary=summarize(pred[pred["subject"].isin([f"sub{k}" for k in range(folds_done)])]
                                           .assign(fold=0), CLASSES))
        with store.tx() as c:
            c.execute("""UPDATE jobs SET status=?, started=?, finished=?, n_folds=3, folds_done=?, fold=?, epoch=1,
                         epochs=2, loss=0.75, progress=?, eta_s=42, error=?, resumable=?, attempts=1 WHERE id=?""",
                      (status, time.time() - 60, time.time() if status in FINISHED else None, folds_done,
                       min(folds_done, 2), folds_done / 3, error, int(status in ("failed", "cancelled")), job_id))
        with open(job["log_path"], "w") as fh:
            fh.write("[worker] fold 1/3 epoch 1/2 loss 1.2\r[worker] fold 1/3 epoch 2/2 loss 0.6\n[worker] last line\n")
    return job_id


def view(job_id: str) -> AppTest:
    def script():
        import streamlit as st

        from dashboard.views import jobs as page

        page._job_view(st.session_state["job_under_test"])

    at = AppTest.from_function(script, default_timeout=30)
    at.session_state["job_under_test"] = job_id
    return at.run()


def test_live_view_of_a_stored_finished_job():
    job_id = store_job("done", folds_done=3)
    at = view(job_id)
    assert not at.exception, at.exception
    assert any(f"Job `{job_id}`" in m.value and "done" in m.value for m in at.markdown)
    bar = at.get("progress")[0].proto
    assert bar.value == 100 and bar.text == "folds done 3 of 3"
    charts = at.get("plotly_chart")
    assert len(charts) == 2  # training curves + per-subject results
    bars = json.loads(charts[1].proto.spec)["data"]
    ticks = [t for t in bars if t.get("name", "").startswith("chance")]  # chance beside each subject's accuracy
    assert len(ticks) == 1 and ticks[0]["x"] == bars[0]["x"]
    with RunStore() as store:
        k = len(store.get_run(jobs.get_job(store, job_id)["run_id"])["classes"])
    assert ticks[0]["y"] == [pytest.approx(1 / k)] * len(bars[0]["x"])
    buttons = {b.label: b for b in at.button}
    assert buttons["Cancel"].disabled and buttons["Resume"].disabled  # nothing to cancel or resume
    log = at.code[-1].value
    assert "[worker] last line" in log and "epoch 2/2 loss 0.6" in log and "epoch 1/2" not in log  # \r redraws
    with RunStore() as store:
        run_id = jobs.get_job(store, job_id)["run_id"]
    links = [(e.proto.page, e.proto.query_string) for e in at.get("page_link")]
    assert ("run", f"run={run_id}") in links  # the results, opened in this tab


def test_live_view_of_a_failed_job_offers_resume_and_shows_the_traceback(launched):
    tb = "Traceback (most recent call last):\n  File x\nRuntimeError: out of cheese"
    job_id = store_job("failed", folds_done=1, error=tb)
    at = view(job_id)
    assert not at.exception, at.exception
    assert any("RuntimeError: out of cheese" in e.value and "Resume" in e.value for e in at.error)
    assert any("out of cheese" in c.value for c in at.code)
    resume = {b.label: b for b in at.button}["Resume"]
    assert not resume.disabled
    resume.click()
    at.run()
    assert not at.exception, at.exception
    with RunStore() as store:
        job = jobs.get_job(store, job_id)
    assert launched == [job_id]  # re-queued and started by the scheduler at once
    assert job["status"] == "running" and job["error"] == "" and job["attempts"] == 2 and not job["resumable"]


def test_cancel_button_on_a_running_job_sets_the_flag(monkeypatch):
    job_id = store_job("running", folds_done=1)
    monkeypatch.setattr(liveness, "process_alive", lambda *a, **k: True)  # pretend the worker lives
    at = view(job_id)
    assert not at.exception, at.exception
    assert "ETA" in at.get("progress")[0].proto.text
    cancel = {b.label: b for b in at.button}["Cancel"]
    assert not cancel.disabled
    cancel.click()
    at.run()
    with RunStore() as store:
        job = jobs.get_job(store, job_id)
    assert job["status"] == "cancelling" and job["cancel"]


def test_pages_that_only_read_start_no_worker(launched):
    from dashboard import reads

    dead = store_job("running", folds_done=1)  # no live process and a heartbeat a minute old: its worker died
    with RunStore() as store:
        queued = jobs.submit(ExperimentConfig(epochs=2), store=store, start=False)
    table = reads.jobs_table()
    detail = reads.job_detail(queued)
    assert launched == []  # a queued job and a free slot, yet reading starts nothing
    assert dict(zip(table["id"], table["status"])) == {dead: "failed", queued: "queued"}  # the dead one is told
    assert detail["job"]["status"] == "queued"
    at = page_app("jobs", job=queued)
    assert not at.exception, at.exception
    at = page_app("home")
    assert not at.exception, at.exception
    assert launched == []
    with RunStore() as store:
        assert jobs.get_job(store, queued)["status"] == "queued"
        jobs.kick(store)  # what a submit, a resume, a finishing worker or the dashboard's start does
    assert launched == [queued]


def test_jobs_page_lists_jobs_and_keeps_the_job_in_the_url():
    a = store_job("done", folds_done=3)
    b = store_job("failed", folds_done=1, error="boom")
    at = page_app("jobs", job=a)
    assert not at.exception, at.exception
    table = at.dataframe[0].value
    assert list(table["status"]) == ["failed", "done"]  # history newest first
    assert any(f"Job `{a}`" in m.value for m in at.markdown)
    at = page_app("jobs", job="unknown")
    assert not at.exception, at.exception
    assert any("not in the store" in e.value and "unknown" in e.value for e in at.error)
    assert at.query_params["job"] in ("unknown", ["unknown"])  # the address is kept: a reload asks again
    assert not any(m.value.startswith("### Job") for m in at.markdown)  # no other job shown in its place
    assert at.dataframe[0].value["status"].tolist() == ["failed", "done"]  # the queue is still listed
    [s for s in at.selectbox if s.label == "job"][0].set_value(b).run()
    assert any(f"Job `{b}`" in m.value for m in at.markdown)
    assert at.query_params["job"] in (b, [b])


def test_a_job_id_prefix_in_the_url_opens_that_job():
    a = store_job("done", folds_done=3)
    at = page_app("jobs", job=a.split("-")[0])
    assert not at.exception, at.exception
    assert any(f"Job `{a}`" in m.value for m in at.markdown)


def test_empty_jobs_page_shows_guidance():
    at = page_app("jobs")
    assert not at.exception
    assert any("No jobs yet" in i.value for i in at.info)


def test_a_link_to_an_unknown_job_says_so_on_an_empty_queue():
    at = page_app("jobs", job="no-such-job")
    assert not at.exception
    assert any("no-such-job" in e.value and "not in the store" in e.value for e in at.error)
    assert any("No jobs yet" in i.value for i in at.info)
    assert at.query_params["job"] in ("no-such-job", ["no-such-job"])  # the address is kept


def _job(status: str, **kw) -> dict:
    return {"status": status, "n_folds": 4, "folds_done": kw.pop("folds_done", 1), "epochs": 10, "config": {},
            "progress": kw.pop("progress", 0.9), "message": "fold 4/4: s4", "stage": "train", **kw}


def _folds(statuses: list[str]) -> pd.DataFrame:
    return pd.DataFrame({"fold_index": range(len(statuses)), "status": statuses})


def test_parallel_folds_are_listed_together_with_their_epochs():
    from dashboard.views.jobs import fold_progress

    epochs = pd.DataFrame({"fold_index": [1, 1, 1, 2], "epoch": [1, 2, 3, 1]})
    share, text = fold_progress(_job("running"), _folds(["done", "running", "running"]), epochs)
    assert text == "folds done 1 of 4; running: fold 2 (epoch 3/10), fold 3 (epoch 1/10)"
    assert share == pytest.approx((1 + 0.3 + 0.1) / 4)


def test_after_a_cancel_no_unstarted_fold_is_announced_and_the_share_is_the_stored_one():
    from dashboard.views.jobs import fold_progress

    # the worker's last message announced fold 4; the stored folds say one is done, one was interrupted
    share, text = fold_progress(_job("cancelled", message="fold 4/4: s4 started"), _folds(["done", "running"]),
                                pd.DataFrame({"fold_index": [1], "epoch": [5]}))
    assert "running" not in text and "fold 4" not in text
    assert text.startswith("folds done 1 of 4")
    assert share == pytest.approx(0.25)


@pytest.mark.parametrize("via_page", [False, True])
def test_one_click_on_cancel_acts_and_says_so(monkeypatch, via_page):
    """The button acts through its callback (before the rerun draws anything) and the outcome is shown."""
    job_id = store_job("running", folds_done=1)
    monkeypatch.setattr(liveness, "process_alive", lambda *a, **k: True)
    at = page_app("jobs", job=job_id) if via_page else view(job_id)
    assert not at.exception, at.exception
    {b.label: b for b in at.button}["Cancel"].click()
    at.run()
    assert not at.exception, at.exception
    with RunStore() as store:
        assert jobs.get_job(store, job_id)["status"] == "cancelling"
    said = " ".join(s.value for s in at.success)
    assert "Cancel requested" in said and "finished folds are kept" in said
    assert {b.label: b for b in at.button}["Cancel"].disabled  # no second click needed, none possible


def test_the_job_view_names_a_modified_preset():
    job_id = store_job("done", folds_done=3)
    at = view(job_id)
    assert not at.exception, at.exception
    with RunStore() as store:
        cfg = jobs.get_job(store, job_id)["config"]
    from mer_core.training.experiment import preset_label

    assert preset_label(cfg) in " ".join(c.value for c in at.caption).replace("\\", "")
