"""Housekeeping of the cache folder: what is cached already, and ``mer cache prune``.

:func:`count_cached` tells the job estimate how many clips of a table are
already preprocessed (cached clips cost a read, the others a full pass).

:func:`prune` removes

* preprocessed entries (``<cache>/preprocessed/``) last used more than
  ``older_than_days`` ago, and then, oldest first, until what is left is at
  most ``larger_than_gb``; "last used" is the later of the file's access and
  modification times;
* uploaded files (``<cache>/uploads/``) older than ``older_than_days``.

It never touches the run store (``runs.sqlite``), run folders (``runs/``),
datasets, checkpoints or anything else under the cache root: only files
inside those two folders are candidates. With ``dry_run`` nothing is removed
and the report lists what would go.
"""
from __future__ import annotations

import contextlib
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from mer_core.config import PreprocessConfig
from mer_core.errors import ConfigError
from mer_core.paths import cache_root
from mer_core.preprocess import cache
from mer_core.preprocess.pipeline import cache_description

DAY = 86400.0


def count_cached(table: pd.DataFrame, channels: tuple[str, ...], size: int, options: PreprocessConfig) -> int:
    """How many rows of ``table`` have a cache entry for these channels, size and options (existence only)."""
    n = 0
    for rec in table.to_dict("records"):
        key = cache.make_key(cache_description(rec, tuple(channels), int(size), options))
        n += cache.entry_path(key, str(rec.get("dataset", ""))).is_file()
    return n


@dataclass
class Removal:
    path: Path
    bytes: int
    last_used: float  # epoch seconds
    reason: str  # 'older than N days' | 'over the size limit' | 'upload older than N days'


@dataclass
class PruneReport:
    removed: list[Removal] = field(default_factory=list)
    kept_bytes: int = 0  # preprocessed entries left
    dry_run: bool = False

    @property
    def freed_bytes(self) -> int:
        return sum(r.bytes for r in self.removed)

    def rows(self) -> list[dict[str, Any]]:
        return [{"path": str(r.path), "bytes": r.bytes, "last_used": r.last_used, "reason": r.reason}
                for r in self.removed]


def _files(folder: Path) -> list[tuple[Path, int, float]]:
    """(path, size, last used) of every regular file under ``folder`` (symlinks are not followed)."""
    out = []
    if not folder.is_dir():
        return out
    for dirpath, _dirs, names in os.walk(folder, followlinks=False):
        for name in names:
            path = Path(dirpath) / name
            try:
                st = path.lstat()
            except OSError:
                continue
            if path.is_symlink() or not path.is_file():
                continue
            out.append((path, st.st_size, max(st.st_atime, st.st_mtime)))
    return out


def _remove_empty_dirs(folder: Path) -> None:
    for dirpath, dirs, names in os.walk(folder, topdown=False):
        if Path(dirpath) != folder and not dirs and not names:
            with contextlib.suppress(OSError):
                os.rmdir(dirpath)


def prune(older_than_days: float | None = None, larger_than_gb: float | None = None, *, dry_run: bool = False,
          root: Path | None = None, now: float | None = None) -> PruneReport:
    """Remove old or excess preprocessed entries and old uploads; see the module docstring."""
    if older_than_days is None and larger_than_gb is None:
        raise ConfigError("cache prune: give older_than_days (--older-than DAYS) and/or larger_than_gb (--larger-than GB)")
    for name, value in (("older_than_days", older_than_days), ("larger_than_gb", larger_than_gb)):
        if value is not None and value < 0:
            raise ConfigError(f"cache prune: {name}={value}: expected >= 0")
    root = Path(root) if root is not None else cache_root()
    now = time.time() if now is None else now
    report = PruneReport(dry_run=dry_run)
    entries = sorted(_files(root / "preprocessed"), key=lambda f: f[2])  # oldest first
    keep = []
    for path, size, used in entries:
        if older_than_days is not None and now - used > older_than_days * DAY:
            report.removed.append(Removal(path, size, used, f"older than {older_than_days:g} days"))
        else:
            keep.append((path, size, used))
    total = sum(size for _, size, _ in keep)
    if larger_than_gb is not None:
        limit = larger_than_gb * 2**30
        while keep and total > limit:
            path, size, used = keep.pop(0)
            total -= size
            report.removed.append(Removal(path, size, used, f"over the {larger_than_gb:g} GB limit"))
    report.kept_bytes = total
    if older_than_days is not None:
        for path, size, used in sorted(_files(root / "uploads"), key=lambda f: f[2]):
            if now - used > older_than_days * DAY:
                report.removed.append(Removal(path, size, used, f"upload older than {older_than_days:g} days"))
    if not dry_run:
        for r in report.removed:
            r.path.unlink(missing_ok=True)
        for sub in ("preprocessed", "uploads"):
            _remove_empty_dirs(root / sub)
    return report
