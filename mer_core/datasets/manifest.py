"""Generic manifest indexer: any dataset described by a CSV.

One row per clip. Required columns: ``subject``, ``clip``, ``label``. Each row
then gives frames, precomputed inputs, or both:

* ``frames_dir``: a folder of frames (sorted in natural order: img2 < img10),
  with ``onset``, ``apex``, ``offset`` as 0-based positions in that order.
  An empty ``apex`` is estimated later (``apex_estimated`` = True).
* ``flow_image``: a precomputed optical-flow image (3 channels: horizontal
  flow, vertical flow, optical strain scaled to 0-255, any size);
  ``apex_image`` / ``onset_image``: precomputed face images.

``flow_encoding`` says how a flow file is written: ``centered`` (the
project's own images, 128 = no motion; the default), ``minmax`` (each
channel min-max scaled to 0..255 on its own, as public pipelines write them)
or ``npy`` (a raw float array; the default for ``.npy`` files). The column
wins over the indexer option ``flow_encoding`` (``--dataset-option
flow_encoding=minmax``). A manifest holds one form: rows with frames and
rows with only precomputed images do not mix (the error names the row).

Give a manifest as ``--dataset manifest --dataset-option manifest=PATH``,
PATH the CSV or a folder holding its ``manifest.csv`` or exactly one CSV.

Optional: ``dataset`` (part name), ``emotion``, ``fps``, ``cropped``,
``action_units``, ``mask`` (ground-truth motion masks, .npz). Paths are
relative to the manifest file. Errors name the manifest, the row (1-based, as a
spreadsheet shows it, header = row 1) and the column. A bad row (missing file,
onset outside the clip...) is skipped and recorded in ``table.attrs['problems']``
(see :mod:`mer_core.datasets._common`); an unusable apex is estimated and flagged.
"""
from __future__ import annotations

import math
import stat
from pathlib import Path
from typing import Any

import pandas as pd

from mer_core.datasets._common import Problems, finish, frame_files
from mer_core.datasets.classes import CLASS_SETS, COMPOSITE_MAPPING, LABEL_SYNONYMS
from mer_core.datasets.registry import register_dataset
from mer_core.errors import DatasetError

REQUIRED_COLUMNS = ("subject", "clip", "label")
FLOW_ENCODINGS = ("centered", "minmax", "npy")  # as mer_core.preprocess.flow.FLOW_ENCODINGS (a layer below it)


def manifest_csv(path: str | Path, flag: str = "--dataset-option manifest") -> Path:
    """The CSV a manifest path names: the file itself, a folder's ``manifest.csv``, or a folder's only CSV."""
    path = Path(path).expanduser()
    if path.is_dir() and (path / "manifest.csv").exists():
        return _regular(path / "manifest.csv", flag)
    if path.is_dir():
        csvs = sorted(p for p in path.iterdir() if p.suffix.lower() == ".csv" and p.is_file())
        if len(csvs) != 1:
            found = f"{len(csvs)} CSV files ({', '.join(p.name for p in csvs[:4])})" if csvs else "no CSV file"
            raise DatasetError(f"{flag}={path}: the folder holds {found}; give the CSV itself "
                               f"({flag}=/path/to/manifest.csv) or a folder with exactly one CSV")
        return csvs[0]
    if not path.exists():
        raise DatasetError(f"{flag}={path}: manifest not found (expected a CSV file or a folder holding one)")
    return _regular(path, flag)


