"""Public-format exports of the synthetic set, shaped like the MEGC2019 composite.

The composite circulates mostly as precomputed inputs: per clip one optical
flow image (u, v, strain; public pipelines min-max normalise each image on
its own) and one apex face crop. :func:`export_public` writes a synthetic set
in that form, so every form a user may bring is tested without licensed data:

* ``flow-apex``: ``flow/<part>/<subject>/<clip>.png`` (28x28, each channel
  min-max scaled to 0..255 on its own: ``flow_encoding`` = ``minmax``) and
  ``apex/<part>/<subject>/<clip>.png`` (224x224);
* ``apex-only``: the apex crops alone.

The shape is the composite's (``composite.OFFICIAL_LIST``): three parts named
``casme2`` / ``samm`` / ``smic``, the same 68 subject ids with each subject's
own class counts (250 / 109 / 83 of 442 clips). Clips are rendered small
(``native`` px, few frames: fast) and the export resizes them; the flow is
Farneback's onset -> apex at the native size. ``manifest.csv`` is a generic
manifest (read by ``--dataset manifest --dataset-option manifest=OUT``).
"""
from __future__ import annotations

import csv
import dataclasses
import json
import shutil
from collections import Counter
from pathlib import Path
from typing import Any, Callable

import cv2
import numpy as np
from filelock import FileLock

from mer_core.datasets.composite import OFFICIAL_LIST
from mer_core.datasets.synthetic.generate import _plan_clip, clip_motion, render_clip, subject_face
from mer_core.datasets.synthetic.options import GENERATOR_VERSION, SynthOptions
from mer_core.datasets.synthetic.realism import PARTS, Realism, adjust_plan, capture, crop_box, subject_styles
from mer_core.datasets.synthetic.realism import REALISM_VERSION
from mer_core.errors import ConfigError, DatasetError
from mer_core.paths import datasets_dir

EXPORT_FORMS = ("flow-apex", "apex-only", "frames")
EXPORT_COLUMNS = ("dataset", "subject", "clip", "label", "emotion", "flow_image", "apex_image", "flow_encoding")
FRAME_COLUMNS = ("dataset", "subject", "clip", "label", "emotion", "frames_dir", "onset", "apex", "offset", "fps",
                 "cropped")
FORM_COLUMNS = {"flow-apex": EXPORT_COLUMNS, "apex-only": EXPORT_COLUMNS, "frames": FRAME_COLUMNS}
FLOW_SIZE, APEX_SIZE = 28, 224
PART_ORDER = ("casme2", "samm", "smic")
_OURS = {"manifest.csv", "meta.json", "flow", "apex", "frames"}
_GENERATOR = "mer_core.datasets.synthetic.export"  # meta.json's "generator": a previous export


@dataclasses.dataclass(frozen=True)
class ExportSubject:
    part: str
    subject: str
    labels: tuple[str, ...]  # one per clip, in clip order


def plan_export(subjects: int | None = None) -> list[ExportSubject]:
    """The composite's subjects with their class counts; ``subjects`` keeps the first N (parts taken in turn)."""
    with open(OFFICIAL_LIST, newline="") as fh:
        rows = list(csv.DictReader(fh))
    by_part: dict[str, dict[str, list[str]]] = {p: {} for p in PART_ORDER}
    for r in rows:
        by_part[r["dataset"]].setdefault(r["subject"], []).append(r["label"])
    queues = {p: [ExportSubject(p, s, tuple(sorted(v))) for s, v in sorted(by_part[p].items())] for p in PART_ORDER}
    total = sum(len(q) for q in queues.values())
    if subjects is not None and not 1 <= subjects <= total:
        raise ConfigError(f"export subjects={subjects}: expected 1..{total} (the composite has {total} subjects)")
    keep = total if subjects is None else subjects
    out: list[ExportSubject] = []
    while len(out) < keep:
        for p in PART_ORDER:
            if queues[p] and len(out) < keep:
                out.append(queues[p].pop(0))
    return sorted(out, key=lambda e: (PART_ORDER.index(e.part), e.subject))


