"""``mer datasets``: list the indexers, check a dataset, record a dataset root.

    mer datasets list
    mer datasets check NAME [--root PATH] [--class-set S] [--dataset-option KEY=VALUE ...]
    mer datasets check manifest --dataset-option manifest=PATH   (the CSV, or a folder with one CSV)
    mer datasets check long-manifest --dataset-option manifest=PATH   (long videos + an interval CSV)
    mer datasets set-root NAME PATH
    mer datasets allow DIR      (a folder the dashboard may read; only from the shell)

``check`` prints the report and exits 0 when the dataset is usable, 1 when
rows had errors (missing or corrupt files...); a dataset that cannot be
indexed at all (bad root, unreadable sheet) is one error line, exit 2.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from tqdm import tqdm

from mer_core.datasets import dataset_info, list_datasets
from mer_core.datasets.allowed import allow_base, allowed_bases
from mer_core.datasets.check import check_dataset
from mer_core.datasets.roots import configured_roots, set_dataset_root
from mer_core.errors import DatasetError
from mer_core.keyvalue import parse_pairs
from mer_core.spotting.check import check_long_dataset
from mer_core.spotting.indexers import is_long_dataset, list_long_datasets, long_dataset_info


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("datasets", help="list, check and configure datasets")
    sub = p.add_subparsers(dest="datasets_command", metavar="ACTION")
    p.set_defaults(handler=lambda args: (p.print_help(), 1)[1])

    ls = sub.add_parser("list", help="registered datasets, their class sets and configured roots")
    ls.set_defaults(handler=_list)

    ck = sub.add_parser("check", help="index a dataset and report counts, problems and what the protocol drops")
    ck.add_argument("name")
    ck.add_argument("--root", help="dataset root (default: the configured one)")
    ck.add_argument("--class-set", dest="class_set", help="class set (default: the dataset's)")
    ck.add_argument("-o", "--option", "--dataset-option", dest="option", action="append", default=[],
                    metavar="KEY=VALUE", help="indexer option, as for mer run: e.g. manifest=PATH (a manifest CSV or "
                    "a folder holding one), flow_encoding=minmax, modality=VIS or casme2_root=/data/casme2")
    ck.add_argument("--limit", type=int, default=30, help="lines per problem list (default 30)")
    ck.add_argument("--json", action="store_true", help="print the report as JSON")
    ck.add_argument("--quick", action="store_true",
                    help="decode only the onset/apex/offset frames and a few between them (default: every frame)")
    ck.set_defaults(handler=_check)

    sr = sub.add_parser("set-root", help="record where a dataset lives (in datasets.toml)")
    sr.add_argument("name")
    sr.add_argument("path")
    sr.set_defaults(handler=_set_root)

    al = sub.add_parser("allow", help="let the dashboard read paths under DIR (datasets.toml [allowed]); "
                                      "browser-entered paths elsewhere are refused")
    al.add_argument("dir")
    al.set_defaults(handler=_allow)


def _allow(args: argparse.Namespace) -> int:
    path = allow_base(args.dir)
    print(f"saved in {path}; the dashboard may read under: {', '.join(str(b) for b in allowed_bases())}")
    return 0


def _list(args: argparse.Namespace) -> int:
    roots = configured_roots()
    for name in list_datasets():
        info = dataset_info(name)
        root = roots.get(name, "(not set)" if info.needs_root else "-")
        print(f"{name:10s} {info.description}")
        print(f"{'':10s} class sets: {', '.join(info.class_sets)} (default {info.default_class_set}); root: {root}")

    print("\nlong videos, for spotting (mer spot --dataset NAME):")
    for name in list_long_datasets():
        info = long_dataset_info(name)
        root = roots.get(name, "(not set)" if info.needs_root else "-")
        print(f"{name:10s} {info.description}; root: {root}")
    return 0


def _check(args: argparse.Namespace) -> int:
    if args.root and not Path(args.root).expanduser().exists():
        raise DatasetError(f"root {args.root} does not exist")
    options = parse_pairs(args.option, None, "--dataset-option")
    long = is_long_dataset(args.name)
    if args.name == ("long-manifest" if long else "manifest") and args.root and "manifest" not in options:
        options["manifest"] = args.root  # the documented form is --dataset-option manifest=PATH
    root = Path(args.root).expanduser() if args.root else None
    frames = "quick" if args.quick else "all"
    if long:  # a long-video dataset (spotting): intervals validated, every video decoded frame by frame
        report = check_long_dataset(args.name, root, frames=frames, **options)
    else:
        if args.class_set:
            options["class_set"] = args.class_set
        bar = None
        if not args.json and sys.stderr.isatty():
            bar = tqdm(total=0, desc="decoding frames", unit="clip", leave=False)

        def progress(done: int, total: int) -> None:
            if bar is not None:
                bar.total = total
                bar.n = done
                bar.refresh()

        try:
            report = check_dataset(args.name, root, frames=frames, progress=progress, **options)
        finally:
            if bar is not None:
                bar.close()
    if report.fatal:
        raise DatasetError(report.fatal)
    if args.json:
        json.dump(report.to_dict(), sys.stdout, indent=1, default=str)
        print()
    else:
        print(report.to_text(limit=args.limit))
    return 0 if report.usable else 1


def _set_root(args: argparse.Namespace) -> int:
    if not is_long_dataset(args.name):
        dataset_info(args.name)  # unknown names fail with the list of valid ones
    root = Path(args.path).expanduser()
    if not root.exists():
        raise DatasetError(f"{root} does not exist; give the folder that holds the {args.name} dataset")
    path = set_dataset_root(args.name, root.resolve())
    print(f"{args.name} root = {root.resolve()} (saved in {path})")
    return 0
