"""The ``mer`` command line.

Layer: the top floor beside the dashboard; it may call every library package
and nothing in the library imports it.

Each command group lives in its own module ``mer_core/cli/cmd_*.py`` that
exposes ``register(subparsers)``; this module discovers them, so adding a
command never touches a shared file. A command's handler receives the parsed
``argparse.Namespace`` and returns an exit code. :class:`MerError` is printed
as one clear line (no traceback) with exit code 2.

``mer`` imports every command module to build its parser (about 0.9 s of CPU
on the 2-core machine). Command modules import the library at module level,
except modules that load torch (the model registry, the experiment
resolution, training, explanations, the benchmark suite: 1.5-4 s of CPU each
on top of the parser), which the handlers that need them import when they run.
"""
from __future__ import annotations

import argparse
import importlib
import os
import pkgutil
import sys

from mer_core.errors import MerError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mer",
        description="MER Bench: honest micro-expression recognition benchmarks (LOSO, stored runs, explanations).",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if info.name.startswith("cmd_"):
            importlib.import_module(f"{__name__}.{info.name}").register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "handler", None):
        parser.print_help()
        return 1
    try:
        return int(args.handler(args) or 0)
    except MerError as exc:
        print(f"mer {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"mer {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # e.g. `mer jobs | head`: the reader left, nothing more to say
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except OSError as exc:  # a full disk, a read-only folder, a missing file: one line, not a traceback
        where = f" {exc.filename}" if getattr(exc, "filename", None) else ""
        print(f"mer {args.command}: error:{where}: {exc.strerror or exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
