"""Lesson: one synthetic micro-expression, step by step, for a class.

Each step is a picture first and two sentences after: the clip at real speed
and slowed down; onset, apex and offset; the apex - onset difference; the clip
magnified (EVM) on the original's colour scale; optical flow as arrows and
strain as a heat map; the action units that moved, outlined; what a model is
given; where a trained model looked. It opens on the showcase clip of the
chosen class (no blink near the apex, clear motion). Terms are defined in
:mod:`dashboard.glossary`.
"""
from __future__ import annotations

import json

import cv2
import numpy as np
import streamlit as st

from dashboard import glossary, palette, plots, plots_clip, plots_motion, reads, widgets
from dashboard.widgets import plain
from mer_core.datasets.synthetic import load_masks, showcase_clips
from mer_core.errors import MerError

DATASET = "synthetic"
# a display band that passes the expression (a few Hz at 100 fps) and little sensor noise
LESSON_EVM = {"evm_alpha": 10.0, "evm_low": 0.02, "evm_high": 0.2}
MODEL_SIZE = 28  # the baseline's input size (mer_core.models defaults)
STEPS = ("1 · the clip", "2 · onset, apex, offset", "3 · apex − onset", "4 · magnified", "5 · flow and strain",
         "6 · action units", "7 · model input", "8 · where a model looked")


def _step(title: str, text: str) -> None:
    """The two sentences under a step's picture."""
    st.markdown(f"#### {title}")
    st.markdown(text)


def _pick_clip(table) -> dict | None:
    show = showcase_clips()
    ids = {label: f"{DATASET}/{key}" for label, key in show.items()}
    ids = {label: sid for label, sid in ids.items() if sid in set(table["sample_id"])}
    if not ids:
        st.warning("No showcase clip found in the synthetic set.")
        return None
    labels = list(ids)
    default = labels.index("positive") if "positive" in labels else 0
    label = st.segmented_control("expression to study", labels, default=labels[default], key="lesson-class",
                                 help=glossary.tip("micro-expression")) or labels[default]
    row = table.set_index("sample_id").loc[ids[label]].to_dict() | {"sample_id": ids[label]}
    st.caption(plain(f"Showcase clip {ids[label]} ({row['label']}): no blink near the apex, clear motion. "
                     + widgets.FRAME_NUMBERS))
    return row


def _clip_step(clip: np.ndarray, row: dict) -> None:
    fps = float(row.get("fps") or 100.0)
    real_ms = max(10, int(round(1000 / fps)))
    a, b = st.columns(2)
    with a:
        widgets.chart(plots_clip.clip_animation(clip, row["onset"], row["apex"], row["offset"], frame_ms=real_ms,
                                           title=f"real speed ({fps:g} frames per second)"), key="lesson-real")
    with b:
        widgets.chart(plots_clip.clip_animation(clip, row["onset"], row["apex"], row["offset"], frame_ms=real_ms * 15,
                                           title="slowed down 15 times"), key="lesson-slow")
    _step(STEPS[0], f"Press ▶ on both: at real speed the whole clip lasts {len(clip) / fps:.2f} s and the face "
          "hardly seems to change. Slowed down you may just catch it: a micro-expression moves the skin by "
          "one or two pixels for a fraction of a second.")


def _markers_step(clip: np.ndarray, row: dict) -> None:
    cols = st.columns(3)
    for col, name in zip(cols, ("onset", "apex", "offset")):
        with col:
            widgets.chart(plots_clip.picture_fig(clip[int(row[name])], f"{name}: frame {row[name]}"),
                          key=f"lesson-{name}")
    c = palette.STREAMLIT_MARKERS
    _step(STEPS[1], f"Three frames name the expression's timing: :{c['onset']}[onset] (it starts), "
          f":{c['apex']}[apex] (strongest) and :{c['offset']}[offset] (the face is back at rest). "
          "Datasets mark them by hand; side by side the three still look the same.")


def _diff_step(clip: np.ndarray, row: dict, masks: dict) -> None:
    diff = clip[int(row["apex"])] - clip[int(row["onset"])]
    left, right = st.columns([1, 1])
    with left:
        widgets.chart(plots_clip.signed_image(cv2.GaussianBlur(diff, (0, 0), 1.0), "apex − onset",
                                         plots_clip.shared_bound(diff)), key="lesson-diff")
    with right:
        widgets.chart(plots_clip.picture_fig(clip[int(row["apex"])], "apex, true motion outlined",
                                             masks={"au": masks["au"]} if "au" in masks else None),
                      key="lesson-diff-masks")
    _step(STEPS[2], "Subtracting the onset frame from the apex frame leaves only what changed: red where the "
          "image got darker, blue where it got brighter. The strong spots sit inside the "
          f"{palette.AU_NAME} outline of the true motion; the grain everywhere else is camera noise.")


