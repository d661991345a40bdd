"""The library stands without the repository: an installed copy finds its cache, its estimates' figures, and says
why ``mer bench`` has no page timings."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tomllib
from fnmatch import fnmatch
from pathlib import Path

from mer_core import paths

ROOT = Path(__file__).resolve().parents[1]

PROBE = """
import json
from mer_core import paths
from mer_core.benchmarking.bench_report import find_results, pages_skip_reason
report, label = find_results("cpu-2core")
print(json.dumps({"cache": str(paths.cache_root()), "store": str(paths.store_path()),
                  "results": str(paths.bench_results_dir()), "label": label, "loso_rows": len(report["loso"]),
                  "explain": sorted(p.name for p in paths.bench_results_dir().glob("explain_report*.json")),
                  "pages": pages_skip_reason(2)}))
"""


def _installed_copy(tmp_path: Path) -> dict:
    """Run PROBE against a copy of mer_core in a bare folder (no benchmarks/, no cache/), as after an install."""
    site = tmp_path / "site"
    shutil.copytree(ROOT / "mer_core", site / "mer_core", ignore=shutil.ignore_patterns("__pycache__"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("MER_") and k != "XDG_CACHE_HOME"}
    env.update(PYTHONPATH=str(site), HOME=str(tmp_path / "home"))
    res = subprocess.run([sys.executable, "-c", PROBE], cwd=tmp_path, env=env, capture_output=True, text=True,
                         timeout=120, check=False)
    assert res.returncode == 0, res.stderr[-2000:]
    return json.loads(res.stdout.strip().splitlines()[-1])


def test_an_installed_copy_caches_in_the_user_folder_and_reads_its_shipped_figures(tmp_path):
    out = _installed_copy(tmp_path)
    user = tmp_path / "home" / ".cache" / "mer-bench"
    assert Path(out["cache"]) == user and Path(out["store"]) == user / "runs.sqlite"
    assert Path(out["results"]).is_relative_to(tmp_path / "site" / "mer_core")
    assert out["label"] == "measured (cpu-2core.json)" and out["loso_rows"] > 0
    assert out["explain"] == ["explain_report_cpu-2core.json"]
    assert "source checkout" in out["pages"] and "--no-pages" in out["pages"]


def test_cache_root_prefers_mer_cache_then_an_existing_project_cache_then_the_user_folder(tmp_path, monkeypatch):
    monkeypatch.setattr(paths, "_REPO_ROOT", tmp_path / "checkout")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv("MER_CACHE", str(tmp_path / "chosen"))
    assert paths.cache_root() == tmp_path / "chosen"
    monkeypatch.delenv("MER_CACHE")
    assert paths.cache_root() == tmp_path / "xdg" / "mer-bench"
    (tmp_path / "checkout" / "cache").mkdir(parents=True)  # a checkout that already has runs keeps them
    assert paths.cache_root() == tmp_path / "checkout" / "cache"
    assert paths.store_path() == tmp_path / "checkout" / "cache" / "runs.sqlite"


def test_every_file_the_library_reads_from_its_results_is_declared_package_data():
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    folder = paths.BENCH_DATA
    package = ".".join(folder.parent.relative_to(ROOT).parts)
    shipped = [f.relative_to(folder.parent).as_posix() for f in folder.iterdir() if f.is_file()]
    assert shipped, folder
    assert all(any(fnmatch(f, pat) for pat in declared.get(package, [])) for f in shipped), (shipped, declared)