def export_counts(plan: list[ExportSubject]) -> dict[str, Any]:
    """Clips, subjects and class counts of an export plan (overall and per part)."""
    labels = Counter(lab for e in plan for lab in e.labels)
    parts = {p: dict(sorted(Counter(lab for e in plan if e.part == p for lab in e.labels).items())) for p in PART_ORDER}
    return dict(clips=sum(labels.values()), subjects=len(plan), counts=dict(sorted(labels.items())),
                parts={p: c for p, c in parts.items() if c})


def export_public(
    out_dir: str | Path,
    form: str = "flow-apex",
    *,
    subjects: int | None = None,
    seed: int = 0,
    native: int = 64,
    frames: int = 10,
    realism: Realism | None = None,
    progress: Callable[[int, int], None] | None = None,
    force: bool = False,
) -> Path:
    """Write a composite-shaped export of the synthetic set to ``out_dir``; return its manifest.

    ``out_dir`` must be empty or a previous export; ``force`` writes into any folder.

    ``realism`` (see :mod:`.realism`) applies the realism-calibrated
    mechanisms: per-subject styles, weak clips, label noise, head motion, the
    parts' capture conditions and jittered face crops.
    """
    if form not in EXPORT_FORMS:
        raise ConfigError(f"--export {form!r}: expected one of {', '.join(EXPORT_FORMS)}")
    out = Path(out_dir)
    _prepare(out, force)
    plan = plan_export(subjects)
    options = SynthOptions(subjects=len(plan), size=native, frames=frames, clip_jitter=0, seed=seed)
    colour = dataclasses.replace(options, color=True)
    classes = tuple(sorted({lab for e in plan for lab in e.labels}))
    total, done, rows = sum(len(e.labels) for e in plan), 0, []
    for s, entry in enumerate(plan):
        in_colour = realism is not None and PARTS[entry.part].color
        face = subject_face(colour if in_colour else options, s)
        styles = subject_styles(realism, seed, s, classes) if realism else {}
        for c, label in enumerate(entry.labels):
            clip = _plan_clip(options, s, entry.subject, c, label)
            if realism:
                clip = adjust_plan(clip, realism, seed, styles, classes, native)
            frames_ = render_clip(options, clip, face, clip_motion(options, clip, face))
            box = None
            if realism:
                frames_ = capture(frames_, entry.part, realism, seed, s, c)
                box = crop_box(face.face_mask, realism, seed, s, c)
            rows.append(_write_clip(out, form, entry, clip, frames_, box))
            done += 1
            if progress:
                progress(done, total)
    with open(out / "manifest.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(FORM_COLUMNS[form]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    meta = dict(generator=_GENERATOR, version=GENERATOR_VERSION, form=form, seed=seed,
                native=native, frames=frames, realism=realism.to_dict() if realism else None, **export_counts(plan))
    (out / "meta.json").write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
    return out / "manifest.csv"


def _prepare(out: Path, force: bool = False) -> None:
    """An empty folder or a previous export (its meta.json names this generator), or with ``force``
    any folder; every other file, a manifest.csv included, is refused. Old export files removed."""
    if out.exists() and not out.is_dir():
        raise DatasetError(f"{out} is a file; the export needs a folder to write to")
    out.mkdir(parents=True, exist_ok=True)
    names = sorted(p.name for p in out.iterdir())
    if names and not force and not (set(names) <= _OURS and _generator(out / "meta.json") == _GENERATOR):
        raise DatasetError(f"{out} holds files the export did not write ({', '.join(names[:5])}); they would be "
                           "replaced: choose an empty folder or a previous export, or pass --force")
    for name in ("flow", "apex", "frames"):
        shutil.rmtree(out / name, ignore_errors=True)


def _generator(meta: Path) -> str:
    try:
        return str(json.loads(meta.read_text()).get("generator", ""))
    except (OSError, ValueError, AttributeError):
        return ""


