"""Explanations of a stored run's samples, honest and cached.

A sample is explained by the fold model that *held it out*: the fold whose
test subjects contain the sample's subject (the fold that produced its stored
prediction). That model never saw the sample, so the map shows what drove the
prediction the run reports, not what a model that memorised the clip looks at.

Inputs come from the run folder (``cache/runs/<id>/``): ``inputs.npy`` (the
preprocessed inputs, row order = ``table.json``) and the fold checkpoints
``fold_XXX.pt`` (state dicts + model config, loaded with
``torch.load(weights_only=True)``). Results are cached under
``cache/runs/<id>/explain/``: one ``.npz`` per (sample, method, target,
options, checkpoint version), so a page reload or a second user is instant and
a retrained fold never serves a stale map.

Every bad request raises :class:`MerError` with the run, sample, fold or file
at fault: unknown run, a run without checkpoints (``keep_checkpoints`` off)
or inputs, a sample not in the run, an unknown method or layer.
"""
from __future__ import annotations

import functools
import hashlib
import json
import os
from collections import OrderedDict
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import cv2
import numpy as np
import pandas as pd
from torch import nn

from mer_core.config import ExperimentConfig
from mer_core.errors import MerError
from mer_core.explain.attention import AttentionResult, has_attention, model_attention
from mer_core.explain.attributions import METHODS, Explanation, explain
from mer_core.explain.localisation import aggregate_scores, score_map
from mer_core.models.registry import create_model, model_spec
from mer_core.preprocess.sample import compute_maps
from mer_core.store.db import RunStore, using_store
from mer_core.store.folders import EXPLAIN_DIR, INPUTS_FILE, TABLE_FILE, explanation_name, load_array, localisation_name
from mer_core.store.folders import read_table, run_folder
from mer_core.training.checkpoints import load_fold_checkpoint
from mer_core.training.experiment import resolve_model_config

EXPLAIN_VERSION = 2  # part of every cache key: bump when a method's defaults or maths change
ATTENTION = "attention"  # pseudo-method name for the model's own attention in score tables
# cheaper settings for batch work (localisation tables); single-sample views use the defaults
FAST_OPTIONS: dict[str, dict[str, Any]] = {"integrated_gradients": {"steps": 16}, "smoothgrad": {"samples": 8}}

_MODELS: "OrderedDict[tuple[str, int], nn.Module]" = OrderedDict()
_MAX_MODELS = 8


def _digest(value: Any, n: int = 12) -> str:
    return hashlib.sha1(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()[:n]


def load_fold_model(path: str | Path, *, model: str | None = None, fold: int | None = None,
                    config_hash: str | None = None) -> nn.Module:
    """A fold checkpoint -> the model in eval mode (memoised by path and mtime).

    ``model``, ``fold`` and ``config_hash``, when given, must match what the
    checkpoint says it is (see :mod:`mer_core.training.checkpoints`).
    """
    path = Path(path)
    key = (str(path), path.stat().st_mtime_ns if path.exists() else 0, model, fold, config_hash)
    if key in _MODELS:
        _MODELS.move_to_end(key)
        return _MODELS[key]
    ckpt = load_fold_checkpoint(path, model=model, fold=fold, config_hash=config_hash)
    spec = model_spec(ckpt["model"])
    values = {k: tuple(v) if isinstance(v, list) else v for k, v in ckpt["model_config"].items()}
    try:
        cfg = spec.config_cls(**values)
    except TypeError as exc:
        raise MerError(f"fold checkpoint {path}: its model config does not fit {ckpt['model']!r} ({exc})") from exc
    net = create_model(ckpt["model"], config=cfg)
    try:
        net.load_state_dict(ckpt["state_dict"])
    except RuntimeError as exc:
        raise MerError(f"fold checkpoint {path}: its weights do not fit {ckpt['model']!r} ({str(exc)[:200]})") from None
    net.eval()
    _MODELS[key] = net
    while len(_MODELS) > _MAX_MODELS:
        _MODELS.popitem(last=False)
    return net


def read_grey(path: str) -> np.ndarray | None:
    return cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)