def _regular(path: Path, flag: str) -> Path:
    """``path`` when it is a regular file; a FIFO, socket or device would block or never end."""
    if not path.is_file():
        mode = path.stat().st_mode
        kind = ("a FIFO (named pipe)" if stat.S_ISFIFO(mode) else "a socket" if stat.S_ISSOCK(mode)
                else "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) else "a special file")
        raise DatasetError(f"{flag}={path}: {kind}, not a regular file; give the manifest CSV file itself")
    return path


def read_manifest(
    path: str | Path,
    *,
    dataset: str | None = None,
    class_set: str = "native",
    strict: bool = False,
    flow_encoding: str = "",
) -> pd.DataFrame:
    """Index a manifest CSV into a sample table.

    A whole-file problem (missing file, unreadable CSV, missing columns) raises
    :class:`DatasetError`. A bad row is skipped and recorded in
    ``table.attrs['problems']`` so the rest still indexes, unless ``strict``,
    where the first bad row raises. A missing or impossible apex is estimated
    (middle frame) and flagged rather than skipped. ``class_set`` 'native'
    keeps the manifest's ``label``; another class set maps ``emotion``.
    """
    path = manifest_csv(path)
    if flow_encoding and flow_encoding not in FLOW_ENCODINGS:
        raise DatasetError(f"--dataset-option flow_encoding={flow_encoding!r}: expected one of {', '.join(FLOW_ENCODINGS)}")
    try:
        raw = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as exc:
        raise DatasetError(f"{path}: cannot read as CSV ({exc})") from exc
    raw.columns = [str(c).strip() for c in raw.columns]
    missing = [c for c in REQUIRED_COLUMNS if c not in raw.columns]
    if missing:
        raise DatasetError(f"{path}: missing column(s) {missing}; a manifest needs {list(REQUIRED_COLUMNS)}")
    if not {"frames_dir", "flow_image", "apex_image"} & set(raw.columns):
        raise DatasetError(f"{path}: needs a 'frames_dir', 'flow_image' or 'apex_image' column to find each clip's data")
    if raw.empty:
        raise DatasetError(f"{path}: the manifest has no rows")
    base = path.parent
    default_dataset = dataset or path.parent.name or "manifest"
    problems = Problems()
    rows = []
    for i, r in enumerate(raw.to_dict("records")):
        try:
            row = _row(path, base, i + 2, r, default_dataset, problems)
            _flow_encoding(f"{path} row {i + 2}", row, r.get("flow_encoding", "").strip().lower() or flow_encoding)
        except DatasetError as exc:
            if strict:
                raise
            problems.add("error", "row", f"{exc}; row skipped", file=path, row=i + 2)
            continue
        row["_line"], row["_file"] = i + 2, str(path)
        rows.append(row)
    if strict and problems.items:
        raise DatasetError(problems.items[0]["message"])
    if class_set == "native":
        _unknown_labels(path, rows, problems)
    _one_form(path, rows)
    return finish(rows, problems, dataset=default_dataset, class_set=class_set, origin=str(path))


def _row(manifest: Path, base: Path, line: int, r: dict[str, str], default_dataset: str, problems: Problems) -> dict[str, Any]:
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
        "fps": _frame_rate(where, r.get("fps", "")),
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
        row.update(_frame_fields(manifest, line, (base / frames_dir).resolve(), r, problems))
    elif not (row.get("flow_path") or row.get("apex_image_path")):
        raise DatasetError(f"{where}: give a frames_dir, a flow_image or an apex_image for clip {row['clip']!r}")
    return row


def _flow_encoding(where: str, row: dict[str, Any], declared: str) -> None:
    """Set the row's ``flow_encoding`` (only rows with a flow file have one)."""
    flow = str(row.get("flow_path") or "")
    if not flow:
        return
    is_npy = flow.lower().endswith(".npy")
    encoding = declared or ("npy" if is_npy else "centered")
    if encoding not in FLOW_ENCODINGS:
        raise DatasetError(f"{where}: flow_encoding={encoding!r}; expected one of {', '.join(FLOW_ENCODINGS)}")
    if is_npy != (encoding == "npy"):
        raise DatasetError(f"{where}: flow_encoding={encoding!r} does not fit {Path(flow).name} "
                           "(.npy files are 'npy'; images are 'centered' or 'minmax')")
    row["flow_encoding"] = encoding


def known_labels() -> frozenset[str]:
    """Every emotion name and spelling the project knows: class sets, synonyms, composite mapping."""
    names = set(LABEL_SYNONYMS) | set(LABEL_SYNONYMS.values()) | set(COMPOSITE_MAPPING)
    return frozenset(names | {c for classes in CLASS_SETS.values() for c in classes} | {"neutral", "other"})


def _unknown_labels(path: Path, rows: list[dict[str, Any]], problems: Problems) -> None:
    """One warning per label that is no known emotion name: with the native class set a typo
    ('banana', 'suprise') would silently become a class of its own."""
    known, lines = known_labels(), {}
    for row in rows:
        if row["label"] not in known:
            lines.setdefault(row["label"], []).append(row["_line"])
    for label, at in sorted(lines.items()):
        more = f" and {len(at) - 5} more" if len(at) > 5 else ""
        problems.add("warning", "label",
                     f"{path.name}: label {label!r} (row{'s' if len(at) > 1 else ''} {', '.join(map(str, at[:5]))}{more}) "
                     "is not a known emotion name or spelling; with the native class set it becomes a class of its "
                     "own. Correct it if it is a typo; ignore this if the dataset has classes of its own",
                     file=path, row=at[0])


def _one_form(path: Path, rows: list[dict[str, Any]]) -> None:
    """Refuse a manifest that mixes frame rows with precomputed-image rows, naming the first odd row."""
    forms: dict[str, list[int]] = {}
    for row in rows:
        forms.setdefault("frames" if row.get("frames") else "images", []).append(row["_line"])
    if len(forms) < 2:
        return
    minority = min(forms, key=lambda k: len(forms[k]))
    other = "precomputed images only" if minority == "frames" else "frames"
    what = "a frames_dir" if minority == "frames" else "precomputed images and no frames_dir"
    raise DatasetError(
        f"{path} row {forms[minority][0]}: gives {what}, while {len(rows) - len(forms[minority])} "
        f"other rows give {other}; one manifest holds one form (rows {forms[minority][:5]} differ): "
        "split it into two manifests or give every row the same inputs"
    )


def _frame_fields(manifest: Path, line: int, folder: Path, r: dict[str, str], problems: Problems) -> dict[str, Any]:
    """frames, onset, apex, offset of a frames_dir row; a missing or impossible apex is estimated and flagged."""
    where = f"{manifest} row {line}"
    if not folder.is_dir():
        raise DatasetError(f"{where}: frames_dir is not a folder: {folder}")
    frames = frame_files(folder)
    if len(frames) < 2:
        raise DatasetError(f"{where}: {folder} holds {len(frames)} image(s); a clip needs at least 2 frames")
    n = len(frames)
    onset = _number(where, "onset", r.get("onset", ""), int, 0)
    offset = _number(where, "offset", r.get("offset", ""), int, n - 1)
    for name, value in (("onset", onset), ("offset", offset)):
        if not 0 <= value < n:
            raise DatasetError(f"{where}: {name}={value} is outside the {n} frames of {folder} (expected 0..{n - 1})")
    if offset < onset:
        raise DatasetError(f"{where}: offset {offset} is before onset {onset}")
    apex_text = r.get("apex", "").strip()
    estimated = not apex_text
    apex = (onset + offset) // 2
    if not estimated:
        try:
            apex = _number(where, "apex", apex_text, int, 0)
        except DatasetError as exc:
            problems.add("warning", "apex", f"{exc}; apex estimated as the middle frame", file=manifest, row=line)
            apex, estimated = (onset + offset) // 2, True
    if not estimated and not onset <= apex <= offset:
        problems.add(
            "warning", "apex",
            f"{where}: apex {apex} is outside onset..offset ({onset}..{offset}); apex estimated as the middle frame",
            file=manifest, row=line,
        )
        apex, estimated = (onset + offset) // 2, True
    return dict(
        frames=tuple(str(p) for p in frames), onset=onset, apex=apex, offset=offset,
        apex_estimated=estimated, apex_method="middle" if estimated else "annotated",
    )


def _frame_rate(where: str, text: str) -> float:
    """The ``fps`` column: empty or 0 = unknown, else a finite rate > 0 (inf, nan or -30 would pass unseen)."""
    fps = _number(where, "fps", text, float, 0.0)
    if not (math.isfinite(fps) and fps >= 0):
        raise DatasetError(f"{where}: column 'fps' = {text.strip()!r}: expected a finite frame rate > 0 "
                           "(or empty / 0 when unknown)")
    return fps


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
def index_manifest(
    root: Path | None,
    *,
    manifest: str = "",
    dataset: str | None = None,
    class_set: str = "native",
    strict: bool = False,
    verify_images: bool = False,
    flow_encoding: str = "",
) -> pd.DataFrame:
    """Index a manifest: ``manifest`` (``--dataset-option manifest=PATH``) is the CSV or its folder.

    ``root`` is still accepted (a configured root) when ``manifest`` is not
    given. ``verify_images`` is accepted for symmetry with the other indexers
    (the dataset check passes it); the check decodes precomputed images itself.
    """
    target = Path(manifest) if manifest else root
    if target is None:
        raise DatasetError("the manifest dataset needs a path: pass --dataset-option manifest=/path/to/manifest.csv "
                           "(the CSV, or a folder holding exactly one CSV)")
    return read_manifest(target, dataset=dataset, class_set=class_set, strict=strict, flow_encoding=flow_encoding)
