"""The synthetic long-video variant: 10-60 s recordings with expressions, blinks, talking and head motion.

Spotting needs what clip datasets cut away: the long stretches where nothing
is expressed but the face still moves. Each video of this variant shows one
subject's procedural face (the renderer of :mod:`mer_core.datasets.synthetic`)
for ``min_seconds``..``max_seconds`` at ``fps`` and holds

* 0..``max_micro`` **micro-expressions** (0.25-0.5 s onset to offset, the
  micro variant's 0.7-2 px at 128 px times ``amplitude``, the class's action
  units over their usual regions) and 0..``max_macro`` **macro-expressions**
  (0.8-3 s, 3-8 px, over twice the regions, as the macro variant), never
  overlapping each other, each with its ground truth (onset, apex, offset,
  type, label, action units);
* distractors that are no expression and carry no interval: **blinks** (every
  ``blink_every`` s on average), **talking** (with probability ``talking``,
  1-2 stretches of 1.5-4 s of mouth opening at 3-5 Hz, 1-2.5 px), **head
  motion** (a slow sway of ``drift`` px and quick head shifts of 1-3 times
  ``drift`` px every 15 s on average), sensor noise and illumination flicker.

``realism='composite'`` adds the realism-calibrated variant's mechanisms that
apply to a recording (:class:`~mer_core.datasets.synthetic.realism.Realism`
at its calibration): weak and spread intensities (``weak_share``,
``weak_scale``, ``intensity_sigma``), per-subject atypical action units
(``style_share``), motion of another class (``label_noise``), rigid head
motion between onset and apex of each expression (``head_motion``, returning
by the offset) and sensor noise times ``noise``. The crop jitter
(``misalign``) and the per-part capture do not apply: a long video has no
apex crop and one camera.

Faces come from their own seed stream (:data:`FACE_SEED`), so no subject of
this variant has the face of a subject of the default micro set: a
recognition run trained there never saw these people.

Each video is written frame by frame to a lossless FFV1 ``.mkv`` (grey,
``size`` px): no video is ever held in memory. The folder is a generic long
manifest (:mod:`.indexers`): ``intervals.csv`` (one row per interval; a video
without expression has one row with empty frames), ``distractors.csv``
(blinks, talking, head shifts: for teaching and the timeline) and
``meta.json``.
"""
from __future__ import annotations

import csv
import hashlib
import json
import math
import os
import shutil
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Callable

import cv2
import numpy as np
from filelock import FileLock

from mer_core.datasets.synthetic.generate import subject_face
from mer_core.datasets.synthetic.motion import (
    au_field, blink_overlay, blink_profile, drift_grid, expression_motion, intensity_profile, inverse_field,
)
from mer_core.datasets.synthetic.options import COMPOSITE_SHARES, SynthOptions
from mer_core.datasets.synthetic.realism import Realism, prototype, subject_styles
from mer_core.errors import ConfigError, DatasetError
from mer_core.paths import datasets_dir

LONG_VERSION = "long-1"  # bump whenever the output changes: stale folders regenerate
FACE_SEED = 1_000_003  # faces of seed s are drawn with SynthOptions(seed=FACE_SEED + s)
NAME = "synthetic-long"
INTERVAL_HEADER = ("video", "subject", "onset", "apex", "offset", "type", "label", "action_units", "fps", "cropped")
DISTRACTOR_HEADER = ("video", "kind", "start", "end")
REALISM_NAMES = ("none", "composite")
MICRO_SECONDS, MACRO_SECONDS = (0.25, 0.5), (0.8, 3.0)
MICRO_PX, MACRO_PX = (0.7, 2.0), (3.0, 8.0)  # peak displacement at 128 px
GAP_SECONDS = 0.7  # at least this between two expressions

# name -> (kind, low, high, help)
LONG_SPECS: dict[str, tuple[str, float, float, str]] = {
    "subjects": ("int", 2, 100, "number of subjects (LOSO has one fold per subject)"),
    "videos_per_subject": ("int", 1, 20, "long videos per subject"),
    "min_seconds": ("float", 1, 600, "shortest video, seconds"),
    "max_seconds": ("float", 1, 600, "longest video, seconds"),
    "fps": ("float", 10, 500, "frame rate"),
    "size": ("int", 48, 256, "frame width = height, pixels"),
    "max_micro": ("int", 0, 10, "micro-expressions per video: 0..this, drawn uniformly"),
    "max_macro": ("int", 0, 10, "macro-expressions per video: 0..this, drawn uniformly"),
    "amplitude": ("float", 0, 10, "micro-expression displacement scale (0.7-2 px at 128 px times this)"),
    "noise": ("float", 0, 20, "sensor noise, grey levels"),
    "flicker": ("float", 0, 0.2, "illumination flicker, relative gain"),
    "drift": ("float", 0, 10, "head motion: slow sway of this many px (at 128 px), quick shifts of 1-3 times it"),
    "blink_every": ("float", 0, 60, "mean seconds between blinks (0: no blink)"),
    "talking": ("float", 0, 1, "probability that a video has talking stretches"),
    "seed": ("int", 0, 2**31 - 1, "random seed: same seed and options give identical files"),
}


