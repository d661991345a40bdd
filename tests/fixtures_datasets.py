"""Fixture builders: tiny dataset trees laid out exactly as each dataset is distributed.

No real face data: frames are 8x8 images, spreadsheets are written with
openpyxl in the real formats (CASME II's number subjects and '/' apex cells,
SAMM's legend rows above the header, SMIC's label folders, CAS(ME)^3's
recordings). Each ``build_*`` writes under a given folder and returns the
dataset root; tests pass that root to the indexers. Reusable by any test::

    from fixtures_datasets import build_casme2, build_megc2019, build_flow_manifest  # tests/ is on sys.path under pytest
"""
from __future__ import annotations

import csv
from pathlib import Path
from typing import Any, Iterable

import cv2
import numpy as np
import pandas as pd

from mer_core.datasets import index_dataset

OFFICIAL_LIST = Path(__file__).resolve().parent.parent / "mer_core" / "datasets" / "data" / "megc2019_composite_list.csv"


def index_with_report(name: str, root: str | Path | None = None, **options: Any) -> tuple[pd.DataFrame, list[dict[str, Any]]]:
    """Index a dataset and return ``(table, problems)``, the problems read from ``table.attrs`` at once."""
    table = index_dataset(name, root, **options)
    return table, list(table.attrs.get("problems", []))


# --------------------------------------------------------------------------- files


def write_image(path: Path, value: int = 128, size: int = 8, channels: int = 1) -> Path:
    """An 8x8 image (any extension cv2 knows): a gradient offset by ``value``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    img = (np.add.outer(np.arange(size), np.arange(size)) * 3 + value) % 256
    img = img.astype(np.uint8)
    if channels == 3:
        img = np.stack([img, img[::-1], img.T], axis=-1)
    if not cv2.imwrite(str(path), img):
        raise OSError(f"cannot write {path}")
    return path


def write_corrupt(path: Path) -> Path:
    """A file with an image extension that does not decode."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"this is not an image" * 4)
    return path


def write_xlsx(path: Path, header: list[Any], rows: Iterable[list[Any]], *, title_rows: Iterable[list[Any]] = (), sheet: str = "Sheet1") -> Path:
    """A workbook with optional title/legend rows above the header row."""
    import openpyxl

    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = sheet
    for r in title_rows:
        ws.append(list(r))
    ws.append(list(header))
    for r in rows:
        ws.append(list(r))
    path.parent.mkdir(parents=True, exist_ok=True)
    wb.save(path)
    return path


def _frames(folder: Path, numbers: Iterable[int], name: str, corrupt: Iterable[int] = ()) -> None:
    corrupt = set(corrupt)
    for k, n in enumerate(numbers):
        target = folder / name.format(n=n)
        write_corrupt(target) if n in corrupt else write_image(target, value=20 * k)


def _span(c: dict[str, Any]) -> list[int]:
    if "frames" in c:
        return list(c["frames"])
    on = c["onset"] if isinstance(c["onset"], int) else 1
    off = c["offset"] if isinstance(c["offset"], int) and c["offset"] >= on else on + 2
    return list(range(on, off + 1))


# --------------------------------------------------------------------------- CASME II

CASME2_HEADER = ["Subject", "Filename", None, "OnsetFrame", "ApexFrame", "OffsetFrame", None, "Action Units", "Estimated Emotion", "Objective Classes"]