class RunExplainer:
    """Explanations for the samples of one stored run (see module doc)."""

    def __init__(self, run_id: str, store: RunStore | None = None) -> None:
        with using_store(store) as store:
            self.run = store.get_run(run_id)
            self.folds = store.folds(run_id)
            self.predictions = store.predictions(run_id)
        self.run_id = run_id
        self.classes: list[str] = list(self.run["classes"])
        self.folder = run_folder(run_id, create=False)
        if not (self.folder / INPUTS_FILE).exists():
            raise MerError(f"run {run_id}: no stored inputs in {self.folder} ({INPUTS_FILE}); "
                           "runs made before explanations existed cannot be explained; re-run it")
        self.table: pd.DataFrame = read_table(self.folder).reset_index(drop=True)
        self._index = {str(s): i for i, s in enumerate(self.table["sample_id"])}
        self._x: np.ndarray | None = None

    # --- samples ---------------------------------------------------------------
    @property
    def inputs(self) -> np.ndarray:
        if self._x is None:
            self._x = load_array(self.folder / INPUTS_FILE, mmap=True)
            if len(self._x) != len(self.table):
                raise MerError(f"run {self.run_id}: {INPUTS_FILE} has {len(self._x)} rows but {TABLE_FILE} has "
                               f"{len(self.table)}; the run folder is inconsistent")
        return self._x

    def sample_ids(self) -> list[str]:
        return list(self._index)

    def row(self, sample_id: str) -> pd.Series:
        if sample_id not in self._index:
            examples = ", ".join(list(self._index)[:3])
            raise MerError(f"sample {sample_id!r} is not in run {self.run_id} ({len(self._index)} samples, "
                           f"e.g. {examples})")
        return self.table.iloc[self._index[sample_id]]

    def sample_input(self, sample_id: str) -> np.ndarray:
        """The model input of a sample (C, H, W), exactly as the run trained on."""
        self.row(sample_id)
        return np.array(self.inputs[self._index[sample_id]], dtype=np.float32)

    def channels(self) -> list[str]:
        """The input channel names of the run's model, in input order."""
        cfg = ExperimentConfig.from_json(self.run["config_json"])
        return list(resolve_model_config(cfg, len(self.classes)).channels)

    def prediction(self, sample_id: str) -> dict[str, Any] | None:
        p = self.predictions[self.predictions["sample_id"] == sample_id]
        if p.empty:
            return None
        r = p.iloc[0]
        return {"fold": int(r.fold), "y_true": int(r.y_true), "y_pred": int(r.y_pred),
                "true": self.classes[int(r.y_true)], "predicted": self.classes[int(r.y_pred)],
                "probs": [float(v) for v in r.probs]}

    def frames(self, sample_id: str) -> dict[str, np.ndarray | None]:
        """Onset and apex frames (grey uint8, full frame) from the sample's frame list or images."""
        r = self.row(sample_id)
        frames = tuple(r.get("frames") or ())
        out: dict[str, np.ndarray | None] = {"onset": None, "apex": None}
        if frames:
            for key in ("onset", "apex"):
                i = int(r.get(key, 0))
                if 0 <= i < len(frames):
                    out[key] = read_grey(frames[i])
        for key, col in (("onset", "onset_image_path"), ("apex", "apex_image_path")):
            if out[key] is None and str(r.get(col) or ""):
                out[key] = read_grey(str(r[col]))
        return out

    def face(self, sample_id: str) -> np.ndarray | None:
        """A grey face aligned with the model input (same crop and size), for overlays.

        An image channel of the input when the model reads one; otherwise the
        apex frame through the run's own preprocessing (face crop included),
        so a map drawn on it lands where the model looked. None when neither
        is available.
        """
        channels = self.channels()
        x = self.sample_input(sample_id)
        for name in ("apex", "magnified_apex", "onset", "magnified_onset"):
            if name in channels:
                return x[channels.index(name)]
        return self._apex(sample_id, int(x.shape[-1]))

    def display_face(self, sample_id: str, size: int = 256) -> np.ndarray | None:
        """The face under the overlays at display resolution: the same aligned crop as the model input.

        The apex frame goes through the run's own preprocessing (face crop
        included) at ``size`` px instead of the input's 28 or 64, so a map at
        input resolution, upsampled, lands on a sharp face where the model
        looked. Falls back to :meth:`face` (input resolution) when the frames
        cannot be read.
        """
        face = self._apex(sample_id, size)
        return face if face is not None else self.face(sample_id)

    def _apex(self, sample_id: str, size: int) -> np.ndarray | None:
        """The apex frame through the run's own preprocessing at ``size`` px; None when a frame cannot be read."""
        try:
            options = ExperimentConfig.from_json(self.run["config_json"]).preprocess
            maps, _ = compute_maps(self.row(sample_id).to_dict(), ("apex",), int(size), options, lenient=True)
            return maps.get("apex")
        except Exception:  # a missing or unreadable frame only costs the background
            return None

    def masks(self, sample_id: str) -> dict[str, np.ndarray] | None:
        """Ground-truth masks ('au', 'blink', bool at frame size) of a synthetic sample, else None."""
        path = str(self.row(sample_id).get("mask_path") or "")
        if not path:
            return None
        if not Path(path).exists():
            raise MerError(f"sample {sample_id}: ground-truth mask file {path} is missing")
        with np.load(path) as data:
            if "au" not in data.files:
                raise MerError(f"mask file {path} has no 'au' array (keys: {', '.join(data.files)})")
            au = data["au"].astype(bool)
            blink = data["blink"].astype(bool) if "blink" in data.files else np.zeros_like(au)
        return {"au": au, "blink": blink}

    def _masks_align(self, sample_id: str) -> bool:
        """Frame-resolution masks match the input only when preprocessing did not crop the frame."""
        if bool(self.row(sample_id).get("cropped", False)):
            return True
        return not bool((self.run["config"].get("preprocess") or {}).get("face_crop", True))

    def has_masks(self) -> bool:
        return "mask_path" in self.table and bool((self.table["mask_path"].astype(str) != "").any())

    # --- the honest fold model -------------------------------------------------------
    def fold_of(self, sample_id: str) -> int:
        """The fold that held the sample out (whose test subjects contain its subject)."""
        subject = str(self.row(sample_id)["subject"])
        pred = self.prediction(sample_id)
        for f in self.folds.itertuples():
            if subject in list(f.test_subjects) and (pred is None or int(f.fold_index) == pred["fold"]):
                return int(f.fold_index)
        raise MerError(f"run {self.run_id}: no fold tested subject {subject!r} (sample {sample_id}); "
                       "the run is unfinished or the fold failed")

    def checkpoint_path(self, fold: int) -> Path:
        f = self.folds[self.folds["fold_index"] == fold]
        ckpt = "" if f.empty else str(f.iloc[0]["checkpoint"] or "")
        if not ckpt:
            raise MerError(f"run {self.run_id} has no checkpoint for fold {fold}: it was run without fold "
                           "checkpoints (keep_checkpoints=false) or the fold has not finished; "
                           "re-run with keep_checkpoints=true to explain its samples")
        path = Path(ckpt)
        return path if path.is_absolute() else self.folder / path

    def fold_model(self, fold: int) -> nn.Module:
        """Fold ``fold``'s model, after checking its checkpoint is this run's (model, fold, config)."""
        return load_fold_model(self.checkpoint_path(fold), model=str(self.run["model"]), fold=int(fold),
                               config_hash=str(self.run.get("config_hash") or "") or None)

    def model_for(self, sample_id: str) -> tuple[nn.Module, int]:
        fold = self.fold_of(sample_id)
        model = self.fold_model(fold)
        subject = str(self.row(sample_id)["subject"])
        held = list(self.folds[self.folds["fold_index"] == fold].iloc[0]["test_subjects"])
        if subject not in held:  # the contract of honest explanations, checked, not assumed
            raise MerError(f"fold {fold} of run {self.run_id} did not hold out {subject!r}; refusing to explain")
        return model, fold

    def resolve_target(self, sample_id: str, target: int | str | None) -> int | None:
        """'pred' (the stored prediction), 'true' (the label), an int, or None (recompute)."""
        if target is None or isinstance(target, (int, np.integer)):
            return None if target is None else int(target)
        pred = self.prediction(sample_id)
        if target in ("pred", "true"):
            if pred is None:
                return None if target == "pred" else int(self.classes.index(str(self.row(sample_id)["label"])))
            return pred["y_pred" if target == "pred" else "y_true"]
        if target in self.classes:
            return self.classes.index(target)
        raise MerError(f"target {target!r}: expected 'pred', 'true', a class index or one of {self.classes}")

    # --- cached computations -------------------------------------------------------
    def _cache_file(self, sample_id: str, kind: str, key: Any, ckpt: Path) -> Path:
        st = ckpt.stat()
        digest = _digest({"v": EXPLAIN_VERSION, "key": key, "ckpt": [str(ckpt.name), st.st_mtime_ns, st.st_size]})
        return self.folder / EXPLAIN_DIR / _digest(sample_id, 10) / explanation_name(kind, digest)

    def explain(self, sample_id: str, method: str = "integrated_gradients", target: int | str | None = "pred",
                *, use_cache: bool = True, **options: Any) -> Explanation:
        """Attribution maps of one sample from the fold model that held it out (cached)."""
        if method not in METHODS:
            raise MerError(f"explain: unknown method {method!r}; valid methods: {', '.join(METHODS)}")
        x = self.sample_input(sample_id)
        model, fold = self.model_for(sample_id)
        t = self.resolve_target(sample_id, target)
        ckpt = self.checkpoint_path(fold)
        path = self._cache_file(sample_id, method, {"target": t, "options": options}, ckpt)
        if use_cache and path.exists():
            try:
                with np.load(path) as data:
                    return Explanation.from_npz(data, {**options, "fold": fold, "cached": True})
            except (OSError, ValueError, KeyError):
                pass  # unreadable entry: recompute and overwrite
        e = explain(model, x, t, method, **options)
        e.options["fold"] = fold
        _atomic_savez(path, e.to_npz())
        return e

    def attention(self, sample_id: str, *, use_cache: bool = True) -> AttentionResult:
        """The fold model's own attention for one sample (cached)."""
        x = self.sample_input(sample_id)
        model, fold = self.model_for(sample_id)
        if not has_attention(model):
            raise MerError(f"model {self.run['model']!r} has no attention of its own; use an attribution method")
        path = self._cache_file(sample_id, ATTENTION, {}, self.checkpoint_path(fold))
        if use_cache and path.exists():
            try:
                with np.load(path) as data:
                    return _attention_from_npz(data)
            except (OSError, ValueError, KeyError):
                pass
        att = model_attention(model, x)
        _atomic_savez(path, _attention_to_npz(att))
        return att

    def has_attention(self) -> bool:
        done = self.folds[self.folds["checkpoint"].astype(str) != ""]
        if done.empty:
            return False
        return has_attention(self.fold_model(int(done.iloc[0].fold_index)))

    # --- failure cases and localisation -----------------------------------------------
    def failure_cases(self) -> pd.DataFrame:
        """Misclassified samples, most confident wrong answers first."""
        return failure_cases(self.predictions, self.classes)

    def localisation_samples(self, max_samples: int = 24) -> list[str]:
        """The clips the localisation scores: tested, with masks that align with the model input, at most
        ``max_samples`` of them evenly spread over the sorted ids (so every subject shows up)."""
        if not self.has_masks():
            raise MerError(f"run {self.run_id} ({self.run['dataset']}) has no ground-truth masks; the localisation "
                           "score needs the synthetic dataset")
        ids = list(self._scorable_ids)
        if not ids:
            raise MerError(f"run {self.run_id}: no tested sample whose masks align with the model input (masks are "
                           "drawn on the full frame: the clips must be pre-cropped or face_crop off)")
        if max_samples and len(ids) > max_samples:  # evenly spaced over the sorted ids: every subject shows up
            ids = sorted(ids)
            ids = [ids[int(i)] for i in np.linspace(0, len(ids) - 1, max_samples).round()]
        return ids

    @functools.cached_property
    def _scorable_ids(self) -> list[str]:
        """Tested clips with masks that align with the model input (read once: about a second on 167 clips)."""
        return [s for s in self.sample_ids() if self.prediction(s) is not None
                and str(self.row(s).get("mask_path") or "") and self._masks_align(s)]

    def _localisation_file(self, methods: Sequence[str], ids: list[str]) -> Path:
        ckpts = sorted(str(c) for c in self.folds["checkpoint"])
        key = _digest([EXPLAIN_VERSION, list(methods), ids, ckpts, FAST_OPTIONS])
        return self.folder / EXPLAIN_DIR / localisation_name(key)

    def localisation_cached(self, methods: Sequence[str] = (*METHODS, ATTENTION), *,
                            max_samples: int = 24) -> bool:
        """Whether :meth:`localisation_rows` has this choice on disk already (it then computes nothing)."""
        return self._localisation_file(methods, self.localisation_samples(max_samples)).exists()

    def localisation_rows(self, methods: Sequence[str] = (*METHODS, ATTENTION), *, max_samples: int = 24,
                          progress: Any = None, compute: bool = True) -> list[dict[str, Any]] | None:
        """Per-sample localisation scores of each method (synthetic runs; cached as JSON).

        With ``compute=False`` only a cached result is returned (None when there is none).
        ``progress(done, total)`` is called after each clip computed (none when the result was cached).
        """
        ids = self.localisation_samples(max_samples)
        path = self._localisation_file(methods, ids)
        if path.exists():
            return json.loads(path.read_text())
        if not compute:
            return None
        rows: list[dict[str, Any]] = []
        with_attention = ATTENTION in methods and self.has_attention()
        todo = [m for m in methods if m != ATTENTION] + ([ATTENTION] if with_attention else [])
        for k, sid in enumerate(ids):
            masks = self.masks(sid)
            for method in todo:
                if method == ATTENTION:
                    att = self.attention(sid)
                    m = att.maps[att.aggregate]
                else:
                    m = self.explain(sid, method, "pred", **FAST_OPTIONS.get(method, {})).combined
                rows.append({"run": self.run_id, "model": self.run["model"], "method": method, "sample_id": sid,
                             **score_map(m, masks["au"], masks["blink"])})
            if progress:
                progress(k + 1, len(ids))
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(rows))
        return rows


