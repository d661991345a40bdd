"""One training loop for every registered model.

``fit`` trains a model on one fold's training arrays and predicts its test
arrays. Model selection is honest: with ``selection='fixed'`` the last epoch
is used; with ``'early_stop'`` the epoch is chosen on a validation split of
*training* subjects (the caller carves it, see protocols). The test subject is
only ever *evaluated*: when ``record_oracle`` is on, its per-epoch accuracy is
recorded so the dashboard can show how much test-set epoch selection would
inflate the score, labelled as a diagnostic and never used for the headline.
"""
from __future__ import annotations

import copy
import random
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset, WeightedRandomSampler

from mer_core.config import ExperimentConfig
from mer_core.evaluation.metrics import scores
from mer_core.training.losses import build_loss


class Cancelled(Exception):
    """Raised inside training when the caller's ``should_stop`` says so."""


@dataclass
class FitResult:
    history: list[dict[str, float]] = field(default_factory=list)
    test_probs: np.ndarray | None = None  # (n_test, classes) at the selected epoch
    selected_epoch: int = 0  # 1-based
    oracle_epoch: int | None = None  # 1-based, diagnostic only
    oracle_probs: np.ndarray | None = None
    seconds: float = 0.0


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


def resolve_device(name: str = "auto") -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        return torch.device("cpu")
    return torch.device(name)


def class_weights(y: np.ndarray, n_classes: int) -> torch.Tensor:
    """Inverse-frequency weights, normalised to mean 1 over present classes."""
    counts = np.bincount(y, minlength=n_classes).astype(float)
    w = np.where(counts > 0, counts.sum() / np.maximum(counts, 1) / max((counts > 0).sum(), 1), 0.0)
    return torch.tensor(w, dtype=torch.float32)


def augment(x: torch.Tensor, channels: tuple[str, ...], gen: torch.Generator) -> torch.Tensor:
    """Flow-aware horizontal flip and a small random shift.

    A mirrored face moves the other way: flipping negates ``flow_u``.
    """
    n = x.shape[0]
    flip = torch.rand(n, generator=gen) < 0.5
    if flip.any():
        xf = x[flip].flip(-1)
        if "flow_u" in channels:
            xf[:, channels.index("flow_u")] *= -1
        x = x.clone()
        x[flip] = xf
    shift = int(torch.randint(-2, 3, (1,), generator=gen)), int(torch.randint(-2, 3, (1,), generator=gen))
    return torch.roll(x, shifts=shift, dims=(-2, -1))