def casme2_clips() -> list[dict[str, Any]]:
    """A small CASME II with every quirk the indexer must survive.

    Keys: subject (a number, as in the sheet), clip, onset, apex ('/' allowed),
    offset, emotion; optional frames (numbers on disk), folder=False (no
    folder on disk), corrupt (frame numbers written as garbage).
    """
    return [
        dict(subject=1, clip="EP02_01f", onset=46, apex=49, offset=52, emotion="happiness"),
        dict(subject=1, clip="EP03_02", onset=10, apex=12, offset=14, emotion="others"),
        dict(subject=1, clip="EP19_05f", onset=5, apex=7, offset=9, emotion="disgust"),
        dict(subject=2, clip="EP01_11f", onset=1, apex=3, offset=5, emotion="repression"),
        dict(subject=2, clip="EP11_01", onset=3, apex=4, offset=6, emotion="surprise"),
        dict(subject=2, clip="EP08_04", onset=1, apex=2, offset=4, emotion="fear"),
        dict(subject=4, clip="EP12_01f", onset=2, apex="/", offset=6, emotion="disgust"),  # '/' apex
        dict(subject=5, clip="EP09_05f", onset=3, apex=3, offset=7, emotion="happiness"),  # onset == apex
        dict(subject=5, clip="EP10_02", onset=1, apex=2, offset=3, emotion="sadness"),
        dict(subject=5, clip="EP13_01", onset=1, apex=2, offset=3, emotion="happiness", folder=False),  # missing on disk
        dict(subject=5, clip="EP14_02", onset=1, apex=2, offset=3, emotion="confusion"),  # unknown label
        dict(subject=5, clip="EP15_01", onset=1, apex=2, offset=3, emotion="disgust", corrupt=[2]),  # corrupt apex frame
    ]


def build_casme2(root: Path, clips: list[dict[str, Any]] | None = None, *, sheet: str = "CASME2-coding-20190701.xlsx", frames_dir: str = "CASME2_RAW_selected", prefix: str = "img", ext: str = ".jpg") -> Path:
    """``root/CASME2-coding-*.xlsx`` + ``root/CASME2_RAW_selected/sub01/EP02_01f/img46.jpg``."""
    clips = casme2_clips() if clips is None else clips
    rows = []
    for c in clips:
        rows.append([c["subject"], c["clip"], None, c["onset"], c["apex"], c["offset"], None, c.get("aus", "4"), c["emotion"], c.get("objective", 1)])
        if c.get("folder", True):
            sub = c["subject"] if isinstance(c["subject"], str) else f"sub{int(c['subject']):02d}"
            _frames(root / frames_dir / sub / c["clip"], _span(c), prefix + "{n}" + ext, c.get("corrupt", ()))
    write_xlsx(root / sheet, CASME2_HEADER, rows)
    return root


# --------------------------------------------------------------------------- SAMM

SAMM_HEADER = ["Subject", "Filename", "Inducement Code", "Onset Frame", "Apex Frame", "Offset Frame", "Duration", "Micro", "Action Units", "Estimated Emotion", "Objective Classes", "Notes"]


def samm_legend_rows(n: int = 13) -> list[list[Any]]:
    """Title and legend rows like the ones above SAMM's header."""
    rows: list[list[Any]] = [["SAMM Micro-Movement Database: FACS codes"], [], ["Legend"]]
    rows += [[f"Inducement code {k}", f"stimulus video {k}"] for k in range(1, n - 3)]
    rows.append(["(all frame numbers refer to file names)"])
    return rows[:n]


def samm_clips() -> list[dict[str, Any]]:
    """A small SAMM: subjects as numbers, frame numbers in file names, one apex-before-onset typo."""
    return [
        dict(subject=6, clip="006_1_2", onset=5562, apex=5588, offset=5590, emotion="Disgust", frames=[5562, 5570, 5588, 5590]),
        dict(subject=6, clip="006_1_3", onset=2200, apex=2205, offset=2210, emotion="Happiness", frames=[2200, 2205, 2210]),
        dict(subject=7, clip="007_3_1", onset=100, apex=40, offset=120, emotion="Anger", frames=[100, 110, 120]),  # apex < onset
        dict(subject=7, clip="007_5_3", onset=300, apex=305, offset=-1, emotion="Surprise", frames=[300, 305, 310]),  # offset -1
        dict(subject=9, clip="009_2_1", onset=10, apex=12, offset=14, emotion="Other", frames=[10, 12, 14]),
        dict(subject=9, clip="009_3_2", onset=10, apex=12, offset=14, emotion="Contempt", frames=[10, 12, 14]),
        dict(subject=9, clip="009_4_1", onset=10, apex=12, offset=14, emotion="Fear", frames=[10, 12, 14]),
    ]


