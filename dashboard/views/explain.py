"""Explain: where did a model look, and was that the real motion?

One sample of a stored run (``?run=ID&sample=SAMPLE``, the links of the Run
and Compare pages) explained by the fold model that held it out: its frames,
flow, prediction, Captum attributions and the model's own attention overlaid
on the face (true motion regions outlined on synthetic data); a browser of
the run's failure cases with attribution thumbnails; and, for synthetic runs,
the localisation table that tells which method and which model point at the
moved skin; and the Faithfulness tab (views/explain_faithfulness.py): the
run-level report of faithfulness, sanity and localisation measures, computed
as a background job. Everything is cached in the run folder.
"""
from __future__ import annotations

import time
from typing import Any

import cv2
import numpy as np
import pandas as pd
import streamlit as st

from dashboard import glossary, palette, plots, reads, widgets
from dashboard.views import explain_faithfulness
from dashboard.widgets import plain
from mer_core.errors import MerError
from mer_core.explain.attributions import METHODS
from mer_core.explain.localisation import score_map
from mer_core.explain.report import MEASURES
from mer_core.preprocess.flow import flow_to_rgb

# session-state keys
K_VIEW = "explain_view"
K_METHODS = "explain_methods"
K_OPACITY = "explain_opacity"
K_FAIL_PAGE = "explain_fail_page"
K_LOC_STOP = "explain_localisation_stop"
VIEWS = ("Sample", "Failure cases", "Localisation", "Faithfulness")
METHOD_LABELS = {
    "integrated_gradients": "Integrated Gradients", "saliency": "Saliency", "gradcam": "Grad-CAM",
    "occlusion": "Occlusion", "smoothgrad": "SmoothGrad", "attention": "model attention",
}
AU_COLOUR = palette.rgb(palette.AU)
BLINK_COLOUR = palette.rgb(palette.BLINK)
THUMBS_PER_PAGE = 12


def pick_sample(ov: dict[str, Any]) -> str | None:
    pred = ov["predictions"].set_index("sample_id") if len(ov["predictions"]) else pd.DataFrame()
    ids = [s for s in ov["samples"] if s in pred.index] or list(ov["samples"])
    if not ids:
        st.info("This run has no tested sample yet.")
        return None
    classes = ov["classes"]

    def label(sid: str) -> str:
        if sid not in pred.index:
            return sid
        r = pred.loc[sid]
        mark = "✓" if r.y_true == r.y_pred else "✗"
        return f"{mark} {sid} · true {classes[r.y_true]} → predicted {classes[r.y_pred]}"

    return widgets.pick_id("sample", ids, param=reads.QP_SAMPLE, kind="Sample", format_func=label,
                           where=f"run {ov['run']['id']} ({len(ids)} samples)")


def _open_sample(sample_id: str) -> None:
    st.query_params[reads.QP_SAMPLE] = sample_id
    st.session_state[K_VIEW] = VIEWS[0]


# --- pictures ---------------------------------------------------------------------------------


def face_for(view: dict[str, Any]) -> np.ndarray | None:
    """The face under the overlays, aligned with the model input (same crop and size)."""
    if view.get("face") is not None:
        return view["face"]
    return view["frames"].get("apex")


def flow_picture(view: dict[str, Any], channels: list[str]) -> tuple[np.ndarray | None, str]:
    x = view["input"]
    if "flow_u" in channels and "flow_v" in channels:
        u, v = x[channels.index("flow_u")], x[channels.index("flow_v")]
        return flow_to_rgb(u, v), "flow (model input): hue = direction, brightness = speed"
    if "diff" in channels:
        return plots.heat_rgb(np.abs(x[channels.index("diff")])), "|apex − onset| (model input)"
    return None, ""


def _upscale(img: np.ndarray | None, size: int = 224) -> np.ndarray | None:
    if img is None:
        return None
    a = np.asarray(img)
    if a.dtype != np.uint8:
        lo, hi = float(a.min()), float(a.max())
        a = ((a - lo) / (hi - lo if hi > lo else 1) * 255).astype(np.uint8)
    h, w = a.shape[:2]
    return cv2.resize(a, (size, max(1, int(size * h / w))), interpolation=cv2.INTER_NEAREST if h < 64 else cv2.INTER_AREA)


