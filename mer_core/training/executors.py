"""Executors: where folds run. Same results, whichever is chosen.

* ``sequential``: folds one after another in this process.
* ``process``: a forkserver pool (see mer_core.parallel) of ``workers`` processes; each sets its own
  torch thread count (cores // workers) so two workers on two cores do not
  oversubscribe, and takes one GPU each when several exist.
* ``ray``: one Ray task per fold; ``ray.init(address=config.ray_address or
  $RAY_ADDRESS)`` so a laptop run and a cluster run are the same code. The
  arrays travel with the task, results come back to the driver, which writes
  the same run store.

Each fold is seeded from (config seed, fold index) alone, so the executor
does not change the predictions. The executor that runs is the one the
config names, never one chosen for it. A fold is stored when it finishes, in one
transaction (see RunStore.finish_fold). Cancellation: the driver's
``should_stop`` or the run's cancel flag in the store (the one cancel
channel), read at most every ``CANCEL_POLL_S`` between batches by every
process training a fold (:meth:`RunStore.cancel_poll`); the driver sets that
flag when its own ``should_stop`` says so or a fold fails, so the pool's
other folds stop too. Ray tasks cannot reach the store: they are cancelled
through Ray.
"""
from __future__ import annotations

import os
import queue as queue_mod
import tempfile
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import cv2
import numpy as np
import pandas as pd
import torch

from mer_core.config import ExperimentConfig
from mer_core.errors import ConfigError
from mer_core.models.registry import create_model
from mer_core.parallel import die_with_parent, process_context
from mer_core.store.db import RunStore
from mer_core.store.folders import INPUTS_FILE, LABELS_FILE, fold_checkpoint_name
from mer_core.training import pretrain as pt
from mer_core.training.checkpoints import save_fold_checkpoint
from mer_core.training.experiment import check_executor
from mer_core.training.fold_fit import fit_fold
from mer_core.training.protocols import Fold
from mer_core.training.trainer import Cancelled, resolve_device


@dataclass
class FoldTask:
    run_id: str
    fold: Fold
    config_json: str
    model_cfg: Any
    classes: tuple[str, ...]
    folder: str
    store_path: str | None  # None: the worker cannot reach the store (ray)
    meta: pd.DataFrame  # sample_id, subject, part, clip of every sample
    gpu: int | None = None
    arrays: tuple[np.ndarray, np.ndarray] | None = None  # shipped with the task (ray)
    owner: tuple[int, str] | None = None  # (pid, host) of the driver: the store refuses writes once it is not


@dataclass
class FoldOutcome:
    fold_index: int
    predictions: pd.DataFrame
    history: list[dict[str, float]]
    selected_epoch: int
    oracle_epoch: int | None
    seconds: float
    checkpoint: str = ""
    epochs_stored: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


def resolve_workers(cfg: ExperimentConfig, n_tasks: int | None = None) -> int:
    """``workers`` with 0 resolved: one per GPU on CUDA, else one per CPU core; never more than tasks."""
    workers = cfg.workers
    if workers == 0:
        cuda = cfg.device != "cpu" and torch.cuda.is_available()
        workers = torch.cuda.device_count() if cuda else (os.cpu_count() or 1)
    elif cfg.device == "cpu" or not torch.cuda.is_available():
        workers = min(workers, os.cpu_count() or 1)  # more CPU workers than cores only thrash (noted in the run)
    if n_tasks is not None:
        workers = min(workers, n_tasks)
    return max(1, workers)


def fold_seed(seed: int, fold_index: int) -> int:
    return seed * 1009 + fold_index


def run_fold(task: FoldTask, emit: Callable[[dict[str, Any]], None] | None = None,
             should_stop: Callable[[], bool] | None = None) -> FoldOutcome:
    """Train one fold and predict its test subject(s)."""
    cfg = ExperimentConfig.from_json(task.config_json)
    fold = task.fold
    if task.arrays is not None:
        x, y = task.arrays
    else:
        x = np.load(Path(task.folder) / INPUTS_FILE, mmap_mode="r")
        y = np.load(Path(task.folder) / LABELS_FILE)
    pick = lambda idx: (np.ascontiguousarray(x[idx]), y[idx])  # noqa: E731
    device = resolve_device(cfg.device)
    if task.gpu is not None and device.type == "cuda":
        device = torch.device(f"cuda:{task.gpu}")
    store = RunStore(task.store_path, owner=task.owner) if task.store_path else None
    stop = store.cancel_poll(task.run_id, should_stop) if store is not None else (should_stop or (lambda: False))

    try:
        if store is not None:
            store.start_fold(task.run_id, fold.index, fold.name, fold.test_subjects,
                             len(fold.train_idx), len(fold.val_idx), len(fold.test_idx))
        if emit:
            emit({"event": "fold_start", "fold": fold.index, "name": fold.name, "t": time.time()})
        seed = fold_seed(cfg.seed, fold.index)

        def build(model_seed: int) -> tuple[Any, Any]:  # a fresh model: nested selection and seeds train several
            torch.manual_seed(model_seed)
            model = create_model(cfg.model, config=task.model_cfg)
            return model, pt.prepare_finetune(model, cfg)  # None without pre-training

        def on_epoch(event: dict[str, Any]) -> None:  # trainer.epoch_event
            row = event["metrics"]
            if store is not None:
                store.add_epoch(task.run_id, fold.index, int(row["epoch"]),
                                **{k: v for k, v in row.items() if k != "epoch"})
            if emit:
                emit({"event": "epoch", "fold": fold.index, "epochs": event["epochs"], **row, "t": time.time()})

        model, result = fit_fold(  # one trainer.fit with the defaults (mer_core.training.fold_fit)
            build, cfg, pick, fold, classes=task.classes, channels=tuple(task.model_cfg.channels), seed=seed,
            device=device, on_epoch=on_epoch, should_stop=stop, label=f"fold {fold.index} ({fold.name})",
        )
        return fold_outcome(task, cfg, y, model, result, epochs_stored=store is not None)
    finally:
        if store is not None:
            store.close()


