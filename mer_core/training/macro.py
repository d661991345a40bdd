"""Macro-expression sources for pre-training: parse specs, index them, load their inputs.

Macro sources (a list, or one string of comma-separated specs):

* ``NAME`` / ``NAME:ROOT`` -- a registered clip dataset (``synthetic-macro``
  by default), optionally ``NAME?key=value&key=value`` for indexer options
  (e.g. three synthetic macro sets with different seeds or rendering).
  Inputs come from :func:`mer_core.preprocess.pipeline.prepare_inputs`, as for
  micro data.
* ``ckplus:PATH`` -- a CK+-style tree: ``cohn-kanade-images/Sxxx/nnn/*.png``
  and ``Emotion/Sxxx/nnn/*_emotion.txt`` holding a float code (1 anger,
  2 contempt, 3 disgust, 4 fear, 5 happiness, 6 sadness, 7 surprise).
  Sequences run from neutral to peak, so each labelled sequence becomes a
  clip with onset = the first (neutral) frame and apex = offset = the last;
  it then goes through the same ``prepare_inputs`` (flow, EVM...).
* ``folder:PATH`` -- ImageFolder-style ``PATH/<class>/*.png``: unpaired
  stills. Image channels (apex, onset and their magnified versions) are the
  image itself; motion channels (diff, flow, strain) are zero, since a still
  has no onset to move from.

Label names are lower-cased and synonyms unified (happy -> happiness) with the
datasets' one table (:data:`mer_core.datasets.classes.LABEL_SYNONYMS`), so
classes shared by several sources, micro or macro, train one output.
"""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import cv2
import numpy as np
import pandas as pd

from mer_core.config import PreprocessConfig
from mer_core.datasets import index_dataset
from mer_core.datasets.classes import normalise_label  # the datasets' one synonym table
from mer_core.datasets.registry import list_datasets
from mer_core.datasets.schema import make_table
from mer_core.errors import ConfigError, DatasetError
from mer_core.keyvalue import parse_value
from mer_core.paths import natural_key
from mer_core.preprocess.pipeline import prepare_inputs

IMAGE_EXTS = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff"}
CKPLUS_CODES = {1: "anger", 2: "contempt", 3: "disgust", 4: "fear", 5: "happiness", 6: "sadness", 7: "surprise"}
STILL_IMAGE_CHANNELS = ("onset", "apex", "magnified_apex", "magnified_onset")

Log = Callable[[str], None]


@dataclass(frozen=True)
class MacroSource:
    kind: str  # 'dataset' | 'ckplus' | 'folder'
    name: str  # dataset name, or the absolute path for ckplus/folder
    root: str = ""  # dataset root ('' = the registry's)
    options: tuple[tuple[str, Any], ...] = ()  # indexer options

    def spec(self) -> str:
        if self.kind != "dataset":
            return f"{self.kind}:{self.name}"
        text = self.name + (f":{self.root}" if self.root else "")
        return text + ("?" + "&".join(f"{k}={v}" for k, v in self.options) if self.options else "")


def split_sources(value: str | Sequence[str]) -> list[str]:
    """``'a,b'`` or ``['a', 'b']`` -> ``['a', 'b']`` (empty items dropped)."""
    items = value.split(",") if isinstance(value, str) else list(value)
    return [s.strip() for s in items if s and s.strip()]


def parse_source(spec: str) -> MacroSource:
    """Parse one macro source spec (see the module docstring)."""
    spec = spec.strip()
    if not spec:
        raise ConfigError("empty macro source; expected NAME, NAME:ROOT, folder:PATH or ckplus:PATH")
    kind, sep, rest = spec.partition(":")
    if sep and kind.lower() in ("folder", "imagefolder", "ckplus", "ck+"):
        path = Path(rest).expanduser()
        if not path.is_dir():
            raise DatasetError(f"macro source {spec!r}: folder not found: {path}")
        return MacroSource("ckplus" if kind.lower() in ("ckplus", "ck+") else "folder", str(path.resolve()))
    base, _, query = spec.partition("?")
    name, _, root = base.partition(":")
    options: list[tuple[str, Any]] = []
    for item in filter(None, query.split("&")):
        key, eq, val = item.partition("=")
        if not eq or not key:
            raise ConfigError(f"macro source {spec!r}: option {item!r} is not key=value")
        options.append((key.strip(), parse_value(val.strip())))
    return MacroSource("dataset", name.strip(), str(Path(root).expanduser().resolve()) if root else "", tuple(options))


