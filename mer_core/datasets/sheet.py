"""Coding sheets: one declarative description per dataset and one reader for all.

CASME II, SAMM and CAS(ME)^3 ship a spreadsheet with one row per clip
(subject, clip, onset/apex/offset frame numbers, action units, emotion) and
frame folders beside it. What differs between them is data, not code: the
sheet's file names, the spellings of its headers, the label vocabulary, the
frame rate, how subjects and frame files are spelled. A :class:`CodingSheet`
holds that description; :func:`index_coding_sheet` reads any sheet so
described, row by row (a bad row is skipped or fixed and recorded as a
problem, see :mod:`mer_core.datasets._common`). Each indexer module keeps only
its real quirks: where the frames of a row are (CASME II's raw/cropped trees,
CAS(ME)^3's recordings) and the checks its sheet needs (SAMM's clip prefixes).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable

import pandas as pd

from mer_core.datasets._common import Problems, finish, key_frames_ok, place_frames, require_root
from mer_core.datasets.classes import normalise_label
from mer_core.errors import DatasetError

# field -> accepted header spellings (normalised by norm_header), shared by every sheet
COLUMNS: dict[str, tuple[str, ...]] = {
    "subject": ("subject", "sub"),
    "clip": ("filename", "file", "clip"),
    "onset": ("onsetframe", "onset"),
    "apex": ("apexframe", "apex"),
    "offset": ("offsetframe", "offset"),
    "emotion": ("estimatedemotion", "emotion"),
}


@dataclass(frozen=True)
class CodingSheet:
    """How one dataset's coding spreadsheet and frame files are laid out (no I/O)."""

    dataset: str  # 'casme2': the table's dataset and part, the prefix of ids
    title: str  # 'CASME II coding sheet', for messages
    files: tuple[str, ...]  # glob patterns of the sheet, tried in order
    root_hint: str  # what the root should hold, for the 'not a folder' message
    emotions: tuple[str, ...]  # the native labels, spelled as the table keeps them
    class_sets: tuple[str, ...]  # the class sets that apply
    fps: float
    subject: Callable[[Any], str]  # a Subject cell -> the folder spelling ('1' -> 'sub01')
    frame_names: tuple[str, ...]  # frame file names, n = the sheet's frame number ('img{n}.jpg')
    action_units: tuple[str, ...] = ("actionunits", "aus", "au")  # optional headers, first non-empty wins
    # the clip name from the Filename cell and the row (CAS(ME)^3: a slice of a
    # recording); raises ValueError with the reason when the row delimits no clip
    clip_name: Callable[[str, dict[str, Any]], str] | None = None

    def root(self, root: str | Path | None) -> Path:
        return require_root(self.dataset, root, self.root_hint)

    def locate(self, root: Path, sheet: str | Path | None = None) -> Path:
        """The sheet file: ``sheet`` when given, else the newest match of :attr:`files` under ``root``."""
        return Path(sheet) if sheet else find_file(root, self.files, self.title)

    def expected_frames(self) -> str:
        return " or ".join(self.frame_names)


@dataclass(frozen=True)
class SheetRow:
    """One usable row of a coding sheet, before its frames are looked up."""

    sheet: Path
    line: int  # the row number a spreadsheet shows
    subject: str  # folder spelling
    name: str  # the Filename cell
    clip: str  # the clip name in the table (= name, except CAS(ME)^3)
    emotion: str
    onset: int | None
    apex: int | None
    offset: int | None
    action_units: str
    sample_id: str

    @property
    def where(self) -> str:
        return f"{self.sheet.name} row {self.line}"


FramesOf = Callable[[SheetRow, Problems], "list[Path] | None"]


def index_coding_sheet(
    spec: CodingSheet,
    path: Path,
    frames_of: FramesOf,
    *,
    class_set: str,
    verify_images: bool = False,
    sheet_name: str | None = None,
    cropped: bool = False,
) -> pd.DataFrame:
    """Index every row of the sheet at ``path``; problems go to ``table.attrs['problems']``.

    ``frames_of(row, problems)`` returns the row's frame files in order, or
    None after recording why there are none. ``cropped``: whether the
    frames are face crops already. ``verify_images`` decodes the key frames
    and skips rows whose onset, apex or offset frame is corrupt.
    """
    problems = Problems()
    records, _ = read_sheet(path, COLUMNS, sheet=sheet_name)
    rows = []
    for line, rec in records:
        row = parse_row(spec, rec, line, path, problems)
        frames = frames_of(row, problems) if row is not None else None
        if row is None or frames is None:
            continue
        out: dict[str, Any] = dict(
            sample_id=row.sample_id, dataset=spec.dataset, subject=f"{spec.dataset}:{row.subject}",
            native_subject=row.subject, clip=row.clip, emotion=row.emotion, frames=tuple(str(p) for p in frames),
            fps=spec.fps, part=spec.dataset, action_units=row.action_units, _line=line, _file=str(path),
            cropped=cropped,
        )
        out.update(place_frames(frames, row.onset, row.apex, row.offset, where=row.where, sheet=path, line=line, sid=row.sample_id, problems=problems))
        if verify_images and not key_frames_ok(out, where=row.where, line=line, problems=problems):
            continue
        rows.append(out)
    return finish(rows, problems, dataset=spec.dataset, class_set=class_set, origin=str(path), allowed=spec.class_sets)


