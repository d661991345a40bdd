"""Macro-expression pre-training and the fine-tuning helpers (transfer learning).

DenseAttention (Gan et al. 2024) is pre-trained on macro-expression datasets,
where expressions are large and labelled data is plentiful, then fine-tuned on
micro-expressions. Here:

* :func:`pretrain` trains the *same architecture* as the fine-tuned model
  (same channels, input size and options; only the head's class count
  differs) on all samples of one or more macro sources (see
  :mod:`mer_core.training.macro`), with the project's one training loop
  (:func:`mer_core.training.trainer.fit` on the macro table: AdamW,
  cross-entropy, cosine schedule, fixed epochs; nothing is selected on any
  micro-expression subject, so LOSO stays honest). Its epochs are reported
  through the same ``on_epoch`` event as a fold's, with ``stage='pretrain'``.
  The checkpoint is written once to ``checkpoints_dir()/pretrain/<key>.pt``,
  the key hashing everything that determines the weights (model config
  without the head, sources and a fingerprint of their samples,
  preprocessing, epochs, seed, optimiser settings), and reused by every fold
  and run that asks for the same thing.
* :func:`load_pretrained_backbone`, :func:`apply_freeze` and
  :func:`param_groups` are what a fold's trainer calls to fine-tune from it.

The head has one output per macro class in the union of the sources.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from filelock import FileLock
from torch import nn

from mer_core.config import ExperimentConfig, PreprocessConfig
from mer_core.errors import ConfigError, DatasetError
from mer_core.models import create_model, model_config
from mer_core.paths import checkpoints_dir
from mer_core.store.db import code_version
from mer_core.training.macro import (
    Log, MacroSource, check_sources, index_source, load_macro, parse_source, split_sources,
)
from mer_core.training.trainer import OnEpoch, build_optimizer, fit, resolve_device, seed_everything

# A checkpoint is reused by its key alone, so bump this whenever the weights a recipe gives can change in a way
# the key does not see: the loop or the input derivation (the optimiser's class and settings, its kernel choice
# included, are in the key already). 2: the shared trainer loop
PRETRAIN_VERSION = 2
FREEZE_MODES = ("none", "early", "all_but_head")
NOT_ARCH = ("dropout", "drop_rate")  # regularisation only: may differ between pre-training and fine-tuning


# --- pre-training -------------------------------------------------------------


def plain_config(cfg: Any) -> dict[str, Any]:
    """A model config as plain JSON data (tuples as lists), as checkpoints store it."""
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in dataclasses.asdict(cfg).items()}


def _arch(cfg: Any) -> dict[str, Any]:
    """A model config as plain JSON data, without the head's class count."""
    data = plain_config(cfg)
    data.pop("num_classes", None)
    return data


@dataclass
class _Job:
    """Everything one pre-training needs, resolved from :func:`pretrain`'s arguments."""

    model_name: str
    preset: str
    overrides: dict[str, Any]
    sources: list[MacroSource]
    indexed: list[Any]
    channels: tuple[str, ...]
    size: int
    options: PreprocessConfig
    recipe: dict[str, Any]
    loop: ExperimentConfig
    workers: int = 1

    @property
    def key(self) -> str:
        return hashlib.sha256(json.dumps(self.recipe, sort_keys=True, default=str).encode()).hexdigest()[:16]


def pretrain(
    model_name: str,
    preset: str = "cpu",
    macro_dataset: str | Sequence[str] = "synthetic-macro",
    epochs: int = 10,
    seed: int = 0,
    *,
    model_options: dict[str, Any] | None = None,
    preprocess: PreprocessConfig | None = None,
    lr: float = 1e-3,
    batch_size: int = 32,
    weight_decay: float = 1e-4,
    device: str = "auto",
    workers: int = 1,
    force: bool = False,
    log: Log | None = None,
    on_epoch: OnEpoch | None = None,
) -> Path:
    """Pre-train ``model_name`` on macro data; return the (cached) checkpoint path.

    ``model_options`` are the fine-tuned model's overrides (channels,
    input_size, ...; ``num_classes`` is ignored: the macro head has one output
    per macro class). ``on_epoch`` receives the trainer's epoch event
    (``stage='pretrain'``) after each epoch. With ``force`` an existing
    checkpoint is retrained.
    """
    job = _job(model_name, preset, macro_dataset, epochs, seed, model_options, preprocess, lr, batch_size,
               weight_decay, device, workers)
    path = checkpoints_dir() / "pretrain" / f"{job.key}.pt"
    path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(path.with_suffix(".lock")):  # two workers asking at once train it once
        if path.exists() and not force:
            try:
                read_checkpoint(path)
                if log:
                    log(f"reusing pre-trained checkpoint {path}")
                return path
            except Exception as exc:  # a truncated or foreign file is retrained, never served
                if log:
                    log(f"checkpoint {path} unreadable ({exc}); pre-training again")
        _train(path, job, log, _reporter(log, on_epoch))
    return path


