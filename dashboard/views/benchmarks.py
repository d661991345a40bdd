"""Benchmarks: the figures of ``mer bench`` (mer_core/benchmarking/data/<machine kind>.json) as tables.

The same file feeds the job time estimate and the LOSO table in
docs/benchmarks.md, so what this page shows is what the New experiment form assumes.
"""
from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st

from dashboard import reads
from mer_core.config import REMOVED_EXECUTORS
from dashboard.widgets import code, plain


def _spread(value: Any, fmt: str = "{:.2f}") -> str:
    if not isinstance(value, dict) or value.get("median") is None:
        return "–"
    if value.get("n", 1) <= 1 or value["min"] == value["max"]:
        return fmt.format(value["median"])
    return f"{fmt.format(value['median'])} ({fmt.format(value['min'])}–{fmt.format(value['max'])})"


PRETRAIN_COLUMNS = {"model": "model", "preset": "preset", "source": "macro data", "epochs": "epochs",
                    "n_samples": "images / clips", "cold_s": "first run s",
                    "train_s": "training s", "preprocess_ms_per_clip": "preprocess ms / clip",
                    "ms_per_sample_epoch": "train ms / sample-epoch"}
# what a short column name leaves out, as the column's tooltip
COLUMN_HELP = {"first run s": "the first run, preprocessing included",
               "train ms / sample-epoch": "training time per clip and epoch: what the job estimate uses",
               "CPU s": "CPU seconds of the whole process tree, pool workers included",
               "peak MB": "peak resident memory of the whole process tree, pool workers included",
               "preprocess ms / clip, cold": "computing one clip's inputs with nothing cached"}


def table(frame: pd.DataFrame) -> None:
    """A results table that fits the page: its empty columns (no value in any row) left out and named below
    it with the reason, long names explained in their tooltips (a table wider than the page hid its last,
    right-aligned column: it looked blank)."""
    empty = [c for c in frame.columns if frame[c].map(lambda v: v is None or v == "–" or v != v).all()]
    frame = frame.drop(columns=empty)
    st.dataframe(frame, hide_index=True, width="stretch",
                 column_config={c: st.column_config.Column(c, help=h) for c, h in COLUMN_HELP.items() if c in frame})
    if empty:
        st.caption(plain(f"Left out: {', '.join(empty)}; no row of this file has a value for "
                         f"{'it' if len(empty) == 1 else 'them'}."))


