"""``mer preprocess``: build the preprocessing cache for a dataset ahead of training.

    mer preprocess --dataset NAME [--root PATH] [--dataset-option KEY=VALUE ...]
                   [--model NAME [--preset P] | --channels a,b,c] [--size N]
                   [--flow dis|tvl1|farneback] [--workers N] [--no-face-crop]
                   [--evm-alpha A ...] [--limit N] [--report FILE.csv]

Channels and size come from the model's config (``--model``, default the
baseline) unless ``--channels`` / ``--size`` say otherwise. Training builds
whatever is missing anyway; this command only does it up front, in parallel,
with a progress bar, and prints a summary (ok / failed, cache hits, time)
and the first failures. Exit code 0 when at least one sample is usable,
1 when every sample failed, 2 for a usage error.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from mer_core.errors import ConfigError
from mer_core.keyvalue import parse_pairs


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("preprocess", help="preprocess a dataset into the cache (flow, strain, EVM, crops)")
    p.add_argument("--dataset", required=True, help="dataset name (see `mer datasets list`)")
    p.add_argument("--root", help="dataset root (default: the configured one)")
    p.add_argument("--dataset-option", "-o", action="append", default=[], metavar="KEY=VALUE", help="indexer option")
    p.add_argument("--model", help="take channels and size from this model's config (default: baseline)")
    p.add_argument("--preset", default="cpu", help="model preset (default cpu)")
    p.add_argument("--channels", help="comma-separated channels, e.g. flow_u,flow_v,strain (overrides the model's)")
    p.add_argument("--size", type=int, help="input size in pixels (overrides the model's)")
    p.add_argument("--flow", choices=("dis", "tvl1", "farneback"), default="dis", help="optical flow method (default dis)")
    p.add_argument("--workers", type=int, default=1, help="parallel worker processes (default 1)")
    p.add_argument("--no-face-crop", action="store_true", help="skip face detection (use whole frames)")
    p.add_argument("--evm-alpha", type=float, help="EVM amplification (default from the config: 10)")
    p.add_argument("--evm-low", type=float, help="EVM low cut-off, fraction of the frame rate")
    p.add_argument("--evm-high", type=float, help="EVM high cut-off, fraction of the frame rate")
    p.add_argument("--evm-levels", type=int, help="EVM pyramid levels")
    p.add_argument("--evm-pyramid", choices=("laplacian", "gaussian"))
    p.add_argument("--evm-filter", choices=("ideal", "butterworth"))
    p.add_argument("--limit", type=int, help="only the first N samples (a quick check)")
    p.add_argument("--no-cache", action="store_true", help="recompute everything, read and write no cache")
    p.add_argument("--report", help="write the per-sample report to this CSV file")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(handler=run)


def resolve_inputs(args: argparse.Namespace) -> tuple[tuple[str, ...], int]:
    """Channels and size from --channels/--size, else from the model's config."""
    from mer_core.models import model_config
    from mer_core.preprocess.channels import check_channels

    cfg = model_config(args.model or "baseline", args.preset)
    channels = check_channels([c.strip() for c in args.channels.split(",") if c.strip()]) if args.channels else cfg.channels
    size = args.size if args.size else cfg.input_size
    if not 8 <= size <= 512:
        raise ConfigError(f"--size {size}: expected 8..512 pixels")
    return tuple(channels), int(size)


def run(args: argparse.Namespace) -> int:
    from mer_core.config import PreprocessConfig
    from mer_core.datasets import index_dataset
    from mer_core.preprocess.pipeline import prepare_inputs

    if args.workers < 1:
        raise ConfigError(f"--workers {args.workers}: expected 1 or more")
    channels, size = resolve_inputs(args)
    evm = {
        k: getattr(args, k)
        for k in ("evm_alpha", "evm_low", "evm_high", "evm_levels", "evm_pyramid", "evm_filter")
        if getattr(args, k) is not None
    }
    options = PreprocessConfig(flow_method=args.flow, face_crop=not args.no_face_crop, **evm)
    root = Path(args.root).expanduser() if args.root else None
    table = index_dataset(args.dataset, root, **parse_pairs(args.dataset_option, None, "--dataset-option"))
    if args.limit:
        table = table.iloc[: args.limit]
    print(f"preprocessing {len(table)} sample(s) of {args.dataset!r}: channels {','.join(channels)} at {size} px, "
          f"flow {options.flow_method}, face crop {'on' if options.face_crop else 'off'}, {args.workers} worker(s)")

    bar = None
    if not args.no_progress:
        from tqdm import tqdm

        bar = tqdm(total=len(table), unit="clip", dynamic_ncols=True)

    def progress(done: int, total: int) -> None:
        if bar is not None:
            bar.update(done - bar.n)

    t0 = time.perf_counter()
    try:
        out = prepare_inputs(table, channels, size, options, workers=args.workers, progress=progress, use_cache=not args.no_cache)
    finally:
        if bar is not None:
            bar.close()
    elapsed = time.perf_counter() - t0
    rep = out.report
    n_ok = int(rep.ok.sum())
    hits = int((rep.cache == "hit").sum())
    rate = len(rep) / elapsed if elapsed > 0 else float("inf")
    print(f"{n_ok} ok, {len(rep) - n_ok} failed, {hits} cache hits, {elapsed:.1f} s ({rate:.1f} clips/s)")
    faces = rep.face[rep.ok].value_counts().to_dict()
    if faces:
        print("face: " + ", ".join(f"{k} {v}" for k, v in faces.items()))
    failed = rep[~rep.ok]
    for _, r in failed.head(10).iterrows():
        print(f"  failed {r.sample_id}: {r.error}")
    if len(failed) > 10:
        print(f"  ... and {len(failed) - 10} more (see --report)")
    if args.report:
        rep.to_csv(args.report, index=False)
        print(f"report written to {args.report}")
    return 0 if n_ok or not len(rep) else 1