def build_samm(root: Path, clips: list[dict[str, Any]] | None = None, *, sheet: str = "SAMM_Micro_FACS_Codes_v2.xlsx", legend_rows: int = 13) -> Path:
    """``root/SAMM_Micro_FACS_Codes_v2.xlsx`` + ``root/SAMM/006/006_1_2/006_05562.jpg``."""
    clips = samm_clips() if clips is None else clips
    rows = []
    for c in clips:
        subj = int(c["subject"])
        rows.append([subj, c["clip"], "1_2", c["onset"], c["apex"], c["offset"], 30, "Micro - 1/2", c.get("aus", "R14"), c["emotion"], c.get("objective", 1), ""])
        if c.get("folder", True):
            _frames(root / "SAMM" / f"{subj:03d}" / c["clip"], _span(c), f"{subj:03d}_" + "{n:05d}.jpg", c.get("corrupt", ()))
    write_xlsx(root / sheet, SAMM_HEADER, rows, title_rows=samm_legend_rows(legend_rows), sheet="MICRO_ONLY")
    return root


# --------------------------------------------------------------------------- SMIC


def smic_clips() -> list[dict[str, Any]]:
    """(subject, label folder, clip, n frames): SMIC-HS names, labels from folders."""
    return [
        dict(subject="s1", label="negative", clip="s1_ne_01", n=4),
        dict(subject="s1", label="positive", clip="s1_po_01", n=3),
        dict(subject="s2", label="surprise", clip="s2_sur_01", n=2),
        dict(subject="s3", label="negative", clip="s3_ne_01", n=5),
        dict(subject="s3", label="happy", clip="s3_po_02", n=3),  # unknown label folder
        dict(subject="s3", label="negative", clip="s3_ne_02", n=1),  # too few frames
    ]


def build_smic(root: Path, clips: list[dict[str, Any]] | None = None, *, modality: str = "HS", top: str = "SMIC_all_cropped") -> Path:
    """``root/SMIC_all_cropped/HS/s1/micro/negative/s1_ne_01/image000001.bmp`` (+ a non_micro-only subject)."""
    clips = smic_clips() if clips is None else clips
    base = root / top / modality
    for c in clips:
        folder = base / c["subject"] / "micro" / c["label"] / c["clip"]
        _frames(folder, range(1, c.get("n", 2) + 1), "image{n:06d}.bmp", c.get("corrupt", ()))
    write_image(base / "s7" / "non_micro" / "s7_01" / "image000001.bmp")
    return root


# --------------------------------------------------------------------------- CAS(ME)^3

CASME3_HEADER = ["Subject", "Filename", "Onset", "Apex", "Offset", "AU", "Objective class", "emotion"]


def casme3_clips() -> list[dict[str, Any]]:
    return [
        dict(subject="spNO.1", file="a", onset=10, apex=12, offset=14, emotion="happy"),
        dict(subject="spNO.1", file="a", onset=30, apex=33, offset=35, emotion="disgust"),
        dict(subject="spNO.2", file="b", onset=5, apex=6, offset=8, emotion="surprise"),
        dict(subject="spNO.2", file="b", onset=20, apex=22, offset=24, emotion="others"),
        dict(subject="spNO.3", file="c", onset=1, apex=2, offset=3, emotion="sad"),
    ]


def build_casme3(root: Path, clips: list[dict[str, Any]] | None = None) -> Path:
    """``root/cas(me)3_part_A_ME_label_JpgIndex_v2.xlsx`` + ``root/part_A/spNO.1/a/color/12.jpg``."""
    clips = casme3_clips() if clips is None else clips
    recordings: dict[tuple[str, str], set[int]] = {}
    for c in clips:
        recordings.setdefault((c["subject"], c["file"]), set()).update(range(c["onset"], c["offset"] + 1))
    for (subj, name), numbers in recordings.items():
        _frames(root / "part_A" / subj / name / "color", sorted(numbers), "{n}.jpg")
    rows = [[c["subject"], c["file"], c["onset"], c["apex"], c["offset"], "AU4", "1", c["emotion"]] for c in clips]
    write_xlsx(root / "cas(me)3_part_A_ME_label_JpgIndex_v2.xlsx", CASME3_HEADER, rows)
    return root


# --------------------------------------------------------------------------- MEGC2019

CASME2_NEG = ("disgust", "repression")
SAMM_NEG = ("Anger", "Contempt", "Disgust", "Fear", "Sadness")

