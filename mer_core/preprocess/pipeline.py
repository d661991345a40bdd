"""Clips -> model inputs (N, C, H, W), one cached entry per sample and options.

``prepare_inputs`` is the one entry point the trainer, the models' tests, the
explainers and ``mer preprocess`` call. For every row of a sample table it
either loads the sample's cache entry (see :mod:`mer_core.preprocess.cache`)
or runs the per-sample steps (:mod:`mer_core.preprocess.sample`: face crop,
apex spotting, flow + strain, EVM, resize + stack) and stores the result.

Failures never stop the dataset: a sample that cannot be processed gets a
zero input, ``ok = False`` and its error text in the report (failures are
not cached, so fixing the file fixes the sample on the next run).

With ``workers > 1`` cache misses are spread over a process pool started with
``forkserver`` (``spawn`` where unavailable), never ``fork``, so a parent
that already runs torch or OpenCV threads is safe; each worker pins OpenCV
to one thread (the pool is the parallelism). Cache hits are served in the
calling process before the pool starts, so a warm run starts no pool at all.
"""
from __future__ import annotations

import warnings
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import pandas as pd

from mer_core.config import PreprocessConfig
from mer_core.parallel import process_context
from mer_core.errors import ConfigError
from mer_core.preprocess import cache
from mer_core.preprocess.apex import APEX_METHOD, APEX_VERSION
from mer_core.preprocess.channels import FLOW_CHANNELS, check_channels
from mer_core.preprocess.face import FACE_VERSION, MARGIN
from mer_core.preprocess.flow import FLOW_VERSION
from mer_core.preprocess.magnify import EVM_VERSION, LAMBDA_C
from mer_core.preprocess.sample import (
    MAGNIFIED,
    PIPELINE_VERSION,
    as_dict,
    flow_encoding,
    frame_indices,
    sample_views,
    source_files,
    views_from_arrays,
    work_size,
)
from mer_core.preprocess.sample_task import init_worker, run_one

# Below this many cache misses a process pool costs more to start than it saves.
MIN_POOL_SAMPLES = 16

Progress = Callable[[int, int], None]

# Report columns, in order. face: detected | centre-fallback | precropped |
# disabled (face_crop=False) | precomputed; cache: hit | miss (miss also when
# use_cache=False); evm: 'magnified', a fallback note, or '' when unused.
REPORT_COLUMNS = ("sample_id", "ok", "error", "apex", "apex_method", "face", "flow_method", "cache", "evm", "seconds")


@dataclass
class PreparedInputs:
    x: np.ndarray  # float32 (N, C, H, W); rows of failed samples are zeros
    ok: np.ndarray  # bool (N,): False where preprocessing failed
    report: pd.DataFrame  # one row per sample, columns REPORT_COLUMNS


def cache_description(row: dict[str, Any], channels: tuple[str, ...], size: int, options: PreprocessConfig) -> dict[str, Any]:
    """Everything that determines a sample's output; its hash is the cache key.

    Only the transforms the requested channels use are included, so e.g. a
    new EVM alpha does not invalidate flow-only entries.
    """
    frames = tuple(row.get("frames") or ())
    has_frames = len(frames) > 0
    desc: dict[str, Any] = {
        "pipeline": PIPELINE_VERSION,
        "format": cache.CACHE_FORMAT,
        "sample": {
            k: row.get(k)
            for k in ("sample_id", "onset", "apex", "offset", "apex_estimated", "cropped", "flow_path", "apex_image_path", "onset_image_path")
        },
        **({"flow_encoding": flow_encoding(row)} if row.get("flow_path") and flow_encoding(row) != "centered" else {}),
        "n_frames": len(frames),
        "files": cache.fingerprint(source_files(row, channels)),
        "channels": list(channels),
        "size": int(size),
        "work_size": work_size(size),
    }
    transforms: dict[str, Any] = {}
    if has_frames:
        transforms["face"] = {"version": FACE_VERSION, "enabled": bool(options.face_crop), "margin": MARGIN}
        if bool(row.get("apex_estimated", False)):
            transforms["apex"] = {"version": APEX_VERSION, "method": APEX_METHOD}
        if any(c in MAGNIFIED for c in channels):
            transforms["evm"] = {
                "version": EVM_VERSION,
                "alpha": options.evm_alpha,
                "low": options.evm_low,
                "high": options.evm_high,
                "levels": options.evm_levels,
                "pyramid": options.evm_pyramid,
                "filter": options.evm_filter,
                "lambda_c": LAMBDA_C,
            }
    if any(c in FLOW_CHANNELS for c in channels):
        transforms["flow"] = {"version": FLOW_VERSION, "method": options.flow_method}
    desc["transforms"] = transforms
    return desc


VIEW_MAPS = ("onset", "apex", "diff", "flow_u", "flow_v", "strain")  # stored with the clip and its magnification
VIEWS_VERSION = "views-1"