def failure_cases(pred: pd.DataFrame, classes: Sequence[str]) -> pd.DataFrame:
    """Misclassified rows of a predictions table with class names and confidences."""
    cols = ["sample_id", "subject", "fold", "true", "predicted", "confidence", "p_true"]
    wrong = pred[pred["y_true"] != pred["y_pred"]]
    if wrong.empty:
        return pd.DataFrame(columns=cols)
    names = list(classes)
    out = pd.DataFrame({
        "sample_id": wrong["sample_id"].astype(str), "subject": wrong["subject"].astype(str),
        "fold": wrong["fold"].astype(int),
        "true": [names[i] if 0 <= i < len(names) else str(i) for i in wrong["y_true"]],
        "predicted": [names[i] if 0 <= i < len(names) else str(i) for i in wrong["y_pred"]],
        "confidence": [float(p[i]) for p, i in zip(wrong["probs"], wrong["y_pred"])],
        "p_true": [float(p[i]) for p, i in zip(wrong["probs"], wrong["y_true"])],
    })
    return out.sort_values(["confidence", "sample_id"], ascending=[False, True]).reset_index(drop=True)


def localisation_table(run_ids: Iterable[str], methods: Sequence[str] = (*METHODS, ATTENTION), *,
                       max_samples: int = 24, store: RunStore | None = None,
                       progress: Callable[[int, int, str], None] | None = None,
                       compute: bool = True) -> pd.DataFrame | None:
    """Mean localisation scores per model and method over the given (synthetic) runs.

    With ``compute=False``: None unless every run's scores are already cached.
    ``progress(done, total, message)`` is called after each clip computed, counted over all the runs
    still to compute (runs whose scores are cached count for nothing), so a page can show one bar.
    """
    explainers = [RunExplainer(rid, store) for rid in run_ids]
    todo = [0 if ex.localisation_cached(methods, max_samples=max_samples)
            else len(ex.localisation_samples(max_samples)) for ex in explainers] if progress else []
    total, before = sum(todo), 0
    rows: list[dict[str, Any]] = []
    for r, ex in enumerate(explainers):
        step = (_counted_on(progress, before, total, f"run {r + 1} of {len(explainers)} ({ex.run['model']})")
                if progress and todo[r] else None)
        before += todo[r] if todo else 0
        got = ex.localisation_rows(methods, max_samples=max_samples, progress=step, compute=compute)
        if got is None:
            return None
        rows += got
    return aggregate_scores(rows)


