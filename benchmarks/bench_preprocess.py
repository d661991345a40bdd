"""Preprocessing benchmark: flow cost, clips/s, cache speed-up, peak memory.

    .venv/bin/python benchmarks/bench_preprocess.py            # full (a few minutes on 2 cores)
    .venv/bin/python benchmarks/bench_preprocess.py --quick    # reduced sizes

Measures:

1. per-sample cost of each flow method (dis, tvl1, farneback) at 128 and 224
   px: the flow call alone and the whole per-sample pipeline (read, crop,
   flow, strain, resize);
2. clips/s over the default synthetic set (``index_dataset('synthetic')``;
   a generated stand-in of textured clips when that set is unavailable) with
   DIS and with TV-L1, and the speed-up of a second run served by the cache
   (target >= 20x);
3. peak memory preprocessing a 442-sample dataset at 224 px (the MEGC2019
   composite's size; rows of the set above repeated under new ids), in a
   fresh child process: ru_maxrss of the parent and of the largest worker
   (target < 2 GB in total).

Results go to ``bench_out/preprocess.json`` (git-ignored) and are printed.
The preprocessing cache of the benchmark lives in a temporary folder, so the
user's cache is neither used (no false hits) nor filled.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import threading
import time
import tracemalloc
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from mer_core.config import PreprocessConfig  # noqa: E402
from mer_core.benchmarking.proctree import tree_rss_mb  # noqa: E402  (the process tree walk, shared with mer bench)
from mer_core.datasets import index_dataset  # noqa: E402
from mer_core.datasets.schema import make_table  # noqa: E402
from mer_core.preprocess import flow  # noqa: E402
from mer_core.preprocess.pipeline import prepare_inputs  # noqa: E402
from mer_core.preprocess.sample import process_sample  # noqa: E402

FLOW3 = ("flow_u", "flow_v", "strain")
cv2.setNumThreads(1)  # per-core figures; the pool is the parallelism (as in the workers)


# --- data ----------------------------------------------------------------------------


def fixture_table(folder: Path, clips: int, frames: int = 30, size: int = 128) -> pd.DataFrame:
    """Stand-in dataset: textured 'faces' whose content moves onset -> apex -> offset."""
    rng = np.random.default_rng(0)
    rows = []
    for c in range(clips):
        tex = cv2.GaussianBlur(rng.random((size + 24, size + 24)).astype(np.float32), (0, 0), 2.0)
        tex = cv2.normalize(tex, None, 0, 255, cv2.NORM_MINMAX).astype(np.uint8)
        d = folder / f"clip{c:03d}"
        d.mkdir(parents=True, exist_ok=True)
        apex = frames // 2
        paths = []
        for t in range(frames):
            s = 1.5 * max(0.0, 1 - abs(t - apex) / apex)
            m = np.float32([[1, 0, s], [0, 1, 0.3 * s]])
            img = cv2.warpAffine(tex, m, tex.shape[::-1], flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT)[12:-12, 12:-12]
            p = d / f"img{t:03d}.png"
            cv2.imwrite(str(p), img)
            paths.append(str(p))
        rows.append(dict(dataset="bench", subject=f"s{c % 16:02d}", clip=f"c{c:03d}", label=("negative", "positive", "surprise")[c % 3],
                         frames=paths, onset=0, apex=apex, offset=frames - 1, cropped=True, fps=100.0))
    return make_table(rows)


def load_dataset(tmp: Path, quick: bool) -> tuple[pd.DataFrame, str]:
    try:
        table = index_dataset("synthetic")
        table = table[table.frames.map(len) >= 2].reset_index(drop=True)
        if len(table):
            return (table.iloc[:40] if quick else table), "synthetic (default set)"
    except Exception as exc:  # the set is optional for this benchmark
        print(f"synthetic set unavailable ({type(exc).__name__}: {exc}); using generated stand-in clips")
    n = 40 if quick else 160
    return fixture_table(tmp / "clips", n), f"generated stand-in ({n} textured clips, 128 px, 30 frames)"


def repeat_to(table: pd.DataFrame, n: int) -> pd.DataFrame:
    """``n`` rows cycling through ``table``, with unique sample ids."""
    idx = [i % len(table) for i in range(n)]
    out = table.iloc[idx].reset_index(drop=True).copy()
    out["sample_id"] = [f"{sid}#{k}" for k, sid in enumerate(out.sample_id)]
    return out


# --- measurements ------------------------------------------------------------------------


def _timed(fn: Any, k: int) -> tuple[float, float]:
    """Median wall and CPU milliseconds of ``k`` calls (CPU time is immune to other load)."""
    wall, cpu = [], []
    for _ in range(k):
        w0, c0 = time.perf_counter(), time.process_time()
        fn()
        wall.append(time.perf_counter() - w0)
        cpu.append(time.process_time() - c0)
    return round(1000 * float(np.median(wall)), 2), round(1000 * float(np.median(cpu)), 2)


def flow_costs(table: pd.DataFrame, reps: dict[str, int]) -> dict[str, Any]:
    row = table.iloc[0]
    onset = cv2.imread(row.frames[row.onset], cv2.IMREAD_GRAYSCALE)
    apex = cv2.imread(row.frames[row.apex], cv2.IMREAD_GRAYSCALE)
    out: dict[str, Any] = {}
    for size in (128, 224):
        a = cv2.resize(onset, (size, size))
        b = cv2.resize(apex, (size, size))
        for method in flow.FLOW_METHODS:
            k = reps[method]
            flow.compute_flow(a, b, method)  # warm-up
            opts = PreprocessConfig(flow_method=method)
            flow_wall, flow_cpu = _timed(lambda: flow.compute_flow(a, b, method), k)
            sample_wall, sample_cpu = _timed(lambda: process_sample(row, FLOW3, size, opts), k)
            out[f"{method}@{size}"] = {"flow_cpu_ms": flow_cpu, "flow_wall_ms": flow_wall,
                                       "sample_cpu_ms": sample_cpu, "sample_wall_ms": sample_wall, "reps": k}
            print(f"  {method:9s} {size:3d} px: flow {flow_cpu:8.2f} ms CPU ({flow_wall:8.2f} wall), "
                  f"whole sample {sample_cpu:8.2f} ms CPU ({sample_wall:8.2f} wall)")
    return out


def dataset_run(table: pd.DataFrame, method: str, size: int, workers: int) -> dict[str, Any]:
    opts = PreprocessConfig(flow_method=method)
    t0 = time.perf_counter()
    first = prepare_inputs(table, FLOW3, size, opts, workers=workers)
    t1 = time.perf_counter() - t0
    t0 = time.perf_counter()
    second = prepare_inputs(table, FLOW3, size, opts, workers=workers)
    t2 = time.perf_counter() - t0
    assert (second.report.cache == "hit").sum() == int(first.ok.sum()), "second run should be all cache hits"
    assert np.array_equal(first.x, second.x)
    r = {
        "clips": len(table), "ok": int(first.ok.sum()), "size": size, "workers": workers,
        "first_s": round(t1, 3), "clips_per_s": round(len(table) / t1, 2),
        "cached_s": round(t2, 4), "cached_clips_per_s": round(len(table) / t2, 1), "cache_speedup": round(t1 / t2, 1),
    }
    print(f"  {method:5s}: {r['clips']} clips at {size} px, {workers} worker(s): {r['first_s']} s "
          f"({r['clips_per_s']} clips/s); cached {r['cached_s']} s -> {r['cache_speedup']}x")
    return r


def memory_child(args: argparse.Namespace) -> None:
    """Run in a fresh process: preprocess the pickled table, print peak RSS as JSON."""
    table = pd.read_pickle(args.memory_child)
    channels = tuple(args.channels.split(","))

    peak = {"mb": 0.0}
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            peak["mb"] = max(peak["mb"], tree_rss_mb(os.getpid()))
            stop.wait(0.1)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    tracemalloc.start()
    t0 = time.perf_counter()
    out = prepare_inputs(table, channels, args.size, PreprocessConfig(flow_method="dis"), workers=args.workers)
    elapsed = time.perf_counter() - t0
    stop.set()
    sampler.join()
    _, py_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    self_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    child_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    n_ok, x_mb = int(out.ok.sum()), out.x.nbytes / 2**20
    del out  # the second run (all cache hits) must not sit on top of the first in the peak
    t0 = time.perf_counter()
    again = prepare_inputs(table, channels, args.size, PreprocessConfig(flow_method="dis"), workers=args.workers)
    cached = time.perf_counter() - t0
    hits = int((again.report.cache == "hit").sum())
    print(json.dumps({
        "samples": len(table), "ok": n_ok, "channels": list(channels), "size": args.size, "workers": args.workers,
        "seconds": round(elapsed, 2), "x_mb": round(x_mb, 1),
        "cached_seconds": round(cached, 3), "cache_hits": hits, "cache_speedup": round(elapsed / cached, 1),
        "parent_peak_rss_mb": round(self_kb / 1024, 1), "reaped_children_peak_rss_mb": round(child_kb / 1024, 1),
        "python_heap_peak_mb": round(py_peak / 2**20, 1),
        "process_tree_peak_rss_mb": round(peak["mb"], 1),
    }))


def memory_run(table: pd.DataFrame, n: int, size: int, workers: int, tmp: Path) -> dict[str, Any]:
    # lazy: loads torch; the memory child is this script in a fresh process, and torch must stay out of its peak
    from mer_core.models import model_config

    channels = tuple(model_config("mfdan", "paper").channels)
    big = repeat_to(table, n)
    pkl = tmp / "table.pkl"
    big.to_pickle(pkl)
    cmd = [sys.executable, __file__, "--memory-child", str(pkl), "--channels", ",".join(channels),
           "--size", str(size), "--workers", str(workers)]
    res = subprocess.run(cmd, capture_output=True, text=True, env=os.environ.copy(), check=False)
    if res.returncode != 0:
        raise RuntimeError(f"memory run failed: {res.stderr[-2000:]}")
    out = json.loads(res.stdout.strip().splitlines()[-1])
    print(f"  {out['samples']} samples, {len(channels)} channels at {size} px, {workers} worker(s): {out['seconds']} s; "
          f"peak RSS parent {out['parent_peak_rss_mb']} MB, whole process tree (parent + forkserver + workers) "
          f"{out['process_tree_peak_rss_mb']} MB (x = {out['x_mb']} MB); second run from the cache "
          f"{out['cached_seconds']} s -> {out['cache_speedup']}x")
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="reduced sizes (about a minute)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--out", default=str(REPO / "bench_out" / "preprocess.json"))
    ap.add_argument("--memory-samples", type=int, default=442)
    ap.add_argument("--memory-child", help=argparse.SUPPRESS)
    ap.add_argument("--channels", help=argparse.SUPPRESS)
    ap.add_argument("--size", type=int, default=224, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.memory_child:
        memory_child(args)
        return 0

    with tempfile.TemporaryDirectory(prefix="bench-preprocess-") as tmpdir:
        tmp = Path(tmpdir)
        table, source = load_dataset(tmp, args.quick)  # index with the user's cache (the synthetic set lives there)
        os.environ["MER_CACHE"] = str(tmp / "cache")  # preprocessing cache: fresh and private
        print(f"dataset: {source}, {len(table)} clips")
        results: dict[str, Any] = {
            "dataset": source, "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "opencv": cv2.__version__,
                                           "load_avg_at_start": os.getloadavg()},
            "quick": args.quick,
        }
        print("1. per-sample cost of each flow method")
        results["flow_cost"] = flow_costs(table, {"dis": 5, "farneback": 5, "tvl1": 2 if args.quick else 3})
        print("2. clips/s over the dataset and cache speed-up (channels flow_u, flow_v, strain at 128 px)")
        tvl1_table = table.iloc[:20] if args.quick else table
        results["dataset_runs"] = {"dis": dataset_run(table, "dis", 128, args.workers),
                                   "tvl1": dataset_run(tvl1_table, "tvl1", 128, args.workers)}
        n = min(args.memory_samples, 100) if args.quick else args.memory_samples
        print(f"3. peak memory, {n} samples at 224 px")
        results["memory"] = memory_run(table, n, 224, args.workers, tmp)
    results["machine"]["load_avg_at_end"] = os.getloadavg()
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=1))
    print(f"written {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
