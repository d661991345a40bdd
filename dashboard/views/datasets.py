"""Datasets: what a dataset holds, its problems, and what a micro-expression looks like.

Pick a dataset; read its counts per class, subject and part and the dataset
check; browse clips (frame slider and animation, onset/apex/offset, the
onset-apex difference, the ground-truth regions of synthetic clips); see the
motion the models see (flow as a colour wheel and as arrows, optical strain)
and the EVM-magnified clip next to the original. Licensed datasets need a root
folder, set here or with ``mer datasets set-root``; the synthetic sets are
generated on demand.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import streamlit as st

from dashboard import glossary, palette, plots_clip, plots_motion, reads, widgets, writes
from dashboard.widgets import plain
from mer_core.datasets import dataset_info, list_datasets
from mer_core.datasets.synthetic import OPTION_SPECS, SynthOptions, showcase_clips
from mer_core.errors import MerError

QP_TAB = "tab"  # the open tab lives in the URL (?tab=Browse+clips)
TABS = ("Summary & check", "Browse clips", "Motion & magnification")


def _pick_dataset() -> str | None:
    return widgets.pick_id("dataset", list_datasets(), param=reads.QP_DATASET, kind="Dataset", default="synthetic",
                           format_func=lambda n: f"{n} — {dataset_info(n).description}",
                           where="the registered datasets")


def _root_form(name: str) -> None:
    roots = reads.dataset_roots()
    current = roots.get(name, "")
    with st.expander(f"Where is {name} on this machine?" + (f" (now: {plain(current)})" if current else ""),
                     expanded=not current):
        st.caption("Licensed datasets are never downloaded: point MER Bench at your own copy, laid out as "
                   "distributed. Stored in cache/datasets.toml (environment variable "
                   f"MER_ROOT_{name.upper().replace('-', '_')} overrides it).")
        with st.form(f"root-{name}"):
            value = st.text_input("root folder", value=current, placeholder=f"/data/{name}")
            if st.form_submit_button("Save root"):
                if not value or not Path(value).expanduser().is_dir():
                    st.error(plain(f"{value or '(empty)'} is not a folder on this machine"))
                else:
                    writes.set_root(name, value)
                    st.success(plain(f"saved: {name} = {value}"))


def _summary(report: dict) -> None:
    if report["fatal"]:
        st.error(plain(report["fatal"]))
        return
    table = report["table"]
    c1, c2, c3, c4 = st.columns(4)
    c1.metric("clips", len(table))
    c2.metric("subjects", table["subject"].nunique())
    c3.metric("classes", table["label"].nunique())
    c4.metric("apex estimated", int(table["apex_estimated"].sum()), help=glossary.tip("apex"))
    c2.caption("one LOSO fold each", help=glossary.tip("LOSO"))
    left, right = st.columns(2)
    with left:
        widgets.chart(plots_clip.class_counts(table), key="ds-class-counts")
    with right:
        widgets.chart(plots_clip.subject_counts(table), key="ds-subject-counts")
    if table["part"].nunique() > 1:
        st.markdown("**Clips per part and class**")
        st.dataframe(table.groupby(["part", "label"]).size().unstack(fill_value=0), width="stretch")
    problems = report["problems"]
    errors = [p for p in problems if p.get("severity") == "error"]
    st.markdown(f"**Dataset check**: {len(errors)} error(s), {len(problems) - len(errors)} other note(s)"
                + (" — usable" if report["usable"] else " — not usable as is"))
    if problems:
        st.dataframe(report["problems_frame"], hide_index=True, width="stretch")


def _showcase_id(name: str, table) -> str | None:
    """The synthetic set's showcase clip (positive first): what the page opens on when no clip is asked for."""
    if name != "synthetic":
        return None

    show = showcase_clips()
    for label in ("positive", *show):
        sid = f"{name}/{show[label]}" if label in show else None
        if sid in set(table["sample_id"]):
            return sid
    return None


def _wanted_sample(name: str, table) -> str | None:
    return st.query_params.get(reads.QP_SAMPLE) or _showcase_id(name, table)


def _clip_picker(table, wanted: str | None = None) -> dict | None:
    c1, c2, c3 = st.columns([1, 1, 2])
    subjects = sorted(table["subject"].unique())
    by_id = table.set_index("sample_id")
    first = subjects.index(by_id.loc[wanted, "subject"]) if wanted in by_id.index else 0
    subject = c1.selectbox("subject", subjects, index=first)
    rows = table[table["subject"] == subject]
    labels = sorted(rows["label"].unique())
    label = c2.selectbox("class", ["(all)"] + labels)
    if label != "(all)":
        rows = rows[rows["label"] == label]
    ids = rows["sample_id"].tolist()
    label_of = dict(zip(table["sample_id"], table["label"]))  # once, not one set_index per option
    sid = c3.selectbox("clip", ids, index=ids.index(wanted) if wanted in ids else 0,
                       format_func=lambda s: f"{s.split('/')[-1]} ({label_of[s]})")
    if sid is None:
        return None
    return by_id.loc[sid].to_dict() | {"sample_id": sid}