def _counted_on(progress: Callable[[int, int, str], None], before: int, total: int,
                label: str) -> Callable[[int, int], None]:
    """One run's ``(k, n)`` clip progress as ``progress(before + k, total, message)`` over all the runs."""
    return lambda k, n: progress(before + k, total, f"{label}: clip {k} of {n}")


def _atomic_savez(path: Path, arrays: dict[str, np.ndarray]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp.npz")
    np.savez_compressed(tmp, **arrays)
    os.replace(tmp, path)


def _attention_to_npz(att: AttentionResult) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {"_aggregate": np.array(att.aggregate)}
    for prefix, d in (("map:", att.maps), ("heads:", att.heads), ("vec:", att.vectors)):
        out.update({prefix + k: v for k, v in d.items()})
    out.update({"shape:" + k: np.array(v) for k, v in att.native_shapes.items()})
    return out


def _attention_from_npz(data: Any) -> AttentionResult:
    att = AttentionResult(aggregate=str(data["_aggregate"]))
    for k in data.files:
        kind, _, name = k.partition(":")
        if kind == "map":
            att.maps[name] = data[k]
        elif kind == "heads":
            att.heads[name] = data[k]
        elif kind == "vec":
            att.vectors[name] = data[k]
        elif kind == "shape":
            att.native_shapes[name] = tuple(int(v) for v in data[k])
    return att