def cached_sample_views(row: Any, options: PreprocessConfig | None = None, *, size: int = 128,
                        arrow_step: int = 8) -> dict[str, Any]:
    """:func:`sample_views`, kept in the preprocessed cache like model inputs (same key rules, same entry format).

    A page that shows a clip again after a restart (the Lesson and the Overview open on the showcase clips)
    reads one entry (the six maps, the clip and its magnification, about 2 MB at 128 px) instead of cropping,
    computing flow and magnifying. Rows without frames are computed each time: there is little to compute.
    """
    options = options or PreprocessConfig()
    r = as_dict(row)
    if len(tuple(r.get("frames") or ())) < 2:
        return sample_views(r, options, size=size, arrow_step=arrow_step)
    onset, _apex, offset, _ = frame_indices(r, MAGNIFIED)  # a bad row fails here as it would in sample_views
    n = offset - onset + 1
    desc = cache_description(r, FLOW_CHANNELS + MAGNIFIED, size, options) | {"views": VIEWS_VERSION}
    path = cache.entry_path(cache.make_key(desc), str(r.get("dataset", "")))
    sid = str(r.get("sample_id", ""))
    hit = cache.load(path, (len(VIEW_MAPS) + 2 * n, int(size), int(size)), sid)
    if hit is not None:
        x, meta = hit
        x = np.array(x)  # a writable copy of the read-only buffer
        arrays = {k: x[i] for i, k in enumerate(VIEW_MAPS)}
        arrays |= {"clip": x[len(VIEW_MAPS):len(VIEW_MAPS) + n], "magnified_clip": x[len(VIEW_MAPS) + n:]}
        return views_from_arrays(arrays, meta["info"], meta["apex_index"], meta["clip_first"], size=size,
                                 arrow_step=arrow_step)
    views = sample_views(r, options, size=size, arrow_step=arrow_step)
    parts = [views[k] for k in VIEW_MAPS]
    if all(a is not None for a in parts) and views["clip"] is not None and len(views["clip"]) == n:
        x = np.concatenate([np.stack(parts), views["clip"], views["magnified_clip"]])
        cache.save(path, x, {"info": views["info"], "apex_index": views["apex_index"],
                             "clip_first": views["clip_first"]}, sample_id=sid)
    return views


def _run_pool(
    todo: list[int],
    records: list[dict[str, Any]],
    channels: tuple[str, ...],
    size: int,
    options: PreprocessConfig,
    entries: list[str | None],
    workers: int,
    finish: Callable[..., None],
) -> list[int]:
    """Run samples in a process pool; returns the indices it could not run.

    A pool that breaks (a worker killed, or a caller script without the
    ``if __name__ == "__main__"`` guard that spawn/forkserver need) is not a
    sample error: the unfinished samples are handed back to run in-process.
    """
    finished: set[int] = set()
    try:
        with ProcessPoolExecutor(max_workers=min(workers, len(todo)), mp_context=process_context(), initializer=init_worker) as pool:
            futures = {pool.submit(run_one, i, records[i], channels, size, options, entries[i]): i for i in todo}
            for fut in as_completed(futures):
                futures.pop(fut)  # drop our reference so the result array can be freed once copied
                result = fut.result()
                finished.add(result[0])
                finish(*result)
                del fut, result
    except (BrokenProcessPool, RuntimeError, OSError) as exc:
        warnings.warn(
            f"preprocessing process pool failed ({type(exc).__name__}: {exc}); "
            f"running the {len(todo) - len(finished)} remaining sample(s) in this process",
            stacklevel=3,
        )
    return [i for i in todo if i not in finished]


def prepare_inputs(
    table: pd.DataFrame,
    channels: tuple[str, ...],
    size: int,
    options: PreprocessConfig | None = None,
    *,
    workers: int = 1,
    progress: Progress | None = None,
    use_cache: bool = True,
) -> PreparedInputs:
    """Model inputs for every row of ``table``: x (N, C, size, size) float32.

    ``channels`` and ``size`` come from the model's config; ``options`` from
    the experiment config. ``progress(done, total)`` is called after each
    sample (cache hits included). ``use_cache=False`` neither reads nor
    writes the cache.
    """
    options = options or PreprocessConfig()
    channels = check_channels(tuple(channels))
    if not 8 <= int(size) <= 512:
        raise ConfigError(f"input size {size}: expected 8..512 pixels")
    size = int(size)
    records = table.to_dict("records")
    n = len(records)
    shape = (len(channels), size, size)
    x = np.zeros((n,) + shape, np.float32)
    ok = np.zeros(n, bool)
    infos: list[dict[str, Any]] = [{} for _ in range(n)]
    entries: list[str | None] = [None] * n
    done = 0
    todo: list[int] = []
    for i, rec in enumerate(records):
        if use_cache:
            path = cache.entry_path(cache.make_key(cache_description(rec, channels, size, options)), str(rec.get("dataset", "")))
            entries[i] = str(path)
            hit = cache.load(path, shape, str(rec.get("sample_id", f"row {i}")))
            if hit is not None:
                x[i], meta = hit
                ok[i] = True
                infos[i] = {**meta, "ok": True, "error": "", "cache": "hit", "seconds": 0.0}
                done += 1
                if progress:
                    progress(done, n)
                continue
        todo.append(i)

    def finish(i: int, arr: np.ndarray | None, info: dict[str, Any]) -> None:
        nonlocal done
        if arr is not None:
            x[i] = arr
            ok[i] = True
        infos[i] = {**info, "cache": "miss"}
        done += 1
        if progress:
            progress(done, n)

    if workers > 1 and len(todo) >= MIN_POOL_SAMPLES:
        todo = _run_pool(todo, records, channels, size, options, entries, workers, finish)
    for i in todo:  # sequential run, or what a broken pool left undone
        finish(*run_one(i, records[i], channels, size, options, entries[i]))

    rows = []
    for i, rec in enumerate(records):
        info = infos[i]
        rows.append(
            {
                "sample_id": rec.get("sample_id", f"row {i}"),
                "ok": bool(ok[i]),
                "error": info.get("error", ""),
                "apex": int(info["apex"]) if info.get("apex") is not None else int(rec.get("apex", -1)),
                "apex_method": info.get("apex_method", rec.get("apex_method", "")),
                "face": info.get("face", ""),
                "flow_method": info.get("flow_method", ""),
                "cache": info.get("cache", "miss"),
                "evm": info.get("evm", ""),
                "seconds": float(info.get("seconds", 0.0)),
            }
        )
    return PreparedInputs(x, ok, pd.DataFrame(rows, columns=list(REPORT_COLUMNS)))
