"""The engine: (config, dataset) -> a stored, evaluated run.

``run_experiment`` indexes the dataset, applies the class set, preprocesses
(cached), splits into folds by subject, checks for leakage, trains each fold
through an executor, stores every finished fold at once, and finally writes
the pooled metrics. Passing the id of an unfinished run resumes it: folds
already stored are not retrained; a half-finished fold is redone.

Progress goes through one callback receiving dict events::

    {"event": "stage", "stage": "preprocess", "done": i, "total": n}
    {"event": "fold_start", "fold": k, "n_folds": N, "name": subject}
    {"event": "epoch", "fold": k, "epoch": e, "epochs": E, "train_loss": ...}
    {"event": "fold_done", "fold": k, "n_folds": N, "done": d, "accuracy": a}
    {"event": "stage", "stage": "final_model", "done": e, "total": E}   (final_model = true only)
    {"event": "done", "run_id": id, "uf1": ..., "uar": ...}

``fold_start`` and ``epoch`` events of the sequential and process executors
carry ``t``, the ``time.time()`` at which the worker sent them (a pool's
events reach the driver up to half a second late); ``mer bench`` times epochs
with it.

With ``final_model = true`` a done run then trains one model on every
subject (:mod:`mer_core.training.final`), stored beside the folds and never
evaluated; its failure leaves the run done with a note.
"""
from __future__ import annotations

import hashlib
import inspect
import os
import socket
import time
import traceback
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd
import torch

from mer_core.config import ExperimentConfig
from mer_core.datasets.classes import apply_class_set, classes_for
from mer_core.datasets.registry import dataset_info, index_dataset
from mer_core.errors import ConfigError, DatasetError, MerError
from mer_core.evaluation.metrics import scores, summarize
from mer_core.preprocess.pipeline import prepare_inputs
from mer_core.store.db import RunStore, RunTakenOver
from mer_core.store.folders import INPUTS_FILE, LABELS_FILE, run_folder, save_array, write_table
from mer_core.store.liveness import Heartbeat
from mer_core.store.pretrain_record import write_pretrain_record
from mer_core.training.executors import execute_folds, resolve_workers
from mer_core.training.experiment import complete_config, resolve_model_config
from mer_core.training.final import add_final_model
from mer_core.training.data_forms import all_failed_message, input_notes
from mer_core.training.pretrain import (
    file_sha256, pretrain_for_experiment, pretrain_record, read_checkpoint, weights_sha256,
)
from mer_core.training.protocols import Fold, make_folds, shared_people_warnings
from mer_core.training.trainer import Cancelled, resolve_device

Progress = Callable[[dict[str, Any]], None]


@dataclass
class Experiment:
    """Everything resolved before training: table, classes, inputs, folds."""

    config: ExperimentConfig
    table: pd.DataFrame
    classes: tuple[str, ...]
    model_cfg: Any
    x: np.ndarray
    y: np.ndarray
    folds: list[Fold]
    notes: list[str] = field(default_factory=list)
    fingerprint: str = ""


def load_table(config: ExperimentConfig) -> tuple[pd.DataFrame, tuple[str, ...], list[str]]:
    """Index the dataset and apply the class set; returns (table, classes, notes)."""
    info = dataset_info(config.dataset)
    class_set = config.class_set or info.default_class_set
    options = dict(config.dataset_options)
    if "class_set" in inspect.signature(info.indexer).parameters:
        options.setdefault("class_set", class_set)  # the indexer reports what the class set drops
    table = index_dataset(config.dataset, **options)
    kept, dropped = apply_class_set(table, class_set)
    notes = indexing_notes(config.dataset, list(table.attrs.get("problems", [])))
    if len(dropped):
        counts = dropped["emotion"].value_counts().to_dict()
        notes.append(f"class set {class_set!r} drops {len(dropped)} clip(s): {counts}")
    if kept.empty:
        raise DatasetError(f"dataset {config.dataset!r}: no clip has a label in class set {class_set!r}")
    classes = classes_for(class_set, kept)
    return kept, tuple(classes), notes