# clips the 2019 CASME II sheet maps in but the official list leaves out
CASME2_EXCLUDED = [
    dict(subject=4, clip="EP12_01f", onset=1, apex="/", offset=2, emotion="disgust"),
    dict(subject=5, clip="EP09_05f", onset=1, apex=1, offset=2, emotion="happiness"),
    dict(subject=24, clip="EP07_01", onset=1, apex=2, offset=2, emotion="surprise"),
    dict(subject=24, clip="EP07_04f", onset=1, apex=2, offset=2, emotion="surprise"),
    dict(subject=24, clip="EP10_03", onset=1, apex=2, offset=2, emotion="surprise"),
]
# clips the mapping drops
CASME2_UNMAPPED = [
    dict(subject=1, clip="EP03_02", onset=1, apex=2, offset=2, emotion="others"),
    dict(subject=2, clip="EP08_04", onset=1, apex=2, offset=2, emotion="fear"),
    dict(subject=10, clip="EP10_02", onset=1, apex=2, offset=2, emotion="sadness"),  # sub10 is not in the composite
]
SAMM_UNMAPPED = [dict(subject=6, clip="006_1_7", onset=1, apex=2, offset=2, emotion="Other", frames=[1, 2])]


def build_megc2019(root: Path, *, extras: bool = True, folders: dict[str, str] | None = None) -> dict[str, Path]:
    """The three parts of the composite with every clip of the official list (2 frames each).

    CASME II negatives alternate disgust/repression and SAMM negatives cycle
    through its five negative emotions, so the mapping is exercised. With
    ``extras``: the five CASME II clips the list excludes (see
    shared/reference/megc2019.md), clips the mapping drops, and one SAMM row
    with its apex before its onset (kept, apex estimated). Returns the roots
    {'casme2': ..., 'samm': ..., 'smic': ...}. ``folders``: the part folders'
    names under ``root`` (default: casme2/, samm/, smic/), e.g. the distributed
    ``{'casme2': 'CASME2', 'samm': 'SAMM', 'smic': 'SMIC-HS'}``.
    """
    folders = {"casme2": "casme2", "samm": "samm", "smic": "smic", **(folders or {})}
    with open(OFFICIAL_LIST, newline="", encoding="utf-8") as fh:
        listed = list(csv.DictReader(fh))
    cas, sam, smc = [], [], []
    for i, r in enumerate(listed):
        lab = r["label"]
        if r["dataset"] == "casme2":
            emo = {"positive": "happiness", "surprise": "surprise"}.get(lab) or CASME2_NEG[i % 2]
            cas.append(dict(subject=int(r["subject"][3:]), clip=r["clip"], onset=1, apex=2, offset=2, emotion=emo))
        elif r["dataset"] == "samm":
            emo = {"positive": "Happiness", "surprise": "Surprise"}.get(lab) or SAMM_NEG[i % 5]
            sam.append(dict(subject=int(r["subject"]), clip=r["clip"], onset=1, apex=2, offset=2, emotion=emo, frames=[1, 2]))
        else:
            smc.append(dict(subject=r["subject"], label=lab, clip=r["clip"], n=2))
    if extras:
        cas += [dict(c) for c in CASME2_EXCLUDED + CASME2_UNMAPPED]
        sam += [dict(c) for c in SAMM_UNMAPPED]
        sam[0].update(onset=1, apex=0, offset=3, frames=[1, 2, 3])  # the sheet typo: apex before onset
    return {
        "casme2": build_casme2(root / folders["casme2"], cas),
        "samm": build_samm(root / folders["samm"], sam),
        "smic": build_smic(root / folders["smic"], smc),
    }


# --------------------------------------------------------------------------- generic manifests


# per class: the motion of the central region, chosen to survive a horizontal flip
# (a usual augmentation): up, down, outward (expansion), inward (contraction)
FLOW_MOTIONS = ("up", "down", "outward", "inward")


