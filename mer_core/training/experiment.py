"""One path from (dataset, model, preset, user choices) to a fully resolved ExperimentConfig.

The CLI (``mer loso --config ... --set ...``), the New experiment form,
``make demo``, the benchmarks and the job queue all call
:func:`resolve_experiment` (or :func:`complete_config` for a config that is
already built), so the same choices give the same config and the same
``stable_hash()`` whichever door they came in by.

Precedence, lowest first: :class:`ExperimentConfig` defaults < the preset's
training defaults (``train_defaults``: optimiser, epochs, lr... and the
pre-training settings) < ``overrides`` (a ``--config`` file, then explicit
choices) < ``dataset_options`` / ``model_options`` given separately.

``preset="auto"`` (the default) is resolved here to a concrete preset from
the inputs the sample table actually has (:mod:`mer_core.training.forms`):
the given ``table``, else a cheap look at the dataset (a manifest is read;
every other indexer gives frames). The config records the resolved name. A
forced preset that the table cannot feed is refused here, before anything
trains, with one message listing the presets that fit.

A resolved config never leaves to later what can be decided now: the class
set is the dataset's default name (never ``''``) and ``preprocess.channels``
/ ``preprocess.input_size`` are the model's resolved input.
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

from mer_core.config import ExperimentConfig
from mer_core.errors import ConfigError, UnknownNameError

if TYPE_CHECKING:
    import pandas as pd

_IDENTITY = ("dataset", "model", "preset")
AUTO = "auto"


def resolve_experiment(
    dataset: str = "synthetic",
    model: str = "baseline",
    preset: str = AUTO,
    *,
    overrides: Mapping[str, Any] | None = None,
    dataset_options: Mapping[str, Any] | None = None,
    model_options: Mapping[str, Any] | None = None,
    table: "pd.DataFrame | None" = None,
) -> ExperimentConfig:
    """The fully resolved config for a model preset on a dataset with the user's overrides.

    ``overrides`` holds ExperimentConfig keys (``preprocess`` as a mapping of
    its keys, merged over the preset's); its ``dataset``/``model``/``preset``
    entries, if any, are ignored in favour of the arguments.
    """
    from mer_core.models.registry import model_spec, train_defaults

    spec = model_spec(model)  # unknown model -> the list of valid ones
    if preset != AUTO and preset not in spec.presets:
        raise UnknownNameError(f"model {model!r} has no preset {preset!r}; valid presets: auto, {', '.join(spec.presets)}")
    given = dict((overrides or {}).get("dataset_options") or {})
    preset, _reason = choose_preset(dataset, model, preset, {**given, **dict(dataset_options or {})}, table)
    data: dict[str, Any] = train_defaults(model, preset)
    for key, value in (overrides or {}).items():
        if key in _IDENTITY:
            continue
        if key == "preprocess" and isinstance(value, Mapping):
            data["preprocess"] = {**dict(data.get("preprocess") or {}), **dict(value)}
        else:
            data[key] = value
    data.update(dataset=dataset, model=model, preset=preset)
    if dataset_options:
        data["dataset_options"] = {**dict(data.get("dataset_options") or {}), **dict(dataset_options)}
    if model_options:
        data["model_options"] = {**dict(data.get("model_options") or {}), **dict(model_options)}
    return complete_config(ExperimentConfig.from_dict(data))


def choose_preset(dataset: str, model: str, preset: str, dataset_options: Mapping[str, Any] | None = None,
                  table: "pd.DataFrame | None" = None) -> tuple[str, str]:
    """(concrete preset, reason shown to the user) for ``preset`` ('auto' or a name) on this dataset.

    'auto' -> :func:`forms.auto_preset`; a named preset is checked against the
    inputs when they can be known cheaply (a manifest that cannot be read is
    left for the run to report).
    """
    from mer_core.errors import MerError
    from mer_core.training import forms

    if table is not None:
        inputs = forms.table_inputs(table)
    else:
        try:
            inputs = forms.dataset_inputs(dataset, dict(dataset_options or {}))
        except MerError:
            if preset == AUTO:
                raise
            return preset, ""
    if preset == AUTO:
        return forms.auto_preset(model, inputs)
    fit = forms.check_preset(model, preset, inputs)
    return preset, "; ".join(fit.notes)


def complete_config(config: ExperimentConfig) -> ExperimentConfig:
    """Fill what a config left to defaults: the class set name and the model's input channels and size.

    Idempotent; a config that is already complete comes back equal.
    """
    from mer_core.models.registry import model_spec
    from mer_core.training.engine import resolve_model_config

    class_set = resolve_class_set(config.dataset, config.class_set)
    mcfg = resolve_model_config(config, 3)  # num_classes does not change the input
    options = dict(config.model_options)
    fields = {f.name for f in dataclasses.fields(model_spec(config.model).config_cls)}
    if "evm_alpha" in fields and options.get("evm_alpha") == config.preprocess.evm_alpha:
        del options["evm_alpha"]  # the engine passes the preprocessing's amplification anyway
    pre = dataclasses.replace(config.preprocess, channels=tuple(mcfg.channels), input_size=int(mcfg.input_size))
    return config.replace(class_set=class_set, model_options=options, preprocess=pre)


def resolve_class_set(dataset: str, class_set: str = "") -> str:
    """The class set's name: ``''`` becomes the dataset's default; an unknown name is an error."""
    from mer_core.datasets.classes import list_class_sets
    from mer_core.datasets.registry import dataset_info

    info = dataset_info(dataset)  # unknown dataset -> the list of valid ones
    name = class_set or info.default_class_set
    valid = sorted(set(list_class_sets()) | set(info.class_sets))
    if name not in valid:
        raise ConfigError(f"class_set={name!r}: expected one of {', '.join(valid)} (dataset {dataset!r} offers "
                          f"{', '.join(info.class_sets)})")
    return name


def load_config_file(path: str | Path) -> dict[str, Any]:
    """The JSON object in a ``--config`` file; ConfigError (one line) for anything else."""
    path = Path(path)
    try:
        text = path.read_bytes().decode("utf-8")
    except OSError as exc:
        raise ConfigError(f"--config {path}: cannot read the file ({exc.strerror or exc})") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"--config {path}: not UTF-8 text (byte {exc.start}); expected a JSON object") from exc
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"--config {path}: not valid JSON (line {exc.lineno} column {exc.colno}: {exc.msg})") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"--config {path}: expected a JSON object of config keys, got a JSON {_json_kind(data)}")
    return data


def _json_kind(value: Any) -> str:
    return {list: "array", str: "string", bool: "boolean", int: "number", float: "number"}.get(type(value), "null")
