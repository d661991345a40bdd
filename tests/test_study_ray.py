"""A tiny study on a local two-node Ray cluster: a head and a second node started on this machine.

Both nodes run ``ray start --block`` as child processes of this test and are
stopped by their own pids (SIGTERM, then SIGKILL of their process groups) in a
``finally``; ``ray stop`` is never called, so other Ray instances on the
machine are left alone. Each cell of the study is a queued job, run here by
the worker's own entry point with the Ray executor pointed at the head.
"""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

ray = pytest.importorskip("ray")

from fixtures_clips import make_clip_manifest  # noqa: E402
from mer_core.jobs import study as studies  # noqa: E402
from mer_core.jobs.worker import run_job  # noqa: E402
from mer_core.store.db import RunStore  # noqa: E402

RAY = str(Path(sys.executable).with_name("ray"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start(args: list[str], log: Path) -> subprocess.Popen:
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "disabled"}  # a local test cluster
    with open(log, "wb") as out:
        return subprocess.Popen([RAY, "start", "--block", "--num-cpus=1", "--disable-usage-stats", *args], env=env,
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)  # its own session: the node's raylet, GCS and workers
        try:
            proc.wait(timeout=8)  # a node drains for up to 30 s on SIGTERM: no need to wait for that
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


def _wait_for_nodes(address: str, n: int, procs: list[subprocess.Popen], logs: list[Path]) -> None:
    deadline = time.time() + 40
    while time.time() < deadline:
        for p, log in zip(procs, logs):
            if p.poll() is not None:
                pytest.fail(f"ray start exited {p.returncode}: {log.read_text()[-2000:]}")
        try:
            if not ray.is_initialized():
                ray.init(address=address, include_dashboard=False, log_to_driver=False)
            if sum(1 for node in ray.nodes() if node["Alive"]) >= n:
                return
        except (ConnectionError, RuntimeError):
            pass
        time.sleep(0.5)
    pytest.fail(f"the Ray cluster at {address} did not show {n} live nodes in 40 s")


@pytest.mark.timeout(150)
def test_a_tiny_study_runs_on_a_two_node_ray_cluster(tmp_path) -> None:
    manifest = make_clip_manifest(tmp_path / "clips", subjects=2, clips_per_subject=3, size=32, frames=5)
    port = _free_port()
    address = f"127.0.0.1:{port}"
    temp = tempfile.mkdtemp(prefix="r17", dir="/tmp")  # short: Ray's socket paths must fit in 107 characters
    logs = [tmp_path / "head.log", tmp_path / "node.log"]
    procs = [_start(["--head", f"--port={port}", "--node-ip-address=127.0.0.1", "--include-dashboard=false",
                     f"--temp-dir={temp}"], logs[0])]
    try:
        time.sleep(2)
        procs.append(_start([f"--address={address}", "--node-ip-address=127.0.0.1"], logs[1]))
        _wait_for_nodes(address, 2, procs, logs)
        assert ray.cluster_resources().get("CPU") == 2.0
        spec = studies.parse_study({
            "name": "ray-study", "dataset": "manifest", "seeds": [0],
            "options": {"dataset_options": {"manifest": str(manifest)}, "class_set": "native", "epochs": 1,
                        "batch_size": 8, "executor": "ray", "workers": 2, "ray_address": address},
            "arms": [{"name": "base", "model": "baseline"},
                     {"name": "base lr", "model": "baseline", "options": {"lr": 3e-4}}]})
        with RunStore() as store:
            cells = studies.submit_study(spec, store=store, start=False)
            for job_id in cells["job_id"]:
                assert run_job(job_id, store=store, kick_next=False) == 0
            report = studies.study_report(store, "ray-study", n_boot=50)
            done = store.study_cells("ray-study")
            assert all(store.completed_folds(r) == {0, 1} for r in done["run_id"])
        assert list(done["run_status"]) == ["done", "done"] and list(done["job_status"]) == ["done", "done"]
        assert report.flags == [] and list(report.table["complete"]) == [1, 1]
    finally:
        if ray.is_initialized():
            ray.shutdown()
        for p in reversed(procs):
            _stop(p)
        shutil.rmtree(temp, ignore_errors=True)
