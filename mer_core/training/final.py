"""The final model: one model trained on every subject after the LOSO, never evaluated.

A run with ``final_model = true`` finishes its folds and stores its summary
first; only then does :func:`add_final_model` train one more model on all the
run's samples with the same recipe, through the one training loop
(:func:`mer_core.training.trainer.fit`):

* ``selection = 'fixed'``: the config's epochs, as every fold trained;
* ``selection = 'early_stop'``: the median of the folds' selected epochs
  (chosen on validation subjects, never on a test subject), with the folds'
  learning-rate schedule; the record lists the folds' epochs it came from.
* ``selection = 'nested'``: the same rule, the median of the epochs each fold
  chose by its inner LOSO / k-fold over its own training subjects. Not a
  nested choice of its own over all subjects: each fold's choice was made by
  that very procedure on nearly all subjects (every one but the fold's test
  subjects), so the folds already hold one such choice each, and their median
  is a steadier figure than one more choice would be, at no cost (a nested
  choice over all subjects would train ``nested_folds`` more models for a
  single further estimate of the same number). The record keeps the folds'
  epochs (``fold_epochs``) and the rule.

Nothing is selected on any data: there is no subject left to test it on, so
the record says ``"evaluated": false`` and the run's LOSO figures describe the
fold models, not this one. The run folder gets ``final.pt`` (a checkpoint like
the folds', fold :data:`~mer_core.training.checkpoints.FINAL_FOLD`, written
atomically, read with ``weights_only``) and ``final.json`` (the record).

A failure or a cancel here never touches the stored folds or the summary:
the run stays ``done`` and gets a note saying why it has no final model
(Ctrl-C is re-raised after the note, so the command still stops).

``keep_checkpoints = false`` drops the *fold* checkpoints only. The final
model is the one product of ``final_model = true``, so ``final.pt`` is kept
anyway; the record says so (``"keep_checkpoints": false`` and its ``note``)
and so does the run note (:data:`KEPT_ANYWAY`).

:func:`check_final_record` is the one validation of a record (types and
fields); :func:`read_final_record` raises on a bad one (for predicting) and
:func:`final_record_state` never raises (for showing a run).
"""
from __future__ import annotations

import json
import time
import traceback
from contextlib import suppress
from pathlib import Path
from typing import Any, Callable

import numpy as np

from mer_core.errors import MerError
from mer_core.store.db import RunStore
from mer_core.store.folders import FINAL_CHECKPOINT, FINAL_RECORD, atomic_write_text, run_folder

FINAL_STAGE = "final_model"  # the progress events' stage name
SEED_OFFSET = 1_000_003  # the final model's seed: fold_seed(seed, SEED_OFFSET), apart from every fold's
KEPT_ANYWAY = ("kept although keep_checkpoints = false: the final model is the only product of "
              "final_model = true (the fold checkpoints were not kept)")

Progress = Callable[[dict[str, Any]], None]


MEDIAN_RULES = ("early_stop", "nested")  # selections whose folds each chose an epoch: the final model takes the median


def final_epochs(config: Any, selected: list[int]) -> tuple[int, str]:
    """(epochs, how they were chosen) for the final model; ``selected`` are the folds' selected epochs."""
    if config.selection not in MEDIAN_RULES:
        return int(config.epochs), f"fixed: the config's epochs ({config.epochs}), as every fold trained"
    chosen = sorted(int(e) for e in selected if e and int(e) > 0)
    if not chosen:
        raise MerError("final model: no fold recorded a selected epoch; cannot take their median under "
                       f"selection={config.selection!r}")
    median = int(np.floor(np.median(chosen) + 0.5))
    median = max(1, min(median, int(config.epochs)))
    if config.selection == "nested":
        inner = ("leave-one-subject-out" if int(config.nested_folds) == 0 else f"{config.nested_folds}-fold")
        how = f"each chosen by an inner {inner} over that fold's training subjects only"
    else:
        how = "chosen on validation subjects"
    return median, (f"{config.selection}: the median of the folds' selected epochs {chosen} ({how}), with the "
                    "folds' learning-rate schedule")


def _is_int(v: Any, low: int) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= low