def outlines(view: dict[str, Any], show: bool) -> list[tuple[np.ndarray, tuple[int, int, int]]]:
    masks = view.get("masks")
    if not show or not masks:
        return []
    out = [(masks["au"], AU_COLOUR)]
    if masks["blink"].any():
        out.append((masks["blink"], BLINK_COLOUR))
    return out


# --- the sample view -------------------------------------------------------------------------


def sample_section(run_id: str, sid: str, ov: dict[str, Any]) -> None:
    view = reads.sample_view(run_id, sid)
    channels, classes = ov["channels"], ov["classes"]
    _sample_header(view, channels, classes)
    methods, target, opacity, opts, att_slot, show_masks = _map_controls(view, ov)
    if not methods:
        st.info("Choose at least one method.")
        return
    face = face_for(view)
    results, first_attr = _compute_maps(run_id, sid, methods, target, opts, classes, att_slot)
    _draw_maps(results, face, view, opacity, show_masks)
    st.caption("Maps come from the fold model that never saw this clip. Attributions: sum over input channels of "
               "|attribution|; Grad-CAM: ReLU of the layer map, upsampled; each map is scaled to its own maximum.")
    if "attention" in methods and ov["has_attention"]:
        attention_details(run_id, sid, face, opacity)
    if first_attr is not None and first_attr.channels:
        with st.expander(f"per input channel ({METHOD_LABELS[first_attr.method]}, signed: red = for the class, "
                         "blue = against)"):
            pictures, top = channel_pictures(first_attr.channels, face)
            st.caption(f"One signed scale for every channel: full red = +{top:.3g}, full blue = −{top:.3g}; the face "
                       "shows through where a channel's attribution is near zero.")
            ch_cols = st.columns(len(first_attr.channels))
            for col, name, pic in zip(ch_cols, first_attr.channels, pictures):
                col.image(pic, caption=plain(name), width="stretch")


def _sample_header(view: dict[str, Any], channels: list[str], classes: list[str]) -> None:
    """Onset and apex frames, the flow input, and the stored prediction of one clip."""
    pred = view["prediction"]
    c1, c2, c3, c4 = st.columns([1, 1, 1, 1.4])
    onset = view["frames"].get("onset")
    apex = view["frames"].get("apex")
    c1.image(_upscale(onset), caption="onset frame") if onset is not None else c1.caption("no onset frame")
    c2.image(_upscale(apex), caption="apex frame") if apex is not None else c2.caption("no apex frame")
    flow, flow_caption = flow_picture(view, channels)
    if flow is not None:
        c3.image(_upscale(flow), caption=flow_caption)
    with c4:
        if pred:
            right = pred["y_true"] == pred["y_pred"]
            st.markdown(f"**{'correct' if right else 'wrong'}**: true **{plain(classes[pred['y_true']])}**, "
                        f"predicted **{plain(classes[pred['y_pred']])}** · fold {pred['fold']}")
            st.plotly_chart(plots.probability_bars(pred["probs"], classes, true=pred["y_true"],
                                                   pred=None if right else pred["y_pred"]), width="stretch", config=widgets.chart_config("explain-1"))
        else:
            st.caption("no stored prediction for this sample")
        row = view["row"]
        st.caption(plain(f"subject {row.get('subject')} · clip {row.get('clip')} · input {', '.join(channels)} "
                         f"({view['input'].shape[-1]} px)"))


def _map_controls(view: dict[str, Any], ov: dict[str, Any]) -> tuple[list[str], str, float, dict, Any, bool]:
    """Methods, target class, opacity, per-method options, the attention-map slot and the outline toggle."""
    options = list(METHOD_LABELS) if ov["has_attention"] else [m for m in METHOD_LABELS if m != "attention"]
    default = ["integrated_gradients", "gradcam"] + (["attention"] if ov["has_attention"] else [])
    k1, k2, k3 = st.columns([2.4, 1, 1.2])
    methods = k1.multiselect("methods", options, default=[m for m in default if m in options], key=K_METHODS,
                             format_func=METHOD_LABELS.get)
    target_kind = k2.radio("explain the class", ["predicted", "true"], horizontal=True,
                           help="predicted: why the model said what it said (useful for failures); "
                                "true: where the evidence for the right answer is")
    opacity = k3.slider("map opacity", 0.0, 1.0, 0.6, 0.05, key=K_OPACITY)
    opts: dict[str, dict[str, Any]] = {}
    e1, e2, e3 = st.columns([1.2, 1.2, 1])
    if "gradcam" in methods and ov["gradcam_layers"]:
        layer = e1.selectbox("Grad-CAM layer", ["(coarsest)"] + ov["gradcam_layers"])
        if layer != "(coarsest)":
            opts["gradcam"] = {"layer": layer}
    show_masks = view.get("masks") is not None and e3.toggle(
        "outline true regions", value=True, help=glossary.tip("AU", note=f"{palette.AU_NAME}: skin moved by the "
                                                  f"expression (true action units); {palette.BLINK_NAME}: blink "
                                                  "(distractor motion)"))
    return methods, "pred" if target_kind == "predicted" else "true", opacity, opts, e2, bool(show_masks)


