"""The dataset check: what a dataset on disk gives, and what is wrong with it.

``check_dataset(name, root=None, **options)`` indexes a dataset the way an
experiment would (same indexer, same class set) but also decodes the key
frames and precomputed images, and returns a :class:`DatasetReport`: counts
per class, subject and part, every problem (severity, file, row, message),
and what the class set / protocol drops and why. It never raises for a broken
dataset: a dataset that cannot be indexed at all comes back with ``fatal``
set, so the CLI and the dashboard's Datasets page can show the reason.
"""
from __future__ import annotations

import inspect
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import cv2
import numpy as np
import pandas as pd

from mer_core.datasets._common import BySeverity, Problems, readable
from mer_core.datasets.classes import CLASS_SETS
from mer_core.datasets.frames_check import check_frames
from mer_core.datasets.registry import dataset_info, index_dataset
from mer_core.datasets.roots import dataset_root
from mer_core.errors import MerError

_ORDER = {"error": 0, "warning": 1, "info": 2}


@dataclass
class DatasetReport(BySeverity):
    """The result of :func:`check_dataset` (plain data: safe to cache or JSON-dump via ``to_dict``)."""

    name: str
    class_set: str
    root: str = ""
    options: dict[str, Any] = field(default_factory=dict)
    fatal: str = ""  # non-empty: the dataset could not be indexed at all
    problems: list[dict[str, Any]] = field(default_factory=list)
    table: pd.DataFrame | None = None
    frames_decoded: int = 0  # frames opened by the decoding pass (frames_check)

    # ------------------------------------------------------------------ counts
    @property
    def n_samples(self) -> int:
        return 0 if self.table is None else len(self.table)

    @property
    def n_subjects(self) -> int:
        return 0 if self.table is None else int(self.table["subject"].nunique())

    def _counts(self, col: str) -> dict[str, int]:
        if self.table is None or self.table.empty:
            return {}
        return {str(k): int(v) for k, v in self.table[col].value_counts().sort_index().items()}

    @property
    def counts_by_class(self) -> dict[str, int]:
        return self._counts("label")

    @property
    def counts_by_subject(self) -> dict[str, int]:
        return self._counts("subject")

    @property
    def counts_by_part(self) -> dict[str, int]:
        return self._counts("part")

    def part_class_table(self) -> pd.DataFrame:
        """Clips per part (rows) and class (columns), with totals."""
        if self.table is None or self.table.empty:
            return pd.DataFrame()
        return pd.crosstab(self.table["part"], self.table["label"], margins=True, margins_name="total")

    @property
    def missing_classes(self) -> list[str]:
        """Classes of the class set without a single clip (LOSO metrics would divide by zero for them)."""
        wanted = CLASS_SETS.get(self.class_set, ())
        return [c for c in wanted if c not in self.counts_by_class]

    @property
    def n_apex_estimated(self) -> int:
        return 0 if self.table is None else int(self.table["apex_estimated"].sum())

    # ---------------------------------------------------------------- problems
    @property
    def usable(self) -> bool:
        """True when the dataset indexed, has clips, and no row had to be skipped for an error."""
        return not self.fatal and self.n_samples > 0 and not self.errors

    def problems_frame(self) -> pd.DataFrame:
        """Problems as a table (severity, kind, file, row, sample_id, message), errors first."""
        cols = ["severity", "kind", "file", "row", "sample_id", "message"]
        frame = pd.DataFrame(self.problems, columns=cols)
        if frame.empty:
            return frame
        frame["_o"] = frame["severity"].map(_ORDER)
        return frame.sort_values(["_o"], kind="stable").drop(columns="_o").reset_index(drop=True)

    def to_dict(self) -> dict[str, Any]:
        return dict(
            name=self.name, class_set=self.class_set, root=self.root, options=dict(self.options),
            fatal=self.fatal, usable=self.usable, n_samples=self.n_samples, n_subjects=self.n_subjects,
            n_apex_estimated=self.n_apex_estimated, counts_by_class=self.counts_by_class,
            missing_classes=self.missing_classes,
            counts_by_part=self.counts_by_part, counts_by_subject=self.counts_by_subject,
            problems=list(self.problems),
        )

    # -------------------------------------------------------------------- text
    def to_text(self, limit: int = 30) -> str:
        """A plain-text report; at most ``limit`` lines per problem list."""
        head = f"Dataset {self.name} (class set {self.class_set})" + (f", root {self.root}" if self.root else "")
        if self.fatal:
            return f"{head}\nNOT USABLE: {self.fatal}"
        lines = [head]
        verdict = "usable" if self.usable else "NOT USABLE (errors below)" if self.n_samples else "NOT USABLE (no clips)"
        lines.append(
            f"Status: {verdict}: {self.n_samples} clips, {self.n_subjects} subjects; "
            f"{len(self.errors)} error(s), {len(self.warnings)} warning(s), {len(self.dropped)} clip(s) dropped on purpose; "
            f"apex estimated for {self.n_apex_estimated} clip(s); {self.frames_decoded} frame(s) decoded"
        )
        if self.missing_classes:
            lines.append(f"Classes of {self.class_set!r} with no clip: {', '.join(self.missing_classes)}")
        if self.n_subjects == 1:
            lines.append("Only one subject: leave-one-subject-out needs at least two")
        lines.append("")
        lines.append("Clips per part and class:")
        lines += ["  " + ln for ln in self.part_class_table().to_string().splitlines()]
        lines.append("")
        lines.append("Clips per subject:")
        items = [f"{s} {n}" for s, n in self.counts_by_subject.items()]
        for i in range(0, len(items), 6):
            lines.append("  " + ", ".join(items[i:i + 6]))
        for title, group in (("Errors (clip skipped or missing)", self.errors), ("Warnings (clip kept, fixed or suspicious)", self.warnings)):
            if group:
                lines += ["", f"{title}: {len(group)}"]
                lines += ["  " + _fmt(p) for p in group[:limit]]
                if len(group) > limit:
                    lines.append(f"  ... and {len(group) - limit} more")
        if self.dropped:
            lines += ["", f"Dropped by the class set / protocol: {len(self.dropped)}"]
            reasons: dict[str, list[str]] = {}
            for p in self.dropped:
                key = re.sub(r"^\S+: ", "", p["message"])
                reasons.setdefault(key, []).append(p.get("sample_id") or "?")
            for reason, ids in sorted(reasons.items(), key=lambda kv: -len(kv[1]))[:limit]:
                more = f", ... {len(ids) - 3} more" if len(ids) > 3 else ""
                lines.append(f"  {len(ids):4d} x {reason}: {', '.join(ids[:3])}{more}")
        return "\n".join(lines)


