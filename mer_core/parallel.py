"""Process pools that start fast and never fork a busy process.

Both the preprocessing pool and the fold executor use a ``forkserver``
context (``spawn`` where the platform has none): children fork from a small
server process that imported torch, OpenCV and the worker modules once, so a
worker starts in a fraction of a second instead of re-importing torch, and no
child inherits the threads of the process that asked for it.
"""
from __future__ import annotations

import multiprocessing as mp

PRELOAD = ["torch", "cv2", "numpy", "mer_core.preprocess.worker", "mer_core.training.executors"]


def process_context() -> mp.context.BaseContext:
    """The multiprocessing context for the project's pools."""
    if "forkserver" in mp.get_all_start_methods():
        ctx = mp.get_context("forkserver")
        ctx.set_forkserver_preload(PRELOAD)  # effective until this process's forkserver has started
        return ctx
    return mp.get_context("spawn")