def _compute_maps(run_id: str, sid: str, methods: list[str], target: str, opts: dict, classes: list[str],
                  att_slot: Any) -> tuple[list[tuple[str, np.ndarray | None, str]], Any]:
    """(method, map or None, note) per method, and the first attribution (for the per-channel view)."""
    results: list[tuple[str, np.ndarray | None, str]] = []
    first_attr = None
    for method in methods:
        try:
            with st.spinner(f"{METHOD_LABELS[method]}…"):
                if method == "attention":
                    att = reads.attention(run_id, sid)
                    names = att.names()
                    att_map = att_slot.selectbox("attention map", names, index=names.index(att.aggregate))
                    results.append((method, att.maps[att_map],
                                    f"{att_map} (input-size; {'token grid' if att.heads else 'gates'})"))
                else:
                    e = reads.explanation(run_id, sid, method, target, **opts.get(method, {}))
                    first_attr = first_attr or e
                    note = f"class {classes[e.target]} · {e.seconds:.2f} s" + (" · cached" if e.options.get("cached") else "")
                    if method == "gradcam":
                        note += f" · layer {e.options.get('layer')}"
                    results.append((method, e.combined, note))
        except MerError as exc:
            results.append((method, None, str(exc)))
    return results, first_attr


def _draw_maps(results: list[tuple[str, np.ndarray | None, str]], face: np.ndarray | None, view: dict[str, Any],
               opacity: float, show_masks: bool) -> None:
    """One overlay per method, with its localisation scores on synthetic clips."""
    masks = view.get("masks")
    widgets.heat_scale("attribution (evidence for the class)", where=st.columns(3)[0])
    cols = st.columns(min(len(results), 4))
    for i, (method, heat, note) in enumerate(results):
        with cols[i % len(cols)]:
            st.markdown(f"**{METHOD_LABELS[method]}**")
            if heat is None:
                st.error(plain(note))
                continue
            st.image(plots.overlay_image(face, heat, opacity=opacity, outlines=outlines(view, show_masks)),
                     width="stretch")
            caption = plain(note)
            if not np.any(heat > 0):
                st.caption(caption + " · empty map: no positive evidence here (for Grad-CAM, the ReLU removed every "
                                     "negative contribution; try another layer or the other class)")
                continue
            if masks is not None:
                caption += score_caption(score_map(heat, masks["au"], masks["blink"]))
            st.caption(caption)


def attention_details(run_id: str, sid: str, face: np.ndarray | None, opacity: float) -> None:
    """Every attention map of the model, its heads and channel weights, in an expander."""
    try:
        att = reads.attention(run_id, sid)
    except MerError:
        return
    with st.expander(f"model attention: all {len(att.maps)} maps"
                     + (", heads" if att.heads else "") + (", channel weights" if att.vectors else "")):
        names = att.names()
        widgets.heat_scale("attention weight", where=st.columns(3)[0])
        cols = st.columns(5)
        for i, name in enumerate(names):
            shape = att.native_shapes.get(name)
            cap = name + (f" ({shape[0]}x{shape[1]})" if shape else "")
            cols[i % len(cols)].image(plots.overlay_image(face, att.maps[name], opacity=opacity, size=160),
                                      caption=cap, width="stretch")
        if att.heads:
            which = st.selectbox("heads of", list(att.heads))
            heads = att.heads[which]
            hcols = st.columns(6)
            for h, hm in enumerate(heads):
                hcols[h % len(hcols)].image(plots.overlay_image(face, hm, opacity=opacity, size=140),
                                            caption=f"head {h}", width="stretch")
        for name, vec in att.vectors.items():
            st.caption(f"{name}: channel gate per feature map (0..1), mean {float(np.mean(vec)):.2f}")
            st.bar_chart(pd.DataFrame({"weight": vec}), height=120)


