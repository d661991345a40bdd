"""Reads of a run's pre-training record, for the Run page and the Leaderboard.

Kept beside :mod:`dashboard.reads` (at its size limit) with the same rules:
views call these, these call mer_core. The record itself is read and
validated by :mod:`mer_core.store.pretrain_record` (JSON only); a record is
cached per file (size and modification time), so a rewritten file is read again.
"""
from __future__ import annotations

from typing import Any

import streamlit as st

from dashboard import reads
from mer_core.errors import MerError
from mer_core.store.folders import run_folder
from mer_core.store.pretrain_record import PRETRAIN_FILE, read_pretrain_record

NONE = "—"  # the Leaderboard's cell for a run trained from scratch (and for a published row)


def pretrain_record(run_id: str) -> tuple[dict[str, Any] | None, str]:
    """``(record, '')``; ``(None, '')`` when the run stored none; ``(None, why)`` when its file is unusable."""
    return _record(run_id, *_file_stamp(run_id))


def pretrain_labels(run_ids: tuple[str, ...]) -> dict[str, str]:
    """Run id -> what its folds started from, for a table: the macro source(s), or NONE (from scratch).

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
            labels[rid] = f"{asked[rid]} (not recorded)" if asked.get(rid) else NONE
    return labels


def _file_stamp(run_id: str) -> tuple[str, tuple]:
    """The record's path and (size, mtime): the cache key, so another cache folder or a new file is read anew."""
    try:
        path = run_folder(run_id, create=False) / PRETRAIN_FILE
    except MerError:
        return "", ()
    try:
        stat = path.stat()
    except OSError:
        return str(path), ()
    return str(path), (stat.st_size, stat.st_mtime_ns)


@st.cache_data(max_entries=256, show_spinner=False)
def _record(run_id: str, path: str, stamp: tuple) -> tuple[dict[str, Any] | None, str]:
    return read_pretrain_record(run_id)