def _write_clip(out: Path, form: str, entry: ExportSubject, clip, frames: np.ndarray,
                box: tuple[int, int, int, int] | None) -> dict[str, str]:
    rel = Path(entry.part) / entry.subject / clip.clip
    row = dict(dataset=entry.part, subject=entry.subject, clip=clip.clip, label=clip.label, emotion=clip.label)
    if form == "frames":
        for t, img in enumerate(frames):
            _imwrite(out / "frames" / rel / f"img{t:03d}.png", img)
        fps = PARTS[entry.part].fps if box is not None else 100.0
        row.update(frames_dir=f"frames/{rel.as_posix()}", onset=str(clip.onset), apex=str(clip.apex),
                   offset=str(clip.offset), fps=f"{fps:g}", cropped="true")
        return row
    onset, apex = frames[clip.onset], frames[clip.apex]
    row.update(flow_image="", apex_image=f"apex/{rel.as_posix()}.png", flow_encoding="")
    x0, y0, x1, y1 = box if box is not None else (0, 0, apex.shape[1], apex.shape[0])
    crop = cv2.resize(apex[y0:y1, x0:x1], (APEX_SIZE, APEX_SIZE), interpolation=cv2.INTER_CUBIC)
    _imwrite(out / row["apex_image"], cv2.cvtColor(crop, cv2.COLOR_GRAY2BGR) if crop.ndim == 2 else crop)
    if form == "flow-apex":
        row.update(flow_image=f"flow/{rel.as_posix()}.png", flow_encoding="minmax")
        _imwrite(out / row["flow_image"], minmax_flow_image(onset, apex)[..., ::-1])
    return row


def minmax_flow_image(onset: np.ndarray, apex: np.ndarray, size: int = FLOW_SIZE) -> np.ndarray:
    """RGB uint8 (u, v, strain) flow image, each channel min-max scaled to 0..255 (public pipelines' way)."""
    grey = [f if f.ndim == 2 else cv2.cvtColor(f, cv2.COLOR_BGR2GRAY) for f in (onset, apex)]  # frames are BGR, as cv2 writes them
    flow = cv2.calcOpticalFlowFarneback(grey[0], grey[1], None, 0.5, 3, 9, 3, 5, 1.1, 0)
    u, v = flow[..., 0], flow[..., 1]
    uy, ux = np.gradient(u)
    vy, vx = np.gradient(v)
    strain = np.sqrt(ux**2 + vy**2 + 0.5 * (uy + vx) ** 2)
    chans = [cv2.resize(m.astype(np.float32), (size, size), interpolation=cv2.INTER_AREA) for m in (u, v, strain)]
    scaled = [(m - m.min()) / max(float(m.max() - m.min()), 1e-6) * 255.0 for m in chans]
    return np.clip(np.rint(np.stack(scaled, -1)), 0, 255).astype(np.uint8)


def _imwrite(path: Path, img: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), np.ascontiguousarray(img)):
        raise DatasetError(f"cannot write {path}")


REALISM_FORMS = EXPORT_FORMS


def realism_folder(form: str, *, seed: int = 0, subjects: int | None = None) -> Path:
    """Where ``synthetic-realism`` keeps one form of the calibrated variant (under the dataset cache)."""
    part = f"{form}-seed{seed}" + (f"-s{subjects}" if subjects is not None else "")
    return datasets_dir() / "synthetic-realism" / REALISM_VERSION / part


def ensure_realism(form: str = "flow-apex", *, seed: int = 0, subjects: int | None = None,
                   progress: Callable[[int, int], None] | None = None) -> Path:
    """The calibrated realism variant in one form, written once and reused; returns its manifest."""
    if form not in REALISM_FORMS:
        raise ConfigError(f"synthetic-realism form={form!r}: expected one of {', '.join(REALISM_FORMS)}")
    realism = Realism()
    out = realism_folder(form, seed=seed, subjects=subjects)
    out.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(out) + ".lock"):
        meta = out / "meta.json"
        if meta.is_file() and (out / "manifest.csv").is_file():
            try:
                current = json.loads(meta.read_text()).get("realism") == realism.to_dict()
            except ValueError:
                current = False
            if current:
                return out / "manifest.csv"
        return export_public(out, form, subjects=subjects, seed=seed, realism=realism, progress=progress)