def _fmt(p: dict[str, Any]) -> str:
    name = Path(p["file"]).name if p.get("file") else ""
    where = name + (f" row {p['row']}" if p.get("row") else "")
    return f"[{p['kind']}] " + (f"{where}: " if name and name not in p["message"] else "") + p["message"]


def check_dataset(name: str, root: str | Path | None = None, *, frames: str = "all",
                  progress: Callable[[int, int], None] | None = None, **options: Any) -> DatasetReport:
    """Index ``name`` with image verification and report counts and problems.

    ``options`` go to the indexer (``class_set``, ``modality``, ``casme2_root``...).
    ``frames``: ``"all"`` decodes every frame of every clip, ``"quick"`` the key
    frames and a few between them, ``"none"`` skips the pass (see frames_check).
    Raises only for an unknown dataset name; everything else lands in the report.
    """
    if frames not in ("all", "quick", "none"):
        raise MerError(f"frames={frames!r}: expected 'all', 'quick' or 'none'")
    info = dataset_info(name)
    class_set = options.get("class_set") or info.default_class_set
    options = {k: v for k, v in options.items() if v is not None}
    params = inspect.signature(info.indexer).parameters
    if "class_set" in params:  # indexers without the option use their default class set
        options["class_set"] = class_set
    if "verify_images" in params and "verify_images" not in options:
        options["verify_images"] = True
    report = DatasetReport(name=name, class_set=class_set, root=str(root or ""), options=dict(options))
    try:
        if root is None and info.needs_root:
            try:
                root = dataset_root(name)
                report.root = str(root)
            except MerError:
                if not set(options) - {"class_set", "verify_images"}:
                    raise  # nothing else could locate the data (options like manifest=PATH can)
        table = index_dataset(name, root, **options)
    except MerError as exc:
        report.fatal = str(exc)
        return report
    problems = Problems()
    problems.extend(table.attrs.get("problems", []))
    _check_table(table, problems)
    if frames != "none":
        report.frames_decoded = check_frames(table, problems, quick=frames == "quick", progress=progress)
    report.table = table
    report.problems = sorted(problems.items, key=lambda p: _ORDER.get(p["severity"], 3))
    return report


