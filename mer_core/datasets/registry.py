"""Dataset registry: one indexer per dataset, looked up by name.

An indexer is a function ``(root: Path | None, **options) -> DataFrame``
returning a sample table (see :mod:`mer_core.datasets.schema`). Roots of
licensed datasets are configured in one place (:mod:`mer_core.datasets.roots`);
the synthetic datasets live under the cache and need no root.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import pandas as pd

from mer_core.datasets.roots import dataset_root
from mer_core.errors import DatasetError, UnknownNameError

Indexer = Callable[..., pd.DataFrame]


@dataclass(frozen=True)
class DatasetInfo:
    name: str
    indexer: Indexer
    description: str
    default_class_set: str = "composite3"
    needs_root: bool = True
    class_sets: tuple[str, ...] = ("composite3",)


_DATASETS: dict[str, DatasetInfo] = {}


def register_dataset(
    name: str,
    *,
    description: str,
    default_class_set: str = "composite3",
    class_sets: tuple[str, ...] = ("composite3",),
    needs_root: bool = True,
) -> Callable[[Indexer], Indexer]:
    """Decorator registering an indexer under ``name``."""

    def deco(fn: Indexer) -> Indexer:
        _DATASETS[name] = DatasetInfo(
            name=name,
            indexer=fn,
            description=description,
            default_class_set=default_class_set,
            class_sets=tuple(class_sets),
            needs_root=needs_root,
        )
        return fn

    return deco


def list_datasets() -> list[str]:
    return sorted(_DATASETS)


def dataset_info(name: str) -> DatasetInfo:
    if name not in _DATASETS:
        raise UnknownNameError(f"unknown dataset {name!r}; valid datasets: {', '.join(sorted(_DATASETS))}")
    return _DATASETS[name]


def index_dataset(name: str, root: str | Path | None = None, **options: Any) -> pd.DataFrame:
    """Run a dataset's indexer and return its (validated) sample table."""
    info = dataset_info(name)
    if root is None and info.needs_root:
        try:
            root = dataset_root(name)
        except DatasetError:
            if not options:  # options (e.g. manifest=PATH) may locate the data themselves
                raise
    return info.indexer(Path(root) if root is not None else None, **options)
