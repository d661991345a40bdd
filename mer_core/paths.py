"""Where generated things live.

Everything the project generates (synthetic datasets, preprocessed arrays,
the run store, run artifacts) lives under one cache root, ``cache/`` at the
repository root by default. ``MER_CACHE`` overrides it (tests point it at a
temporary folder so they never touch the user's runs).
"""
from __future__ import annotations

import os
import re
from pathlib import Path

_REPO_ROOT = Path(__file__).resolve().parent.parent


def cache_root() -> Path:
    """The cache root: ``$MER_CACHE`` or ``<repo>/cache``; created if missing."""
    root = Path(os.environ.get("MER_CACHE") or _REPO_ROOT / "cache")
    root.mkdir(parents=True, exist_ok=True)
    return root


def bench_results_dir() -> Path:
    """``benchmarks/results`` of the repository, the committed benchmark figures (``$MER_BENCH_RESULTS`` overrides)."""
    env = os.environ.get("MER_BENCH_RESULTS")
    return Path(env) if env else _REPO_ROOT / "benchmarks" / "results"


def datasets_dir() -> Path:
    return _sub("datasets")


def preprocessed_dir() -> Path:
    return _sub("preprocessed")


def runs_dir() -> Path:
    return _sub("runs")


def checkpoints_dir() -> Path:
    return _sub("checkpoints")


def store_path() -> Path:
    """The SQLite run store (``$MER_STORE`` overrides)."""
    env = os.environ.get("MER_STORE")
    return Path(env) if env else cache_root() / "runs.sqlite"


def repo_root() -> Path:
    return _REPO_ROOT


def natural_key(name: str) -> list[int | str]:
    """Sort key for file names in natural order: img2 before img10, case ignored."""
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", name)]


def _sub(name: str) -> Path:
    path = cache_root() / name
    path.mkdir(parents=True, exist_ok=True)
    return path
