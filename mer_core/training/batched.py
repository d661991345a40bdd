"""The ``batched`` executor: K folds' models trained at once as one vectorised computation.

Each fold keeps what :func:`mer_core.training.executors.run_fold` gives it,
piece by piece from :mod:`mer_core.training.trainer`:

* its own model, built under ``torch.manual_seed(fold_seed(seed, fold))``,
  and its own :class:`~mer_core.training.trainer.TrainState` (optimiser,
  scheduler, loss with its own class weights, gradient clipping, scaler);
* its own :func:`~mer_core.training.trainer.make_loader` from the same seed,
  so its batch order and augmentation are the ones it gets when trained alone;
  every batch's sample indices are checked against its training subjects;
* its own :class:`~mer_core.training.trainer.Selection` on its own validation
  subjects, its own curves, checkpoint and predictions, written through the
  same store calls as ``run_fold``; a fold is stored as soon as it finishes.

One step: the folds whose next batch has the same size are stacked
(parameters and buffers with ``torch.stack``, which is differentiable),
``torch.func.vmap(functional_call)`` runs their forward passes as one call,
each fold's own loss is computed on its own logits, the losses are summed
and backpropagated once (a fold's parameters only reach its own loss, so each
gets its own gradient), then each fold's optimiser steps and its BatchNorm
buffers are copied back. Training batches are never padded and never mixed:
a fold whose epoch has ended waits, a batch of another size goes in another
call, a group of one fold runs the plain ``TrainState.step``. Evaluation runs
each fold's own module, exactly as ``fit`` does. Dropout draws different
masks per fold (``randomness='different'``), so only dropout-free models give
the same predictions as the sequential executor (to float rounding).

Folds are trained in chunks of ``max_batched_folds`` (0: as many as half the
free RAM, or GPU memory, holds by :func:`per_fold_bytes`). A model registered
with ``batchable=False`` is refused (:func:`batch_refusal`) and the caller
falls back to the process executor with a note.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import torch
from torch import nn
from torch.func import functional_call, vmap

from mer_core.config import ExperimentConfig
from mer_core.training import trainer as tr
from mer_core.training.executors import CANCEL_FILE, FoldTask, _maybe_pretrained, fold_outcome, fold_seed
from mer_core.training.protocols import Fold

Emit = Callable[[dict[str, Any]], None]


def batch_refusal(cfg: ExperimentConfig) -> str:
    """Why ``cfg``'s model cannot be trained by the batched executor ('' when it can)."""
    from mer_core.models.registry import model_spec

    if not model_spec(cfg.model).batchable:
        return (f"model {cfg.model!r} is registered with batchable=False (it cannot run as stacked copies "
                "under torch.func.vmap); executor 'batched' fell back to 'process'")
    return ""


# --- memory budget -----------------------------------------------------------------


def free_bytes(device: torch.device) -> int:
    """Free memory where the models train: ``torch.cuda.mem_get_info`` or MemAvailable of /proc/meminfo."""
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:  # pragma: no cover - not Linux
        pass
    return 4 << 30  # pragma: no cover


def per_fold_bytes(model: nn.Module, cfg: ExperimentConfig, sample_shape: tuple[int, ...], n_samples: int) -> int:
    """Rough memory one fold needs in a batched step: weights with gradients and optimiser
    state (and their stacked copies), activations of one batch (forward and backward), its arrays."""
    n_params = sum(p.numel() for p in model.parameters())
    outputs: list[int] = []

    def hook(_m: nn.Module, _i: Any, out: Any) -> None:
        if isinstance(out, torch.Tensor):
            outputs.append(out.numel())

    leaves = [m for m in model.modules() if not list(m.children())]
    handles = [m.register_forward_hook(hook) for m in leaves]
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            model(torch.zeros((1, *sample_shape)))
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    activations = sum(outputs) * cfg.batch_size * 3  # saved for backward, their gradients, vmap temporaries
    sample = int(np.prod(sample_shape))
    return 4 * (8 * n_params + activations + 2 * sample * n_samples)


