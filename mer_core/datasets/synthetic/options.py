"""Generator options: one validated, frozen dataclass shared by the library,
the CLI (``mer synth``), the indexers and the dashboard form.

Options left at ``None`` take the variant's default (micro or macro), so
``SynthOptions(macro=True)`` is the macro set and any explicit value wins.
:meth:`SynthOptions.key` names the folder a non-default set is written to, so
changing an option generates a new set instead of reusing a stale one.
"""
from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass, fields
from typing import Any

from mer_core.datasets.synthetic.motion import BASIC_CLASSES, CLASS_ACTION_UNITS, COMPOSITE_CLASSES
from mer_core.errors import ConfigError

GENERATOR_VERSION = "1.2"  # bump whenever the output changes: stale folders regenerate

# Variant defaults. Micro: about the size of one MEGC2019 part (16 subjects,
# ~160 clips), 128 px, 30 frames at 100 fps (a 300 ms window). Macro: distinct
# subjects, about 5x the motion (amplitude 8, lowered by the strain cap),
# longer clips at 30 fps, the six basic emotions; small enough to pre-train a
# model on CPU in minutes.
MICRO_DEFAULTS: dict[str, Any] = dict(
    subjects=16, clips_per_subject=10, clip_jitter=2, frames=30, amplitude=1.0, drift=0.3, fps=100.0,
    classes=COMPOSITE_CLASSES,
)
MACRO_DEFAULTS: dict[str, Any] = dict(
    subjects=10, clips_per_subject=12, clip_jitter=0, frames=40, amplitude=8.0, drift=0.8, fps=30.0,
    classes=BASIC_CLASSES,
)

# name -> (kind, low, high, low_inclusive, help). Shown by the CLI and the dashboard form.
OPTION_SPECS: dict[str, tuple[str, float, float, bool, str]] = {
    "subjects": ("int", 1, 200, True, "number of subjects (identities); LOSO has one fold per subject"),
    "clips_per_subject": ("int", 1, 500, True, "mean number of clips per subject"),
    "clip_jitter": ("int", 0, 100, True, "clips per subject vary by up to +/- this many"),
    "size": ("int", 32, 512, True, "frame width = height in pixels"),
    "frames": ("int", 8, 400, True, "frames per clip (each clip varies by about +/-12%)"),
    "amplitude": ("float", 0.0, 20.0, False, "motion scale: apex displacement is 0.5-2 px times this, at 128 px"),
    "noise": ("float", 0.0, 50.0, True, "sensor noise, standard deviation in grey levels (0-255)"),
    "blink_rate": ("float", 0.0, 1.0, True, "probability that a clip contains an eye blink"),
    "drift": ("float", 0.0, 5.0, True, "largest head drift over a clip, px at 128 px"),
    "flicker": ("float", 0.0, 0.2, True, "illumination flicker, relative gain amplitude"),
    "seed": ("int", 0, 2**32 - 1, True, "random seed: same seed and options give identical files"),
    "fps": ("float", 0.0, 10000.0, False, "frame rate written to the manifest (sets blink duration)"),
    "macro": ("bool", 0, 1, True, "macro-expression variant (distinct subjects, larger, longer motions)"),
    "classes": ("classes", 0, 0, True, "number of classes or class names (see KNOWN_CLASSES)"),
    "color": ("bool", 0, 1, True, "write colour frames instead of greyscale"),
}
KNOWN_CLASSES: tuple[str, ...] = tuple(CLASS_ACTION_UNITS)
# MEGC2019 composite proportions (250/109/83 of 442 clips)
COMPOSITE_SHARES = {"negative": 250 / 442, "positive": 109 / 442, "surprise": 83 / 442}


