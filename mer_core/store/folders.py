"""Run folders (``cache/runs/<run id>/``) and the files MER Bench reads back from them.

Nothing here ever unpickles: the sample table is JSON (``table.json``), arrays
are ``.npy`` loaded with ``allow_pickle=False``, checkpoints go through
``torch.load(weights_only=True)`` elsewhere. Run and job ids enter from the
CLI, URLs and the store; they are checked against one pattern before they
become part of a path, so ``../../x`` can never name a folder.
"""
from __future__ import annotations

import errno
import json
import math
import os
import re
import tempfile
from pathlib import Path
from typing import Any, BinaryIO, Callable

import numpy as np
import pandas as pd

from mer_core.errors import MerError
from mer_core.paths import runs_dir

# letters, digits, '.', '_' and '-'; starts with a letter or digit; at most 128 characters
ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")

# The run folder's layout: every file MER Bench keeps in cache/runs/<run id>/ is named here.
INPUTS_FILE = "inputs.npy"  # the preprocessed model inputs, one row per row of TABLE_FILE
LABELS_FILE = "labels.npy"  # their class indices
TABLE_FILE = "table.json"  # the sample table (write_table / read_table)
PRETRAIN_FILE = "pretrain.json"  # the pre-training record (mer_core.store.pretrain_record)
FINAL_CHECKPOINT = "final.pt"  # the final model trained on every subject (mer_core.training.final)
FINAL_RECORD = "final.json"  # its record
EXPLAIN_DIR = "explain"  # cached attributions, localisation scores and explanation reports (names below)
SPOTTING_DIR = "spotting"  # a spotting run's per-frame scores, one file a fold (fold_scores_name)
EXPORT_DIR = "export"  # `mer export`'s default output folder
TABLE_FORMAT = 1
_TUPLE_COLUMNS = ("frames",)


def check_id(value: Any, what: str = "run id") -> str:
    """``value`` if it is a valid run/job id, else a MerError naming it and the rule."""
    text = str(value) if value is not None else ""
    if not ID_PATTERN.fullmatch(text) or ".." in text:
        raise MerError(f"{what} {text!r} is not valid: expected 1-128 letters, digits, '.', '_' or '-' "
                       "starting with a letter or digit (see `mer runs` / `mer jobs` for the ids)")
    return text


def run_folder(run_id: str, *, create: bool = True) -> Path:
    """``cache/runs/<run id>/``: inputs, table, checkpoints, explanations and exports of a run."""
    path = runs_dir() / check_id(run_id)
    if create:
        path.mkdir(parents=True, exist_ok=True)
    return path


def fold_checkpoint_name(fold_index: int) -> str:
    """The file name of a fold's checkpoint in the run folder (``fold_003.pt``)."""
    return f"fold_{int(fold_index):03d}.pt"


def fold_scores_name(fold_index: int) -> str:
    """The file name of a spotting fold's per-frame scores in SPOTTING_DIR (``fold_003.npz``)."""
    return f"fold_{int(fold_index):03d}.npz"


def explanation_name(kind: str, key: str) -> str:
    """One cached computation of one clip, in EXPLAIN_DIR/<the clip's key>/ (``integrated_gradients-<key>.npz``)."""
    return f"{kind}-{key}.npz"


def localisation_name(key: str) -> str:
    """Cached localisation scores in EXPLAIN_DIR (``localisation-<key>.json``)."""
    return f"localisation-{key}.json"


def report_name(key: str) -> str:
    """A cached explanation report in EXPLAIN_DIR (``report-<key>.json``); REPORT_GLOB finds them all."""
    return f"report-{key}.json"


REPORT_GLOB = report_name("*")


def _atomic_write(path: Path, write: Callable[[BinaryIO], Any], size: int) -> None:
    """``write(file)`` into a temporary file beside ``path``, renamed over it: never a truncated file.
    ``size``: the bytes written, for the full-disk message."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        Path(tmp).unlink(missing_ok=True)
        _no_space(exc, path, size)
        raise


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to a temporary file beside ``path`` and rename it over: never a truncated file."""
    _atomic_write(path, lambda fh: fh.write(data), len(data))


class NoSpaceError(MerError, OSError):
    """The disk filled up while a file was written; the message names the file."""

    def __str__(self) -> str:
        return str(self.strerror)


def _no_space(exc: BaseException, path: Path, size: int) -> None:
    """A full disk while writing ``path``: a MerError naming the file (the OSError alone names none;
    numpy's short write says only 'N requested and M written')."""
    if not isinstance(exc, OSError) or isinstance(exc, MerError):
        return
    if exc.errno != errno.ENOSPC and "requested and" not in str(exc):
        return
    raise NoSpaceError(errno.ENOSPC, f"{path}: no space left on the device while writing it "
                       f"({size / 2**20:.1f} MB); free space on the disk that holds {path.parent}") from None


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def save_array(path: Path, array: np.ndarray) -> None:
    """An ``.npy`` written atomically and without pickled objects (object arrays are refused)."""
    array = np.asarray(array)
    _atomic_write(path, lambda fh: np.lib.format.write_array(fh, array, allow_pickle=False), array.nbytes)


def load_array(path: Path, *, mmap: bool = False) -> np.ndarray:
    """An ``.npy`` written by :func:`save_array`; never unpickles."""
    try:
        return np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
    except ValueError as exc:  # object arrays need pickle: refuse them
        raise MerError(f"{path}: not a plain numeric array ({exc}); the run folder was modified") from None
    except OSError as exc:
        raise MerError(f"{path}: cannot read the array ({exc})") from None


def _cell(value: Any) -> Any:
    if isinstance(value, (tuple, list, np.ndarray)):
        return [_cell(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if value is pd.NA or value is pd.NaT:
        return None
    return value


def write_table(folder: Path, table: pd.DataFrame) -> Path:
    """The run's sample table as ``table.json`` (row order = rows of ``inputs.npy``)."""
    records = [[_cell(v) for v in row] for row in table.itertuples(index=False, name=None)]
    doc = {"format": TABLE_FORMAT, "columns": [str(c) for c in table.columns],
           "dtypes": {str(c): str(t) for c, t in table.dtypes.items()}, "rows": records}
    path = Path(folder) / TABLE_FILE
    atomic_write_text(path, json.dumps(doc, allow_nan=False))
    return path


def read_table(folder: Path) -> pd.DataFrame:
    """Read back :func:`write_table`; a pickle left by an old version is refused, never loaded."""
    folder = Path(folder)
    path = folder / TABLE_FILE
    if not path.exists():
        legacy = " (it holds a table.pkl from an older version, which is never unpickled)" \
            if (folder / "table.pkl").exists() else ""
        raise MerError(f"{folder}: no {TABLE_FILE}{legacy}; re-run the experiment to explain it")
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        columns, rows, dtypes = doc["columns"], doc["rows"], doc.get("dtypes", {})
        if doc.get("format") != TABLE_FORMAT or not all(len(r) == len(columns) for r in rows):
            raise ValueError("unknown format or ragged rows")
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise MerError(f"{path}: not a sample table written by MER Bench ({exc})") from None
    table = pd.DataFrame(rows, columns=columns)
    for col in columns:
        if col in _TUPLE_COLUMNS:
            table[col] = [tuple(v) if isinstance(v, list) else () for v in table[col]]
            continue
        kind = dtypes.get(col, "object")
        try:
            if kind.startswith(("int", "float", "bool")):
                table[col] = table[col].astype(kind)
        except (TypeError, ValueError):
            pass  # a missing value in an int column: keep what pandas inferred
    return table
