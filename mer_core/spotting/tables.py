"""The two tables every long-video dataset becomes: videos and intervals, and their validation.

A spotting dataset is not a table of clips: it is a set of long recordings
(:data:`VIDEO_COLUMNS`, one row per video) and the expressions annotated in
them (:data:`INTERVAL_COLUMNS`, one row per interval, zero or more per video).
Frame positions (``onset``, ``apex``, ``offset``) are 0-based indices into the
video's frames in their order (the frame folder's natural order, or the
decoding order of a video file), whatever numbering the dataset itself uses;
an interval is inclusive at both ends. ``type`` is ``micro`` or ``macro``.

Indexers collect rows with their origin (``file``, spreadsheet or CSV ``row``)
and hand them to :func:`validate_intervals`, which keeps the usable ones and
records a problem (the dict of :mod:`mer_core.datasets._common`) for each
other, naming the file and the row: an unknown video, an interval outside the
video, ``onset <= apex <= offset`` broken, a duplicate, an unknown type.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Iterable

import pandas as pd

from mer_core.datasets._common import Problems
from mer_core.errors import DatasetError

TYPES = ("micro", "macro")
VIDEO_COLUMNS = ("video", "dataset", "subject", "name", "path", "source", "n_frames", "fps", "first_frame", "cropped")
INTERVAL_COLUMNS = ("video", "subject", "onset", "apex", "offset", "type", "label", "emotion", "action_units",
                    "apex_estimated", "file", "row")
_TYPE_WORDS = {
    "micro": "micro", "me": "micro", "microexpression": "micro", "micro12": "micro",
    "macro": "macro", "mae": "macro", "macroexpression": "macro",
}


@dataclass
class LongDataset:
    """A long-video dataset: its videos, its intervals and what was wrong while reading them."""

    name: str
    videos: pd.DataFrame
    intervals: pd.DataFrame
    problems: list[dict[str, Any]] = field(default_factory=list)
    origin: str = ""

    def truth(self, videos: Iterable[str]) -> pd.DataFrame:
        """The intervals of ``videos``, in the scorer's columns (video, onset, apex, offset, type, label)."""
        iv = self.intervals[self.intervals["video"].isin(list(videos))]
        return iv[["video", "onset", "apex", "offset", "type", "label"]].reset_index(drop=True)

    def counts(self) -> dict[str, Any]:
        per_type = self.intervals["type"].value_counts().to_dict() if len(self.intervals) else {}
        frames = int(self.videos["n_frames"].clip(lower=0).sum()) if len(self.videos) else 0
        return {"videos": len(self.videos), "subjects": self.videos["subject"].astype(str).nunique(), "frames": frames,
                "micro": int(per_type.get("micro", 0)), "macro": int(per_type.get("macro", 0)),
                "videos_without_interval": int((~self.videos["video"].isin(self.intervals["video"])).sum())}


def normalise_type(value: Any) -> str | None:
    """'micro', 'Micro - 1/2', 'micro-expression', 'ME' -> 'micro'; 'Macro', 'MaE' -> 'macro'; else None."""
    text = re.sub(r"[^a-z0-9]", "", str(value or "").lower())
    return _TYPE_WORDS.get(text)


