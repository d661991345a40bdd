"""Runs: every stored run, newest first, each linking to its Run page."""
from __future__ import annotations

import time

import pandas as pd
import streamlit as st

from dashboard import reads, widgets


def render() -> None:
    st.title("Runs")
    runs = reads.runs_table()
    if runs.empty:
        st.info("No runs stored yet. Start one from the command line: "
                "`mer loso --dataset synthetic --model baseline`.")
        return
    view = widgets.filters(runs, [(c, c, sorted(runs[c].unique())) for c in ("dataset", "model", "status")],
                           key="runs_filter")
    table = pd.DataFrame({
        "run": [f"run?{reads.QP_RUN}={widgets.url_value(rid)}" for rid in view["id"]],
        "model": view["model"],
        "dataset": view["dataset"],
        "protocol": view["protocol"],
        "status": view["status"],
        "folds": [f"{d}/{n}" for d, n in zip(view["folds_done"], view["n_folds"])],
        "UF1": view["uf1"],
        "UAR": view["uar"],
        "accuracy": view["accuracy"],
        "date": [time.strftime("%Y-%m-%d %H:%M", time.localtime(t)) for t in view["created"]],
        "preset": view["preset"],
        "name": view["name"],
    })
    event = st.dataframe(
        table,
        hide_index=True,
        width="stretch",
        on_select="rerun",
        selection_mode="multi-row",
        key="runs-table",
        column_config={
            "run": st.column_config.LinkColumn("run", display_text=r"run\?run=(.*)", help="open the run"),
            "UF1": st.column_config.ProgressColumn("UF1 (pooled)", min_value=0.0, max_value=1.0, format="%.3f"),
            "UAR": st.column_config.NumberColumn("UAR (pooled)", format="%.3f"),
            "accuracy": st.column_config.NumberColumn(format="%.3f"),
        },
    )
    st.caption("UF1 and UAR are computed on predictions pooled over all folds (MEGC2019). "
               f"{len(view)} of {len(runs)} runs shown. Tick two or more rows to compare them.")
    chosen_ids = [view["id"].iloc[i] for i in event.selection.rows]
    if len(chosen_ids) >= 2:
        from dashboard.nav import page

        st.page_link(page("compare"), label=f"Compare the {len(chosen_ids)} selected runs",
                     icon=":material/compare_arrows:", query_params={reads.QP_RUNS: ",".join(chosen_ids)})
