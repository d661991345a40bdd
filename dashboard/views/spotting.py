"""Spotting: where in a long recording is there an expression? A stored spotting run, scored and shown per video.

The run id lives in the URL (``?spot=ID``) and so does the video of its timeline (``?video=ID``). The page
starts a spotting run as a background job (the Jobs page follows it), then shows its headline (precision,
recall and F1 per type beside what chance placement scores, the STRS when it recognised), a timeline per video
(score curves, the thresholds the fold chose, true and spotted intervals coloured by outcome), a player of
any interval (only its frames are read), the per-subject table and what each fold chose.
"""
from __future__ import annotations

import math
from typing import Any

import pandas as pd
import streamlit as st

from dashboard import palette, plots_spotting, reads, reads_spotting as rs, widgets, writes
from dashboard.views import spotting_clip
from dashboard.widgets import plain
from mer_core.errors import MerError
from mer_core.keyvalue import parse_lines

K_PICK = "sp_run"
K_DATASET = "sp_dataset"
K_SPOTTER = "sp_spotter"
K_RECOGNISE = "sp_recognise"
K_NAME = "sp_name"
K_SUBMIT = "sp_submit"
K_LAST_JOB = "sp_last_job"
K_SHOWN_RUN = "sp_shown_run"  # the run whose video is in the URL: another run resets ?video=
K_TYPE = "sp_subject_type"
SPOTTERS = {"motion_curve": "motion curve (nothing learned: how much the face moves, window by window)",
            "learned": "learned (a frame scorer trained per fold on optical-flow features)"}
TYPE_WORDS = {"overall": "all types", "micro": "micro", "macro": "macro"}

INTRO = (
    "**Spotting** looks through a long recording for the moments a face makes an expression: a "
    "*micro-expression* (under half a second, a pixel or two of motion) or a *macro-expression* (an ordinary, "
    "larger one). A spotter gives every frame a score; each peak above a threshold becomes an interval "
    "(onset to offset).\n\n"
    "**Scoring.** A spotted interval is a *hit* when it overlaps a true interval of its type by IoU ≥ 0.5: the "
    "frames the two share are at least half of the frames they cover together (the MEGC rule). Each true "
    "interval can be hit once. A true interval left unhit is a *miss*, a spotted one that hits nothing a "
    "*false alarm*. Precision = hits / spotted, recall = hits / true intervals, F1 balances the two.\n\n"
    "**Honest thresholds.** Under leave-one-subject-out each fold chooses its thresholds on its training "
    "subjects' videos only: the person it is tested on never sets them.")


def _fmt(v: Any, digits: int = 3) -> str:
    return "–" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.{digits}f}"


# --- a new run ------------------------------------------------------------------------------------------
def _submit_form() -> None:
    from mer_core.spotting.loso import SpotConfig  # lazy: loads scikit-learn and scipy (about 1 s)

    names = rs.long_datasets()
    c1, c2 = st.columns(2)
    ids = list(names)
    dataset = c1.selectbox("dataset", ids, index=ids.index("synthetic-long") if "synthetic-long" in ids else 0,
                           key=K_DATASET)
    c1.caption(plain(names[dataset]))
    spotter = c2.radio("spotter", list(SPOTTERS), format_func=SPOTTERS.get, key=K_SPOTTER)
    text = st.text_area("dataset options (KEY=VALUE per line)", key=f"sp_options_{dataset}", height=90,
                        placeholder="empty: the dataset's defaults (synthetic-long: 10 subjects × 2 videos of 10-60 s, "
                                    "a few minutes); subjects=3 and max_seconds=15 make a quick one",
                        help="passed to the indexer: manifest=/path/intervals.csv for long-manifest; for "
                             "synthetic-long e.g. subjects=3, videos_per_subject=1, max_seconds=15 (the default "
                             "size, 10 subjects × 2 videos of 10-60 s, takes minutes)")
    runs = reads.runs_table().set_index("id")  # finished recognition runs (whether one kept a model: on submit)
    choices = [""] + runs.index[runs["status"].isin(("done", "partial"))].tolist()
    recognise = st.selectbox("then recognise each spotted interval with (optional)", choices, key=K_RECOGNISE,
                             format_func=lambda r: "no: spotting only" if not r else widgets.run_label(runs.loc[r]
                                                                                                      .to_dict() | {"id": r}),
                             help="spot, then recognise: a finished recognition run classifies every spotted "
                                  "interval; reported: recognition UF1/UAR on the hits and STRS = spotting F1 × "
                                  "recognition UF1")
    name = st.text_input("name (optional)", key=K_NAME)
    if st.button("Submit spotting job", type="primary", key=K_SUBMIT):
        try:
            config = SpotConfig(dataset=dataset, dataset_options=parse_lines(text, None, "dataset options"),
                                spotter=spotter, recognise=recognise)
            st.session_state[K_LAST_JOB] = writes.submit_spotting(config, name=name)
        except MerError as exc:
            st.session_state[K_LAST_JOB] = None
            st.error(plain(exc), icon=":material/error:")
    last = st.session_state.get(K_LAST_JOB)
    if last:
        st.success(f"Job {last} queued.")
        widgets.page_link("jobs", f"Follow job {plain(last)} on the Jobs page", icon=":material/work:",
                          query_params={reads.QP_JOB: last})