def _job(model_name: str, preset: str, macro_dataset: str | Sequence[str], epochs: int, seed: int,
         model_options: dict[str, Any] | None, preprocess: PreprocessConfig | None, lr: float, batch_size: int,
         weight_decay: float, device: str, workers: int) -> _Job:
    """Check the arguments, index the sources and fix the recipe the checkpoint key hashes."""
    if epochs < 1:
        raise ConfigError(f"pretrain epochs={epochs}: expected an integer >= 1")
    if not lr > 0 or batch_size < 1:
        raise ConfigError(f"pretrain lr={lr}, batch_size={batch_size}: expected lr > 0 and batch_size >= 1")
    overrides = {k: v for k, v in (model_options or {}).items() if k != "num_classes"}
    base_cfg = model_config(model_name, preset, **overrides)
    options = preprocess or PreprocessConfig()
    sources = [parse_source(s) for s in split_sources(macro_dataset)]
    if not sources:
        raise ConfigError("no macro source given; e.g. 'synthetic-macro', 'folder:PATH' or 'ckplus:PATH'")
    indexed = [index_source(s) for s in sources]
    prep = {k: v for k, v in dataclasses.asdict(options).items() if k not in ("channels", "input_size")}
    loop = ExperimentConfig(
        model=model_name, preset=preset, epochs=epochs, batch_size=batch_size, optimizer="adamw", lr=lr,
        weight_decay=weight_decay, scheduler="cosine", loss="ce", class_balance="none", augment=True,
        selection="fixed", record_oracle=False, seed=seed, device=device,
    )
    recipe = dict(
        version=PRETRAIN_VERSION, torch=torch.__version__, model=model_name, preset=preset, arch=_arch(base_cfg),
        sources=[s.spec() for s in sources], data=[fp for _, fp, _ in indexed], preprocess=prep,
        epochs=epochs, seed=seed, lr=lr, batch_size=batch_size, weight_decay=weight_decay,
        optimiser=optimiser_settings(loop),
    )
    return _Job(model_name, preset, overrides, sources, indexed, tuple(base_cfg.channels), int(base_cfg.input_size),
                options, recipe, loop, workers)


def optimiser_settings(loop: ExperimentConfig) -> dict[str, Any]:
    """The optimiser the loop builds, by class and settings (its kernel choice, foreach or fused, included), so the
    checkpoint key changes by itself when the trainer's optimiser changes (a fused AdamW rounds differently)."""
    probe = build_optimizer([nn.Parameter(torch.zeros(1))], loop)
    return {"class": type(probe).__name__, **json.loads(json.dumps(probe.defaults, sort_keys=True, default=str))}


def _reporter(log: Log | None, on_epoch: OnEpoch | None) -> OnEpoch:
    """One epoch-event handler that logs and forwards the event."""

    def report(event: dict[str, Any]) -> None:
        row = event["metrics"]
        if log:
            log(f"pretrain epoch {event['epoch']}/{event['epochs']}: loss {row['train_loss']:.4f} "
                f"acc {row['train_acc']:.3f}")
        if on_epoch:
            on_epoch(event)

    return report


def _train(path: Path, job: _Job, log: Log | None, on_epoch: OnEpoch) -> None:
    """Load the macro table, train it with the shared loop and write the checkpoint atomically."""
    t0 = time.time()
    data = load_macro(job.sources, job.channels, job.size, job.options, indexed=job.indexed, workers=job.workers,
                      log=log)
    classes = sorted(set(data.labels))
    if len(classes) < 2:
        raise DatasetError(f"macro data {job.recipe['sources']} has one class only ({classes}); pre-training needs >= 2")
    y = np.array([classes.index(v) for v in data.labels], np.int64)
    seed = job.loop.seed
    seed_everything(seed)
    dev = resolve_device(job.loop.device)
    model = create_model(job.model_name, job.preset, **job.overrides, num_classes=len(classes))
    result = fit(model, job.loop, (data.x, y), classes=tuple(classes), channels=job.channels, seed=seed, device=dev,
                 on_epoch=on_epoch, stage="pretrain", min_batch=2)  # BatchNorm needs two samples a batch
    history = [dict(epoch=r["epoch"], loss=r["train_loss"], acc=r["train_acc"]) for r in result.history]
    info = dict(
        job.recipe, key=job.key, classes=classes, samples=len(y), report=data.report, history=history,
        seconds=round(time.time() - t0, 2), device=str(dev), code=code_version(),
        created=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    )
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    ckpt = {"state_dict": state, "config": _arch(model.config) | {"num_classes": len(classes)},
            "model": job.model_name, "pretrain": json.loads(json.dumps(info, default=str))}
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    torch.save(ckpt, tmp)
    os.replace(tmp, path)  # atomic: a reader never sees half a file
    if log:
        log(f"pre-trained on {len(y)} samples, {len(classes)} classes in {info['seconds']} s -> {path}")


