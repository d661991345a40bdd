"""MEGC2019 composite: CASME II + SAMM + SMIC-HS, 3 classes, 68 subjects.

The rules (see shared/reference/megc2019.md) alone do not reproduce the
official 442 clips, because CASME II coding-sheet releases differ. So this
indexer

1. indexes each part as distributed (native labels), from its own root;
2. applies the composite mapping (negative / positive / surprise);
3. restricts to the official list shipped with the package
   (``data/megc2019_composite_list.csv``, 442 rows), which is the authority
   for both membership and label;

and reports every difference: a listed clip missing on disk (error), a clip
the mapping keeps but the list leaves out (info, with the known reason when
there is one), a listed clip whose mapped label disagrees with the list
(warning; the list's label is used). Subject ids are ``<part>:<native>`` with
normalised spellings ('casme2:sub01', 'samm:006', 'smic:s1').
"""
from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import pandas as pd

from mer_core.datasets import casme2, samm, smic
from mer_core.datasets._common import ProblemList, Problems
from mer_core.datasets.classes import composite_label
from mer_core.datasets.registry import register_dataset
from mer_core.datasets.roots import dataset_root
from mer_core.datasets.schema import make_table
from mer_core.errors import DatasetError, MerError

NAME = "megc2019"
PARTS = ("smic", "casme2", "samm")
OFFICIAL_LIST = Path(__file__).resolve().parent / "data" / "megc2019_composite_list.csv"
NORMALISE = {"casme2": casme2.normalise_subject, "samm": samm.normalise_subject, "smic": smic.normalise_subject}
INDEXERS = {"casme2": casme2.index_casme2, "samm": samm.index_samm, "smic": smic.index_smic}

# Why the official list leaves out clips that the 2019 CASME II sheet maps in.
KNOWN_EXCLUSIONS: dict[tuple[str, str, str], str] = {
    ("casme2", "sub04", "EP12_01f"): "its apex cell is '/' in the coding sheet",
    ("casme2", "sub05", "EP09_05f"): "its onset equals its apex in the coding sheet",
    ("casme2", "sub24", "EP07_01"): "labelled sadness in the coding-sheet release the list was made from",
    ("casme2", "sub24", "EP07_04f"): "labelled sadness in the coding-sheet release the list was made from",
    ("casme2", "sub24", "EP10_03"): "labelled sadness in the coding-sheet release the list was made from",
}


def official_list(path: str | Path | None = None) -> pd.DataFrame:
    """The official clip list: columns dataset, subject, clip, label (normalised subjects)."""
    path = Path(path) if path else OFFICIAL_LIST
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            rows = list(csv.DictReader(fh))
    except OSError as exc:
        raise DatasetError(f"megc2019: cannot read the official list {path} ({exc})") from exc
    if not rows or not {"dataset", "subject", "clip", "label"} <= set(rows[0]):
        raise DatasetError(f"{path}: expected columns dataset, subject, clip, label")
    out = pd.DataFrame(rows)
    out["subject"] = [NORMALISE.get(d, str)(s) for d, s in zip(out["dataset"], out["subject"])]
    return out


# The folder names a composite root may hold each part under (matched in any
# case): the project's own, then the names the datasets are distributed with.
PART_FOLDERS: dict[str, tuple[str, ...]] = {
    "casme2": ("casme2", "CASME2", "CASME_II", "CASME-II", "CASMEII", "CASME II"),
    "samm": ("samm", "SAMM"),
    "smic": ("smic", "SMIC", "SMIC-HS", "SMIC_HS", "SMIC-E", "SMIC_E"),
}


def part_folder(root: Path, part: str) -> Path | None:
    """The folder of ``part`` under a composite root, its name matched in any case."""
    folders = sorted((p for p in root.iterdir() if p.is_dir()), key=lambda p: p.name) if root.is_dir() else []
    by_name: dict[str, Path] = {}
    for folder in folders:
        by_name.setdefault(folder.name.lower(), folder)
    return next((by_name[n.lower()] for n in PART_FOLDERS[part] if n.lower() in by_name), None)


