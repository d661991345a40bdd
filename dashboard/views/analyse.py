"""Analyse a clip: upload a video (or pick an exported synthetic clip), spot, predict, explain, warn."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import streamlit as st

from dashboard import plots, plots_analyse, reads_models as reads, widgets, writes
from dashboard.views import spotting_clip
from mer_core.errors import MerError
from mer_core.explain.inference import TRANSFER_NOTE
from mer_core.preprocess.flow import flow_to_rgb

KEY_UPLOAD = "analyse_upload"  # session state: {'id': uploader file id, 'path': stored file, 'name': user's name}
KEY_SOURCE = "analyse_source"
KEY_FRAMES = "analyse_frames"
KEY_METHOD = "analyse_method"
KEY_MODEL = "analyse_model"  # 'final' | 'ensemble', offered when the run stored both
KEY_SIDECAR = "analyse_sidecar"
SOURCES = ("upload a clip", "an exported synthetic clip")
METHODS = ("saliency", "integrated_gradients", "gradcam")


def _uploaded() -> tuple[str, str, bool, str] | None:
    """(stored path, shown name, cropped, sidecar JSON text or "") of the uploaded clip, stored once per upload."""
    left, right = st.columns([3, 2])
    up = left.file_uploader("video (mp4, avi, mov, webm) or a zip of frames", type=["mp4", "avi", "mov", "webm", "zip"])
    side = right.file_uploader("its sidecar .json (optional)", type=["json"], key=KEY_SIDECAR,
                               help="onset and apex frame numbers of the clip, as `mer synth --export-video` "
                                    "writes beside each video: used instead of spotting")
    if up is None:
        return None
    held = st.session_state.get(KEY_UPLOAD)
    if not held or held["id"] != up.file_id or not Path(held["path"]).exists():
        try:
            path = writes.save_upload(up.name, up.getvalue())
        except MerError as exc:
            st.error(widgets.plain(exc), icon=":material/error:")
            return None
        held = {"id": up.file_id, "path": str(path), "name": up.name}
        st.session_state[KEY_UPLOAD] = held
    return held["path"], held["name"], False, side.getvalue().decode("utf-8", "replace") if side else ""


def _exported() -> tuple[str, str, bool, str] | None:
    clips = reads.exported_clips()
    if not clips:
        st.info("No exported synthetic clips yet. Write a few here, or run "
                "`mer synth --export-video cache/video_clips`.")
        if st.button("Write 6 synthetic clips"):
            try:
                writes.export_synthetic_clips(6)
            except (MerError, OSError) as exc:
                st.error(widgets.plain(exc))
                return None
            st.rerun()
        return None
    labels = {p: f"{m['subject']} {m['clip']} ({m['label']}; true onset {m['onset']}, apex {m['apex']})"
              for p, m in clips.items()}
    path = st.selectbox("clip", list(clips), format_func=labels.get)
    return path, labels[path], bool(clips[path].get("cropped", False)), ""


def _frames_control(spotted, key: str) -> tuple[int | None, int | None]:
    """A range slider over the analysed frames, numbered as in the file, to move onset and apex; returns
    overrides as positions in the analysed window (or None, None)."""
    n = len(spotted.spotting.curve)
    start = spotted.clip.window[0]
    auto = (spotted.spotting.onset + start, spotted.spotting.apex + start)
    value = st.slider("move onset and apex", start, start + n - 1, auto, key=key,
                      help=f"frames {start}-{start + n - 1} of the file are analysed")
    if tuple(value) == auto or value[0] >= value[1]:
        return None, None
    return int(value[0]) - start, int(value[1]) - start


def _show_motion(a) -> None:
    s = a.spotting
    start = a.clip.window[0]
    head = "Frames used" if s.given else "Spotted frames"
    st.markdown(f"**{head}** ({widgets.plain(s.method)}): :blue[onset {s.onset + start}], "
                f":red[apex {s.apex + start}], :violet[offset {s.offset + start}] of the file")
    st.caption(widgets.FRAME_NUMBERS)
    st.caption(widgets.plain(_spotting_caption(s)), help="A blink moves the lids far more than a micro-expression "
               "moves any skin: when the eyes move more than the rest of the face, they are left out of the curve.")
    widgets.chart(plots_analyse.motion_curve(s.curve, {"onset": s.onset, "apex": s.apex, "offset": s.offset},
                                             start=start, fps=a.clip.fps), key="analyse_curve")
    st.caption("Motion, 0 to 1: each of the most-moving cells' share of its own peak, averaged (0: still, 1: every "
               "such cell at its peak).")


def _spotting_caption(s) -> str:
    """What the motion curve left out (the eyes, on a blink) and the spotting's notes, in one line."""
    if s.excluded:
        head = f"{', '.join(s.excluded)} left out of the motion curve (a blink was found)"
    else:
        head = "the whole face crop is in the motion curve (no blink was found)"
    return "; ".join([head[0].upper() + head[1:], *s.notes]) + "."


