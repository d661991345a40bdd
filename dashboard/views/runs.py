"""Runs: every stored run, newest first, each linking to its Run page.

Search by name, id, model, dataset, tag or note; filter by dataset, model,
status, tag and date. One chosen run can be renamed, tagged, annotated,
cloned into the New experiment form (``new?clone=RUN``) or deleted with its
files (after a confirmation; a running run cannot be deleted).
"""
from __future__ import annotations

import datetime as dt
import time

import pandas as pd
import streamlit as st

from dashboard import glossary, reads, widgets, writes
from dashboard.widgets import plain
from mer_core.errors import MerError

K_SEARCH = "runs_search"
K_TAGS = "runs_tag_filter"
K_DATES = "runs_dates"
K_PICK = "runs_manage_pick"
K_NAME = "runs_edit_name"
K_TAG_EDIT = "runs_edit_tags"
K_NOTE = "runs_edit_note"
K_SAVE = "runs_edit_save"
K_DELETE = "runs_delete"
K_CONFIRM = "runs_delete_confirm"
K_ASKED = "runs_delete_asked"


def search(runs: pd.DataFrame, text: str) -> pd.DataFrame:
    """Runs whose name, id, model, dataset, tags or note contain every word of ``text`` (any case)."""
    words = text.lower().split()
    if not words:
        return runs
    hay = (runs["name"].fillna("") + " " + runs["id"] + " " + runs["model"] + " " + runs["dataset"] + " "
           + runs["tags"].map(lambda t: " ".join(t or [])) + " " + runs["note"].fillna("")).str.lower()
    keep = pd.Series(True, index=runs.index)
    for w in words:
        keep &= hay.str.contains(w, regex=False)
    return runs[keep]


def filter_runs(runs: pd.DataFrame) -> pd.DataFrame:
    text = st.text_input("search", key=K_SEARCH, placeholder="name, id, model, dataset, tag or note")
    view = widgets.filters(search(runs, text), [(c, c, sorted(runs[c].unique())) for c in ("dataset", "model", "status")],
                           key="runs_filter")
    left, right = st.columns(2)
    all_tags = sorted({t for tags in runs["tags"] for t in (tags or [])})
    tags = left.multiselect("tags (all of)", all_tags, key=K_TAGS)
    if tags:
        view = view[view["tags"].map(lambda have: set(tags) <= set(have or []))]
    days = [dt.date.fromtimestamp(t) for t in runs["created"]]
    dates = right.date_input("created between", value=(min(days), max(days)), key=K_DATES)
    if isinstance(dates, (tuple, list)) and len(dates) == 2:
        created = view["created"].map(dt.date.fromtimestamp)
        view = view[(created >= dates[0]) & (created <= dates[1])]
    return view


def render() -> None:
    st.title("Runs")
    runs = reads.runs_table()
    if runs.empty:
        st.info("No runs stored yet. Start one from the command line: "
                "`mer run --dataset synthetic --model baseline`.")
        return
    view = filter_runs(runs)
    table = pd.DataFrame({
        "run": view["id"],
        "name": view["name"].fillna(""),
        "model": view["model"],
        "preset": view["id"].map(reads.preset_labels(tuple(view["id"]))).fillna(view["preset"] + " preset"),
        "dataset": view["dataset"],
        "protocol": view["protocol"],
        "status": view["status"],
        "folds": [f"{d}/{n}" for d, n in zip(view["folds_done"], view["n_folds"])],
        "UF1": view["uf1"],
        "UAR": view["uar"],
        "accuracy": view["accuracy"],
        "date": [time.strftime("%Y-%m-%d %H:%M", time.localtime(t)) for t in view["created"]],
        "tags": [", ".join(t or []) for t in view["tags"]],
        "note": view["note"].fillna(""),
    })
    event = widgets.link_table(
        table,
        {"run": widgets.Link("run", [{reads.QP_RUN: rid} for rid in view["id"]])},
        key="runs-table",
        hide_index=True,
        width="stretch",
        selection_mode="multi-row",
        column_config={
            "run": st.column_config.TextColumn("run", help="click a run id to open its Run page"),
            "UF1": st.column_config.ProgressColumn("UF1 (pooled)", min_value=0.0, max_value=1.0, format="%.3f",
                                                   help=glossary.tip("UF1")),
            "UAR": st.column_config.NumberColumn("UAR (pooled)", format="%.3f", help=glossary.tip("UAR")),
            "accuracy": st.column_config.NumberColumn(format="%.3f"),
        },
    )
    st.caption("UF1 and UAR are computed on predictions pooled over all folds (MEGC2019). "
               f"{len(view)} of {len(runs)} runs shown. Click a run id to open it; tick two or more rows to "
               "compare them.")
    chosen_ids = [view["id"].iloc[i] for i in event.selection.rows]
    if len(chosen_ids) >= 2:
        widgets.page_link("compare", f"Compare the {len(chosen_ids)} selected runs", icon=":material/compare_arrows:",
                          query_params={reads.QP_RUNS: ",".join(chosen_ids)})
    if not view.empty:
        manage_section(view, chosen_ids[0] if len(chosen_ids) == 1 else None)


def manage_section(view: pd.DataFrame, ticked: str | None) -> None:
    st.subheader("Manage a run")
    labels = {r["id"]: widgets.run_label(r) for r in view.to_dict("records")}
    ids = list(view["id"])
    rid = st.selectbox("run", ids, index=ids.index(ticked) if ticked in ids else 0, format_func=labels.get,
                       key=K_PICK)
    row = view.set_index("id").loc[rid]
    with st.form(f"edit_{rid}"):
        name = st.text_input("name", value=row["name"] or "", key=f"{K_NAME}_{rid}")
        tags = st.text_input("tags (comma-separated)", value=", ".join(row["tags"] or []), key=f"{K_TAG_EDIT}_{rid}")
        note = st.text_area("note", value=row["note"] or "", key=f"{K_NOTE}_{rid}", height=80)
        if st.form_submit_button("Save", key=K_SAVE):
            try:
                writes.edit_run(rid, name=name, tags=tags.split(","), note=note)
                st.toast("saved")
                st.rerun()
            except MerError as exc:
                st.error(plain(exc))
    widgets.page_link("new", "Clone into the New experiment form", icon=":material/content_copy:",
                      query_params={reads.QP_CLONE: rid})
    delete_section(rid, str(row["status"]))


def delete_section(rid: str, status: str) -> None:
    if status == "running":
        st.caption("A running run cannot be deleted; cancel its job first.")
        return
    if st.button("Delete this run…", key=K_DELETE):
        st.session_state[K_ASKED] = rid
    if st.session_state.get(K_ASKED) != rid:
        return
    st.warning(plain(f"Delete run {rid} with its predictions, checkpoints and files? This cannot be undone."),
               icon=":material/delete:")
    if st.button("Yes, delete it", type="primary", key=K_CONFIRM):
        try:
            writes.delete_run(rid)
            st.session_state.pop(K_ASKED, None)
            st.success(plain(f"Run {rid} deleted."))
        except MerError as exc:
            st.error(plain(exc))
