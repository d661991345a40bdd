"""Fold checkpoints that say what they are, checked before anything trusts them.

A checkpoint carries the model name, its config, the fold, the run's config
hash and a content hash of its weights. :func:`load_fold_checkpoint` reads it
with ``torch.load(weights_only=True)`` (never arbitrary objects), recomputes
the content hash, refuses non-finite weights and, when told what to expect,
refuses a checkpoint of another model, fold or run config: a baseline
checkpoint copied into an STSTNet run is an error, not a silent explanation.
"""
from __future__ import annotations

import hashlib
import os
import tempfile
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import Any, Mapping

import torch
from torch import nn

from mer_core.errors import MerError

FORMAT = "mer-fold-checkpoint-1"
FINAL_FOLD = -1  # the fold number of a run's final model (trained on every subject, see training.final)


def content_hash(state_dict: Mapping[str, torch.Tensor]) -> str:
    """sha256 over the weights' names, shapes, dtypes and bytes (order independent)."""
    h = hashlib.sha256()
    for name in sorted(state_dict):
        t = state_dict[name].detach().cpu().contiguous().reshape(-1)
        h.update(f"{name}|{tuple(t.shape)}|{t.dtype}|".encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()[:32]


def save_fold_checkpoint(path: Path, model: nn.Module, *, model_name: str, model_config: dict[str, Any],
                         config_json: str, config_hash: str, fold: int, test_subjects: list[str],
                         guard: AbstractContextManager | None = None) -> Path:
    """Write the checkpoint atomically (temporary file + rename); the rename happens inside ``guard`` when
    given (e.g. :meth:`RunStore.owned`, so that a process whose run was taken over replaces nothing)."""
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    doc = {"format": FORMAT, "state_dict": state, "model": model_name, "model_config": model_config,
           "config": config_json, "config_hash": config_hash, "fold": int(fold),
           "test_subjects": list(test_subjects), "content_hash": content_hash(state)}
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        torch.save(doc, tmp)
        with guard if guard is not None else nullcontext():
            os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def load_fold_checkpoint(path: str | Path, *, model: str | None = None, fold: int | None = None,
                         config_hash: str | None = None) -> dict[str, Any]:
    """The checkpoint's entries after every check; MerError naming the file and the problem."""
    path = Path(path)
    if not path.exists():
        raise MerError(f"fold checkpoint {path} is missing (deleted or moved); re-run the run to explain it")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # corrupt file, or not a weights-only checkpoint
        raise MerError(f"fold checkpoint {path} cannot be read safely ({type(exc).__name__}: {exc})") from None
    if not isinstance(ckpt, dict):
        raise MerError(f"fold checkpoint {path} holds a {type(ckpt).__name__}; expected a MER Bench fold checkpoint")
    for key in ("state_dict", "model", "model_config"):
        if key not in ckpt:
            raise MerError(f"fold checkpoint {path} has no {key!r} entry; expected a MER Bench fold checkpoint")
    state = ckpt["state_dict"]
    if ckpt.get("format") == FORMAT and ckpt.get("content_hash") != content_hash(state):
        raise MerError(f"fold checkpoint {path}: its weights do not match its content hash (modified or damaged)")
    bad = [k for k, v in state.items() if torch.is_floating_point(v) and not bool(torch.isfinite(v).all())]
    if bad:
        raise MerError(f"fold checkpoint {path}: non-finite weights in {', '.join(bad[:3])}"
                       f"{' ...' if len(bad) > 3 else ''}; the fold diverged or the file was damaged")
    if model is not None and ckpt["model"] != model:
        raise MerError(f"fold checkpoint {path} is a {ckpt['model']!r} model but the run trained {model!r}; "
                       "it was copied from another run")
    if fold is not None and "fold" in ckpt and int(ckpt["fold"]) != int(fold):
        raise MerError(f"fold checkpoint {path} belongs to fold {ckpt['fold']}, not fold {fold}")
    if config_hash and ckpt.get("config_hash") and ckpt["config_hash"] != config_hash:
        raise MerError(f"fold checkpoint {path} was trained with config {ckpt['config_hash']}, "
                       f"not this run's {config_hash}; it was copied from another run")
    return ckpt
