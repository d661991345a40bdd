"""CPU seconds and peak memory of a whole process tree, read from ``/proc``.

``/usr/bin/time`` and ``getrusage(RUSAGE_CHILDREN)`` only see children that
were waited for by the measured process; pool workers started by a
forkserver are the forkserver's children, not ours, and a long-lived
forkserver is never reaped while we measure. :class:`TreeMonitor` samples
``/proc`` from a background thread instead: every descendant's own CPU time
(utime + stime, keyed by pid and start time so a reused pid is a new
process) at its last sighting, plus this process's own CPU time, and the
largest sum of resident memory over the tree.

Limits, on the safe side for a benchmark: a process that lives shorter than
the sampling interval is missed and the CPU a process burns after its last
sighting is lost (both small at the default 0.1 s); shared pages count once
per process, so memory is an over-estimate. Linux only; elsewhere the figures
are this process's own (``available`` is False).
"""
from __future__ import annotations

import os
import threading
import time
from typing import Any

_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def _stat(pid: int) -> tuple[int, float, int] | None:
    """(parent pid, own CPU seconds, start time in ticks) of a process, None when gone."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
        return int(fields[1]), (int(fields[11]) + int(fields[12])) / _TICK, int(fields[19])
    except (OSError, IndexError, ValueError):
        return None


def _rss_bytes(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/statm") as fh:
            return int(fh.read().split()[1]) * _PAGE
    except (OSError, IndexError, ValueError):
        return 0


def descendants(root: int) -> dict[tuple[int, int], float]:
    """{(pid, start ticks): own CPU seconds} of every live descendant of ``root`` (not root itself)."""
    parent: dict[int, int] = {}
    info: dict[int, tuple[float, int]] = {}
    try:
        entries = os.listdir("/proc")
    except OSError:
        return {}
    for entry in entries:
        if entry.isdigit():
            st = _stat(int(entry))
            if st is not None:
                parent[int(entry)] = st[0]
                info[int(entry)] = (st[1], st[2])
    children: dict[int, list[int]] = {}
    for pid, ppid in parent.items():
        children.setdefault(ppid, []).append(pid)
    out: dict[tuple[int, int], float] = {}
    todo = list(children.get(root, []))
    while todo:
        pid = todo.pop()
        todo += children.get(pid, [])
        cpu, start = info[pid]
        out[(pid, start)] = cpu
    return out


def tree_rss_mb(root: int) -> float:
    """Resident memory (MB) of ``root`` and all its live descendants."""
    return (_rss_bytes(root) + sum(_rss_bytes(pid) for pid, _ in descendants(root))) / 2**20


def _own_cpu() -> float:
    t = os.times()
    return t.user + t.system


class TreeMonitor:
    """``with TreeMonitor() as m: work()`` then ``m.cpu_s``, ``m.peak_rss_mb``, ``m.wall_s``.

    ``root``: another process to measure (with its descendants) instead of this one, e.g. a child doing
    the work while this process waits; its CPU time is read from /proc (at the last sighting).
    """

    def __init__(self, interval: float = 0.1, root: int | None = None) -> None:
        self.interval = interval
        self.root = root or os.getpid()
        self.available = os.path.isdir(f"/proc/{self.root}")
        self.cpu_s = 0.0
        self.peak_rss_mb = 0.0
        self.wall_s = 0.0
        self._seen: dict[tuple[int, int], float] = {}
        self._before: dict[tuple[int, int], float] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _root_cpu(self) -> float:
        """CPU seconds of the root: this process's own, or another root's as /proc last showed it."""
        if self.root == os.getpid():
            return _own_cpu()
        st = _stat(self.root)
        if st is not None:
            self._root_seen = st[1]
        return self._root_seen

    def _sample(self) -> None:
        if not self.available:
            return
        self._root_cpu()
        live = descendants(self.root)
        self._seen.update(live)
        rss = _rss_bytes(self.root) + sum(_rss_bytes(pid) for pid, _ in live)
        self.peak_rss_mb = max(self.peak_rss_mb, rss / 2**20)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self._sample()

    def __enter__(self) -> "TreeMonitor":
        self._root_seen = 0.0
        self._before = descendants(self.root) if self.available else {}
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
        if not self.available:
            import resource

            self.peak_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