def fold_outcome(task: FoldTask, cfg: ExperimentConfig, y: np.ndarray, model: Any, result: Any,
                 epochs_stored: bool) -> FoldOutcome:
    """A trained fold's predictions and checkpoint (``result`` is a trainer.FitResult)."""
    fold = task.fold
    meta = task.meta.iloc[fold.test_idx].reset_index(drop=True)
    probs = result.test_probs
    pred = meta.assign(
        y_true=y[fold.test_idx], y_pred=probs.argmax(1), probs=list(probs),
        oracle_pred=(result.oracle_probs.argmax(1) if result.oracle_probs is not None else None),
    )
    checkpoint = ""
    if cfg.keep_checkpoints:
        path = Path(task.folder) / fold_checkpoint_name(fold.index)
        # a process whose run was taken over must not replace the new owner's checkpoint, even one paused
        # between a check and the write: the rename happens under the store's write lock, ownership checked
        save_fold_checkpoint(path, model, model_name=cfg.model, model_config=pt.plain_config(task.model_cfg),
                             config_json=task.config_json, config_hash=cfg.stable_hash(), fold=fold.index,
                             test_subjects=list(fold.test_subjects), guard=_while_owner(task))
        checkpoint = str(path) if task.store_path else path.name
    return FoldOutcome(fold.index, pred, result.history, result.selected_epoch, result.oracle_epoch,
                       result.seconds, checkpoint, epochs_stored=epochs_stored)


@contextmanager
def _while_owner(task: FoldTask) -> Iterator[None]:
    """:meth:`RunStore.owned` for the task's run (nothing to hold when the fold runs without a store)."""
    if not (task.store_path and task.owner):
        yield
        return
    with RunStore(task.store_path, owner=task.owner) as store, store.owned(task.run_id):
        yield


def execute_folds(exp: Any, todo: list[Fold], *, run_id: str, store: Any, folder: Path,
                  progress: Callable[[dict[str, Any]], None] | None, should_stop: Callable[[], bool] | None,
                  n_done: int) -> None:
    """Run the folds in ``todo`` with the config's executor; store each as it finishes."""
    cfg: ExperimentConfig = exp.config
    store.clear_cancel(run_id)  # a cancel of an earlier attempt does not stop this one
    meta = exp.table[["sample_id", "subject", "part", "clip"]].copy()
    n_folds = len(exp.folds)
    counter = {"done": n_done}

    def emit(event: dict[str, Any]) -> None:
        if progress:
            progress({**event, "n_folds": n_folds})

    def make_task(fold: Fold, gpu: int | None = None, ship: bool = False) -> FoldTask:
        return FoldTask(run_id, fold, cfg.to_json(), exp.model_cfg, exp.classes, str(folder),
                        None if ship else str(store.path), meta, gpu, (exp.x, exp.y) if ship else None,
                        owner=getattr(store, "owner", None))

    def finish(outcome: FoldOutcome) -> None:
        fold = exp.folds[outcome.fold_index]
        if not outcome.epochs_stored:
            store.start_fold(run_id, fold.index, fold.name, fold.test_subjects,
                             len(fold.train_idx), len(fold.val_idx), len(fold.test_idx))
            for row in outcome.history:
                store.add_epoch(run_id, fold.index, int(row["epoch"]), **{k: v for k, v in row.items() if k != "epoch"})
        ckpt = outcome.checkpoint
        if ckpt and not os.path.isabs(ckpt):
            if "checkpoint_bytes" in outcome.extra:
                store.check_owner(run_id)
                (folder / ckpt).write_bytes(outcome.extra.pop("checkpoint_bytes"))
            ckpt = str(folder / ckpt)
        store.finish_fold(run_id, fold.index, outcome.predictions, epochs_run=len(outcome.history),
                          selected_epoch=outcome.selected_epoch, oracle_epoch=outcome.oracle_epoch,
                          wall_time=outcome.seconds, checkpoint=ckpt)
        counter["done"] += 1
        acc = float((outcome.predictions["y_true"] == outcome.predictions["y_pred"]).mean())
        emit({"event": "fold_done", "fold": fold.index, "name": fold.name, "done": counter["done"], "accuracy": acc})

    if not todo:
        return
    if cfg.executor == "sequential" or (cfg.executor == "process" and resolve_workers(cfg, len(todo)) == 1):
        for fold in todo:
            finish(run_fold(make_task(fold), emit, should_stop))
    elif cfg.executor == "process":
        _run_process_pool(cfg, todo, make_task, finish, emit, should_stop, lambda: store.request_cancel(run_id))
    elif cfg.executor == "ray":
        _run_ray(cfg, todo, make_task, finish, should_stop)
    else:  # a removed executor in a config that bypassed the resolution: the same one-line refusal
        check_executor(cfg.executor)
        raise ValueError(f"unknown executor {cfg.executor!r}")  # pragma: no cover - config validation forbids it