def _magnify_step(views: dict, magnified_max) -> None:
    widgets.evm_comparison(views["clip"], views["magnified_clip"], views["apex_index"] or 0,
                           LESSON_EVM["evm_alpha"], key="lesson-evm", blur=1.0, frame_ms=150,
                           magnified_max=magnified_max, first=views.get("clip_first") or 0)
    _step(STEPS[3], "Eulerian video magnification amplifies, pixel by pixel, the changes that happen at the "
          "speed of an expression, so the same motion becomes ten times larger. Both differences above share "
          f"one colour scale (the one the Datasets page uses for every α up to {widgets.EVM_ALPHA_MAX:g}): the "
          "magnified one is stronger because the motion is, and in B the expression is visible without help.")


def _flow_step(views: dict, masks: dict) -> None:
    face, _ = plots_motion.face_region(views["apex"].shape, truth=masks.get("face"), detected=views.get("face_region"))
    au = {"au": masks["au"]} if "au" in masks else None
    left, middle, right = st.columns(3)
    with left:
        widgets.chart(plots_motion.flow_arrows(views["apex"], views["arrows"], "flow arrows", au, face), key="lesson-flow")
    with middle:
        widgets.chart(plots_motion.flow_colour(views["flow_u"], views["flow_v"], "flow as colours", face),
                      key="lesson-flow-colour")
    with right:
        widgets.chart(plots_motion.strain_figure(views["strain"], "optical strain", face), key="lesson-strain")
    _step(STEPS[4], "Optical flow measures, for every pixel, how far and where it moved from onset to apex: as "
          "arrows drawn many times longer than the motion, and as colours read by the wheel (hue = direction, "
          "brightness = speed). Strain is how much the skin stretched or squeezed (1 % = a 1 % change of "
          "length): bright spots are the expression, while a head that merely slides stays dark. Outside the "
          "face (dotted) everything is greyed: motion there is drift or camera noise.")


def _au_figure(apex: np.ndarray, masks: dict):
    regions = {f"AU{int(au)}": masks["au_regions"][k] for k, au in enumerate(masks.get("au_units", []))}
    return plots_clip.au_regions(apex, regions, "action units that moved")


def _au_step(views: dict, masks: dict, row: dict) -> None:
    left, right = st.columns([1, 1.2])
    with left:
        widgets.chart(_au_figure(views["apex"], masks), key="lesson-aus")
    with right:
        units = glossary.parse_action_units(row.get("action_units", ""))
        for au, side in units:
            st.markdown(f"- **{plain(glossary.au_phrase(au))}**{glossary.SIDES[side]}")
    _step(STEPS[5], "Psychologists describe an expression as facial action units (AUs), one per muscle "
          f"movement; this {plain(row['label'])} clip moves the ones listed, each outlined on the face. "
          "A model is never told the AUs: it has to find them in the motion.")


def _input_step(views: dict) -> None:
    cols = st.columns(3)
    maps = {"flow_u (left-right motion)": views["flow_u"], "flow_v (up-down motion)": views["flow_v"],
            "strain": views["strain"]}
    for col, (name, m) in zip(cols, maps.items()):
        small = cv2.resize(np.asarray(m, np.float32), (MODEL_SIZE, MODEL_SIZE), interpolation=cv2.INTER_AREA)
        figure = plots_clip.heat_image if name == "strain" else plots_clip.signed_image  # strain is never negative
        with col:
            widgets.chart(figure(small, name), key=f"lesson-input-{name[:6]}")
    _step(STEPS[6], f"A model is not shown the video: it gets a few {MODEL_SIZE}×{MODEL_SIZE} maps computed from "
          "onset and apex, here the baseline's horizontal flow, vertical flow and strain. Everything it knows "
          "about the expression has to be in these small pictures.")


def _trained_runs(n_clips: int) -> list[dict]:
    """Finished LOSO runs on the default synthetic set, best pooled UF1 first (a lesson shows the model
    that learnt most): under LOSO every clip was a test clip once, and a run that tested ``n_clips``
    clips ran on this set (not on a generated variant)."""
    runs = reads.runs_table()
    if runs.empty:
        return []
    done = runs[(runs["status"] == "done") & (runs["dataset"] == DATASET) & (runs["protocol"] == "loso")
                & (runs["n_samples"] == n_clips)]
    return done.sort_values("uf1", ascending=False)[["id", "model", "uf1"]].to_dict("records")


