"""CAS(ME)^3 part A indexer: the ME label sheet plus the recordings' frames.

As distributed: ``cas(me)3_part_A_ME_label_JpgIndex_v2.xlsx`` (columns
Subject, Filename, Onset, Apex, Offset, AU, Objective class, emotion; frame
numbers are the jpg indices) and whole recordings under
``part_A/spNO.1/a/color/*.jpg``. A recording ('a', 'b', ...) holds several
micro-expressions, so a clip here is the onset..offset slice of a recording,
named ``<Filename>_<onset>_<offset>`` (e.g. 'a_123_140'). 30 fps colour.

Native labels are normalised to the names the other datasets use
(happy -> happiness, sad -> sadness); class sets: 'casme3_7' (the seven
emotions), 'composite3' (others dropped) and 'native'.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pandas as pd

from mer_core.datasets._common import Problems, frame_files, frame_number
from mer_core.datasets.registry import register_dataset
from mer_core.datasets.sheet import CodingSheet, SheetRow, cell_int, cell_text, index_coding_sheet
from mer_core.errors import DatasetError

NAME = "casme3"


def normalise_subject(value: Any) -> str:
    """'spNO.1', 'spno.1', 1 -> 'spNO.1' (the folder spelling)."""
    text = cell_text(value)
    m = re.fullmatch(r"(?:sp\s*no\.?\s*)?0*(\d+)", text, flags=re.IGNORECASE)
    return f"spNO.{int(m.group(1))}" if m else text


def frames_root(root: Path) -> Path:
    for cand in (root / "part_A", root / "part_A" / "data", root):
        if cand.is_dir() and any(p.is_dir() and p.name.lower().startswith("spno") for p in cand.iterdir()):
            return cand
    raise DatasetError(f"casme3: no subject folders (spNO.1/...) under {root / 'part_A'} or {root}")


def clip_name(name: str, rec: dict[str, Any]) -> str:
    """A clip is the onset..offset slice of recording ``name``: 'a_123_140'."""
    onset, offset = cell_int(rec["onset"]), cell_int(rec["offset"])
    if onset is None or offset is None or offset <= onset:
        raise ValueError(f"onset {rec['onset']!r} / offset {rec['offset']!r} do not delimit a clip")
    return f"{name}_{onset}_{offset}"


SHEET = CodingSheet(
    dataset=NAME,
    title="CAS(ME)^3 part A ME label sheet",
    files=("cas(me)3_part_A_ME_label*.xlsx", "*part_A*ME*label*.xlsx", "*ME_label*.xlsx", "annotation/*ME_label*.xlsx"),
    root_hint="the folder holding part_A/ and the ME label sheet",
    emotions=("anger", "disgust", "fear", "happiness", "sadness", "surprise", "others"),
    class_sets=("casme3_7", "composite3", "native"),
    fps=30.0,
    subject=normalise_subject,
    frame_names=("{n}.jpg",),  # the sheet's jpg index, under <recording>/color/
    action_units=("au", "aus", "actionunits"),
    clip_name=clip_name,
)
CLASS_SETS, FPS, EMOTIONS = SHEET.class_sets, SHEET.fps, SHEET.emotions


@register_dataset(
    NAME,
    description="CAS(ME)^3 part A (ME label sheet + part_A/spNO.*/<file>/color frames), 30 fps",
    default_class_set="casme3_7",
    class_sets=CLASS_SETS,
)
def index_casme3(
    root: Path | None,
    *,
    class_set: str = "casme3_7",
    sheet: str | Path | None = None,
    verify_images: bool = False,
) -> pd.DataFrame:
    """Index CAS(ME)^3 part A under ``root``; problems go to ``table.attrs['problems']``."""
    root = SHEET.root(root)
    sheet_path = SHEET.locate(root, sheet)
    base = frames_root(root)
    listings: dict[Path, list[Path] | None] = {}

    def frames_of(row: SheetRow, problems: Problems) -> list[Path] | None:
        folder = base / row.subject / row.name
        recording = _recording(folder, listings)
        if recording is None:
            problems.add("error", "missing_frames", f"{row.where}: recording folder not found: {folder}", file=row.sheet, row=row.line, sample_id=row.sample_id)
            return None
        frames = [p for p in recording if (n := frame_number(p)) is not None and row.onset <= n <= row.offset]
        if len(frames) < 2:
            problems.add("error", "missing_frames", f"{row.where}: frames {row.onset}..{row.offset} not found in {folder} (expected {SHEET.expected_frames()} under color/)", file=row.sheet, row=row.line, sample_id=row.sample_id)
            return None
        return frames

    return index_coding_sheet(SHEET, sheet_path, frames_of, class_set=class_set, verify_images=verify_images)


def _recording(folder: Path, listings: dict[Path, list[Path] | None]) -> list[Path] | None:
    if folder not in listings:
        color = folder / "color" if (folder / "color").is_dir() else folder
        listings[folder] = frame_files(color) if color.is_dir() else None
    return listings[folder]