def pretrain_for_experiment(cfg: Any, *, log: Log | None = None, on_epoch: OnEpoch | None = None) -> Path | None:
    """The checkpoint an :class:`~mer_core.config.ExperimentConfig` asks for (None when ``pretrain`` is '').

    The pre-trained model gets exactly the fine-tuned model's architecture:
    ``model_options`` plus the preprocessing's channel list and input size
    when those override the model's defaults.
    """
    if not cfg.pretrain:
        return None
    return pretrain(cfg.model, cfg.preset, cfg.pretrain, cfg.pretrain_epochs, cfg.seed, model_options=_options(cfg),
                    preprocess=cfg.preprocess, device=cfg.device, log=log, on_epoch=on_epoch)


def _options(cfg: Any) -> dict[str, Any]:
    options = dict(cfg.model_options)
    if cfg.preprocess.channels:
        options["channels"] = tuple(cfg.preprocess.channels)
    if cfg.preprocess.input_size:
        options["input_size"] = cfg.preprocess.input_size
    return options


def pretrain_record(cfg: Any, table: Any) -> dict[str, Any]:
    """Check the experiment's pre-training sources against its evaluation table (refusing an overlap, see
    :func:`mer_core.training.macro.check_sources`) and say what the run will start from: sources, their
    fingerprints and the checkpoint key (the hash of everything that determines the weights)."""
    sources = check_sources(cfg.pretrain, table, cfg.dataset)
    job = _job(cfg.model, cfg.preset, cfg.pretrain, cfg.pretrain_epochs, cfg.seed, _options(cfg), cfg.preprocess,
               1e-3, 32, 1e-4, cfg.device, 1)  # pretrain()'s defaults, as pretrain_for_experiment uses them
    return {"sources": sources, "checkpoint_key": job.key, "epochs": cfg.pretrain_epochs}


def weights_sha256(state_dict: dict[str, torch.Tensor]) -> str:
    """The sha256 of a state dict's tensors (names, dtypes, shapes and values, in name order): equal for equal
    weights, whenever and however the file holding them was written (a checkpoint file's own hash is not, as
    the file also records when it was made)."""
    h = hashlib.sha256()
    for name in sorted(state_dict):
        tensor = state_dict[name].detach().cpu().contiguous()
        h.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
        h.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def file_sha256(path: str | Path) -> str:
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


# --- fine-tuning helpers ------------------------------------------------------


