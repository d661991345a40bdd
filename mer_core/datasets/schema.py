"""The sample table: the one shape every indexer returns.

Every dataset, whatever its layout on disk, becomes a pandas DataFrame with
the columns below, one row per clip. Everything downstream (preprocessing,
protocols, training, metrics, the dashboard) works on this table only.

Frame positions (``onset``, ``apex``, ``offset``) are 0-based indices into
the row's ``frames`` tuple, not the dataset's native frame numbers; the
native number of the first frame is kept in ``first_frame`` for display.
Rows that carry only precomputed inputs (a flow image, an apex image) have an
empty ``frames`` tuple and ``onset = apex = offset = -1``.

Paths are absolute strings ("" when absent) so a table can be handed to a
worker process or written to CSV without knowing where it came from.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd

from mer_core.errors import DatasetError


@dataclass(frozen=True)
class Column:
    name: str
    kind: str  # "str", "int", "float", "bool", "paths"
    required: bool
    doc: str


COLUMNS: tuple[Column, ...] = (
    Column("sample_id", "str", True, "unique id: '<dataset>/<native subject>/<clip>'"),
    Column("dataset", "str", True, "dataset (part) the clip comes from, e.g. 'casme2'"),
    Column("subject", "str", True, "subject id, unique across datasets ('casme2:sub01')"),
    Column("native_subject", "str", False, "subject as spelled by the dataset ('sub01', '006')"),
    Column("clip", "str", True, "clip name as distributed ('EP02_01f')"),
    Column("emotion", "str", False, "the dataset's own label, lower case ('disgust')"),
    Column("label", "str", True, "label in the class set in use ('negative')"),
    Column("onset", "int", True, "index of the onset frame in `frames` (-1: no frames)"),
    Column("apex", "int", True, "index of the apex frame in `frames` (-1: no frames)"),
    Column("offset", "int", True, "index of the offset frame in `frames` (-1: no frames)"),
    Column("apex_estimated", "bool", False, "True when the apex was not annotated"),
    Column("apex_method", "str", False, "how the apex was chosen: 'annotated', 'middle', ..."),
    Column("first_frame", "int", False, "native frame number of frames[0]"),
    Column("frames", "paths", True, "ordered tuple of absolute frame paths"),
    Column("flow_path", "str", False, "precomputed flow image (u, v, strain as RGB 0-255)"),
    Column("apex_image_path", "str", False, "precomputed apex face image"),
    Column("onset_image_path", "str", False, "precomputed onset face image"),
    Column("fps", "float", False, "frame rate of the recording"),
    Column("part", "str", False, "part of a composite dataset (defaults to `dataset`)"),
    Column("cropped", "bool", False, "frames are already face crops (skip detection)"),
    Column("action_units", "str", False, "FACS action units, e.g. 'AU4+AU15'"),
    Column("mask_path", "str", False, "ground-truth motion masks (.npz; synthetic data)"),
)

COLUMN_NAMES = tuple(c.name for c in COLUMNS)
REQUIRED = tuple(c.name for c in COLUMNS if c.required)

_DEFAULTS: dict[str, Any] = {
    "apex_estimated": False,
    "apex_method": "annotated",
    "first_frame": 0,
    "flow_path": "",
    "apex_image_path": "",
    "onset_image_path": "",
    "fps": 0.0,
    "cropped": False,
    "action_units": "",
    "mask_path": "",
}
_FILLED_FROM = {"native_subject": "subject", "emotion": "label", "part": "dataset"}  # optional column -> its source


def make_table(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """Build a sample table from row dicts, filling optional columns.

    ``sample_id`` defaults to ``dataset/native_subject/clip``. The result is
    validated, so an indexer that forgets a column fails here, loudly.
    """
    filled = []
    for i, row in enumerate(rows):
        r = dict(row)
        for col in ("dataset", "subject", "clip", "label"):
            if col not in r:
                raise DatasetError(f"row {i}: missing required field {col!r} (clip {r.get('clip', '?')!r})")
        r.setdefault("frames", ())
        r["frames"] = tuple(str(p) for p in r["frames"])
        for col in ("onset", "apex", "offset"):
            r.setdefault(col, -1 if not r["frames"] else 0)
        for key, source in _FILLED_FROM.items():
            if r.get(key) is None:
                r[key] = str(r[source])
        for key, default in _DEFAULTS.items():
            if r.get(key) is None:
                r[key] = default
        r.setdefault("sample_id", f"{r['dataset']}/{r['native_subject']}/{r['clip']}")
        filled.append(r)
    table = pd.DataFrame(filled, columns=list(COLUMN_NAMES) + _extra_columns(filled))
    return validate_table(table)


def _extra_columns(rows: list[dict[str, Any]]) -> list[str]:
    extra: list[str] = []
    for r in rows:
        for k in r:
            if k not in COLUMN_NAMES and k not in extra:
                extra.append(k)
    return extra


def validate_table(table: pd.DataFrame) -> pd.DataFrame:
    """Check a sample table and return it with normalised dtypes.

    Raises :class:`DatasetError` naming the row (sample id) and column at
    fault.
    """
    missing = [c for c in REQUIRED if c not in table.columns]
    if missing:
        raise DatasetError(f"sample table lacks required column(s) {missing}; expected columns: {list(REQUIRED)}")
    table = table.copy()
    for col in COLUMN_NAMES:
        if col not in table.columns:
            table[col] = table[_FILLED_FROM[col]].astype(str) if col in _FILLED_FROM else [_DEFAULTS[col]] * len(table)
    if table["sample_id"].duplicated().any():
        dup = table.loc[table["sample_id"].duplicated(), "sample_id"].tolist()[:5]
        raise DatasetError(f"duplicate sample_id(s) {dup}: every clip must appear once")
    for idx, row in table.iterrows():
        sid = row["sample_id"]
        for col in ("dataset", "subject", "clip", "label"):
            if not isinstance(row[col], str) or not row[col].strip():
                raise DatasetError(f"row {idx} ({sid}): column {col!r} must be a non-empty string, got {row[col]!r}")
        frames = row["frames"]
        if not isinstance(frames, tuple):
            raise DatasetError(f"row {idx} ({sid}): column 'frames' must be a tuple of paths, got {type(frames).__name__}")
        n = len(frames)
        on, ap, off = (int(row[c]) for c in ("onset", "apex", "offset"))
        if n == 0:
            if not (row["flow_path"] or row["apex_image_path"]):
                raise DatasetError(
                    f"row {idx} ({sid}): no frames and no precomputed input; expected frame paths "
                    "or a flow_path / apex_image_path"
                )
        else:
            for col, val in (("onset", on), ("apex", ap), ("offset", off)):
                if not 0 <= val < n:
                    raise DatasetError(
                        f"row {idx} ({sid}): {col}={val} is outside the clip's {n} frames (expected 0..{n - 1})"
                    )
            if not on <= ap <= off:
                raise DatasetError(
                    f"row {idx} ({sid}): expected onset <= apex <= offset, got onset={on}, apex={ap}, offset={off}"
                )
    for col in ("onset", "apex", "offset", "first_frame"):
        table[col] = table[col].astype(int)
    for col in ("apex_estimated", "cropped"):
        table[col] = table[col].astype(bool)
    table["fps"] = table["fps"].astype(float)
    return table.reset_index(drop=True)