def parse_row(spec: CodingSheet, rec: dict[str, Any], line: int, sheet: Path, problems: Problems) -> SheetRow | None:
    """The row's cells read and checked, or None (and a problem) when the row is unusable."""
    where = f"{sheet.name} row {line}"
    subject = spec.subject(rec["subject"])
    name = cell_text(rec["clip"])
    if not subject or not name:
        problems.add("error", "annotation", f"{where}: empty Subject or Filename cell", file=sheet, row=line)
        return None
    try:
        clip = spec.clip_name(name, rec) if spec.clip_name else name
    except ValueError as exc:
        problems.add("error", "annotation", f"{where}: {exc}; row skipped", file=sheet, row=line)
        return None
    sid = f"{spec.dataset}/{subject}/{clip}"
    emotion = normalise_label(cell_text(rec["emotion"]), spec.emotions)
    if emotion not in spec.emotions:
        problems.add("warning", "label", f"{where}: unknown emotion {emotion!r} for {sid}; expected one of {list(spec.emotions)}; row skipped", file=sheet, row=line, sample_id=sid)
        return None
    return SheetRow(
        sheet=sheet, line=line, subject=subject, name=name, clip=clip, emotion=emotion,
        onset=cell_int(rec["onset"]), apex=cell_int(rec["apex"]), offset=cell_int(rec["offset"]),
        action_units=cell_text(first_of(rec, *spec.action_units)), sample_id=sid,
    )


# --------------------------------------------------------------------------- files and cells


def norm_header(value: Any) -> str:
    """'Onset Frame' / 'OnsetFrame' / 'onset_frame' -> 'onsetframe'."""
    return re.sub(r"[^a-z0-9]", "", str(value or "").lower())


def find_file(root: Path, patterns: Iterable[str], what: str) -> Path:
    """The first file under ``root`` (or one level below) matching a pattern."""
    patterns = tuple(patterns)
    for pattern in patterns:
        hits = sorted(root.glob(pattern)) + sorted(root.glob("*/" + pattern))
        hits = [h for h in hits if h.is_file() and not h.name.startswith("~$")]
        if hits:
            return hits[-1]  # newest release sorts last (e.g. CASME2-coding-20190701)
    old = sorted(root.glob("*.xls")) + sorted(root.glob("*/*.xls"))
    hint = f"; {old[0].name} is an old .xls workbook: save it as .xlsx" if old else ""
    raise DatasetError(f"{root}: no {what} found (looked for {', '.join(patterns)} here and one folder down){hint}")


def read_sheet(
    path: Path, required: dict[str, tuple[str, ...]], *, sheet: str | None = None
) -> tuple[list[tuple[int, dict[str, Any]]], str]:
    """Read a spreadsheet whose header row may sit below title/legend rows.

    ``required`` maps a field name to the accepted normalised header spellings;
    the header row is the first row holding all required fields. Returns
    ``[(spreadsheet row number, {field: cell})]`` and the sheet's name. Raises
    :class:`DatasetError` (naming the file) when the workbook cannot be read or
    no sheet has the header.
    """
    try:
        import openpyxl  # lazy: loads openpyxl, which only .xlsx coding sheets need

        wb = openpyxl.load_workbook(path, read_only=True, data_only=True)
    except Exception as exc:  # zip/xml errors: the whole file is unusable
        raise DatasetError(f"{path}: cannot read the spreadsheet ({type(exc).__name__}: {exc}); expected an .xlsx file") from exc
    try:
        for name in [sheet] if sheet else wb.sheetnames:
            if name not in wb.sheetnames:
                raise DatasetError(f"{path}: no sheet {name!r}; sheets: {wb.sheetnames}")
            ws = wb[name]
            if hasattr(ws, "reset_dimensions"):
                ws.reset_dimensions()  # some writers store a wrong sheet size; read every row anyway
            records = _records(list(ws.iter_rows(values_only=True)), required)
            if records is not None:
                return records, name
        wanted = ", ".join(f"{f} ({'/'.join(s)})" for f, s in required.items())
        raise DatasetError(f"{path}: no sheet has a header row with the columns {wanted}")
    finally:
        wb.close()


def _records(rows: list[tuple[Any, ...]], required: dict[str, tuple[str, ...]]) -> list[tuple[int, dict[str, Any]]] | None:
    """The rows below the first header row (within the first 60) holding every required field."""
    for h, header in enumerate(rows[:60]):
        cols = [norm_header(c) for c in header]
        where = {f: next((i for i, c in enumerate(cols) if c in spellings), None) for f, spellings in required.items()}
        if any(v is None for v in where.values()):
            continue
        extra = {c: i for i, c in enumerate(cols) if c and c not in where}
        out = []
        for r, cells in enumerate(rows[h + 1:], start=h + 2):
            if all(c is None or str(c).strip() == "" for c in cells):
                continue
            get = lambda i: cells[i] if i is not None and i < len(cells) else None  # noqa: E731
            rec = {f: get(i) for f, i in where.items()}
            rec.update({c: get(i) for c, i in extra.items() if c not in rec})
            out.append((r, rec))
        return out
    return None


def cell_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value).strip()


def cell_int(value: Any) -> int | None:
    """A frame number from a cell, or None for '/', '', text, negatives."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return int(value) if float(value).is_integer() and value >= 0 else None
    text = str(value).strip()
    if re.fullmatch(r"\d+(\.0+)?", text):
        return int(float(text))
    return None


def first_of(rec: dict[str, Any], *keys: str) -> Any:
    for k in keys:
        if rec.get(k) not in (None, ""):
            return rec[k]
    return None