def flow_pattern(label_index: int, size: int, rng: np.random.Generator) -> np.ndarray:
    """A precomputed flow image (BGR, ready for cv2.imwrite) whose class is its motion.

    Follows mer_core.preprocess.channels: R = 128 + 127 * flow_u, G = 128 +
    127 * flow_v (128 = no motion), B = 255 * strain. Class k moves the central
    region as FLOW_MOTIONS[k] (|flow| 0.6 in normalised units) with strain at
    its border, plus noise. The motions stay distinct under a horizontal flip,
    and the signal is strong, so a tiny model learns it under LOSO.
    """
    motion = FLOW_MOTIONS[label_index % len(FLOW_MOTIONS)]
    rgb = np.zeros((size, size, 3), np.float32)
    rgb[..., :2] = 128
    lo, hi, mid = size // 4, size - size // 4, size // 2
    if motion in ("up", "down"):
        rgb[lo:hi, lo:hi, 1] += 127 * (-0.6 if motion == "up" else 0.6)
    else:
        sign = -1.0 if motion == "outward" else 1.0  # outward: left half moves left, right half right
        rgb[lo:hi, lo:mid, 0] += 127 * 0.6 * sign
        rgb[lo:hi, mid:hi, 0] -= 127 * 0.6 * sign
    rgb[lo:hi, lo:hi, 2] = 60
    rgb[lo + 1:hi - 1, lo + 1:hi - 1, 2] = 10
    rgb += rng.normal(0, 6, rgb.shape)
    rgb = np.clip(rgb, 0, 255).astype(np.uint8)
    return cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)


def build_flow_manifest(
    root: Path,
    *,
    n_subjects: int = 6,
    per_class: int = 2,
    classes: tuple[str, ...] = ("negative", "positive", "surprise"),
    size: int = 28,
    apex_images: bool = True,
    dataset: str = "flowset",
    seed: int = 0,
) -> Path:
    """A manifest of precomputed inputs only: rows with flow_image (+ apex_image), no frames.

    Layout: ``root/manifest.csv``, ``root/flow/<subject>/<clip>.png``,
    ``root/apex/<subject>/<clip>.png``; paths in the CSV are relative. Returns
    the manifest path. Every subject has every class, so LOSO folds are full.
    Up to 4 classes get distinct motions (see :func:`flow_pattern`).
    """
    rng = np.random.default_rng(seed)
    lines = []
    for s in range(1, n_subjects + 1):
        subj = f"p{s:02d}"
        for k, lab in enumerate(classes):
            for j in range(per_class):
                clip = f"{subj}_{lab[:3]}_{j}"
                flow = root / "flow" / subj / f"{clip}.png"
                flow.parent.mkdir(parents=True, exist_ok=True)
                cv2.imwrite(str(flow), flow_pattern(k, size, rng))
                row = dict(dataset=dataset, subject=subj, clip=clip, label=lab, flow_image=f"flow/{subj}/{clip}.png", apex_image="")
                if apex_images:
                    write_image(root / "apex" / subj / f"{clip}.png", value=40 * k + j, size=size)
                    row["apex_image"] = f"apex/{subj}/{clip}.png"
                lines.append(row)
    path = root / "manifest.csv"
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=list(lines[0]))
        w.writeheader()
        w.writerows(lines)
    return path


def build_frames_manifest(root: Path, rows: list[dict[str, Any]] | None = None) -> Path:
    """A manifest of frame folders: ``root/clips/<clip>/f1.png..`` with onset/apex/offset positions.

    Row keys: subject, clip, label, n (frames), onset, apex, offset (strings
    allowed, '' = not given); optional emotion.
    """
    rows = rows or [
        dict(subject="a", clip="c1", label="negative", n=4, onset=0, apex=2, offset=3),
        dict(subject="a", clip="c2", label="positive", n=3, onset=0, apex="", offset=2),
        dict(subject="b", clip="c3", label="surprise", n=3, onset=0, apex=1, offset=2),
    ]
    out = []
    for r in rows:
        _frames(root / "clips" / r["clip"], range(1, r["n"] + 1), "f{n}.png")
        out.append(dict(subject=r["subject"], clip=r["clip"], label=r["label"], emotion=r.get("emotion", ""),
                        frames_dir=f"clips/{r['clip']}", onset=r["onset"], apex=r["apex"], offset=r["offset"]))
    path = root / "manifest.csv"
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=list(out[0]))
        w.writeheader()
        w.writerows(out)
    return path
