"""Tiny clip datasets for fast engine tests (no dependence on the synthetic generator).

Each clip shows a textured square whose patch moves in a class-specific
direction between onset and apex: flow-based models can learn it in a few
epochs, so end-to-end tests finish in seconds.
"""
from __future__ import annotations

import csv
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import cv2
import numpy as np
import pytest

DIRECTIONS = {"negative": (0, 1), "positive": (1, 0), "surprise": (0, -1)}


@contextmanager
def cache_at(root: Path | str) -> Iterator[Path]:
    """MER_CACHE (and so the store) points at ``root`` inside the block and back at what it was after: for
    module-scoped fixtures, which cannot use the function-scoped ``monkeypatch``."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MER_CACHE", str(root))
        yield Path(root)


def tiny_config(manifest: Path, **kw: Any) -> "ExperimentConfig":
    """A seconds-long baseline run on a :func:`make_clip_manifest` set (sequential, batch 8, 2 epochs)."""
    from mer_core.config import ExperimentConfig

    base = dict(dataset="manifest", dataset_options={"manifest": str(manifest)}, class_set="native",
                model="baseline", epochs=2, batch_size=8, executor="sequential", workers=1)
    base.update(kw)
    return ExperimentConfig.from_dict(base)

def make_clip_manifest(root: Path, *, subjects: int = 4, clips_per_subject: int = 6, size: int = 32,
                       frames: int = 6, seed: int = 0, labels: tuple[str, ...] = ("negative", "positive", "surprise")) -> Path:
    """Write frames + manifest.csv under ``root``; returns the manifest path."""
    rng = np.random.default_rng(seed)
    rows = []
    for s in range(subjects):
        base = (rng.random((size, size)) * 120 + 60).astype(np.float32)
        base = cv2.GaussianBlur(base, (3, 3), 0)
        for c in range(clips_per_subject):
            label = labels[(s + c) % len(labels)]
            dx, dy = DIRECTIONS.get(label, (1, 1))
            folder = root / f"s{s:02d}" / f"clip{c:02d}"
            folder.mkdir(parents=True, exist_ok=True)
            apex = frames // 2
            for t in range(frames):
                amp = 2.0 * (1 - abs(t - apex) / max(apex, 1))
                m = np.float32([[1, 0, dx * amp], [0, 1, dy * amp]])
                img = cv2.warpAffine(base, m, (size, size), borderMode=cv2.BORDER_REFLECT)
                img = img + rng.normal(0, 1.0, img.shape)
                cv2.imwrite(str(folder / f"img{t}.png"), np.clip(img, 0, 255).astype(np.uint8))
            rows.append({"subject": f"s{s:02d}", "clip": f"clip{c:02d}", "label": label,
                         "frames_dir": f"s{s:02d}/clip{c:02d}", "onset": 0, "apex": apex,
                         "offset": frames - 1, "fps": 30, "cropped": "true", "dataset": "blobs"})
    path = root / "manifest.csv"
    with path.open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return path


TINY_SYNTH = dict(subjects=3, clips_per_subject=3, size=64, frames=16)


def tiny_run_with_videos(root: Path, *, clips: int, fmt: str, videos_dir: str = "videos",
                         final_model: bool = False) -> dict:
    """Under cache ``root``: a 1-epoch baseline LOSO on a tiny synthetic set and ``clips`` of it as videos.

    ``final_model``: the run also trains its final model on every subject.

    Returns {"root", "run", "videos", "metas"}. MER_CACHE is pointed at ``root`` only while it works.
    """
    from mer_core.config import ExperimentConfig
    from mer_core.datasets.synthetic import SynthOptions
    from mer_core.datasets.synthetic.video_export import export_videos
    from mer_core.training.engine import run_experiment

    with cache_at(root):
        cfg = ExperimentConfig.from_dict(dict(dataset="synthetic", dataset_options=TINY_SYNTH, model="baseline",
                                              epochs=1, batch_size=8, executor="sequential",
                                              final_model=final_model))
        rid = run_experiment(cfg)
        videos = Path(root) / videos_dir
        metas = export_videos(videos, SynthOptions(**TINY_SYNTH), clips=clips, fmt=fmt)
    return {"root": Path(root), "run": rid, "videos": videos, "metas": metas}


def synthetic_video(path: Path, *, blink: bool, size: int = 64, frames: int = 16) -> Path:
    """One synthetic clip (subject 0, its 4th clip) written by OpenCV's VideoWriter, with a blink after the apex or none.

    At 64 px the Haar eye cascade finds the eyes of the uncropped frame's face, so the blink is found (and the
    eye regions are left out of the motion curve) on the blink clip and not on the other.
    """
    import dataclasses

    from mer_core.datasets.synthetic import SynthOptions, plan_dataset
    from mer_core.datasets.synthetic.generate import render_clip, subject_face
    from mer_core.datasets.synthetic.video_export import write_video

    opt = SynthOptions(size=size, frames=frames)
    plan = [p for p in plan_dataset(opt) if p.subject_index == 0][3]
    start = min(plan.apex + 2, frames - 3)
    plan = dataclasses.replace(plan, blink_start=start if blink else -1,
                               blink_length=min(6, frames - start - 1) if blink else 0)
    clip = [np.asarray(f) for f in render_clip(opt, plan, subject_face(opt, 0))]
    clip = np.stack([f if f.dtype == np.uint8 else np.clip(f * 255, 0, 255).astype(np.uint8) for f in clip])
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    return write_video(Path(path), clip, 30.0)
