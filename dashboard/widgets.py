"""Widgets shared by the views: the run and job pickers, table filters, and safe text.

Ids live in ``st.query_params`` so a reload or a shared link shows the same
view. A link that names an unknown id shows a message and keeps the address as
given (a reload must not silently show another run). Anything that comes from
a URL or a data file (ids, run names, clip ids, exception text) goes through
:func:`plain` before it reaches a Markdown element, so it is shown as text.
"""
from __future__ import annotations

import re
import time
from typing import Callable, NamedTuple, NoReturn, Sequence

import cv2
import pandas as pd
import streamlit as st

from dashboard import glossary, plots, plots_clip, plots_motion, reads
from dashboard.nav import page

# Characters that open a Markdown, GFM or Streamlit construct inside a line: emphasis, code, links and
# images ([ ]), tags, tables, strikethrough, maths, e-mail autolinks, entities; a colon before a non-space
# (``http://`` autolinks, ``:red[...]`` colours, ``:material/x:`` icons); "www." autolinks. Block
# constructs (headings, lists, quotes, setext underlines) need a line start, escaped by _LINE_START.
_INLINE = re.compile(r"([\\`*_{}\[\]<>|~$@&]|:(?=\S))")
_LINE_START = re.compile(r"^(\s*)([-+=>#]|\d+(?=[.)]))")
_AUTOLINK_WWW = re.compile(r"(?i)\b(www)\.")


def plain(text: object) -> str:
    """``text`` escaped so Markdown shows it literally: no link, image, colour, heading or list."""
    lines = []
    for line in str(text).splitlines() or [""]:
        line = _INLINE.sub(r"\\\1", line)
        line = _AUTOLINK_WWW.sub(r"\1\\.", line)
        line = _LINE_START.sub(lambda m: m.group(1) + (m.group(2) + "\\" if m.group(2).isdigit() else "\\" + m.group(2)),
                               line)
        lines.append(line)
    return "  \n".join(lines)


def run_label(row: dict | pd.Series) -> str:
    """How a run is named in pickers: its name (when given), model, dataset, protocol, UF1 and id."""
    name = str(row.get("name") or "").strip()
    uf1 = "" if pd.isna(row.get("uf1")) else f" · UF1 {row['uf1']:.3f}"
    what = f"{row['model']} on {row['dataset']} ({row['protocol']}){uf1} · {row['id']}"
    return f"{name} · {what}" if name else what


def pick_id(label: str, ids: Sequence[str], *, param: str, kind: str, format_func: Callable[[str], str],
            key: str | None = None, resolve: Callable[[str], str] | None = None, default: str | None = None,
            where: str = "the store") -> str | None:
    """A selectbox over ``ids`` bound to the query parameter ``param``.

    No parameter: ``default`` (else the first id) is chosen and written to the
    URL. A known id: chosen. An unknown id: an error naming it (``... is not in
    <where>``), nothing chosen, and the URL left as the user gave it until they
    pick something. ``resolve`` may map a short form (a prefix) to a full id.
    """
    ids = list(ids)
    asked = st.query_params.get(param)
    current = resolve(asked) if asked and resolve else asked
    index: int | None = ids.index(default) if default in ids else 0
    if current and current not in ids:
        st.error(plain(f"{kind} {asked!r} is not in {where}. Pick one below; the address keeps asking for "
                       f"{asked!r} until you do."), icon=":material/link_off:")
        index = None
    elif current:
        index = ids.index(current)
    chosen = st.selectbox(label, ids, index=index, format_func=format_func, key=key,
                          placeholder=f"choose a {kind.lower()}")
    if chosen is not None and chosen != asked:
        st.query_params[param] = chosen
    return chosen


def pick_run(empty_hint: str = "", *, only: Sequence[str] | None = None, where: str = "the store") -> str | None:
    """The run picker of the Run, Explain and Analyse pages (``?run=ID``); None when no run is chosen.

    ``only``: the runs offered, in this order, the first chosen by default (all stored runs, newest first,
    when None).
    """
    runs = reads.runs_table()
    ids = runs["id"].tolist() if only is None else [r for r in only if r in set(runs["id"])]
    if not ids:
        st.info(("No runs stored yet" if runs.empty else f"No run in {where}") +
                ". Start one with `mer run --dataset synthetic --model baseline`" +
                (f", {empty_hint}" if empty_hint else "."))
        return None
    labels = {r["id"]: run_label(r) for r in runs.to_dict("records")}
    return pick_id("run", ids, param=reads.QP_RUN, kind="Run", format_func=labels.get, where=where)


