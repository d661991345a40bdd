"""Long-video indexers: the layouts researchers have, each turned into a :class:`~.tables.LongDataset`.

Described from the datasets' documentation and the layouts public spotting
code reads (no data is fetched; tests build tiny fixtures):

* ``casme-sq``: CAS(ME)^2. ``CAS(ME)^2code_final*.xlsx``, its first sheet
  without a header row (participant number, ``anger1_1`` = video name and
  expression number, onset, apex, offset, action units, estimated emotion,
  expression type ``micro-expression`` / ``macro-expression``, self-reported
  emotion); its second sheet maps participants to subject folders (column 3
  -> column 2: 1 -> s15), its third video names to codes (column 2 -> column
  1: disgust1 -> 0101). Frames ``rawpic/s15/15_0101disgustingteeth/img1.jpg``
  (``frames=cropped`` reads ``cropped/``), 1-based numbers; 30 fps. An offset
  of 0 means "not coded": the apex ends the interval (a warning).
* ``samm-lv``: SAMM long videos. ``SAMM_LongVideos_V*_Release.xlsx``, a
  header row below some title rows (Subject, Filename, Inducement Code, Onset,
  Apex, Offset, Duration, Type, Action Units, Notes); Filename ``006_1_3`` is
  movement 3 of video ``006_1``; Type ``Micro - 1/2`` or ``Macro``. Frames
  ``SAMM_longvideos/006_1/006_1_0001.jpg``; 200 fps. No emotion is coded.
* ``casme3-lv``: CAS(ME)^3 part A's long recordings.
  ``cas(me)3_part_A_ME_label_JpgIndex_v2*.xlsx`` (micro; Subject, Filename,
  Onset, Apex, Offset, AU, Objective class, emotion) and
  ``cas(me)3_part_A_MaE_label_JpgIndex_v2*.xlsx`` (macro; sub, seq, onset,
  apex, offset, ..., emotion); a recording is ``part_A/spNO.1/a/color/*.jpg``,
  frame numbers are the jpg index; 30 fps.
* ``long-manifest``: a generic manifest. One CSV, paths relative to it:
  ``video`` (a video file or a frame folder), ``onset``, ``apex``, ``offset``
  (0-based frame positions), ``type`` (micro or macro), optional ``label``,
  ``subject`` (default: the video's first folder, else its name), ``fps``,
  ``action_units``, ``cropped`` (true: the frames are face crops already;
  else the face is found on the first frame). A video without any expression is one row whose onset,
  offset and type are empty (it still counts: false alarms happen there).
* ``synthetic-long``: the generated variant (:mod:`.synthetic_long`), written
  as a long manifest and read through it.

Native frame numbers become positions in the video's frame order; an
annotation naming a frame the folder lacks is an error naming the sheet row.
"""
from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from mer_core.datasets._common import Problems, frame_number, require_root
from mer_core.datasets.casme3 import frames_root as casme3_frames_root, normalise_subject as casme3_subject
from mer_core.datasets.sheet import cell_int, cell_text, find_file, read_sheet
from mer_core.errors import DatasetError, UnknownNameError
from mer_core.preprocess.video import ClipError, VIDEO_SUFFIXES
from mer_core.spotting.source import frame_files, video_info
from mer_core.spotting.synthetic_long import LongOptions, ensure_long
from mer_core.spotting.tables import LongDataset, finish_dataset

DEFAULT_FPS = 30.0


@dataclass(frozen=True)
class LongDatasetInfo:
    name: str
    indexer: Callable[..., LongDataset]
    description: str
    needs_root: bool = True


_LONG: dict[str, LongDatasetInfo] = {}


def register_long(name: str, *, description: str, needs_root: bool = True):
    def deco(fn: Callable[..., LongDataset]) -> Callable[..., LongDataset]:
        _LONG[name] = LongDatasetInfo(name, fn, description, needs_root)
        return fn
    return deco


def list_long_datasets() -> list[str]:
    return sorted(_LONG)


def is_long_dataset(name: str) -> bool:
    return name in _LONG


def long_dataset_info(name: str) -> LongDatasetInfo:
    if name not in _LONG:
        raise UnknownNameError(f"unknown long-video dataset {name!r}; valid: {', '.join(sorted(_LONG))}")
    return _LONG[name]


