"""CASME II indexer: the coding spreadsheet plus the frame folders.

As distributed: ``CASME2-coding-*.xlsx`` (columns Subject as a number,
Filename, OnsetFrame, ApexFrame, OffsetFrame, Action Units, Estimated Emotion,
...) and frames under ``CASME2_RAW_selected/sub01/EP02_01f/img46.jpg`` (or the
``Cropped`` variant, ``reg_img46.jpg``). Sheet frame numbers are the numbers in
the file names; the table stores positions in the clip's frame list.

Known quirks handled row by row (see :mod:`mer_core.datasets._common`): apex
cells holding "/" (apex estimated as the middle frame and flagged), onset equal
to apex, frame numbers missing on disk, missing folders (row skipped).
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pandas as pd

from mer_core.datasets._common import (
    Problems,
    require_root,
    cell_int,
    cell_text,
    find_file,
    finish,
    first_of,
    key_frames_ok,
    load_clip_frames,
    normalise_label,
    place_frames,
    read_sheet,
)
from mer_core.datasets.registry import register_dataset
from mer_core.errors import DatasetError

NAME = "casme2"
CLASS_SETS = ("casme2_5", "composite3", "native")
FPS = 200.0
EMOTIONS = ("happiness", "disgust", "repression", "surprise", "others", "fear", "sadness")
SYNONYMS = {"other": "others", "happy": "happiness", "sad": "sadness", "surprised": "surprise", "disgusted": "disgust", "repressed": "repression"}
SHEET_PATTERNS = ("CASME2-coding-*.xlsx", "CASME2*coding*.xlsx", "CASME2*.xlsx")
RAW_DIRS = ("CASME2_RAW_selected", "CASME2-RAW-selected", "CASME2_RAW", "CASME2-RAW")
CROPPED_DIRS = ("Cropped", "CASME2_Cropped", "Cropped-updated/Cropped")
COLUMNS = {
    "subject": ("subject",),
    "clip": ("filename", "file", "clip"),
    "onset": ("onsetframe", "onset"),
    "apex": ("apexframe", "apex"),
    "offset": ("offsetframe", "offset"),
    "emotion": ("estimatedemotion", "emotion"),
}


def normalise_subject(value: Any) -> str:
    """1, '1', '01', 'sub1', 'Sub01' -> 'sub01' (the folder spelling)."""
    text = cell_text(value).lower()
    m = re.fullmatch(r"(?:sub)?0*(\d+)", text)
    return f"sub{int(m.group(1)):02d}" if m else text


def frames_root(root: Path, frames: str) -> tuple[Path, bool]:
    """The folder holding sub01/, sub02/...; ``frames`` is 'auto', 'raw' or 'cropped'."""
    if frames not in ("auto", "raw", "cropped"):
        raise DatasetError(f"casme2: frames={frames!r}; expected 'auto', 'raw' or 'cropped'")
    choices = {"raw": [(d, False) for d in RAW_DIRS], "cropped": [(d, True) for d in CROPPED_DIRS]}
    order = choices["raw"] + choices["cropped"] if frames == "auto" else choices[frames]
    for sub, cropped in order:
        if (root / sub).is_dir():
            return root / sub, cropped
    if frames == "auto" and any(p.is_dir() and normalise_subject(p.name).startswith("sub") for p in root.glob("sub*")):
        return root, False
    raise DatasetError(
        f"casme2: no frame folder under {root}; expected one of {', '.join(d for d, _ in order)} holding sub01/EP02_01f/..."
    )


def subject_folder(base: Path, subject: str) -> Path:
    """The subject folder, tolerating 'sub1' vs 'sub01' spellings on disk."""
    folder = base / subject
    if folder.is_dir():
        return folder
    m = re.fullmatch(r"sub(\d+)", subject)
    if m:
        for alt in (f"sub{int(m.group(1))}", f"sub{int(m.group(1)):03d}"):
            if (base / alt).is_dir():
                return base / alt
    return folder


@register_dataset(
    NAME,
    description="CASME II (coding sheet + CASME2_RAW_selected or Cropped frames), 200 fps",
    default_class_set="casme2_5",
    class_sets=CLASS_SETS,
    needs_root=True,
)
def index_casme2(
    root: Path | None,
    *,
    class_set: str = "casme2_5",
    frames: str = "auto",
    sheet: str | Path | None = None,
    verify_images: bool = False,
) -> pd.DataFrame:
    """Index CASME II under ``root``; problems go to ``table.attrs['problems']``.

    ``frames``: 'auto' (RAW_selected, else Cropped), 'raw' or 'cropped'.
    ``sheet``: the coding spreadsheet (default: the newest ``CASME2-coding-*.xlsx``).
    ``verify_images``: decode the onset/apex/offset frames (slower; the dataset
    check turns it on) and skip rows whose key frames are corrupt.
    """
    root = require_root(NAME, root, "the folder holding CASME2-coding-*.xlsx")
    sheet_path = Path(sheet) if sheet else find_file(root, SHEET_PATTERNS, "CASME II coding sheet")
    base, cropped = frames_root(root, frames)
    problems = Problems()
    records, _ = read_sheet(sheet_path, COLUMNS)
    rows = []
    for line, rec in records:
        row = read_row(rec, line, sheet_path, base, problems, verify_images=verify_images)
        if row is not None:
            row["cropped"] = cropped
            rows.append(row)
    return finish(rows, problems, dataset=NAME, class_set=class_set, origin=str(sheet_path), allowed=CLASS_SETS)


def read_row(rec: dict[str, Any], line: int, sheet: Path, base: Path, problems: Problems, *, verify_images: bool) -> dict[str, Any] | None:
    where = f"{sheet.name} row {line}"
    subject = normalise_subject(rec["subject"])
    clip = cell_text(rec["clip"])
    if not subject or not clip:
        problems.add("error", "annotation", f"{where}: empty Subject or Filename cell", file=sheet, row=line)
        return None
    sid = f"{NAME}/{subject}/{clip}"
    emotion = normalise_label(rec["emotion"], SYNONYMS)
    if emotion not in EMOTIONS:
        problems.add("warning", "label", f"{where}: unknown emotion {emotion!r} for {sid}; expected one of {list(EMOTIONS)}; row skipped", file=sheet, row=line, sample_id=sid)
        return None
    frames = load_clip_frames(subject_folder(base, subject) / clip, where=where, line=line, sid=sid, problems=problems, file=sheet)
    if frames is None:
        return None
    row: dict[str, Any] = dict(
        sample_id=sid, dataset=NAME, subject=f"{NAME}:{subject}", native_subject=subject, clip=clip,
        emotion=emotion, frames=tuple(str(p) for p in frames), fps=FPS, part=NAME,
        action_units=cell_text(first_of(rec, "actionunits", "aus", "au")),
        _line=line, _file=str(sheet),
    )
    row.update(place_frames(frames, cell_int(rec["onset"]), cell_int(rec["apex"]), cell_int(rec["offset"]), where=where, sheet=sheet, line=line, sid=sid, problems=problems))
    if verify_images and not key_frames_ok(row, where=where, line=line, problems=problems):
        return None
    return row