@dataclass(frozen=True)
class SynthOptions:
    """Options of the synthetic generator (``None`` = the variant's default)."""

    subjects: int | None = None
    clips_per_subject: int | None = None
    clip_jitter: int | None = None
    size: int = 128
    frames: int | None = None
    amplitude: float | None = None
    noise: float = 2.0
    blink_rate: float = 0.35
    drift: float | None = None
    flicker: float = 0.01
    seed: int = 0
    macro: bool = False
    classes: tuple[str, ...] | int | str | None = None
    color: bool = False
    fps: float | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.macro, bool):
            raise ConfigError(f"synthetic option macro={self.macro!r}: expected true or false")
        defaults = MACRO_DEFAULTS if self.macro else MICRO_DEFAULTS
        for name, value in defaults.items():
            if getattr(self, name) is None:
                object.__setattr__(self, name, value)
        for name, (kind, low, high, low_incl, _help) in OPTION_SPECS.items():
            value = getattr(self, name)
            if kind == "classes":
                object.__setattr__(self, name, _classes(value, defaults["classes"], self.macro))
                continue
            object.__setattr__(self, name, _check(name, value, kind, low, high, low_incl))

    # ------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["classes"] = list(self.classes)
        return d

    def is_default(self) -> bool:
        """True for the variant's default set (written to the dataset's main folder)."""
        return self == SynthOptions(macro=self.macro)

    def key(self) -> str:
        """A short folder name for these options: readable prefix + content hash."""
        blob = json.dumps({"version": GENERATOR_VERSION, **self.to_dict()}, sort_keys=True)
        digest = hashlib.sha1(blob.encode()).hexdigest()[:10]
        return f"s{self.subjects}c{self.clips_per_subject}x{self.size}f{self.frames}-{digest}"

    def class_shares(self) -> dict[str, float]:
        """Target class proportions: MEGC2019 composite shares for composite
        classes, equal shares otherwise."""
        if set(self.classes) <= set(COMPOSITE_SHARES):
            total = sum(COMPOSITE_SHARES[c] for c in self.classes)
            return {c: COMPOSITE_SHARES[c] / total for c in self.classes}
        return {c: 1.0 / len(self.classes) for c in self.classes}

    @classmethod
    def from_mapping(cls, options: dict[str, Any], *, macro: bool | None = None) -> "SynthOptions":
        """Build from keyword options (an indexer's ``**options``), naming unknown keys."""
        valid = [f.name for f in fields(cls)]
        unknown = sorted(set(options) - set(valid))
        if unknown:
            raise ConfigError(f"unknown synthetic dataset option(s) {unknown}; valid options: {', '.join(valid)}")
        opts = dict(options)
        if macro is not None:
            if "macro" in opts and bool(opts["macro"]) != macro:
                raise ConfigError(
                    f"option macro={opts['macro']!r} contradicts the dataset; use 'synthetic-macro' for the macro variant"
                )
            opts["macro"] = macro
        return cls(**opts)


def option_fields(macro: bool = False) -> list[dict[str, Any]]:
    """Describe every option (name, kind, default, bounds, help) for forms and docs."""
    default = SynthOptions(macro=macro)
    out = []
    for name, (kind, low, high, low_incl, help_text) in OPTION_SPECS.items():
        value = getattr(default, name)
        out.append(
            dict(
                name=name,
                kind=kind,
                default=list(value) if isinstance(value, tuple) else value,
                min=low if kind in ("int", "float") else None,
                max=high if kind in ("int", "float") else None,
                min_inclusive=low_incl,
                help=help_text,
            )
        )
    return out


def _check(name: str, value: Any, kind: str, low: float, high: float, low_incl: bool) -> Any:
    if kind == "bool":
        if isinstance(value, bool):
            return value
        raise ConfigError(f"synthetic option {name}={value!r}: expected true or false")
    if isinstance(value, (bool, str, bytes)):
        raise ConfigError(f"synthetic option {name}={value!r}: expected a number")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"synthetic option {name}={value!r}: expected a number") from None
    if not math.isfinite(number):
        raise ConfigError(f"synthetic option {name}={value!r}: expected a finite number")
    if kind == "int":
        if not number.is_integer():
            raise ConfigError(f"synthetic option {name}={value!r}: expected a whole number")
        number = int(number)
    too_low = number < low if low_incl else number <= low
    if too_low or number > high:
        lo = f">= {low:g}" if low_incl else f"> {low:g}"
        raise ConfigError(f"synthetic option {name}={value!r}: expected {lo} and <= {high:g}")
    return number


def _classes(value: Any, default: tuple[str, ...], macro: bool) -> tuple[str, ...]:
    variant = "macro" if macro else "micro"
    if isinstance(value, str):
        text = value.strip()
        value = int(text) if text.isdigit() else [v for v in text.replace("+", ",").split(",") if v.strip()]
    if isinstance(value, bool):
        raise ConfigError(f"synthetic option classes={value!r}: expected a number of classes or class names")
    if hasattr(value, "__index__"):  # int or numpy integer
        n = int(value)
        if n > len(default):
            raise ConfigError(
                f"synthetic option classes={n}: the {variant} generator knows {len(default)} classes "
                f"({', '.join(default)}); pass at most {len(default)}, or class names from {', '.join(KNOWN_CLASSES)}"
            )
        if n < 2:
            raise ConfigError(f"synthetic option classes={n}: a recognition task needs at least 2 classes")
        return tuple(default[:n])
    try:
        names = tuple(str(v).strip().lower() for v in value)
    except TypeError:
        raise ConfigError(f"synthetic option classes={value!r}: expected a number of classes or class names") from None
    unknown = [n for n in names if n not in CLASS_ACTION_UNITS]
    if unknown:
        raise ConfigError(
            f"synthetic option classes: unknown class(es) {unknown}; the generator knows {', '.join(KNOWN_CLASSES)}"
        )
    if len(set(names)) != len(names):
        raise ConfigError(f"synthetic option classes={list(names)}: a class is listed twice")
    if len(names) < 2:
        raise ConfigError(f"synthetic option classes={list(names)}: a recognition task needs at least 2 classes")
    return names