def _pretrain_table(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """The pre-training rows with their keys in words (unknown keys keep their name, underscores as spaces)."""
    table = pd.DataFrame(rows)
    return table.rename(columns={c: PRETRAIN_COLUMNS.get(c, c.replace("_", " ")) for c in table.columns})


def _loso_table(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """Time and scores of each LOSO setting (the resources it took: :func:`_loso_resources`)."""
    return pd.DataFrame([{
        "model": r["model"], "preset": r["preset"], "executor": r["executor"], "epochs": r["epochs"],
        "clips / folds": f"{r['n_samples']} / {r['n_folds']}", "wall s": _spread(r["wall_s"], "{:.1f}"),
        "UF1": _spread(r["uf1"], "{:.3f}"), "UAR": _spread(r["uar"], "{:.3f}"),
        "train ms / sample-epoch": r.get("train_ms_per_sample_epoch"),
    } for r in rows])


def _loso_resources(rows: list[dict[str, Any]]) -> pd.DataFrame:
    return pd.DataFrame([{
        "model": r["model"], "preset": r["preset"], "executor": r["executor"],
        "CPU s": _spread(r["cpu_s"], "{:.1f}"), "peak MB": _spread(r["peak_rss_mb"], "{:.0f}"),
        "preprocess ms / clip, cold": r.get("preprocess_cold_ms_per_clip"),
    } for r in rows])


def _fwd_table(rows: list[dict[str, Any]]) -> pd.DataFrame:
    return pd.DataFrame([{
        "model": r["model"], "preset": r["preset"], "input": f"{r.get('input_size')} px, {len(r.get('channels', []))} ch",
        "device": r.get("device"), "batch": r.get("batch"), "samples/s": _spread(r["samples_per_s"], "{:.0f}"),
        "ms / sample": _spread(r["ms_per_sample"], "{:.3f}"),
    } for r in rows])


def _preprocess_table(rows: list[dict[str, Any]]) -> pd.DataFrame:
    return pd.DataFrame([{
        "flow": r["method"], "size px": r["size"], "clips": r.get("clips"), "workers": r.get("workers"),
        "cold ms / clip": _spread(r["cold_ms_per_clip"], "{:.1f}"),
        "cached ms / clip": _spread(r["cached_ms_per_clip"], "{:.2f}"),
    } for r in rows])


def _pages_table(pages: dict[str, Any]) -> pd.DataFrame:
    return pd.DataFrame([{"page": name, "first render s": r.get("cold_s"),
                          "warm render s": _spread(r.get("warm_s"), "{:.3f}")} for name, r in pages.items()])


def _machine(report: dict[str, Any], name: str, label: str) -> None:
    m = report["machine"]
    st.caption(plain(f"{name}: {m['kind']} · {m['cpu']} · {m['cores']} cores · torch {m['torch']} · device "
                     f"{m['device']} · {m['date']} · commit {m['commit'] or '?'}"
                     + (" · quick run" if report.get("quick") else "")))
    for line in reads.bench_update_lines(report):
        st.caption(plain(line[0].upper() + line[1:] + " (newer than the line above)."))
    st.caption(plain(f"Job estimates on this machine come from: {label}."))


def _sections(report: dict[str, Any]) -> None:
    st.subheader("LOSO on the default synthetic set")
    st.caption("Median (min–max) of repeated runs. Training cost per sample-epoch is what the job estimate uses.")
    if report["loso"]:
        table(_loso_table(report["loso"]))
        removed = sorted({r["executor"] for r in report["loso"]} & set(REMOVED_EXECUTORS))
        if removed:
            st.caption(plain("Executor " + ", ".join(f"{e} (since removed; use {REMOVED_EXECUTORS[e]})"
                                                     for e in removed)
                             + ": its rows are kept as they were measured, for comparison; it cannot be chosen."))
        st.caption("What the same runs took: CPU seconds and peak memory cover the whole process tree, pool "
                   "workers included.")
        table(_loso_resources(report["loso"]))
    st.subheader("Forward + backward")
    if report["fwd_bwd"]:
        table(_fwd_table(report["fwd_bwd"]))
    st.subheader("Preprocessing (flow u, v, strain)")
    if report["preprocess"]:
        table(_preprocess_table(report["preprocess"]))
    if report["pretrain"]:
        st.subheader("Macro pre-training")
        table(_pretrain_table(report["pretrain"]))
    st.subheader("Page renders")
    pages = report["pages"]
    if pages.get("pages"):
        st.caption(plain(pages.get("what", "")))
        st.dataframe(_pages_table(pages["pages"]), hide_index=True, width="stretch")
    else:
        st.caption(plain(f"not measured: {pages.get('skipped', 'no figures')}"))


def render() -> None:
    st.title("Benchmarks")
    data = reads.bench_results()
    if not data["files"]:
        st.info(f"No benchmark results for any machine yet. Run {code('mer bench --quick')} to measure this one "
                f"({plain(data['kind'])}); until then job estimates use rough constants.")
        return
    names = list(data["files"])
    default = names.index(data["match"]) if data["match"] in names else 0
    name = st.selectbox("results file", names, index=default,
                        help="the reports `mer bench` wrote (mer_core/benchmarking/data, or $MER_BENCH_RESULTS); "
                        "the one matching this machine is selected")
    _machine(data["files"][name], name, data["label"])
    _sections(data["files"][name])
