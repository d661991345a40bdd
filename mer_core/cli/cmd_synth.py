"""``mer synth``: generate the embedded synthetic dataset.

``mer synth`` writes the default micro set to ``cache/datasets/synthetic``
(reused when already there); any other option writes a separate variant
folder (``.../synthetic/variants/<key>``) unless ``--out DIR`` is given.
``mer synth --macro`` does the same for the macro-expression set. Prints where
it wrote, the counts per class and the time taken. Bad options are refused
with one line naming the option and the accepted range.

``mer synth --export flow-apex OUT`` (or ``apex-only``) writes a public-format
export shaped like the MEGC2019 composite instead (see
:mod:`mer_core.datasets.synthetic.export`); ``--subjects N`` keeps the first N
of its 68 subjects, ``--seed`` changes the faces and motions.

``mer synth --realism composite`` writes the realism-calibrated variant
(:mod:`mer_core.datasets.synthetic.realism`) in its three forms to the
dataset cache, where ``--dataset synthetic-realism`` reads it; with
``--export FORM OUT`` it writes one form to OUT (``--realism-option KEY=VALUE``
overrides a mechanism there).

``mer synth --export-video OUT [--clips N] [--video-format mp4|avi]`` writes
the first N clips of the set (the options above apply) as video files with a
sidecar JSON each (onset, apex, offset, fps, label): clips to try ``mer
predict`` and the Analyse a clip page on.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from mer_core.datasets.synthetic import KNOWN_CLASSES, OPTION_SPECS, SynthOptions, dataset_folder, generate, is_current
from mer_core.datasets.synthetic.export import REALISM_FORMS, ensure_realism, export_public
from mer_core.datasets.synthetic.realism import REALISM_VERSION, Realism
from mer_core.datasets.synthetic.video_export import export_videos
from mer_core.errors import ConfigError

_OPTIONS: tuple[tuple[str, type, str], ...] = (
    ("subjects", int, "N"),
    ("clips_per_subject", int, "N"),
    ("clip_jitter", int, "N"),
    ("size", int, "PX"),
    ("frames", int, "N"),
    ("amplitude", float, "X"),
    ("noise", float, "X"),
    ("blink_rate", float, "P"),
    ("drift", float, "PX"),
    ("flicker", float, "X"),
    ("seed", int, "N"),
    ("fps", float, "FPS"),
)


def register(sub: Any) -> None:
    p = sub.add_parser(
        "synth",
        help="generate the synthetic micro-expression dataset (or its macro variant)",
        description="Generate the embedded synthetic dataset deterministically (same seed and options give "
                    "identical files). Unset options take the variant's defaults.",
    )
    for name, kind, metavar in _OPTIONS:
        p.add_argument(f"--{name.replace('_', '-')}", type=kind, metavar=metavar, default=None,
                       help=OPTION_SPECS[name][4].replace("%", "%%"))
    p.add_argument("--classes", metavar="N|NAMES", default=None,
                   help=f"number of classes, or comma-separated names from: {', '.join(KNOWN_CLASSES)}")
    p.add_argument("--macro", action="store_true", help=OPTION_SPECS["macro"][4])
    p.add_argument("--color", action="store_true", help=OPTION_SPECS["color"][4])
    p.add_argument("--out", metavar="DIR", help="write here instead of the dataset cache")
    p.add_argument("--force", action="store_true", help="regenerate even when the folder holds the same set; "
                   "with --export, write into a folder that holds other files (replacing a manifest.csv there)")
    p.add_argument("--if-missing", action="store_true",
                   help="only generate when the set is missing or stale (what every call does unless --force; "
                        "for scripts such as `make data`)")
    p.add_argument("--export", nargs=2, metavar=("FORM", "OUT"), default=None,
                   help="write a composite-shaped public-format export to OUT instead: FORM is flow-apex "
                        "(28x28 min-max flow PNGs + 224x224 apex crops) or apex-only; 68 subjects, 442 clips")
    p.add_argument("--export-video", metavar="OUT", default=None,
                   help="write the first --clips clips as videos to OUT, each with its onset/apex/offset in a "
                        "sidecar JSON (for `mer predict` and the Analyse a clip page)")
    p.add_argument("--realism", choices=("composite",), default=None,
                   help="the realism-calibrated variant (as hard as a real MEGC2019 composite on model-independent "
                        "statistics): alone, writes all three forms (frames, flow-apex, apex-only) to the dataset "
                        "cache, read by --dataset synthetic-realism; with --export, writes one form to OUT")
    p.add_argument("--realism-option", action="append", default=[], metavar="KEY=VALUE",
                   help="override one realism mechanism (with --export only; the cache keeps the calibrated "
                        "defaults): weak_share, weak_scale, intensity_sigma, style_share, label_noise, head_motion, "
                        "misalign, amplitude, noise")
    p.add_argument("--clips", type=int, default=6, metavar="N", help="clips to write with --export-video (default 6)")
    p.add_argument("--video-format", choices=("mp4", "avi"), default="mp4", help="container of --export-video")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.set_defaults(handler=cmd_synth)


def options_from_args(args: argparse.Namespace):  # -> SynthOptions
    """The validated options of a ``mer synth`` command line."""
    values: dict[str, Any] = {name: getattr(args, name) for name, _k, _m in _OPTIONS if getattr(args, name) is not None}
    if args.classes is not None:
        values["classes"] = args.classes
    return SynthOptions(macro=bool(args.macro), color=bool(args.color), **values)


def cmd_synth(args: argparse.Namespace) -> int:
    if args.realism_option and not (args.export and args.realism):
        raise ConfigError("--realism-option applies to --realism composite --export FORM OUT only (the cached "
                          "variant keeps the calibrated defaults)")
    if args.export:
        return cmd_export(args)
    if args.realism:
        return cmd_realism(args)
    if args.export_video:
        return cmd_export_video(args)
    options = options_from_args(args)
    if args.force and args.if_missing:
        raise ConfigError("--force and --if-missing contradict each other; pass one of them")
    out = Path(args.out).expanduser() if args.out else dataset_folder(options)
    reused = not args.force and is_current(out, options)
    t0 = time.time()
    manifest = generate(out, options, force=bool(args.force))
    seconds = time.time() - t0
    meta = json.loads((manifest.parent / "meta.json").read_text())
    counts: dict[str, int] = meta.get("counts", {})
    summary = {
        "manifest": str(manifest),
        "dataset": "synthetic-macro" if options.macro else "synthetic",
        "clips": int(meta.get("clips", sum(counts.values()))),
        "subjects": options.subjects,
        "counts": counts,
        "seconds": round(seconds, 2),
        "reused": reused,
        "options": options.to_dict(),
    }
    if args.json:
        print(json.dumps(summary, indent=2))
        return 0
    total = max(1, summary["clips"])
    print(f"{summary['dataset']}: {summary['clips']} clips, {options.subjects} subjects, "
          f"{options.size}x{options.size} px, ~{options.frames} frames per clip")
    for label, n in counts.items():
        print(f"  {label:10s} {n:5d}  ({100 * n / total:.1f}%)")
    print(f"up to date: {manifest}" if reused else f"wrote {manifest} in {seconds:.1f} s")
    return 0


def _refuse_others(args: argparse.Namespace, takes_only: str, switches: tuple[str, ...]) -> None:
    """ConfigError naming the given options (besides --subjects and --seed) or ``switches`` a form ignores."""
    ignored = [f"--{n.replace('_', '-')}" for n, _k, _m in _OPTIONS
               if n not in ("subjects", "seed") and getattr(args, n) is not None]
    ignored += [f"--{n}" for n in switches if getattr(args, n)]
    if ignored or args.out or args.classes is not None:
        raise ConfigError(f"{takes_only}; drop {', '.join(ignored or ['--out/--classes'])}")


def cmd_export(args: argparse.Namespace) -> int:
    """``mer synth --export FORM OUT``: the composite-shaped public-format export."""
    form, out = args.export
    _refuse_others(args, "--export takes only --subjects, --seed, --force and --json", ("macro", "color", "if_missing"))
    t0 = time.time()
    realism = None
    if args.realism:
        realism = Realism.from_options(args.realism_option)
    manifest = export_public(Path(out).expanduser(), form, subjects=args.subjects, seed=args.seed or 0,
                             force=bool(args.force), realism=realism)
    meta = json.loads((manifest.parent / "meta.json").read_text())
    summary = {"manifest": str(manifest), "form": form, **{k: meta[k] for k in ("clips", "subjects", "counts", "parts")},
               "seconds": round(time.time() - t0, 2)}
    if args.json:
        print(json.dumps(summary, indent=2))
        return 0
    print(f"{form} export: {summary['clips']} clips, {summary['subjects']} subjects, parts "
          + ", ".join(f"{p} {sum(c.values())}" for p, c in summary["parts"].items()))
    for label, n in summary["counts"].items():
        print(f"  {label:10s} {n:5d}")
    print(f"wrote {manifest} in {summary['seconds']:.1f} s; use it with "
          f"--dataset manifest --dataset-option manifest={manifest.parent}")
    return 0


def cmd_realism(args: argparse.Namespace) -> int:
    """``mer synth --realism composite``: the calibrated variant in all three forms, in the dataset cache."""
    _refuse_others(args, "--realism takes only --subjects, --seed and --json",
                   ("macro", "color", "force", "if_missing"))
    t0 = time.time()
    written = {form: str(ensure_realism(form, seed=args.seed or 0, subjects=args.subjects)) for form in REALISM_FORMS}
    summary = {"version": REALISM_VERSION, "manifests": written, "seconds": round(time.time() - t0, 2)}
    if args.json:
        print(json.dumps(summary, indent=2))
        return 0
    for form, manifest in written.items():
        print(f"  {form:10s} {manifest}")
    options = ("" if args.seed in (None, 0) else f" --dataset-option seed={args.seed}") + (
        "" if args.subjects is None else f" --dataset-option subjects={args.subjects}")
    print(f"realism variant {REALISM_VERSION} ready in {summary['seconds']:.1f} s; train on it with "
          f"`mer run --dataset synthetic-realism{options} --model linear` (add --dataset-option form=frames "
          "for the frames form)")
    return 0


def cmd_export_video(args: argparse.Namespace) -> int:
    """``mer synth --export-video OUT``: clips as mp4/avi files with their ground truth in sidecar JSON."""
    out = Path(args.export_video).expanduser()
    written = export_videos(out, options_from_args(args), clips=args.clips, fmt=args.video_format)
    if args.json:
        print(json.dumps({"out": str(out), "clips": written}, indent=2))
        return 0
    for m in written:
        print(f"  {m['video']}: {m['label']}, onset {m['onset']}, apex {m['apex']}, offset {m['offset']}, "
              f"{m['frames']} frames at {m['fps']:g} fps")
    print(f"wrote {len(written)} clip(s) to {out}; try `mer predict --run RUN {out / written[0]['video']}`")
    return 0
