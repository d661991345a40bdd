"""CPU seconds and peak memory of a whole process tree (psutil).

``/usr/bin/time`` and ``getrusage(RUSAGE_CHILDREN)`` only see children that
were waited for by the measured process; pool workers started by a
forkserver are the forkserver's children, not ours, and a long-lived
forkserver is never reaped while we measure. :class:`TreeMonitor` samples
the tree from a background thread instead: every descendant's own CPU time
(user + system, keyed by pid and creation time so a reused pid is a new
process) at its last sighting, plus the root's own CPU time, and the
largest sum of resident memory over the tree.

Limits, on the safe side for a benchmark: a process that lives shorter than
the sampling interval is missed and the CPU a process burns after its last
sighting is lost (both small at the default 0.1 s); shared pages count once
per process, so memory is an over-estimate.
"""
from __future__ import annotations

import os
import threading
import time
from typing import Any

import psutil


def _cpu_rss(proc: psutil.Process) -> tuple[float, int] | None:
    """(own CPU seconds, resident bytes) of a process, None when it is gone or not ours to read."""
    try:
        with proc.oneshot():
            t = proc.cpu_times()
            return t.user + t.system, proc.memory_info().rss
    except psutil.Error:
        return None


def _tree(root: int) -> tuple[dict[tuple[int, float], float], int, float | None]:
    """({(pid, creation time): own CPU seconds} of every live descendant, resident bytes of root and
    descendants, the root's own CPU seconds or None when the root is gone)."""
    try:
        proc = psutil.Process(root)
        kids = proc.children(recursive=True)
    except psutil.Error:
        return {}, 0, None
    own = _cpu_rss(proc)
    rss = own[1] if own else 0
    out: dict[tuple[int, float], float] = {}
    for kid in kids:
        got = _cpu_rss(kid)
        if got is not None:
            try:
                out[(kid.pid, kid.create_time())] = got[0]
            except psutil.Error:
                continue
            rss += got[1]
    return out, rss, own[0] if own else None


def tree_rss_mb(root: int) -> float:
    """Resident memory (MB) of ``root`` and all its live descendants."""
    return _tree(root)[1] / 2**20


class TreeMonitor:
    """``with TreeMonitor() as m: work()`` then ``m.cpu_s``, ``m.peak_rss_mb``, ``m.wall_s``.

    ``root``: another process to measure (with its descendants) instead of this one, e.g. a child doing
    the work while this process waits; its CPU time is the one last sighted.
    """

    def __init__(self, interval: float = 0.1, root: int | None = None) -> None:
        self.interval = interval
        self.root = root or os.getpid()
        self.cpu_s = 0.0
        self.peak_rss_mb = 0.0
        self.wall_s = 0.0
        self._seen: dict[tuple[int, float], float] = {}
        self._before: dict[tuple[int, float], float] = {}
        self._root_seen = 0.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _sample(self) -> None:
        live, rss, root_cpu = _tree(self.root)
        if root_cpu is not None:
            self._root_seen = root_cpu
        self._seen.update(live)
        self.peak_rss_mb = max(self.peak_rss_mb, rss / 2**20)

    def _root_cpu(self) -> float:
        """CPU seconds of the root: this process's own, or another root's as last sighted."""
        if self.root == os.getpid():
            t = os.times()
            return t.user + t.system
        return self._root_seen

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self._sample()

    def __enter__(self) -> "TreeMonitor":
        self._before, _, root_cpu = _tree(self.root)
        self._root_seen = root_cpu or 0.0
        self._own0 = self._root_cpu()
        self._t0 = time.perf_counter()
        self._sample()
        self._thread = threading.Thread(target=self._loop, name="tree-monitor", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._sample()
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self.wall_s = time.perf_counter() - self._t0
        kids = sum(cpu - self._before.get(key, 0.0) for key, cpu in self._seen.items())
        self.cpu_s = self._root_cpu() - self._own0 + max(kids, 0.0)