_EVENTS: Any = None  # the pool worker's event queue (set by _worker_init)


def _worker_init(threads: int, events: Any, parent_pid: int | None = None) -> None:
    global _EVENTS
    if parent_pid:
        die_with_parent(parent_pid)  # a SIGKILLed job leaves no worker training on
    _EVENTS = events
    torch.set_num_threads(max(1, threads))
    cv2.setNumThreads(1)


def _process_entry(task: FoldTask) -> FoldOutcome:
    return run_fold(task, emit=_EVENTS.put if _EVENTS is not None else None)


def _run_process_pool(cfg: ExperimentConfig, todo: list[Fold], make_task: Callable, finish: Callable,
                      emit: Callable, should_stop: Callable[[], bool] | None, cancel: Callable[[], None]) -> None:
    """The folds on a process pool; ``cancel()`` (the run's cancel flag) stops the folds still training."""
    workers = resolve_workers(cfg, len(todo))
    threads = max(1, (os.cpu_count() or 1) // workers)
    n_gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    ctx = process_context()
    events = ctx.Queue()  # handed to each worker at start, so no manager process is needed
    with ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_worker_init,
                             initargs=(threads, events, os.getpid())) as pool:
        futures = {pool.submit(_process_entry, make_task(f, (i % n_gpus) if n_gpus else None)): f
                   for i, f in enumerate(todo)}
        pending = set(futures)
        error: BaseException | None = None
        stopping = False
        try:
            while pending:
                finished, pending = wait(pending, timeout=0.5, return_when=FIRST_COMPLETED)
                _drain(events, emit)
                if not stopping and should_stop and should_stop():
                    stopping = True
                    cancel()
                for fut in finished:
                    try:
                        finish(fut.result())
                    except BaseException as exc:  # keep the other folds' results
                        error = error or exc
                        if not stopping:
                            stopping = True
                            cancel()
        except BaseException:  # Ctrl-C or SIGTERM in the driver: the pool's folds stop too, not train on
            if not stopping:
                with suppress(Exception):  # a failing store: the exception that stopped us matters more
                    cancel()
            raise
        _drain(events, emit)
        if error is not None:
            raise error


def _drain(events: Any, emit: Callable) -> None:
    while True:
        try:
            emit(events.get_nowait())
        except (queue_mod.Empty, EOFError, OSError):  # empty, or the queue closed
            return


def _run_ray(cfg: ExperimentConfig, todo: list[Fold], make_task: Callable, finish: Callable,
             should_stop: Callable[[], bool] | None) -> None:
    try:
        import ray  # lazy: an optional dependency (the cluster extra), imported only when a run asks for it
    except ImportError as exc:
        raise ConfigError("executor 'ray' needs the cluster extra: pip install 'mer-bench[cluster]'") from exc
    started_here = False
    if not ray.is_initialized():
        address = cfg.ray_address or os.environ.get("RAY_ADDRESS") or None
        kwargs: dict[str, Any] = {"address": address, "include_dashboard": False, "log_to_driver": False}
        if address is None:
            kwargs["num_cpus"] = resolve_workers(cfg)
        ray.init(**kwargs)
        started_here = True
    try:
        remote = ray.remote(num_cpus=1)(_ray_entry)
        refs = {remote.remote(make_task(f, ship=True)): f for f in todo}
        pending = list(refs)
        while pending:
            ready, pending = ray.wait(pending, num_returns=1, timeout=0.5)
            if should_stop and should_stop():
                for ref in pending:
                    ray.cancel(ref)
                raise Cancelled()
            for ref in ready:
                finish(ray.get(ref))
    finally:
        if started_here:
            ray.shutdown()


def _ray_entry(task: FoldTask) -> FoldOutcome:
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        local = FoldTask(**{**task.__dict__, "folder": tmp})
        outcome = run_fold(local)
        if outcome.checkpoint:  # ship the checkpoint back as bytes
            outcome.extra["checkpoint_bytes"] = (Path(tmp) / outcome.checkpoint).read_bytes()
    return outcome
