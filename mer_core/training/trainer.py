"""One training loop for every registered model: fold training and macro pre-training.

``fit`` trains a model on one table's training arrays and, for a fold,
predicts its test arrays. Macro pre-training (:mod:`mer_core.training.pretrain`)
is the same call on the macro table, with no validation and no test data.

The loop is built from small pieces (fold training, pre-training and the
final model all run them):

* :func:`make_loader` -- a data stream whose order and augmentation depend
  only on its seed;
* :class:`TrainState` -- model, optimiser, scheduler, loss and device;
  :func:`train_one_epoch` advances it by one pass over a loader;
* :func:`evaluate` -- probabilities and scores on held-out arrays;
* :class:`Selection` -- honest epoch selection. With ``selection='fixed'``
  the last epoch is used; with ``'early_stop'`` the epoch is chosen on a
  validation split of *training* subjects (the caller carves it, see
  protocols). It only ever sees validation scores.
* :class:`WeightAverage` -- ``average='ema'|'swa'``: the weights averaged
  over the last epochs (torch's ``AveragedModel``), loaded into the model at
  the end with batch-norm statistics recomputed on the *training* inputs;
* :func:`epoch_event` -- the one event dict every stage reports per epoch
  through ``on_epoch``: ``stage`` ('pretrain' | 'fold' | 'final'), ``epoch``,
  ``epochs``, ``loss`` (training loss) and ``metrics`` (the history row).

The test subject is only ever *evaluated*: when ``record_oracle`` is on, its
per-epoch accuracy is recorded so the dashboard can show how much test-set
epoch selection would inflate the score, labelled as a diagnostic and never
used for the headline.
"""
from __future__ import annotations

import copy
import random
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

import numpy as np
import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn, update_bn
from torch.utils.data import BatchSampler, RandomSampler, Sampler, TensorDataset, WeightedRandomSampler

from mer_core.config import ExperimentConfig
from mer_core.errors import MerError
from mer_core.evaluation.metrics import scores
from mer_core.training.losses import build_loss

STAGES = ("pretrain", "fold", "final")  # final: the model trained on every subject after the LOSO
_STAGE_LABELS = {"pretrain": "pre-training", "fold": "the fold", "final": "the final model"}
EpochEvent = dict[str, Any]  # see epoch_event
OnEpoch = Callable[[EpochEvent], None]


class Cancelled(Exception):
    """Raised inside training when the caller's ``should_stop`` says so."""


class Diverged(MerError, FloatingPointError):
    """Training ended with weights (or predictions) that are not finite numbers: nothing of it may be stored."""


