"""SAMM indexer: ``SAMM_Micro_FACS_Codes_v2.xlsx`` plus the frame folders.

The spreadsheet has about 13 rows of title and legend above its header row
(Subject, Filename, Inducement Code, Onset Frame, Apex Frame, Offset Frame,
Duration, Micro, Action Units, Estimated Emotion, Objective Classes, Notes);
the header is found by its column names, not by a fixed offset. Subjects are
read as numbers (6 -> folder ``006``). Frames live under
``SAMM/006/006_1_2/006_05562.jpg``: the frame number is the last digits of the
file name. At least one row has its apex before its onset (a typo in the
sheet): it is reported and the apex is estimated instead. An offset of -1
(unknown) falls back to the clip's last frame, with a warning.
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

NAME = "samm"


def normalise_subject(value: Any) -> str:
    """6, '6', '06', '006' -> '006' (the folder spelling)."""
    text = cell_text(value)
    return f"{int(text):03d}" if re.fullmatch(r"\d+", text) else text


def frames_root(root: Path) -> Path:
    """The folder holding 006/, 007/...: ``root/SAMM`` or ``root`` itself."""
    for cand in (root / "SAMM", root / "samm", root):
        if cand.is_dir() and any(p.is_dir() and re.fullmatch(r"\d+", p.name) for p in cand.iterdir()):
            return cand
    raise DatasetError(f"samm: no subject folders (006/, 007/...) under {root} or {root / 'SAMM'}")


SHEET = CodingSheet(
    dataset=NAME,
    title="SAMM FACS-codes spreadsheet",
    files=("SAMM_Micro_FACS_Codes*.xlsx", "SAMM*FACS*.xlsx", "SAMM*.xlsx"),
    root_hint="the folder holding SAMM_Micro_FACS_Codes_v2.xlsx",
    emotions=("anger", "contempt", "disgust", "fear", "happiness", "other", "sadness", "surprise"),
    class_sets=("samm_5", "composite3", "native"),
    fps=200.0,
    subject=normalise_subject,
    frame_names=("006_05562.jpg", "006_1_1_0001.jpg"),  # the frame number is the last digits
)
CLASS_SETS, FPS, EMOTIONS = SHEET.class_sets, SHEET.fps, SHEET.emotions


@register_dataset(
    NAME,
    description="SAMM (SAMM_Micro_FACS_Codes sheet + SAMM/006/006_1_2 frames), 200 fps",
    default_class_set="samm_5",
    class_sets=CLASS_SETS,
)
def index_samm(
    root: Path | None,
    *,
    class_set: str = "samm_5",
    sheet: str | Path | None = None,
    sheet_name: str | None = None,
    verify_images: bool = False,
) -> pd.DataFrame:
    """Index SAMM under ``root``; problems go to ``table.attrs['problems']``.

    ``sheet``: the FACS-codes spreadsheet (default: ``SAMM_Micro_FACS_Codes*.xlsx``);
    ``sheet_name``: the worksheet (default: the first one with the header).
    """
    root = SHEET.root(root)
    sheet_path = SHEET.locate(root, sheet)
    base = frames_root(root)

    def frames_of(row: SheetRow, problems: Problems) -> list[Path] | None:
        if not row.clip.startswith(row.subject + "_"):
            problems.add("warning", "subject", f"{row.where}: clip {row.clip!r} does not start with its subject {row.subject!r}", file=row.sheet, row=row.line, sample_id=row.sample_id)
        folder = base / row.subject / row.clip
        return load_clip_frames(folder, where=row.where, line=row.line, sid=row.sample_id, problems=problems, file=row.sheet, names=SHEET.expected_frames())

    return index_coding_sheet(SHEET, sheet_path, frames_of, class_set=class_set, verify_images=verify_images, sheet_name=sheet_name)
