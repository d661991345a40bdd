"""Generic manifest indexer: any dataset described by a CSV.

One row per clip. Required columns: ``subject``, ``clip``, ``label``. Each row
then gives frames, precomputed inputs, or both:

* ``frames_dir``: a folder of frames (sorted in natural order: img2 < img10),
  with ``onset``, ``apex``, ``offset`` as 0-based positions in that order.
  An empty ``apex`` is estimated later (``apex_estimated`` = True).
* ``flow_image``: a precomputed optical-flow image (3 channels: horizontal
  flow, vertical flow, optical strain scaled to 0-255, any size);
  ``apex_image`` / ``onset_image``: precomputed face images.

Optional: ``dataset`` (part name), ``emotion``, ``fps``, ``cropped``,
``action_units``, ``mask`` (ground-truth motion masks, .npz). Paths are
relative to the manifest file. Errors name the manifest, the row (1-based, as a
spreadsheet shows it, header = row 1) and the column.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pandas as pd

from mer_core.datasets.registry import register_dataset
from mer_core.datasets.schema import make_table
from mer_core.errors import DatasetError

IMAGE_EXTS = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff"}
REQUIRED_COLUMNS = ("subject", "clip", "label")


def natural_key(name: str) -> list[Any]:
    """Sort key that puts img2 before img10."""
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", name)]


def list_frames(folder: Path) -> list[Path]:
    """Image files in a folder, in natural order."""
    return sorted((p for p in folder.iterdir() if p.suffix.lower() in IMAGE_EXTS), key=lambda p: natural_key(p.name))


def read_manifest(path: str | Path, *, dataset: str | None = None) -> pd.DataFrame:
    """Index a manifest CSV into a sample table."""
    path = Path(path)
    if path.is_dir():
        path = path / "manifest.csv"
    if not path.exists():
        raise DatasetError(f"manifest not found: {path}")
    try:
        raw = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as exc:
        raise DatasetError(f"{path}: cannot read as CSV ({exc})") from exc
    missing = [c for c in REQUIRED_COLUMNS if c not in raw.columns]
    if missing:
        raise DatasetError(f"{path}: missing column(s) {missing}; a manifest needs {list(REQUIRED_COLUMNS)}")
    if not {"frames_dir", "flow_image", "apex_image"} & set(raw.columns):
        raise DatasetError(f"{path}: needs a 'frames_dir', 'flow_image' or 'apex_image' column to find each clip's data")
    base = path.parent
    default_dataset = dataset or path.parent.name or "manifest"
    rows = [_row(path, base, i + 2, r, default_dataset) for i, r in enumerate(raw.to_dict("records"))]
    if not rows:
        raise DatasetError(f"{path}: the manifest has no rows")
    return make_table(rows)


def _row(manifest: Path, base: Path, line: int, r: dict[str, str], default_dataset: str) -> dict[str, Any]:
    where = f"{manifest} row {line}"
    for col in REQUIRED_COLUMNS:
        if not r.get(col, "").strip():
            raise DatasetError(f"{where}: column {col!r} is empty")
    ds = r.get("dataset", "").strip() or default_dataset
    native = r["subject"].strip()
    row: dict[str, Any] = {
        "dataset": ds,
        "native_subject": native,
        "subject": f"{ds}:{native}",
        "clip": r["clip"].strip(),
        "label": r["label"].strip().lower(),
        "emotion": (r.get("emotion", "").strip() or r["label"]).lower(),
        "fps": _number(where, "fps", r.get("fps", ""), float, 0.0),
        "cropped": r.get("cropped", "").strip().lower() in ("1", "true", "yes"),
        "action_units": r.get("action_units", "").strip(),
        "part": r.get("part", "").strip() or ds,
    }
    for col, key in (("flow_image", "flow_path"), ("apex_image", "apex_image_path"), ("onset_image", "onset_image_path"), ("mask", "mask_path")):
        value = r.get(col, "").strip()
        if value:
            p = (base / value).resolve()
            if not p.exists():
                raise DatasetError(f"{where}: {col} file not found: {p}")
            row[key] = str(p)
    frames_dir = r.get("frames_dir", "").strip()
    if frames_dir:
        folder = (base / frames_dir).resolve()
        if not folder.is_dir():
            raise DatasetError(f"{where}: frames_dir is not a folder: {folder}")
        frames = list_frames(folder)
        if len(frames) < 2:
            raise DatasetError(f"{where}: {folder} holds {len(frames)} image(s); a clip needs at least 2 frames")
        n = len(frames)
        onset = _number(where, "onset", r.get("onset", ""), int, 0)
        offset = _number(where, "offset", r.get("offset", ""), int, n - 1)
        apex_text = r.get("apex", "").strip()
        estimated = not apex_text
        apex = (onset + offset) // 2 if estimated else _number(where, "apex", apex_text, int, 0)
        for name, value in (("onset", onset), ("apex", apex), ("offset", offset)):
            if not 0 <= value < n:
                raise DatasetError(f"{where}: {name}={value} is outside the {n} frames of {folder} (expected 0..{n - 1})")
        if not onset <= apex <= offset:
            raise DatasetError(f"{where}: expected onset <= apex <= offset, got {onset}, {apex}, {offset}")
        row.update(
            frames=tuple(str(p) for p in frames),
            onset=onset,
            apex=apex,
            offset=offset,
            apex_estimated=estimated,
            apex_method="middle" if estimated else "annotated",
        )
    elif not (row.get("flow_path") or row.get("apex_image_path")):
        raise DatasetError(f"{where}: give a frames_dir, a flow_image or an apex_image for clip {row['clip']!r}")
    return row


def _number(where: str, col: str, text: str, kind: type, default: Any) -> Any:
    text = (text or "").strip()
    if not text:
        return default
    try:
        value = float(text)
    except ValueError:
        raise DatasetError(f"{where}: column {col!r} = {text!r} is not a number") from None
    if kind is int:
        if not value.is_integer():
            raise DatasetError(f"{where}: column {col!r} = {text!r} must be a whole frame index")
        return int(value)
    return value


@register_dataset(
    "manifest",
    description="Generic CSV manifest (frames folders and/or precomputed flow/apex images)",
    default_class_set="native",
    class_sets=("native", "composite3"),
)
def index_manifest(root: Path | None, *, manifest: str = "", dataset: str | None = None) -> pd.DataFrame:
    """Index a manifest: ``root`` is its folder (or the CSV itself); ``manifest`` overrides."""
    target = Path(manifest) if manifest else root
    if target is None:
        raise DatasetError("the manifest dataset needs a path: pass manifest=/path/to/manifest.csv")
    return read_manifest(target, dataset=dataset)
