"""Run: one stored run's pooled metrics, confusion matrix and per-subject scores.

The run id lives in the URL (``?run=ID``) so a reload or a shared link shows
the same run.
"""
from __future__ import annotations

import streamlit as st

from dashboard import data, plots
from mer_core.evaluation.metrics import per_group


def pick_run() -> str | None:
    runs = data.runs_table()
    if runs.empty:
        st.info("No runs stored yet. Start one with `mer loso --dataset synthetic --model baseline`.")
        return None
    ids = runs["id"].tolist()
    current = st.query_params.get(data.QP_RUN)
    index = ids.index(current) if current in ids else 0
    labels = {rid: data.run_label(row) for rid, row in zip(ids, runs.to_dict("records"))}
    chosen = st.selectbox("run", ids, index=index, format_func=labels.get)
    if chosen != current:
        st.query_params[data.QP_RUN] = chosen
    if current and current not in ids:
        st.warning(f"Run {current!r} is not in the store; showing the newest run instead.")
    return chosen


def render() -> None:
    st.title("Run")
    run_id = pick_run()
    if run_id is None:
        return
    bundle, error = data.try_run_bundle(run_id)
    if bundle is None:
        st.error(error)
        return
    run, pred = bundle["run"], bundle["predictions"]
    classes = run["classes"]
    st.caption(f"{run['model']} ({run['preset']}) on {run['dataset']} · {run['protocol']} · "
               f"{run['n_samples']} clips · {run['n_folds']} folds · status **{run['status']}**")
    for note in run["notes"]:
        st.caption(f"ⓘ {note}")
    summary = run["summary"]
    pooled = summary.get("pooled")
    if not pooled:
        st.info("No fold has finished yet; results appear here as folds complete.")
        return
    c1, c2, c3, c4 = st.columns(4)
    c1.metric("UF1 (pooled)", f"{pooled['uf1']:.3f}")
    c2.metric("UAR (pooled)", f"{pooled['uar']:.3f}")
    c3.metric("accuracy", f"{pooled['accuracy']:.3f}")
    c4.metric("clips tested", pooled["n"])
    fa = summary.get("fold_averaged", {})
    st.caption(f"Fold-averaged variant (mean of per-fold scores; not comparable with pooled): "
               f"UF1 {fa.get('uf1', float('nan')):.3f}, UAR {fa.get('uar', float('nan')):.3f}")
    left, right = st.columns([1, 1.4])
    with left:
        st.subheader("Confusion matrix")
        normalise = st.toggle("row-normalised", value=False)
        st.plotly_chart(plots.confusion_figure(pooled["confusion"], classes, normalise=normalise), width="stretch")
    with right:
        st.subheader("Per-subject scores")
        per_subject = per_group(pred, classes, "subject")
        metric = st.radio("metric", ["uf1", "accuracy", "uar"], horizontal=True, format_func=str.upper)
        st.plotly_chart(plots.subject_bars(per_subject, metric), width="stretch")
        st.caption("Each bar is one held-out subject; n = clips of that subject. A subject's UF1 "
                   "averages only the classes it shows.")