def pick_runs(label: str, *, key: str) -> list[str]:
    """Several runs bound to ``?runs=ID1,ID2``; a run listed twice is taken once, unknown ones are named."""
    runs = reads.runs_table()
    if runs.empty:
        st.info("No runs stored yet. Start one with `mer run --dataset synthetic --model baseline`.")
        return []
    ids = runs["id"].tolist()
    asked = str(st.query_params.get(reads.QP_RUNS, ""))
    wanted = list(dict.fromkeys(r for r in asked.split(",") if r))
    unknown = [r for r in wanted if r not in ids]
    if unknown:
        st.warning(plain(f"Run(s) {', '.join(unknown)} are not in the store and were left out."),
                   icon=":material/link_off:")
    known = [r for r in wanted if r in ids]
    labels = {r["id"]: run_label(r) for r in runs.to_dict("records")}
    chosen = st.multiselect(label, ids, default=known, format_func=labels.get, key=key)
    if chosen != known:  # only a change by the user rewrites the address
        st.query_params[reads.QP_RUNS] = ",".join(chosen)
    return chosen


def filters(df: pd.DataFrame, specs: Sequence[tuple[str, str, Sequence]], *, key: str,
            widths: Sequence[float] | None = None) -> pd.DataFrame:
    """One multiselect per (column, label, options) side by side; returns the rows matching every choice."""
    cols = st.columns(list(widths) if widths else len(specs))
    view = df
    for col, (column, label, options) in zip(cols, specs):
        chosen = col.multiselect(label, list(options), key=f"{key}_{column}")
        if chosen:
            view = view[view[column].isin(chosen)]
    return view


def when(t: float | None) -> str:
    """A stored ``time.time()`` stamp as local "YYYY-MM-DD HH:MM:SS"; "–" when there is none (None, 0, NaN)."""
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t)) if t and t == t else "–"


def duration(seconds: float) -> str:
    """"2 h 05 min" from an hour on, else "3 min 07 s" (to the nearest second)."""
    s = int(round(seconds))
    return f"{s // 3600} h {s % 3600 // 60:02d} min" if s >= 3600 else f"{s // 60} min {s % 60:02d} s"


def code(text: object) -> str:
    """``text`` as an inline Markdown code span that no backtick inside can close early."""
    s = str(text).replace("\n", " ")
    longest = max((len(m) for m in re.findall(r"`+", s)), default=0)
    fence = "`" * (longest + 1)
    pad = " " if s.startswith("`") or s.endswith("`") else ""
    return f"{fence}{pad}{s}{pad}{fence}"


# --- figures: downloadable as PNG or SVG -------------------------------------------------
FIG_FORMAT_KEY = "figure_download_format"  # session-state key of the sidebar choice (app.py)
FIG_FORMATS = ("png", "svg")


def chart_config(filename: str) -> dict:
    """Plotly config: the camera button saves the figure as the chosen format (PNG default, or SVG)."""
    fmt = st.session_state.get(FIG_FORMAT_KEY, "png")
    return {"displaylogo": False,
            "toImageButtonOptions": {"format": fmt if fmt in FIG_FORMATS else "png",
                                     "filename": re.sub(r"[^A-Za-z0-9_.-]+", "_", filename) or "figure", "scale": 2}}


def clicked_points(chart_key: str) -> list[dict]:
    """The points selected on the chart ``chart_key`` (``on_select="rerun"``) at the last rerun; [] when none."""
    state = st.session_state.get(chart_key)
    try:
        return state["selection"]["points"] if state else []
    except (KeyError, TypeError):
        return []


def chart(fig, *, key: str, where=st, **kwargs):
    """``plotly_chart`` (in ``where``) at full width with the download config; returns what plotly_chart returns."""
    return where.plotly_chart(fig, width="stretch", key=key, config=chart_config(key), **kwargs)


EVM_ALPHA_MAX = 30.0  # the largest magnification the Datasets slider offers; its range is every α's colour scale


# every page numbers frames this one way (players, sliders, captions), and says so once
FRAME_NUMBERS = "Frames are numbered as in the clip's file, from 0 (its first frame is frame 0)."


