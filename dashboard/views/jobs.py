"""Jobs: the queue and history of background jobs, and a live view of one job.

The job id lives in the URL (``?job=ID``), the job's state in the run store:
a reload, a closed tab or a restarted server shows the same job, still
running. The live view is a fragment re-run every 2 seconds; it only reads the
store (and kicks the scheduler), so the page never waits on a job.
"""
from __future__ import annotations

import pandas as pd
import streamlit as st

from dashboard import glossary, plots, reads, reads_spotting, widgets, writes
from dashboard.palette import STATUS_COLOUR
from dashboard.reads import JOB_ACTIVE as ACTIVE
from dashboard.widgets import code, plain
from mer_core.errors import MerError
from mer_core.evaluation.context import group_chance
from mer_core.evaluation.metrics import per_group

K_SELECT = "jobs_select"
SPOT_KIND = "spotting"  # the job kind of a spotting LOSO (mer spot --submit, the Spotting page)


def _eta(seconds: float | None) -> str:
    return "–" if seconds is None or seconds != seconds else widgets.duration(int(seconds))  # whole seconds, down


def _num(value: object, default: int = 0) -> int:
    return default if value is None or value != value else int(value)  # type: ignore[arg-type, operator]


def fold_progress(job: dict, folds: pd.DataFrame, epochs: pd.DataFrame) -> tuple[float, str]:
    """(share done, line) from the folds stored now: "folds done k of N; running: fold a (epoch e/E), ...".

    Parallel folds are listed together instead of the line jumping between them. Only an active job lists
    running folds, so after a cancel no unstarted or abandoned fold is announced, and the share is the
    stored folds' share (a half-trained fold is lost).
    """
    status = job["status"]
    n = _num(job["n_folds"]) or len(folds)
    if status == "queued" and not len(folds):
        return 0.0, "waiting in the queue"
    if not n:
        return float(job["progress"] or 0.0), str(job["message"] or job["stage"] or status)
    done = int((folds["status"] == "done").sum()) if len(folds) else _num(job["folds_done"])
    if status == "done":
        return 1.0, f"folds done {done} of {n}"
    total_epochs = _num(job["epochs"]) or _num(job["config"].get("epochs")) or 1
    running = []
    if status in ACTIVE and len(folds):
        for k in folds.loc[folds["status"] == "running", "fold_index"]:
            mine = epochs[epochs["fold_index"] == k] if len(epochs) else epochs
            running.append((int(k), int(mine["epoch"].max()) if len(mine) else 0))
    share = (done + sum(min(e, total_epochs) / total_epochs for _k, e in running)) / n
    text = f"folds done {done} of {n}"
    if running:
        text += "; running: " + ", ".join(f"fold {k + 1} (epoch {e}/{total_epochs})" for k, e in running)
    elif status in ("cancelled", "failed", "cancelling"):
        text += f" · {status}: {done} fold(s) stored"
    return min(max(share, 0.0), 1.0), text


def _queue_table(table: pd.DataFrame) -> None:
    view = pd.DataFrame({
        "job": table["id"],
        "status": table["status"],
        "model": table["model"],
        "dataset": table["dataset"],
        "protocol": table["protocol"],
        "progress": table["progress"].fillna(0.0),
        "folds": [f"{_num(d)}/{_num(n)}" if _num(n) else "–" for d, n in zip(table["folds_done"], table["n_folds"])],
        "ETA": [_eta(e) if s == "running" else "–" for e, s in zip(table["eta_s"], table["status"])],
        "submitted": [widgets.when(t) for t in table["created"]],
        "run": table["run_id"].fillna(""),
        "message": table["message"],
    })
    targets = [results_link(k, r) for k, r in zip(table["kind"], view["run"])]  # a spotting run: Spotting page
    links = {"job": widgets.Link("jobs", [{reads.QP_JOB: j} for j in table["id"]]),
             "run": widgets.Link("run", [q if r else None for (_p, q), r in zip(targets, view["run"])],
                                 pages=[p for p, _q in targets])}
    widgets.link_table(view, links, key="jobs-table", hide_index=True, width="stretch", column_config={
        "job": st.column_config.TextColumn("job", help="click a job id to open its live view"),
        "run": st.column_config.TextColumn("run", help="click a run id to open the run's results"),
        "progress": st.column_config.ProgressColumn("progress", min_value=0.0, max_value=1.0, format="percent"),
        "status": st.column_config.TextColumn("status", width="medium"),  # "cancelling" is never cut off
        "protocol": st.column_config.TextColumn("protocol", help=glossary.tip("LOSO")),
        "folds": st.column_config.TextColumn("folds", help=glossary.tip("fold")),
    })