def subject_key(native: str) -> str:
    """Spelling-insensitive subject key: 'sub01', 'sub1', '1', 's01' -> '1'."""
    text = re.sub(r"[^a-z0-9]", "", str(native).lower())
    text = re.sub(r"^(sub|spno|s)(?=\d)", "", text)
    return re.sub(r"(?<!\d)0+(?=\d)", "", text)


def _check_table(table: pd.DataFrame, problems: Problems) -> None:
    """Checks that need the whole table: subjects under two ids, duplicate data, precomputed images."""
    for ds, group in table.groupby("dataset"):
        spellings: dict[str, set[str]] = {}
        for native in group["native_subject"].unique():
            spellings.setdefault(subject_key(native), set()).add(str(native))
        for key, names in spellings.items():
            if len(names) > 1:
                problems.add("warning", "subject", f"{ds}: one subject appears under several ids {sorted(names)}; LOSO would treat them as different people")
    seen: dict[tuple[str, ...], str] = {}
    for row in table.itertuples(index=False):
        key = tuple(row.frames) if row.frames else (row.flow_path, row.apex_image_path)
        if key in seen:
            problems.add("warning", "duplicate", f"{row.sample_id} uses the same data as {seen[key]}", sample_id=row.sample_id)
        else:
            seen[key] = row.sample_id
        for col in ("flow_path", "apex_image_path", "onset_image_path"):
            path = getattr(row, col)
            if path and not str(path).lower().endswith(".npy") and not readable(Path(path)):
                problems.add("error", "corrupt_image", f"{row.sample_id}: {col} {path} cannot be decoded as an image", file=path, sample_id=row.sample_id)
    check_precomputed(table, problems)


SAMPLED_IMAGES = 24  # precomputed images decoded per check (spread over the table)
MIN_FLOW_SIDE = 8  # a flow smaller than this (pixels, either side) holds no motion pattern to learn


def _sampled(table: pd.DataFrame, col: str) -> pd.DataFrame:
    rows = table[table[col].fillna("").astype(str) != ""] if col in table.columns else table.iloc[0:0]
    if len(rows) <= SAMPLED_IMAGES:
        return rows
    return rows.iloc[np.linspace(0, len(rows) - 1, SAMPLED_IMAGES).round().astype(int)]