def _show_maps(a) -> None:
    m = a.maps
    cols = st.columns(4)
    cols[0].image(np.clip(m["onset"], 0, 1), caption="onset (face crop)", width="stretch")
    cols[1].image(np.clip(m["apex"], 0, 1), caption="apex", width="stretch")
    if "u_px" in m:
        cols[2].image(flow_to_rgb(m["u_px"], m["v_px"]), caption="optical flow (hue = direction)", width="stretch")
    if "strain" in m:
        cols[3].image(plots.heat_rgb(m["strain"]), caption="optical strain", width="stretch")
        widgets.heat_scale("strain (how much the skin stretches)", where=cols[3], overlay=False)
    clip, mag = m.get("clip"), m.get("magnified_clip")
    if clip is not None and mag is not None and len(clip) > 1:
        first = a.clip.window[0] + a.spotting.onset  # the clip runs from onset to offset
        f = st.slider("frame (onset to offset)", first, first + len(clip) - 1, first + a.spotting.apex - a.spotting.onset,
                      key="analyse_clip_frame")
        c1, c2 = st.columns(2)
        c1.image(np.clip(clip[f - first], 0, 1), caption=f"frame {f}", width="stretch")
        c2.image(np.clip(mag[f - first], 0, 1), caption=f"frame {f}, magnified (Eulerian video magnification)",
                 width="stretch")


def _model_choice(run_id: str) -> str | None:
    """The model to predict with: a choice when the run stored a final model and fold models, else the one it has."""
    labels = reads.run_models(run_id)
    if len(labels) > 1:
        return st.radio("model to predict with", list(labels), format_func=labels.get, horizontal=True,
                        key=f"{KEY_MODEL}_{run_id}",
                        help="final: one model trained on every subject after the LOSO (never evaluated); "
                             "ensemble: the mean of the fold models, each of which never saw its test subject")
    if not labels:
        return None  # the analysis says why the run cannot predict
    kind = next(iter(labels))
    st.caption(widgets.plain(f"Predicting with the {labels[kind]}" + ("." if kind == "final" else
               ": this run has no final model (a run with final_model = true trains one on every subject).")))
    return kind


def _show_prediction(a, source: tuple[str, str, bool, str], overrides: tuple[int | None, int | None]) -> None:
    if a.withheld:
        st.warning(widgets.plain(f"No verdict. {a.withheld}"), icon=":material/help:")
        st.caption(widgets.plain("probabilities: " + " · ".join(f"{c} {p:.2f}" for c, p in zip(a.classes, a.probs))))
        st.caption(widgets.plain(a.model_note))
        return
    st.subheader(f"Prediction: {widgets.plain(a.predicted)}")
    st.caption(widgets.plain(a.model_note))
    widgets.chart(plots.probability_bars(a.probs, a.classes, pred=None), key="analyse_probs")
    method = st.selectbox("attribution method", METHODS, key=KEY_METHOD)
    try:
        maps = reads.clip_overlay(source[0], a.run_id, overrides[0], overrides[1], source[2], method, a.model_used,
                                  source[3])
    except MerError as exc:
        st.error(widgets.plain(exc))
        return
    widgets.heat_scale(f"{method.replace('_', ' ')} (evidence for {a.predicted})", where=st.columns(3)[0])
    cols = st.columns(2)
    over = "the final model" if a.model_used == "final" else "mean over fold models"
    cols[0].image(plots.overlay_image(a.maps.get("apex"), maps["heat"]), caption=f"{method} ({over})")
    if maps["attention"] is not None:
        cols[1].image(plots.overlay_image(a.maps.get("apex"), maps["attention"]), caption="the model's own attention")


def render() -> None:
    st.title("Analyse a clip")
    run_id = widgets.pick_run("then come back to analyse a clip with it (a run keeps fold models by default).",
                              only=reads.predictable_runs(), where="the runs that can predict a new clip")
    if not run_id:
        return
    st.info(widgets.plain(TRANSFER_NOTE.format(trained_on=reads.trained_on(run_id))), icon=":material/info:")
    st.caption("Runs are listed best pooled UF1 first; only finished runs that kept a model can take a clip.")
    choice = st.radio("clip", SOURCES, horizontal=True, key=KEY_SOURCE, label_visibility="collapsed")
    source = _uploaded() if choice == SOURCES[0] else _exported()
    if source is None:
        return
    spotting_clip.long_clip_section(source[0], source[2])  # a long clip: every interval in it, listed first
    try:
        model = _model_choice(run_id)
        spotted = reads.clip_analysis(source[0], run_id, cropped=source[2], model=model, sidecar=source[3])
        overrides = _frames_control(spotted, f"{KEY_FRAMES}_{abs(hash((source[0], run_id)))}")
        a = (reads.clip_analysis(source[0], run_id, *overrides, cropped=source[2], model=model, sidecar=source[3])
             if overrides[0] is not None else spotted)
    except MerError as exc:
        st.error(widgets.plain(f"{source[1]}: {exc}"), icon=":material/error:")
        return
    for w in a.warnings:
        st.warning(widgets.plain(w), icon=":material/warning:")
    for note in a.notes:
        st.caption(widgets.plain(note))
    _show_motion(a)
    _show_maps(a)
    _show_prediction(a, source, overrides)
    st.caption(f"decode + spot + preprocess + predict: {a.seconds['total']:.2f} s")
