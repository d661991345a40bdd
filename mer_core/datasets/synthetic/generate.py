"""Plan, render and write a synthetic dataset in the generic manifest layout.

Determinism: every random draw comes from a numpy Generator seeded by
``(seed, variant, subject, stream[, clip])``, so a subject's face never
depends on how many subjects or clips come before it, and the same options
always give byte-identical PNGs and CSV. Each clip draws all its parameters in
a fixed order (even those an option switches off), so e.g. changing the blink
rate does not reshuffle the expressions.

Showcase clips: per class, the clip a lesson or a first look should open on
(:func:`showcase_clips`). A showcase clip has no blink anywhere near its
expression (a blink is the largest motion in a clip and would steal the eye),
no distractor action unit, little head drift, and the largest expression
displacement of its class. The choice is a pure function of the clip plans (no
pixel is read), so it is the same on every machine for the same options, and
:func:`generate` writes it to ``meta.json``.

Layout of a generated folder::

    manifest.csv        one row per clip (generic manifest columns + extras)
    meta.json           generator version, the options (reuse check), the showcase clips
    frames/<subject>/<clip>/img000.png ...
    masks/<subject>_<clip>.npz   ground truth (see :func:`load_masks`)
"""
from __future__ import annotations

import csv
import json
import math
import os
import shutil
from collections import Counter
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import cv2
import numpy as np
from filelock import FileLock

from mer_core.datasets.synthetic.face import FaceLayers, render_face, sample_identity
from mer_core.datasets.synthetic.motion import (
    DISTRACTOR_AUS,
    UNILATERAL_AUS,
    Motion,
    au_string,
    blink_overlay,
    blink_profile,
    blink_region,
    drift_grid,
    expression_motion,
    intensity_profile,
    inverse_field,
    prototype,
)
from mer_core.datasets.synthetic.options import GENERATOR_VERSION, SynthOptions
from mer_core.errors import DatasetError

Progress = Callable[[int, int], None]
BLINK_MARGIN = 5  # frames: a blink this close to onset..offset counts as "near the apex" (no showcase clip)
MANIFEST_COLUMNS = (
    "dataset", "subject", "clip", "label", "emotion", "frames_dir", "onset", "apex", "offset", "fps",
    "cropped", "action_units", "mask", "n_frames", "peak_px", "blink",
)
_STREAM_PLAN, _STREAM_CLIP, _STREAM_FACE, _STREAM_NOISE = 0, 1, 2, 3


@dataclass(frozen=True)
class ClipPlan:
    """Everything that defines one clip, drawn before any pixel is rendered."""

    subject: str
    subject_index: int
    clip: str
    clip_index: int
    label: str
    aus: tuple[int, ...]  # every AU that moves: the class's AUs, then any distractor
    intensities: tuple[float, ...]  # relative intensity of each AU (0..1)
    sides: tuple[str, ...]  # '' both sides, 'R' / 'L' unilateral (subject's side)
    distractor_aus: tuple[int, ...]  # weak AUs not tied to the class
    peak_px: float  # largest displacement at the apex, pixels at output size
    n_frames: int
    onset: int
    apex: int
    offset: int
    blink_start: int  # -1: no blink
    blink_length: int
    drift_shift: tuple[float, float]  # head translation at the last frame, pixels
    drift_angle: float  # head rotation at the last frame, degrees
    wobble: tuple[float, float, float]  # amplitude (px), cycles per clip, phase
    flicker: tuple[float, float]  # frequency (Hz), phase

    @property
    def action_units(self) -> str:
        return au_string(self.aus, self.sides)


def dataset_name(options: SynthOptions) -> str:
    return "synthetic-macro" if options.macro else "synthetic"


def subject_id(options: SynthOptions, index: int) -> str:
    width = max(2, len(str(options.subjects)))
    return f"{'m' if options.macro else 's'}{index + 1:0{width}d}"


def _rng(options: SynthOptions, *stream: int) -> np.random.Generator:
    return np.random.default_rng([options.seed, int(options.macro), *stream])


