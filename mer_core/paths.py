"""Where generated things live, and where the shipped benchmark figures are.

Everything the project generates (synthetic datasets, preprocessed arrays,
the run store, run artifacts) lives under one cache root (:func:`cache_root`):

1. ``$MER_CACHE`` when set (``make demo`` and ``make test`` set it to the
   checkout's ``cache/``; tests point it at a temporary folder);
2. else the project-local ``cache/`` beside the package when it exists: the
   default before the user cache folder was, so the datasets and run store of
   an existing checkout keep being read;
3. else the user cache folder, ``$XDG_CACHE_HOME/mer-bench`` or
   ``~/.cache/mer-bench`` (an installed package never writes beside itself).

The committed benchmark figures that the estimates read ship with the package
(``mer_core/benchmarking/data/``, :func:`bench_results_dir`).
"""
from __future__ import annotations

import os
import re
from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent
_REPO_ROOT = _PACKAGE.parent  # a source checkout's root; site-packages after an install
BENCH_DATA = _PACKAGE / "benchmarking" / "data"  # package data: the committed figures the estimates read


def user_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/mer-bench``, or ``~/.cache/mer-bench`` when that is unset."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "mer-bench"


def cache_root() -> Path:
    """``$MER_CACHE``, else an existing project-local ``cache/``, else :func:`user_cache_dir`; created if missing."""
    env = os.environ.get("MER_CACHE")
    legacy = _REPO_ROOT / "cache"
    root = Path(env) if env else legacy if legacy.is_dir() else user_cache_dir()
    root.mkdir(parents=True, exist_ok=True)
    return root


def bench_results_dir() -> Path:
    """The committed benchmark reports the estimates read: the package's ``benchmarking/data`` (``$MER_BENCH_RESULTS`` overrides)."""
    env = os.environ.get("MER_BENCH_RESULTS")
    return Path(env) if env else BENCH_DATA


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
