"""Reads of a run's final model, for the Run page and the New experiment estimate.

Kept beside :mod:`dashboard.reads` (at its size limit) with the same rules:
views call these, these call mer_core. The record (``final.json`` beside
``final.pt``) is read and validated by
:func:`mer_core.training.final.final_record_state`, which never raises; it is
cached per file (sizes and modification times), so a rewritten file is read again.
"""
from __future__ import annotations

from typing import Any

import streamlit as st

from mer_core.errors import MerError
from mer_core.store.folders import run_folder

NOT_TRAINED = "final model not trained"  # the start of the run note add_final_model leaves when it fails


def final_record(run_id: str) -> tuple[dict[str, Any] | None, str]:
    """``(record, '')``; ``(None, '')`` when the run stored no final model; ``(None, why)`` when it is unusable."""
    try:
        folder = run_folder(run_id, create=False)
    except MerError as exc:
        return None, str(exc)
    return _record(str(folder), _stamp(folder))


def failure_notes(run: dict[str, Any]) -> list[str]:
    """The run's notes saying why it has no final model (failed, cancelled, interrupted)."""
    return [str(n) for n in run.get("notes") or [] if str(n).startswith(NOT_TRAINED)]


def final_model_seconds(model: str, preset: str, **sizes: Any) -> tuple[float, str]:
    """The final model's share of a run's estimate (mer_core.jobs.plan.final_model_seconds)."""
    from mer_core.jobs.plan import final_model_seconds as estimate

    return estimate(model, preset, **sizes)


def _stamp(folder: Any) -> tuple:
    from mer_core.training.final import FINAL_CHECKPOINT, FINAL_RECORD

    out = []
    for name in (FINAL_RECORD, FINAL_CHECKPOINT):
        try:
            st_ = (folder / name).stat()
            out.append((st_.st_size, st_.st_mtime_ns))
        except OSError:
            out.append(None)
    return tuple(out)


@st.cache_data(max_entries=256, show_spinner=False)
def _record(folder: str, stamp: tuple) -> tuple[dict[str, Any] | None, str]:
    from pathlib import Path

    from mer_core.training.final import final_record_state

    return final_record_state(Path(folder))
