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

NAME = "samm"
CLASS_SETS = ("samm_5", "composite3", "native")
FPS = 200.0
EMOTIONS = ("anger", "contempt", "disgust", "fear", "happiness", "other", "sadness", "surprise")
SYNONYMS = {"others": "other", "happy": "happiness", "sad": "sadness", "angry": "anger", "surprised": "surprise"}
SHEET_PATTERNS = ("SAMM_Micro_FACS_Codes*.xlsx", "SAMM*FACS*.xlsx", "SAMM*.xlsx")
COLUMNS = {
    "subject": ("subject",),
    "clip": ("filename", "file"),
    "onset": ("onsetframe", "onset"),
    "apex": ("apexframe", "apex"),
    "offset": ("offsetframe", "offset"),
    "emotion": ("estimatedemotion", "emotion"),
}


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


@register_dataset(
    NAME,
    description="SAMM (SAMM_Micro_FACS_Codes sheet + SAMM/006/006_1_2 frames), 200 fps",
    default_class_set="samm_5",
    class_sets=CLASS_SETS,
    needs_root=True,
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
    root = require_root(NAME, root, "the folder holding SAMM_Micro_FACS_Codes_v2.xlsx")
    sheet_path = Path(sheet) if sheet else find_file(root, SHEET_PATTERNS, "SAMM FACS-codes spreadsheet")
    base = frames_root(root)
    problems = Problems()
    records, _ = read_sheet(sheet_path, COLUMNS, sheet=sheet_name)
    rows = []
    for line, rec in records:
        row = _row(rec, line, sheet_path, base, problems, verify_images)
        if row is not None:
            rows.append(row)
    return finish(rows, problems, dataset=NAME, class_set=class_set, origin=str(sheet_path), allowed=CLASS_SETS)


def _row(rec: dict[str, Any], line: int, sheet: Path, base: Path, problems: Problems, verify: bool) -> dict[str, Any] | None:
    where = f"{sheet.name} row {line}"
    subject = normalise_subject(rec["subject"])
    clip = cell_text(rec["clip"])
    if not subject or not clip:
        problems.add("error", "annotation", f"{where}: empty Subject or Filename cell", file=sheet, row=line)
        return None
    sid = f"{NAME}/{subject}/{clip}"
    if not clip.startswith(subject + "_"):
        problems.add("warning", "subject", f"{where}: clip {clip!r} does not start with its subject {subject!r}", file=sheet, row=line, sample_id=sid)
    emotion = normalise_label(rec["emotion"], SYNONYMS)
    if emotion not in EMOTIONS:
        problems.add("warning", "label", f"{where}: unknown emotion {emotion!r} for {sid}; expected one of {list(EMOTIONS)}; row skipped", file=sheet, row=line, sample_id=sid)
        return None
    frames = load_clip_frames(base / subject / clip, where=where, line=line, sid=sid, problems=problems, file=sheet)
    if frames is None:
        return None
    row: dict[str, Any] = dict(
        sample_id=sid, dataset=NAME, subject=f"{NAME}:{subject}", native_subject=subject, clip=clip,
        emotion=emotion, frames=tuple(str(p) for p in frames), fps=FPS, part=NAME, cropped=False,
        action_units=cell_text(first_of(rec, "actionunits", "aus", "au")),
        _line=line, _file=str(sheet),
    )
    row.update(place_frames(frames, cell_int(rec["onset"]), cell_int(rec["apex"]), cell_int(rec["offset"]), where=where, sheet=sheet, line=line, sid=sid, problems=problems))
    if verify and not key_frames_ok(row, where=where, line=line, problems=problems):
        return None
    return row
