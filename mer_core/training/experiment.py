"""The one place that resolves an experiment: (dataset, model, preset, user choices) -> ExperimentConfig.

Every door goes through here: ``mer run`` (and its aliases ``loso``, ``train``), ``mer
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
about tables are :mod:`mer_core.training.data_forms`; the choice is
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
from mer_core.datasets.classes import list_class_sets
from mer_core.datasets.registry import dataset_info
from mer_core.datasets.synthetic.realism import REALISM_VERSION
from mer_core.errors import ConfigError, MerError, UnknownNameError
from mer_core.evaluation.export import flat_params
from mer_core.models.registry import list_presets, model_config, model_spec, train_defaults
from mer_core.training import data_forms
from mer_core.training.macro import parse_source, split_sources

if TYPE_CHECKING:
    import pandas as pd

_IDENTITY = ("dataset", "model", "preset")
AUTO = "auto"
# preferred CPU presets per input form (first that fits exactly wins; then any CPU preset that fits with a fallback);
# cpu_motion (motion first, chosen on the realism variant's tuning draw) leads wherever there is flow without frames
AUTO_ORDER: dict[str, tuple[str, ...]] = {
    "frames": ("cpu", "cpu_flow_apex", "cpu_apex"),
    "flow+apex": ("cpu_motion", "cpu_flow_apex", "cpu", "cpu_apex"),
    "flow": ("cpu_motion", "cpu", "cpu_flow_apex"),
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
    for key, given_options in (("dataset_options", dataset_options), ("model_options", model_options)):
        if given_options:
            data[key] = {**dict(options_mapping(key, data.get(key) or {})), **dict(given_options)}
    return complete_config(ExperimentConfig.from_dict(data))


def choose_preset(dataset: str, model: str, preset: str, dataset_options: Mapping[str, Any] | None = None,
                  table: "pd.DataFrame | None" = None) -> tuple[str, str]:
    """(concrete preset, reason shown to the user) for ``preset`` ('auto' or a name) on this dataset.

    'auto' -> :func:`auto_preset`; a named preset is checked against the
    inputs when they can be known cheaply (a manifest that cannot be read is
    left for the run to report).
    """
    _check_preset_name(model, preset)
    if table is not None:
        inputs = data_forms.table_inputs(table)
    else:
        try:
            inputs = data_forms.dataset_inputs(dataset, dict(dataset_options or {}))
        except MerError:
            if preset == AUTO:
                raise
            return preset, ""
    return preset_for_inputs(model, preset, inputs)


def preset_for_inputs(model: str, preset: str, inputs: Iterable[str]) -> tuple[str, str]:
    """(concrete preset, reason) for ``preset`` ('auto' or a name) on data that gives ``inputs``."""
    _check_preset_name(model, preset)
    if preset == AUTO:
        return auto_preset(model, inputs)
    fit = data_forms.check_preset(model, preset, inputs)
    return preset, "; ".join(fit.notes)


def _check_preset_name(model: str, preset: str) -> None:
    spec = model_spec(model)  # unknown model -> the list of valid ones
    if preset != AUTO and preset not in spec.presets:
        raise UnknownNameError(f"model {model!r} has no preset {preset!r}; valid presets: auto, {', '.join(spec.presets)}")


def auto_preset(model: str, inputs: Iterable[str]) -> tuple[str, str]:
    """(preset, reason) for ``auto``: the CPU preset that fits the table's inputs best (see :data:`AUTO_ORDER`)."""
    inputs = set(inputs)
    form = data_forms.form_of(inputs)
    cpu = [p for p in list_presets(model) if p.startswith("cpu")]
    order = [p for p in AUTO_ORDER[form] if p in cpu] + [p for p in cpu if p not in AUTO_ORDER[form]]
    fits = [data_forms.preset_fit(model, p, inputs) for p in order]
    chosen = next((f for f in fits if f.exact), None) or next((f for f in fits if f.ok), None)
    if chosen is None:
        raise ConfigError(data_forms.no_fit_message(model, AUTO, inputs))
    extra = f" ({'; '.join(chosen.notes)})" if chosen.notes else ""
    return chosen.preset, f"auto -> {chosen.preset}: {data_forms.describe_inputs(inputs)}{extra}"


def model_forms(model: str) -> dict[str, str]:
    """Form -> the CPU preset ``auto`` gives a model on it, for each form it can learn from (exactly)."""
    out = {}
    for form, inputs in data_forms.CANONICAL_INPUTS.items():
        try:
            preset, _ = auto_preset(model, inputs)
        except ConfigError:
            continue
        if data_forms.preset_fit(model, preset, inputs).exact:
            out[form] = preset
    return out


def macro_preset(model: str, preset: str, sources: "str | Sequence[str]") -> tuple[str, str]:
    """(concrete preset, reason) for pre-training ``model`` on macro ``sources`` ('auto' or a name).

    The inputs are those every source gives: a registered dataset's (as for
    a run), CK+ sequences give frames, and an image folder's stills feed
    every channel (motion channels are zero, see :mod:`mer_core.training.macro`).
    """
    inputs = frozenset(data_forms.INPUTS)
    for src in map(parse_source, split_sources(sources)):
        if src.kind == "dataset":
            options = {**dict(src.options), **({"root": src.root} if src.root else {})}
            inputs &= data_forms.dataset_inputs(src.name, options)
    return preset_for_inputs(model, preset, inputs)


