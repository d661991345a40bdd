"""Shared pieces of the real-dataset indexers: problems, frames, finishing.

Every indexer reads a dataset as distributed, row by row. A bad row (missing
apex, apex before onset, missing frame folder, corrupt image, unknown label)
must never stop the rest of the dataset from indexing: the row is either fixed
and flagged (apex estimated, ``apex_estimated=True``) or skipped, and in both
cases recorded as a *problem*. A problem is a plain dict (so it survives JSON,
pandas ``attrs`` and the dashboard) with the keys

``severity``  'error' (row skipped: its data is unusable), 'warning' (row kept
              after a fix, or something suspicious), 'info' (row dropped on
              purpose by the class set or protocol, e.g. CASME II 'fear' in the
              composite);
``kind``      a short machine tag ('missing_frames', 'apex', 'label', 'dropped', ...);
``file``      the file at fault (sheet, folder, image);
``row``       the spreadsheet row as a spreadsheet shows it (1-based), or None;
``sample_id`` the clip concerned, when known;
``message``   a sentence for a person: what was found and what was expected.

Indexers return the table with the problems in ``table.attrs['problems']``.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Iterable

import cv2
import pandas as pd

from mer_core.datasets.classes import apply_class_set, classes_for, remember_dropped
from mer_core.datasets.roots import dataset_root
from mer_core.datasets.schema import make_table
from mer_core.errors import DatasetError
from mer_core.paths import natural_key

SEVERITIES = ("error", "warning", "info")
IMAGE_EXTS = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff"}


class ProblemList(list):
    """The problems attached to ``table.attrs``: shared, not copied, by table copies.

    pandas deep-copies ``attrs`` on nearly every operation (even per row in
    ``iterrows``); sharing keeps that free. Treat it as read-only.
    """

    def __deepcopy__(self, memo: dict) -> "ProblemList":
        return self


class Problems:
    """Collects problems while a dataset is indexed."""

    def __init__(self) -> None:
        self.items: list[dict[str, Any]] = []

    def add(
        self,
        severity: str,
        kind: str,
        message: str,
        *,
        file: str | Path = "",
        row: int | None = None,
        sample_id: str = "",
    ) -> None:
        if severity not in SEVERITIES:
            raise ValueError(f"severity must be one of {SEVERITIES}, got {severity!r}")
        self.items.append(
            dict(severity=severity, kind=kind, file=str(file), row=row, sample_id=sample_id, message=message)
        )

    def extend(self, items: Iterable[dict[str, Any]]) -> None:
        self.items.extend(dict(p) for p in items)


class BySeverity:
    """A check report's ``problems`` (dicts with a ``severity``) split by severity; mixed into the reports."""

    problems: list[dict[str, Any]]

    @property
    def errors(self) -> list[dict[str, Any]]:
        return [p for p in self.problems if p["severity"] == "error"]

    @property
    def warnings(self) -> list[dict[str, Any]]:
        return [p for p in self.problems if p["severity"] == "warning"]

    @property
    def dropped(self) -> list[dict[str, Any]]:
        """What the class set or protocol leaves out on purpose, each with its reason."""
        return [p for p in self.problems if p["severity"] == "info"]


def require_root(name: str, root: str | Path | None, expected: str) -> Path:
    """The dataset root: given, else configured (with the 'how to set it' message), and a folder."""
    if root is None:
        root = dataset_root(name)
    root = Path(root).expanduser().resolve()  # the table holds absolute paths
    if not root.is_dir():
        raise DatasetError(f"{name}: root {root} is not a folder; expected {expected}")
    return root


# --------------------------------------------------------------------------- frames


def frame_files(folder: Path) -> list[Path]:
    """Image files of a clip folder in natural order (img2 before img10)."""
    return sorted((p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTS), key=lambda p: natural_key(p.name))


def frame_number(path: Path) -> int | None:
    """The native frame number in a file name: the last run of digits ('006_05562' -> 5562)."""
    digits = re.findall(r"\d+", path.stem)
    return int(digits[-1]) if digits else None


def readable(path: Path) -> bool:
    """True when the image decodes (used for the key frames when verifying)."""
    try:
        return path.stat().st_size > 0 and cv2.imread(str(path), cv2.IMREAD_UNCHANGED) is not None
    except OSError:
        return False


def place_frames(
    frames: list[Path],
    onset: int | None,
    apex: int | None,
    offset: int | None,
    *,
    where: str,
    sheet: Path,
    line: int | None,
    sid: str,
    problems: Problems,
) -> dict[str, Any]:
    """Turn native onset/apex/offset frame numbers into indices into ``frames``.

    Missing or impossible onset/offset fall back to the clip's first/last frame;
    a missing apex, an apex outside onset..offset, or an apex equal to the
    onset (no motion to see) is replaced by the middle frame and marked
    estimated so that preprocessing can spot the real one from the frames.
    Every fix is recorded as a warning.
    """
    numbers = [frame_number(p) for p in frames]
    index = {n: i for i, n in enumerate(numbers) if n is not None}
    n = len(frames)

    def locate(name: str, value: int | None, fallback: int) -> int:
        if value is None:
            problems.add("warning", "annotation", f"{where}: {name} frame is not a number; using frame {numbers[fallback]}", file=sheet, row=line, sample_id=sid)
            return fallback
        if value in index:
            return index[value]
        problems.add(
            "warning", "annotation",
            f"{where}: {name} frame {value} is not among the clip's frames ({numbers[0]}..{numbers[-1]}); using frame {numbers[fallback]}",
            file=sheet, row=line, sample_id=sid,
        )
        return fallback

    on = locate("onset", onset, 0)
    off = locate("offset", offset, n - 1)
    if off < on:
        problems.add("warning", "annotation", f"{where}: offset {offset} is before onset {onset}; using the last frame as offset", file=sheet, row=line, sample_id=sid)
        off = n - 1
    out: dict[str, Any] = dict(onset=on, offset=off, apex_estimated=False, apex_method="annotated")
    reason = ""
    if apex is None:
        reason = "apex cell is not a frame number"
    elif onset is not None and apex < onset:
        reason = f"apex {apex} is before onset {onset}"
    elif apex not in index:
        reason = f"apex frame {apex} is not among the clip's frames ({numbers[0]}..{numbers[-1]})"
    elif index[apex] > off:
        reason = f"apex {apex} is after offset {offset}"
    elif index[apex] == on and on < off:
        reason = f"apex {apex} equals onset (no motion between them)"
    if reason:
        ap = (on + off) // 2
        if ap == on and off > on:
            ap = on + 1
        problems.add("warning", "apex", f"{where}: {reason}; apex estimated as the middle frame {numbers[ap]}", file=sheet, row=line, sample_id=sid)
        out.update(apex=ap, apex_estimated=True, apex_method="middle")
    else:
        out["apex"] = index[apex]
    out["first_frame"] = numbers[0] if numbers[0] is not None else 0
    return out


