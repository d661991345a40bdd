"""Reads about a run's trained models beyond its scores: where they started (the pre-training record),
its final model, predicting and explaining a new clip with them (Analyse a clip), and how long an
explanation report of them would take.

The same rules as :mod:`dashboard.reads`: views call these, these call mer_core.

* Pre-training record (Run page, Leaderboard): read and validated by
  :mod:`mer_core.store.pretrain_record` (JSON only), cached per file (size
  and modification time), so a rewritten file is read again.
* Final model (Run page, the New experiment estimate): the record
  (``final.json`` beside ``final.pt``) is read and validated by
  :func:`mer_core.training.final.final_record_state`, which never raises;
  cached per file (sizes and modification times).
* Analyse a clip: exported clips, the analysis and its overlays. A run's
  predictor (its final model or its fold models, as chosen) is held as a
  resource; analyses are cached per file (path and modification time), run,
  model and chosen frames.
* Explanation report estimates (Explain page, Faithfulness tab): live (uncached).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import streamlit as st

from dashboard import reads
from mer_core.errors import MerError
from mer_core.explain import inference
from mer_core.explain.inference import RunPredictor, analyse_clip, model_labels, parse_sidecar, stored_models
from mer_core.explain.report import ReportConfig
from mer_core.explain.report_time import estimate_report_seconds
from mer_core.jobs import queue as jobs
from mer_core.jobs.plan import final_model_seconds  # noqa: F401  (the final model's share of a run's estimate)
from mer_core.jobs.report_job import estimate_lines
from mer_core.paths import cache_root, store_path
from mer_core.store.db import RunStore
from mer_core.store.folders import run_folder
from mer_core.store.pretrain_record import PRETRAIN_FILE, read_pretrain_record
from mer_core.training.final import FINAL_CHECKPOINT, FINAL_RECORD, final_record_state


# --- pre-training record ----------------------------------------------------------------
NO_PRETRAIN = "—"  # the Leaderboard's cell for a run trained from scratch (and for a published row)


def pretrain_record(run_id: str) -> tuple[dict[str, Any] | None, str]:
    """``(record, '')``; ``(None, '')`` when the run stored none; ``(None, why)`` when its file is unusable."""
    return _pretrain_record(run_id, *_pretrain_stamp(run_id))


def pretrain_labels(run_ids: tuple[str, ...]) -> dict[str, str]:
    """Run id -> what its folds started from, for a table: the macro source(s), or NO_PRETRAIN (from scratch).

    A run whose config asks for pre-training but has no usable record says so
    instead of passing for one trained from scratch.
    """
    asked = {r["id"]: str((r.get("config") or {}).get("pretrain") or "") for r in reads.run_details(tuple(run_ids))}
    labels = {}
    for rid in run_ids:
        record, problem = pretrain_record(rid)
        if record is not None:
            labels[rid] = ", ".join(record["sources"])
        elif problem:
            labels[rid] = f"{asked.get(rid) or 'unknown'} (record unreadable)"
        else:
            labels[rid] = f"{asked[rid]} (not recorded)" if asked.get(rid) else NO_PRETRAIN
    return labels


def _file_stamp(path: Path) -> tuple[int, int] | None:
    """(size, mtime) of a file, None when there is none: part of a cache key, so a rewritten file is read anew."""
    try:
        stat = path.stat()
    except OSError:
        return None
    return stat.st_size, stat.st_mtime_ns


def _pretrain_stamp(run_id: str) -> tuple[str, tuple]:
    """The record's path and :func:`_file_stamp`: the cache key, so another cache folder or a new file is read anew."""
    try:
        path = run_folder(run_id, create=False) / PRETRAIN_FILE
    except MerError:
        return "", ()
    return str(path), _file_stamp(path) or ()


@st.cache_data(max_entries=256, show_spinner=False)
def _pretrain_record(run_id: str, path: str, stamp: tuple) -> tuple[dict[str, Any] | None, str]:
    return read_pretrain_record(run_id)


# --- final model -----------------------------------------------------------------------
NOT_TRAINED = "final model not trained"  # the start of the run note add_final_model leaves when it fails


