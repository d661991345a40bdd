"""What taking the head motion out costs the long-video motion curve, per frame.

    .venv/bin/python benchmarks/bench_stabilise.py [--seconds 20] [--repeats 3] [--out PATH]

One video of the synthetic long-video variant (``seconds`` long, 30 fps) is
decoded and cropped once (timed: the cost a spotting run pays anyway); then
the motion-curve features are computed from the crops in memory with the head
motion taken out (``curves``) and kept in (``raw_curves``), ``repeats`` times
each (the median is kept), and the stabiliser alone (one shift estimate and
one move back per analysed frame). Figures are milliseconds per video frame,
with the 1-minute load average before and after (the machine is shared: a
high load stretches every figure alike, so compare them with each other).
Synthetic data; writes ``PATH`` as JSON when given.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from mer_core.preprocess.spotting import small_frames  # noqa: E402
from mer_core.preprocess.stabilise import Stabiliser, align  # noqa: E402
from mer_core.spotting.features import compute, crop_frames  # noqa: E402
from mer_core.spotting.loso import SpotConfig, load_dataset  # noqa: E402


def _ms_per_frame(fn, n: int, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return round(statistics.median(times) / n * 1e3, 3)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", default="", help="write the figures to this JSON file")
    args = ap.parse_args()
    options = {"subjects": 2, "videos_per_subject": 1, "min_seconds": args.seconds, "max_seconds": args.seconds}
    video = load_dataset(SpotConfig(dataset_options=options)).videos.iloc[0].to_dict()
    load_before = round(os.getloadavg()[0], 2)
    t0 = time.perf_counter()
    crops = [c for _, c in crop_frames(str(video["path"]), bool(video.get("cropped")))]
    n, fps = len(crops), float(video["fps"])
    decode = round((time.perf_counter() - t0) / n * 1e3, 3)

    def stabiliser_alone() -> None:
        stab = Stabiliser()
        for small in small_frames(crops):
            align(small[None], stab.push(small)[None])

    out = {"video_frames": n, "fps": fps, "size": int(crops[0].shape[0]), "decode_and_crop_ms": decode,
           "raw_curves_ms": _ms_per_frame(lambda: compute(enumerate(crops), fps, "raw_curves"), n, args.repeats),
           "curves_ms": _ms_per_frame(lambda: compute(enumerate(crops), fps, "curves"), n, args.repeats),
           "stabiliser_alone_ms": _ms_per_frame(stabiliser_alone, n, args.repeats),
           "load_before": load_before, "load_after": round(os.getloadavg()[0], 2), "cores": os.cpu_count(),
           "synthetic": True, "command": "python benchmarks/bench_stabilise.py " + " ".join(sys.argv[1:])}
    out["added_ms"] = round(out["curves_ms"] - out["raw_curves_ms"], 3)
    print(json.dumps(out, indent=1))
    if args.out:
        Path(args.out).write_text(json.dumps(out, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