@dataclass(frozen=True)
class LongOptions:
    """Options of the long-video generator (see the module docstring)."""

    subjects: int = 10
    videos_per_subject: int = 2
    min_seconds: float = 10.0
    max_seconds: float = 60.0
    fps: float = 30.0
    size: int = 96
    max_micro: int = 4
    max_macro: int = 2
    amplitude: float = 1.0
    noise: float = 2.0
    flicker: float = 0.01
    drift: float = 1.0
    blink_every: float = 4.0
    talking: float = 0.5
    realism: str = "none"
    seed: int = 0

    def __post_init__(self) -> None:
        for name, (kind, low, high, _help) in LONG_SPECS.items():
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ConfigError(f"synthetic-long option {name}={value!r}: expected a number in [{low:g}, {high:g}]")
            if kind == "int" and not float(value).is_integer():
                raise ConfigError(f"synthetic-long option {name}={value!r}: expected a whole number")
            if not low <= value <= high:
                raise ConfigError(f"synthetic-long option {name}={value!r}: expected a number in [{low:g}, {high:g}]")
            object.__setattr__(self, name, int(value) if kind == "int" else float(value))
        if self.min_seconds > self.max_seconds:
            raise ConfigError(f"synthetic-long: min_seconds={self.min_seconds:g} is above max_seconds="
                              f"{self.max_seconds:g}")
        if self.realism not in REALISM_NAMES:
            raise ConfigError(f"synthetic-long option realism={self.realism!r}: expected one of "
                              f"{', '.join(REALISM_NAMES)}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def key(self) -> str:
        blob = json.dumps({"version": LONG_VERSION, **self.to_dict()}, sort_keys=True)
        return f"s{self.subjects}v{self.videos_per_subject}x{self.size}-{hashlib.sha1(blob.encode()).hexdigest()[:10]}"

    @classmethod
    def from_mapping(cls, options: dict[str, Any]) -> "LongOptions":
        valid = [f.name for f in fields(cls)]
        unknown = sorted(set(options) - set(valid))
        if unknown:
            raise ConfigError(f"unknown synthetic-long option(s) {unknown}; valid options: {', '.join(valid)}")
        return cls(**{k: (v if k == "realism" else _number(k, v)) for k, v in options.items()})


def _number(name: str, value: Any) -> Any:
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            raise ConfigError(f"synthetic-long option {name}={value!r}: expected a number") from None
    return value


@dataclass(frozen=True)
class Expression:
    """One expression of a video plan (frames of the video)."""

    type: str  # micro | macro
    label: str
    onset: int
    apex: int
    offset: int
    aus: tuple[int, ...]
    intensities: tuple[float, ...]
    peak_px: float
    head: tuple[float, float]  # rigid head motion at the apex, px (realism), back to 0 at the offset

    @property
    def action_units(self) -> str:
        return "+".join(f"AU{a}" for a in sorted(self.aus))


@dataclass(frozen=True)
class VideoPlan:
    """Everything that defines one long video, drawn before any pixel is rendered."""

    subject: str
    subject_index: int
    video: str
    video_index: int
    n_frames: int
    expressions: tuple[Expression, ...]
    blinks: tuple[tuple[int, int], ...]  # (start, length)
    talking: tuple[tuple[int, int, float, float], ...]  # (start, end, Hz, px)
    sway: tuple[tuple[float, float, float, float], ...]  # (period s, phase, x px, y px)
    shifts: tuple[tuple[int, int, float, float], ...]  # (start, length, dx px, dy px): quick head shifts that stay
    flicker: tuple[float, float]


def _rng(options: LongOptions, *stream: int) -> np.random.Generator:
    return np.random.default_rng([options.seed, 4111, *stream])


def _place(rng: np.random.Generator, n: int, length: int, taken: list[tuple[int, int]], gap: int) -> int | None:
    """A start frame for an event of ``length`` frames that keeps ``gap`` frames from every taken span."""
    hi = n - length - gap
    if hi <= gap:
        return None
    for _ in range(100):
        start = int(rng.integers(gap, hi))
        if all(start + length + gap <= a or start >= b + gap for a, b in taken):
            return start
    return None


def plan_video(options: LongOptions, s: int, v: int, styles: dict[str, tuple[int, ...] | None] | None = None
               ) -> VideoPlan:
    """Video ``v`` of subject ``s``: its length, expressions, blinks, talking and head motion."""
    rng = _rng(options, s, v)
    fps, scale = options.fps, options.size / 128.0
    n = int(round(rng.uniform(options.min_seconds, options.max_seconds) * fps))
    realism = Realism() if options.realism == "composite" else None
    classes, shares = list(COMPOSITE_SHARES), np.array(list(COMPOSITE_SHARES.values()))
    counts = (int(rng.integers(0, options.max_micro + 1)), int(rng.integers(0, options.max_macro + 1)))
    taken: list[tuple[int, int]] = []
    expressions = []
    for kind, count in (("macro", counts[1]), ("micro", counts[0])):  # the long ones first: they need room
        seconds, px = (MACRO_SECONDS, MACRO_PX) if kind == "macro" else (MICRO_SECONDS, MICRO_PX)
        for _ in range(count):
            length = max(4, int(round(rng.uniform(*seconds) * fps)))
            rise = max(2, int(round(rng.uniform(0.3, 0.5) * length)))
            label = classes[int(rng.choice(len(classes), p=shares / shares.sum()))]
            peak = float(rng.uniform(*px)) * scale * (options.amplitude if kind == "micro" else 1.0)
            draws, z = rng.uniform(0, 1, 4), float(rng.standard_normal())  # drawn with realism on or off alike
            start = _place(rng, n, length, taken, int(GAP_SECONDS * fps))
            if start is None:
                continue
            motion_label, head = label, (0.0, 0.0)
            if realism is not None:
                if draws[0] < realism.label_noise:
                    others = [c for c in classes if c != label]
                    motion_label = others[int(draws[1] * len(others))]
                factor = math.exp(realism.intensity_sigma * z)
                peak *= factor * (realism.weak_scale if draws[2] < realism.weak_share else 1.0)
                angle = 2 * math.pi * draws[3]
                mag = realism.head_motion * scale
                head = (mag * math.cos(angle), mag * math.sin(angle))
            aus = (styles or {}).get(motion_label) or prototype(motion_label, rng)
            intensities = tuple(float(x) for x in rng.uniform(0.6, 1.0, len(aus)))
            taken.append((start, start + length))
            expressions.append(Expression(kind, label, start, start + rise, start + length - 1, tuple(aus),
                                          intensities, peak, head))
    expressions.sort(key=lambda e: e.onset)
    blinks = []
    if options.blink_every > 0:
        t = float(rng.uniform(0.3, options.blink_every))
        while t * fps < n - 2:
            blinks.append((int(t * fps), max(3, int(round(rng.uniform(0.1, 0.2) * fps)))))
            t += float(rng.uniform(0.5, 1.5)) * options.blink_every
    talking = []
    if rng.uniform() < options.talking:
        for _ in range(int(rng.integers(1, 3))):
            length = int(round(rng.uniform(1.5, 4.0) * fps))
            if n > length + 2:
                start = int(rng.integers(0, n - length))
                talking.append((start, start + length, float(rng.uniform(3, 5)), float(rng.uniform(1.0, 2.5)) * scale))
    sway = tuple((float(rng.uniform(5, 20)), float(rng.uniform(0, 2 * math.pi)),
                  float(rng.uniform(-1, 1)) * options.drift * scale / 3,
                  float(rng.uniform(-1, 1)) * options.drift * scale / 3) for _ in range(3))
    shifts = []
    t = float(rng.uniform(2, 30))
    while t * fps < n - 2 and options.drift > 0:
        angle = float(rng.uniform(0, 2 * math.pi))
        mag = float(rng.uniform(1, 3)) * scale * options.drift
        shifts.append((int(t * fps), max(2, int(round(rng.uniform(0.3, 0.8) * fps))), mag * math.cos(angle),
                       mag * math.sin(angle)))
        t += float(rng.uniform(0.5, 1.5)) * 15
    return VideoPlan(f"p{s + 1:02d}", s, f"p{s + 1:02d}_v{v + 1}", v, n, tuple(expressions), tuple(blinks),
                     tuple(talking), sway, tuple(shifts), (float(rng.uniform(2, 12)), float(rng.uniform(0, 6.28))))


def plan_dataset(options: LongOptions) -> list[VideoPlan]:
    """Every video of the set (cheap: nothing rendered)."""
    plans = []
    realism = Realism() if options.realism == "composite" else None
    for s in range(options.subjects):
        styles = subject_styles(realism, options.seed, s, tuple(COMPOSITE_SHARES)) if realism else None
        plans += [plan_video(options, s, v, styles) for v in range(options.videos_per_subject)]
    return plans


def _smoothstep(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3 - 2 * x)


def head_track(plan: VideoPlan, fps: float) -> np.ndarray:
    """(n, 2) rigid head translation per frame, px: sway + quick shifts + realism motion at expressions."""
    t = np.arange(plan.n_frames, dtype=np.float64)
    out = np.zeros((plan.n_frames, 2))
    for period, phase, ax, ay in plan.sway:
        out += np.sin(2 * np.pi * t / (period * fps) + phase)[:, None] * (ax, ay)
    for start, length, dx, dy in plan.shifts:
        out += _smoothstep((t - start) / length)[:, None] * (dx, dy)
    for e in plan.expressions:
        if e.head != (0.0, 0.0):
            up = _smoothstep((t - e.onset) / max(1, e.apex - e.onset))
            down = _smoothstep((t - e.apex) / max(1, e.offset - e.apex))
            out += (up - down)[:, None] * e.head
    return out.astype(np.float32)


def talking_weight(plan: VideoPlan, fps: float) -> np.ndarray:
    """Mouth opening per frame, px (0 outside talking stretches)."""
    t = np.arange(plan.n_frames, dtype=np.float64)
    w = np.zeros(plan.n_frames)
    for start, end, hz, px in plan.talking:
        inside = (t >= start) & (t < end)
        ramp = np.minimum(_smoothstep((t - start) / (0.2 * fps)), _smoothstep((end - t) / (0.2 * fps)))
        w += inside * ramp * px * 0.5 * (1 - np.cos(2 * np.pi * hz * (t - start) / fps))
    return w.astype(np.float32)


def render_video(options: LongOptions, plan: VideoPlan, on_frame: Callable[[int, np.ndarray], None]) -> None:
    """Render ``plan`` frame by frame (grey uint8, ``size`` px), handing each to ``on_frame(t, frame)``."""
    size, fps = options.size, options.fps
    face = subject_face(SynthOptions(seed=FACE_SEED + options.seed, size=size), plan.subject_index)
    fields_ = []
    for e in plan.expressions:
        spread = 2.0 if e.type == "macro" else 1.0
        m = expression_motion(e.aus, e.intensities, ("",) * len(e.aus), e.peak_px, face.landmarks,
                              face.face_width * spread, size, max_strain=0.8)
        fields_.append((m.flow, intensity_profile(plan.n_frames, e.onset, e.apex, e.offset)))
    talk = au_field(26, face.landmarks, face.face_width, size) + 0.5 * au_field(16, face.landmarks, face.face_width,
                                                                                 size)
    talk /= max(float(np.sqrt((talk ** 2).sum(0)).max()), 1e-6)
    talk_w = talking_weight(plan, fps)
    closure = np.zeros(plan.n_frames, np.float32)
    for start, length in plan.blinks:
        closure = np.maximum(closure, blink_profile(plan.n_frames, start, length))
    head = head_track(plan, fps)
    noise_level = options.noise * (Realism().noise if options.realism == "composite" else 1.0)
    rng = _rng(options, plan.subject_index, plan.video_index, 99)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    centre = (float(face.landmarks["nose_bridge"][0]), float(face.landmarks["nose_bridge"][1]))
    freq, phase = plan.flicker
    for t in range(plan.n_frames):
        noise = rng.standard_normal(face.albedo.shape, dtype=np.float32)
        base = face.albedo
        if closure[t] > 0:
            alpha, lash = blink_overlay(face.eyes, float(closure[t]), size, (xx, yy))
            base = face.albedo * (1 - alpha) + face.skin * alpha - lash
        gx, gy = drift_grid(size, (float(head[t, 0]), float(head[t, 1])), 0.0, centre, (xx, yy))
        moving = [flow * profile[t] for flow, profile in fields_ if profile[t] > 0]
        if talk_w[t] > 0:
            moving.append(talk * talk_w[t])
        if moving:
            back = inverse_field(sum(moving[1:], moving[0]), iterations=3, grid=(xx, yy))
            gx, gy = gx - back[0], gy - back[1]
        img = cv2.remap(base, gx, gy, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT101)
        gain = 1.0 + options.flicker * math.sin(2 * math.pi * freq * t / fps + phase)
        img = img * (face.lighting * np.float32(gain)) + noise * np.float32(noise_level)
        on_frame(t, np.clip(np.rint(img), 0, 255).astype(np.uint8))


# ----------------------------------------------------------------------------- writing


def dataset_folder(options: LongOptions) -> Path:
    base = datasets_dir() / NAME
    return base if options == LongOptions() else base / "variants" / options.key()


def is_current(out: Path, options: LongOptions) -> bool:
    try:
        meta = json.loads((out / "meta.json").read_text())
    except (OSError, ValueError):
        return False
    return meta.get("version") == LONG_VERSION and meta.get("options") == options.to_dict() \
        and (out / "intervals.csv").is_file()


def write_video(path: Path, options: LongOptions, plan: VideoPlan) -> None:
    """Render and encode one video (FFV1, lossless, grey), streamed; written beside and renamed over."""
    tmp = path.with_name(f".{path.stem}.tmp{path.suffix}")
    writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*"FFV1"), options.fps, (options.size, options.size),
                             isColor=False)
    if not writer.isOpened():
        raise DatasetError(f"{tmp}: OpenCV cannot write an FFV1 video here (is its FFmpeg back end missing?)")
    try:
        render_video(options, plan, lambda t, frame: writer.write(frame))
    finally:
        writer.release()
    os.replace(tmp, path)