def _browse(name: str, options_json: str, table) -> None:
    row = _clip_picker(table, _wanted_sample(name, table))
    if row is None:
        return
    facts = [f"label **{plain(row['label'])}**", f"native emotion {plain(row['emotion'])}"]
    if row.get("action_units"):
        facts.append(f"action units {plain(row['action_units'])}")
    frames = row["frames"]
    if frames:
        facts.append(f"{len(frames)} frames at {row['fps']:g} fps" if row["fps"] else f"{len(frames)} frames")
        facts.append(f":{palette.STREAMLIT_MARKERS['onset']}[onset {row['onset']}], "
                     f":{palette.STREAMLIT_MARKERS['apex']}[apex {row['apex']}]"
                     + (f" ({plain(row['apex_method'])})" if row["apex_estimated"] else "")
                     + f", :{palette.STREAMLIT_MARKERS['offset']}[offset {row['offset']}]")
    st.markdown(" · ".join(facts))
    if not frames:
        st.info("This sample has precomputed inputs only (no frames): see the Motion tab.")
        return
    clip = reads.clip_frames(tuple(frames), 160)
    masks = reads.ground_truth(row.get("mask_path") or "")
    show_masks = bool(masks) and st.toggle("outline the ground-truth regions (true AU motion, blinks)", value=True)
    left, right = st.columns([1.3, 1])
    with left:
        widgets.chart(plots_clip.clip_animation(clip, row["onset"], row["apex"], row["offset"],
                                           masks if show_masks else None), key="ds-clip")
        st.caption("Press ▶ to play, or drag the slider. A micro-expression moves the face by 1-2 pixels: "
                   "compare onset and apex, or look at the Motion tab. " + widgets.FRAME_NUMBERS)
    with right:
        marks = {int(row["onset"]): "onset", int(row["apex"]): "apex", int(row["offset"]): "offset"}
        i = st.select_slider("frame", list(range(len(frames))), value=int(row["apex"]),
                             format_func=lambda t: f"{t} · {marks[t]}" if t in marks else str(t),
                             help="onset, apex and offset are named on the slider")
        widgets.chart(plots_clip.picture_fig(clip[i], f"frame {i}" + (f" ({marks[i]})" if i in marks else ""),
                                             masks=masks if show_masks else None), key="ds-frame")
        diff = clip[row["apex"]] - clip[row["onset"]]
        widgets.chart(plots_clip.signed_image(diff, "apex − onset"), key="ds-clip-diff")


def _motion(name: str, options_json: str, table) -> None:
    row = _clip_picker_light(table, _wanted_sample(name, table))
    c1, c2, c3 = st.columns(3)
    flow = c1.selectbox("optical flow", ["dis", "tvl1", "farneback"],
                        help=glossary.tip("optical flow", "strain",
                                          note="DIS is the fast default; TV-L1 is the papers' choice"))
    alpha = c2.slider("EVM amplification α", 0.0, widgets.EVM_ALPHA_MAX, 10.0, 1.0, help=glossary.tip("EVM"))
    band = c3.slider("EVM pass band (fraction of fps)", 0.01, 0.5, (0.02, 0.2), 0.01,
                     help="0.02-0.2 passes the expression (a few Hz at 100 fps) and little sensor noise")
    pre = {"flow_method": flow, "evm_alpha": alpha, "evm_low": band[0], "evm_high": band[1]}
    try:
        views = reads.sample_views(name, options_json, row["sample_id"], json.dumps(pre), 128)
    except (MerError, ValueError) as exc:  # SampleError: a frame that cannot be read, onset == apex, ...
        st.error(plain(exc))
        return
    info = views["info"]
    st.caption(plain(" · ".join(f"{k}: {v}" for k, v in info.items() if v not in (None, ""))))
    masks = reads.ground_truth(row.get("mask_path") or "")
    a, b, c = st.columns(3)
    if views["onset"] is not None:
        widgets.chart(plots_clip.picture_fig(views["onset"], "onset"), key="ds-onset", where=a)
    if views["apex"] is not None:
        widgets.chart(plots_clip.picture_fig(views["apex"], "apex"), key="ds-apex", where=b)
    if views["diff"] is not None:
        widgets.chart(plots_clip.signed_image(views["diff"], "apex − onset"), key="ds-diff", where=c)
    if views["flow_u"] is not None:
        _flow(views, masks, reads.face_mask(row.get("mask_path") or ""))
    if views.get("magnified_clip") is not None:
        _magnification(views, alpha, reads.magnified_max(name, options_json, row["sample_id"], json.dumps(pre), 128,
                                                         alpha_max=widgets.EVM_ALPHA_MAX))


