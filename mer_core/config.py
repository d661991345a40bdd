"""The experiment config: one frozen dataclass that says everything a run did.

It is stored with every run and checkpoint, so any run can be re-run exactly
(``ExperimentConfig.from_json(run.config_json)``). Unknown keys raise with the
list of valid ones; values are checked in ``__post_init__`` with messages that
name the key, the value and what was expected.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from dataclasses import dataclass, field, fields
from typing import Any, Mapping

from mer_core.errors import ConfigError

PROTOCOLS = ("loso", "composite", "kfold", "holdout")
OPTIMIZERS = ("adamw", "adam", "sgd", "adan")
SCHEDULERS = ("none", "cosine", "step")
LOSSES = ("ce", "focal", "label_smoothing")
CLASS_BALANCE = ("none", "weights", "sampler")
SELECTION = ("fixed", "early_stop", "nested")
AVERAGES = ("none", "ema", "swa")  # weight averaging over the last epochs (see mer_core.training.trainer)
MAX_SEEDS_PER_FOLD = 20
MAX_NESTED_FOLDS = 64
# Keys added after runs were stored: at their default they are left out of stable_hash(), so a stored run's
# config hashes as it did before they existed (and an old checkpoint still matches its run).
HASH_OPTIONAL = ("average", "ema_decay", "swa_epochs", "nested_folds", "seeds_per_fold")
EXECUTORS = ("sequential", "process", "ray")
# Executors that existed once: a stored config naming one still loads (and shows), but it cannot run;
# mer_core.training.experiment refuses it with the executor to use instead.
REMOVED_EXECUTORS = {"batched": "process"}
FLOW_METHODS = ("dis", "tvl1", "farneback")
FREEZE = ("none", "early", "all_but_head")
MAX_LR = 10.0  # beyond it no optimiser here trains: a typo (1e3 for 1e-3), refused before it diverges
MAX_FOCAL_GAMMA = 10.0  # (1 - p)^gamma: beyond it every gradient vanishes


@dataclass(frozen=True)
class PreprocessConfig:
    """How clips become model inputs (see :mod:`mer_core.preprocess`)."""

    # Optical flow onset -> apex: 'dis' (fast CPU default), 'tvl1' (the papers'), 'farneback'.
    flow_method: str = "dis"
    # Face detection + alignment; pre-cropped datasets skip it whatever this says.
    face_crop: bool = True
    # Input side length in pixels; 0 = the model's default.
    input_size: int = 0
    # Channels stacked for the model; empty = the model's default channel list.
    channels: tuple[str, ...] = ()
    # Eulerian video magnification (used for 'magnified_*' channels).
    evm_alpha: float = 10.0
    evm_low: float = 0.05  # low cut-off, fraction of the frame rate
    evm_high: float = 0.4  # high cut-off, fraction of the frame rate
    evm_levels: int = 3
    evm_pyramid: str = "laplacian"
    evm_filter: str = "butterworth"

    def __post_init__(self) -> None:
        _finite_floats(self, "preprocess.")
        _choice("preprocess.flow_method", self.flow_method, FLOW_METHODS)
        _choice("preprocess.evm_pyramid", self.evm_pyramid, ("laplacian", "gaussian"))
        _choice("preprocess.evm_filter", self.evm_filter, ("ideal", "butterworth"))
        if self.input_size != 0 and not 8 <= self.input_size <= 512:
            raise ConfigError(f"preprocess.input_size={self.input_size}: expected 0 (model default) or 8..512 pixels")
        if self.evm_alpha < 0:
            raise ConfigError(f"preprocess.evm_alpha={self.evm_alpha}: expected >= 0")
        if not 0 < self.evm_low < self.evm_high <= 0.5:
            raise ConfigError(
                f"preprocess.evm_low={self.evm_low}, evm_high={self.evm_high}: expected 0 < low < high <= 0.5 "
                "(fractions of the frame rate)"
            )
        if not 1 <= self.evm_levels <= 8:
            raise ConfigError(f"preprocess.evm_levels={self.evm_levels}: expected 1..8")
        object.__setattr__(self, "channels", tuple(self.channels))


@dataclass(frozen=True)
class ExperimentConfig:
    """Everything that defines a run. Defaults give a quick, honest CPU run."""

    # --- data -----------------------------------------------------------
    dataset: str = "synthetic"  # a name from mer_core.datasets.list_datasets()
    dataset_options: Mapping[str, Any] = field(default_factory=dict)  # passed to the indexer
    class_set: str = ""  # '' = the dataset's default class set
    protocol: str = "loso"  # loso | composite | kfold | holdout
    folds: int = 5  # for kfold
    holdout_fraction: float = 0.25  # share of subjects tested by 'holdout'
    # --- model ----------------------------------------------------------
    model: str = "baseline"  # a name from mer_core.models.list_models()
    preset: str = "cpu"  # the model's preset ('cpu' or 'paper')
    model_options: Mapping[str, Any] = field(default_factory=dict)  # override preset values
    preprocess: PreprocessConfig = field(default_factory=PreprocessConfig)
    # --- optimisation ---------------------------------------------------
    epochs: int = 20
    batch_size: int = 32
    optimizer: str = "adamw"
    lr: float = 1e-3
    weight_decay: float = 1e-4
    momentum: float = 0.9  # sgd only
    scheduler: str = "cosine"
    loss: str = "ce"
    focal_gamma: float = 2.0
    focal_alpha: float = 0.0  # 0 = no alpha weighting
    label_smoothing: float = 0.1  # for loss='label_smoothing'
    class_balance: str = "weights"  # none | weights (loss weights) | sampler
    grad_clip: float = 0.0  # max gradient norm; 0 = off
    augment: bool = True  # small flips/shifts on training inputs
    # --- honest model selection -------------------------------------------
    # fixed epochs; early_stop on validation subjects carved from the training subjects; nested: the epoch
    # count with the best validation UF1 pooled over inner folds of the training subjects, then one fit on all
    # of them for that many epochs (the test subject is never in an inner split)
    selection: str = "fixed"
    val_subjects: int = 1  # subjects held out of training for early stopping
    patience: int = 5
    nested_folds: int = 4  # selection='nested': inner folds by subject (0 = leave one training subject out)
    # --- averaging ----------------------------------------------------------
    # Weights averaged over the last epochs: none | ema (after every optimiser step) | swa (the weights at the
    # end of each of the last swa_epochs epochs). The fold is evaluated and stored with the averaged weights,
    # batch-norm statistics recomputed on its training data.
    average: str = "none"
    ema_decay: float = 0.99  # average='ema': ema = decay * ema + (1 - decay) * weights, after every step
    swa_epochs: int = 5  # average='swa': how many last epochs are averaged (at most epochs)
    # Models trained per fold, seeds derived from the run seed (the first is the fold's usual seed); their test
    # probabilities are averaged. The fold's checkpoint and curves are the first model's.
    seeds_per_fold: int = 1
    record_oracle: bool = True  # also record the (dishonest) test-selected epoch, labelled
    # After the LOSO, also train one model on every subject with the same recipe (the folds' epochs, or
    # their median selected epoch under early_stop or nested), stored beside the folds as final.pt. Never evaluated:
    # no subject is left to test it on. `mer predict` and the Analyse page use it when present.
    final_model: bool = False
    # --- transfer learning (DenseAttention) --------------------------------
    pretrain: str = ""  # macro dataset for pre-training, '' = none
    pretrain_epochs: int = 10
    freeze: str = "none"  # none | early | all_but_head
    backbone_lr_mult: float = 1.0
    # --- execution ------------------------------------------------------
    seed: int = 0
    executor: str = "process"  # sequential | process (a pool of workers) | ray
    workers: int = 0  # 0 = auto: one per CPU core, or one per GPU when CUDA is present
    # Unused: the removed 'batched' executor's chunk size, kept so that stored configs load and hash as before.
    max_batched_folds: int = 0
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    keep_checkpoints: bool = True
    ray_address: str = ""

    def __post_init__(self) -> None:
        _finite_floats(self, "")
        _choice("protocol", self.protocol, PROTOCOLS)
        _choice("optimizer", self.optimizer, OPTIMIZERS)
        _choice("scheduler", self.scheduler, SCHEDULERS)
        _choice("loss", self.loss, LOSSES)
        _choice("class_balance", self.class_balance, CLASS_BALANCE)
        _choice("selection", self.selection, SELECTION)
        _choice("average", self.average, AVERAGES)
        if self.executor not in REMOVED_EXECUTORS:  # a removed one loads; running it is refused with what to use
            _choice("executor", self.executor, EXECUTORS)
        _choice("freeze", self.freeze, FREEZE)
        _positive_int("epochs", self.epochs)
        _positive_int("batch_size", self.batch_size)
        if not isinstance(self.workers, int) or self.workers < 0:
            raise ConfigError(f"workers={self.workers!r}: expected 0 (auto) or a positive number of workers")
        if not isinstance(self.max_batched_folds, int) or self.max_batched_folds < 0:
            raise ConfigError(f"max_batched_folds={self.max_batched_folds!r}: expected 0 (auto) or a positive number")
        _positive_int("patience", self.patience)
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise ConfigError(f"seed={self.seed!r}: expected an integer >= 0")
        if self.protocol == "kfold" and self.folds < 2:
            raise ConfigError(f"folds={self.folds}: k-fold by subject needs at least 2 folds")
        if not 0 < self.holdout_fraction < 1:
            raise ConfigError(f"holdout_fraction={self.holdout_fraction}: expected a share between 0 and 1")
        if not 0 < self.lr <= MAX_LR:
            raise ConfigError(f"lr={self.lr}: the learning rate must be > 0 and <= {MAX_LR:g}")
        for key in ("weight_decay", "focal_alpha", "grad_clip", "backbone_lr_mult"):
            if getattr(self, key) < 0:
                raise ConfigError(f"{key}={getattr(self, key)}: expected >= 0")
        if not 0 <= self.focal_gamma <= MAX_FOCAL_GAMMA:
            raise ConfigError(f"focal_gamma={self.focal_gamma}: expected 0 <= value <= {MAX_FOCAL_GAMMA:g} "
                              "(2 in the focal-loss paper and MFDAN)")
        if not 0 <= self.momentum < 1:
            raise ConfigError(f"momentum={self.momentum}: expected 0 <= value < 1 (SGD momentum)")
        if not 0 <= self.label_smoothing < 1:
            raise ConfigError(f"label_smoothing={self.label_smoothing}: expected 0 <= value < 1")
        if self.selection == "early_stop" and self.val_subjects < 1:
            raise ConfigError(f"val_subjects={self.val_subjects}: early stopping needs at least 1 validation subject")
        self._check_averaging_and_seeds()
        if not (self.device in ("auto", "cpu", "cuda") or self.device.startswith("cuda:")):
            raise ConfigError(f"device={self.device!r}: expected 'auto', 'cpu', 'cuda' or 'cuda:N'")
        if isinstance(self.preprocess, Mapping):
            object.__setattr__(self, "preprocess", _build(PreprocessConfig, self.preprocess, "preprocess."))
        object.__setattr__(self, "dataset_options", dict(self.dataset_options))
        object.__setattr__(self, "model_options", dict(self.model_options))

    def _check_averaging_and_seeds(self) -> None:
        """The averaging, nested-selection and seed-ensemble keys: one line each, naming the accepted range."""
        if not 0 < self.ema_decay < 1:
            raise ConfigError(f"ema_decay={self.ema_decay}: expected 0 < value < 1 (0.99 to 0.9999 are usual)")
        if not isinstance(self.swa_epochs, int) or self.swa_epochs < 1:
            raise ConfigError(f"swa_epochs={self.swa_epochs!r}: expected an integer >= 1 (the last epochs averaged)")
        if self.average == "swa" and self.swa_epochs > self.epochs:
            raise ConfigError(f"swa_epochs={self.swa_epochs}: expected 1..{self.epochs} (at most epochs) "
                              "with average='swa'")
        if self.average != "none" and self.selection == "early_stop":
            raise ConfigError(f"average={self.average!r} needs selection='fixed' or 'nested': early_stop restores "
                              "one epoch's weights, which averaging replaces")
        if not isinstance(self.nested_folds, int) or not (self.nested_folds == 0
                                                          or 2 <= self.nested_folds <= MAX_NESTED_FOLDS):
            raise ConfigError(f"nested_folds={self.nested_folds!r}: expected 0 (leave one training subject out) "
                              f"or 2..{MAX_NESTED_FOLDS} inner folds")
        if not isinstance(self.seeds_per_fold, int) or not 1 <= self.seeds_per_fold <= MAX_SEEDS_PER_FOLD:
            raise ConfigError(f"seeds_per_fold={self.seeds_per_fold!r}: expected 1..{MAX_SEEDS_PER_FOLD} "
                              "models per fold")

    # --- serialisation ----------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["preprocess"]["channels"] = list(self.preprocess.channels)
        return data

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True, indent=1)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "ExperimentConfig":
        return _build(cls, data, "")

    @classmethod
    def from_json(cls, text: str) -> "ExperimentConfig":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"config is not valid JSON: {exc}") from exc
        if not isinstance(data, dict):
            raise ConfigError(f"config JSON must be an object, got {type(data).__name__}")
        return cls.from_dict(data)

    def replace(self, **changes: Any) -> "ExperimentConfig":
        """A copy with some keys changed (validated like any config)."""
        return ExperimentConfig.from_dict({**self.to_dict(), **changes})

    def stable_hash(self) -> str:
        """A short hash that is equal for equal configs, across processes and runs."""
        defaults = {f.name: f.default for f in fields(self) if f.name in HASH_OPTIONAL}
        data = {k: v for k, v in self.to_dict().items() if k not in defaults or v != defaults[k]}
        canonical = json.dumps(data, sort_keys=True, separators=(",", ":"), default=str)
        return hashlib.sha256(canonical.encode()).hexdigest()[:12]


def _build(cls: type, data: Mapping[str, Any], prefix: str) -> Any:
    if not isinstance(data, Mapping):
        raise ConfigError(f"{prefix.rstrip('.') or 'config'} must be a mapping, got {type(data).__name__}")
    names = {f.name: f for f in fields(cls)}
    unknown = sorted(set(data) - set(names))
    if unknown:
        raise ConfigError(
            f"unknown config key(s) {', '.join(prefix + k for k in unknown)}; valid keys: {', '.join(sorted(names))}"
        )
    kwargs = {}
    for key, value in data.items():
        f = names[key]
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
        kwargs[key] = _coerce(prefix + key, value, default)
    return cls(**kwargs)


def _coerce(key: str, value: Any, default: Any) -> Any:
    """Check a value's type against its default's; accept ints for floats."""
    if dataclasses.is_dataclass(default):
        return value if isinstance(value, type(default)) else _build(type(default), value, key + ".")
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise ConfigError(f"{key}={value!r}: expected true or false")
        return value
    if isinstance(default, int):
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and value.is_integer():
                return int(value)
            raise ConfigError(f"{key}={value!r}: expected an integer")
        return value
    if isinstance(default, float):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{key}={value!r}: expected a number")
        return float(value)
    if isinstance(default, str):
        if not isinstance(value, str):
            raise ConfigError(f"{key}={value!r}: expected a string")
        return value
    if isinstance(default, tuple):
        if isinstance(value, str) or not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key}={value!r}: expected a list")
        return tuple(value)
    if isinstance(default, Mapping):
        return dict(options_mapping(key, value))
    return value


def options_mapping(key: str, value: Any) -> Mapping[str, Any]:
    """``value`` when it is a mapping (a table of options); ConfigError naming ``key`` and the form otherwise."""
    if isinstance(value, Mapping):
        return value
    example = _MAPPING_EXAMPLES.get(key.rsplit(".", 1)[-1], '{"key": value}')
    raise ConfigError(f"{key}={value!r}: expected a mapping of option names to values (a JSON object such as "
                      f"{example}, a table in TOML), not a {type(value).__name__}")


_MAPPING_EXAMPLES = {"dataset_options": '{"subjects": 3}', "model_options": '{"dropout": 0.1}'}


def _finite_floats(config: Any, prefix: str) -> None:
    """Every float field is a finite number: inf and nan (``--lr inf``, ``1e400`` in JSON) are refused by name."""
    for f in fields(config):
        value = getattr(config, f.name)
        if (isinstance(f.default, float) and isinstance(value, (int, float)) and not isinstance(value, bool)
                and not math.isfinite(value)):
            raise ConfigError(f"{prefix}{f.name}={value!r}: expected a finite number")


def _choice(key: str, value: str, valid: tuple[str, ...]) -> None:
    if value not in valid:
        raise ConfigError(f"{key}={value!r}: expected one of {', '.join(valid)}")


def _positive_int(key: str, value: int) -> None:
    if not isinstance(value, int) or value < 1:
        raise ConfigError(f"{key}={value!r}: expected an integer >= 1")