def load_clip_frames(
    folder: Path, *, where: str, line: int | None, sid: str, problems: Problems, file: Path | str = "", names: str = ""
) -> list[Path] | None:
    """The frames of a clip folder, or None (and an error problem) when unusable.

    ``names``: how the frame files are named (e.g. 'img{n}.jpg'), for the message.
    """
    if not folder.is_dir():
        problems.add("error", "missing_frames", f"{where}: frame folder not found: {folder}", file=file or folder, row=line, sample_id=sid)
        return None
    frames = frame_files(folder)
    if len(frames) < 2:
        named = f" named like {names}" if names else ""
        problems.add("error", "missing_frames", f"{where}: {folder} holds {len(frames)} image(s); a clip needs at least 2 frames{named}", file=folder, row=line, sample_id=sid)
        return None
    empty = [p for p in frames if p.stat().st_size == 0]
    if empty:
        problems.add("warning", "corrupt_image", f"{where}: {len(empty)} empty image file(s), e.g. {empty[0].name}; they are left out of the clip", file=empty[0], row=line, sample_id=sid)
        frames = [p for p in frames if p.stat().st_size > 0]
        if len(frames) < 2:
            problems.add("error", "corrupt_image", f"{where}: fewer than 2 readable frames in {folder}", file=folder, row=line, sample_id=sid)
            return None
    return frames


def key_frames_ok(row: dict[str, Any], *, where: str, line: int | None, problems: Problems, file: Path | str = "") -> bool:
    """Decode the onset, apex and offset frames; an unreadable one skips the row."""
    for name in ("onset", "apex", "offset"):
        p = Path(row["frames"][row[name]])
        if not readable(p):
            problems.add("error", "corrupt_image", f"{where}: {name} frame {p.name} cannot be decoded as an image", file=p, row=line, sample_id=row.get("sample_id", ""))
            return False
    return True


# --------------------------------------------------------------------------- finishing


def finish(
    rows: list[dict[str, Any]],
    problems: Problems,
    *,
    dataset: str,
    class_set: str,
    origin: str,
    allowed: tuple[str, ...] = (),
) -> pd.DataFrame:
    """Drop duplicates, apply the class set, build the table and attach problems.

    ``rows`` carry the native label in ``emotion``. Rows the class set drops
    are recorded as 'info' problems (kind 'dropped') so the dataset check can
    say what the protocol leaves out and why. ``allowed``: the class sets that
    make sense for the dataset (empty: any).
    """
    if allowed and class_set not in allowed:
        raise DatasetError(f"{dataset}: class set {class_set!r} does not apply to this dataset; valid: {list(allowed)}")
    seen: dict[str, dict[str, Any]] = {}
    unique = []
    for r in rows:
        r.setdefault("sample_id", f"{r['dataset']}/{r['native_subject']}/{r['clip']}")
        if r["sample_id"] in seen:
            problems.add("error", "duplicate", f"clip {r['sample_id']} appears twice (rows {seen[r['sample_id']].get('_line')} and {r.get('_line')}); the second is skipped", file=r.get("_file", origin), row=r.get("_line"), sample_id=r["sample_id"])
            continue
        seen[r["sample_id"]] = r
        unique.append(r)
    if not unique:
        errs = [p for p in problems.items if p["severity"] != "info"][:3]
        detail = "; ".join(p["message"] for p in errs) if errs else "no clips found"
        raise DatasetError(f"{dataset}: no usable clip in {origin} ({detail})")
    for r in unique:
        r.setdefault("label", r["emotion"])
    clean = [{k: v for k, v in r.items() if not k.startswith("_")} for r in unique]
    table = make_table(clean)
    if class_set == "native":
        kept, dropped = table, table.iloc[0:0]
    else:
        classes_for(class_set)  # raises on an unknown class set, listing the valid ones
        kept, dropped = apply_class_set(table, class_set)
    for _, d in dropped.iterrows():
        problems.add("info", "dropped", f"{d['sample_id']}: {d['reason']}", file=origin, sample_id=d["sample_id"])
    if kept.empty:
        raise DatasetError(f"{dataset}: class set {class_set!r} keeps none of the {len(table)} clips in {origin}")
    kept = remember_dropped(kept.reset_index(drop=True), dropped, class_set)
    kept.attrs["problems"] = ProblemList(problems.items)
    return kept