def build_optimizer(params: Any, cfg: ExperimentConfig) -> torch.optim.Optimizer:
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    if cfg.optimizer == "adam":
        return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    if cfg.optimizer == "adan":
        from pytorch_optimizer import Adan

        return Adan(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    raise ValueError(f"unknown optimizer {cfg.optimizer!r}")


def build_scheduler(opt: torch.optim.Optimizer, cfg: ExperimentConfig) -> Any:
    if cfg.scheduler == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(cfg.epochs, 1))
    if cfg.scheduler == "step":
        return torch.optim.lr_scheduler.StepLR(opt, step_size=max(cfg.epochs // 3, 1), gamma=0.1)
    return None


@torch.no_grad()
def predict_proba(model: nn.Module, x: np.ndarray, device: torch.device, batch_size: int = 64) -> np.ndarray:
    model.eval()
    out = []
    for i in range(0, len(x), batch_size):
        xb = torch.from_numpy(x[i : i + batch_size]).to(device)
        out.append(torch.softmax(model(xb).float(), dim=1).cpu().numpy())
    k = getattr(getattr(model, "config", None), "num_classes", 0)
    return np.concatenate(out) if out else np.zeros((0, k), np.float32)


def fit(
    model: nn.Module,
    cfg: ExperimentConfig,
    train: tuple[np.ndarray, np.ndarray],
    *,
    classes: tuple[str, ...],
    channels: tuple[str, ...],
    val: tuple[np.ndarray, np.ndarray] | None = None,
    test: tuple[np.ndarray, np.ndarray] | None = None,
    seed: int = 0,
    device: torch.device | None = None,
    on_epoch: Callable[[dict[str, float]], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    param_groups: Any = None,
) -> FitResult:
    """Train ``model`` and return its history and test probabilities."""
    t0 = time.time()
    device = device or resolve_device(cfg.device)
    seed_everything(seed)
    gen = torch.Generator().manual_seed(seed)
    k = len(classes)
    x_tr, y_tr = train
    if len(x_tr) == 0:
        raise ValueError("the fold has no training samples")
    model.to(device)
    cuda = device.type == "cuda"
    if cuda:
        model = model.to(memory_format=torch.channels_last)
    weight = class_weights(y_tr, k).to(device) if cfg.class_balance == "weights" else None
    loss_fn = build_loss(cfg.loss, gamma=cfg.focal_gamma, alpha=cfg.focal_alpha, smoothing=cfg.label_smoothing,
                         weight=weight).to(device)
    opt = build_optimizer(param_groups if param_groups is not None else model.parameters(), cfg)
    sched = build_scheduler(opt, cfg)
    scaler = torch.amp.GradScaler("cuda") if cuda else None
    ds = TensorDataset(torch.from_numpy(x_tr), torch.from_numpy(y_tr.astype(np.int64)))
    if cfg.class_balance == "sampler":
        w = class_weights(y_tr, k).numpy()[y_tr]
        sampler = WeightedRandomSampler(torch.tensor(w, dtype=torch.double), len(y_tr), replacement=True, generator=gen)
        loader = DataLoader(ds, batch_size=cfg.batch_size, sampler=sampler)
    else:
        loader = DataLoader(ds, batch_size=cfg.batch_size, shuffle=True, generator=gen)

    result = FitResult()
    best_val: tuple[float, float] | None = None
    best_state: dict[str, torch.Tensor] | None = None
    stale = 0
    test_epoch_probs: list[np.ndarray] = []
    for epoch in range(1, cfg.epochs + 1):
        model.train()
        total, correct, loss_sum = 0, 0, 0.0
        for xb, yb in loader:
            if should_stop is not None and should_stop():
                raise Cancelled()
            if cfg.augment:
                xb = augment(xb, channels, gen)
            xb, yb = xb.to(device, non_blocking=True), yb.to(device, non_blocking=True)
            if cuda:
                xb = xb.contiguous(memory_format=torch.channels_last)
            opt.zero_grad(set_to_none=True)
            with torch.autocast(device_type=device.type, enabled=cuda):
                logits = model(xb)
                loss = loss_fn(logits.float(), yb)
            if scaler is not None:
                scaler.scale(loss).backward()
                if cfg.grad_clip > 0:
                    scaler.unscale_(opt)
                    nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
                scaler.step(opt)
                scaler.update()
            else:
                loss.backward()
                if cfg.grad_clip > 0:
                    nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
                opt.step()
            if not torch.isfinite(loss):
                raise FloatingPointError(f"training loss became {loss.item()} at epoch {epoch}; lower the learning rate")
            loss_sum += loss.item() * len(yb)
            correct += int((logits.argmax(1) == yb).sum())
            total += len(yb)
        row: dict[str, float] = {"epoch": epoch, "train_loss": loss_sum / total, "train_acc": correct / total,
                                 "lr": opt.param_groups[0]["lr"]}
        if sched is not None:
            sched.step()
        if val is not None and len(val[0]):
            pv = predict_proba(model, val[0], device)
            s = scores(val[1], pv.argmax(1), classes)
            row["val_loss"] = float(_nll(pv, val[1]))
            row["val_acc"], row["val_uf1"] = s.accuracy, s.uf1
            key = (s.uf1, -row["val_loss"])
            if best_val is None or key > best_val:
                best_val, stale = key, 0
                best_state = copy.deepcopy(model.state_dict())
                result.selected_epoch = epoch
            else:
                stale += 1
        if test is not None and cfg.record_oracle and len(test[0]):
            pt = predict_proba(model, test[0], device)
            test_epoch_probs.append(pt)
            st = scores(test[1], pt.argmax(1), classes)
            row["test_acc"], row["test_uf1"] = st.accuracy, st.uf1
        result.history.append(row)
        if on_epoch is not None:
            on_epoch(row)
        if cfg.selection == "early_stop" and val is not None and stale >= cfg.patience:
            break
    if cfg.selection == "early_stop" and best_state is not None:
        model.load_state_dict(best_state)
    else:
        result.selected_epoch = len(result.history)
    if test is not None and len(test[0]):
        if cfg.selection == "fixed" and test_epoch_probs:
            result.test_probs = test_epoch_probs[-1]
        else:
            result.test_probs = predict_proba(model, test[0], device)
        if test_epoch_probs:
            accs = [float((p.argmax(1) == test[1]).mean()) for p in test_epoch_probs]
            best = int(np.argmax(accs))
            result.oracle_epoch = best + 1
            result.oracle_probs = test_epoch_probs[best]
    result.seconds = time.time() - t0
    return result


def _nll(probs: np.ndarray, y: np.ndarray) -> float:
    return float(-np.log(np.clip(probs[np.arange(len(y)), y], 1e-8, 1.0)).mean())
