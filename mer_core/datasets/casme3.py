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

from mer_core.datasets._common import (
    Problems,
    require_root,
    cell_int,
    cell_text,
    find_file,
    finish,
    first_of,
    frame_files,
    frame_number,
    key_frames_ok,
    normalise_label,
    place_frames,
    read_sheet,
)
from mer_core.datasets.registry import register_dataset
from mer_core.errors import DatasetError

NAME = "casme3"
CLASS_SETS = ("casme3_7", "composite3", "native")
FPS = 30.0
EMOTIONS = ("anger", "disgust", "fear", "happiness", "sadness", "surprise", "others")
SYNONYMS = {"happy": "happiness", "sad": "sadness", "other": "others", "angry": "anger", "surprised": "surprise", "disgusted": "disgust"}
SHEET_PATTERNS = ("cas(me)3_part_A_ME_label*.xlsx", "*part_A*ME*label*.xlsx", "*ME_label*.xlsx", "annotation/*ME_label*.xlsx")
COLUMNS = {
    "subject": ("subject", "sub"),
    "clip": ("filename", "file"),
    "onset": ("onset", "onsetframe"),
    "apex": ("apex", "apexframe"),
    "offset": ("offset", "offsetframe"),
    "emotion": ("emotion", "estimatedemotion"),
}


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


@register_dataset(
    NAME,
    description="CAS(ME)^3 part A (ME label sheet + part_A/spNO.*/<file>/color frames), 30 fps",
    default_class_set="casme3_7",
    class_sets=CLASS_SETS,
    needs_root=True,
)
def index_casme3(
    root: Path | None,
    *,
    class_set: str = "casme3_7",
    sheet: str | Path | None = None,
    verify_images: bool = False,
) -> pd.DataFrame:
    """Index CAS(ME)^3 part A under ``root``; problems go to ``table.attrs['problems']``."""
    root = require_root(NAME, root, "the folder holding part_A/ and the ME label sheet")
    sheet_path = Path(sheet) if sheet else find_file(root, SHEET_PATTERNS, "CAS(ME)^3 part A ME label sheet")
    base = frames_root(root)
    problems = Problems()
    records, _ = read_sheet(sheet_path, COLUMNS)
    listings: dict[Path, list[Path] | None] = {}
    rows = []
    for line, rec in records:
        row = _row(rec, line, sheet_path, base, listings, problems, verify_images)
        if row is not None:
            rows.append(row)
    return finish(rows, problems, dataset=NAME, class_set=class_set, origin=str(sheet_path), allowed=CLASS_SETS)


def _recording(folder: Path, listings: dict[Path, list[Path] | None]) -> list[Path] | None:
    if folder not in listings:
        color = folder / "color" if (folder / "color").is_dir() else folder
        listings[folder] = frame_files(color) if color.is_dir() else None
    return listings[folder]


def _row(rec: dict[str, Any], line: int, sheet: Path, base: Path, listings: dict, problems: Problems, verify: bool) -> dict[str, Any] | None:
    where = f"{sheet.name} row {line}"
    subject = normalise_subject(rec["subject"])
    name = cell_text(rec["clip"])
    onset, apex, offset = (cell_int(rec[k]) for k in ("onset", "apex", "offset"))
    if not subject or not name:
        problems.add("error", "annotation", f"{where}: empty Subject or Filename cell", file=sheet, row=line)
        return None
    if onset is None or offset is None or offset <= onset:
        problems.add("error", "annotation", f"{where}: onset {rec['onset']!r} / offset {rec['offset']!r} do not delimit a clip; row skipped", file=sheet, row=line)
        return None
    clip = f"{name}_{onset}_{offset}"
    sid = f"{NAME}/{subject}/{clip}"
    emotion = normalise_label(rec["emotion"], SYNONYMS)
    if emotion not in EMOTIONS:
        problems.add("warning", "label", f"{where}: unknown emotion {emotion!r} for {sid}; expected one of {list(EMOTIONS)}; row skipped", file=sheet, row=line, sample_id=sid)
        return None
    folder = base / subject / name
    recording = _recording(folder, listings)
    if recording is None:
        problems.add("error", "missing_frames", f"{where}: recording folder not found: {folder}", file=sheet, row=line, sample_id=sid)
        return None
    frames = [p for p in recording if (n := frame_number(p)) is not None and onset <= n <= offset]
    if len(frames) < 2:
        problems.add("error", "missing_frames", f"{where}: frames {onset}..{offset} not found in {folder}", file=sheet, row=line, sample_id=sid)
        return None
    row: dict[str, Any] = dict(
        sample_id=sid, dataset=NAME, subject=f"{NAME}:{subject}", native_subject=subject, clip=clip,
        emotion=emotion, frames=tuple(str(p) for p in frames), fps=FPS, part=NAME, cropped=False,
        action_units=cell_text(first_of(rec, "au", "aus", "actionunits")), _line=line, _file=str(sheet),
    )
    row.update(place_frames(frames, onset, apex, offset, where=where, sheet=sheet, line=line, sid=sid, problems=problems))
    if verify and not key_frames_ok(row, where=where, line=line, problems=problems):
        return None
    return row
