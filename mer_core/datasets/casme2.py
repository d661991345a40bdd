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

from mer_core.datasets._common import Problems, load_clip_frames
from mer_core.datasets.registry import register_dataset
from mer_core.datasets.sheet import CodingSheet, SheetRow, cell_text, index_coding_sheet
from mer_core.errors import DatasetError

NAME = "casme2"
RAW_DIRS = ("CASME2_RAW_selected", "CASME2-RAW-selected", "CASME2_RAW", "CASME2-RAW")
CROPPED_DIRS = ("Cropped", "CASME2_Cropped", "Cropped-updated/Cropped")


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


SHEET = CodingSheet(
    dataset=NAME,
    title="CASME II coding sheet",
    files=("CASME2-coding-*.xlsx", "CASME2*coding*.xlsx", "CASME2*.xlsx"),
    root_hint="the folder holding CASME2-coding-*.xlsx",
    emotions=("happiness", "disgust", "repression", "surprise", "others", "fear", "sadness"),
    class_sets=("casme2_5", "composite3", "native"),
    fps=200.0,
    subject=normalise_subject,
    frame_names=("img{n}.jpg", "reg_img{n}.jpg"),
)
CLASS_SETS, FPS, EMOTIONS = SHEET.class_sets, SHEET.fps, SHEET.emotions


@register_dataset(
    NAME,
    description="CASME II (coding sheet + CASME2_RAW_selected or Cropped frames), 200 fps",
    default_class_set="casme2_5",
    class_sets=CLASS_SETS,
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
    root = SHEET.root(root)
    sheet_path = SHEET.locate(root, sheet)
    base, cropped = frames_root(root, frames)

    def frames_of(row: SheetRow, problems: Problems) -> list[Path] | None:
        folder = subject_folder(base, row.subject) / row.clip
        return load_clip_frames(folder, where=row.where, line=row.line, sid=row.sample_id, problems=problems, file=row.sheet, names=SHEET.expected_frames())

    return index_coding_sheet(SHEET, sheet_path, frames_of, class_set=class_set, verify_images=verify_images, cropped=cropped)
