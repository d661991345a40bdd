"""The run store on a read-only mount or a full disk: inspection works read-only, and every message
names the store file and the real cause (never "move the file aside" for a healthy store).

Real mounts in a private mount namespace (``unshare -m``): skipped where that is not allowed."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _namespaces() -> bool:
    if not (shutil.which("unshare") and shutil.which("mount")):
        return False
    probe = subprocess.run(["unshare", "-m", "sh", "-c", "mount -t tmpfs -o size=64k tmpfs /mnt"],
                           capture_output=True)
    return probe.returncode == 0


pytestmark = pytest.mark.skipif(not _namespaces(), reason="needs unshare -m and mount (root in a container)")


def _sh(script: str, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run(["unshare", "-m", "sh", "-c", script], env=env, cwd=REPO, capture_output=True, text=True,
                          timeout=300)


def test_a_store_on_a_read_only_mount_can_be_inspected_not_written(tmp_path, isolated_cache):
    from test_results_pages import store_fixture_run

    rid = store_fixture_run("ro-run", subjects=3, per_subject=2)
    ro = tmp_path / "ro"
    ro.mkdir()
    env = {**os.environ, "MER_CACHE": str(ro)}
    py = f"{sys.executable} -m mer_core.cli"
    out = _sh(f"mount --bind -o ro {isolated_cache} {ro} && {py} runs --json && {py} show {rid} "
              f"&& {py} export {rid} --format csv --out {tmp_path / 'out'}", env)
    assert out.returncode == 0, out.stderr
    assert rid in out.stdout and (tmp_path / "out" / f"{rid}_predictions.csv").is_file()
    write = (f"{sys.executable} -c \"from mer_core.store.db import RunStore; "
             f"RunStore().set_run_status('{rid}', 'cancelled')\"")
    out = _sh(f"mount --bind -o ro {isolated_cache} {ro} && {write}", env)
    assert out.returncode != 0
    assert "read-only" in out.stderr and str(ro / "runs.sqlite") in out.stderr
    assert "move the file aside" not in out.stderr


def test_a_full_disk_is_named_with_the_store_file(tmp_path):
    full = tmp_path / "full"
    full.mkdir()
    env = {**os.environ, "MER_CACHE": str(full)}
    env.pop("MER_STORE", None)
    fill = f"dd if=/dev/zero of={full}/filler bs=4k 2>/dev/null; true"
    # a new store where nothing is left: refused at once, the cause named
    out = _sh(f"mount -t tmpfs -o size=256k tmpfs {full} && {fill} && {sys.executable} -m mer_core.cli runs", env)
    assert out.returncode != 0
    assert "disk is full" in out.stderr and str(full / "runs.sqlite") in out.stderr, out.stderr
    assert "move the file aside" not in out.stderr
    # a healthy store whose disk fills up while it is written
    script = (f"mount -t tmpfs -o size=512k tmpfs {full} && "
              f"{sys.executable} -c \"from mer_core.store.db import RunStore; RunStore().close()\" && {fill} && "
              f"{sys.executable} -c \"from mer_core.config import ExperimentConfig; from mer_core.store.db import RunStore; "
              "s = RunStore(); [s.create_run(ExperimentConfig(), classes=['a'], n_folds=1, n_samples=1, "
              "notes=['x' * 50000]) for _ in range(20)]\"")
    out = _sh(script, env)
    assert out.returncode != 0
    assert "disk is full" in out.stderr and str(full / "runs.sqlite") in out.stderr, out.stderr
    assert "Traceback" not in out.stderr or "MerError" in out.stderr


def test_no_space_left_names_the_file_being_written(tmp_path):
    full = tmp_path / "full"
    full.mkdir()
    code = ("from pathlib import Path; import numpy as np; from mer_core.store.folders import atomic_write_bytes, save_array\n"
            "for write in (lambda: atomic_write_bytes(Path('" + str(full) + "/record.json'), b'x' * 300000),\n"
            "              lambda: save_array(Path('" + str(full) + "/inputs.npy'), np.zeros(100000))):\n"
            "    try:\n        write()\n    except Exception as exc:\n        print(type(exc).__mro__[1].__name__, exc)\n")
    script = f"mount -t tmpfs -o size=128k tmpfs {full} && {sys.executable} -c \"{code}\""
    out = _sh(script, dict(os.environ))
    lines = out.stdout.strip().splitlines()
    assert len(lines) == 2, out.stdout + out.stderr
    for line, name in zip(lines, ("record.json", "inputs.npy")):
        assert line.startswith("MerError") and str(full / name) in line and "no space left" in line.lower(), line
    assert not list(full.glob(".*.tmp"))  # no half-written temporary file left behind
