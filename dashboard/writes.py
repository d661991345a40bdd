"""Writes: every action of the dashboard that changes stored state, in one place.

Submit, cancel and resume jobs, delete a run, set a dataset root, generate a
synthetic set. Views call these and never ``mer_core.store`` or
``mer_core.jobs`` directly; each function raises :class:`MerError` with a
message a view can show as text. Caches that the action makes stale are
cleared here, so a view does not need to know which.
"""
from __future__ import annotations

import os
import shutil
import time
import uuid
from pathlib import Path
from typing import Any

import streamlit as st

from dashboard import reads
from mer_core.datasets.allowed import check_browser_path, check_table_paths
from mer_core.datasets.roots import set_dataset_root
from mer_core.datasets.synthetic import ensure_dataset
from mer_core.datasets.synthetic.video_export import export_videos
from mer_core.errors import MerError
from mer_core.jobs import queue as jobs, study
from mer_core.paths import cache_root, store_path
from mer_core.spotting.synthetic_long import LongOptions
from mer_core.store.db import RunStore


BROWSER_PATH_OPTIONS = ("manifest", "root")  # dataset options that name a file or folder


def submit(config: Any, *, name: str = "") -> str:
    """Queue an ExperimentConfig as a background job; returns the job id.

    Paths typed into the browser (a manifest, a root, and every file the
    manifest lists) must lie under the allowed folders (mer_core.datasets.allowed).
    """
    check_config_paths(config)
    return jobs.submit(config, name=name)


def check_config_paths(config: Any) -> None:
    """Refuse a browser-made config whose dataset options leave the allowed folders."""
    options = dict(config.dataset_options)
    named = {k: options[k] for k in BROWSER_PATH_OPTIONS if options.get(k)}
    if not named:
        return
    for key, value in named.items():
        check_browser_path(value, f"dataset option {key}=")
    from mer_core.training.engine import load_table  # lazy: loads torch and scikit-learn (about 2 s)

    table, _classes, _notes = load_table(config)
    manifest = Path(str(named["manifest"])) if "manifest" in named else None
    if manifest is not None and manifest.is_dir():
        manifest = manifest / "manifest.csv"
    check_table_paths(table, manifest)


def submit_spotting(config: Any, *, name: str = "") -> str:
    """Queue a spotting LOSO (a mer_core.spotting.loso.SpotConfig) as a background job; returns the job id.

    As :func:`submit`: a root or manifest typed into the browser, and every video the manifest lists, must lie
    under the allowed folders; a recognition run to classify the spotted intervals must be stored.
    """
    if config.dataset == "synthetic-long":  # its options checked now (indexing it would generate it)
        LongOptions.from_mapping(dict(config.dataset_options))
    named = {k: config.dataset_options[k] for k in BROWSER_PATH_OPTIONS if config.dataset_options.get(k)}
    if config.root:
        named["root"] = config.root
    for key, value in named.items():
        check_browser_path(value, f"dataset option {key}=")
    if named:
        from mer_core.spotting.loso import load_dataset  # lazy: loads scikit-learn and scipy (about 1 s)

        bases = [Path(str(v)).expanduser().resolve() for v in named.values()]
        bases = [b.parent if b.is_file() else b for b in bases]  # a manifest's videos lie beside it
        for video in load_dataset(config).videos.itertuples(index=False):
            where = Path(str(video.path)).expanduser().resolve()
            if not any(b in where.parents for b in bases):
                check_browser_path(where, f"video {video.video!r}")
    with RunStore(store_path()) as store:
        if config.recognise:  # an unknown run, or one without a model, is refused now, not after the LOSO
            from mer_core.explain.inference import predictable_runs  # lazy: loads torch (about 2 s)

            store.get_run(config.recognise)
            if config.recognise not in predictable_runs(store):
                raise MerError(f"run {config.recognise} kept no model to classify with (no fold checkpoints and no "
                               "final model); pick a run that did")
        return jobs.submit_spotting(config, store=store, name=name)


def cancel(job_id: str) -> str:
    """Ask a job to stop between batches; returns its new status."""
    return _job_action("cancel", job_id)


def resume(job_id: str) -> str:
    """Re-queue a failed or cancelled job; it continues its run without retraining finished folds."""
    return _job_action("resume", job_id)


def _job_action(action: str, job_id: str) -> str:
    with RunStore(store_path()) as store:
        return getattr(jobs, action)(store, job_id)


def delete_run(run_id: str) -> None:
    """Remove a run's rows and its folder under cache/runs; refused (MerError) while it runs."""
    with RunStore(store_path()) as store:
        store.delete_run_with_files(run_id)
    st.cache_data.clear()