def chunk_size(cfg: ExperimentConfig, n_todo: int, per_fold: int, free: int) -> int:
    """Folds per chunk: ``max_batched_folds``, or what half of ``free`` holds; 1..n_todo."""
    k = cfg.max_batched_folds or int(0.5 * free // max(per_fold, 1))
    return max(1, min(n_todo, k))


# --- one fold inside a chunk ------------------------------------------------------------


@dataclass
class FoldRun:
    """One fold's training state while it trains beside others."""

    task: FoldTask
    cfg: ExperimentConfig
    state: tr.TrainState
    loader: tr.Loader
    allowed: np.ndarray  # bool per sample of the table: True for this fold's training samples
    val: tuple[np.ndarray, np.ndarray] | None
    test: tuple[np.ndarray, np.ndarray]
    selection: tr.Selection
    params: dict[str, torch.Tensor]
    buffers: dict[str, torch.Tensor]
    result: tr.FitResult = field(default_factory=tr.FitResult)
    test_epoch_probs: list[np.ndarray] = field(default_factory=list)
    t0: float = field(default_factory=time.time)
    batches: Iterator[Any] | None = None
    sums: list[torch.Tensor] = field(default_factory=list)  # loss * n (float64), correct, total

    @property
    def index(self) -> int:
        return self.task.fold.index

    def begin_epoch(self) -> None:
        self.state.model.train()
        self.batches = iter(self.loader)
        zero = torch.zeros((), dtype=torch.float64, device=self.state.device)
        self.sums = [zero.clone(), zero.clone(), zero.clone()]

    def next_batch(self) -> tuple[torch.Tensor, torch.Tensor] | None:
        """The fold's next training batch (augmented, on the device), as ``train_one_epoch`` draws it."""
        s = self.state
        n = len(self.loader.batches.dataset)
        for xb, yb, ib in self.batches:  # type: ignore[union-attr]
            if len(yb) < s.min_batch and n >= s.min_batch:
                continue
            _audit(self, ib.numpy())
            if s.augment:
                xb = tr.augment(xb, s.channels, self.loader.gen)
            return xb.to(s.device, non_blocking=True), yb.to(s.device, non_blocking=True)
        return None

    def record(self, loss: torch.Tensor, logits: torch.Tensor, yb: torch.Tensor) -> None:
        loss = loss.detach()
        self.sums[0] += loss.double() * len(yb)
        self.sums[1] += (logits.detach().argmax(1) == yb).sum()
        self.sums[2] += len(yb)

    def end_epoch(self, epoch: int, classes: tuple[str, ...]) -> dict[str, float]:
        """The history row, scheduler step, validation/selection and oracle diagnostics, as ``fit`` does."""
        loss_sum, correct, total = (float(v) for v in self.sums)
        if not np.isfinite(loss_sum):
            raise FloatingPointError(f"fold {self.index}: training loss became {loss_sum} at epoch {epoch}; "
                                     "lower the learning rate")
        total = max(total, 1.0)
        s = self.state
        row = {"epoch": epoch, "train_loss": loss_sum / total, "train_acc": int(correct) / int(total),
               "lr": s.opt.param_groups[0]["lr"]}
        if s.sched is not None:
            s.sched.step()
        if self.val is not None and len(self.val[0]):
            ev = tr.evaluate(s.model, self.val[0], self.val[1], classes, s.device)
            row["val_loss"], row["val_acc"], row["val_uf1"] = ev.loss, ev.acc, ev.uf1
            self.selection.observe(epoch, ev, s.model)
        if self.cfg.record_oracle and len(self.test[0]):
            et = tr.evaluate(s.model, self.test[0], self.test[1], classes, s.device)
            self.test_epoch_probs.append(et.probs)
            row["test_acc"], row["test_uf1"] = et.acc, et.uf1
        self.result.history.append(row)
        return row

    def done(self, epoch: int) -> bool:
        return epoch >= self.cfg.epochs or self.selection.should_stop()

    def finish(self) -> tr.FitResult:
        model, result = self.state.model, self.result
        result.selected_epoch = self.selection.finish(model, len(result.history))
        if len(self.test[0]):
            tr._predict_test(result, model, self.cfg, self.test, self.test_epoch_probs, self.state.device)
        result.seconds = time.time() - self.t0
        return result


def _audit(run: FoldRun, sample_idx: np.ndarray) -> None:
    """Refuse a training batch holding any sample outside the fold's own training subjects."""
    if not run.allowed[sample_idx].all():
        bad = sorted(set(sample_idx[~run.allowed[sample_idx]].tolist()))[:5]
        raise RuntimeError(f"fold {run.index}: training batch holds samples {bad} that are not among its "
                           "training subjects")


def start_fold(task: FoldTask, cfg: ExperimentConfig, x: np.ndarray, y: np.ndarray,
               device: torch.device) -> FoldRun:
    """Build one fold's model, training state, loader and selection exactly as ``run_fold`` + ``fit`` do."""
    from mer_core.models.registry import create_model

    fold = task.fold
    if len(fold.train_idx) == 0:
        raise ValueError("the fold has no training samples")
    pick = lambda idx: (np.ascontiguousarray(x[idx]), y[idx])  # noqa: E731
    seed = fold_seed(cfg.seed, fold.index)
    torch.manual_seed(seed)
    model = create_model(cfg.model, config=task.model_cfg)
    groups = _maybe_pretrained(model, cfg)
    tr.seed_everything(seed)
    x_tr, y_tr = pick(fold.train_idx)
    loader = tr.make_loader(x_tr, y_tr, cfg, seed, len(task.classes))
    dataset = loader.batches.dataset  # a TensorDataset: its third tensor names each row's sample index
    dataset.tensors = (*dataset.tensors, torch.as_tensor(np.asarray(fold.train_idx, dtype=np.int64)))
    state = tr.TrainState.create(model, cfg, y_tr, len(task.classes), tuple(task.model_cfg.channels), device,
                                 groups)
    allowed = np.zeros(len(y), dtype=bool)
    allowed[fold.train_idx] = True
    val = pick(fold.val_idx) if len(fold.val_idx) else None
    return FoldRun(task, cfg, state, loader, allowed, val, pick(fold.test_idx), tr.select(cfg),
                   dict(state.model.named_parameters()), dict(state.model.named_buffers()))


# --- one batched step ------------------------------------------------------------------


def vmapped_step(runs: list[FoldRun], xs: list[torch.Tensor], ys: list[torch.Tensor]) -> list[torch.Tensor]:
    """One optimiser step for each of ``runs`` (batches of one size) as one vmapped forward/backward.

    Returns each fold's logits. A single fold takes the plain ``TrainState.step``.
    """
    if len(runs) == 1:
        loss, logits = runs[0].state.step(xs[0], ys[0])
        runs[0].record(loss, logits, ys[0])
        return [logits]
    template = runs[0].state.model
    device = runs[0].state.device
    cuda = device.type == "cuda"
    for r in runs:
        r.state.opt.zero_grad(set_to_none=True)
    params = {n: torch.stack([r.params[n] for r in runs]) for n in runs[0].params}
    buffers = {n: torch.stack([r.buffers[n] for r in runs]) for n in runs[0].buffers}

    def call(p: dict[str, torch.Tensor], b: dict[str, torch.Tensor], xb: torch.Tensor) -> torch.Tensor:
        return functional_call(template, (p, b), (xb,))

    with torch.autocast(device_type=device.type, enabled=cuda):
        logits = vmap(call, randomness="different")(params, buffers, torch.stack(xs))
        losses = [r.state.loss_fn(logits[i].float(), ys[i]) for i, r in enumerate(runs)]
    scaled = [r.state.scaler.scale(loss) if r.state.scaler is not None else loss for r, loss in zip(runs, losses)]
    torch.stack(scaled).sum().backward()
    with torch.no_grad():  # BatchNorm statistics (and batch counters) back into each fold's module
        for n, stacked in buffers.items():
            for i, r in enumerate(runs):
                r.buffers[n].copy_(stacked[i])
    for i, r in enumerate(runs):
        _optimiser_step(r.state)
        r.record(losses[i], logits[i], ys[i])
    return [logits[i] for i in range(len(runs))]


def _optimiser_step(s: tr.TrainState) -> None:
    """The second half of ``TrainState.step``: clipping, scaler and optimiser, on gradients already there."""
    params = s.model.parameters()
    if s.scaler is not None:
        if s.grad_clip > 0:
            s.scaler.unscale_(s.opt)
            nn.utils.clip_grad_norm_(params, s.grad_clip)
        s.scaler.step(s.opt)
        s.scaler.update()
    else:
        if s.grad_clip > 0:
            nn.utils.clip_grad_norm_(params, s.grad_clip)
        s.opt.step()


def train_epoch_together(runs: list[FoldRun], stop: Callable[[], bool]) -> None:
    """One epoch of every fold in ``runs``: each step, the folds still in their epoch, grouped by batch size."""
    for r in runs:
        r.begin_epoch()
    live = list(runs)
    while live:
        if stop():
            raise tr.Cancelled()
        groups: dict[int, list[tuple[FoldRun, torch.Tensor, torch.Tensor]]] = {}
        for r in list(live):
            batch = r.next_batch()
            if batch is None:
                live.remove(r)
            else:
                groups.setdefault(len(batch[1]), []).append((r, *batch))
        for members in groups.values():
            vmapped_step([m[0] for m in members], [m[1] for m in members], [m[2] for m in members])


# --- the executor ---------------------------------------------------------------------


def run_batched(cfg: ExperimentConfig, todo: list[Fold], make_task: Callable[[Fold], FoldTask],
                finish: Callable[[Any], None], emit: Emit, should_stop: Callable[[], bool] | None,
                folder: Path) -> None:
    """Train ``todo`` in chunks of folds trained together; ``finish`` stores each fold as it ends."""
    from mer_core.store.db import RunStore

    tasks = [make_task(f) for f in todo]
    x = np.load(Path(folder) / "inputs.npy", mmap_mode="r")
    y = np.load(Path(folder) / "labels.npy")
    device = tr.resolve_device(cfg.device)
    cancel_path = Path(folder) / CANCEL_FILE

    def stop() -> bool:
        return cancel_path.exists() or bool(should_stop and should_stop())

    from mer_core.models.registry import create_model

    n_max = max(len(f.train_idx) + len(f.val_idx) + len(f.test_idx) for f in todo)
    per_fold = per_fold_bytes(create_model(cfg.model, config=tasks[0].model_cfg), cfg, tuple(x.shape[1:]), n_max)
    k = chunk_size(cfg, len(tasks), per_fold, free_bytes(device))
    emit({"event": "note", "message": f"batched executor: {len(tasks)} fold(s) in chunks of {k} on {device}"})
    with RunStore(tasks[0].store_path) as store:
        for i in range(0, len(tasks), k):
            _train_chunk(cfg, tasks[i:i + k], x, y, device, store, emit, finish, stop)


def _train_chunk(cfg: ExperimentConfig, tasks: list[FoldTask], x: np.ndarray, y: np.ndarray, device: torch.device,
                 store: Any, emit: Emit, finish: Callable[[Any], None], stop: Callable[[], bool]) -> None:
    runs = []
    for task in tasks:
        f = task.fold
        store.start_fold(task.run_id, f.index, f.name, f.test_subjects, len(f.train_idx), len(f.val_idx),
                         len(f.test_idx))
        emit({"event": "fold_start", "fold": f.index, "name": f.name})
        runs.append(start_fold(task, cfg, x, y, device))
    tr.seed_everything(fold_seed(cfg.seed, tasks[0].fold.index))  # dropout masks: reproducible per chunk
    epoch = 0
    while runs:
        epoch += 1
        train_epoch_together(runs, stop)
        for r in list(runs):
            row = r.end_epoch(epoch, r.task.classes)
            store.add_epoch(r.task.run_id, r.index, epoch, **{k: v for k, v in row.items() if k != "epoch"})
            emit({"event": "epoch", "fold": r.index, "epochs": cfg.epochs, **row})
            if r.done(epoch):
                runs.remove(r)
                finish(fold_outcome(r.task, cfg, y, r.state.model, r.finish(), epochs_stored=True))
