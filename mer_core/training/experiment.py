"""The one place that resolves an experiment: (dataset, model, preset, user choices) -> ExperimentConfig.

Every door goes through here: ``mer loso`` / ``train`` / ``run``, ``mer
preprocess``, ``mer pretrain``, ``mer jobs submit``, ``mer study``, the New
experiment and New study forms, ``make demo``, the benchmarks and the job
queue call :func:`resolve_experiment` (or :func:`complete_config` for a
config that is already built, :func:`choose_preset` for the preset alone,
:func:`resolve_model_config` for the model's typed config), so the same
choices give the same config and the same ``stable_hash()`` whichever door
they came in by.

Precedence, lowest first: :class:`ExperimentConfig` defaults < the preset's
training defaults (``train_defaults``: optimiser, epochs, lr... and the
pre-training settings) < ``overrides`` (a ``--config`` file, then explicit
choices) < ``dataset_options`` / ``model_options`` given separately.

``preset="auto"`` (the default of every command) is resolved here to a
concrete preset from the inputs the sample table actually has (the facts
about tables are :mod:`mer_core.training.forms`; the choice is
:func:`auto_preset`): the given ``table``, else a cheap look at the dataset
(a manifest is read; every other indexer gives frames). The config records
the resolved name. A forced preset that the table cannot feed is refused
here, before anything trains, with one message listing the presets that fit.

A resolved config never leaves to later what can be decided now: the class
set is the dataset's default name (never ``''``), ``preprocess.channels`` /
``preprocess.input_size`` are the model's resolved input, and an executor
that was removed is refused (:func:`check_executor`), while a stored config
naming it still loads and shows.
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Mapping, Sequence

from mer_core.config import EXECUTORS, REMOVED_EXECUTORS, ExperimentConfig, options_mapping
from mer_core.errors import ConfigError, UnknownNameError

if TYPE_CHECKING:
    import pandas as pd

_IDENTITY = ("dataset", "model", "preset")
AUTO = "auto"
# preferred CPU presets per input form (first that fits exactly wins; then any CPU preset that fits with a fallback)
AUTO_ORDER: dict[str, tuple[str, ...]] = {
    "frames": ("cpu", "cpu_flow_apex", "cpu_apex"),
    "flow+apex": ("cpu_flow_apex", "cpu", "cpu_apex"),
    "flow": ("cpu", "cpu_flow_apex"),
    "apex": ("cpu_apex", "cpu"),
}


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
    from mer_core.models.registry import train_defaults

    given = dict(options_mapping("dataset_options", (overrides or {}).get("dataset_options") or {}))
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
        data["dataset_options"] = {**dict(options_mapping("dataset_options", data.get("dataset_options") or {})),
                                   **dict(dataset_options)}
    if model_options:
        data["model_options"] = {**dict(options_mapping("model_options", data.get("model_options") or {})),
                                 **dict(model_options)}
    return complete_config(ExperimentConfig.from_dict(data))


def choose_preset(dataset: str, model: str, preset: str, dataset_options: Mapping[str, Any] | None = None,
                  table: "pd.DataFrame | None" = None) -> tuple[str, str]:
    """(concrete preset, reason shown to the user) for ``preset`` ('auto' or a name) on this dataset.

    'auto' -> :func:`auto_preset`; a named preset is checked against the
    inputs when they can be known cheaply (a manifest that cannot be read is
    left for the run to report).
    """
    from mer_core.errors import MerError
    from mer_core.training import forms

    _check_preset_name(model, preset)
    if table is not None:
        inputs = forms.table_inputs(table)
    else:
        try:
            inputs = forms.dataset_inputs(dataset, dict(dataset_options or {}))
        except MerError:
            if preset == AUTO:
                raise
            return preset, ""
    return preset_for_inputs(model, preset, inputs)


def preset_for_inputs(model: str, preset: str, inputs: Iterable[str]) -> tuple[str, str]:
    """(concrete preset, reason) for ``preset`` ('auto' or a name) on data that gives ``inputs``."""
    from mer_core.training import forms

    _check_preset_name(model, preset)
    if preset == AUTO:
        return auto_preset(model, inputs)
    fit = forms.check_preset(model, preset, inputs)
    return preset, "; ".join(fit.notes)


def _check_preset_name(model: str, preset: str) -> None:
    from mer_core.models.registry import model_spec

    spec = model_spec(model)  # unknown model -> the list of valid ones
    if preset != AUTO and preset not in spec.presets:
        raise UnknownNameError(f"model {model!r} has no preset {preset!r}; valid presets: auto, {', '.join(spec.presets)}")


def auto_preset(model: str, inputs: Iterable[str]) -> tuple[str, str]:
    """(preset, reason) for ``auto``: the CPU preset that fits the table's inputs best (see :data:`AUTO_ORDER`)."""
    from mer_core.models.registry import list_presets
    from mer_core.training import forms

    inputs = set(inputs)
    form = forms.form_of(inputs)
    cpu = [p for p in list_presets(model) if p.startswith("cpu")]
    order = [p for p in AUTO_ORDER[form] if p in cpu] + [p for p in cpu if p not in AUTO_ORDER[form]]
    fits = [forms.preset_fit(model, p, inputs) for p in order]
    chosen = next((f for f in fits if f.exact), None) or next((f for f in fits if f.ok), None)
    if chosen is None:
        raise ConfigError(forms.no_fit_message(model, AUTO, inputs))
    extra = f" ({'; '.join(chosen.notes)})" if chosen.notes else ""
    return chosen.preset, f"auto -> {chosen.preset}: {forms.describe_inputs(inputs)}{extra}"