def ensure_long(options: LongOptions, *, folder: Path | None = None) -> Path:
    """The set with these options, written once (a lock serialises writers); returns its ``intervals.csv``."""
    out = folder or dataset_folder(options)
    if is_current(out, options):
        return out / "intervals.csv"
    out.mkdir(parents=True, exist_ok=True)
    with FileLock(str(out) + ".lock"):
        if is_current(out, options):
            return out / "intervals.csv"
        foreign = [p.name for p in out.iterdir() if p.name not in ("videos", "intervals.csv", "distractors.csv",
                                                                     "meta.json", "variants")]
        if foreign:
            raise DatasetError(f"{out} holds files the long-video generator did not write ({', '.join(foreign[:3])});"
                               " choose an empty folder")
        (out / "meta.json").unlink(missing_ok=True)
        shutil.rmtree(out / "videos", ignore_errors=True)
        (out / "videos").mkdir()
        plans = plan_dataset(options)
        intervals, distractors = [], []
        for plan in plans:
            rel = f"videos/{plan.video}.mkv"
            write_video(out / rel, options, plan)
            intervals += _interval_rows(plan, rel, options.fps)
            distractors += _distractor_rows(plan, rel)
        _write_csv(out / "intervals.csv", INTERVAL_HEADER, intervals)
        _write_csv(out / "distractors.csv", DISTRACTOR_HEADER, distractors)
        meta = {"generator": "mer_core.spotting.synthetic_long", "version": LONG_VERSION, "options": options.to_dict(),
                "videos": len(plans), "frames": sum(p.n_frames for p in plans),
                "micro": sum(e.type == "micro" for p in plans for e in p.expressions),
                "macro": sum(e.type == "macro" for p in plans for e in p.expressions)}
        (out / "meta.json").write_text(json.dumps(meta, indent=1, sort_keys=True) + "\n")
    return out / "intervals.csv"


def _interval_rows(plan: VideoPlan, rel: str, fps: float) -> list[dict[str, Any]]:
    base = dict(video=rel, subject=plan.subject, fps=f"{fps:g}", cropped="true")
    if not plan.expressions:
        return [dict(base)]
    return [dict(base, onset=e.onset, apex=e.apex, offset=e.offset, type=e.type, label=e.label,
                 action_units=e.action_units) for e in plan.expressions]


def _distractor_rows(plan: VideoPlan, rel: str) -> list[dict[str, Any]]:
    rows = [dict(video=rel, kind="blink", start=s, end=min(plan.n_frames - 1, s + n)) for s, n in plan.blinks]
    rows += [dict(video=rel, kind="talking", start=s, end=e - 1) for s, e, _hz, _px in plan.talking]
    rows += [dict(video=rel, kind="head_shift", start=s, end=min(plan.n_frames - 1, s + n))
             for s, n, _x, _y in plan.shifts]
    return sorted(rows, key=lambda r: r["start"])


def _write_csv(path: Path, header: tuple[str, ...], rows: list[dict[str, Any]]) -> None:
    tmp = path.with_suffix(".tmp")
    with open(tmp, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(header), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    os.replace(tmp, path)