def fingerprint(table: pd.DataFrame) -> str:
    """A hash of what defines the data: ids, labels, annotations, frame counts."""
    h = hashlib.sha256()
    for r in table.sort_values("sample_id").itertuples(index=False):
        h.update(f"{r.sample_id}|{r.label}|{r.onset}|{r.apex}|{r.offset}|{len(r.frames)}|{r.flow_path}\n".encode())
    return h.hexdigest()[:16]


def indexing_notes(dataset: str, problems: list[dict[str, Any]]) -> list[str]:
    """What the indexer left out (duplicates, missing or corrupt files, bad rows) or warned about, for the notes."""
    notes = []
    for severity, what in (("error", "left out"), ("warning", "kept with a warning")):
        hits = [p for p in problems if p.get("severity") == severity and p.get("kind") != "dropped"]
        if hits:
            shown = "; ".join(_problem_line(p) for p in hits[:8])
            more = f" (and {len(hits) - 8} more)" if len(hits) > 8 else ""
            notes.append(f"indexing {dataset}: {len(hits)} row(s) {what}: {shown}{more}; "
                         f"`mer datasets check {dataset}` lists them all")
    return notes


def _problem_line(problem: dict[str, Any]) -> str:
    where = problem.get("sample_id") or (f"row {problem['row']}" if problem.get("row") is not None else "")
    message = str(problem.get("message", ""))
    message = message if len(message) <= 400 else message[:397] + "..."
    return f"{where}: {message}" if where and where not in message else message


def prepare_experiment(config: ExperimentConfig, progress: Progress | None = None,
                       table: pd.DataFrame | None = None) -> Experiment:
    """Resolve config -> table, classes, model config, arrays and folds."""
    if table is None:
        table, classes, notes = load_table(config)
    else:
        classes, notes = tuple(sorted(table["label"].unique())), []
    if len(classes) < 2:
        raise DatasetError(f"dataset {config.dataset!r} has a single class {list(classes)}; need at least 2")
    mcfg = resolve_model_config(config, len(classes))
    if config.pretrain:  # refused before anything trains when the source overlaps the evaluation table
        rec = pretrain_record(config, table)
        notes.append("pre-training: " + "; ".join(f"{s['source']} (fingerprint {s['fingerprint']})" for s in rec["sources"])
                     + f", {rec['epochs']} epochs, checkpoint key {rec['checkpoint_key']}")

    def prep_progress(done: int, total: int) -> None:
        if progress:
            progress({"event": "stage", "stage": "preprocess", "done": done, "total": total})

    prepared = prepare_inputs(table, tuple(mcfg.channels), int(mcfg.input_size), config.preprocess,
                              workers=resolve_workers(config, len(table)), progress=prep_progress)
    if len(table) and not prepared.ok.any():
        raise DatasetError(all_failed_message(config.model, config.preset, mcfg.channels, table, prepared.report))

    notes += input_notes(mcfg.channels, table)
    x = prepared.x
    if not prepared.ok.all():
        bad = prepared.report.loc[~prepared.report["ok"].astype(bool)]
        notes.append(f"{len(bad)} clip(s) failed preprocessing and are left out: "
                     + "; ".join(f"{r.sample_id}: {r.error}" for r in bad.head(5).itertuples()))
        table = table.loc[prepared.ok].reset_index(drop=True)
        x = x[prepared.ok]
    label_index = {c: i for i, c in enumerate(classes)}
    y = table["label"].map(label_index).to_numpy().astype(np.int64)
    val_subjects = config.val_subjects if config.selection == "early_stop" else 0
    nested = config.nested_folds if config.selection == "nested" else None  # inner splits of training subjects
    folds = make_folds(table, config.protocol, folds=config.folds, holdout_fraction=config.holdout_fraction,
                       val_subjects=val_subjects, seed=config.seed, nested_folds=nested)
    min_train = min((len(f.train_idx) for f in folds), default=0)
    notes += shared_people_warnings(table) + runtime_notes(config, len(folds), min_train)
    return Experiment(config, table, classes, mcfg, x, y, folds, notes, fingerprint(table))


