"""The embedded synthetic micro-expression dataset (and its macro variant).

Real MER datasets are licensed, so the project's default data is generated:
procedural faces (:mod:`.face`) whose skin is moved by facial action units
(:mod:`.motion`), with the confounds of real recordings (blinks in every
class, head drift, sensor noise, illumination flicker) and a ground truth real
data never has: the active AUs and the masks of what really moved.

Generated sets are written in the generic manifest layout and read back by
:func:`mer_core.datasets.manifest.read_manifest`, so the synthetic data runs
through the same code path as a user's data. Folders (under
``paths.datasets_dir()``):

* ``synthetic/``: the default micro set; ``synthetic-macro/``: the macro set;
* ``<that>/variants/<options key>/``: any other options (tests use tiny ones).

Calibration (``benchmarks/bench_synthetic_calibration.py``, generator 1.2,
default set, LOSO over 16 subjects, pooled UF1, seeds 0-3): appearance only
(apex pixels, logistic regression / 1-NN) 0.32-0.40; DIS flow onset->apex +
logistic regression 0.90-0.93; Farneback flow 0.95-0.97. The label is in the
motion, not the face. (DIS on frames first shrunk to 32 px: 0.75-0.80, as
the motions become sub-pixel: compute flow before resizing.)

For a dataset page: :class:`SynthOptions` / :func:`option_fields` (the form),
:func:`ensure_dataset` (generate), :func:`load_masks` (ground truth per clip:
``au`` and ``blink`` bool masks at frame size, true apex flow, per-AU
regions), :data:`ACTION_UNITS` and :data:`CLASS_ACTION_UNITS` (the AU list and
which combinations each class draws from), :func:`plan_dataset` (counts
without rendering), :func:`render_clip` (a clip in memory, ``clean=True``
without confounds).

Use::

    from mer_core.datasets import index_dataset
    table = index_dataset("synthetic")                       # default set
    tiny = index_dataset("synthetic", subjects=4, clips_per_subject=6, size=64, frames=16)
    masks = load_masks(table.mask_path[0])                   # ground truth
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from mer_core.datasets.manifest import read_manifest
from mer_core.datasets.registry import register_dataset
from mer_core.datasets.synthetic.export import ensure_realism
from mer_core.datasets.synthetic.generate import (  # noqa: F401
    clip_masks,
    clip_motion,
    dataset_name,
    generate,
    is_current,
    load_masks,
    plan_dataset,
    plan_subject,
    render_clip,
    showcase_clips,
    subject_face,
)
from mer_core.datasets.synthetic.motion import (  # noqa: F401
    ACTION_UNITS,
    CLASS_ACTION_UNITS,
)
from mer_core.datasets.synthetic.options import (  # noqa: F401
    KNOWN_CLASSES,
    OPTION_SPECS,
    SynthOptions,
    option_fields,
)
from mer_core.datasets.synthetic.realism import REALISM_VERSION
from mer_core.errors import ConfigError
from mer_core.paths import datasets_dir


def dataset_folder(options: SynthOptions) -> Path:
    """Where a set with these options lives (the default set: the main folder)."""
    base = datasets_dir() / dataset_name(options)
    return base if options.is_default() else base / "variants" / options.key()


def ensure_dataset(options: SynthOptions | None = None, *, progress: Any = None) -> Path:
    """Generate the set in its standard folder if missing or stale; return its manifest."""
    options = options or SynthOptions()
    return generate(dataset_folder(options), options, progress=progress)


def _index(root: Path | None, macro: bool, options: dict[str, Any]) -> pd.DataFrame:
    opts = SynthOptions.from_mapping(options, macro=macro)
    folder = Path(root) if root is not None else dataset_folder(opts)
    manifest = generate(folder, opts)
    return read_manifest(manifest, dataset=dataset_name(opts))


@register_dataset(
    "synthetic",
    description="Embedded synthetic micro-expressions (generated, with ground-truth AUs and motion masks)",
    default_class_set="composite3",
    class_sets=("composite3",),
    needs_root=False,
)
def index_synthetic(root: Path | None = None, **options: Any) -> pd.DataFrame:
    """Index the synthetic micro set, generating it first when needed.

    ``options`` are :class:`SynthOptions` fields; non-default options get their
    own folder. ``root`` writes/reads the set in a folder of your choice.
    """
    return _index(root, False, options)


@register_dataset(
    "synthetic-macro",
    description="Synthetic macro-expressions (distinct subjects, 6 basic emotions) for pre-training",
    default_class_set="native",
    class_sets=("native", "composite3"),
    needs_root=False,
)
def index_synthetic_macro(root: Path | None = None, **options: Any) -> pd.DataFrame:
    """Index the synthetic macro set (see :func:`index_synthetic`)."""
    return _index(root, True, options)


@register_dataset(
    "synthetic-realism",
    description="Realism-calibrated synthetic composite (68 subjects, 442 clips in the MEGC2019 shape; as hard as "
                "real data on model-independent statistics)",
    default_class_set="composite3",
    class_sets=("composite3",),
    needs_root=False,
)
def index_synthetic_realism(root: Path | None = None, *, form: str = "flow-apex", seed: int = 0,
                            subjects: int | None = None, version: str | None = None) -> pd.DataFrame:
    """Index the realism-calibrated variant (see :mod:`.realism`), writing it first when needed.

    ``form`` is ``flow-apex`` (28x28 min-max flow images + apex crops, the
    composite's common public form), ``apex-only`` or ``frames``;
    ``subjects`` keeps the first N of the 68 (parts taken in turn);
    ``version`` (a run records it) must be this MER Bench's calibration.
    """
    if version is not None and version != REALISM_VERSION:
        raise ConfigError(f"synthetic-realism version={version!r}: this MER Bench has calibration {REALISM_VERSION!r} "
                          "only; a run on another calibration cannot be repeated here")
    if root is not None:
        raise ConfigError("synthetic-realism is written to the dataset cache; it takes no root "
                          "(use `mer synth --realism composite --export FORM DIR` for a copy elsewhere)")
    for name, value in (("seed", seed), ("subjects", subjects)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
            raise ConfigError(f"synthetic-realism option {name}={value!r}: expected a whole number")
    manifest = ensure_realism(form, seed=seed, subjects=subjects)
    return read_manifest(manifest, class_set="composite3", flow_encoding="minmax" if form == "flow-apex" else "")


def data_label(dataset: str, options: dict[str, Any] | None = None) -> str:
    """How a results table names the data a run used: the realism variant with its calibration, option sets."""
    options = dict(options or {})
    if dataset == "synthetic-realism":
        version = options.pop("version", None)
        label = f"realism variant, calibration {version}" if version else "realism variant (calibration not recorded)"
        extra = ", ".join(f"{k} {v}" for k, v in sorted(options.items()) if k != "form" or v != "flow-apex")
        return f"{label}, {extra}" if extra else label
    if dataset in ("synthetic", "synthetic-macro"):
        return f"{dataset}, " + ", ".join(f"{k} {v}" for k, v in sorted(options.items())) if options else \
            f"{dataset} (default set)"
    return dataset