# --- the run's headline -----------------------------------------------------------------------------------
def data_words(run: dict[str, Any]) -> str:
    """Which data the run spotted in, in words (synthetic data says so)."""
    videos = run["videos"]
    subjects = len({v["subject"] for v in videos})
    seconds = sum(float(v["n_frames"]) / float(v["fps"] or 30.0) for v in videos)
    options = run["config"].get("dataset_options") or {}
    opts = (" (" + ", ".join(f"{k}={v}" for k, v in options.items()) + ")") if options else ""
    what = (f"{run['dataset']}{opts}: synthetic long videos, generated faces rather than people; its figures "
            "speak for this synthetic set only, not for real recordings" if run["dataset"].startswith("synthetic")
            else f"{run['dataset']}{opts}: recordings read from your copy of the dataset")
    length = f"{seconds / 60:.1f} minutes" if seconds >= 120 else f"{seconds:.0f} seconds"
    return (f"Data: {what}. {len(videos)} videos of {subjects} subjects, {length} in all; "
            f"{run['n_folds']} folds, one per subject.")


def score_table(summary: dict[str, Any], chance: dict[str, Any] | None) -> pd.DataFrame:
    """One row per type (all, micro, macro): counts, precision, recall, F1 and chance F1."""
    rows = []
    for kind in ("overall", "micro", "macro"):
        s = summary["scores"][kind]
        rows.append({"type": TYPE_WORDS[kind], "true intervals": s["tp"] + s["fn"], "spotted": s["tp"] + s["fp"],
                     "hits": s["tp"], "misses": s["fn"], "false alarms": s["fp"], "precision": _fmt(s["precision"]),
                     "recall": _fmt(s["recall"]), "F1": _fmt(s["f1"]),
                     "chance F1": _fmt((chance or {}).get(kind, {}).get("f1"))})
    return pd.DataFrame(rows)  # figures as text: an undefined one reads "–", not "None"


def _headline(b: dict[str, Any]) -> None:
    run, s = b["run"], b["run"]["summary"]
    st.subheader("How well it spotted")
    st.caption(plain(data_words(run)))
    if not s:
        return
    chance = rs.spot_chance(run["id"])
    cols = st.columns(4 if s.get("strs") is not None else 3)
    for col, kind in zip(cols, ("overall", "micro", "macro")):
        c = (chance or {}).get(kind, {}).get("f1")
        col.metric(f"F1, {TYPE_WORDS[kind]}", _fmt(s["scores"][kind]["f1"]),
                   help=f"chance placement scores {_fmt(c)}; undefined (–) when there is nothing of this type")
    if s.get("strs") is not None:
        cols[3].metric("STRS", _fmt(s["strs"]), help="spot, then recognise: spotting F1 × recognition UF1")
    st.dataframe(score_table(s, chance), hide_index=True, width="stretch")
    st.caption(plain(
        f"Pooled over all {len(run['videos'])} videos, one-to-one at IoU ≥ {b['iou']:g}. Chance F1: the same "
        f"spotted intervals (same videos, types and lengths) placed at random, {chance['draws'] if chance else 0} "
        "times, scored alike: what a spotter that knew how many intervals to mark, but not where, would score. "
        "A spotter that marks nothing scores F1 0."))
    off = s.get("official") or {}
    if off:
        st.caption(plain("The official MEGC script's counting (one spotted interval may hit several true ones; "
                         "silent subjects and empty videos left out; docs/spotting.md) gives F1 "
                         + ", ".join(f"{TYPE_WORDS[k]} {_fmt(off[k]['f1'])}" for k in ("overall", "micro", "macro"))
                         + "."))
    _recognition(s)