def runtime_notes(config: ExperimentConfig, n_folds: int, min_train: int = 0) -> list[str]:
    """What the machine (or the data) changes about the request, said instead of done silently."""
    notes = []
    if min_train and config.batch_size > min_train:
        notes.append(f"batch_size={config.batch_size} is larger than the smallest training set ({min_train} clips): "
                     "such folds train on one batch of the whole training set per epoch")
    if config.device.startswith("cuda") and not torch.cuda.is_available():
        notes.append(f"device {config.device!r} was requested but CUDA is not available here: training runs on the CPU")
    cores = os.cpu_count() or 1
    if config.workers > cores and config.executor in ("process", "ray"):
        notes.append(f"workers={config.workers} is more than this machine's {cores} cores: "
                     f"{min(cores, n_folds)} worker(s) run at a time")
    return notes


def run_experiment(
    config: ExperimentConfig,
    *,
    store: RunStore | None = None,
    run_id: str | None = None,
    progress: Progress | None = None,
    should_stop: Callable[[], bool] | None = None,
    table: pd.DataFrame | None = None,
    name: str = "",
) -> str:
    """Train and evaluate ``config``; returns the run id (resumes ``run_id`` if unfinished).

    Once the run row exists, every way out closes it with its true reason:
    done / partial, cancelled (the user, Ctrl-C, SIGTERM), or failed with the
    error, including failures before the first fold (a full disk writing
    ``inputs.npy``) and at the finish (a full database).
    """
    config = complete_config(config)  # class set never '', the model's input resolved: whatever door it came in by
    own_store = store is None
    store = store or RunStore()
    # this process owns the run it creates or claims: its status, fold and epoch writes are refused (RunTakenOver)
    # once another process has resumed the run, and a run another live process trains is not resumed (RunBusy)
    previous_owner, store.owner = store.owner, (os.getpid(), socket.gethostname())
    try:
        t0 = time.time()
        if run_id and store.has_run(run_id):
            store.check_run_free(run_id)  # before anything is prepared; claimed atomically in _open_run
            stored = ExperimentConfig.from_json(store.get_run(run_id)["config_json"])
            if stored.stable_hash() != config.stable_hash():
                raise ConfigError(f"run {run_id} was made with a different config; resume it with its own config")
        exp = prepare_experiment(config, progress, table)
        run_id = _open_run(store, exp, run_id, name)
        heart = Heartbeat(store, run_id=run_id)  # a worker's job and its run share one heartbeat thread
        try:
            status, error, failure = _train_folds(exp, store, run_id, progress, should_stop)
            summary = summarize_run(store, run_id, exp.classes)
            if status == "done" and len(store.completed_folds(run_id)) < len(exp.folds):
                status = "partial"
            store.finish_run(run_id, status=status, summary=summary, wall_time=time.time() - t0, error=error)
        except BaseException as exc:  # nothing may leave the run 'running'
            _close_failed(store, run_id, exc, time.time() - t0)
            raise
        finally:
            heart.stop()
        if config.final_model and status == "done":  # after the summary is stored; never changes the run's status
            add_final_model(exp, store, run_id, progress, should_stop)
        if progress:
            pooled = summary.get("pooled", {})
            progress({"event": "done", "run_id": run_id, "status": status, "uf1": pooled.get("uf1"),
                      "uar": pooled.get("uar")})
        if isinstance(failure, MerError):  # a clear message already: keep it, the run is stored as failed
            raise failure
        if status == "failed":
            raise MerError(f"run {run_id} failed; finished folds are kept. {error.strip().splitlines()[-1]}")
        return run_id
    finally:
        store.owner = previous_owner
        if own_store:
            store.close()


def _open_run(store: RunStore, exp: Experiment, run_id: str | None, name: str) -> str:
    """Create the run row, or mark a stored unfinished run running again after checking its data."""
    config = exp.config
    if not (run_id and store.has_run(run_id)):
        return store.create_run(
            config, classes=exp.classes, n_folds=len(exp.folds), n_samples=len(exp.table),
            dataset_fingerprint=exp.fingerprint, device=str(resolve_device(config.device)), run_id=run_id,
            name=name, notes=exp.notes,
        )
    stored_fp = store.get_run(run_id)["dataset_fingerprint"]
    if stored_fp and stored_fp != exp.fingerprint:
        raise DatasetError(f"run {run_id}: the dataset changed since the run started (fingerprint "
                           f"{stored_fp} -> {exp.fingerprint}); start a new run")
    store.claim_run(run_id)  # RunBusy when another live process trains it
    return run_id


