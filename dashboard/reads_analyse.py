"""Reads of the Analyse a clip page: exported clips, the analysis and its overlays, cached.

Kept beside :mod:`dashboard.reads` (which is at its size limit) with the same
rules: views call these, these call mer_core; a run's predictor (its final
model or its fold models, as chosen) is held as a resource, analyses are
cached per file (path and modification time), run, model and chosen frames.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import streamlit as st

from mer_core.paths import cache_root, store_path
from mer_core.store.db import RunStore


def video_clips_dir() -> Path:
    """Where the Analyse page finds exported synthetic clips (``mer synth --export-video`` into it)."""
    return cache_root() / "video_clips"


def exported_clips() -> dict[str, dict[str, Any]]:
    """Video path -> its sidecar (onset, apex, label, cropped...) for every exported synthetic clip."""
    folder = video_clips_dir()
    out: dict[str, dict[str, Any]] = {}
    if not folder.is_dir():
        return out
    for side in sorted(folder.glob("*.json")):
        try:
            meta = json.loads(side.read_text())
            video = folder / str(meta["video"])
        except (OSError, ValueError, KeyError, TypeError):
            continue
        if video.is_file() and video.parent == folder:
            out[str(video)] = meta
    return out


def run_models(run_id: str) -> dict[str, str]:
    """The models a run can predict with, kind ('final', 'ensemble') -> what it is, final first."""
    from mer_core.explain.predict import model_labels, stored_models

    with RunStore(store_path()) as store:
        return model_labels(stored_models(run_id, store))


def predictable_runs() -> list[str]:
    """Finished runs that can predict a new clip, best pooled UF1 first (mer_core.explain.predict)."""
    return _predictable_runs(str(store_path()), _store_stamp())


def _store_stamp() -> int:
    p = store_path()
    return p.stat().st_mtime_ns if p.exists() else 0


@st.cache_data(ttl=30, show_spinner=False, max_entries=4)
def _predictable_runs(path: str, stamp: int) -> list[str]:
    from mer_core.explain.predict import predictable_runs

    with RunStore(path) as store:
        return predictable_runs(store)


def trained_on(run_id: str) -> str:
    """What the run learned from, in words ("48 clips of 16 synthetic faces (synthetic)")."""
    return _trained_on(str(store_path()), run_id)


@st.cache_data(ttl=600, show_spinner=False, max_entries=32)
def _trained_on(path: str, run_id: str) -> str:
    from mer_core.explain.predict import trained_on as words
    from mer_core.store.folders import run_folder

    with RunStore(path) as store:
        return words(store.get_run(run_id), run_folder(run_id, create=False))


def clip_analysis(path: str, run_id: str, onset: int | None = None, apex: int | None = None,
                  cropped: bool = False, model: str | None = None, sidecar: str = "") -> Any:
    """mer_core.explain.predict.ClipAnalysis of a clip with a run's ``model`` (cached per file, run, model, frames).

    ``sidecar``: the JSON text of an uploaded sidecar (onset/apex of the clip), or "" (the file beside the video).
    """
    stamp = Path(path).stat().st_mtime_ns if Path(path).exists() else 0
    return _clip_analysis(str(store_path()), path, stamp, run_id, onset, apex, cropped, model, sidecar)


@st.cache_resource(ttl=600, show_spinner=False, max_entries=4)
def _predictor(path: str, run_id: str, model: str | None = None) -> Any:
    from mer_core.explain.predict import RunPredictor

    with RunStore(path) as store:
        return RunPredictor(run_id, store, model=model)


@st.cache_data(ttl=600, show_spinner="decoding, spotting and predicting…", max_entries=16)
def _clip_analysis(store: str, path: str, stamp: int, run_id: str, onset: int | None, apex: int | None,
                   cropped: bool, model: str | None = None, sidecar: str = "") -> Any:
    from mer_core.explain.predict import analyse_clip, parse_sidecar

    side = parse_sidecar(sidecar, "the uploaded sidecar") if sidecar else None
    return analyse_clip(path, run_id, onset=onset, apex=apex, cropped=cropped, sidecar=side,
                        sidecar_name="the uploaded sidecar" if side else "",
                        predictor=_predictor(store, run_id, model))


def clip_overlay(path: str, run_id: str, onset: int | None, apex: int | None, cropped: bool,
                 method: str, model: str | None = None, sidecar: str = "") -> dict[str, Any]:
    """Attribution (averaged over the models used) and attention maps of an analysed clip: {'heat', 'attention'}."""
    return _clip_overlay(str(store_path()), path, run_id, onset, apex, cropped, method, model, sidecar)


@st.cache_data(ttl=600, show_spinner="explaining…", max_entries=16)
def _clip_overlay(store: str, path: str, run_id: str, onset: int | None, apex: int | None, cropped: bool,
                  method: str, model: str | None = None, sidecar: str = "") -> dict[str, Any]:
    a = clip_analysis(path, run_id, onset, apex, cropped, model, sidecar)
    pred = _predictor(store, run_id, model)
    return {"heat": pred.attribution(a.x, a.classes.index(a.predicted), method), "attention": pred.attention(a.x)}
