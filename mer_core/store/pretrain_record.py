"""A run's pre-training record: ``cache/runs/<run id>/pretrain.json``.

The engine writes it once, before the folds, when a run starts from
macro-pre-trained weights (DenseAttention's transfer learning): the macro
source(s), each source's data fingerprint, the checkpoint key, the sha256
of the checkpoint file every fold started from and the sha256 of its weights
(equal for equal weights, where the file's own hash also covers when it was
written), and the code version (git commit) that pre-trained it. Readers get
it back validated: JSON only (never a pickle), every field checked, and a file that is missing,
too large, not JSON or of the wrong shape comes back as ``None`` with a
message saying why, never as an exception.
"""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from mer_core.errors import MerError
from mer_core.store.folders import PRETRAIN_FILE, atomic_write_text, run_folder

MAX_BYTES = 1 << 20  # a record is a few hundred bytes; anything near a megabyte is not one
_SHA256 = re.compile(r"[0-9a-f]{64}")
_FIELDS = ("sources", "data_fingerprints", "checkpoint_sha256", "weights_sha256", "key", "checkpoint", "code", "epochs")


def write_pretrain_record(folder: str | Path, record: dict[str, Any]) -> Path:
    """Write ``record`` as the run folder's ``pretrain.json`` (atomically: a reader never sees half a file)."""
    path = Path(folder) / PRETRAIN_FILE
    atomic_write_text(path, json.dumps(record, indent=2) + "\n")
    return path


def read_pretrain_record(run_id: str) -> tuple[dict[str, Any] | None, str]:
    """``(record, '')``, ``(None, '')`` when the run has no record, or ``(None, why)`` when it cannot be used.

    The record has ``sources`` and ``data_fingerprints`` (lists of strings, one
    fingerprint a source), ``checkpoint_sha256`` (64 hex digits), ``weights_sha256`` (64 hex digits, or None in
    a record written before it was kept), and ``key``, ``checkpoint``, ``code`` (strings or None) and ``epochs``
    (an integer >= 1 or None).
    """
    try:
        path = run_folder(run_id, create=False) / PRETRAIN_FILE
    except MerError as exc:  # an invalid run id never becomes a path
        return None, str(exc)
    try:
        if not path.is_file():
            return None, ""
        if path.stat().st_size > MAX_BYTES:
            return None, _bad(run_id, f"{path.stat().st_size} bytes, more than a record can be")
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:  # JSONDecodeError is a ValueError
        return None, _bad(run_id, f"not readable JSON ({type(exc).__name__}: {exc})")
    why = _problem(data)
    if why:
        return None, _bad(run_id, why)
    return {k: data.get(k) for k in _FIELDS}, ""


def _problem(data: Any) -> str:
    """What is wrong with a parsed record, or '' when nothing is."""
    if not isinstance(data, dict):
        return f"expected a JSON object, found {type(data).__name__}"
    sources, prints = data.get("sources"), data.get("data_fingerprints")
    if not isinstance(sources, list) or not sources or not all(isinstance(s, str) and s for s in sources):
        return "'sources' must be a non-empty list of source names"
    if not isinstance(prints, list) or len(prints) != len(sources) or not all(isinstance(p, str) and p for p in prints):
        return f"'data_fingerprints' must list one fingerprint for each of the {len(sources)} source(s)"
    sha = data.get("checkpoint_sha256")
    if not isinstance(sha, str) or not _SHA256.fullmatch(sha):
        return "'checkpoint_sha256' must be 64 lowercase hex digits"
    weights = data.get("weights_sha256")
    if weights is not None and (not isinstance(weights, str) or not _SHA256.fullmatch(weights)):
        return "'weights_sha256' must be 64 lowercase hex digits"
    for field in ("key", "checkpoint", "code"):
        if data.get(field) is not None and not isinstance(data[field], str):
            return f"'{field}' must be a string"
    epochs = data.get("epochs")
    if epochs is not None and (isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1):
        return "'epochs' must be an integer >= 1"
    return ""


def _bad(run_id: str, why: str) -> str:
    return (f"the pre-training record of run {run_id!r} ({PRETRAIN_FILE} in its run folder) is unusable: {why}; "
            "which weights the run started from is unknown")
