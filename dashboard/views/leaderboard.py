"""Leaderboard: published MEGC2019 composite results beside runs measured here.

Two kinds of number, never blended: "reported in paper" (as published, some
with the test subject used to pick epochs) and "measured here, honest
protocol" (this project's runs on the composite protocol; the test subject is
never used for selection). Runs on synthetic data are listed apart: they are
not comparable with anything published.
"""
from __future__ import annotations

import pandas as pd
import streamlit as st

from dashboard import glossary, plots, reads, reads_models, widgets
from dashboard.widgets import plain
from mer_core.datasets.synthetic import data_label
from mer_core.evaluation.leaderboard import (
    MEASURED,
    PAPER_COLUMNS,
    PARTS,
    REPORTED,
    is_composite,
    leaderboard,
    measured_rows,
)

FINISHED = ("done", "partial")
HEADINGS = {f"{prefix}_{m}": f"{heading} {m.upper()}" for prefix, heading, _ in PARTS for m in ("uf1", "uar")}
PRETRAIN_HELP = ("Measured runs: the macro data set the weights were pre-trained on before every fold (transfer "
                 "learning); — = trained from scratch. Published rows: not recorded here, see the paper.")


RUN_HELP = "click a run id to open its Run page"
FLOOR = " · the floor"  # the linear model: what every method must beat


def _run_links(run_ids) -> widgets.Link:
    return widgets.Link("run", [{reads.QP_RUN: r} if r else None for r in run_ids])


def _board_table(df: pd.DataFrame) -> pd.DataFrame:
    out = df.rename(columns=HEADINGS)
    out["run"] = [r if r else "" for r in df.get("run", pd.Series([""] * len(df)))]
    out["pre-training"] = df.get("pre-training", pd.Series([reads_models.NO_PRETRAIN] * len(df), index=df.index))
    cols = ["method", "year", "source", "pre-training", *HEADINGS.values(), "note", "run"]
    return out[cols]


def _column_config() -> dict:
    config = {h: st.column_config.NumberColumn(h, format="%.4f", help=glossary.tip(h.split()[-1]))
              for h in HEADINGS.values()}
    config["Full UF1"] = st.column_config.ProgressColumn("Full UF1", min_value=0.0, max_value=1.0, format="%.4f",
                                                         help=glossary.tip("UF1", "LOSO"))
    config["run"] = st.column_config.TextColumn("run", help=RUN_HELP)
    config["year"] = st.column_config.NumberColumn("year", format="%d")
    config["note"] = st.column_config.TextColumn("notes", width="large")
    config["method"] = st.column_config.TextColumn("method", width="medium", pinned=True)
    config["source"] = st.column_config.TextColumn("source", width="medium")
    config["pre-training"] = st.column_config.TextColumn("pre-training", help=PRETRAIN_HELP)
    return config


def render() -> None:
    st.title("Leaderboard · MEGC2019 composite")
    st.markdown(
        "Composite protocol: 442 clips of 68 subjects (SMIC-HS, CASME II, SAMM), 3 classes, leave-one-subject-out, "
        "UF1/UAR on predictions pooled over all folds. **Reported in paper** rows are copied from publications; "
        f"**{MEASURED}** rows are runs stored here, where no epoch is ever chosen on the test subject.")
    try:
        published = reads.published_results()
    except Exception as exc:  # a broken shipped CSV should not hide the measured runs
        st.error(f"Cannot read the published results: {plain(exc)}")
        published = pd.DataFrame(columns=["method", "year", *PAPER_COLUMNS, "note", "source"])
    runs = reads.runs_table()
    finished = runs[runs["status"].isin(FINISHED) & runs["uf1"].notna()] if not runs.empty else runs
    composite_ids = [r["id"] for r in finished.to_dict("records") if is_composite(r)]
    measured = measured_rows(reads.run_details(tuple(composite_ids))) if composite_ids else measured_rows([])
    if len(measured):  # one bar / row per run even when a model ran twice
        dup = measured["method"].duplicated(keep=False)
        measured.loc[dup, "method"] = measured.loc[dup, "method"] + " · " + measured.loc[dup, "run"]
        presets = reads.preset_labels(tuple(measured["run"]))
        modified = measured["run"].map(lambda r: presets.get(r, "")).str.contains("modified")
        measured.loc[modified, "method"] = measured.loc[modified, "method"] + " (" + measured.loc[modified, "run"].map(
            presets) + ")"
    board = leaderboard(published, measured)
    labels = reads_models.pretrain_labels(tuple(composite_ids))
    board["pre-training"] = [labels.get(r, reads_models.NO_PRETRAIN) for r in board["run"]]
    only = st.radio("show", ["all", REPORTED, MEASURED], horizontal=True, key="leaderboard_source")
    view = board if only == "all" else board[board["source"] == only]
    table = _board_table(view)
    widgets.link_table(table, {"run": _run_links(table["run"])}, key="leaderboard-board", hide_index=True,
                       width="stretch", column_config=_column_config(), height=min(40 + 35 * len(view), 640))
    if measured.empty:
        st.info("No run on the MEGC2019 composite protocol is stored yet, so only published figures are listed. "
                "Run one with `mer run --dataset megc2019 --protocol composite --model mfdan` (needs the three "
                "datasets under licence).")
    noted = view[(view["source"] == REPORTED) & (view["note"].astype(str).str.len() > 0)]
    if len(noted):
        st.markdown("**Notes on the published rows**\n" + "\n".join(
            f"- **{plain(r.method)}** ({plain(r.year)}): {plain(r.note)}" for r in noted.itertuples()))
    st.caption("Known caveat: code that keeps each fold's best epoch *on that fold's test subject* reports "
               "0.1–0.2 UF1 more than an honest re-run (see the notes column). Measured runs show their own "
               "test-selected ('oracle') figure in the notes, as a diagnostic of that gap.")
    st.plotly_chart(plots.leaderboard_bars(view), width="stretch", config=widgets.chart_config("leaderboard-1"))
    st.caption("Grey: reported in a paper. Blue ★: measured here under the honest protocol.")
    synthetic_section(finished)