def index_imagefolder(root: str | Path) -> list[tuple[str, str]]:
    """``(absolute image path, label)`` for every image under ``root/<class>/``."""
    root = Path(root)
    items: list[tuple[str, str]] = []
    for cls in sorted(p for p in root.iterdir() if p.is_dir()):
        for img in sorted(cls.rglob("*"), key=lambda p: natural_key(str(p))):
            if img.suffix.lower() in IMAGE_EXTS and img.is_file():
                items.append((str(img.resolve()), normalise_label(cls.name)))
    if not items:
        raise DatasetError(f"image folder {root}: no images found; expected {root}/<class name>/<image>.png")
    return items


def _find_dir(root: Path, name: str) -> Path | None:
    for base in (root, *sorted(p for p in root.iterdir() if p.is_dir())):
        for child in (p for p in base.iterdir() if p.is_dir()):
            if child.name.lower() == name.lower():
                return child
    return None


def index_ckplus(root: str | Path) -> tuple[pd.DataFrame, list[str]]:
    """A CK+-style tree as a sample table (labelled sequences only) and a list of skipped items."""
    root = Path(root)
    images, emotion = _find_dir(root, "cohn-kanade-images"), _find_dir(root, "Emotion")
    if images is None or emotion is None:
        raise DatasetError(
            f"CK+ folder {root}: expected 'cohn-kanade-images/Sxxx/nnn/*.png' and 'Emotion/Sxxx/nnn/*_emotion.txt'"
        )
    rows, skipped = [], []
    for label_file in sorted(emotion.rglob("*_emotion.txt")):
        seq = label_file.parent
        subject = seq.parent.name
        try:
            code = float(label_file.read_text().split()[0])
        except (ValueError, IndexError):
            skipped.append(f"{label_file}: expected a number (emotion code 1..7)")
            continue
        if code != int(code) or int(code) not in CKPLUS_CODES:
            skipped.append(f"{label_file}: emotion code {code} is not one of 1..7")
            continue
        frame_dir = images / subject / seq.name
        frames = sorted(
            (p for p in frame_dir.glob("*") if p.suffix.lower() in IMAGE_EXTS), key=lambda p: natural_key(p.name)
        ) if frame_dir.is_dir() else []
        if not frames:
            skipped.append(f"{frame_dir}: no frames for labelled sequence {label_file.name}")
            continue
        n = len(frames)
        rows.append(dict(
            dataset="ckplus", subject=f"ckplus:{subject}", native_subject=subject, clip=f"{subject}_{seq.name}",
            label=CKPLUS_CODES[int(code)], frames=tuple(str(p.resolve()) for p in frames),
            onset=0, apex=n - 1, offset=n - 1, fps=30.0, apex_method="last_frame",
        ))
    if not rows:
        raise DatasetError(f"CK+ folder {root}: no labelled sequence with frames ({len(skipped)} skipped: {skipped[:3]})")
    return make_table(rows), skipped


def still_inputs(paths: Sequence[str], channels: Sequence[str], size: int) -> tuple[np.ndarray, np.ndarray]:
    """Inputs for unpaired stills: image channels = the image, motion channels = 0.

    Returns ``(x (N, C, size, size) float32, ok (N,) bool)``; unreadable
    images have ``ok`` False.
    """
    x = np.zeros((len(paths), len(channels), size, size), np.float32)
    ok = np.zeros(len(paths), bool)
    for i, path in enumerate(paths):
        img = cv2.imread(path, cv2.IMREAD_GRAYSCALE)
        if img is None:
            continue
        grey = cv2.resize(img, (size, size), interpolation=cv2.INTER_AREA).astype(np.float32) / 255.0
        for c, name in enumerate(channels):
            if name in STILL_IMAGE_CHANNELS:
                x[i, c] = grey
        ok[i] = True
    return x, ok


@dataclass
class MacroData:
    x: np.ndarray  # (N, C, H, W) float32
    labels: list[str]  # normalised label per row
    sources: list[str]  # source spec per row
    report: list[dict[str, Any]] = field(default_factory=list)  # one entry per source


def _table_fingerprint(table: pd.DataFrame) -> str:
    h = hashlib.sha256()
    for sid, label, frames in zip(table["sample_id"], table["label"], table["frames"]):
        h.update(f"{sid}|{label}|{len(frames)}\n".encode())
    return h.hexdigest()[:16]


def index_source(src: MacroSource) -> tuple[Any, str, list[str]]:
    """(table or list of (path, label), fingerprint, skipped) without loading pixels."""
    if src.kind == "folder":
        items = index_imagefolder(src.name)
        h = hashlib.sha256()
        for path, label in items:
            h.update(f"{os.path.relpath(path, src.name)}|{label}|{os.path.getsize(path)}\n".encode())
        return items, h.hexdigest()[:16], []
    if src.kind == "ckplus":
        table, skipped = index_ckplus(src.name)
        return table, _table_fingerprint(table), skipped

    table = index_dataset(src.name, src.root or None, **dict(src.options))
    if len(table) == 0:
        raise DatasetError(f"macro dataset {src.spec()!r} has no samples")
    return table, _table_fingerprint(table), []