def channel_pictures(channels: dict[str, np.ndarray], face: np.ndarray | None,
                     size: int = 192) -> tuple[list[np.ndarray], float]:
    """Signed per-channel maps on the face, on one shared scale (red = for the class, blue = against).

    Returns the RGB pictures in channel order and the shared scale (the largest |attribution| of any channel).
    """
    top = max((float(np.abs(a).max()) for a in channels.values()), default=0.0) or 1.0
    if face is not None:
        g = np.asarray(face, np.float32)
        g = (g - g.min()) / (float(g.max() - g.min()) or 1.0)
        base = cv2.resize(g, (size, size), interpolation=cv2.INTER_AREA if g.shape[0] > size else cv2.INTER_LINEAR)
        base = np.repeat((60 + 150 * base)[..., None], 3, axis=2)  # dimmed face: colours stay readable on it
    else:
        base = np.full((size, size, 3), 200.0)
    red, blue = np.array(palette.rgb(palette.BAD), np.float32), np.array(palette.rgb(palette.ACCENT), np.float32)
    out = []
    for arr in channels.values():
        a = cv2.resize(np.asarray(arr, np.float32) / top, (size, size), interpolation=cv2.INTER_LINEAR)
        alpha = np.sqrt(np.clip(np.abs(a), 0, 1))[..., None]
        colour = np.where(a[..., None] >= 0, red, blue)
        out.append(np.clip(base * (1 - alpha) + colour * alpha, 0, 255).astype(np.uint8))
    return out, top


def score_caption(s: dict[str, float]) -> str:
    """Localisation scores of one map in words, with the pointing game explained and a below-chance sentence."""
    text = (f" · on true AUs {s['au_share']:.0%} (chance {s['au_area']:.0%}), on blinks {s['blink_share']:.0%}"
            f" · pointing {'hit' if s['pointing'] == 1 else 'miss'} (pointing game: is the map's strongest pixel "
            "inside a true AU region? hit = yes, miss = no)")
    if s["au_share"] < s["au_area"]:
        text += (f". Below chance: this map puts less of its mass on the moved skin than a uniform map would "
                 f"({s['au_share']:.0%} < {s['au_area']:.0%}), so here it points away from the real motion.")
    return text


# --- failure cases --------------------------------------------------------------------------


def failures_section(run_id: str, ov: dict[str, Any]) -> None:
    fails = ov["failures"]
    if fails.empty:
        st.success("No misclassified sample in this run.")
        return
    classes = ov["classes"]
    left, right = st.columns([3.6, 1])
    with left:
        view = widgets.filters(fails, [("true", "true class", classes), ("predicted", "predicted class", classes),
                                       ("subject", "subject", sorted(fails["subject"].unique()))],
                               key="explain_fail", widths=[1, 1, 1.6])
    thumbs = right.toggle("thumbnails", value=ov["has_checkpoints"], disabled=not ov["has_checkpoints"],
                          help="Saliency of the predicted (wrong) class, from the fold model that held the clip out")
    st.caption(f"{len(view)} of {len(fails)} misclassified clips, most confident wrong answers first "
               f"(confidence = probability of the wrong class).")
    if view.empty:
        return
    pages = (len(view) - 1) // THUMBS_PER_PAGE + 1
    page = 1
    if pages > 1:
        page = int(st.columns([1, 4])[0].number_input(f"page (of {pages})", 1, pages, 1, key=K_FAIL_PAGE))
    chunk = view.iloc[(page - 1) * THUMBS_PER_PAGE: page * THUMBS_PER_PAGE]
    cols = st.columns(4)
    for i, r in enumerate(chunk.itertuples(index=False)):
        with cols[i % 4]:
            with st.container(border=True):
                if thumbs:
                    try:
                        sv = reads.sample_view(run_id, r.sample_id)
                        e = reads.explanation(run_id, r.sample_id, "saliency", "pred")
                        st.image(plots.overlay_image(face_for(sv), e.combined, opacity=0.6,
                                                     outlines=outlines(sv, True), size=160), width="stretch")
                    except MerError as exc:
                        st.caption(f"no thumbnail: {plain(exc)}")
                st.markdown(f"**{plain(r.true)} → {plain(r.predicted)}** ({r.confidence:.2f})")
                st.caption(plain(f"{r.sample_id} · {r.subject}"))
                st.button("explain", key=f"explain_open_{r.sample_id}", on_click=_open_sample, args=(r.sample_id,),
                          width="stretch")
    with st.expander("all filtered failure cases (table)"):
        links = {"explain": widgets.Link("explain", [{reads.QP_RUN: run_id, reads.QP_SAMPLE: s}
                                                     for s in view["sample_id"]])}
        widgets.link_table(view.assign(explain=widgets.OPEN), links, key="explain-failures", hide_index=True,
                           width="stretch", column_config={
                               "confidence": st.column_config.NumberColumn(format="%.3f"),
                               "p_true": st.column_config.NumberColumn("p(true)", format="%.3f")})


