"""SMIC indexer (HS, and VIS/NIR when present): labels from the folder tree.

As distributed: ``SMIC_all_cropped/HS/s1/micro/negative/s1_ne_01/image*.bmp``
(16 HS subjects with micro-expressions, s1..s20 with gaps; 164 clips; 100 fps;
VIS and NIR at 25 fps). There is no spreadsheet: the label is the folder name
(negative / positive / surprise) and onset/offset are the clip's first/last
frames. No apex is given, so it is always *estimated* and flagged
(``apex_estimated=True``), by one of two documented methods:

* ``apex='middle'`` (default): the middle frame; cheap, and preprocessing may
  spot the apex from the frames later;
* ``apex='max_diff'``: the frame whose grey image differs most (mean absolute
  difference, on a 64x64 thumbnail) from the onset frame.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pandas as pd

from mer_core.datasets._common import Problems, require_root, finish, key_frames_ok, load_clip_frames, frame_number
from mer_core.datasets.classes import normalise_label
from mer_core.datasets.registry import register_dataset
from mer_core.errors import DatasetError

NAME = "smic"
CLASS_SETS = ("composite3", "native")
FPS = {"HS": 100.0, "VIS": 25.0, "NIR": 25.0}
LABELS = ("negative", "positive", "surprise")
CODES = {"ne": "negative", "po": "positive", "sur": "surprise", "su": "surprise"}
TOP_DIRS = ("SMIC_all_cropped", "SMIC_all_raw", "SMIC")


def normalise_subject(value: Any) -> str:
    """'s01', 'S1', '1' -> 's1' (the folder spelling)."""
    text = str(value).strip().lower()
    m = re.fullmatch(r"s?0*(\d+)", text)
    return f"s{int(m.group(1))}" if m else text


def modality_root(root: Path, modality: str) -> Path:
    """The folder holding s1/, s2/... for a modality."""
    cands = [root / top / modality for top in TOP_DIRS] + [root / modality, root]
    for cand in cands:
        if cand.is_dir() and any(p.is_dir() and re.fullmatch(r"s\d+", p.name.lower()) for p in cand.iterdir()):
            return cand
    raise DatasetError(f"smic: no subject folders (s1/, s2/...) for modality {modality} under {root}; expected e.g. {root / 'SMIC_all_cropped' / modality / 's1'}")


def max_diff_apex(frames: list[Path], onset: int, offset: int) -> int | None:
    """Index of the frame that differs most from the onset frame (None if unreadable)."""
    def grey(p: Path) -> np.ndarray | None:
        img = cv2.imread(str(p), cv2.IMREAD_GRAYSCALE)
        return None if img is None else cv2.resize(img, (64, 64), interpolation=cv2.INTER_AREA).astype(np.float32)

    ref = grey(frames[onset])
    if ref is None:
        return None
    best, best_score = None, -1.0
    for i in range(onset + 1, offset + 1):
        img = grey(frames[i])
        if img is None:
            continue
        score = float(np.abs(img - ref).mean())
        if score > best_score:
            best, best_score = i, score
    return best


@register_dataset(
    NAME,
    description="SMIC (HS by default; VIS/NIR with modality=...), labels from folders, apex estimated",
    default_class_set="composite3",
    class_sets=CLASS_SETS,
)
def index_smic(
    root: Path | None,
    *,
    class_set: str = "composite3",
    modality: str = "HS",
    apex: str = "middle",
    verify_images: bool = False,
) -> pd.DataFrame:
    """Index SMIC under ``root`` (the folder holding SMIC_all_cropped, or below).

    ``modality``: 'HS', 'VIS' or 'NIR'. ``apex``: 'middle' or 'max_diff' (see
    the module docstring). Problems go to ``table.attrs['problems']``.
    """
    modality = modality.upper()
    if modality not in FPS:
        raise DatasetError(f"smic: modality={modality!r}; expected one of {list(FPS)}")
    if apex not in ("middle", "max_diff"):
        raise DatasetError(f"smic: apex={apex!r}; expected 'middle' or 'max_diff'")
    root = require_root(NAME, root, "the folder holding SMIC_all_cropped/")
    base = modality_root(Path(root), modality)
    cropped = "raw" not in str(base).lower()
    problems = Problems()
    rows: list[dict[str, Any]] = []
    natives: dict[str, str] = {}
    for subj_dir in sorted((p for p in base.iterdir() if p.is_dir()), key=lambda p: p.name):
        subject = normalise_subject(subj_dir.name)
        if not re.fullmatch(r"s\d+", subject):
            problems.add("warning", "layout", f"{subj_dir}: not a subject folder (expected s1, s2, ...); ignored", file=subj_dir)
            continue
        if subject in natives and natives[subject] != subj_dir.name:
            problems.add("warning", "subject", f"subject {subject} appears as folders {natives[subject]!r} and {subj_dir.name!r}; merged", file=subj_dir)
        natives[subject] = subj_dir.name
        micro = next((p for p in subj_dir.iterdir() if p.is_dir() and p.name.lower() == "micro"), None)
        if micro is None:
            continue  # subjects without micro-expressions have only non_micro/
        for label_dir in sorted(p for p in micro.iterdir() if p.is_dir()):
            label = normalise_label(label_dir.name, LABELS)
            if label not in LABELS:
                problems.add("warning", "label", f"{label_dir}: unknown label folder {label_dir.name!r}; expected one of {list(LABELS)}; its clips are skipped", file=label_dir)
                continue
            for clip_dir in sorted(p for p in label_dir.iterdir() if p.is_dir()):
                row = _row(clip_dir, subject, label, modality, apex, cropped, problems, verify_images)
                if row is not None:
                    rows.append(row)
    return finish(rows, problems, dataset=NAME, class_set=class_set, origin=str(base), allowed=CLASS_SETS)


def _row(clip_dir: Path, subject: str, label: str, modality: str, apex: str, cropped: bool, problems: Problems, verify: bool) -> dict[str, Any] | None:
    clip = clip_dir.name
    sid = f"{NAME}/{subject}/{clip}"
    where = str(clip_dir)
    m = re.match(r"s\d+_([a-z]+)_", clip.lower())
    if m and CODES.get(m.group(1), label) != label:
        problems.add("warning", "label", f"{where}: clip name says {CODES[m.group(1)]!r} but it is filed under {label!r}; the folder wins", file=clip_dir, sample_id=sid)
    frames = load_clip_frames(clip_dir, where=where, line=None, sid=sid, problems=problems)
    if frames is None:
        return None
    n = len(frames)
    ap, method = (n - 1) // 2 if n > 2 else 1, "middle"
    if apex == "max_diff":
        found = max_diff_apex(frames, 0, n - 1)
        if found is None:
            problems.add("warning", "apex", f"{where}: frames unreadable for max_diff; apex is the middle frame", file=clip_dir, sample_id=sid)
        else:
            ap, method = found, "max_diff"
    row: dict[str, Any] = dict(
        sample_id=sid, dataset=NAME, subject=f"{NAME}:{subject}", native_subject=subject, clip=clip,
        emotion=label, frames=tuple(str(p) for p in frames), onset=0, apex=ap, offset=n - 1,
        apex_estimated=True, apex_method=method, first_frame=frame_number(frames[0]) or 0,
        fps=FPS[modality], part=NAME if modality == "HS" else f"{NAME}_{modality.lower()}", cropped=cropped,
        _file=str(clip_dir),
    )
    if verify and not key_frames_ok(row, where=where, line=None, problems=problems):
        return None
    return row
