"""Explain page, Faithfulness tab: the run-level explanation report (layout only).

Does each method's map mark what the model uses (deletion, insertion, ROAD,
infidelity), would it look the same for a model that learned nothing
(randomisation check), does it agree with the model's own attention, and on
synthetic runs does it point at the skin that moved. The report is computed
by a background job (progress shown here) and cached in the run folder.
"""
from __future__ import annotations

import json
from typing import Any

import pandas as pd
import streamlit as st

from dashboard import reads, reads_models, writes
from dashboard.widgets import plain
from mer_core.errors import MerError
from mer_core.explain.report import MEASURES, SANITY_READING, chance_verdict

K_METHODS = "faith_methods"
K_SAMPLES = "faith_samples"
K_STEPS = "faith_steps"
K_WATCH = "faith_watch_job"
K_ESTIMATE = "faith_estimate"  # {settings JSON: the pre-submission estimate}
ALL_METHODS = ("saliency", "gradcam", "attention", "integrated_gradients", "smoothgrad", "occlusion")
FAST = ("saliency", "gradcam", "attention")


def _settings(ov: dict[str, Any], labels: dict[str, str]) -> dict[str, Any]:
    options = [m for m in ALL_METHODS if m != "attention" or ov["has_attention"]]
    c1, c2, c3 = st.columns([2.6, 1, 1])
    methods = c1.multiselect("methods", options, default=[m for m in FAST if m in options], key=K_METHODS,
                             format_func=labels.get,
                             help="Saliency, Grad-CAM and attention are fast; Integrated Gradients, SmoothGrad and "
                                  "Occlusion take several times longer per clip")
    n_tested = int(ov["predictions"]["sample_id"].nunique()) if len(ov["predictions"]) else 0
    n = int(c2.number_input("clips (0 = all)", 0, max(n_tested, 1), min(24, n_tested), key=K_SAMPLES,
                            help=f"evenly spread over the run's {n_tested} tested clips"))
    steps = int(c3.number_input("deletion steps", 2, 50, 10, key=K_STEPS))
    return {"methods": list(methods), "max_samples": n, "steps": steps}


def _job_status(run_id: str) -> None:
    """Progress of this run's newest report job, refreshed every 2 s while it runs."""
    @st.fragment(run_every=2.0)
    def live() -> None:
        job = reads.explain_report_job(run_id)
        if job is None:
            return
        if job["status"] in ("queued", "running", "cancelling"):
            st.session_state[K_WATCH] = job["id"]
            st.progress(float(job["progress"] or 0), text=plain(f"report job {job['id']}: {job['status']} · "
                                                                f"{job['message'] or ''}"))
            for line in reads_models.report_job_estimates(job["id"]):
                st.caption(plain(f"Estimate: {line}"))
        elif job["status"] == "done" and st.session_state.get(K_WATCH) == job["id"]:
            st.session_state.pop(K_WATCH)
            st.rerun()  # the report is cached now: show it
        elif job["status"] == "failed":
            st.error(plain(f"report job {job['id']} failed: {job['message'] or job['error']}"))
    live()


def _measure_table(report: dict[str, Any], labels: dict[str, str]) -> pd.DataFrame:
    rows = []
    for method, s in report["summary"].items():
        for name, iv in s["measures"].items():
            if iv.get("mean") is None:
                continue
            verdict = chance_verdict(name, iv)
            rows.append({"method": labels.get(method, method), "measure": MEASURES[name][0],
                         "mean": iv["mean"], "95% low": iv["low"], "95% high": iv["high"], "chance": iv.get("chance"),
                         "better": MEASURES[name][1],
                         "against chance": {"above": "better", "below": "WORSE", "at": "same"}.get(verdict, ""),
                         "clips": iv["n"]})
    return pd.DataFrame(rows)


def _sanity_table(report: dict[str, Any], labels: dict[str, str]) -> pd.DataFrame:
    rows = []
    for method, s in report["summary"].items():
        san = s.get("sanity")
        if san:
            rows.append({"method": labels.get(method, method), "rank correlation": san["spearman"],
                         "SSIM": san["ssim"], "clips": san["n"], "failed on": san["flagged"],
                         "verdict": "fails: map ignores the weights" if san["flagged"] else "passes"})
    return pd.DataFrame(rows)


def _readings() -> None:
    with st.expander("what the measures mean"):
        for label, better, _, reading in MEASURES.values():
            st.markdown(f"**{plain(label)}** ({better} is better): {plain(reading)}")
        st.markdown(f"**randomisation check**: {plain(SANITY_READING.format(threshold=0.5))}")
        st.caption("Intervals: 95% bootstrap over clips. Every clip is explained by the fold model that never saw "
                   "it, for the class that model predicted.")


def show_report(report: dict[str, Any], labels: dict[str, str]) -> None:
    st.caption(plain(f"{len(report['sample_ids'])} clips · steps {report['config']['steps']} · computed in "
                     f"{report['seconds']:.0f} s"))
    for sentence in report["sentences"]:
        st.warning(plain(sentence), icon=":material/report:")
    if not report["sentences"]:
        st.success("Every method beats chance on every measure with a chance level, and none fails the "
                   "randomisation check.")
    st.dataframe(_measure_table(report, labels), hide_index=True, width="stretch", column_config={
        k: st.column_config.NumberColumn(format="%.3f") for k in ("mean", "95% low", "95% high", "chance")})
    sanity = _sanity_table(report, labels)
    if not sanity.empty:
        st.markdown("**Randomisation check** (the map of a fully randomised model against the original)")
        st.dataframe(sanity, hide_index=True, width="stretch", column_config={
            k: st.column_config.NumberColumn(format="%.2f") for k in ("rank correlation", "SSIM")})
    _readings()


def _estimate(run_id: str, settings: dict[str, Any]) -> None:
    """A pre-submission estimate on request: a committed benchmark figure or one clip measured now."""
    key = json.dumps(settings, sort_keys=True)
    known = st.session_state.setdefault(K_ESTIMATE, {})
    if key not in known and st.button("Estimate how long it takes",
                                      help="uses a committed benchmark figure when one matches these settings, "
                                           "else measures one clip now (seconds to a minute)"):
        try:
            known[key] = reads_models.report_estimate(run_id, key)["text"]
        except MerError as exc:
            known[key] = f"no estimate: {exc}"
    if key in known:
        st.info(plain(f"Estimate: {known[key]}"), icon=":material/timer:")


def section(run_id: str, ov: dict[str, Any], labels: dict[str, str]) -> None:
    """The Faithfulness tab of the Explain page."""
    if not ov["has_checkpoints"]:
        st.error(plain(f"Run {run_id} has no fold checkpoints, so its maps cannot be computed."))
        return
    settings = _settings(ov, labels)
    if not settings["methods"]:
        st.info("Choose at least one method.")
        return
    try:
        report = reads.explain_report(run_id, json.dumps(settings, sort_keys=True))
    except MerError as exc:
        st.error(plain(exc))
        return
    if report is not None:
        show_report(report, labels)
        return
    st.caption("Not computed yet for this choice. The report runs as a background job (see Jobs); you can leave "
               "this page and come back. Integrated Gradients, SmoothGrad, Occlusion and the randomisation check "
               "take longer; the job times them on the first clip and says how long before the other clips.")
    _estimate(run_id, settings)
    if st.button("Compute the report in the background", type="primary"):
        try:
            job = writes.submit_explain_report(run_id, settings)
            st.toast(plain(f"queued report job {job}"))
        except MerError as exc:
            st.error(plain(exc))
    _job_status(run_id)