# --- localisation --------------------------------------------------------------------------


def _compute_localisation(key: tuple) -> pd.DataFrame | None:
    """The button, then the computation with a progress bar moved after every clip and a Stop button.

    Any click (Stop, another widget, another page) reruns the page, which ends the computation at the next
    clip: the page stays usable. Nothing of a stopped computation is kept (scores are cached whole)."""
    slot = st.empty()
    with slot.container():
        if st.session_state.get(K_LOC_STOP):
            st.caption("Stopped: nothing was kept. Fewer samples per run take less time.")
        st.caption("Not computed yet for this choice: every method runs on every chosen clip (Integrated "
                   "Gradients with 16 steps, SmoothGrad with 8 samples); results are cached in each run's folder.")
        clicked = st.button("Compute localisation table", type="primary")
    if not clicked:
        return None
    slot.empty()
    live = st.empty()
    with live.container():
        bar = st.progress(0.0, text="computing maps and scores: starting…")
        st.button("Stop", key=K_LOC_STOP, help="stops after the clip being computed; so does any other click")
    counted = {"total": 0}

    def progress(done: int, total: int, message: str) -> None:
        counted["total"] = total
        bar.progress(min(done / max(total, 1), 1.0), text=plain(f"computing maps and scores: {message} "
                                                                 f"({done} of {total} clips)"))

    start = time.perf_counter()
    try:
        table = reads.localisation(*key, compute=True, progress=progress)
    except MerError as exc:
        live.empty()
        st.error(plain(exc))
        return None
    live.empty()
    st.caption(plain(f"Computed on {counted['total']} clips in {time.perf_counter() - start:.0f} s; cached in "
                     "each run's folder." if counted["total"] else "Read from the runs' folders."))
    return table