def _train_folds(exp: Experiment, store: RunStore, run_id: str, progress: Progress | None,
                 should_stop: Callable[[], bool] | None) -> tuple[str, str, BaseException | None]:
    """Write the run's inputs, pre-train once, train the folds not stored yet: (status, error, failure)."""
    config = exp.config
    folder = run_folder(run_id)
    try:  # a stop before the first fold (writing the inputs, pre-training) is a cancellation like one during them
        save_array(folder / INPUTS_FILE, exp.x)
        save_array(folder / LABELS_FILE, exp.y)
        write_table(folder, exp.table)
        done = store.completed_folds(run_id)
        todo = [f for f in exp.folds if f.index not in done]
        if config.pretrain and todo:  # once, before the folds share the checkpoint
            _pretrain(config, progress, folder)
    except KeyboardInterrupt as exc:
        return "cancelled", str(exc) or "interrupted", None
    try:
        execute_folds(exp, todo, run_id=run_id, store=store, folder=folder, progress=progress,
                      should_stop=should_stop, n_done=len(done))
    except KeyboardInterrupt as exc:  # Ctrl-C, or SIGTERM/SIGHUP turned into it by the CLI
        return "cancelled", str(exc) or "interrupted", None
    except Cancelled:
        return "cancelled", "cancelled by the user", None
    except Exception as exc:  # keep the finished folds; record why it stopped
        return "failed", "".join(traceback.format_exception(exc))[-4000:], exc
    return "done", "", None


def _close_failed(store: RunStore, run_id: str, exc: BaseException, wall_time: float) -> None:
    """Close a run that an exception left open; falls back to a smaller write if the store is failing too.

    A run taken over by another process is not this one's to close: nothing is written.
    """
    if isinstance(exc, RunTakenOver):
        return
    if isinstance(exc, (KeyboardInterrupt, Cancelled)):
        status, reason = "cancelled", str(exc) or "interrupted"
    else:
        status, reason = "failed", f"{type(exc).__name__}: {exc}"
    try:
        store.finish_run(run_id, status=status, summary=None, wall_time=wall_time, error=reason)
    except Exception:
        with suppress(Exception):  # the store itself is gone: the heartbeat goes stale and the run is marked dead
            store.set_run_status(run_id, status, reason)


def _pretrain(config: ExperimentConfig, progress: Progress | None, folder: Path | None = None) -> None:
    """Macro pre-training (DenseAttention's transfer learning), reported as a stage; the run folder's
    ``pretrain.json`` records the source, its fingerprint, the checkpoint file's sha256 and its weights'."""
    def report(event: dict[str, Any]) -> None:  # trainer.epoch_event, stage 'pretrain'
        if progress:
            progress({"event": "stage", "stage": event["stage"], "done": event["epoch"], "total": event["epochs"],
                      "loss": event["loss"]})

    path = pretrain_for_experiment(config, on_epoch=report)
    if folder is not None and path is not None:
        ckpt = read_checkpoint(path)
        info = ckpt.get("pretrain", {})
        record = {"sources": info.get("sources"), "data_fingerprints": info.get("data"), "key": info.get("key"),
                  "checkpoint": str(path), "checkpoint_sha256": file_sha256(path),
                  "weights_sha256": weights_sha256(ckpt["state_dict"]), "epochs": info.get("epochs"),
                  "code": info.get("code")}
        write_pretrain_record(folder, record)  # read back, validated, by mer_core.store.pretrain_record


def summarize_run(store: RunStore, run_id: str, classes: tuple[str, ...]) -> dict[str, Any]:
    """Pooled, fold-averaged, per-part and oracle figures from the stored predictions."""
    pred = store.predictions(run_id)
    if pred.empty:
        return {"classes": list(classes)}
    summary = summarize(pred, classes)
    if pred["oracle_pred"].notna().all():
        o = scores(pred["y_true"], pred["oracle_pred"].astype(int), classes)
        summary["oracle"] = {"uf1": o.uf1, "uar": o.uar, "accuracy": o.accuracy,
                             "note": "diagnostic: each fold's best epoch chosen on its own test subject"}
    return summary