def check_precomputed(table: pd.DataFrame, problems: Problems) -> None:
    """Sample the precomputed images: flow images that are not 3-channel, a min-max encoding
    declared ``centered``, apex images whose size differs from the rest."""
    minmax, looked, declared_centered = [], 0, 0
    if "flow_path" in table.columns:  # every .npy flow: a bad array would reach training as NaN
        for row in table.itertuples(index=False):
            if str(row.flow_path or "").lower().endswith(".npy"):
                _check_npy_flow(str(row.flow_path), row.sample_id, problems)
    for row in _sampled(table, "flow_path").itertuples(index=False):
        encoding = str(getattr(row, "flow_encoding", "") or "centered")
        if encoding == "npy":
            continue
        img = cv2.imread(str(row.flow_path), cv2.IMREAD_UNCHANGED)
        if img is None:
            continue  # reported as corrupt_image
        if img.ndim != 3 or img.shape[2] not in (3, 4):
            got = "1 channel (grey)" if img.ndim == 2 else f"{img.shape[2]} channels"
            problems.add("error", "flow_image", f"{row.sample_id}: flow image {row.flow_path} has {got}; expected 3 "
                         "channels (u, v, strain as RGB)", file=row.flow_path, sample_id=row.sample_id)
            continue
        _check_flow_size(img.shape[:2], f"flow image {row.flow_path}", row.flow_path, row.sample_id, problems)
        looked += 1
        declared_centered += encoding == "centered"
        if encoding == "centered" and looks_minmax(img):
            minmax.append(row.sample_id)
    if minmax and len(minmax) >= max(1, declared_centered // 2):
        problems.add(
            "warning", "flow_encoding",
            f"{len(minmax)} of {looked} sampled flow images look min-max normalised per image (every channel spans "
            f"about 0..255; e.g. {', '.join(minmax[:3])}) but are declared flow_encoding=centered (128 = no motion); "
            "if your pipeline scaled each image on its own, add a flow_encoding column with 'minmax' to the manifest "
            "or pass --dataset-option flow_encoding=minmax",
        )
    _check_apex_sizes(table, problems)


def _check_flow_size(shape: tuple[int, ...], what: str, path: str, sample_id: str, problems: Problems) -> None:
    height, width = int(shape[0]), int(shape[1])
    if min(height, width) < MIN_FLOW_SIDE:
        problems.add("warning", "flow_size", f"{sample_id}: {what} is {width}x{height} px; resized to the model's "
                     f"input it holds no motion pattern (expected at least {MIN_FLOW_SIDE}x{MIN_FLOW_SIDE}, "
                     "usually a face-sized flow)", file=path, sample_id=sample_id)


def _check_npy_flow(path: str, sample_id: str, problems: Problems) -> None:
    """A raw flow array: readable without pickles, (H, W, 2|3) or (2|3, H, W) numbers, every value finite."""
    def error(text: str) -> None:
        problems.add("error", "flow_array", f"{sample_id}: flow array {path} {text}", file=path, sample_id=sample_id)

    try:
        arr = np.load(path, allow_pickle=False)
    except ValueError as exc:
        if "allow_pickle" in str(exc) or "Object arrays" in str(exc):
            return error("holds Python objects (an object array, pickled); expected an (H, W, 2|3) array of numbers")
        return error(f"cannot be read as a .npy array ({exc})")
    except OSError as exc:
        return error(f"cannot be read ({exc.strerror or exc})")
    if not isinstance(arr, np.ndarray) or not np.issubdtype(arr.dtype, np.number):
        return error(f"holds {getattr(arr, 'dtype', type(arr).__name__)} values; expected an (H, W, 2|3) array of numbers")
    if arr.ndim == 3 and arr.shape[0] in (2, 3) and arr.shape[2] not in (2, 3):
        arr = np.moveaxis(arr, 0, -1)
    if arr.ndim != 3 or arr.shape[2] not in (2, 3):
        return error(f"has shape {arr.shape}; expected (H, W, 2|3) or (2|3, H, W)")
    bad = int(arr.size - np.count_nonzero(np.isfinite(arr)))
    if bad:
        share = f"all {arr.size}" if bad == arr.size else f"{bad} of {arr.size}"
        return error(f"is unusable: {share} values are NaN or infinite; expected finite flow values "
                     "(training refuses it)")
    _check_flow_size(arr.shape[:2], f"flow array {path}", path, sample_id, problems)


def looks_minmax(img: np.ndarray) -> bool:
    """True when each of the first 3 channels reaches (nearly) both 0 and 255, as a per-image min-max does."""
    chans = img.reshape(-1, img.shape[-1])[:, :3].astype(np.int32)
    return bool((chans.min(0) <= 2).all() and (chans.max(0) >= 253).all())


def _check_apex_sizes(table: pd.DataFrame, problems: Problems) -> None:
    sizes: dict[tuple[int, int], list[str]] = {}
    paths: dict[str, str] = {}
    for row in _sampled(table, "apex_image_path").itertuples(index=False):
        img = cv2.imread(str(row.apex_image_path), cv2.IMREAD_UNCHANGED)
        if img is not None:
            sizes.setdefault(tuple(img.shape[:2]), []).append(row.sample_id)
            paths[row.sample_id] = str(row.apex_image_path)
    if len(sizes) < 2:
        return
    common = max(sizes, key=lambda k: len(sizes[k]))
    for shape, ids in sizes.items():
        if shape != common:
            for sid in ids[:5]:
                problems.add("warning", "apex_size", f"{sid}: apex image {paths[sid]} is {shape[1]}x{shape[0]} px while "
                             f"{len(sizes[common])} sampled ones are {common[1]}x{common[0]}; it is resized to the "
                             "model's input like the rest, but check it is the same kind of face crop",
                             file=paths[sid], sample_id=sid)
