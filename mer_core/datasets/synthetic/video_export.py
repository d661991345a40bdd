"""Synthetic clips as video files, for trying ``mer predict`` and the Analyse page.

:func:`export_videos` renders the first ``clips`` clips of a synthetic set
(straight from the generator, no dataset folder needed) and writes each as
an ``.mp4`` (codec mp4v) or ``.avi`` (Motion JPEG, quality 100) with
``cv2.VideoWriter``, beside a sidecar ``<name>.json`` holding the ground
truth: onset, apex, offset (frame indices in the video), fps, label, subject,
clip, action units and ``cropped: true`` (the frames are face crops already,
as in the synthetic training data).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from mer_core.datasets.synthetic.generate import clip_motion, plan_dataset, render_clip, subject_face
from mer_core.datasets.synthetic.options import SynthOptions
from mer_core.errors import ConfigError

VIDEO_FORMATS = {"mp4": "mp4v", "avi": "MJPG"}


def write_video(path: Path, frames: np.ndarray, fps: float) -> Path:
    """Write (T, H, W) or (T, H, W, 3) uint8 frames; OSError naming the file when the writer cannot."""
    fmt = path.suffix.lower().lstrip(".")
    if fmt not in VIDEO_FORMATS:
        raise ConfigError(f"video format {fmt!r} of {path.name}: expected one of {', '.join(VIDEO_FORMATS)}")
    h, w = frames.shape[1:3]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*VIDEO_FORMATS[fmt]), float(fps), (w, h))
    if not writer.isOpened():
        raise OSError(f"cannot write video {path} (OpenCV has no {VIDEO_FORMATS[fmt]} encoder here?)")
    if fmt == "avi":
        writer.set(cv2.VIDEOWRITER_PROP_QUALITY, 100)
    try:
        for f in frames:
            writer.write(f if f.ndim == 3 else cv2.cvtColor(f, cv2.COLOR_GRAY2BGR))
    finally:
        writer.release()
    return path


def export_videos(out: str | Path, options: SynthOptions | None = None, *, clips: int = 6,
                  fmt: str = "mp4") -> list[dict[str, Any]]:
    """Write ``clips`` clips as videos + sidecar JSON under ``out``; returns the sidecars' contents."""
    options = options or SynthOptions()
    if fmt not in VIDEO_FORMATS:
        raise ConfigError(f"--video-format {fmt!r}: expected one of {', '.join(VIDEO_FORMATS)}")
    if clips < 1:
        raise ConfigError(f"--clips {clips}: expected at least 1")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    faces: dict[int, Any] = {}
    written = []
    for plan in plan_dataset(options)[:clips]:
        face = faces.setdefault(plan.subject_index, subject_face(options, plan.subject_index))
        frames = render_clip(options, plan, face, clip_motion(options, plan, face))
        name = f"{plan.subject}_{plan.clip}_{plan.label}"
        video = write_video(out / f"{name}.{fmt}", frames, options.fps)
        meta = {"video": video.name, "onset": plan.onset, "apex": plan.apex, "offset": plan.offset,
                "frames": int(plan.n_frames), "fps": float(options.fps), "label": plan.label, "subject": plan.subject,
                "clip": plan.clip, "action_units": plan.action_units, "cropped": True, "size": options.size,
                "seed": options.seed}
        (out / f"{name}.json").write_text(json.dumps(meta, indent=2))
        written.append(meta)
    return written
