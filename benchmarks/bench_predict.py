"""Analyse a clip, end to end: a 3-second 640x480 clip from upload to probabilities (target: < 5 s on 2 cores).

    taskset -c 0,1 .venv/bin/python benchmarks/bench_predict.py                  # every registered model, cpu preset
    taskset -c 0,1 .venv/bin/python benchmarks/bench_predict.py --models baseline --repeats 5

For each model a tiny run is trained at its ``cpu`` preset (3 synthetic
subjects, 1 epoch: prediction cost does not depend on how well it learned)
in a temporary cache. The clip is a synthetic face clip (256 px, asked for 90 frames: the
renderer adds its own margin, the report gives the decoded count;
30 fps) pasted into a 640x480 grey frame and written as mp4 (mp4v). Timed:

* ``upload``: storing the bytes under cache/uploads (``dashboard.writes.save_upload``);
* ``warm``: :func:`mer_core.explain.inference.analyse_clip` with the run's
  predictor already loaded (the page holds it as a resource): decode, face
  detection, spotting, the run's preprocessing, the fold-model ensemble;
* ``reload``: the same plus re-reading the run (store rows, training statistics);
  the fold models themselves stay memoised by ``load_fold_model`` after the warm-up.

Median of ``--repeats`` after one warm-up, with the steps' split and the
1-minute load average (the machine is shared). Writes bench_out/predict.json.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from dashboard import writes  # noqa: E402
from mer_core.config import ExperimentConfig  # noqa: E402
from mer_core.datasets.synthetic import SynthOptions, plan_dataset  # noqa: E402
from mer_core.datasets.synthetic.generate import clip_motion, render_clip, subject_face  # noqa: E402
from mer_core.datasets.synthetic.video_export import write_video  # noqa: E402
from mer_core.explain.inference import RunPredictor, analyse_clip  # noqa: E402
from mer_core.models.registry import list_models  # noqa: E402
from mer_core.training.engine import run_experiment  # noqa: E402


def make_clip(path: Path) -> Path:
    opts = SynthOptions(size=256, frames=90, fps=30.0, subjects=1, clips_per_subject=1, clip_jitter=0)
    plan = plan_dataset(opts)[0]
    face = subject_face(opts, 0)
    clip = render_clip(opts, plan, face, clip_motion(opts, plan, face))
    frames = np.full((len(clip), 480, 640), 128, np.uint8)
    frames[:, 112:368, 192:448] = clip
    return write_video(path, frames, 30.0)


def train(model: str) -> str:
    cfg = ExperimentConfig.from_dict(dict(dataset="synthetic", dataset_options=dict(subjects=3, clips_per_subject=2),
                                          model=model, preset="cpu", epochs=1, batch_size=8, executor="sequential"))
    return run_experiment(cfg)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--models", nargs="*", default=None)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default=str(ROOT / "bench_out" / "predict.json"))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    cv2.setNumThreads(args.threads)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        cache = Path(tmp)
        os.environ["MER_CACHE"] = str(cache)
        clip = make_clip(cache / "clip.mp4")
        data = clip.read_bytes()
        for model in args.models or list_models():
            rid = train(model)
            up, warm, reload, split = [], [], [], []
            for i in range(args.repeats + 1):
                t0 = time.perf_counter()
                stored = writes.save_upload("clip.mp4", data)
                t1 = time.perf_counter()
                pred = RunPredictor(rid)
                t2 = time.perf_counter()
                a = analyse_clip(stored, rid, predictor=pred)
                t3 = time.perf_counter()
                if i:  # the first call warms caches (cascades, torch kernels)
                    up.append(t1 - t0)
                    reload.append(t3 - t0)
                    warm.append(t1 - t0 + t3 - t2)
                    split.append(a.seconds)
            rows.append({"model": model, "preset": "cpu", "channels": a.channels, "input_size": int(a.x.shape[-1]),
                         "folds": len(pred.models), "upload_s": round(statistics.median(up), 3),
                         "warm_s": round(statistics.median(warm), 3), "reload_s": round(statistics.median(reload), 3),
                         "steps_s": {k: round(statistics.median(s[k] for s in split), 3) for k in split[0]},
                         "face": a.face, "spotted": [a.spotting.onset, a.spotting.apex, a.spotting.offset],
                         "frames": a.clip.total_frames})
            print(json.dumps(rows[-1]))
    report = {"clip": f"{rows[0]['frames'] if rows else 0} frames decoded, 640x480, 30 fps, mp4v", "threads": args.threads, "repeats": args.repeats,
              "cpus": len(os.sched_getaffinity(0)), "load_1min": round(os.getloadavg()[0], 2), "target_s": 5.0,
              "rows": rows}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2))
    print(f"load {report['load_1min']} on {report['cpus']} cpus; wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
