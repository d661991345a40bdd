"""Shared test set-up: every test gets its own cache root and run store."""
from __future__ import annotations

import os

import pytest
import torch

torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path_factory, monkeypatch):
    """Point MER_CACHE (and the store) at a fresh folder for each test."""
    root = tmp_path_factory.mktemp("cache")
    monkeypatch.setenv("MER_CACHE", str(root))
    monkeypatch.delenv("MER_STORE", raising=False)
    monkeypatch.delenv("MER_DATASETS_TOML", raising=False)
    for key in list(os.environ):
        if key.startswith("MER_ROOT_"):
            monkeypatch.delenv(key)
    return root


@pytest.fixture(autouse=True)
def keep_main_module():
    """AppTest runs page scripts as ``__main__``; restore the real one afterwards.

    Otherwise a later test that starts a spawn/forkserver process pool would make
    the children re-run the AppTest script as their main module.
    """
    import sys

    main = sys.modules.get("__main__")
    yield
    if main is not None:
        sys.modules["__main__"] = main
