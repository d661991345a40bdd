"""Study: which arm is better, by how much, and how sure we can be.

The study lives in the URL (``?study=NAME``). The table gives mean +- sd over
seeds of pooled UF1/UAR per arm (per part for composite runs), the
honest-vs-oracle gap and a subject-level bootstrap interval; the paired
comparison over subjects (seed-averaged per-subject UF1) ends in one verdict
sentence. Cells that failed are named and left out, and their arm is flagged.
A spotting study (arms are spotters) shows F1 of all types, micro and macro
beside chance, the same paired comparison on per-subject F1, and no learning
curves (a spotter has no epochs).
"""
from __future__ import annotations

import pandas as pd
import streamlit as st

from dashboard import glossary, plots, reads, study_plots, widgets, writes
from dashboard.reads_spotting import QP_SPOT
from dashboard.widgets import plain
from mer_core.errors import MerError
from mer_core.evaluation.study_table import paper_table

K_METRIC = "study_curve_metric"
K_CANCEL = "study_cancel"
K_RESUME = "study_resume"


def render() -> None:
    st.title("Study")
    studies = reads.study_cells()
    if studies.empty:
        st.info("No study yet. Create one on the New study page or with `mer study submit study.toml`.")
        return
    name = widgets.pick_id("study", studies["name"].tolist(), param=reads.QP_STUDY, kind="Study",
                           format_func=str, key="study_pick")
    if name is None:
        return
    row = studies.set_index("name").loc[name]
    synthetic = str(row["dataset"]).startswith("synthetic")
    what = "synthetic: these figures say nothing about real faces" if synthetic else "your copy of a licensed dataset"
    st.caption(plain(f"Data: {row['dataset']} ({what}) · protocol {row['protocol']} · {int(row['cells'])} cells "
                     "(arms x seeds), every arm on the same folds."))
    cells = reads.study_cells(name)
    cells_section(name, cells)
    if not (cells["run_status"] == "done").any():
        st.info("No cell has finished yet; the statistics appear with the first finished cell.")
        return
    try:
        report = reads.study_report(name)
    except MerError as exc:
        st.error(plain(exc))
        return
    table_section(name, report)
    comparison_section(report)
    if report.kind == "spotting":
        seeds_section(report)
    else:
        curves_section(report)


def cells_section(name: str, cells: pd.DataFrame) -> None:
    done = int((cells["run_status"] == "done").sum())
    st.progress(done / max(len(cells), 1), text=f"{done} of {len(cells)} cells done")
    left, right, _ = st.columns([1, 1, 4])
    for col, action, key in ((left, "cancel", K_CANCEL), (right, "resume", K_RESUME)):
        if col.button(f"{action.capitalize()} study", key=key):
            try:
                counts = writes.study_action(action, name)
                st.toast(plain(", ".join(f"{n} {k}" for k, n in counts.items()) or "nothing to do"))
            except MerError as exc:
                st.error(plain(exc))
    spotting = bool((cells["kind"] == "spotting").any())
    with st.expander("cells", expanded=done < len(cells)):
        widgets.link_table(cells_display(cells), {"run": cell_links(cells)}, key="study_cells", hide_index=True,
                           width="stretch")
        if done < len(cells):
            what = "F1 is" if spotting else "UF1 and UAR are"
            st.caption(f"{what} shown for finished cells only: a cancelled or failed cell's figures over "
                       "the folds it finished would be another, smaller test set. Resume study continues it.")
        if spotting:
            st.caption("Each cell is a spotting run (open it on the Spotting page by its run id). F1 is pooled over "
                       "all videos, one-to-one at the run's IoU; the motion-curve spotter uses no seed, so its "
                       "cells repeat one run.")


def cell_links(cells: pd.DataFrame) -> widgets.Link:
    """Where a click on a cell's run id goes: a recognition run's Run page, a spotting run's Spotting page."""
    params, pages = [], []
    for run_id, kind in zip(cells["run_id"], cells["kind"]):
        spotting = str(kind) == "spotting"
        missing = not isinstance(run_id, str) or not run_id  # '' or NaN: no run stored for the cell
        params.append(None if missing else {QP_SPOT if spotting else reads.QP_RUN: run_id})
        pages.append("spotting" if spotting else None)
    return widgets.Link("run", params, pages)


def cells_display(cells: pd.DataFrame) -> pd.DataFrame:
    """The cells as text: folds as done/total, figures to 3 decimals, '–' where there is nothing (not 'None')."""
    def fig(v) -> str:
        return "–" if v is None or v != v else f"{float(v):.3f}"

    def text(v) -> str:
        return "–" if v is None or v != v or str(v) == "" else str(v)

    figures = ({"F1": "f1", "micro F1": "micro_f1", "macro F1": "macro_f1"} if (cells["kind"] == "spotting").any()
               else {"UF1": "uf1", "UAR": "uar"})
    return pd.DataFrame({
        "arm": cells["arm"], "seed": cells["seed"].astype(int), "job": cells["job_id"].map(text),
        "job status": cells["job_status"].map(text), "run status": cells["run_status"].map(text),
        "folds": [f"{int(d)}/{int(n)}" if n else "–" for d, n in zip(cells["folds_done"], cells["n_folds"])],
        **{label: cells[col].map(fig) for label, col in figures.items()}, "run": cells["run_id"].map(text),
        "error": cells["error"].map(lambda e: text(str(e).strip().splitlines()[-1] if str(e).strip() else "")),
    })