def model_forms(model: str) -> dict[str, str]:
    """Form -> the CPU preset ``auto`` gives a model on it, for each form it can learn from (exactly)."""
    from mer_core.training import forms

    out = {}
    for form, inputs in forms.CANONICAL_INPUTS.items():
        try:
            preset, _ = auto_preset(model, inputs)
        except ConfigError:
            continue
        if forms.preset_fit(model, preset, inputs).exact:
            out[form] = preset
    return out


def macro_preset(model: str, preset: str, sources: "str | Sequence[str]") -> tuple[str, str]:
    """(concrete preset, reason) for pre-training ``model`` on macro ``sources`` ('auto' or a name).

    The inputs are those every source gives: a registered dataset's (as for
    a run), CK+ sequences give frames, and an image folder's stills feed
    every channel (motion channels are zero, see :mod:`mer_core.training.macro`).
    """
    from mer_core.training import forms
    from mer_core.training.macro import parse_source, split_sources

    inputs = frozenset(forms.INPUTS)
    for src in map(parse_source, split_sources(sources)):
        if src.kind == "dataset":
            options = {**dict(src.options), **({"root": src.root} if src.root else {})}
            inputs &= forms.dataset_inputs(src.name, options)
    return preset_for_inputs(model, preset, inputs)


def complete_config(config: ExperimentConfig) -> ExperimentConfig:
    """Fill what a config left to defaults: the class set name and the model's input channels and size.

    Idempotent; a config that is already complete comes back equal.
    """
    from mer_core.models.registry import model_spec

    check_executor(config.executor)
    class_set = resolve_class_set(config.dataset, config.class_set)
    mcfg = resolve_model_config(config, 3)  # num_classes does not change the input
    options = dict(config.model_options)
    fields = {f.name for f in dataclasses.fields(model_spec(config.model).config_cls)}
    if "evm_alpha" in fields and options.get("evm_alpha") == config.preprocess.evm_alpha:
        del options["evm_alpha"]  # the engine passes the preprocessing's amplification anyway
    pre = dataclasses.replace(config.preprocess, channels=tuple(mcfg.channels), input_size=int(mcfg.input_size))
    return config.replace(class_set=class_set, model_options=options, preprocess=pre)


def resolve_model_config(config: ExperimentConfig, num_classes: int) -> Any:
    """The model's typed config: preset, then model_options, then preprocess overrides."""
    from mer_core.models.registry import model_config, model_spec

    overrides = dict(config.model_options)
    overrides["num_classes"] = num_classes
    if config.preprocess.input_size:
        overrides["input_size"] = config.preprocess.input_size
    if config.preprocess.channels:
        overrides["channels"] = tuple(config.preprocess.channels)
    fields = {f.name for f in dataclasses.fields(model_spec(config.model).config_cls)}
    if "evm_alpha" in fields:  # a model that re-mixes magnified frames must know their amplification
        overrides.setdefault("evm_alpha", config.preprocess.evm_alpha)
    return model_config(config.model, config.preset, **overrides)


def check_executor(executor: str) -> None:
    """ConfigError (one line) for an executor that was removed: a stored config may name it, a run may not."""
    if executor in REMOVED_EXECUTORS:
        raise ConfigError(f"executor {executor!r} was removed (it was slower than the process pool where it was "
                          f"measured); use executor={REMOVED_EXECUTORS[executor]!r} (valid: {', '.join(EXECUTORS)})")


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