def _flow(views: dict, masks: dict, face_truth) -> None:
    """Flow as colours (with the wheel that reads them) and as arrows, and strain; the outside of the face greyed."""
    shape = views["flow_u"].shape
    face, face_words = plots_motion.face_region(shape, truth=face_truth, detected=views.get("face_region"))
    background = views["apex"] if views["apex"] is not None else np.full(shape, 0.5, np.float32)
    a, b, c = st.columns(3)
    widgets.chart(plots_motion.flow_colour(views["flow_u"], views["flow_v"], "flow, onset → apex", face),
                  key="ds-flow-rgb", where=a)
    widgets.chart(plots_motion.flow_arrows(background, views["arrows"], "flow arrows", masks, face),
                  key="ds-flow-arrows", where=b)
    widgets.chart(plots_motion.strain_figure(views["strain"], "optical strain", face), key="ds-strain", where=c)
    where = (f"Outside the face ({face_words}, dotted) the pictures are greyed and the arrows thin and grey: "
             "motion there is head drift or camera noise, not the expression." if face is not None else
             "No face region is known for this clip, so the background is drawn as strongly as the face.")
    st.caption("Optical flow from onset to apex: the wheel beside the colours reads them (hue = direction, "
               "brightness = speed); the arrows are drawn many times longer than the motion. **Optical strain** "
               "is how much the skin stretched or squeezed (1 % = a 1 % change of length), from the flow's "
               "spatial derivatives: a head that only slides has none, an expression lights up where the skin "
               f"moves; colours end at the {plots_motion.STRAIN_PERCENTILE:g}th percentile inside the face, "
               f"smoothed over {plots_motion.STRAIN_SMOOTH_PX:g} px. " + where)


def _magnification(views: dict, alpha: float, magnified_max) -> None:
    """Original and magnified apex − onset on one colour scale (the same for every α), and one player with an
    A/B switch."""
    st.markdown("**Eulerian video magnification** — the same clip, motion amplified in the pass band",
                help=glossary.tip("EVM"))
    widgets.evm_comparison(views["clip"], views["magnified_clip"], views["apex_index"] or 0, alpha, key="ds-evm",
                           magnified_max=magnified_max, first=views.get("clip_first") or 0)
    st.caption(f"Both differences share one colour scale, the same for every α on the slider (the range "
               f"α = {widgets.EVM_ALPHA_MAX:g} reaches on this clip): a larger α looks stronger because the "
               "magnified motion is stronger.")


def _clip_picker_light(table, wanted: str | None = None) -> dict:
    ids = table["sample_id"].tolist()
    label_of = dict(zip(table["sample_id"], table["label"]))
    sid = st.selectbox("sample", ids, index=ids.index(wanted) if wanted in ids else 0, key="motion-sample",
                       format_func=lambda s: f"{s} ({label_of[s]})")
    return table[table["sample_id"] == sid].iloc[0].to_dict() | {"sample_id": sid}


def _generate() -> None:
    st.markdown("Generate a synthetic set with other options (it gets its own folder; the default set is "
                "untouched). Same seed and options always give identical files.")
    with st.form("synth"):
        values = {}
        cols = st.columns(3)
        shown = ["subjects", "clips_per_subject", "size", "frames", "amplitude", "noise", "blink_rate", "drift",
                 "seed"]
        defaults = SynthOptions()  # the default set's values
        for i, key in enumerate(shown):
            kind, low, high, _inc, help_text = OPTION_SPECS[key]
            default = getattr(defaults, key)
            col = cols[i % 3]
            if kind == "int":
                values[key] = col.number_input(key, min_value=int(low), max_value=int(high),
                                               value=int(default or low), step=1, help=help_text)
            else:
                values[key] = col.number_input(key, min_value=float(low), max_value=float(high),
                                               value=float(default if default is not None else low), help=help_text)
        submitted = st.form_submit_button("Generate")
    if submitted:
        try:
            options = SynthOptions(**values)
        except MerError as exc:
            st.error(plain(exc))
            return
        with st.spinner("generating…"):
            manifest = writes.generate_synthetic(options)
        st.success(plain(f"written: {manifest}"))
        st.code("mer run --dataset synthetic " + " ".join(f"--dataset-option {k}={v}" for k, v in values.items()))


def render() -> None:
    st.title("Datasets")
    name = _pick_dataset()
    if name is None:
        return
    info = dataset_info(name)
    if info.needs_root:
        _root_form(name)
    options_json = "{}"
    report = reads.dataset_report(name, options_json)
    if report["fatal"] and info.needs_root:
        st.info(plain(report["fatal"]))
        return
    # Lazy tabs bound to ?tab=...: only the open tab runs, so the first visit does not pay for the flow and
    # magnification of the Motion tab (seconds on 2 cores), and a link can open any tab.
    tabs = st.tabs(list(TABS) + (["Generate"] if name.startswith("synthetic") else []), key=QP_TAB,
                   bind="query-params")
    with tabs[0]:
        if tabs[0].open is not False:
            _summary(report)
    if report["fatal"]:
        return
    for tab, body in zip(tabs[1:], (_browse, _motion)):
        with tab:
            if tab.open is not False:
                body(name, options_json, report["table"])
    if len(tabs) > 3:
        with tabs[3]:
            if tabs[3].open is not False:
                _generate()