def _looked_step(sample_id: str, n_clips: int) -> None:
    candidates = _trained_runs(n_clips)
    if not candidates:
        st.info("No finished LOSO run on the synthetic set is stored yet, so no model can show where it looked. "
                "Train one on the New experiment page (dataset synthetic, model baseline) or run "
                "`mer run --dataset synthetic --model baseline`, then come back.")
        _step(STEPS[7], "A trained model can show which pixels of its input decided its answer. Once a run "
              "exists, this step draws that map over the face with the true motion outlined.")
        return
    problems = []
    for run in candidates[:3]:  # a run without fold checkpoints cannot explain: try the next one
        run_id = str(run["id"])
        try:
            view = reads.sample_view(run_id, sample_id)
            heat = reads.explanation(run_id, sample_id, "saliency", "pred").combined
            break
        except (MerError, KeyError, ValueError) as exc:
            problems.append(f"run {run_id}: {exc}")
    else:
        st.info(plain("No stored run can explain this clip (" + "; ".join(problems) + "). Open the Explain page "
                      "for the clips of a run that kept its fold checkpoints."))
        return
    masks = view.get("masks") or {}
    outlines = [(masks["au"], palette.rgb(palette.AU))] if "au" in masks else []
    left, right = st.columns([1, 1.2])
    with left:
        st.image(plots.overlay_image(view["face"], heat, opacity=0.6, outlines=outlines, size=320),
                 caption=plain(f"saliency of run {run_id} ({run['model']}, LOSO UF1 {run['uf1']:.2f}), "
                                 f"true motion in {palette.AU_NAME}"))
        widgets.heat_scale("saliency (how much each pixel moves the prediction)")
    with right:
        pred = view.get("prediction") or {}
        if pred:
            correct = pred["y_true"] == pred["y_pred"]
            st.markdown(plain(f"true class: {pred['true']} · predicted: {pred['predicted']} "
                              f"({'right' if correct else 'wrong'})"))
            if not correct:
                st.markdown("This model got the clip wrong, so the map shows what misled it: bright areas "
                            "outside the outline are motion it mistook for the expression.")
        widgets.page_link("explain", "Open this clip on the Explain page", icon=":material/visibility:",
                          query_params={reads.QP_RUN: run_id, reads.QP_SAMPLE: sample_id})
    _step(STEPS[7], "The bright areas are the input pixels that changed the model's answer most, computed by "
          "the model that never saw this person. A model that looked at the right place lights up inside the "
          f"{palette.AU_NAME} outline, not on the eyes of a blink or on the background.")


def _glossary() -> None:
    with st.expander("Words used on this page and everywhere in MER Bench"):
        for term, text in glossary.TERMS.items():
            st.markdown(f"**{plain(term)}**: {plain(text)}")


def render() -> None:
    st.title("Lesson: what a micro-expression is")
    st.markdown("One synthetic clip, step by step: each step is a picture first and two sentences after. "
                "Synthetic faces come with the truth real data never has: which action units moved, and where.")
    _glossary()
    report = reads.dataset_report(DATASET, frames="none")  # the table only: no frame check
    if report["fatal"]:
        st.error(plain(report["fatal"]))
        return
    row = _pick_clip(report["table"])
    if row is None:
        return
    clip = reads.clip_frames(tuple(row["frames"]), 160)
    masks = load_masks(row["mask_path"]) if row.get("mask_path") else {}
    try:
        views = reads.sample_views(DATASET, "{}", row["sample_id"], json.dumps(LESSON_EVM), 128)
    except (MerError, ValueError) as exc:
        st.error(plain(exc))
        return
    steps = [lambda: _clip_step(clip, row), lambda: _markers_step(clip, row),
             lambda: _diff_step(clip, row, masks),
             lambda: _magnify_step(views, reads.magnified_max(DATASET, "{}", row["sample_id"], json.dumps(LESSON_EVM),
                                                              128, alpha_max=widgets.EVM_ALPHA_MAX)),
             lambda: _flow_step(views, masks), lambda: _au_step(views, masks, row),
             lambda: _input_step(views), lambda: _looked_step(row["sample_id"], len(report["table"]))]
    for draw in steps:
        with st.container(border=True):
            draw()