def index_long(name: str, root: str | Path | None = None, **options: Any) -> LongDataset:
    """Index a long-video dataset (its configured root when none is given; options go to the indexer)."""
    info = long_dataset_info(name)
    if root is None and info.needs_root and not options.get("manifest"):
        root = require_root(name, None, "the dataset's folder")
    return info.indexer(Path(root) if root is not None else None, **options)


# ----------------------------------------------------------------------------- frame folders


class FolderVideo:
    """A video stored as a frame folder: its frame files and native number -> position."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.files = frame_files(folder) if folder.is_dir() else []
        numbers = [frame_number(Path(f)) for f in self.files]
        self.position = {n: i for i, n in enumerate(numbers) if n is not None}
        self.first = numbers[0] if numbers and numbers[0] is not None else 0

    def place(self, onset: int | None, apex: int | None, offset: int | None) -> tuple[dict[str, Any], str]:
        """Native numbers -> positions; ('', ...) or an error text naming the frame that is not there."""
        out: dict[str, Any] = {}
        for key, value in (("onset", onset), ("apex", apex), ("offset", offset)):
            if value is None:
                out[key] = None
                continue
            if value not in self.position:
                span = f"frames {min(self.position)}..{max(self.position)}" if self.position else "no numbered frames"
                return out, f"{key} frame {value} is not among {self.folder.name}'s {span}"
            out[key] = self.position[value]
        return out, ""


def _folder_row(dataset: str, subject: str, name: str, video: FolderVideo, fps: float,
                cropped: bool = False) -> dict[str, Any]:
    return dict(video=f"{subject}/{name}", dataset=dataset, subject=f"{dataset}:{subject}", name=name,
                path=str(video.folder), source="frames", n_frames=len(video.files), fps=fps, first_frame=video.first,
                cropped=cropped)


def _sheet_interval(rows: list[dict[str, Any]], problems: Problems, video: FolderVideo | None, video_id: str,
                    cells: dict[str, Any], *, sheet: Path, line: int, offset_zero_means_apex: bool = True) -> None:
    """One annotated interval of a sheet row (native frame numbers) appended to ``rows``, or a problem."""
    where = f"{sheet.name} row {line}"
    if video is None or not video.files:
        problems.add("error", "missing_frames", f"{where}: no frame folder for video {video_id!r}",
                     file=sheet, row=line, sample_id=video_id)
        return
    onset, apex, offset = (cell_int(cells[k]) for k in ("onset", "apex", "offset"))
    if offset_zero_means_apex and offset in (0, None) and apex:
        problems.add("warning", "offset", f"{where}: offset {cells['offset']!r} is not coded; the apex {apex} ends "
                     "the interval", file=sheet, row=line, sample_id=video_id)
        offset = apex
    placed, error = video.place(onset, apex, offset)
    if error:
        problems.add("error", "outside_video", f"{where}: {error} (video {video_id!r})", file=sheet, row=line,
                     sample_id=video_id)
        return
    rows.append(dict(video=video_id, file=str(sheet), row=line, type=cells.get("type"), label=cells.get("label", ""),
                     emotion=cells.get("emotion", ""), action_units=cell_text(cells.get("action_units")),
                     onset=placed["onset"] if onset is not None else cells["onset"],
                     apex=placed["apex"], offset=placed["offset"] if offset is not None else cells["offset"]))


def _plain_rows(path: Path, sheet_index: int) -> list[tuple[int, tuple[Any, ...]]]:
    """(row number, cells) of one worksheet, every non-empty row (no header detection)."""
    try:
        import openpyxl  # lazy: loads openpyxl, which only .xlsx coding sheets need

        wb = openpyxl.load_workbook(path, read_only=True, data_only=True)
    except Exception as exc:
        raise DatasetError(f"{path}: cannot read the spreadsheet ({type(exc).__name__}: {exc}); expected .xlsx") \
            from exc
    try:
        if sheet_index >= len(wb.sheetnames):
            raise DatasetError(f"{path}: expected at least {sheet_index + 1} sheets, found {len(wb.sheetnames)} "
                               f"({', '.join(wb.sheetnames)})")
        ws = wb[wb.sheetnames[sheet_index]]
        return [(r, tuple(cells)) for r, cells in enumerate(ws.iter_rows(values_only=True), start=1)
                if any(c is not None and str(c).strip() for c in cells)]
    finally:
        wb.close()


# ----------------------------------------------------------------------------- CAS(ME)^2


def _sq_subject(value: Any) -> str:
    text = cell_text(value)
    m = re.fullmatch(r"[sS]?0*(\d+)", text)
    return f"s{int(m.group(1)):02d}" if m else text


@register_long("casme-sq", description="CAS(ME)^2 long videos (CAS(ME)^2code_final.xlsx + "
                                       "rawpic/s15/15_0101.../img1.jpg), 30 fps")
def index_casme_sq(root: Path | None, *, sheet: str | Path | None = None, frames: str = "rawpic") -> LongDataset:
    root = require_root("casme-sq", root, "the folder holding rawpic/ and CAS(ME)^2code_final.xlsx")
    if frames not in ("rawpic", "cropped"):
        raise DatasetError(f"casme-sq: frames={frames!r}: expected 'rawpic' or 'cropped'")
    path = Path(sheet) if sheet else find_file(root, ("CAS(ME)^2code_final*.xlsx", "CAS(ME)*2*code*.xlsx",
                                                      "*code_final*.xlsx"), "CAS(ME)^2 coding sheet")
    problems = Problems()
    participants = {cell_text(c[2]): _sq_subject(c[1]) for _, c in _plain_rows(path, 1) if len(c) > 2}
    codes = {cell_text(c[1]).lower(): cell_text(c[0]).zfill(4) for _, c in _plain_rows(path, 2) if len(c) > 1}
    base = root / frames
    if not base.is_dir():
        raise DatasetError(f"casme-sq: no {frames}/ folder under {root}")
    videos: dict[tuple[str, str], FolderVideo] = {}
    for subj in sorted(p for p in base.iterdir() if p.is_dir()):
        for vid in sorted(p for p in subj.iterdir() if p.is_dir()):
            m = re.match(r"\d+_(\d{4})", vid.name)
            videos[(subj.name.lower(), m.group(1) if m else vid.name)] = FolderVideo(vid)
    video_rows = [_folder_row("casme-sq", s, v.folder.name, v, DEFAULT_FPS, frames == "cropped")
                  for (s, _), v in videos.items()]
    rows: list[dict[str, Any]] = []
    for line, c in _plain_rows(path, 0):
        c += (None,) * (9 - len(c))
        if cell_int(c[2]) is None and line == 1:
            continue  # a header row in some copies
        subject = participants.get(cell_text(c[0]))
        name = cell_text(c[1]).split("_")[0].lower()
        code = codes.get(name)
        if subject is None or code is None:
            what = f"participant {cell_text(c[0])!r}" if subject is None else f"video name {name!r}"
            problems.add("error", "unknown_video", f"{path.name} row {line}: {what} is not in the naming sheets",
                         file=path, row=line)
            continue
        video = videos.get((subject, code))
        vid_id = f"{subject}/{video.folder.name}" if video else f"{subject}/{code}"
        _sheet_interval(rows, problems, video, vid_id, dict(onset=c[2], apex=c[3], offset=c[4], action_units=c[5],
                        label=cell_text(c[6]).lower(), type=c[7], emotion=cell_text(c[8]).lower()),
                        sheet=path, line=line)
    return finish_dataset("casme-sq", video_rows, rows, problems, str(path))


# ----------------------------------------------------------------------------- SAMM long videos

SAMM_COLUMNS = {"subject": ("subject",), "clip": ("filename",), "onset": ("onset", "onsetframe"),
                "apex": ("apex", "apexframe"), "offset": ("offset", "offsetframe"), "type": ("type",)}


@register_long("samm-lv", description="SAMM long videos (SAMM_LongVideos_V*_Release.xlsx + SAMM_longvideos/006_1/"
                                      "006_1_0001.jpg), 200 fps")
def index_samm_lv(root: Path | None, *, sheet: str | Path | None = None) -> LongDataset:
    root = require_root("samm-lv", root, "the folder holding SAMM_longvideos/ and SAMM_LongVideos_V*_Release.xlsx")
    path = Path(sheet) if sheet else find_file(root, ("SAMM_LongVideos*.xlsx", "SAMM*Long*.xlsx"),
                                               "SAMM long-video sheet")
    base = next((b for b in (root / "SAMM_longvideos", root) if b.is_dir()
                 and any(re.fullmatch(r"\d+_\d+", p.name) for p in b.iterdir())), None)
    if base is None:
        raise DatasetError(f"samm-lv: no video folders (006_1/, ...) under {root / 'SAMM_longvideos'} or {root}")
    videos = {p.name: FolderVideo(p) for p in sorted(base.iterdir()) if re.fullmatch(r"\d+_\d+", p.name)}
    video_rows = [_folder_row("samm-lv", name.split("_")[0], name, v, 200.0) for name, v in videos.items()]
    problems = Problems()
    records, _ = read_sheet(path, SAMM_COLUMNS)
    rows: list[dict[str, Any]] = []
    for line, rec in records:
        parts = cell_text(rec["clip"]).split("_")
        name = "_".join(parts[:2]) if len(parts) >= 2 else cell_text(rec["clip"])
        vid = videos.get(name)
        _sheet_interval(rows, problems, vid, f"{name.split('_')[0]}/{name}",
                        dict(rec, action_units=rec.get("actionunits"), label="", emotion=""), sheet=path, line=line)
    return finish_dataset("samm-lv", video_rows, rows, problems, str(path))


# ----------------------------------------------------------------------------- CAS(ME)^3 long recordings

CASME3_COLUMNS = {"subject": ("subject", "sub"), "clip": ("filename", "seq"), "onset": ("onset", "onsetframe"),
                  "apex": ("apex", "apexframe"), "offset": ("offset", "offsetframe")}
CASME3_SHEETS = {"micro": ("cas(me)3_part_A_ME_label*.xlsx", "*part_A*ME_label*.xlsx", "annotation/*ME_label*.xlsx"),
                 "macro": ("cas(me)3_part_A_MaE_label*.xlsx", "*part_A*MaE_label*.xlsx", "annotation/*MaE_label*.xlsx")}


@register_long("casme3-lv", description="CAS(ME)^3 part A long recordings (ME and MaE label sheets + part_A/spNO.1/a/"
                                        "color/*.jpg), 30 fps")
def index_casme3_lv(root: Path | None, *, me_sheet: str | Path | None = None,
                    mae_sheet: str | Path | None = None) -> LongDataset:
    root = require_root("casme3-lv", root, "the folder holding part_A/ and the ME / MaE label sheets")
    base = casme3_frames_root(root)
    videos: dict[tuple[str, str], FolderVideo] = {}
    for subj in sorted(p for p in base.iterdir() if p.is_dir() and p.name.lower().startswith("spno")):
        for rec in sorted(p for p in subj.iterdir() if p.is_dir()):
            videos[(subj.name, rec.name)] = FolderVideo(rec / "color" if (rec / "color").is_dir() else rec)
    video_rows = [_folder_row("casme3-lv", s, r, v, DEFAULT_FPS) for (s, r), v in videos.items()]
    problems = Problems()
    rows: list[dict[str, Any]] = []
    for kind, given in (("micro", me_sheet), ("macro", mae_sheet)):
        path = Path(given) if given else find_file(root, CASME3_SHEETS[kind], f"CAS(ME)^3 {kind} label sheet")
        records, _ = read_sheet(path, CASME3_COLUMNS)
        for line, rec in records:
            subject, name = casme3_subject(rec["subject"]), cell_text(rec["clip"])
            emotion = cell_text(rec.get("emotion")).lower()
            _sheet_interval(rows, problems, videos.get((subject, name)), f"{subject}/{name}",
                            dict(rec, type=kind, label=emotion, emotion=emotion,
                                 action_units=rec.get("au") or rec.get("aus")),
                            sheet=path, line=line, offset_zero_means_apex=False)
    return finish_dataset("casme3-lv", video_rows, rows, problems, str(root))


# ----------------------------------------------------------------------------- generic manifest

MANIFEST_REQUIRED = ("video", "onset", "offset", "type")


def _manifest_csv(manifest: str | Path) -> Path:
    path = Path(manifest).expanduser()
    if path.is_dir():
        found = sorted(path.glob("*.csv"))
        if len(found) != 1:
            raise DatasetError(f"{path}: expected one interval CSV in the folder, found {len(found)}"
                               + (f" ({', '.join(p.name for p in found[:4])})" if found else ""))
        path = found[0]
    if not path.is_file():
        raise DatasetError(f"{path}: no such interval CSV")
    return path


def read_long_manifest(manifest: str | Path, *, dataset: str = "long-manifest", fps: float | None = None
                       ) -> LongDataset:
    """A long manifest (see the module docstring) as a :class:`LongDataset`; bad rows become problems."""
    path = _manifest_csv(manifest)
    with open(path, newline="", encoding="utf-8-sig") as fh:
        reader = csv.DictReader(fh)
        header = [h.strip().lower() for h in (reader.fieldnames or [])]
        missing = [c for c in MANIFEST_REQUIRED if c not in header]
        if missing:
            raise DatasetError(f"{path.name}: missing column(s) {missing}; expected video, onset, apex, offset, type"
                               " (and optionally label, subject, fps, action_units)")
        records = [(line, {k.strip().lower(): (v or "").strip() for k, v in rec.items() if k})
                   for line, rec in enumerate(reader, start=2)]
    problems = Problems()
    video_rows: dict[str, dict[str, Any]] = {}
    broken: set[str] = set()
    rows: list[dict[str, Any]] = []
    for line, rec in records:
        name = rec.get("video", "").replace("\\", "/")
        where = f"{path.name} row {line}"
        if not name:
            problems.add("error", "unknown_video", f"{where}: empty video cell", file=path, row=line)
            continue
        if name in broken:
            continue
        if name not in video_rows:
            row = _manifest_video(path, name, rec, dataset, fps, problems, where, line)
            if row is None:
                broken.add(name)
                continue
            video_rows[name] = row
        if any(rec.get(k) for k in ("onset", "offset", "type")):
            rows.append(dict(rec, video=name, file=str(path), row=line, apex=rec.get("apex") or None))
    return finish_dataset(dataset, list(video_rows.values()), rows, problems, str(path))


def _manifest_video(csv_path: Path, name: str, rec: dict[str, str], dataset: str, fps: float | None,
                    problems: Problems, where: str, line: int) -> dict[str, Any] | None:
    full = (csv_path.parent / name).resolve()
    if not full.exists():
        problems.add("error", "unknown_video", f"{where}: video {name!r} not found (expected a video file or a frame "
                     f"folder relative to {csv_path.name})", file=csv_path, row=line, sample_id=name)
        return None
    try:
        n, declared = video_info(full)
    except ClipError as exc:
        problems.add("error", "video", f"{where}: video {name!r} cannot be read: {exc}", file=full, row=line,
                     sample_id=name)
        return None
    if full.is_file() and full.suffix.lower() not in VIDEO_SUFFIXES:
        problems.add("warning", "video", f"{where}: {name!r} has an unusual video suffix (expected "
                     f"{', '.join(VIDEO_SUFFIXES)})", file=full, row=line, sample_id=name)
    if n == 0:
        problems.add("error", "video", f"{where}: video {name!r} holds 0 frames (an empty folder, or a file that "
                     "declares none: `mer datasets check` decodes it to be sure)", file=full, row=line, sample_id=name)
        return None
    rate = _float(rec.get("fps")) or fps or declared
    if not rate:
        problems.add("warning", "fps", f"{where}: no frame rate for {name!r} (no fps column, none declared): "
                     f"{DEFAULT_FPS:g} fps assumed", file=csv_path, row=line, sample_id=name)
        rate = DEFAULT_FPS
    parts = Path(name).parts
    subject = rec.get("subject") or (parts[0] if len(parts) > 1 else Path(name).stem)
    first = frame_number(Path(frame_files(full)[0])) if full.is_dir() else 0
    return dict(video=name, dataset=dataset, subject=f"{dataset}:{subject}", name=Path(name).stem, path=str(full),
                source="frames" if full.is_dir() else "video", n_frames=n, fps=rate, first_frame=first or 0,
                cropped=rec.get("cropped", "").lower() in ("1", "true", "yes"))


def _float(text: str | None) -> float | None:
    try:
        value = float(text) if text else None
    except ValueError:
        return None
    return value if value and value > 0 else None


@register_long("long-manifest", description="a generic long-video manifest: one CSV of intervals (video, onset, apex,"
                                            " offset, type, label) beside the videos or frame folders",
               needs_root=False)
def index_long_manifest(root: Path | None, *, manifest: str | Path | None = None, fps: float | None = None,
                        dataset: str = "long-manifest") -> LongDataset:
    where = manifest or root
    if where is None:
        raise DatasetError("long-manifest: give the interval CSV (manifest=PATH, the CSV or its folder)")
    return read_long_manifest(where, dataset=dataset, fps=_float(str(fps)) if fps is not None else None)


@register_long("synthetic-long", description="synthetic long videos (10-60 s, micro- and macro-expressions, blinks, "
                                             "talking, head motion), generated", needs_root=False)
def index_synthetic_long(root: Path | None = None, **options: Any) -> LongDataset:
    manifest = ensure_long(LongOptions.from_mapping(options), folder=Path(root) if root is not None else None)
    return read_long_manifest(manifest, dataset="synthetic-long")
