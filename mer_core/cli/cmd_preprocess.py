"""``mer preprocess``: build the preprocessing cache for a dataset ahead of training.

    mer preprocess --dataset NAME [--root PATH] [--dataset-option KEY=VALUE ...]
                   [--model NAME [--preset P] | --channels a,b,c] [--size N]
                   [--flow dis|tvl1|farneback] [--workers N] [--no-face-crop]
                   [--evm-alpha A ...] [--limit N] [--report FILE.csv]

Channels, size and preprocessing options are the ones a run of the model
(``--model``, default the baseline) at the preset (``--preset``, default
``auto``: the CPU preset the dataset's inputs can feed) would use: they are
resolved by :mod:`mer_core.training.experiment`, as for ``mer run``, so the
cache built here is the one the run reads. ``--channels`` / ``--size`` /
``--flow`` ... override them. Training builds
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

from tqdm import tqdm

from mer_core.datasets import index_dataset
from mer_core.errors import ConfigError
from mer_core.evaluation.export import csv_safe
from mer_core.keyvalue import parse_pairs
from mer_core.preprocess.channels import check_channels
from mer_core.preprocess.pipeline import prepare_inputs


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("preprocess", help="preprocess a dataset into the cache (flow, strain, EVM, crops)")
    p.add_argument("--dataset", required=True, help="dataset name (see `mer datasets list`)")
    p.add_argument("--root", help="dataset root (default: the configured one)")
    p.add_argument("--dataset-option", "-o", action="append", default=[], metavar="KEY=VALUE", help="indexer option")
    p.add_argument("--model", help="take channels and size from this model's config (default: baseline)")
    p.add_argument("--preset", default="auto", help="model preset: auto (default: the CPU preset that fits the "
                   "dataset's inputs, as for mer run) or a name from `mer models`")
    p.add_argument("--channels", help="comma-separated channels, e.g. flow_u,flow_v,strain (overrides the model's)")
    p.add_argument("--size", type=int, help="input size in pixels (overrides the model's)")
    p.add_argument("--flow", choices=("dis", "tvl1", "farneback"), help="optical flow method (default: the preset's, dis)")
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


def resolve_inputs(args: argparse.Namespace, table: Any) -> tuple[Any, str]:
    """(the run's resolved config for this model, preset and table, why that preset), the flags applied."""
    from mer_core.training.experiment import choose_preset, resolve_experiment  # lazy: loads torch (about 2 s)

    model = args.model or "baseline"
    if args.size is not None and not 8 <= args.size <= 512:
        raise ConfigError(f"--size {args.size}: expected 8..512 pixels")
    pre: dict[str, Any] = {k: getattr(args, k) for k in ("evm_alpha", "evm_low", "evm_high", "evm_levels",
                                                          "evm_pyramid", "evm_filter") if getattr(args, k) is not None}
    if args.flow:
        pre["flow_method"] = args.flow
    if args.no_face_crop:
        pre["face_crop"] = False
    if args.channels:
        pre["channels"] = tuple(check_channels([c.strip() for c in args.channels.split(",") if c.strip()]))
    if args.size:
        pre["input_size"] = args.size
    options = parse_pairs(args.dataset_option, None, "--dataset-option")
    _, reason = choose_preset(args.dataset, model, args.preset, options, table)
    config = resolve_experiment(args.dataset, model, args.preset, overrides={"preprocess": pre},
                                dataset_options=options, table=table)
    return config, reason


def run(args: argparse.Namespace) -> int:
    if args.workers < 1:
        raise ConfigError(f"--workers {args.workers}: expected 1 or more")
    root = Path(args.root).expanduser() if args.root else None
    table = index_dataset(args.dataset, root, **parse_pairs(args.dataset_option, None, "--dataset-option"))
    if args.limit:
        table = table.iloc[: args.limit]
    config, reason = resolve_inputs(args, table)
    options = config.preprocess
    channels, size = tuple(options.channels), int(options.input_size)
    print(f"preprocessing {len(table)} sample(s) of {args.dataset!r} for {config.model}/{config.preset}"
          f"{f' ({reason})' if reason else ''}: channels {','.join(channels)} at {size} px, "
          f"flow {options.flow_method}, face crop {'on' if options.face_crop else 'off'}, {args.workers} worker(s)")

    bar = None
    if not args.no_progress:
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
        csv_safe(rep).to_csv(args.report, index=False)
        print(f"report written to {args.report}")
    return 0 if n_ok or not len(rep) else 1