def complete_config(config: ExperimentConfig) -> ExperimentConfig:
    """Fill what a config left to defaults: the class set name and the model's input channels and size.

    Idempotent; a config that is already complete comes back equal.
    """
    check_executor(config.executor)
    class_set = resolve_class_set(config.dataset, config.class_set)
    mcfg = resolve_model_config(config, 3)  # num_classes does not change the input
    options = dict(config.model_options)
    if hasattr(mcfg, "evm_alpha") and options.get("evm_alpha") == config.preprocess.evm_alpha:
        del options["evm_alpha"]  # the engine passes the preprocessing's amplification anyway
    pre = dataclasses.replace(config.preprocess, channels=tuple(mcfg.channels), input_size=int(mcfg.input_size))
    data_options = dict(config.dataset_options)
    if config.dataset == "synthetic-realism":  # the run records which calibration of the variant it used
        data_options.setdefault("version", REALISM_VERSION)
    return config.replace(class_set=class_set, model_options=options, preprocess=pre, dataset_options=data_options)


def resolve_model_config(config: ExperimentConfig, num_classes: int) -> Any:
    """The model's typed config: preset, then model_options, then preprocess overrides."""
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


# Keys that never change what a run learns (where and how it runs, what it keeps) or that no preset sets.
_NOT_TRAINING = frozenset({"dataset", "model", "preset", "dataset_options", "seed", "executor", "workers", "device",
                           "ray_address", "keep_checkpoints", "record_oracle", "max_batched_folds", "class_set",
                           "protocol", "folds", "holdout_fraction", "final_model"})


def preset_changes(config: ExperimentConfig | Mapping[str, Any]) -> dict[str, tuple[Any, Any]]:
    """Training values of a (stored) config that differ from its preset's: key -> (value, preset's value).

    The preset's values are what :func:`resolve_experiment` gives for the same
    dataset, model and preset with no overrides (the preset's training
    defaults over :class:`ExperimentConfig`'s); preprocessing keys are named
    ``preprocess.<key>``. Where and how a run executes (executor, workers,
    device...), the data and the protocol, and the seed are not preset values
    and are left out. A stored config whose model or preset is no longer
    registered gives ``{}``.
    """
    data = config.to_dict() if isinstance(config, ExperimentConfig) else dict(config)
    model, preset = str(data.get("model", "")), str(data.get("preset", ""))
    try:
        base_cfg = complete_config(ExperimentConfig.from_dict(
            {**train_defaults(model, preset), "dataset": data.get("dataset", "synthetic"), "model": model,
             "preset": preset, "class_set": data.get("class_set", ""), "executor": "sequential"}))
        stored = ExperimentConfig.from_dict({**data, "executor": "sequential"}).to_dict()
    except (ConfigError, UnknownNameError, KeyError, TypeError, ValueError):
        return {}
    base = base_cfg.to_dict()
    out: dict[str, tuple[Any, Any]] = {}
    for key, value in stored.items():
        if key in _NOT_TRAINING:
            continue
        if isinstance(value, Mapping):
            for sub, v in value.items():
                b = (base.get(key) or {}).get(sub)
                if key == "preprocess" and sub in ("channels", "input_size") and not v:
                    continue  # left empty: the model's own input, as the preset gives it
                if _differs(v, b):
                    out[f"{key}.{sub}"] = (v, b)
        elif _differs(value, base.get(key)):
            out[key] = (value, base.get(key))
    return dict(sorted(out.items(), key=lambda kv: "." in kv[0]))  # training values first, then preprocessing


def _differs(a: Any, b: Any) -> bool:
    norm = lambda v: list(v) if isinstance(v, tuple) else v  # noqa: E731 (a stored list equals a tuple default)
    return norm(a) != norm(b)


def preset_label(config: ExperimentConfig | Mapping[str, Any], *, limit: int = 4) -> str:
    """How a run's preset is named on every page: ``"cpu preset"``, or
    ``"cpu preset, modified: epochs 3 (preset 15)"`` (at most ``limit`` changes named, then "and N more")."""
    data = config.to_dict() if isinstance(config, ExperimentConfig) else dict(config)
    changes = preset_changes(data)
    head = f"{data.get('preset', '?')} preset"
    if not changes:
        return head
    parts = [f"{k} {_short(v)} (preset {_short(b)})" for k, (v, b) in list(changes.items())[:limit]]
    more = f" and {len(changes) - limit} more" if len(changes) > limit else ""
    return f"{head}, modified: {', '.join(parts)}{more}"


def _short(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, (list, tuple)):
        return ",".join(map(str, value)) or "none"
    if isinstance(value, Mapping):
        return ", ".join(f"{k}={v}" for k, v in value.items()) or "none"
    return "none" if value is None else str(value)


def settings_that_differ(configs: Mapping[str, ExperimentConfig | Mapping[str, Any]]) -> list[dict[str, str]]:
    """Rows {"setting", <label>: value as text...} for a side-by-side of several runs' configs (label -> config).

    A row for every setting whose value differs between the configs, for the
    seed always (one seed per run: the reader must see it), and for every
    training value any of them changed from its preset (even when all changed
    it alike), that value shown as "3 (preset 15)". Seed first, then the
    settings in name order.
    """
    dicts = {label: (c.to_dict() if isinstance(c, ExperimentConfig) else dict(c)) for label, c in configs.items()}
    flat = {label: flat_params(d) for label, d in dicts.items()}
    changes = {label: preset_changes(d) for label, d in dicts.items()}
    keys = sorted(set().union(*flat.values())) if flat else []
    wanted = [k for k in keys if k == "seed" or len({f.get(k, "–") for f in flat.values()}) > 1
              or any(k in ch for ch in changes.values())]
    wanted.sort(key=lambda k: (k != "seed", k))

    def cell(label: str, key: str) -> str:
        value = flat[label].get(key, "–")
        if key in changes[label]:
            return f"{value} (preset {_short(changes[label][key][1])})"
        return value

    return [{"setting": k, **{label: cell(label, k) for label in flat}} for k in wanted]
