"""``mer cache prune [--older-than DAYS] [--larger-than GB] [--dry-run]``: free cache space.

Removes preprocessed entries last used over DAYS ago, then the oldest until
the preprocessed cache is at most GB, and uploaded files (``cache/uploads/``)
older than DAYS. Never touches the run store or run folders. ``--dry-run``
lists what would go, with sizes.
"""
from __future__ import annotations

import argparse
import datetime as dt
import math

from mer_core.errors import ConfigError
from mer_core.paths import cache_root
from mer_core.preprocess.cache_prune import prune


def _size(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GB"


def _check_amount(option: str, value: float | None) -> None:
    """DAYS and GB are finite numbers >= 0 (``inf`` or ``nan`` would silently keep or match everything)."""
    if value is not None and not (math.isfinite(value) and value >= 0):
        unit = "days" if option == "--older-than" else "GB"
        raise ConfigError(f"cache prune {option} {value}: expected a finite number of {unit} >= 0")


def cmd_prune(args: argparse.Namespace) -> int:
    for option, value in (("--older-than", args.older_than), ("--larger-than", args.larger_than)):
        _check_amount(option, value)
    report = prune(args.older_than, args.larger_than, dry_run=args.dry_run)
    root = cache_root()
    verb = "would remove" if args.dry_run else "removed"
    for r in report.removed:
        used = dt.datetime.fromtimestamp(r.last_used).strftime("%Y-%m-%d %H:%M")
        try:
            shown = r.path.relative_to(root)
        except ValueError:
            shown = r.path
        print(f"{verb:12s} {_size(r.bytes):>9s}  last used {used}  {shown}  ({r.reason})")
    print(f"{verb} {len(report.removed)} file(s), {_size(report.freed_bytes)}; "
          f"preprocessed cache left: {_size(report.kept_bytes)} under {root}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("cache", help="cache housekeeping (mer cache prune)")
    inner = p.add_subparsers(dest="cache_command", metavar="ACTION", required=True)
    q = inner.add_parser("prune", help="remove old or excess preprocessed entries and old uploads")
    q.add_argument("--older-than", type=float, metavar="DAYS",
                   help="remove preprocessed entries last used, and uploads made, more than DAYS ago")
    q.add_argument("--larger-than", type=float, metavar="GB",
                   help="then remove the oldest preprocessed entries until at most GB are left")
    q.add_argument("--dry-run", action="store_true", help="only list what would be removed, with sizes")
    q.set_defaults(handler=cmd_prune)
