"""How one fold is trained: nested epoch choice and a seed ensemble, each a set of calls to the one loop.

:func:`fit_fold` is what the fold runner (``executors.run_fold``) calls. With
the defaults (``selection`` fixed or early_stop, ``seeds_per_fold = 1``) it is
exactly one :func:`mer_core.training.trainer.fit` of one model, as before.

* ``selection = 'nested'``: every inner split of the fold
  (:func:`mer_core.training.protocols.inner_splits`: the fold's *training*
  subjects only) trains a fresh model for ``epochs`` epochs and validates it
  on its held-out training subjects after each epoch. The epoch count with
  the best validation UF1 pooled over the inner folds (ties: the lower pooled
  NLL, then the earlier epoch) is kept; the fold's model then trains on all
  its training subjects for that many epochs, with the config's learning-rate
  schedule as the inner folds had it, and predicts the test subject once.
  The chosen count is the fold's ``selected_epoch``; the pooled inner scores
  are its history's ``val_*`` columns.
* ``seeds_per_fold = S``: S models of the fold, seeds derived from the fold's
  seed (:func:`member_seed`; the first is the fold's seed itself); their test
  probabilities are averaged, and so are their per-epoch test probabilities
  for the (diagnostic) oracle. The first model is the fold's model: its
  epochs are stored as it trains and its weights are the fold's checkpoint.

A cancel stops whichever fit is running; nothing of an unfinished fold is
stored, so a resumed run trains it again from its first model.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
from torch import nn

from mer_core.config import ExperimentConfig
from mer_core.errors import MerError
from mer_core.evaluation.metrics import scores
from mer_core.training import trainer
from mer_core.training.protocols import Fold
from mer_core.training.trainer import FitResult, OnEpoch, oracle_choice

MEMBER_STRIDE = 10_000_019  # seed k of a fold: the fold's seed + k * MEMBER_STRIDE
INNER_STRIDE = 20_000_003  # inner fold j of nested selection: the fold's seed + (j + 1) * INNER_STRIDE

Build = Callable[[int], tuple[nn.Module, Any]]  # seed -> (a fresh model, its parameter groups or None)
Pick = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]  # indices -> (inputs, labels)


def member_seed(seed: int, k: int) -> int:
    """The seed of model ``k`` (0-based) of a fold whose seed is ``seed``; model 0 keeps the fold's seed."""
    return int(seed) + int(k) * MEMBER_STRIDE


def inner_seed(seed: int, j: int) -> int:
    """The seed of inner fold ``j`` (0-based) of nested selection in a fold whose seed is ``seed``."""
    return int(seed) + (int(j) + 1) * INNER_STRIDE


@dataclass
class NestedChoice:
    """Nested selection's result: the chosen epoch count and the pooled inner validation scores per epoch."""

    epoch: int  # 1-based
    uf1: list[float]
    acc: list[float]
    loss: list[float]


def choose_epochs_nested(build: Build, cfg: ExperimentConfig, pick: Pick, fold: Fold, *,
                         classes: tuple[str, ...], channels: tuple[str, ...], seed: int, device: Any = None,
                         should_stop: Callable[[], bool] | None = None, label: str = "") -> NestedChoice:
    """Train each inner split of ``fold`` and pick the epoch with the best pooled inner validation UF1.

    Only ``fold.inner`` indices are read (never ``fold.test_idx``). Inner fits are not averaged: their
    per-epoch validation scores the weights of that epoch.
    """
    if not fold.inner:
        raise MerError(f"{label or 'the fold'}: selection='nested' but the fold has no inner splits "
                       "(make_folds(..., nested_folds=...))")
    inner_cfg = cfg.replace(average="none") if cfg.average != "none" else cfg
    per_epoch: list[list[np.ndarray]] = [[] for _ in range(cfg.epochs)]
    ys = []
    for j, (tr, va) in enumerate(fold.inner):
        s = inner_seed(seed, j)
        model, groups = build(s)
        val = pick(va)
        r = trainer.fit(model, inner_cfg, pick(tr), classes=classes, channels=channels, val=val, seed=s, device=device,
                should_stop=should_stop, param_groups=groups, label=f"{label}, inner fold {j + 1}")
        if len(r.val_epoch_probs) != cfg.epochs:  # pragma: no cover - no early stop under 'nested'
            raise MerError(f"{label}: inner fold {j + 1} ran {len(r.val_epoch_probs)} of {cfg.epochs} epochs")
        ys.append(np.asarray(val[1]))
        for e, p in enumerate(r.val_epoch_probs):
            per_epoch[e].append(p)
    y = np.concatenate(ys)
    uf1, acc, loss = [], [], []
    for probs in per_epoch:
        p = np.concatenate(probs)
        s_ = scores(y, p.argmax(1), classes)
        uf1.append(float(s_.uf1))
        acc.append(float(s_.accuracy))
        loss.append(trainer.nll(p, y))
    best = max(range(cfg.epochs), key=lambda e: (uf1[e], -loss[e], -e))
    return NestedChoice(best + 1, uf1, acc, loss)