def _recognition(s: dict[str, Any]) -> None:
    rec = s.get("recognition")
    if not rec:
        return
    st.markdown("**Spot, then recognise**")
    rows = [{"scope": "all types" if scope == "all" else "micro only (MEGC)", "spotting F1": _fmt(r["spot_f1"]),
             "recognition UF1": _fmt(r["recognition_uf1"]), "recognition UAR": _fmt(r["recognition_uar"]),
             "hits classified": r["n_true_positives"] or 0, "STRS": _fmt(r["strs"])}
            for scope, r in ((k, rec[k]) for k in ("all", "micro"))]
    st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch")
    k = len(rec.get("classes") or []) or 1
    st.caption(plain(f"Each spotted interval was classified by run {rec['run']} ({rec.get('model', '')}); "
                     f"recognition is scored on the hits whose true interval has one of its {k} classes. "
                     f"Guessing among {k} classes gives a UAR of {1 / k:.3f} on average. STRS = spotting F1 × "
                     f"recognition UF1. {rec.get('caveat', '')[:1].upper()}{rec.get('caveat', '')[1:]}."))


# --- per video ----------------------------------------------------------------------------------------------
def _item_label(r: Any, fps: float) -> str:
    what = f"{rs.SOURCE_WORDS[r.source]} {r.type}"
    return (f"{rs.OUTCOME_WORDS.get(r.outcome, r.outcome)} · {what} · frames {r.onset}-{r.offset} "
            f"({r.onset / fps:.2f}-{(r.offset + 1) / fps:.2f} s)")


def _fold_words(b: dict[str, Any], fold: int | None, subject: str) -> tuple[dict[str, float | None], str]:
    """The thresholds the video's fold chose, and a line saying where they come from."""
    if fold is None:
        return {}, "This video's fold has not finished yet."
    row = b["folds"].set_index("fold_index").loc[fold]
    params = row["params"] or {}
    others = len({v["subject"] for v in b["run"]["videos"]}) - 1
    parts = [f"{k} {p['threshold']:.3g} (peaks at least {p['distance']} frames apart)"
             for k, p in params.items() if p and p.get("threshold") is not None]
    line = (f"Tested in fold {fold + 1}, the fold that held out subject {subject}. Its thresholds were chosen on "
            f"the other {others} subject(s)' videos only: " + ("; ".join(parts) or "none stored") + ".")
    return {k: p["threshold"] for k, p in params.items() if p and p.get("threshold") is not None}, line