def table_section(name: str, report) -> None:
    st.subheader("Per arm (mean ± sd over seeds)")
    for flag in report.flags:
        st.warning(plain(f"Flagged: {flag}"), icon=":material/warning:")
    st.markdown(paper_table(report, "md").replace("†", "(flagged)"))
    for note in report.notes:
        st.info(plain(note), icon=":material/info:")
    if report.kind == "spotting":
        st.caption("Chance F1: each run's spotted intervals (same videos, types and lengths) placed at random, "
                   "scored alike, as on the Spotting page; a spotter must beat it to have found anything.")
    else:
        _intervals(report)
    cols = st.columns(3)
    for col, fmt, mime in zip(cols, ("csv", "md", "latex"), ("text/csv", "text/markdown", "text/x-tex")):
        col.download_button(f"paper table ({fmt})", paper_table(report, fmt),
                            file_name=f"{name}.{ 'tex' if fmt == 'latex' else fmt}", mime=mime, key=f"dl_{fmt}")


def _intervals(report) -> None:
    t = report.table
    ci = pd.DataFrame({"arm": t["arm"], "complete seeds": t["complete"], "UF1 95% CI (subject bootstrap)":
                       [f"[{lo:.3f}, {hi:.3f}]" for lo, hi in zip(t["uf1_low"], t["uf1_high"])],
                       "oracle gap UAR": t["oracle_gap_uar"]})
    st.dataframe(ci, hide_index=True, width="stretch",
                 column_config={"oracle gap UAR": st.column_config.NumberColumn(format="%+.3f", help=glossary.tip("UAR")),
                                "UF1 95% CI (subject bootstrap)": st.column_config.TextColumn(help=glossary.tip("UF1"))})
    if not report.parts.empty:
        st.markdown("**Per part**")
        st.dataframe(report.parts, hide_index=True, width="stretch")


def comparison_section(report) -> None:
    st.subheader("Paired comparison over subjects")
    test = report.test
    text = plain(test["verdict"])
    (st.success if test.get("p_value", 1) < report.alpha else st.info)(text, icon=":material/balance:")
    if test["kind"] == "friedman":
        st.plotly_chart(study_plots.cd_figure(test["ranks"], test["cd"], test["cliques"]), width="stretch", config=widgets.chart_config("study-1"))
        st.caption(f"Critical-difference diagram: average rank over {test['n_subjects']} subjects (1 = best). "
                   "Arms joined by a bar are not told apart by the Nemenyi test; two arms whose ranks differ "
                   f"by more than CD = {test['cd']:.2f} are.")
        st.dataframe(test["posthoc"], width="stretch")
        st.caption("Nemenyi post-hoc p-values, every pair of arms.")
    if report.kind == "spotting":
        st.caption("Each subject's spotting F1 (all types, as the run's per-subject table on the Spotting page "
                   "stores it) is averaged over the arm's complete seeds; a subject with neither a true nor a "
                   "spotted interval has no F1 and is left out. The tests pair arms on the same subjects. Two arms: "
                   "the paired sign-flip permutation test of the mean per-subject difference.")
        return
    st.caption("Each subject's UF1 (averaging the classes it shows or is predicted as) is averaged over the arm's "
               "complete seeds; the tests pair arms on the same subjects. Two arms: the paired sign-flip "
               "permutation test of the mean per-subject difference that Compare runs on two runs (one seed per "
               "arm gives Compare's p-value).")


def seeds_section(report) -> None:
    st.subheader("Seeds")
    st.plotly_chart(study_plots.seed_spread(report.cells, report.arms, "f1"), width="stretch",
                    config=widgets.chart_config("study-3"))
    st.caption("Each point is one seed's F1 (all types, pooled over videos); the bar is the arm's mean. A "
               "deterministic spotter's points sit on one another.")


def curves_section(report) -> None:
    left, right = st.columns(2)
    with left:
        st.subheader("Learning curves")
        metrics = list(dict.fromkeys(report.curves["metric"]))
        if metrics:
            metric = st.radio("curve", metrics, horizontal=True, key=K_METRIC,
                              format_func=lambda m: plots.CURVE_NAMES.get(m, m.replace("_", " ")))
            st.plotly_chart(study_plots.band_curves(report.curves, metric, report.arms), width="stretch", config=widgets.chart_config("study-2"))
            st.caption("Mean over seeds of each cell's fold-averaged curve, with a ± sd band.")
    with right:
        st.subheader("Seeds")
        st.plotly_chart(study_plots.seed_spread(report.cells, report.arms), width="stretch", config=widgets.chart_config("study-3"))
        st.caption("Each point is one seed's pooled UF1; the bar is the arm's mean. One far point means one "
                   "lucky (or unlucky) seed carries the arm.")