def synthetic_section(finished: pd.DataFrame) -> None:
    if finished.empty:
        return
    synthetic = finished[finished["dataset"].astype(str).str.startswith("synthetic")]
    if synthetic.empty:
        return
    labels = reads_models.pretrain_labels(tuple(synthetic["id"]))
    st.subheader("Not comparable: synthetic data")
    st.warning("These runs are on the embedded synthetic set, not on real micro-expressions. Their scores say "
               "whether a pipeline works end to end; they cannot be ranked against published results.",
               icon=":material/science:")
    ids = tuple(synthetic["id"])
    presets = reads.preset_labels(ids)
    details = {r["id"]: r["config"] for r in reads.run_details(ids)}
    epochs = {r: c.get("epochs") for r, c in details.items()}
    data = {r: data_label(c.get("dataset", ""), c.get("dataset_options")) for r, c in details.items()}
    intervals = {r: reads.run_intervals(r).get("uf1") for r in ids}
    table = pd.DataFrame({
        "method": [f"{m}{FLOOR if m == 'linear' else ''} ({presets.get(r, p + ' preset')})"
                   for m, p, r in zip(synthetic["model"], synthetic["preset"], ids)],
        "data": [data.get(r, "") for r in ids],
        "protocol": synthetic["protocol"], "clips": synthetic["n_samples"],
        "epochs": [epochs.get(r) for r in ids],
        "pre-training": [labels.get(r, reads_models.NO_PRETRAIN) for r in ids],
        "UF1": synthetic["uf1"], "UF1 95% CI": [f"{intervals[r].low:.3f} – {intervals[r].high:.3f}" if intervals[r] else "–" for r in ids],
        "UAR": synthetic["uar"], "oracle UF1 (diagnostic)": synthetic["oracle_uf1"],
        "run": synthetic["id"],
    }).sort_values("UF1", ascending=False)
    widgets.link_table(table, {"run": _run_links(table["run"])}, key="leaderboard-synthetic", hide_index=True,
                       width="stretch", column_config={
        "pre-training": st.column_config.TextColumn("pre-training", help=PRETRAIN_HELP),
        "data": st.column_config.TextColumn("data", help="the synthetic set: the default one, another option set, or "
                                            "the realism-calibrated variant (as hard as real data) with its calibration"),
        "UF1": st.column_config.NumberColumn(format="%.4f"), "UAR": st.column_config.NumberColumn(format="%.4f"),
        "epochs": st.column_config.NumberColumn("epochs", format="%d", help="training epochs per fold (fixed)"),
        "UF1 95% CI": st.column_config.TextColumn("UF1 95% CI", help="subject-level bootstrap interval of the "
                                                  "pooled UF1 (2,000 resamples): how far it could move on other subjects"),
        "oracle UF1 (diagnostic)": st.column_config.NumberColumn(format="%.4f"),
        "run": st.column_config.TextColumn("run", help=RUN_HELP)})