def fit_fold(build: Build, cfg: ExperimentConfig, pick: Pick, fold: Fold, *, classes: tuple[str, ...],
             channels: tuple[str, ...], seed: int, device: Any = None, on_epoch: OnEpoch | None = None,
             should_stop: Callable[[], bool] | None = None, label: str = "") -> tuple[nn.Module, FitResult]:
    """Train ``fold`` as ``cfg`` says; returns (the fold's model, its result with the test probabilities)."""
    t0 = time.time()
    choice = None
    if cfg.selection == "nested":
        choice = choose_epochs_nested(build, cfg, pick, fold, classes=classes, channels=channels, seed=seed,
                                      device=device, should_stop=should_stop, label=label)
    train = pick(fold.train_idx)
    val = pick(fold.val_idx) if len(fold.val_idx) else None
    test = pick(fold.test_idx)
    n = cfg.seeds_per_fold
    first: nn.Module | None = None
    results: list[FitResult] = []
    for k in range(n):
        s = member_seed(seed, k)
        model, groups = build(s)
        report = on_epoch if k == 0 else None  # the first model's epochs are the fold's stored curves
        if choice is not None and report is not None:
            report = _with_inner_scores(report, choice)
        results.append(trainer.fit(model, cfg, train, classes=classes, channels=channels, val=val, test=test,
                                   seed=s, device=device, on_epoch=report, should_stop=should_stop,
                                   param_groups=groups, epochs=choice.epoch if choice is not None else None,
                                   label=label if n == 1 else f"{label}, seed {k + 1} of {n}"))
        if k == 0:
            first = model
    result = results[0] if n == 1 else _ensemble(results, test[1])
    if choice is not None:
        result.inner_uf1 = list(choice.uf1)
        for row in result.history:
            row.update(_inner_row(choice, int(row["epoch"])))
    if choice is not None or n > 1:
        result.seconds = time.time() - t0
    assert first is not None
    return first, result


def _inner_row(choice: NestedChoice, epoch: int) -> dict[str, float]:
    e = epoch - 1
    return {"val_loss": choice.loss[e], "val_acc": choice.acc[e], "val_uf1": choice.uf1[e]}


def _with_inner_scores(on_epoch: OnEpoch, choice: NestedChoice) -> OnEpoch:
    """``on_epoch`` with the pooled inner validation scores of the epoch in its metrics."""
    def report(event: dict[str, Any]) -> None:
        on_epoch({**event, "metrics": {**event["metrics"], **_inner_row(choice, int(event["epoch"]))}})

    return report


def _ensemble(results: list[FitResult], y_test: np.ndarray) -> FitResult:
    """The models' test probabilities averaged; the first model's history and selected epoch."""
    first = results[0]
    out = FitResult(history=first.history, test_probs=np.mean([r.test_probs for r in results], axis=0),
                    selected_epoch=first.selected_epoch, members=len(results))
    lengths = {len(r.test_epoch_probs) for r in results}
    if len(lengths) == 1 and lengths != {0}:
        out.test_epoch_probs = [np.mean([r.test_epoch_probs[e] for r in results], axis=0)
                                for e in range(lengths.pop())]
        out.oracle_epoch, out.oracle_probs = oracle_choice(out.test_epoch_probs, y_test)
    return out