def part_roots(root: Path | None, options: dict[str, Any]) -> dict[str, Path]:
    """Each part's root: option ``<part>_root``, else a part folder under ``root``, else the configured root."""
    roots = {}
    for part in PARTS:
        given = options.get(f"{part}_root")
        found = part_folder(Path(root), part) if root is not None and not given else None
        if given:
            roots[part] = Path(given).expanduser()
        elif found is not None:
            roots[part] = found
        else:
            try:
                roots[part] = dataset_root(part)
            except DatasetError as exc:
                tried = f"no folder named {', '.join(PART_FOLDERS[part])} (any case) under {root}; " if root is not None else ""
                raise DatasetError(f"megc2019 needs the roots of casme2, samm and smic; {tried}{exc} (or pass {part}_root=...)") from None
    return roots


@register_dataset(
    NAME,
    description="MEGC2019 composite (SMIC-HS + CASME II + SAMM, 3 classes, official 442-clip list)",
    default_class_set="composite3",
    class_sets=("composite3",),
    needs_root=False,
)
def index_megc2019(
    root: Path | None,
    *,
    class_set: str = "composite3",
    casme2_root: str | Path | None = None,
    samm_root: str | Path | None = None,
    smic_root: str | Path | None = None,
    official: bool = True,
    list_path: str | Path | None = None,
    verify_images: bool = False,
) -> pd.DataFrame:
    """Index the composite. ``root`` (optional) may hold the parts' folders.

    The folders may carry the project's names (casme2/, samm/, smic/) or the
    distributed ones (CASME2/, CASME_II/, SAMM/, SMIC/, SMIC-HS/...), in any
    case; see :data:`PART_FOLDERS`.

    ``official=False`` applies the mapping only (no restriction to the list),
    to see what the rules alone give.
    """
    if class_set != "composite3":
        raise DatasetError(f"megc2019: class set {class_set!r} is not supported; the composite is 'composite3'")
    roots = part_roots(root, dict(casme2_root=casme2_root, samm_root=samm_root, smic_root=smic_root))
    problems = Problems()
    parts: dict[str, pd.DataFrame] = {}
    for part in PARTS:
        try:
            table = INDEXERS[part](roots[part], class_set="native", verify_images=verify_images)
        except MerError as exc:
            problems.add("error", "part", f"{part}: cannot be indexed: {exc}", file=roots[part])
            continue
        for p in table.attrs.get("problems", []):
            problems.extend([dict(p, message=f"{part}: {p['message']}")])
        parts[part] = table
    if not parts:
        raise DatasetError("megc2019: none of the parts could be indexed: " + "; ".join(p["message"] for p in problems.items))
    rows = []
    for part, table in parts.items():
        for r in table.to_dict("records"):
            r["label"] = composite_label(part, r["emotion"]) or ""
            rows.append(r)
    listed = official_list(list_path) if official else None
    kept = _restrict(rows, listed, problems, set(parts))
    if not kept:
        raise DatasetError("megc2019: no clip of the official list was found on disk")
    table = make_table(kept)
    table.attrs["problems"] = ProblemList(problems.items)
    table.attrs["class_set"] = class_set
    return table


def _restrict(rows: list[dict[str, Any]], listed: pd.DataFrame | None, problems: Problems, indexed: set[str]) -> list[dict[str, Any]]:
    by_key = {(r["dataset"], r["native_subject"], r["clip"]): r for r in rows}
    official = {} if listed is None else {
        (d, s, c): lab for d, s, c, lab in listed[["dataset", "subject", "clip", "label"]].itertuples(index=False)}
    kept = []
    for key, lab in official.items():
        r = by_key.get(key)
        sid = "/".join(key)
        if r is None:
            if key[0] in indexed:
                problems.add("error", "missing_on_disk", f"{sid}: in the official MEGC2019 list but not indexed (missing on disk, or its row was skipped)", sample_id=sid)
            continue
        if r["label"] != lab:
            problems.add(
                "warning", "label",
                f"{sid}: native label {r['emotion']!r} maps to {r['label'] or 'nothing'!r} but the official list says {lab!r}; the list's label is used",
                sample_id=sid,
            )
        kept.append(dict(r, label=lab))
    for key, r in by_key.items():
        if key in official:
            continue
        if listed is None and r["label"]:  # the mapping alone decides
            kept.append(r)
            continue
        if not r["label"]:
            reason = f"{r['dataset']} label {r['emotion']!r} is not in the composite mapping"
        else:
            known = KNOWN_EXCLUSIONS.get(key)
            reason = f"mapped to {r['label']!r} but not in the official MEGC2019 list" + (f" ({known})" if known else "")
        problems.add("info", "dropped", f"{r['sample_id']}: {reason}", sample_id=r["sample_id"])
    return kept
