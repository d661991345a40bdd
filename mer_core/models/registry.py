"""Model registry, in the manner of timm: register, create, list.

Each registered model has a typed default config per preset (``cpu`` for this
laptop-class machine, ``paper`` for a GPU). The config names the input
channels and size that preprocessing must produce, so neither the dashboard
nor the trainer repeats those constants.

Model conventions (tests are parametrised over the registry):

* ``forward(x)`` takes one float tensor (N, C, H, W) whose channels are the
  config's ``channels`` in order, and returns logits (N, num_classes);
* ``forward_features`` / ``forward_head`` split the body and the classifier;
* optional ``attention_maps(x) -> dict[str, Tensor]`` exposes the model's own
  attention for the explanations (documented per model);
* optional ``gradcam_layers() -> dict[str, nn.Module]`` names layers that
  Grad-CAM may use.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Callable

from torch import nn

from mer_core.errors import ConfigError, UnknownNameError
from mer_core.preprocess.channels import check_channels


@dataclass(frozen=True)
class ModelConfig:
    """Fields every model config has; models subclass it with their own."""

    channels: tuple[str, ...] = ("flow_u", "flow_v", "strain")
    input_size: int = 28
    num_classes: int = 3
    dropout: float = 0.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "channels", check_channels(tuple(self.channels)))
        if not 8 <= self.input_size <= 512:
            raise ConfigError(f"input_size={self.input_size}: expected 8..512 pixels")
        if self.num_classes < 2:
            raise ConfigError(f"num_classes={self.num_classes}: expected at least 2 classes")
        if not 0 <= self.dropout < 1:
            raise ConfigError(f"dropout={self.dropout}: expected 0 <= dropout < 1")

    @property
    def in_channels(self) -> int:
        return len(self.channels)


@dataclass(frozen=True)
class ModelSpec:
    name: str
    config_cls: type
    builder: Callable[[Any], nn.Module]
    presets: dict[str, dict[str, Any]] = field(default_factory=dict)
    description: str = ""
    # training defaults a preset recommends (optimizer, lr, loss, epochs, batch size)
    train_defaults: dict[str, dict[str, Any]] = field(default_factory=dict)
    # preset -> field -> where its value comes from (see PROVENANCE_KINDS), one entry per preset field
    provenance: dict[str, dict[str, str]] = field(default_factory=dict)


# Where a preset's number comes from; each provenance note names one of these (it may add detail,
# e.g. "DenseNet-121 layout chosen here").
PROVENANCE_KINDS = ("paper", "reference implementation", "chosen here", "tuned on synthetic seed 0",
                    "chosen on the realism variant")


# A 'paper*' preset is the paper's whole recipe: it sets every one of these training fields itself (each with
# its provenance), so nothing comes from ExperimentConfig's general defaults.
PAPER_RECIPE_FIELDS = ("epochs", "optimizer", "lr", "batch_size", "scheduler", "weight_decay", "loss",
                       "class_balance", "augment", "selection")

_MODELS: dict[str, ModelSpec] = {}


def register_model(
    name: str,
    *,
    config_cls: type,
    presets: dict[str, dict[str, Any]],
    description: str,
    train_defaults: dict[str, dict[str, Any]] | None = None,
    provenance: dict[str, dict[str, str]] | None = None,
) -> Callable[[Callable[[Any], nn.Module]], Callable[[Any], nn.Module]]:
    """Decorator registering a builder ``(config) -> nn.Module``, such as a model class.

    ``provenance[preset]`` says where every value of that preset (its config
    fields and its ``train_defaults``) comes from: ``"*"`` is the preset's
    default note, other keys are per-field exceptions, e.g.
    ``{"cpu": {"*": "chosen here", "epochs": "tuned on synthetic seed 0"}}``.
    A field without a note, a note for a field the preset does not set, or a
    note naming none of :data:`PROVENANCE_KINDS` is refused.
    """

    def deco(builder: Callable[[Any], nn.Module]) -> Callable[[Any], nn.Module]:
        if "cpu" not in presets:
            raise ValueError(f"model {name!r} must define a 'cpu' preset")
        defaults = dict(train_defaults or {})
        for p in (p for p in presets if p.startswith("paper")):
            missing = [f for f in PAPER_RECIPE_FIELDS if f not in defaults.get(p, {})]
            if missing:
                raise ConfigError(f"model {name!r} preset {p!r}: a paper preset sets its whole recipe; "
                                  f"train_defaults lacks {missing} (set each, with its provenance)")
        notes = {p: _expand_provenance(name, p, {**presets[p], **defaults.get(p, {})}, (provenance or {}).get(p))
                 for p in presets}
        _MODELS[name] = ModelSpec(name, config_cls, builder, dict(presets), description, defaults, notes)
        return builder

    return deco


def _expand_provenance(model: str, preset: str, values: dict[str, Any], notes: dict[str, str] | None) -> dict[str, str]:
    """One provenance note per field of a preset (model config + training defaults)."""
    notes = dict(notes or {})
    default = notes.pop("*", None)
    stray = sorted(set(notes) - set(values))
    if stray:
        raise ConfigError(f"model {model!r} preset {preset!r}: provenance for {stray}, which the preset does not set; "
                          f"its fields: {', '.join(sorted(values))}")
    out = {key: notes.get(key, default) for key in values}
    missing = sorted(k for k, v in out.items() if not v)
    if missing:
        raise ConfigError(f"model {model!r} preset {preset!r}: no provenance for {missing}; give provenance="
                          f"{{{preset!r}: {{'*': ..., field: ...}}}} with one of {', '.join(PROVENANCE_KINDS)}")
    for key, note in out.items():
        if not any(kind in note for kind in PROVENANCE_KINDS):
            raise ConfigError(f"model {model!r} preset {preset!r}: provenance {key}={note!r} names none of "
                              f"{', '.join(PROVENANCE_KINDS)}")
    return out  # type: ignore[return-value]


def list_models() -> list[str]:
    return sorted(_MODELS)


def model_spec(name: str) -> ModelSpec:
    if name not in _MODELS:
        raise UnknownNameError(f"unknown model {name!r}; valid models: {', '.join(sorted(_MODELS))}")
    return _MODELS[name]


def list_presets(name: str) -> list[str]:
    return list(model_spec(name).presets)


def _spec_with_preset(name: str, preset: str) -> ModelSpec:
    spec = model_spec(name)
    if preset not in spec.presets:
        raise UnknownNameError(f"model {name!r} has no preset {preset!r}; valid presets: {', '.join(spec.presets)}")
    return spec


def model_config(name: str, preset: str = "cpu", **overrides: Any) -> Any:
    """The typed config of a model at a preset, with overrides applied."""
    spec = _spec_with_preset(name, preset)
    valid = {f.name for f in dataclasses.fields(spec.config_cls)}
    unknown = sorted(set(overrides) - valid)
    if unknown:
        raise ConfigError(f"model {name!r}: unknown option(s) {unknown}; valid options: {', '.join(sorted(valid))}")
    values = {k: tuple(v) if isinstance(v, list) else v for k, v in {**spec.presets[preset], **overrides}.items()}
    try:
        return spec.config_cls(**values)
    except TypeError as exc:
        raise ConfigError(f"model {name!r}: {exc}") from exc


def create_model(name: str, preset: str = "cpu", config: Any = None, **overrides: Any) -> nn.Module:
    """Build a model from its registry name (or from an explicit config)."""
    spec = model_spec(name)
    cfg = config if config is not None else model_config(name, preset, **overrides)
    model = spec.builder(cfg)
    model.config = cfg  # type: ignore[attr-defined]
    model.model_name = name  # type: ignore[attr-defined]
    return model


def train_defaults(name: str, preset: str = "cpu") -> dict[str, Any]:
    """Training hyperparameters a model's preset recommends (may be empty)."""
    return dict(model_spec(name).train_defaults.get(preset, {}))


def preset_provenance(name: str, preset: str = "cpu") -> dict[str, str]:
    """Field -> where its value comes from, for every value a preset sets (config and training defaults)."""
    return dict(_spec_with_preset(name, preset).provenance[preset])


def provenance_summary(name: str, preset: str = "cpu") -> list[str]:
    """Short lines grouping a preset's fields by provenance, e.g. ``'paper: channels, input_size'``."""
    groups: dict[str, list[str]] = {}
    for key, note in preset_provenance(name, preset).items():
        groups.setdefault(note, []).append(key)
    return [f"{note}: {', '.join(keys)}" for note, keys in groups.items()]
