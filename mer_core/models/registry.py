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


_MODELS: dict[str, ModelSpec] = {}


def register_model(
    name: str,
    *,
    config_cls: type,
    presets: dict[str, dict[str, Any]],
    description: str,
    train_defaults: dict[str, dict[str, Any]] | None = None,
) -> Callable[[Callable[[Any], nn.Module]], Callable[[Any], nn.Module]]:
    """Decorator registering a builder ``(config) -> nn.Module``."""

    def deco(builder: Callable[[Any], nn.Module]) -> Callable[[Any], nn.Module]:
        if "cpu" not in presets:
            raise ValueError(f"model {name!r} must define a 'cpu' preset")
        _MODELS[name] = ModelSpec(name, config_cls, builder, dict(presets), description, dict(train_defaults or {}))
        return builder

    return deco


def _ensure_loaded() -> None:
    import mer_core.models  # noqa: F401  (registers the built-in models)


def list_models() -> list[str]:
    _ensure_loaded()
    return sorted(_MODELS)


def model_spec(name: str) -> ModelSpec:
    _ensure_loaded()
    if name not in _MODELS:
        raise UnknownNameError(f"unknown model {name!r}; valid models: {', '.join(sorted(_MODELS))}")
    return _MODELS[name]


def list_presets(name: str) -> list[str]:
    return list(model_spec(name).presets)


def model_config(name: str, preset: str = "cpu", **overrides: Any) -> Any:
    """The typed config of a model at a preset, with overrides applied."""
    spec = model_spec(name)
    if preset not in spec.presets:
        raise UnknownNameError(f"model {name!r} has no preset {preset!r}; valid presets: {', '.join(spec.presets)}")
    valid = {f.name for f in dataclasses.fields(spec.config_cls)}
    unknown = sorted(set(overrides) - valid)
    if unknown:
        raise ConfigError(f"model {name!r}: unknown option(s) {unknown}; valid options: {', '.join(sorted(valid))}")
    values = {**spec.presets[preset], **overrides}
    for key, value in list(values.items()):
        if isinstance(value, list):
            values[key] = tuple(value)
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