def _video_section(b: dict[str, Any]) -> None:
    run, videos, items = b["run"], b["videos"], b["items"]
    st.subheader("Per video: where it spotted, and what it missed")
    if videos.empty:
        st.info("This run lists no video.")
        return
    if st.session_state.get(K_SHOWN_RUN) != run["id"]:
        if st.session_state.get(K_SHOWN_RUN) is not None:
            st.query_params.pop(rs.QP_VIDEO, None)  # another run: its own first video
        st.session_state[K_SHOWN_RUN] = run["id"]
    labels = {v.video: f"{v.video} · {v.subject} · {v.n_frames / v.fps:.1f} s · "
                       f"{plots_spotting.outcome_counts(items[items['video'] == v.video])}"
              for v in videos.itertuples()}
    with_miss = videos.loc[videos["misses"] > 0, "video"].tolist()
    video = widgets.pick_id("video", videos["video"].tolist(), param=rs.QP_VIDEO, kind="Video",
                            format_func=labels.get, key=f"sp_video_{run['id']}",
                            default=with_miss[0] if with_miss else None, where="this run's videos")
    if video is None:
        return
    v = videos.set_index("video").loc[video]
    mine = items[items["video"] == video].reset_index(drop=True)
    fold = None if pd.isna(v["fold"]) else int(v["fold"])
    thresholds, line = _fold_words(b, fold, v["subject"])
    st.caption(plain(line))
    curves = rs.spot_scores(run["id"], fold).get(video, {}) if fold is not None else {}
    if fold is not None and not curves:
        st.caption("The per-frame scores of this fold are not stored: the intervals only.")
    chart_key, pick_key = f"sp_chart_{run['id']}_{video}", f"sp_play_{run['id']}_{video}"
    ids = mine["id"].tolist()
    spotting_clip.sync_click(chart_key, pick_key, ids)
    fig = plots_spotting.timeline(curves, thresholds, mine, int(v["n_frames"]), float(v["fps"]),
                                  selected=st.session_state.get(pick_key))
    widgets.chart(fig, key=chart_key, on_select="rerun", selection_mode="points")
    names = palette.SPOT_OUTCOME_NAMES
    st.caption(plain(f"Bars: {names['hit']} a hit, {names['miss']} a miss (a true interval no spotted one "
                     f"reached), {names['false_alarm']} a false alarm. Top rows: each type's score per frame, the "
                     "dashed line the fold's threshold; shaded: the true intervals. Click a diamond (an interval's "
                     "apex) or choose below to play it."))
    by_id = {r.id: r for r in mine.itertuples(index=False)}
    chosen = st.selectbox("play an interval", ids, index=None, key=pick_key,
                          format_func=lambda i: _item_label(by_id[i], float(v["fps"])),
                          placeholder="choose an interval (or click one on the timeline)")
    if chosen:
        _player(by_id[chosen], v)
    _interval_table(mine, float(v["fps"]))


def _player(r: Any, v: pd.Series) -> None:
    apex = int(r.apex) if r.apex is not None and r.apex == r.apex else (r.onset + r.offset) // 2
    left, right = st.columns([3, 2])
    with left:
        said = spotting_clip.interval_player(str(v["path"]), int(r.onset), apex, int(r.offset), int(v["n_frames"]),
                                             float(v["fps"]), key=f"sp_player_{r.id}",
                                             title=f"{rs.SOURCE_WORDS[r.source]} {r.type}: frames {r.onset}-{r.offset}")
    if said is None:
        return
    what = {"hit": "a hit: " + (r.matched or "matched"),
            "miss": "a miss: no spotted interval of its type reached IoU 0.5 with it",
            "false_alarm": "a false alarm: it reached no true interval of its type at IoU 0.5"}.get(r.outcome, "")
    label = f" (labelled {r.label})" if r.source == "truth" and r.label else ""
    guess = f" (recognised as {r.pred_label})" if r.source == "predicted" and r.pred_label else ""
    right.markdown(plain(f"{rs.SOURCE_WORDS[r.source].capitalize()} {r.type}-expression{label}{guess}, frames "
                         f"{r.onset}-{r.offset}, apex {apex}. {what[:1].upper()}{what[1:]}."))
    right.caption(plain(said))


def _interval_table(mine: pd.DataFrame, fps: float) -> None:
    with st.expander(f"every interval of this video ({len(mine)})"):
        table = pd.DataFrame({
            "interval": [f"{rs.SOURCE_WORDS[s]} {t}" for s, t in zip(mine["source"], mine["type"])],
            "onset": mine["onset"], "apex": mine["apex"], "offset": mine["offset"],
            "seconds": [f"{a / fps:.2f}-{(b + 1) / fps:.2f}" for a, b in zip(mine["onset"], mine["offset"])],
            "outcome": mine["outcome"].map(rs.OUTCOME_WORDS), "score": mine["score"], "matched": mine["matched"],
            "label": [lab if s == "truth" else p for s, lab, p in zip(mine["source"], mine["label"],
                                                                      mine["pred_label"])]})
        st.dataframe(table, hide_index=True, width="stretch",
                     column_config={"score": st.column_config.NumberColumn("score", format="%.3g"),
                                    "label": st.column_config.TextColumn(
                                        "label", help="true intervals: the annotated label; spotted: the class "
                                                      "recognised (spot, then recognise)")})