def final_record(run_id: str) -> tuple[dict[str, Any] | None, str]:
    """``(record, '')``; ``(None, '')`` when the run stored no final model; ``(None, why)`` when it is unusable."""
    try:
        folder = run_folder(run_id, create=False)
    except MerError as exc:
        return None, str(exc)
    return _final_record(str(folder), tuple(_file_stamp(folder / name) for name in (FINAL_RECORD, FINAL_CHECKPOINT)))


def failure_notes(run: dict[str, Any]) -> list[str]:
    """The run's notes saying why it has no final model (failed, cancelled, interrupted)."""
    return [str(n) for n in run.get("notes") or [] if str(n).startswith(NOT_TRAINED)]


@st.cache_data(max_entries=256, show_spinner=False)
def _final_record(folder: str, stamp: tuple) -> tuple[dict[str, Any] | None, str]:
    return final_record_state(Path(folder))


# --- Analyse a clip: exported clips, the run's predictor, analyses and overlays ----------
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
    with RunStore(store_path()) as store:
        return model_labels(stored_models(run_id, store))


def predictable_runs() -> list[str]:
    """Finished runs that can predict a new clip, best pooled UF1 first (mer_core.explain.inference)."""
    return _predictable_runs(str(store_path()), _store_stamp())


def _store_stamp() -> int:
    p = store_path()
    return p.stat().st_mtime_ns if p.exists() else 0


@st.cache_data(ttl=30, show_spinner=False, max_entries=4)
def _predictable_runs(path: str, stamp: int) -> list[str]:
    with RunStore(path) as store:
        return inference.predictable_runs(store)  # the library's; predictable_runs here is the cached read


def trained_on(run_id: str) -> str:
    """What the run learned from, in words ("48 clips of 16 synthetic faces (synthetic)")."""
    return _trained_on(str(store_path()), run_id)


@st.cache_data(ttl=600, show_spinner=False, max_entries=32)
def _trained_on(path: str, run_id: str) -> str:
    with RunStore(path) as store:
        return inference.trained_on(store.get_run(run_id), run_folder(run_id, create=False))


def clip_analysis(path: str, run_id: str, onset: int | None = None, apex: int | None = None,
                  cropped: bool = False, model: str | None = None, sidecar: str = "") -> Any:
    """mer_core.explain.inference.ClipAnalysis of a clip with a run's ``model`` (cached per file, run, model, frames).

    ``sidecar``: the JSON text of an uploaded sidecar (onset/apex of the clip), or "" (the file beside the video).
    """
    stamp = Path(path).stat().st_mtime_ns if Path(path).exists() else 0
    return _clip_analysis(str(store_path()), path, stamp, run_id, onset, apex, cropped, model, sidecar)


@st.cache_resource(ttl=600, show_spinner=False, max_entries=4)
def _predictor(path: str, run_id: str, model: str | None = None) -> Any:
    with RunStore(path) as store:
        return RunPredictor(run_id, store, model=model)


@st.cache_data(ttl=600, show_spinner="decoding, spotting and predicting…", max_entries=16)
def _clip_analysis(store: str, path: str, stamp: int, run_id: str, onset: int | None, apex: int | None,
                   cropped: bool, model: str | None = None, sidecar: str = "") -> Any:
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


# --- explanation report estimates ----------------------------------------------------
def report_job_estimates(job_id: str) -> list[str]:
    """The time estimates a report job measured on its first clip (its log's ``[estimate]`` lines)."""
    with RunStore(store_path()) as store:
        try:
            return estimate_lines(jobs.get_job(store, job_id))
        except MerError:
            return []


def report_estimate(run_id: str, settings_json: str) -> dict[str, Any]:
    """How long the report with these ReportConfig settings (JSON) would take: a committed benchmark figure
    when one matches, else one clip measured now (:mod:`mer_core.explain.report_time`), so it costs that clip."""
    with RunStore(store_path()) as store:
        return estimate_report_seconds(run_id, ReportConfig.from_dict(json.loads(settings_json)), store=store)
