"""``mer pretrain``: macro-expression pre-training (transfer learning).

    mer pretrain --model dense_attention --macro synthetic-macro \\
        [--macro folder:PATH] [--macro ckplus:PATH] [--epochs N] [--preset auto]

Trains the model's architecture on all samples of the macro sources and prints
the checkpoint path (stored once per configuration under
``cache/checkpoints/pretrain/`` and reused). A fine-tuning run whose
experiment config sets ``pretrain`` to the same sources (and the same model,
preset, options, epochs and seed) finds the same checkpoint. The preset is
resolved as every command resolves it (:mod:`mer_core.training.experiment`):
``auto`` (the default) is the CPU preset the macro sources' inputs can feed.
"""
from __future__ import annotations

import argparse
import sys
from typing import Any

from mer_core.config import PreprocessConfig
from mer_core.keyvalue import parse_pairs


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "pretrain",
        help="pre-train a model on macro-expression data (prints the checkpoint path)",
        description="Pre-train a model on one or more macro-expression sources for macro-to-micro transfer learning.",
    )
    p.add_argument("--model", default="dense_attention", help="registered model name (default: dense_attention)")
    p.add_argument("--preset", default="auto", help="model preset: auto (default: the CPU preset the macro sources "
                   "can feed, cpu for synthetic-macro) or a name from `mer models`")
    p.add_argument(
        "--macro", action="append", metavar="SOURCE",
        help="macro source, repeatable: a dataset name (synthetic-macro, NAME:ROOT, NAME?key=value), "
        "folder:PATH (ImageFolder) or ckplus:PATH (CK+ layout); default synthetic-macro",
    )
    p.add_argument("--epochs", type=int, default=10, help="pre-training epochs (default: 10)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--lr", type=float, default=1e-3, help="AdamW learning rate (default: 1e-3)")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    p.add_argument("--channels", default="", help="comma-separated input channels (default: the preset's)")
    p.add_argument("--input-size", type=int, default=0, help="input side in pixels (default: the preset's)")
    p.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                   help="model option override, typed from the model's config, repeatable, e.g. --option growth_rate=8")
    p.add_argument("--force", action="store_true", help="retrain even if the checkpoint exists")
    p.add_argument("--quiet", action="store_true", help="print only the checkpoint path")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from mer_core.training.pretrain import pretrain  # lazy: loads torch (about 2 s)

    from mer_core.models.registry import model_spec  # lazy: loads torch (about 2 s)
    from mer_core.training.experiment import macro_preset  # lazy: loads torch (about 2 s)

    sources = args.macro or ["synthetic-macro"]
    preset, reason = macro_preset(args.model, args.preset, sources)
    options = parse_pairs(args.option, model_spec(args.model).config_cls, "--option")
    if args.channels:
        options["channels"] = tuple(c.strip() for c in args.channels.split(",") if c.strip())
    if args.input_size:
        options["input_size"] = args.input_size
    log = None if args.quiet else (lambda msg: print(msg, file=sys.stderr, flush=True))
    if log and reason:
        log(f"preset {preset}: {reason}")
    path = pretrain(
        args.model, preset, sources, args.epochs, args.seed,
        model_options=options, preprocess=PreprocessConfig(), lr=args.lr, batch_size=args.batch_size,
        device=args.device, force=args.force, log=log,
    )
    print(path)
    return 0