def results_link(kind: str | None, run_id: str) -> tuple[str, dict[str, str]]:
    """Where a job's run opens: (page url path, its query parameters); a spotting run on the Spotting page."""
    if kind == SPOT_KIND:
        return "spotting", {reads_spotting.QP_SPOT: run_id}
    return "run", {reads.QP_RUN: run_id}


K_FEEDBACK = "jobs_action_feedback"  # session state: (job id, "success" | "error", text) of the last Cancel/Resume
DONE_WORDS = {"cancel": "Cancel requested: the job stops after its current batch; finished folds are kept.",
              "resume": "Resumed: the job is queued again and continues from its stored folds."}


def _apply(action: str, job_id: str) -> None:
    """Cancel or resume a job: the buttons' callback, so the click acts even when the 2 s refresh reruns the
    page at the same moment (a callback runs before the rerun draws anything). The outcome is kept for the
    job view to show."""
    try:
        status = getattr(writes, action)(job_id)
    except MerError as exc:
        st.session_state[K_FEEDBACK] = (job_id, "error", str(exc))
        return
    st.session_state[K_FEEDBACK] = (job_id, "success", f"{DONE_WORDS[action]} (status: {status})")


def _actions(job: dict) -> None:
    c1, c2, c3 = st.columns([1, 1, 4])
    can_cancel = job["status"] in ("queued", *ACTIVE) and job["status"] != "cancelling"
    c1.button("Cancel", key=f"cancel_{job['id']}", disabled=not can_cancel, icon=":material/stop:",
              help="stop between batches; finished folds are kept", on_click=_apply, args=("cancel", job["id"]))
    can_resume = job["status"] in ("failed", "cancelled")
    c2.button("Resume", key=f"resume_{job['id']}", disabled=not can_resume, icon=":material/replay:",
              help="re-queue this job; it continues its run without retraining finished folds",
              on_click=_apply, args=("resume", job["id"]))
    said = st.session_state.get(K_FEEDBACK)
    if said and said[0] == job["id"]:
        (st.success if said[1] == "success" else st.error)(plain(said[2]), icon=":material/check_circle:"
                                                           if said[1] == "success" else ":material/error:")
    if job["run_id"]:
        page, params = results_link(job.get("kind"), job["run_id"])
        widgets.page_link(page, f"Results of run {plain(job['run_id'])}", icon=":material/analytics:",
                          query_params=params, where=c3)


def _job_view(job_id: str) -> str | None:
    """Render one job (status, progress, curves, per-subject results, log, actions); returns its status.

    Called by the live fragment every 2 s and, for a finished job, once; tests call it directly.
    """
    detail = reads.job_detail(job_id)
    if detail is None:
        st.warning(plain(f"Job {job_id!r} is not in the store."))
        return None
    job, run = detail["job"], detail["run"]
    status = job["status"]
    st.markdown(f"### Job {code(job['id'])} · :{STATUS_COLOUR.get(status, 'gray')}[{plain(status)}]")
    from mer_core.training.experiment import preset_label  # lazy: loads torch (about 2 s)

    st.caption(plain(f"{job['model']} ({preset_label(job['config'])}) on {job['dataset']} · {job['protocol']} · "
               f"{job['config'].get('epochs')} epochs · submitted {widgets.when(job['created'])} · started "
               f"{widgets.when(job['started'])} · finished {widgets.when(job['finished'])} · "
               f"attempt {job['attempts']}"
               + (f" · pid {job['pid']}" if job["pid"] and status in ACTIVE else "")))
    share, text = fold_progress(job, detail["folds"], detail["epochs"])
    if job["loss"] is not None and job["loss"] == job["loss"] and status in ACTIVE:
        text += f" · loss {job['loss']:.4f}"
    if status == "running" and job["eta_s"] is not None:
        text += f" · ETA {_eta(job['eta_s'])}"
    st.progress(share, text=text)
    n_folds = _num(job["n_folds"])
    if job["message"] and n_folds:
        st.caption(plain(job["message"]))
    _actions(job)
    if status == "failed" and job["error"]:
        lines = job["error"].strip().splitlines()
        st.error(plain(lines[-1] if lines else "failed") + (" — Resume continues from the stored folds."
                                                          if job["resumable"] else ""))
        with st.expander("traceback"):
            st.code(job["error"], language="python")

    if job.get("kind") == SPOT_KIND:  # no network trained, no classes: its results are on the Spotting page
        st.caption("A spotting job trains no network, so it has no training curves: its scores, per-video "
                   "timelines and per-subject table open with the results link above.")
    else:
        _training_panels(job_id, detail, run)
    with st.expander("log", expanded=status in ACTIVE or status == "failed"):
        st.code(detail["log"] or "(no output yet)", language="text")
    return status