# --- per subject, per fold ------------------------------------------------------------------------------------
def _subject_section(summary: dict[str, Any]) -> None:
    st.subheader("Per subject")
    table = pd.DataFrame(summary.get("per_subject") or [])
    if table.empty:
        st.caption("The per-subject table appears when every fold has finished.")
        return
    kind = st.segmented_control("type", list(TYPE_WORDS), default="overall", format_func=TYPE_WORDS.get,
                                key=K_TYPE) or "overall"
    view = table[table["type"] == kind].drop(columns="type").rename(
        columns={"tp": "hits", "fn": "misses", "fp": "false alarms", "f1": "F1"})
    for col in ("precision", "recall", "F1"):
        view[col] = view[col].map(_fmt)
    st.dataframe(view, hide_index=True, width="stretch")
    st.caption("Each subject's videos were spotted by the fold that held that subject out. A subject without a true "
               "interval of this type has no recall (–); one without a spotted interval, no precision.")


def _chosen_section(b: dict[str, Any]) -> None:
    folds = b["folds"]
    rows = []
    for f in folds.itertuples():
        row: dict[str, Any] = {"fold": int(f.fold_index) + 1, "held-out subject": f.subject, "status": f.status}
        for kind in ("micro", "macro"):
            p = (f.params or {}).get(kind) or {}
            th = p.get("threshold")
            row |= {f"{kind} threshold": "–" if th is None else f"{th:.3g}", f"{kind} peak distance": p.get("distance"),
                    f"{kind} training F1": _fmt(p.get("train_f1"))}
        rows.append(row)
    with st.expander("what each fold chose, on its training subjects only"):
        st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch")
        st.caption("A grid search per fold and type: the threshold and peak distance with the best F1 on the "
                   "training subjects' videos (for the learned spotter, scored out of fold). The held-out subject's "
                   "videos never reach the choice.")


# --- the page -------------------------------------------------------------------------------------------------
def _run_label(r: dict[str, Any]) -> str:
    f1 = "" if r["f1"] is None or pd.isna(r["f1"]) else f" · F1 {r['f1']:.3f}"
    default = f"spotting ({r['spotter']}) on {r['dataset']}"  # a job's name when none was given
    name = f"{r['name']} · " if r.get("name") and r["name"] != default else ""
    return f"{name}{r['spotter']} on {r['dataset']} · {r['status']}{f1} · {r['id']}"


def _status(run: dict[str, Any], folds_done: int) -> None:
    status = run["status"]
    if status == "done":
        return
    text = f"This run is {status}: {folds_done} of {run['n_folds']} folds stored."
    if status == "running":
        st.info(plain(text + " Their videos are shown below; the scores come when every fold is stored."),
                icon=":material/hourglass_top:")
    else:
        st.warning(plain(text + (f" {run['error']}" if run.get("error") else "")), icon=":material/warning:")


def render() -> None:
    st.title("Spotting")
    st.markdown(INTRO)
    runs = rs.spot_runs()
    with st.expander("Start a spotting run", expanded=runs.empty, icon=":material/add_circle:"):
        _submit_form()
    if runs.empty:
        st.info("No spotting run stored yet: start one above, or with `mer spot` (add `--submit` to queue it).")
        return
    labels = {r["id"]: _run_label(r) for r in runs.to_dict("records")}
    run_id = widgets.pick_id("spotting run", runs["id"].tolist(), param=rs.QP_SPOT, kind="Spotting run",
                             format_func=labels.get, key=K_PICK, where="the spotting runs stored")
    if run_id is None:
        return
    try:
        b = rs.spot_run(run_id)
    except MerError as exc:
        st.error(plain(exc), icon=":material/error:")
        return
    _status(b["run"], int(runs.set_index("id").loc[run_id, "folds_done"]))
    _headline(b)
    _video_section(b)
    _subject_section(b["run"]["summary"])
    _chosen_section(b)