def load_macro(
    sources: Sequence[MacroSource],
    channels: Sequence[str],
    size: int,
    options: PreprocessConfig,
    *,
    indexed: Sequence[tuple[Any, str, list[str]]],
    workers: int = 1,
    log: Log | None = None,
) -> MacroData:
    """Model inputs and labels for all samples of the macro sources (``indexed``: :func:`index_source` of each)."""
    channels = tuple(channels)
    xs, labels, origin, report = [], [], [], []
    for src, (data, _fp, skipped) in zip(sources, indexed):
        if src.kind == "folder":
            paths = [p for p, _ in data]
            x, ok = still_inputs(paths, channels, size)
            lab = [label for _, label in data]
            errors = [f"cannot read image {p}" for p, good in zip(paths, ok) if not good]
        else:
            prep = prepare_inputs(data, channels, size, options, workers=workers)
            x, ok = prep.x, np.asarray(prep.ok, bool)
            lab = [normalise_label(v) for v in data["label"]]
            errors = [f"{r.sample_id}: {r.error}" for r in prep.report.itertuples() if not r.ok]
        x = x[ok]
        lab = [label for label, good in zip(lab, ok) if good]
        report.append(dict(source=src.spec(), samples=int(ok.sum()), failed=int((~ok).sum()),
                           skipped=len(skipped), errors=(errors + skipped)[:10],
                           classes={k: int(v) for k, v in sorted(pd.Series(lab, dtype=str).value_counts().items())}))
        if log:
            log(f"macro source {src.spec()}: {int(ok.sum())} samples ({int((~ok).sum())} failed, {len(skipped)} skipped)")
        xs.append(x)
        labels += lab
        origin += [src.spec()] * len(lab)
    if not labels:
        raise DatasetError(f"no usable macro samples in {[s.spec() for s in sources]}: {report}")
    return MacroData(np.concatenate(xs).astype(np.float32, copy=False), labels, origin, report)


# --- honest transfer: which sources may pre-train a model evaluated on a table ------------------

MACRO_ROLE = ("synthetic-macro",)  # registered clip datasets with the macro role (distinct people, macro clips)


def macro_datasets() -> list[str]:
    """Registered datasets with the ``macro`` role: :data:`MACRO_ROLE` and any ``*-macro`` dataset."""
    return [d for d in list_datasets() if d in MACRO_ROLE or d.endswith("-macro")]


def _overlap(src: MacroSource, indexed: Any, table: pd.DataFrame, eval_dataset: str) -> str:
    """Why a source may not pre-train a model evaluated on ``table`` ('' = it may)."""
    if src.kind == "dataset" and src.name == eval_dataset:
        return f"it is the evaluation dataset {eval_dataset!r} itself"
    if not isinstance(indexed, pd.DataFrame):  # an image folder: no subjects, no dataset names
        return ""
    shared_ds = sorted(set(indexed["dataset"].astype(str)) & set(table["dataset"].astype(str)))
    if shared_ds:
        return f"it shares dataset(s) {shared_ds} with the evaluation table"
    shared = sorted(set(indexed["subject"].astype(str)) & set(table["subject"].astype(str)))
    if shared:
        more = f" and {len(shared) - 3} more" if len(shared) > 3 else ""
        return f"it shares subject id(s) {shared[:3]}{more} with the evaluation table"
    return ""


def check_sources(spec: str | Sequence[str], table: pd.DataFrame, eval_dataset: str) -> list[dict[str, str]]:
    """Refuse (ConfigError) a pre-training source that is not a macro source or overlaps the evaluation
    table (same dataset, or a shared subject id: its labels would sit in every fold's shared weights).

    Returns ``[{source, fingerprint}]`` for the run record.
    """
    allowed = macro_datasets()
    record = []
    for item in split_sources(spec):
        src = parse_source(item)
        if src.kind == "dataset" and src.name not in allowed:
            raise ConfigError(
                f"pretrain={item!r}: not a macro source (a dataset with the macro role); pre-train on one of "
                f"{', '.join(allowed) or 'none registered'}, folder:PATH (ImageFolder) or ckplus:PATH, never on "
                "micro-expression data that could hold the evaluation subjects")
        indexed, fp, _skipped = index_source(src)
        why = _overlap(src, indexed, table, eval_dataset)
        if why:
            raise ConfigError(
                f"pretrain={item!r} refused: {why}; pre-training on it would put test subjects' labels into the "
                f"weights every fold starts from. Use a macro source with other people: {', '.join(allowed)}, "
                "folder:PATH or ckplus:PATH")
        record.append({"source": src.spec(), "fingerprint": fp})
    return record
