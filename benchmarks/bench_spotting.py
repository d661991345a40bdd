"""Spotting accuracy: how far the spotted apex (and onset) lands from the generator's, over a synthetic set.

    .venv/bin/python benchmarks/bench_spotting.py            # default synthetic set, frames as stored (PNG)
    .venv/bin/python benchmarks/bench_spotting.py --video    # each clip written as mp4 first, then decoded

Each clip goes through the steps ``mer predict`` and the Analyse a clip page
use: (optionally mp4 -> :func:`mer_core.preprocess.video.decode_clip`), the
clip's face crop (pre-cropped synthetic frames: the whole frame) at the
spotting size, then :func:`mer_core.preprocess.spotting.spot` with nothing
given. Reports the distribution of |spotted - true| apex and onset frames,
the share within 3 frames, and the same split by clips with and without a
blink (the generator's hardest confound), and how many clips had their eye
regions left out for a blink (Haar eye cascade or the fixed eye band).
Writes bench_out/spotting.json; ``--results`` also writes the same report
where the committed figures live (benchmarks/results/spotting_cpu-2core.json).

The blink handling of :mod:`mer_core.preprocess.spotting` was developed on
this very set (its labels were used to check it), so these figures are
in-sample for that method: the report says so (``developed_on``).
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from mer_core.datasets import index_dataset  # noqa: E402
from mer_core.datasets.synthetic import SynthOptions, plan_dataset  # noqa: E402
from mer_core.datasets.synthetic.video_export import write_video  # noqa: E402
from mer_core.preprocess import face  # noqa: E402
from mer_core.preprocess.spotting import DEVELOPED_ON, SPOT_SIZE, SPOTTING_VERSION, spot  # noqa: E402
from mer_core.preprocess.video import decode_clip  # noqa: E402


def distribution(errors: list[int]) -> dict:
    e = np.abs(np.asarray(errors))
    if not len(e):
        return {"n": 0}
    return {"n": int(len(e)), "within_1": round(float((e <= 1).mean()), 3), "within_3": round(float((e <= 3).mean()), 3),
            "within_5": round(float((e <= 5).mean()), 3),
            "median": float(np.median(e)), "p90": round(float(np.percentile(e, 90)), 2), "max": int(e.max()),
            "histogram_0_to_10plus": np.bincount(np.minimum(e, 10), minlength=11).tolist()}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--video", action="store_true", help="write every clip as mp4 and decode it first")
    ap.add_argument("--out", default=str(ROOT / "bench_out" / "spotting.json"))
    ap.add_argument("--results", default="", help="also write the report here, e.g. benchmarks/results/spotting_cpu-2core.json")
    args = ap.parse_args()
    table = index_dataset("synthetic")
    plans = {(p.subject, p.clip): p for p in plan_dataset(SynthOptions())}
    apex_err, onset_err, blink, calm = [], [], [], []
    excluded: dict[str, int] = {}
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        for r in table.itertuples():
            frames = [cv2.imread(f, cv2.IMREAD_GRAYSCALE) for f in r.frames]
            if args.video:
                path = write_video(Path(tmp) / "clip.mp4", np.stack(frames), float(r.fps) or 100.0)
                frames = decode_clip(path).frames
            crop = face.find_crop(frames[0], cropped=True)
            s = spot([face.apply_crop(f, crop, SPOT_SIZE) for f in frames])
            for region in s.excluded or ("nothing",):
                excluded[region] = excluded.get(region, 0) + 1
            apex_err.append(s.apex - int(r.apex))
            onset_err.append(s.onset - int(r.onset))
            plan = plans.get((str(r.subject).split(":")[-1], str(r.clip)))
            (blink if plan is not None and plan.blink_start >= 0 else calm).append(s.apex - int(r.apex))
    seconds = time.perf_counter() - t0
    report = {"set": "synthetic (default)", "clips": len(table), "via": "mp4 (mp4v) decoded" if args.video else "PNG frames",
              "spotting": SPOTTING_VERSION, "developed_on": DEVELOPED_ON,
              "in_sample": "yes: the blink handling was developed and checked on this set", "excluded_regions": excluded,
              "apex": distribution(apex_err), "onset": distribution(onset_err),
              "apex_clips_with_blink": distribution(blink), "apex_clips_without_blink": distribution(calm),
              "signed_apex_error_mean": round(float(np.mean(apex_err)), 2), "seconds": round(seconds, 1)}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2))
    if args.results:
        Path(args.results).parent.mkdir(parents=True, exist_ok=True)
        Path(args.results).write_text(json.dumps(report, indent=2) + "\n")
    for key in ("apex", "onset", "apex_clips_with_blink", "apex_clips_without_blink"):
        print(f"{key:26s} {json.dumps(report[key])}")
    print(f"regions left out of the curve: {json.dumps(excluded)}")
    print(f"{report['clips']} clips via {report['via']} in {report['seconds']} s; wrote {args.out}"
          + (f" and {args.results}" if args.results else ""))
    print(f"note: spotting {SPOTTING_VERSION} was developed on the {DEVELOPED_ON}: these figures are in-sample")
    return 0


if __name__ == "__main__":
    sys.exit(main())