def _training_panels(job_id: str, detail: dict, run: dict | None) -> None:
    """Training curves and per-subject results of an experiment's job, filled in as folds finish."""
    epochs_df, pred = detail["epochs"], detail["predictions"]
    left, right = st.columns([1.3, 1])
    with left:
        st.markdown("**Training curves** (per fold; validation dotted when early stopping)")
        if epochs_df.empty:
            st.caption("Curves appear after the first epoch.")
        else:
            st.plotly_chart(plots.training_curves(epochs_df), width="stretch", config=widgets.chart_config("jobs-1"), key=f"curves_{job_id}")
    with right:
        st.markdown("**Per-subject results** (filled in as folds finish)")
        if pred.empty or run is None:
            st.caption("No fold has finished yet.")
        else:
            per_subject = per_group(pred, run["classes"], "subject")
            chance = group_chance(pred, run["classes"])
            st.plotly_chart(plots.subject_bars(per_subject, "accuracy", chance=chance), width="stretch",
                            config=widgets.chart_config("jobs-2"), key=f"subj_{job_id}")
            st.caption(f"{len(per_subject)} subject(s) tested so far; the dark tick is chance, what guessing every "
                       f"class equally often scores (accuracy 1 / {len(run['classes'])}); pooled metrics on the "
                       "Run page.")


def _jobs_view(live: bool) -> None:
    """The whole page below the title (table, picker and job view move together), drawn as one fragment.

    ``live``: re-run every 2 s (some job is queued or running). When that changes, one full render switches
    mode. Both modes are the same fragment (same function, same place, so the same fragment id): a click on a
    button drawn by the live fragment that lands while the page turns static still reaches its callback
    (Streamlit drops a rerun of a fragment the session no longer holds; a Resume was lost so).
    """
    table = reads.jobs_table()
    active = table["status"].isin(("queued", *ACTIVE))
    st.caption(f"{active.sum()} active or queued, {len(table) - active.sum()} finished. Jobs run in worker "
               "processes: reloading or closing this page does not stop them.")
    _queue_table(table)
    ids = table["id"].tolist()

    def short_form(asked: str) -> str:  # ?job=j7 is enough when one job id starts with "j7-"
        prefixed = [j for j in ids if j.startswith(f"{asked}-")]
        return prefixed[0] if asked not in ids and len(prefixed) == 1 else asked

    labels = {r["id"]: f"{r['id']} · {r['status']} · {r['model']} on {r['dataset']}" for r in table.to_dict("records")}
    # The browser's combobox keeps the text it showed when a label changes under it (a resumed job still read
    # "cancelled"): the key follows the linked job's status, so the picker is redrawn from ?job= when it moves.
    status = dict(zip(ids, table["status"])).get(short_form(str(st.query_params.get(reads.QP_JOB, ""))), "")
    chosen = widgets.pick_id("job", ids, param=reads.QP_JOB, kind="Job", format_func=labels.get,
                             key=f"{K_SELECT}-{status}", resolve=short_form)
    if chosen is not None:
        _job_view(chosen)
    if bool(active.any()) != live:
        st.rerun(scope="app")  # one full render in the other mode


def render() -> None:
    st.title("Jobs")
    table = reads.jobs_table()
    if table.empty:
        asked = st.query_params.get(reads.QP_JOB)
        if asked:  # a deep link to a job: say it is unknown (the address is left as given)
            st.error(plain(f"Job {asked!r} is not in the store, which holds no job yet."),
                     icon=":material/link_off:")
        st.info("No jobs yet. Queue one on the New experiment page or with `mer submit --dataset synthetic`.")
        return
    live = bool(table["status"].isin(("queued", *ACTIVE)).any())
    st.fragment(_jobs_view, run_every=2 if live else None)(live)