def evm_comparison(clip, magnified, apex: int, alpha: float, *, key: str, blur: float = 0.0,
                   frame_ms: int | None = None, magnified_max=None, first: int = 0) -> None:
    """Original and magnified apex - onset on ONE colour scale, then one player with an A/B switch.

    Shared by the Datasets and Lesson pages, so magnification looks the same (and visibly stronger)
    wherever it is shown. ``blur`` (pixels) smooths both differences alike. ``apex`` is its position in the
    onset..offset ``clip``; ``first`` the file's frame number of ``clip[0]`` (the onset's), so the player
    numbers frames as in the file (:data:`FRAME_NUMBERS`). ``magnified_max``: the clip
    magnified with :data:`EVM_ALPHA_MAX`; its range is the scale, so every α is drawn on the same colours and
    a larger α looks stronger (without it, the scale is this α's own range).
    """
    d0, d1 = clip[apex] - clip[0], magnified[apex] - magnified[0]
    if blur:
        d0, d1 = cv2.GaussianBlur(d0, (0, 0), blur), cv2.GaussianBlur(d1, (0, 0), blur)
    bound = (plots_motion.evm_bound(clip, magnified_max, apex, blur) if magnified_max is not None
             else plots_clip.shared_bound(d0, d1))
    left, right = st.columns(2)
    with left:
        chart(plots_clip.signed_image(d0, "apex − onset, original", bound), key=f"{key}-diff-a")
    with right:
        chart(plots_clip.signed_image(d1, f"apex − onset, magnified α = {alpha:g}", bound), key=f"{key}-diff-b")
    which = st.segmented_control("play", ["A: original", "B: magnified"], default="B: magnified",
                                 key=f"{key}-ab", help=glossary.tip("EVM")) or "B: magnified"
    shown = clip if which.startswith("A") else magnified
    title = which + (f" (α = {alpha:g})" if which.startswith("B") else "")
    extra = {"frame_ms": frame_ms} if frame_ms else {}
    chart(plots_clip.clip_animation(shown, first, first + apex, first + len(clip) - 1, title=title, first=first, **extra),
          key=f"{key}-clip")


# --- links between pages: they open in this tab ----------------------------------------------
# Streamlit opens a LinkColumn cell and a Markdown link in a new browser tab (target="_blank", fixed in its
# frontend). Links between the dashboard's own pages go through st.page_link and st.switch_page instead:
# same tab, the page's query parameters (run=, job=, sample=, runs=) carried along.
_LINK_TURNS = "_link_table_turns"  # session state: per link table, how many of its clicks navigated
OPEN = "open →"  # the text of a link cell that has no id to show (a clip on the Explain page)


class Link(NamedTuple):
    """Where a clicked cell of a link column goes: a page (its url path) and, per table row, its query
    parameters (None: that row's cell is no link, e.g. a published result without a run)."""

    page: str
    params: Sequence[dict[str, str] | None]
    pages: Sequence[str | None] | None = None  # per row, another page than ``page`` (None: ``page``)


def go(url_path: str, query_params: dict[str, str] | None = None) -> NoReturn:
    """Open the dashboard page ``url_path`` in this tab with ``query_params`` in its address."""
    st.switch_page(page(url_path), query_params=query_params or {})


def page_link(url_path: str, label: str, *, query_params: dict[str, str] | None = None, icon: str | None = None,
              help: str | None = None, where=st) -> None:
    """A link to the dashboard page ``url_path`` (with ``query_params``) that opens in this tab."""
    where.page_link(page(url_path), label=label, icon=icon, help=help, query_params=query_params)


def link_key(key: str) -> str:
    """The widget key of the link table ``key`` now: it moves on after each click, so a table seen again
    (the same page, or the way back) starts with no cell selected and never navigates by itself."""
    return f"{key}#{st.session_state.get(_LINK_TURNS, {}).get(key, 0)}"


def link_table(table: pd.DataFrame, links: dict[str, Link], *, key: str, column_config: dict | None = None,
               selection_mode: str | Sequence[str] = (), **kwargs):
    """``st.dataframe`` whose ``links`` columns open a page in this tab when one of their cells is clicked.

    The cells show their own text (an id, "open"); a click selects the cell and the rerun switches page
    with that row's query parameters. Other selection modes (``"multi-row"``) work as usual; returns the
    dataframe's event.
    """
    modes = [selection_mode] if isinstance(selection_mode, str) else list(selection_mode)
    config = dict(column_config or {})
    for column, link in links.items():
        config.setdefault(column, st.column_config.TextColumn(column, help=f"click to open the {link.page} page"))
    event = st.dataframe(table, key=link_key(key), on_select="rerun", selection_mode=["single-cell", *modes],
                         column_config=config, **kwargs)
    for row, column in event.selection.get("cells", []):
        link = links.get(column)
        if link is not None and 0 <= row < len(link.params) and link.params[row]:
            turns = st.session_state.setdefault(_LINK_TURNS, {})
            turns[key] = turns.get(key, 0) + 1
            go((link.pages[row] if link.pages and row < len(link.pages) else None) or link.page, link.params[row])
    return event


def heat_scale(what: str = "attribution", *, where=st, overlay: bool = True) -> None:
    """The colour bar of the heat maps drawn as images (inferno, low to high) with what it measures, in words."""
    where.image(plots.colour_bar_rgb(), width="stretch")
    where.caption(plain(f"colour: {what}, low (left) to high (right); each map is scaled to its own 99.5th "
                        "percentile" + ("; faint values are left transparent" if overlay else "")))