def plan_subject(options: SynthOptions, s: int) -> list[ClipPlan]:
    """The clips of subject ``s`` (0-based): labels, AUs, timing, confounds."""
    rng = _rng(options, s, _STREAM_PLAN)
    k = int(options.clips_per_subject + rng.integers(-options.clip_jitter, options.clip_jitter + 1))
    k = max(1, k)
    shares = options.class_shares()
    classes = list(shares)
    # each subject's own mix varies around the target shares (as in real data)
    mix = rng.dirichlet([30.0 * shares[c] for c in classes])
    # systematic sampling: each class gets floor or ceil of its expected count,
    # unbiased (largest-remainder rounding would favour the largest class)
    edges = np.concatenate([[0.0], np.cumsum(mix * k)])
    edges[-1] = k
    counts = np.histogram(rng.uniform() + np.arange(k), bins=edges)[0]
    labels = [c for c, n in zip(classes, counts) for _ in range(n)]
    labels = [labels[i] for i in rng.permutation(k)]
    sid = subject_id(options, s)
    return [_plan_clip(options, s, sid, c, label) for c, label in enumerate(labels)]


def _plan_clip(options: SynthOptions, s: int, sid: str, c: int, label: str) -> ClipPlan:
    rng = _rng(options, s, _STREAM_CLIP, c)
    aus = prototype(label, rng)
    intensities = [float(v) for v in rng.uniform(0.6, 1.0, len(aus))]
    side_draw = rng.uniform(0, 1, len(aus))
    sides = [("R" if v < 0.075 else "L") if a in UNILATERAL_AUS and v < 0.15 else "" for a, v in zip(aus, side_draw)]
    # a weak AU unrelated to the class in some clips (real expressions are rarely pure)
    d_au = DISTRACTOR_AUS[int(rng.integers(len(DISTRACTOR_AUS)))]
    d_int = float(rng.uniform(0.2, 0.45))
    distractors: tuple[int, ...] = ()
    if rng.uniform() < 0.3 and d_au not in aus:
        distractors = (d_au,)
        aus, intensities, sides = aus + distractors, intensities + [d_int], sides + [""]
    peak = float(rng.uniform(0.5, 2.0)) * options.amplitude * options.size / 128.0
    f = options.frames
    n = max(8, f + int(rng.integers(-(f // 8), f // 8 + 1)))
    onset = int(rng.integers(1, max(2, round(0.25 * n))))
    apex = min(onset + max(2, round(rng.uniform(0.18, 0.35) * n)), n - 3)
    offset = min(apex + max(2, round(rng.uniform(0.2, 0.45) * n)), n - 1)
    has_blink = rng.uniform() < options.blink_rate
    blink_len = max(3, int(round(rng.uniform(0.08, 0.16) * options.fps)))
    blink_start = int(rng.integers(0, n - 2))
    scale = options.size / 128.0
    mag = rng.uniform(0, 1) * options.drift * scale
    theta = rng.uniform(0, 2 * np.pi)
    angle = float(rng.uniform(-1, 1)) * options.drift * 0.5
    wobble = (float(0.25 * options.drift * scale * rng.uniform()), float(rng.uniform(0.5, 2.0)), float(rng.uniform(0, 2 * np.pi)))
    flicker = (float(rng.uniform(2.0, 12.0)), float(rng.uniform(0, 2 * np.pi)))
    return ClipPlan(
        subject=sid, subject_index=s, clip=f"c{c + 1:02d}", clip_index=c, label=label,
        aus=aus, intensities=tuple(intensities), sides=tuple(sides), distractor_aus=distractors, peak_px=peak,
        n_frames=n, onset=onset, apex=apex, offset=offset,
        blink_start=blink_start if has_blink else -1, blink_length=blink_len if has_blink else 0,
        drift_shift=(float(mag * np.cos(theta)), float(mag * np.sin(theta))), drift_angle=angle,
        wobble=wobble, flicker=flicker,
    )


def plan_dataset(options: SynthOptions) -> list[ClipPlan]:
    """All clips of a dataset, cheap (no rendering): for counts and previews."""
    return [p for s in range(options.subjects) for p in plan_subject(options, s)]


def _blink_is_near(plan: ClipPlan) -> bool:
    if plan.blink_start < 0:
        return False
    start, end = plan.blink_start, plan.blink_start + plan.blink_length
    return start <= plan.offset + BLINK_MARGIN and end >= plan.onset - BLINK_MARGIN


def showcase_score(plan: ClipPlan) -> float:
    """How clearly the clip shows its expression: peak displacement less head motion (pixels)."""
    drift = math.hypot(*plan.drift_shift) + abs(plan.wobble[0])
    return plan.peak_px - drift


def is_showcase_candidate(plan: ClipPlan) -> bool:
    return not _blink_is_near(plan) and not plan.distractor_aus


def showcase_clips(options: SynthOptions | None = None) -> dict[str, str]:
    """{label: "subject/clip"} of each class's showcase clip (classes without a candidate are left out)."""
    best: dict[str, ClipPlan] = {}
    for plan in plan_dataset(options or SynthOptions()):
        if not is_showcase_candidate(plan):
            continue
        if plan.label not in best or showcase_score(plan) > showcase_score(best[plan.label]):
            best[plan.label] = plan
    return {label: f"{p.subject}/{p.clip}" for label, p in sorted(best.items())}


def subject_face(options: SynthOptions, s: int) -> FaceLayers:
    """Render subject ``s``'s neutral face layers."""
    rng = _rng(options, s, _STREAM_FACE)
    return render_face(sample_identity(rng), options.size, rng, color=options.color)


def clip_motion(options: SynthOptions, plan: ClipPlan, face: FaceLayers) -> Motion:
    """The clip's apex displacement field and AU regions.

    Macro motions spread over wider regions (2x the radii), as large
    expressions move more of the face; the strain cap keeps the warp from
    folding (it lowers the macro peaks to about 5x the micro ones on average).
    """
    spread = 2.0 if options.macro else 1.0
    return expression_motion(
        plan.aus, plan.intensities, plan.sides, plan.peak_px, face.landmarks, face.face_width * spread, options.size,
        max_strain=0.8,
    )


def render_clip(
    options: SynthOptions, plan: ClipPlan, face: FaceLayers, motion: Motion | None = None, *, clean: bool = False
) -> np.ndarray:
    """Render a clip's frames as uint8 (T, H, W) or (T, H, W, 3).

    ``clean=True`` switches off every confound (noise, flicker, drift,
    blink), leaving only the expression: what the mask tests compare against.
    """
    motion = motion or clip_motion(options, plan, face)
    n, size = plan.n_frames, options.size
    profile = intensity_profile(n, plan.onset, plan.apex, plan.offset)
    closure = blink_profile(n, plan.blink_start, plan.blink_length)
    rng = _rng(options, plan.subject_index, _STREAM_NOISE, plan.clip_index)
    colour = face.albedo.ndim == 3
    light = face.lighting[..., None] if colour else face.lighting
    centre = (float(face.landmarks["nose_bridge"][0]), float(face.landmarks["nose_bridge"][1]))
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    out = np.empty((n, *face.albedo.shape), np.uint8)
    for t in range(n):
        noise = rng.standard_normal(face.albedo.shape, dtype=np.float32)  # drawn even when clean: fixed stream
        base = face.albedo
        if closure[t] > 0 and not clean:
            alpha, lash = blink_overlay(face.eyes, float(closure[t]), size, (xx, yy))
            if colour:
                alpha, lash = alpha[..., None], lash[..., None]
            base = face.albedo * (1 - alpha) + face.skin * alpha - lash
        if clean:
            gx, gy = xx, yy
        else:
            u = t / max(1, n - 1)
            amp, cycles, phase = plan.wobble
            w = float(amp * np.sin(2 * np.pi * cycles * u + phase))
            shift = (plan.drift_shift[0] * u + w, plan.drift_shift[1] * u + 0.5 * w)
            gx, gy = drift_grid(size, shift, plan.drift_angle * u, centre, (xx, yy))
        if profile[t] > 0:
            back = inverse_field(motion.flow * profile[t], iterations=6 if options.macro else 3, grid=(xx, yy))
            gx, gy = gx - back[0], gy - back[1]
        img = cv2.remap(base, gx, gy, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT101)
        if clean:
            img = img * light
        else:
            freq, ph = plan.flicker
            gain = 1.0 + options.flicker * (0.7 * np.sin(2 * np.pi * freq * t / options.fps + ph) + 0.3 * float(noise.flat[0]))
            img = img * (light * np.float32(gain)) + noise * np.float32(options.noise)
        out[t] = np.clip(np.rint(img), 0, 255).astype(np.uint8)
    return out


def clip_masks(options: SynthOptions, plan: ClipPlan, face: FaceLayers, motion: Motion) -> dict[str, np.ndarray]:
    """Ground truth of a clip (the arrays written to its .npz)."""
    strength = np.sqrt((motion.flow**2).sum(0)).astype(np.float32)
    au = cv2.dilate((strength > 0).astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
    blink = blink_region(face.eyes, options.size) if plan.blink_start >= 0 else np.zeros_like(au)
    return dict(
        au=au,
        blink=blink,
        au_strength=strength,
        flow=motion.flow.astype(np.float32),
        au_regions=motion.regions,
        au_units=np.array(plan.aus, np.int32),
        au_sides=np.array(plan.sides if plan.sides else [], dtype="U1"),
        distractor_units=np.array(plan.distractor_aus, np.int32),
        face=face.face_mask,
        blink_span=np.array([plan.blink_start, plan.blink_start + plan.blink_length if plan.blink_start >= 0 else -1], np.int32),
        onset_apex_offset=np.array([plan.onset, plan.apex, plan.offset], np.int32),
    )


def load_masks(path: str | Path) -> dict[str, np.ndarray]:
    """Read a clip's ground truth (the ``mask_path`` of a sample table row).

    Keys: ``au`` (bool HxW, pixels moved by the expression), ``blink`` (bool
    HxW, eye regions of a blink in the clip; all False without one),
    ``au_strength`` (float HxW, apex displacement in px), ``flow`` (float
    2xHxW, true apex displacement dx, dy), ``au_regions`` (bool KxHxW, one per
    AU in ``au_units``; ``au_sides`` '', 'R' or 'L'; ``distractor_units`` the
    AUs not tied to the class), ``face`` (bool HxW), ``blink_span`` ([start, end]
    frames or [-1, -1]) and ``onset_apex_offset``. Masks are in the neutral
    face's coordinates; the clip's head drift (at most ``drift`` px) moves the
    frames, not the masks.
    """
    path = Path(path)
    if not path.exists():
        raise DatasetError(f"ground-truth mask file not found: {path}")
    with np.load(path) as data:
        return {k: data[k] for k in data.files}


# ----------------------------------------------------------------------------
# writing


def is_current(out_dir: str | Path, options: SynthOptions) -> bool:
    """True when ``out_dir`` holds a complete set generated with these options."""
    out = Path(out_dir)
    meta = out / "meta.json"
    if not (meta.exists() and (out / "manifest.csv").exists()):
        return False
    try:
        data = json.loads(meta.read_text())
    except (OSError, ValueError):
        return False
    return data.get("version") == GENERATOR_VERSION and data.get("options") == options.to_dict()


def generate(
    out_dir: str | Path, options: SynthOptions | None = None, *, force: bool = False, progress: Progress | None = None
) -> Path:
    """Write a synthetic dataset to ``out_dir``; return its ``manifest.csv``.

    Reuses the folder when it already holds the same options and generator
    version (fast); otherwise replaces the generated files (only in a folder
    this generator wrote, never in a foreign one). A lock file serialises
    concurrent calls (a test run and the dashboard asking at once).
    """
    options = options or SynthOptions()
    out = Path(out_dir)
    if not force and is_current(out, options):
        return out / "manifest.csv"
    if out.exists() and not out.is_dir():
        raise DatasetError(f"{out} is a file; the synthetic generator needs a folder to write to")
    out.mkdir(parents=True, exist_ok=True)
    _refuse_foreign(out)
    with FileLock(out / ".lock"):  # two processes generating one set: one writes, the other finds it current
        if not force and is_current(out, options):
            return out / "manifest.csv"
        _clear(out)
        rows = _write_all(out, options, progress)
        meta = dict(generator="mer_core.datasets.synthetic", version=GENERATOR_VERSION, options=options.to_dict(),
                    clips=len(rows), counts=dict(sorted(Counter(r["label"] for r in rows).items())),
                    showcase=showcase_clips(options))
        _atomic_write(out / "meta.json", json.dumps(meta, indent=2, sort_keys=True) + "\n")
        _write_manifest(out / "manifest.csv", rows)
    return out / "manifest.csv"


def _write_all(out: Path, options: SynthOptions, progress: Progress | None) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    plans = [plan_subject(options, s) for s in range(options.subjects)]
    total, done = sum(len(p) for p in plans), 0
    (out / "masks").mkdir(exist_ok=True)
    name = dataset_name(options)
    # PNG encoding and file writes release the GIL: a few writer threads
    # overlap them with rendering (file creation dominates on a busy disk).
    with ThreadPoolExecutor(max_workers=3) as pool:
        pending: list[Future] = []
        for s, clips in enumerate(plans):
            face = subject_face(options, s)
            for plan in clips:
                motion = clip_motion(options, plan, face)
                frames = render_clip(options, plan, face, motion)
                rel = Path("frames") / plan.subject / plan.clip
                (out / rel).mkdir(parents=True, exist_ok=True)
                pending.append(pool.submit(_write_frames, out / rel, frames))
                mask_rel = Path("masks") / f"{plan.subject}_{plan.clip}.npz"
                np.savez_compressed(out / mask_rel, **clip_masks(options, plan, face, motion))
                blink = f"{plan.blink_start}-{min(plan.n_frames - 1, plan.blink_start + plan.blink_length)}" if plan.blink_start >= 0 else ""
                rows.append(dict(
                    dataset=name, subject=plan.subject, clip=plan.clip, label=plan.label, emotion=plan.label,
                    frames_dir=rel.as_posix(), onset=plan.onset, apex=plan.apex, offset=plan.offset,
                    fps=f"{options.fps:g}", cropped="true", action_units=plan.action_units, mask=mask_rel.as_posix(),
                    n_frames=plan.n_frames, peak_px=f"{plan.peak_px:.3f}", blink=blink,
                ))
                done += 1
                if progress:
                    progress(done, total)
                if len(pending) > 8:  # bound the frames held in memory; surface write errors early
                    pending.pop(0).result()
        for job in pending:
            job.result()
    return rows


_PNG = [cv2.IMWRITE_PNG_COMPRESSION, 1, cv2.IMWRITE_PNG_STRATEGY, cv2.IMWRITE_PNG_STRATEGY_HUFFMAN_ONLY]


def _write_frames(folder: Path, frames: np.ndarray) -> None:
    for t, img in enumerate(frames):
        path = folder / f"img{t:03d}.png"
        if not cv2.imwrite(str(path), img, _PNG):
            raise DatasetError(f"cannot write frame {path}")


def _write_manifest(path: Path, rows: list[dict[str, Any]]) -> None:
    tmp = path.with_suffix(".csv.tmp")
    with open(tmp, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(MANIFEST_COLUMNS), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    os.replace(tmp, path)


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


_OURS = {"manifest.csv", "meta.json", "frames", "masks", "variants", ".lock", "manifest.csv.tmp", "meta.json.tmp"}


def _refuse_foreign(out: Path) -> None:
    """Never write into (or clear) a folder holding files this generator did not write."""
    foreign = sorted(p.name for p in out.iterdir() if p.name not in _OURS)
    if foreign:
        raise DatasetError(
            f"{out} holds files the synthetic generator did not write ({', '.join(foreign[:5])}); "
            "choose an empty folder or a previous synthetic set"
        )


def _clear(out: Path) -> None:
    """Remove a previous generation's files (the folder was checked to be ours)."""
    _refuse_foreign(out)
    for name in ("manifest.csv", "meta.json"):
        (out / name).unlink(missing_ok=True)
    for name in ("frames", "masks"):
        shutil.rmtree(out / name, ignore_errors=True)