def check_final_record(data: Any) -> str:
    """'' for a well-formed final-model record, else what is wrong with it (the first problem found)."""
    if not isinstance(data, dict) or data.get("evaluated") is not False:
        return "it is not a MER Bench final-model record (no \"evaluated\": false)"
    subjects = data.get("subjects")
    if not isinstance(subjects, list) or not subjects or not all(isinstance(x, str) for x in subjects):
        return "\"subjects\" is not a non-empty list of subject ids"
    for name, low in (("epochs", 1), ("n_samples", 1), ("n_subjects", 1)):
        if not _is_int(data.get(name), low):
            return f"\"{name}\" is not a whole number >= {low} (got {data.get(name)!r})"
    if data["n_subjects"] != len(subjects):
        return f"\"n_subjects\" ({data['n_subjects']}) is not the number of subjects listed ({len(subjects)})"
    for name in ("epochs_rule", "checkpoint"):
        if not isinstance(data.get(name), str) or not data[name]:
            return f"\"{name}\" is missing or not text"
    optional = {"note": (str,), "config_hash": (str,), "content_hash": (str,), "keep_checkpoints": (bool,),
                "train_loss": (int, float, type(None)), "seconds": (int, float), "created": (int, float),
                "seed": (int,), "classes": (list,), "fold_epochs": (list,)}
    for name, types in optional.items():
        if name in data and not isinstance(data[name], types):
            return f"\"{name}\" has the wrong type ({type(data[name]).__name__})"
    return ""


def final_record_state(folder: Path) -> tuple[dict[str, Any] | None, str]:
    """``(record, '')``; ``(None, '')`` when the run folder holds no final model; ``(None, why)`` when unusable.

    Never raises: a missing half (record without checkpoint or the reverse), an
    unreadable file or a malformed record is a reason, for a page to show.
    """
    record, ckpt = Path(folder) / FINAL_RECORD, Path(folder) / FINAL_CHECKPOINT
    has_record, has_ckpt = record.is_file(), ckpt.is_file()
    if not has_record and not has_ckpt:
        return None, ""
    if not has_ckpt:
        return None, f"{FINAL_RECORD} is stored but its checkpoint {FINAL_CHECKPOINT} is missing"
    if not has_record:
        return None, f"{FINAL_CHECKPOINT} is stored without its record {FINAL_RECORD}"
    try:
        data = json.loads(record.read_text())
    except (OSError, ValueError) as exc:
        return None, f"{FINAL_RECORD} cannot be read ({type(exc).__name__}: {exc})"
    problem = check_final_record(data)
    return (None, f"{FINAL_RECORD} is malformed: {problem}") if problem else (data, "")


def read_final_record(folder: Path) -> dict[str, Any] | None:
    """The run folder's final-model record when it and its checkpoint exist, else None; MerError if malformed."""
    record, ckpt = Path(folder) / FINAL_RECORD, Path(folder) / FINAL_CHECKPOINT
    if not (record.is_file() and ckpt.is_file()):
        return None
    data, problem = final_record_state(folder)
    if data is None:
        raise MerError(f"final model record {record}: {problem}; re-run the run with final_model=true")
    return data