def localisation_section(run_id: str, ov: dict[str, Any]) -> None:
    if not ov["has_masks"]:
        st.info("The localisation score needs ground-truth motion masks, which only the synthetic dataset has "
                "(real datasets never say which pixels moved). Pick a run on the synthetic dataset.")
        return
    if not ov["has_checkpoints"]:
        st.error(plain(f"Run {run_id} has no fold checkpoints, so its maps cannot be computed."))
        return
    runs = reads.runs_table()
    same = runs[(runs["dataset"] == ov["run"]["dataset"]) & (runs["status"].isin(["done", "partial"]))]
    labels = {rid: widgets.run_label(row) for rid, row in zip(same["id"], same.to_dict("records"))}
    ids = list(same["id"]) if run_id in set(same["id"]) else [run_id, *same["id"]]
    chosen = st.multiselect("runs (one row per model)", ids, default=[run_id], format_func=lambda r: labels.get(r, r),
                            help="add runs of other models on the same synthetic set to compare where they look")
    m1, m2 = st.columns([3, 1])
    methods = m1.multiselect("methods", [*METHODS, "attention"], default=[*METHODS, "attention"],
                             format_func=METHOD_LABELS.get)
    n = int(m2.number_input("samples per run", 4, 200, 24, step=4,
                            help="evenly spread over the run's clips; more = slower, steadier"))
    if not chosen or not methods:
        return
    key = (tuple(chosen), tuple(methods), n)
    try:
        table = reads.localisation(*key)
    except MerError as exc:
        st.error(plain(exc))
        return
    if table is None:
        table = _compute_localisation(key)
        if table is None:
            return
    table = table.assign(method=table["method"].map(lambda m: METHOD_LABELS.get(m, m)))
    metric = st.radio("score", ["au_share", "blink_share", "pointing"], horizontal=True,
                      format_func={"au_share": "mass on true AUs ↑", "blink_share": "mass on blinks ↓",
                                   "pointing": "pointing game ↑"}.get)
    st.plotly_chart(plots.localisation_bars(table, metric), width="stretch", config=widgets.chart_config("explain-2"))

    named = {k: st.column_config.NumberColumn(MEASURES[k][0], format="%.3f", help=MEASURES[k][3])
             for k in ("rank_accuracy", "roc_auc", "topk_iou") if k in MEASURES}
    st.dataframe(table, hide_index=True,
                 width="stretch", column_config={
                     **named,
                     "iou_chance": st.column_config.NumberColumn("top-K IoU (chance)", format="%.3f"),
                     "au_share": st.column_config.NumberColumn("on true AUs", format="%.3f", help=MEASURES["au_share"][3]),
                     "blink_share": st.column_config.NumberColumn("on blinks", format="%.3f",
                                                                  help=MEASURES["blink_share"][3]),
                     "pointing": st.column_config.NumberColumn("pointing hits", format="%.3f",
                                                               help=MEASURES["pointing"][3]),
                     "au_area": st.column_config.NumberColumn("AU area (chance)", format="%.3f"),
                     "n": st.column_config.NumberColumn("maps", help="maps scored"),
                     "n_empty": st.column_config.NumberColumn("empty", help="all-zero maps (e.g. Grad-CAM after ReLU), "
                                                                          "left out of the means")})
    for r in table.itertuples(index=False):
        if r.au_share < r.au_area:
            st.warning(plain(f"{r.model}'s {r.method} puts {r.au_share:.0%} of its mass on the true AUs, less than a "
                             f"uniform map would ({r.au_area:.0%}): below chance, it points away from the motion "
                             "on these clips."), icon=":material/report:")
    st.caption("Share of the map's positive mass inside the true action-unit regions (chance level = their area), "
               "on blink regions (distractor motion), and how often the map's maximum falls inside the true "
               "region (pointing game: a hit when the strongest pixel is inside). Maps explain each clip's "
               "predicted class, by the fold model that held it out.")


def render() -> None:
    st.title("Explain")
    st.caption("Where did the model look, and was that the real motion? Each clip is explained by the fold model "
               "that never saw it.")
    runs = reads.runs_table()
    finished = runs["status"].isin(["done", "partial"]).tolist() if not runs.empty else []
    # finished runs first (newest first), so the default is a run whose clips can be explained
    order = [r for r, f in zip(runs.get("id", []), finished) if f] + [r for r, f in zip(runs.get("id", []), finished) if not f]
    run_id = widgets.pick_run("then explain its clips here.", only=order)
    if run_id is None:
        return
    try:
        ov = reads.explain_overview(run_id)
    except MerError as exc:
        st.error(plain(exc))
        return
    run = ov["run"]
    label = reads.preset_labels((run_id,)).get(run_id, f"{run['preset']} preset")
    st.caption(plain(f"{run['model']} ({label}) on {run['dataset']} · {len(ov['samples'])} clips · ")
               + f"{len(ov['failures'])} misclassified · status **{run['status']}**")
    if not ov["has_checkpoints"]:
        st.error(plain(f"Run {run_id} has no fold checkpoints (it was run with keep_checkpoints=false, or no fold has "
                 "finished), so its predictions cannot be explained. Re-run it with keep_checkpoints on."))
    view = st.segmented_control("view", VIEWS, default=VIEWS[0], key=K_VIEW, label_visibility="collapsed") or VIEWS[0]
    if view == VIEWS[0]:
        sid = pick_sample(ov)
        if sid is None or not ov["has_checkpoints"]:
            return
        try:
            sample_section(run_id, sid, ov)
        except MerError as exc:
            st.error(plain(exc))
    elif view == VIEWS[1]:
        failures_section(run_id, ov)
    elif view == VIEWS[2]:
        localisation_section(run_id, ov)
    else:
        explain_faithfulness.section(run_id, ov, METHOD_LABELS)