def set_root(name: str, root: str) -> Path:
    """Save where a licensed dataset lies on this machine (cache/datasets.toml); returns the file it is saved in."""
    check_browser_path(root, f"{name} root")
    saved = set_dataset_root(name, root)
    reads.clear_dataset_caches()
    return saved


def generate_synthetic(options: Any) -> Path:
    """Generate (or reuse) a synthetic set with these SynthOptions; returns its manifest."""
    manifest = ensure_dataset(options)
    reads.clear_dataset_caches()
    return manifest


def on_dashboard_start() -> None:
    """Once per server process: mark dead workers and start queued jobs, so a restarted dashboard resumes the queue."""
    _kick_once(str(store_path()))


@st.cache_resource(show_spinner=False)
def _kick_once(path: str) -> bool:
    with RunStore(path) as store:
        jobs.kick(store)
    return True


# --- studies and run management: submit a study, tag, note, delete ------------------------
def submit_study(definition: dict[str, Any]) -> int:
    """Validate a study definition (mer_core.jobs.study.parse_study keys) and queue its cells; returns the count."""
    with RunStore(store_path()) as store:
        cells = study.submit_study(study.parse_study(definition), store=store)
    st.cache_data.clear()
    return len(cells)


def study_action(action: str, name: str) -> dict[str, int]:
    """``cancel`` or ``resume`` a whole study; returns the counts of what changed."""
    fn = {"cancel": study.cancel_study, "resume": study.resume_study}[action]
    with RunStore(store_path()) as store:
        return fn(store, name)


def edit_run(run_id: str, *, name: str | None = None, tags: list[str] | None = None, note: str | None = None) -> None:
    """Rename a run, replace its tags and/or its note."""
    with RunStore(store_path()) as store:
        if name is not None:
            store.rename_run(run_id, name)
        if tags is not None:
            store.set_run_tags(run_id, tags)
        if note is not None:
            store.set_run_note(run_id, note)
    st.cache_data.clear()


def submit_explain_report(run_id: str, settings: dict[str, Any]) -> str:
    """Queue the explanation report of a run (ReportConfig settings) as a background job; returns the job id."""
    return jobs.submit_explain_report(run_id, settings)


# --- Analyse a clip: uploads under cache/uploads, synthetic clips as videos ------------------------
UPLOAD_SUFFIXES = (".mp4", ".avi", ".mov", ".webm", ".zip")
UPLOAD_TTL_ENV = "MER_UPLOAD_TTL_MINUTES"  # how long an upload is kept (default 60 minutes)
UPLOAD_FREE_MARGIN = 512 * 2**20  # never write an upload that would leave less than this free


def uploads_dir() -> Path:
    folder = cache_root() / "uploads"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def prune_uploads(now: float | None = None) -> int:
    """Remove uploads older than the configured time (``MER_UPLOAD_TTL_MINUTES``); returns how many."""
    ttl = float(os.environ.get(UPLOAD_TTL_ENV) or 60) * 60.0
    now = time.time() if now is None else now
    removed = 0
    for path in uploads_dir().iterdir():
        try:
            if path.is_file() and not path.is_symlink() and now - path.stat().st_mtime > ttl:
                path.unlink()
                removed += 1
        except OSError:
            pass
    return removed


def save_upload(name: str, data: bytes) -> Path:
    """Store an uploaded clip as ``cache/uploads/<random>.<ext>`` (the user's name is never a path)."""
    suffix = Path(str(name)).suffix.lower()
    if suffix not in UPLOAD_SUFFIXES:
        raise MerError(f"{name}: expected a video ({', '.join(UPLOAD_SUFFIXES[:-1])}) or a .zip of frames")
    if not data:
        raise MerError(f"{name}: the file is empty (0 bytes)")
    prune_uploads()
    folder = uploads_dir()
    if shutil.disk_usage(folder).free - len(data) < UPLOAD_FREE_MARGIN:
        raise MerError(f"{name}: not enough free disk space to keep this upload; try a shorter clip later")
    path = folder / f"{uuid.uuid4().hex}{suffix}"
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        tmp.write_bytes(data)
        tmp.replace(path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise MerError(f"{name}: could not be stored ({exc.strerror or exc})") from None
    return path


def export_synthetic_clips(clips: int = 6) -> Path:
    """Write synthetic clips as mp4 + sidecar JSON to the folder the Analyse page lists; returns it."""
    from dashboard.reads_models import video_clips_dir  # lazy: loads torch (about 2 s)

    folder = video_clips_dir()
    export_videos(folder, clips=clips)
    return folder