def train_final_model(exp: Any, store: RunStore, run_id: str, progress: Progress | None = None,
                      should_stop: Callable[[], bool] | None = None) -> dict[str, Any]:
    """Train, store and return the record of the final model of a finished run (see the module docstring)."""
    import torch  # lazy: loads torch (about 2 s)

    from mer_core.models.registry import create_model  # lazy: loads torch (about 2 s)
    # lazy: loads torch (about 2 s)
    from mer_core.training.checkpoints import FINAL_FOLD, content_hash, save_fold_checkpoint
    from mer_core.training.executors import fold_seed  # lazy: loads torch and scikit-learn (about 2 s)
    from mer_core.training.pretrain import plain_config, prepare_finetune  # lazy: loads torch (about 2 s)
    from mer_core.training.trainer import fit, resolve_device  # lazy: loads torch (about 2 s)

    cfg = exp.config
    folder = run_folder(run_id)
    done = store.folds(run_id)
    done = done[done["status"] == "done"]
    fold_epochs = [int(e) for e in done["selected_epoch"].fillna(0)]
    epochs, rule = final_epochs(cfg, fold_epochs)
    subjects = sorted(str(s) for s in exp.table["subject"].unique())
    seed = fold_seed(cfg.seed, SEED_OFFSET)

    stop = store.cancel_poll(run_id, should_stop)  # the run's cancel flag, as the folds poll it
    def on_epoch(event: dict[str, Any]) -> None:  # trainer.epoch_event, stage 'final'
        if progress:
            progress({"event": "stage", "stage": FINAL_STAGE, "done": event["epoch"], "total": event["epochs"],
                      "loss": event["loss"]})

    if progress:
        progress({"event": "note", "message": f"training the final model on all {len(subjects)} subjects "
                                              f"({len(exp.y)} clips, {epochs} epochs; it is not evaluated)"})
        progress({"event": "stage", "stage": FINAL_STAGE, "done": 0, "total": epochs})
    torch.manual_seed(seed)
    model = create_model(cfg.model, config=exp.model_cfg)
    result = fit(model, cfg, (np.ascontiguousarray(exp.x), np.asarray(exp.y)), classes=exp.classes,
                 channels=tuple(exp.model_cfg.channels), seed=seed, device=resolve_device(cfg.device),
                 on_epoch=on_epoch, should_stop=stop, param_groups=prepare_finetune(model, cfg), stage="final",
                 epochs=epochs)
    path = save_fold_checkpoint(folder / FINAL_CHECKPOINT, model, model_name=cfg.model,
                                model_config=plain_config(exp.model_cfg), config_json=cfg.to_json(),
                                config_hash=cfg.stable_hash(), fold=FINAL_FOLD, test_subjects=[],
                                guard=store.owned(run_id))
    record = {
        "evaluated": False, "epochs": epochs, "epochs_rule": rule, "n_samples": int(len(exp.y)),
        "subjects": subjects, "n_subjects": len(subjects), "classes": list(exp.classes), "seed": seed,
        "checkpoint": path.name, "config_hash": cfg.stable_hash(),
        "content_hash": content_hash({k: v.detach().cpu() for k, v in model.state_dict().items()}),
        "train_loss": float(result.history[-1]["train_loss"]) if result.history else None,
        "seconds": round(float(result.seconds), 3), "created": time.time(),
        "keep_checkpoints": bool(cfg.keep_checkpoints),
        **({"fold_epochs": sorted(e for e in fold_epochs if e > 0)} if cfg.selection in MEDIAN_RULES else {}),
        "note": "trained on every subject after the LOSO; never evaluated (no subject was held out of it)"
                + ("" if cfg.keep_checkpoints else f"; {KEPT_ANYWAY}"),
    }
    with store.owned(run_id):  # as the checkpoint: never beside a new owner's model
        atomic_write_text(folder / FINAL_RECORD, json.dumps(record, indent=2) + "\n")
    return record


def add_final_model(exp: Any, store: RunStore, run_id: str, progress: Progress | None = None,
                    should_stop: Callable[[], bool] | None = None) -> dict[str, Any] | None:
    """:func:`train_final_model` for a done run, closed with a run note whatever happens; the record or None.

    A final model already stored for this config (a resumed run) is kept, not retrained.
    """
    folder = run_folder(run_id)
    try:
        held = read_final_record(folder)
    except MerError:
        held = None
    if held and held.get("config_hash") == exp.config.stable_hash():
        return held
    for stale in (FINAL_RECORD, FINAL_CHECKPOINT):  # never a record beside another model's weights
        (folder / stale).unlink(missing_ok=True)
    try:
        record = train_final_model(exp, store, run_id, progress, should_stop)
    except KeyboardInterrupt as exc:
        _note(store, run_id, progress, f"final model not trained: interrupted ({exc or 'Ctrl-C'}); "
                                       "the LOSO folds and their summary are stored")
        raise
    except BaseException as exc:  # noqa: BLE001 - the folds and the summary are kept whatever failed here
        from mer_core.training.trainer import Cancelled  # lazy: loads torch (about 2 s)

        if isinstance(exc, Cancelled) or (should_stop is not None and _safe(should_stop)):
            why = "cancelled by the user"
        else:
            why = f"failed ({type(exc).__name__}: {str(exc).strip()[:300] or 'no message'})"
            traceback.print_exception(exc)
        _note(store, run_id, progress, f"final model not trained: {why}; the LOSO folds and their summary are stored")
        return None
    e = record["epochs"]
    store.add_run_note(run_id, f"final model trained on all {record['n_subjects']} subjects ({e} epoch"
                                 f"{'' if e == 1 else 's'}, {record['n_samples']} clips; not evaluated): "
                                 f"{FINAL_CHECKPOINT}" + ("" if record.get("keep_checkpoints", True)
                                                          else f" ({KEPT_ANYWAY})"))
    return record


def _note(store: RunStore, run_id: str, progress: Progress | None, message: str) -> None:
    with suppress(Exception):  # the store is failing too: the message still goes to the progress stream
        store.add_run_note(run_id, message)
    if progress:
        with suppress(Exception):
            progress({"event": "note", "message": message})


def _safe(check: Callable[[], bool]) -> bool:
    try:
        return bool(check())
    except Exception:
        return False