@dataclass
class FitResult:
    history: list[dict[str, float]] = field(default_factory=list)
    test_probs: np.ndarray | None = None  # (n_test, classes) at the selected epoch
    selected_epoch: int = 0  # 1-based
    oracle_epoch: int | None = None  # 1-based, diagnostic only
    oracle_probs: np.ndarray | None = None
    seconds: float = 0.0
    val_epoch_probs: list[np.ndarray] = field(default_factory=list)  # per epoch, when validation data is given
    test_epoch_probs: list[np.ndarray] = field(default_factory=list)  # per epoch, when record_oracle is on
    inner_uf1: list[float] = field(default_factory=list)  # selection='nested': pooled inner validation UF1 per epoch
    members: int = 1  # models whose test probabilities were averaged (seeds_per_fold)


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
    """Inverse-frequency weights: each present class weighs the same in total, the mean sample weighs 1."""
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
    """The config's optimiser, with PyTorch's multi-tensor ("foreach") update everywhere: on a CPU it is not the
    default, yet for AdamW it gave every model the same parameters bit for bit in fewer calls (docs/benchmarks.md,
    "The optimiser step")."""
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay, foreach=True)
    if cfg.optimizer == "adam":
        return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay, foreach=True)
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay,
                               foreach=True)
    if cfg.optimizer == "adan":
        from pytorch_optimizer import Adan  # lazy: loads pytorch_optimizer (several seconds), only for Adan

        return Adan(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    raise ValueError(f"unknown optimizer {cfg.optimizer!r}")


def build_scheduler(opt: torch.optim.Optimizer, cfg: ExperimentConfig) -> Any:
    if cfg.scheduler == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(cfg.epochs, 1))
    if cfg.scheduler == "step":
        return torch.optim.lr_scheduler.StepLR(opt, step_size=max(cfg.epochs // 3, 1), gamma=0.1)
    return None


def channels_last(model: nn.Module, device: torch.device) -> bool:
    """Whether inputs go to ``model`` in channels-last layout: always on CUDA; on a CPU when the model says
    ``prefers_channels_last`` (a measured choice: its convolutions and pooling run faster so)."""
    return device.type == "cuda" or bool(getattr(model, "prefers_channels_last", False))


def as_layout(xb: torch.Tensor, cl: bool) -> torch.Tensor:
    return xb.contiguous(memory_format=torch.channels_last) if cl and xb.dim() == 4 else xb


@torch.no_grad()
def predict_proba(model: nn.Module, x: np.ndarray, device: torch.device, batch_size: int = 64) -> np.ndarray:
    model.eval()
    out = []
    cl = channels_last(model, device)
    for i in range(0, len(x), batch_size):
        xb = as_layout(torch.from_numpy(x[i : i + batch_size]).to(device), cl)
        out.append(torch.softmax(model(xb).float(), dim=1).cpu().numpy())
    k = getattr(getattr(model, "config", None), "num_classes", 0)
    return np.concatenate(out) if out else np.zeros((0, k), np.float32)


# --- the loop's pieces ----------------------------------------------------------


class Loader:
    """One model's training stream: the batches a ``DataLoader(dataset, batch_size, sampler=...)`` yields, without
    its per-sample collation, and ``gen``, the generator behind their order and augmentation.

    The index order comes from the same torch sampler, so the batches are the
    ones the DataLoader would give, value for value; each batch is one indexed
    read per tensor instead of ``batch_size`` item reads and a stack, which were
    a visible share of a small model's CPU step in the profiler.
    """

    def __init__(self, dataset: TensorDataset, batch_size: int, sampler: Sampler[int], gen: torch.Generator,
                 loader_gen: torch.Generator | None) -> None:
        self.dataset, self.batch_size, self.sampler, self.gen = dataset, int(batch_size), sampler, gen
        self.loader_gen = loader_gen  # the replaced DataLoader's generator (None: it had none)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, ...]]:
        # A DataLoader draws one int64 per pass (its workers' base seed) from its generator, or from the global
        # RNG when it has none, before the sampler's first draw; the draw is kept so that every seed gives the
        # runs it gave before this class replaced the DataLoader.
        torch.empty((), dtype=torch.int64).random_(generator=self.loader_gen)
        for idx in BatchSampler(self.sampler, self.batch_size, drop_last=False):
            rows = torch.as_tensor(idx, dtype=torch.int64)
            yield tuple(t[rows] for t in self.dataset.tensors)

    def __len__(self) -> int:
        return -(-len(self.sampler) // self.batch_size)


def make_loader(x: np.ndarray, y: np.ndarray, cfg: ExperimentConfig, seed: int,
                n_classes: int | None = None) -> Loader:
    """Shuffled batches of ``(x, y)``; the order (and the augmentation drawn in
    :func:`train_one_epoch`) depends only on ``seed``, never on the global RNG.

    With ``class_balance='sampler'`` batches are drawn with inverse-frequency
    weights, with replacement.
    """
    gen = torch.Generator().manual_seed(seed)
    ds = TensorDataset(torch.from_numpy(x), torch.from_numpy(np.asarray(y).astype(np.int64)))
    if cfg.class_balance == "sampler":
        w = class_weights(y, n_classes if n_classes is not None else int(np.max(y)) + 1).numpy()[y]
        sampler = WeightedRandomSampler(torch.tensor(w, dtype=torch.double), len(y), replacement=True, generator=gen)
        return Loader(ds, cfg.batch_size, sampler, gen, None)
    return Loader(ds, cfg.batch_size, RandomSampler(ds, generator=gen), gen, gen)


@dataclass
class TrainState:
    """What one model's training carries from batch to batch (its optimiser state included)."""

    model: nn.Module
    opt: torch.optim.Optimizer
    sched: Any
    loss_fn: nn.Module
    device: torch.device
    channels: tuple[str, ...]
    augment: bool = True
    grad_clip: float = 0.0
    min_batch: int = 1  # smaller batches are skipped (2 for BatchNorm on tiny tables)
    scaler: Any = None
    channels_last: bool = False  # inputs in channels-last layout (see :func:`channels_last`)

    @classmethod
    def create(cls, model: nn.Module, cfg: ExperimentConfig, y_train: np.ndarray, n_classes: int,
               channels: tuple[str, ...], device: torch.device, param_groups: Any = None,
               min_batch: int = 1) -> "TrainState":
        """Move ``model`` to ``device`` and build its loss, optimiser and scheduler from ``cfg``."""
        model.to(device)
        cuda = device.type == "cuda"
        if cuda:
            model = model.to(memory_format=torch.channels_last)
        weight = class_weights(y_train, n_classes).to(device) if cfg.class_balance == "weights" else None
        loss_fn = build_loss(cfg.loss, gamma=cfg.focal_gamma, alpha=cfg.focal_alpha, smoothing=cfg.label_smoothing,
                             weight=weight).to(device)
        opt = build_optimizer(param_groups if param_groups is not None else model.parameters(), cfg)
        return cls(model, opt, build_scheduler(opt, cfg), loss_fn, device, tuple(channels), cfg.augment,
                   cfg.grad_clip, min_batch, torch.amp.GradScaler("cuda") if cuda else None,
                   channels_last(model, device))

    def step(self, xb: torch.Tensor, yb: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One optimiser step on a batch already on the device; returns (loss, logits)."""
        model, opt = self.model, self.opt
        cuda = self.device.type == "cuda"
        xb = as_layout(xb, self.channels_last)
        opt.zero_grad(set_to_none=True)
        with torch.autocast(device_type=self.device.type, enabled=cuda):
            logits = model(xb)
            loss = self.loss_fn(logits.float(), yb)
        if self.scaler is not None:
            self.scaler.scale(loss).backward()
            if self.grad_clip > 0:
                self.scaler.unscale_(opt)
                nn.utils.clip_grad_norm_(model.parameters(), self.grad_clip)
            self.scaler.step(opt)
            self.scaler.update()
        else:
            loss.backward()
            if self.grad_clip > 0:
                nn.utils.clip_grad_norm_(model.parameters(), self.grad_clip)
            opt.step()
        return loss, logits


def train_one_epoch(state: TrainState, loader: Loader, epoch: int,
                    should_stop: Callable[[], bool] | None = None,
                    on_step: Callable[[], None] | None = None) -> dict[str, float]:
    """One pass over ``loader``; returns the history row's training part and steps the scheduler.

    ``on_step`` is called after every optimiser step (an EMA of the weights updates there)."""
    state.model.train()
    total, correct, loss_sum = 0, 0, 0.0
    n = len(loader.dataset)
    for xb, yb in loader:
        if should_stop is not None and should_stop():
            raise Cancelled()
        if len(yb) < state.min_batch and n >= state.min_batch:
            continue
        if state.augment:
            xb = augment(xb, state.channels, loader.gen)
        xb, yb = xb.to(state.device, non_blocking=True), yb.to(state.device, non_blocking=True)
        loss, logits = state.step(xb, yb)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"training loss became {loss.item()} at epoch {epoch}; lower the learning rate")
        if on_step is not None:
            on_step()
        loss_sum += loss.item() * len(yb)
        correct += int((logits.argmax(1) == yb).sum())
        total += len(yb)
    total = max(total, 1)
    row = {"epoch": epoch, "train_loss": loss_sum / total, "train_acc": correct / total,
           "lr": state.opt.param_groups[0]["lr"]}
    if state.sched is not None:
        state.sched.step()
    return row


@dataclass
class Evaluation:
    probs: np.ndarray
    loss: float
    acc: float
    uf1: float


def evaluate(model: nn.Module, x: np.ndarray, y: np.ndarray, classes: tuple[str, ...],
             device: torch.device) -> Evaluation:
    """Probabilities, negative log-likelihood, accuracy and UF1 of ``model`` on ``(x, y)``."""
    probs = predict_proba(model, x, device)
    s = scores(y, probs.argmax(1), classes)
    return Evaluation(probs, nll(probs, y), s.accuracy, s.uf1)


@dataclass
class Selection:
    """Honest epoch selection: it is shown validation scores only, never the test subject's.

    ``fixed`` keeps the last epoch; so does ``nested`` inside one fit (its epoch
    count is chosen around the fits, see :mod:`mer_core.training.fold_fit`).
    ``early_stop`` keeps the epoch with the best
    validation (UF1, -loss), stops after ``patience`` epochs without
    improvement, and :meth:`finish` restores that epoch's weights.
    """

    mode: str = "fixed"
    patience: int = 5
    epoch: int = 0  # 1-based; 0 until observed
    best: tuple[float, float] | None = None
    state: dict[str, torch.Tensor] | None = None
    stale: int = 0

    def observe(self, epoch: int, val: Evaluation, model: nn.Module) -> None:
        key = (val.uf1, -val.loss)
        if self.best is None or key > self.best:
            self.best, self.stale, self.epoch = key, 0, epoch
            if self.mode == "early_stop":  # 'fixed' keeps the last epoch: no copy needed
                self.state = copy.deepcopy(model.state_dict())
        else:
            self.stale += 1

    def should_stop(self) -> bool:
        return self.mode == "early_stop" and self.best is not None and self.stale >= self.patience

    def finish(self, model: nn.Module, epochs_run: int) -> int:
        """Load the selected weights into ``model``; return the selected epoch (1-based)."""
        if self.mode == "early_stop" and self.state is not None:
            model.load_state_dict(self.state)
            return self.epoch
        return epochs_run


class WeightAverage:
    """The weights averaged over the last epochs (``cfg.average``), kept by torch's ``AveragedModel``.

    * ``ema``: updated after every optimiser step,
      ``ema = decay * ema + (1 - decay) * weights``; the first step's weights
      start it (``get_ema_multi_avg_fn``).
    * ``swa``: the plain mean of the weights at the end of each of the last
      ``swa_epochs`` epochs of this fit (all of them when it runs fewer).

    Only parameters are averaged. :meth:`finish` loads the average into the
    model and recomputes its batch-norm statistics (``update_bn``) on the
    *training* inputs, never on validation or test data.
    """

    def __init__(self, model: nn.Module, mode: str, n_epochs: int, decay: float = 0.99, swa_epochs: int = 5) -> None:
        if mode not in ("ema", "swa"):
            raise ValueError(f"average={mode!r}: expected 'ema' or 'swa'")
        self.mode = mode
        self.first_epoch = max(1, int(n_epochs) - int(swa_epochs) + 1)  # swa: the first epoch averaged
        self.averaged = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(decay) if mode == "ema" else None)

    @classmethod
    def create(cls, model: nn.Module, cfg: ExperimentConfig, n_epochs: int) -> "WeightAverage | None":
        """The config's averaging for a fit of ``n_epochs`` epochs; None for ``average='none'``."""
        if cfg.average == "none":
            return None
        return cls(model, cfg.average, n_epochs, cfg.ema_decay, cfg.swa_epochs)

    @property
    def count(self) -> int:
        """How many weight snapshots the average holds."""
        return int(self.averaged.n_averaged)

    def after_step(self, model: nn.Module) -> None:
        if self.mode == "ema":
            self.averaged.update_parameters(model)

    def after_epoch(self, model: nn.Module, epoch: int) -> None:
        if self.mode == "swa" and epoch >= self.first_epoch:
            self.averaged.update_parameters(model)

    def finish(self, model: nn.Module, x_train: np.ndarray, device: torch.device, batch_size: int = 64) -> None:
        """Load the average into ``model``; batch-norm statistics recomputed on ``x_train`` (the training inputs)."""
        if self.count == 0:  # no optimiser step was taken: the weights are the model's own
            return
        with torch.no_grad():
            for p, avg in zip(model.parameters(), self.averaged.module.parameters(), strict=True):
                p.copy_(avg)
        update_bn(_input_batches(x_train, batch_size, device, channels_last(model, device)), model)


def _input_batches(x: np.ndarray, batch_size: int, device: torch.device, cl: bool) -> Iterator[torch.Tensor]:
    """``x`` in order, in batches on ``device``; a last batch of one joins the one before (batch norm in
    training mode needs two samples)."""
    n, size = len(x), max(int(batch_size), 2)
    starts = list(range(0, n, size))
    if len(starts) > 1 and n - starts[-1] < 2:
        starts.pop()
    for a, b in zip(starts, [*starts[1:], n]):
        yield as_layout(torch.from_numpy(np.ascontiguousarray(x[a:b])).to(device), cl)


def epoch_event(stage: str, epoch: int, epochs: int, row: dict[str, float]) -> EpochEvent:
    """The per-epoch report every stage sends through ``on_epoch``."""
    if stage not in STAGES:
        raise ValueError(f"stage={stage!r}: expected one of {', '.join(STAGES)}")
    return {"stage": stage, "epoch": epoch, "epochs": epochs, "loss": row["train_loss"], "metrics": dict(row)}


# --- the loop -------------------------------------------------------------------


def fit(
    model: nn.Module,
    cfg: ExperimentConfig,
    train: tuple[np.ndarray, np.ndarray],
    *,
    classes: tuple[str, ...] | list[str],
    channels: tuple[str, ...],
    val: tuple[np.ndarray, np.ndarray] | None = None,
    test: tuple[np.ndarray, np.ndarray] | None = None,
    seed: int = 0,
    device: torch.device | None = None,
    on_epoch: OnEpoch | None = None,
    should_stop: Callable[[], bool] | None = None,
    param_groups: Any = None,
    stage: str = "fold",
    min_batch: int = 1,
    epochs: int | None = None,
    label: str = "",
) -> FitResult:
    """Train ``model`` and return its history and test probabilities.

    ``on_epoch`` receives an :func:`epoch_event` after every epoch.
    ``epochs`` stops the loop earlier than ``cfg.epochs`` while the learning-rate
    schedule stays ``cfg``'s (the final model trained for the folds' median
    early-stopped epoch follows the same schedule the folds did).
    With ``cfg.average`` ('ema' | 'swa') the model ends with the averaged
    weights (:class:`WeightAverage`), which predict the test data.
    The weights are checked at the end (:func:`check_finite`): a model that
    diverged raises :class:`Diverged` naming ``label`` (e.g. "fold 2 (s03)").
    """
    t0 = time.time()
    device = device or resolve_device(cfg.device)
    seed_everything(seed)
    classes = tuple(classes)
    x_tr, y_tr = train
    if len(x_tr) == 0:
        raise ValueError("the fold has no training samples")
    loader = make_loader(x_tr, y_tr, cfg, seed, len(classes))
    state = TrainState.create(model, cfg, y_tr, len(classes), channels, device, param_groups, min_batch)
    model = state.model
    selection = Selection(cfg.selection, cfg.patience)
    result = FitResult()
    n_epochs = cfg.epochs if epochs is None else int(epochs)
    if not 1 <= n_epochs <= cfg.epochs:
        raise ValueError(f"epochs={epochs!r}: expected 1..{cfg.epochs} (the config's epochs)")
    average = WeightAverage.create(model, cfg, n_epochs)
    on_step = (lambda: average.after_step(model)) if average is not None else None
    for epoch in range(1, n_epochs + 1):
        row = train_one_epoch(state, loader, epoch, should_stop, on_step)
        if average is not None:
            average.after_epoch(model, epoch)
        if val is not None and len(val[0]):  # the weights of this epoch (not their average)
            ev = evaluate(model, val[0], val[1], classes, device)
            row["val_loss"], row["val_acc"], row["val_uf1"] = ev.loss, ev.acc, ev.uf1
            result.val_epoch_probs.append(ev.probs)
            selection.observe(epoch, ev, model)
        if test is not None and cfg.record_oracle and len(test[0]):
            et = evaluate(model, test[0], test[1], classes, device)
            result.test_epoch_probs.append(et.probs)
            row["test_acc"], row["test_uf1"] = et.acc, et.uf1
        result.history.append(row)
        if on_epoch is not None:
            on_epoch(epoch_event(stage, epoch, n_epochs, row))
        if selection.should_stop():
            break
    result.selected_epoch = selection.finish(model, len(result.history))
    if average is not None:  # evaluated and stored with the averaged weights
        average.finish(model, x_tr, device, cfg.batch_size)
    label = label or _STAGE_LABELS.get(stage, stage)
    check_finite(model, cfg, label)
    if test is not None and len(test[0]):
        _predict_test(result, model, cfg, test, device)
        if not np.isfinite(result.test_probs).all():
            raise Diverged(f"{label}: the test predictions are not finite numbers; "
                           f"{_divergence_hint(cfg)}")
    result.seconds = time.time() - t0
    return result


def check_finite(model: nn.Module, cfg: ExperimentConfig, label: str) -> None:
    """Raise :class:`Diverged` when a weight or buffer of the trained ``model`` is NaN or infinite.

    The loss is checked batch by batch, but the last step's update is never
    used in a loss: without this check, weights it made NaN were stored as a
    result (every clip predicted as the first class).
    """
    with torch.no_grad():
        for name, tensor in [*model.named_parameters(), *model.named_buffers()]:
            if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
                raise Diverged(f"{label}: the weights are not finite after training (NaN or inf in {name}); "
                               f"{_divergence_hint(cfg)}")


def _divergence_hint(cfg: ExperimentConfig) -> str:
    return (f"the training diverged, most likely because the learning rate lr={cfg.lr:g} is too high for "
            f"{cfg.optimizer} (try a 10x lower --lr); nothing of it is stored")


def _predict_test(result: FitResult, model: nn.Module, cfg: ExperimentConfig, test: tuple[np.ndarray, np.ndarray],
                  device: torch.device) -> None:
    """Test probabilities at the selected epoch, and the (diagnostic) oracle epoch."""
    test_epoch_probs = result.test_epoch_probs
    if cfg.selection == "fixed" and cfg.average == "none" and test_epoch_probs:
        result.test_probs = test_epoch_probs[-1]
    else:
        result.test_probs = predict_proba(model, test[0], device)
    if test_epoch_probs:
        result.oracle_epoch, result.oracle_probs = oracle_choice(test_epoch_probs, test[1])


def oracle_choice(test_epoch_probs: list[np.ndarray], y_test: np.ndarray) -> tuple[int, np.ndarray]:
    """The diagnostic oracle: (1-based epoch, its probabilities) with the best test accuracy, the first if tied."""
    accs = [float((p.argmax(1) == y_test).mean()) for p in test_epoch_probs]
    best = int(np.argmax(accs))
    return best + 1, test_epoch_probs[best]


def nll(probs: np.ndarray, y: np.ndarray) -> float:
    """The mean negative log-likelihood of the true classes (probabilities clipped at 1e-8)."""
    return float(-np.log(np.clip(probs[np.arange(len(y)), y], 1e-8, 1.0)).mean())
