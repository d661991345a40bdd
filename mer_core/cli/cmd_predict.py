"""``mer predict --run RUN CLIP``: spot, predict and explain a clip of one's own.

Prints what the run was trained on, the spotted onset/apex/offset (frames of
the file, counted from 0), the class probabilities of the run's final model (``--model final``: trained on every
subject after the LOSO, never evaluated; the default when the run stored one)
or of the ensemble of its fold models (``--model ensemble``: the mean of their
probabilities; the default otherwise, said so), which one it is, the
predicted class, or no verdict and why when the Analyse page would give none
(no face found, or probabilities near chance), the warnings where the clip
looks unlike the run's training data, and writes pictures to ``--out``
(default ``cache/predict/<clip name>/``): the face at onset and apex, the
flow colour wheel, the strain, the attribution overlay (``--method``), the
model's own attention when it has one, the motion curve (CSV) and the result
(JSON). ``--json`` prints the result as JSON instead. A sidecar
``<clip>.json`` with ``"cropped": true`` (as ``mer synth --export-video``
writes) marks the frames as face crops already; ``--cropped`` does the same.
A bad clip (not a video, no or one frame, damaged) is one line, exit code 2.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from mer_core.errors import ConfigError
from mer_core.paths import cache_root
from mer_core.preprocess.flow import flow_to_rgb
from mer_core.preprocess.video import ClipLimits


def register(sub: Any) -> None:
    p = sub.add_parser("predict", help="spot, predict and explain a clip of your own with a stored run",
                       description="Analyse a video (mp4, avi, mov, webm) or a zip/folder of frames with the final "
                                   "model or the fold models of a stored run.")
    p.add_argument("clip", help="video file, zip of frames or folder of frames")
    p.add_argument("--run", required=True, help="id of a stored run with a final model or fold checkpoints")
    for name in ("onset", "apex", "offset"):
        p.add_argument(f"--{name}", type=int, default=None, metavar="N",
                       help=f"the {name} frame (index in the analysed window), instead of spotting it")
    p.add_argument("--model", choices=("final", "ensemble"), default=None,
                   help="final: the model trained on every subject (runs with final_model=true; not evaluated); "
                        "ensemble: the mean of the fold models. Default: final when the run stored one, else ensemble")
    p.add_argument("--cropped", action="store_true", help="the frames are face crops already: no face detection")
    p.add_argument("--method", default="saliency", help="attribution method of the overlay (default saliency)")
    p.add_argument("--max-frames", type=int, default=None, metavar="N",
                   help="frames analysed at most, 2 or more (a window of a longer clip); default 300")
    p.add_argument("--out", metavar="DIR", help="where to write the pictures (default cache/predict/<clip>/)")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(handler=cmd_predict)


def _sidecar_cropped(clip: Path) -> bool:
    side = clip.with_suffix(".json")
    try:
        return bool(json.loads(side.read_text()).get("cropped", False)) if side.is_file() else False
    except (OSError, ValueError, AttributeError):
        return False


def write_pictures(result: Any, predictor: Any, out: Path, method: str) -> dict[str, str]:
    """The overlays and pictures of one analysis as PNG files; returns name -> path."""
    from mer_core.explain.inference import overlay_rgb  # lazy: loads torch (about 2 s)

    out.mkdir(parents=True, exist_ok=True)
    m = result.maps
    pics: dict[str, np.ndarray] = {}
    for key in ("onset", "apex"):
        if key in m:
            pics[key] = np.clip(m[key] * 255, 0, 255).astype(np.uint8)
    if "u_px" in m:
        pics["flow"] = flow_to_rgb(m["u_px"], m["v_px"])[..., ::-1]
    if "strain" in m:
        pics["strain"] = overlay_rgb(None, m["strain"], opacity=1.0)[..., ::-1]
    target = result.classes.index(result.predicted)
    heat = predictor.attribution(result.x, target, method)
    pics[f"overlay_{method}"] = overlay_rgb(m.get("apex"), heat)[..., ::-1]
    att = predictor.attention(result.x)
    if att is not None:
        pics["attention"] = overlay_rgb(m.get("apex"), att)[..., ::-1]
    written = {}
    for name, img in pics.items():
        path = out / f"{name}.png"
        if not cv2.imwrite(str(path), img):
            raise OSError(f"cannot write {path}")
        written[name] = str(path)
    curve = out / "motion.csv"
    curve.write_text("frame,motion\n" + "".join(f"{i},{v:.5f}\n" for i, v in enumerate(result.spotting.curve)))
    written["motion"] = str(curve)
    return written


def _max_frames(value: int) -> int:
    """``--max-frames``: a clip needs an onset and an apex frame, so 2 at least (0 is not 'the default')."""
    if value < 2:
        raise ConfigError(f"--max-frames {value}: expected a number of frames >= 2 (an onset and an apex at least); "
                          f"leave the option out for the default, {ClipLimits().max_frames}")
    return value


def cmd_predict(args: argparse.Namespace) -> int:
    from mer_core.explain.inference import RunPredictor, analyse_clip  # lazy: loads torch (about 2 s)

    clip = Path(args.clip).expanduser()
    cropped = bool(args.cropped) or _sidecar_cropped(clip)
    limits = ClipLimits() if args.max_frames is None else ClipLimits(max_frames=_max_frames(args.max_frames))
    predictor = RunPredictor(args.run, model=args.model)
    result = analyse_clip(clip, args.run, onset=args.onset, apex=args.apex, offset=args.offset, cropped=cropped,
                          limits=limits, predictor=predictor)
    out = Path(args.out).expanduser() if args.out else cache_root() / "predict" / clip.stem
    summary = result.summary()
    summary["files"] = write_pictures(result, predictor, out, args.method)
    (out / "result.json").write_text(json.dumps(summary, indent=2))
    if args.json:
        print(json.dumps(summary, indent=2))
        return 0
    print_result(summary, clip.name, result.clip.fps, result.face)
    print(f"wrote pictures to {out}")
    return 0


def print_result(summary: dict[str, Any], name: str, fps: float | None, face: str) -> None:
    """The analysis in words, as the Analyse page shows it: what the run learned from first, then the frames
    (of the file, from 0), the probabilities and the verdict, or why there is none (no face found, or
    probabilities near chance: :func:`mer_core.explain.inference.verdict_withheld`)."""
    s = summary["spotting"]
    a = s["window"][0]
    print(f"{name}: {summary['frames']} frames" + (f" at {fps:g} fps" if fps else "") + f", face {face}")
    print(f"run {summary['run']}, trained on {summary['trained_on'] or 'data it does not describe'}")
    print(summary["transfer"])
    print(f"onset {s['onset'] + a}, apex {s['apex'] + a}, offset {s['offset'] + a} "
          f"(frames of the file, from 0; {s['method']})")
    print("probabilities:")
    for cls, p in sorted(summary["probabilities"].items(), key=lambda kv: -kv[1]):
        print(f"  {cls:12s} {p:.3f}")
    if summary["withheld"]:
        print(f"no verdict: {summary['withheld']}")
    else:
        print(f"predicted: {summary['predicted']}")
    for note in summary["notes"]:
        print(f"note: {note}")
    for w in summary["warnings"]:
        print(f"warning: {w}")
    print(f"model: {summary['model']}")