def prepare_finetune(model: nn.Module, cfg: Any, checkpoint: str | Path | None = None) -> list[dict[str, Any]] | None:
    """A fold's fine-tuning set-up from an ExperimentConfig; returns optimiser param groups.

    None when ``cfg.pretrain`` is empty (train from scratch). Otherwise:
    the checkpoint (given, or :func:`pretrain_for_experiment`, which reuses
    the stored one) is loaded into the backbone, ``cfg.freeze`` is applied,
    and the groups put the head at ``cfg.lr`` and the backbone at
    ``cfg.lr * cfg.backbone_lr_mult``.
    """
    if not cfg.pretrain:
        return None
    path = checkpoint or pretrain_for_experiment(cfg)
    load_pretrained_backbone(model, path)
    apply_freeze(model, cfg.freeze)
    return param_groups(model, cfg.lr, cfg.backbone_lr_mult)


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load a checkpoint safely (``weights_only=True``) and check its keys."""
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"pre-trained checkpoint not found: {path}")
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(ckpt, dict) or not {"state_dict", "config"} <= set(ckpt):
        raise ConfigError(f"{path}: not a checkpoint of this project (expected keys 'state_dict' and 'config')")
    return ckpt


def head_module(model: nn.Module) -> tuple[str, nn.Module]:
    """(qualified name, module) of the classifier head that fine-tuning replaces."""
    head = model.head_module() if hasattr(model, "head_module") else None
    if head is None:
        for name in ("head", "classifier", "fc"):
            if isinstance(getattr(model, name, None), nn.Module):
                head = getattr(model, name)
                break
    for name, module in model.named_modules():
        if module is head and name:
            return name, module
    raise ConfigError(f"{type(model).__name__}: no classifier head found (expected head_module() or .head)")


def load_pretrained_backbone(model: nn.Module, checkpoint_path: str | Path) -> dict[str, Any]:
    """Copy every pre-trained weight except the head into ``model``.

    The checkpoint's architecture must equal the model's (all config fields
    but ``num_classes`` and the dropout rates); a mismatch raises, naming
    the fields. Returns a
    summary: loaded and skipped tensor names and the checkpoint's
    pre-training info.
    """
    ckpt = read_checkpoint(checkpoint_path)
    cfg = getattr(model, "config", None)
    if cfg is not None:
        mine, theirs = _arch(cfg), {k: v for k, v in ckpt["config"].items() if k != "num_classes"}
        diff = sorted(k for k in set(mine) | set(theirs) if mine.get(k) != theirs.get(k) and k not in NOT_ARCH)
        if diff:
            detail = ", ".join(f"{k}: checkpoint {theirs.get(k)!r} vs model {mine.get(k)!r}" for k in diff)
            raise ConfigError(f"{checkpoint_path}: pre-trained architecture differs from the model ({detail})")
    prefix = head_module(model)[0] + "."
    state = {k: v for k, v in ckpt["state_dict"].items() if not k.startswith(prefix)}
    result = model.load_state_dict(state, strict=False)
    bad_missing = [k for k in result.missing_keys if not k.startswith(prefix)]
    if bad_missing or result.unexpected_keys:
        raise ConfigError(
            f"{checkpoint_path}: weights do not fit the model (missing {bad_missing[:5]}, "
            f"unexpected {list(result.unexpected_keys)[:5]})"
        )
    return dict(loaded=sorted(state), skipped=sorted(set(ckpt["state_dict"]) - set(state)),
                pretrain=ckpt.get("pretrain", {}))


def apply_freeze(model: nn.Module, mode: str) -> list[str]:
    """Freeze parameters for fine-tuning; return the frozen parameter names.

    * ``none``: everything trains;
    * ``early``: the model's ``early_modules()`` (DenseAttention: stem and
      first dense stage; other models: their first child module) are frozen;
    * ``all_but_head``: only the classifier head trains (a linear probe).

    Frozen means ``requires_grad=False``. BatchNorm running statistics still
    follow the micro data in training mode, which keeps training and
    evaluation consistent and adapts normalisation to the smaller motion
    range of micro-expressions. Calling it again resets earlier freezing.
    """
    if mode not in FREEZE_MODES:
        raise ConfigError(f"freeze={mode!r}: expected one of {', '.join(FREEZE_MODES)}")
    for p in model.parameters():
        p.requires_grad_(True)
    if mode == "none":
        return []
    if mode == "early":
        modules = model.early_modules() if hasattr(model, "early_modules") else list(model.children())[:1]
        frozen_ids = {id(p) for m in modules for p in m.parameters()}
    else:
        head_ids = {id(p) for p in head_module(model)[1].parameters()}
        frozen_ids = {id(p) for p in model.parameters() if id(p) not in head_ids}
    names = []
    for name, p in model.named_parameters():
        if id(p) in frozen_ids:
            p.requires_grad_(False)
            names.append(name)
    return names


def param_groups(model: nn.Module, lr: float, backbone_lr_mult: float = 1.0) -> list[dict[str, Any]]:
    """Optimiser groups: the head at ``lr``, the (trainable) backbone at ``lr * backbone_lr_mult``.

    Frozen parameters are left out; a group with no parameters (or a
    backbone multiplier of 0) is omitted. Each group has a ``name``.
    """
    if backbone_lr_mult < 0:
        raise ConfigError(f"backbone_lr_mult={backbone_lr_mult}: expected >= 0")
    head_ids = {id(p) for p in head_module(model)[1].parameters()}
    head = [p for p in model.parameters() if id(p) in head_ids and p.requires_grad]
    backbone = [p for p in model.parameters() if id(p) not in head_ids and p.requires_grad]
    groups = []
    if backbone and backbone_lr_mult > 0:
        groups.append({"params": backbone, "lr": lr * backbone_lr_mult, "name": "backbone"})
    if head:
        groups.append({"params": head, "lr": lr, "name": "head"})
    if not groups:
        raise ConfigError("no trainable parameters left (everything frozen); use freeze='all_but_head' or 'none'")
    return groups
