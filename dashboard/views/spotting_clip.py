"""Parts shared by the Spotting page and the Analyse page's long clips: an interval's player, a timeline click,
and the list of every interval the motion-curve spotter finds in an uploaded long clip (layout only)."""
from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st

from dashboard import plots_clip, plots_spotting, reads_spotting as rs, widgets
from dashboard.widgets import plain
from mer_core.errors import MerError

LONG_SECONDS = 3.0  # an uploaded clip longer than this gets every interval listed (the Analyse page)
K_LONG_RUN = "analyse_long_spot_run"


def sync_click(chart_key: str, pick_key: str, ids: list[str]) -> None:
    """A diamond clicked on a timeline chooses its interval (once per click: the chart keeps its selection)."""
    points = widgets.clicked_points(chart_key)
    clicked = next((p.get("customdata") for p in points if isinstance(p.get("customdata"), str)), None)
    if clicked in ids and clicked != st.session_state.get(f"{pick_key}_seen"):
        st.session_state[f"{pick_key}_seen"] = clicked
        st.session_state[pick_key] = clicked


def interval_player(path: str, onset: int, apex: int, offset: int, n_frames: int, fps: float, *, title: str,
                    key: str) -> str | None:
    """A player of frames around ``onset``..``offset`` (only those frames are read); returns a line saying what it
    shows, or None after an error message."""
    first, stop = rs.play_window(onset, apex, offset, n_frames)
    try:
        clip = rs.interval_frames(path, first, stop)
    except (MerError, OSError) as exc:
        st.error(plain(f"Cannot play it: {exc}"), icon=":material/error:")
        return None
    last = first + len(clip) - 1
    shown_on, shown_off = max(onset, first), min(offset, last)
    frame_ms = max(120, round(1000 / fps))
    widgets.chart(plots_clip.clip_animation(clip, shown_on, min(max(apex, shown_on), shown_off), shown_off, first=first,
                                       frame_ms=frame_ms, title=title), key=key)
    cut = "" if (first <= onset and offset <= last) else f" (cut to {len(clip)} frames around the apex)"
    slowed = f", slowed {fps * frame_ms / 1000:.1f}×" if fps * frame_ms > 1000 * 1.05 else ""
    return (f"The player shows frames {first}-{last}{cut}: the interval with a few frames before and after it, at "
            f"{1000 / frame_ms:.0f} frames per second ({fps:g} fps recorded{slowed}). {widgets.FRAME_NUMBERS}")


def _found_items(table: pd.DataFrame) -> pd.DataFrame:
    items = table[["onset", "apex", "offset", "type", "score"]].copy()
    items.insert(0, "id", [f"f{i}" for i in range(len(items))])
    items["source"], items["outcome"] = "predicted", "found"
    return items


def long_clip_section(path: str, cropped: bool) -> None:
    """Every interval the motion-curve spotter finds in a clip longer than :data:`LONG_SECONDS`, with a player;
    nothing for a shorter clip (or a zip of frames)."""
    size = rs.clip_length(path)
    if size is None or not size[0]:
        return
    n, fps = size[0], size[1] or 30.0
    if n / fps <= LONG_SECONDS:
        return
    st.subheader("Every interval in this long clip")
    runs = rs.motion_curve_runs()
    if not runs:
        st.info(plain(f"This clip is {n / fps:.1f} s long. To list every expression in it, the motion-curve "
                      "spotter needs thresholds chosen on data: run a motion-curve spotting run first (Spotting "
                      "page, or `mer spot`)."), icon=":material/timeline:")
        widgets.page_link("spotting", "Start one on the Spotting page", icon=":material/timeline:")
        return
    table = rs.spot_runs().set_index("id")
    run_id = st.selectbox("thresholds from the spotting run", runs, key=K_LONG_RUN,
                          format_func=lambda r: f"{table.loc[r, 'dataset']} · F1 {table.loc[r, 'f1'] or 0:.3f} · {r}",
                          help="the median, over that run's folds, of the thresholds each chose on its training "
                               "subjects (a motion-curve run: nothing learned, so it applies to any video)")
    try:
        found = rs.spot_upload(path, run_id, cropped)
    except MerError as exc:
        st.error(plain(exc), icon=":material/error:")
        return
    _found(path, found, run_id)


def _found(path: str, found: dict[str, Any], run_id: str) -> None:
    fps, n = float(found["fps"]), int(found["n_frames"])
    items = _found_items(found["table"])
    thresholds = {k: p["threshold"] for k, p in found["params"].items()}
    st.markdown(plain(f"{len(items)} interval(s) found in {n} frames ({n / fps:.1f} s at {fps:g} fps)."))
    st.caption(plain("Thresholds: " + ", ".join(f"{k} {t:.3g}" for k, t in thresholds.items())
                     + f", from {found['source']}. The spotter is the one the Spotting page scores; nothing here is "
                       "checked against a truth, so a found interval may be a blink or a head turn."))
    chart_key, pick_key = f"analyse_long_chart_{run_id}", f"analyse_long_play_{run_id}"
    sync_click(chart_key, pick_key, items["id"].tolist())
    widgets.chart(plots_spotting.timeline(found["scores"], thresholds, items, n, fps,
                                          selected=st.session_state.get(pick_key), truth=False,
                                          threshold_name="threshold (the spotting run's folds, median)"),
                  key=chart_key, on_select="rerun", selection_mode="points")
    view = found["table"][["type", "onset", "apex", "offset", "onset_s", "offset_s", "score"]]
    st.dataframe(view, hide_index=True, width="stretch", column_config={
        "onset_s": st.column_config.NumberColumn("onset (s)", format="%.2f"),
        "offset_s": st.column_config.NumberColumn("offset (s)", format="%.2f"),
        "score": st.column_config.NumberColumn("score", format="%.3g")})
    if items.empty:
        return
    rows = {r.id: r for r in items.itertuples(index=False)}
    chosen = st.selectbox("play an interval", list(rows), index=None, key=pick_key,
                          format_func=lambda i: f"{rows[i].type} · frames {rows[i].onset}-{rows[i].offset} "
                                                f"({rows[i].onset / fps:.2f}-{(rows[i].offset + 1) / fps:.2f} s)",
                          placeholder="choose an interval (or click one on the timeline)")
    if chosen:
        r = rows[chosen]
        said = interval_player(path, int(r.onset), int(r.apex), int(r.offset), n, fps,
                               title=f"{r.type}: frames {r.onset}-{r.offset}", key=f"analyse_long_player_{chosen}")
        if said:
            st.caption(plain(said))
    st.caption("Below: the single-clip analysis, which takes one expression from the clip.")