def cell_frame(value: Any) -> int | None:
    """A frame position from a cell (int, '12', 12.0), or None when empty or not a whole number."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, float):
        return int(value) if value.is_integer() else None  # NaN and infinities are not
    if isinstance(value, int):
        return int(value)
    text = str(value).strip()
    if re.fullmatch(r"-?\d+(\.0+)?", text):
        return int(float(text))
    return None


def video_table(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """The videos table from row dicts (``first_frame`` defaults to 0, ``cropped``, frames that are face
    crops already, to False); ``video`` ids must be unique."""
    defaults = {"first_frame": 0, "cropped": False}
    table = pd.DataFrame([{c: r.get(c, defaults.get(c, "")) for c in VIDEO_COLUMNS} for r in rows],
                         columns=list(VIDEO_COLUMNS))
    dup = table["video"][table["video"].duplicated()].tolist()
    if dup:
        raise DatasetError(f"video id(s) {dup[:3]} appear twice; every video must be listed once")
    for col in ("n_frames", "first_frame"):
        table[col] = table[col].astype(int)
    table["fps"] = table["fps"].astype(float)
    table["cropped"] = table["cropped"].astype(bool)
    return table.sort_values("video", kind="stable").reset_index(drop=True)


def validate_intervals(rows: list[dict[str, Any]], videos: pd.DataFrame, problems: Problems) -> pd.DataFrame:
    """The usable intervals of ``rows`` as a table; a problem for every other, naming its file and row.

    Each row holds ``video``, ``onset``, ``apex`` (None: estimated as the
    middle frame, a warning), ``offset``, ``type``, and optionally ``label``,
    ``emotion``, ``action_units``, ``file`` and ``row``. Errors (the row is
    skipped): a video not in ``videos``, a missing or non-numeric onset or
    offset, onset after offset, an interval outside the video's frames, an
    unknown type, a second row with the video, onset, offset and type of an
    earlier one. An apex outside onset..offset is re-estimated (a warning).
    """
    n_frames = dict(zip(videos["video"], videos["n_frames"].astype(int)))
    subjects = dict(zip(videos["video"], videos["subject"].astype(str)))
    seen: dict[tuple[str, int, int, str], str] = {}
    kept: list[dict[str, Any]] = []
    for r in rows:
        file, line = str(r.get("file") or ""), r.get("row")
        where = f"{file.rsplit('/', 1)[-1] or 'intervals'}" + (f" row {line}" if line is not None else "")
        video = str(r.get("video") or "")

        def bad(kind: str, text: str, severity: str = "error") -> None:
            problems.add(severity, kind, f"{where}: {text}", file=file, row=line, sample_id=video)

        if video not in n_frames:
            bad("unknown_video", f"video {video!r} is not among the dataset's videos (expected one of its video "
                                 "files or frame folders)")
            continue
        kind = normalise_type(r.get("type"))
        if kind is None:
            bad("interval", f"type {r.get('type')!r} of video {video!r} is neither micro nor macro")
            continue
        onset, apex, offset = (cell_frame(r.get(k)) for k in ("onset", "apex", "offset"))
        if onset is None or offset is None:
            bad("interval", f"onset {r.get('onset')!r} / offset {r.get('offset')!r} of video {video!r} are not "
                            "frame numbers")
            continue
        n = n_frames[video]
        if onset > offset:
            bad("interval", f"onset {onset} is after offset {offset} in video {video!r} (expected onset <= apex "
                            "<= offset)")
            continue
        if onset < 0 or (n > 0 and offset >= n):
            bad("outside_video", f"interval {onset}..{offset} is outside video {video!r}'s {n} frames "
                                 f"(expected 0..{n - 1})")
            continue
        estimated = False
        if apex is None or not onset <= apex <= offset:
            reason = "no apex" if apex is None else f"apex {apex} is outside onset {onset}..offset {offset}"
            apex, estimated = (onset + offset) // 2, True
            bad("apex", f"{reason} in video {video!r} (expected onset <= apex <= offset); apex estimated as the "
                        f"middle frame {apex}", "warning")
        key = (video, onset, offset, kind)
        if key in seen:
            bad("duplicate", f"the {kind} interval {onset}..{offset} of video {video!r} is listed twice "
                             f"(first at {seen[key]}); the second is skipped")
            continue
        seen[key] = where
        kept.append(dict(video=video, subject=subjects[video], onset=onset, apex=int(apex), offset=offset, type=kind,
                         label=str(r.get("label") or ""), emotion=str(r.get("emotion") or r.get("label") or ""),
                         action_units=str(r.get("action_units") or ""), apex_estimated=estimated, file=file,
                         row=line if line is not None else -1))
    table = pd.DataFrame(kept, columns=list(INTERVAL_COLUMNS))
    for col in ("onset", "apex", "offset", "row"):
        table[col] = table[col].astype(int)
    table["apex_estimated"] = table["apex_estimated"].astype(bool)
    return table.sort_values(["video", "onset", "type"], kind="stable").reset_index(drop=True)


def finish_dataset(name: str, video_rows: list[dict[str, Any]], interval_rows: list[dict[str, Any]],
                   problems: Problems, origin: str) -> LongDataset:
    """Validate and assemble a :class:`LongDataset`; a DatasetError when not one video could be read."""
    if not video_rows:
        errs = "; ".join([p["message"] for p in problems.items if p["severity"] == "error"][:3]) or "no videos found"
        raise DatasetError(f"{name}: no usable video in {origin} ({errs})")
    videos = video_table(video_rows)
    intervals = validate_intervals(interval_rows, videos, problems)
    return LongDataset(name, videos, intervals, list(problems.items), origin)
