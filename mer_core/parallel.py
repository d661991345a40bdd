"""Process pools that start fast and never fork a busy process.

Both the preprocessing pool and the fold executor use a ``forkserver``
context (``spawn`` where the platform has none): children fork from a small
server process that imported torch, OpenCV and the worker modules once, so a
worker starts in a fraction of a second instead of re-importing torch, and no
child inherits the threads of the process that asked for it.
"""
from __future__ import annotations

import ctypes
import multiprocessing as mp
import os
import signal
import sys
import threading
import time

import psutil

PRELOAD = ["torch", "cv2", "numpy", "mer_core.preprocess.sample_task", "mer_core.training.executors"]


def process_context() -> mp.context.BaseContext:
    """The multiprocessing context for the project's pools."""
    if "forkserver" in mp.get_all_start_methods():
        ctx = mp.get_context("forkserver")
        ctx.set_forkserver_preload(PRELOAD)  # effective until this process's forkserver has started
        return ctx
    return mp.get_context("spawn")


def die_with_parent(parent_pid: int, poll_s: float = 1.0) -> None:
    """Make this pool worker exit when ``parent_pid`` (the process that asked for the pool) is gone.

    Two lines of defence, because a SIGKILLed job gets no chance to stop its pool:
    Linux's parent-death signal (fires when the forkserver, our direct parent,
    exits after losing its client) and a watchdog thread that polls the job's
    pid, so no worker keeps training and writing epoch rows for a dead job.
    """
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(1, int(signal.SIGKILL), 0, 0, 0)  # PR_SET_PDEATHSIG
        except (OSError, AttributeError):
            pass

    def watch() -> None:
        while True:
            time.sleep(poll_s)
            if not pid_alive(parent_pid):
                os._exit(1)

    threading.Thread(target=watch, name="parent-watchdog", daemon=True).start()


def pid_alive(pid: int | None) -> bool:
    """False once ``pid`` is gone or a zombie (killed, not yet reaped by its own parent)."""
    if not pid:
        return False
    try:
        return psutil.Process(pid).status() not in (psutil.STATUS_ZOMBIE, psutil.STATUS_DEAD)
    except (psutil.NoSuchProcess, ValueError):
        return False
    except psutil.AccessDenied:  # another user's process: it exists
        return True


def _guard_forkserver() -> None:
    """In the forkserver itself (it imports this module through the preload): die with the job too."""
    if any("multiprocessing.forkserver" in arg for arg in getattr(sys, "orig_argv", ())):
        die_with_parent(os.getppid())


_guard_forkserver()
