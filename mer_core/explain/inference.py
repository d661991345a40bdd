"""Analyse a clip of one's own with a stored run: spot, preprocess as the run did, predict, explain, warn.

:func:`analyse_clip` takes a video (or a zip/folder of frames) and a run id:

1. decode it, bounded (:mod:`mer_core.preprocess.video`: downscale, window);
2. find the face on the first frame (Haar detection and eye-line alignment;
   a centre crop, said so, when none is found) and spot onset, apex and
   offset on a motion curve (:mod:`mer_core.preprocess.spotting`), unless
   the user gives them;
3. build the model input with the run's *own* preprocessing: the channels,
   input size and options stored in the run's config go through
   :func:`mer_core.preprocess.sample.compute_maps`, the function training used;
4. predict with the run's *final model* (``final_model = true``: one model
   trained on every subject after the LOSO, never evaluated) when it has one,
   else with the ensemble of its fold models (mean of their probabilities);
   ``model='final'|'ensemble'`` chooses. Each fold model never saw its own
   test subject, but a new person was seen by none of them: the ensemble is
   no more "honest" on this clip than any one fold, and neither it nor the
   final model was ever evaluated on people like this one;
5. explain with the same attribution code as the Explain page (maps averaged
   over the models used) and the model's own attention when it has one;
6. compare the clip with the run's training inputs (:func:`ood_checks`):
   flow magnitude far outside their range, no face found, a frame rate far
   from theirs. Each finding is a warning for the person, not a verdict.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

from mer_core.config import ExperimentConfig
from mer_core.errors import MerError
from mer_core.explain.attention import has_attention, model_attention
from mer_core.explain.attributions import METHODS, explain
from mer_core.explain.runs import load_fold_model
from mer_core.preprocess import face as face_mod
from mer_core.preprocess.channels import FLOW_SCALE
from mer_core.preprocess.sample import SampleError, compute_maps
from mer_core.preprocess.spotting import Spotting, spot
from mer_core.preprocess.video import ClipError, ClipLimits, DecodedClip, decode_clip
from mer_core.store.db import RunStore, using_store
from mer_core.store.folders import INPUTS_FILE, load_array, read_table, run_folder
from mer_core.training.checkpoints import FINAL_FOLD
from mer_core.training.experiment import resolve_model_config
from mer_core.training.final import FINAL_CHECKPOINT, read_final_record

TRANSFER_NOTE = ("A model trained on {trained_on} may not transfer to this clip: other faces, cameras, lighting "
                 "and frame rates than it learned from.")
ENSEMBLE_NOTE = ("Ensemble of {k} fold models: the mean of their probabilities. Each fold model never saw its own "
                 "test subject, but a new person was seen by none of them, and this ensemble was never evaluated.")
FINAL_NOTE = ("Final model trained on all {n} subjects (not evaluated): {epochs} on the run's {clips} clips "
              "after the LOSO. No subject was held out of it, so the run's LOSO scores describe its fold models, "
              "not this one.")
NO_FINAL_NOTE = ("This run has no final model (it was trained without final_model = true): the ensemble of its fold "
                 "models is used.")
MODELS = ("final", "ensemble")  # what RunPredictor(model=...) accepts; None = final when stored, else ensemble
FLOW_FAR = 2.0  # a flow magnitude beyond FLOW_FAR x the training's 99th percentile (or under its 1st / FLOW_FAR)
FPS_FAR = 2.0  # a frame rate more than FPS_FAR times off the training data's
NEAR_CHANCE = 0.15  # no verdict when the top probability is within this of 1 / number of classes
SIDECAR_KEYS = ("onset", "apex", "offset")  # frame indices in the video a sidecar JSON may give


@dataclass
class ClipAnalysis:
    """Everything the CLI and the page show for one clip."""

    run_id: str
    classes: list[str]
    probs: list[float]  # the final model's, or the ensemble mean
    fold_probs: list[list[float]]  # one row per model used (the final model alone: one row)
    predicted: str
    spotting: Spotting
    clip: DecodedClip
    face: str  # detected | centre-fallback | precropped
    fps_used: float
    x: np.ndarray  # the model input (C, H, W)
    channels: list[str]
    maps: dict[str, np.ndarray]  # onset/apex/flow/strain/clip/magnified_clip at the input size
    warnings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    model_note: str = ""
    seconds: dict[str, float] = field(default_factory=dict)
    model_used: str = "ensemble"  # final | ensemble
    withheld: str = ""  # why no verdict is given (no face, near chance); empty when the prediction stands
    trained_on: str = ""  # what the run learned from, e.g. "48 clips of 16 synthetic faces (synthetic)"

    def summary(self) -> dict[str, Any]:
        """Plain data for ``--json`` (no arrays but the motion curve).

        ``predicted`` is the most probable class; ``verdict`` is that class, or None when it is withheld
        (``withheld`` says why: no face found, or probabilities near chance).
        """
        a, b = self.clip.window
        return {"run": self.run_id, "classes": self.classes, "probabilities": dict(zip(self.classes, self.probs)),
                "predicted": self.predicted, "verdict": None if self.withheld else self.predicted,
                "fold_probabilities": self.fold_probs,
                "spotting": {**self.spotting.as_dict(), "window": [a, b],
                             "in_file": {k: getattr(self.spotting, k) + a for k in ("onset", "apex", "offset")}},
                "face": self.face, "fps": self.clip.fps, "fps_used": self.fps_used, "frames": self.clip.total_frames,
                "warnings": self.warnings, "notes": self.notes, "model": self.model_note, "model_used": self.model_used,
                "withheld": self.withheld, "trained_on": self.trained_on,
                "transfer": TRANSFER_NOTE.format(trained_on=self.trained_on or "other data"), "seconds": self.seconds}


class RunPredictor:
    """A stored run's model(s) to predict with, its preprocessing and training statistics, loaded once.

    ``model``: ``'final'`` (the final model; an error when the run has none),
    ``'ensemble'`` (the fold models) or None (the final model when stored,
    else the ensemble, saying so in :attr:`notes`). :attr:`kind` is the one used
    and :attr:`note` says what it is.
    """

    def __init__(self, run_id: str, store: RunStore | None = None, model: str | None = None) -> None:
        if model not in (None, *MODELS):
            raise MerError(f"model={model!r}: expected one of {', '.join(MODELS)} (or none: final when stored)")
        with using_store(store) as store:
            self.run = store.get_run(run_id)
            folds = store.folds(run_id)
        self.run_id = run_id
        self.classes = list(self.run["classes"])
        self.config = ExperimentConfig.from_json(self.run["config_json"])
        mcfg = resolve_model_config(self.config, len(self.classes))
        self.channels, self.size = list(mcfg.channels), int(mcfg.input_size)
        self.folder = run_folder(run_id, create=False)
        self.final = read_final_record(self.folder)
        self.notes: list[str] = []
        cfg_hash = str(self.run.get("config_hash") or "") or None
        if model == "final" and self.final is None:
            raise MerError(f"run {run_id} has no final model (trained without final_model = true, or its final "
                           "model failed: see the run's notes); use the ensemble of its fold models instead")
        self.kind = "final" if self.final is not None and model != "ensemble" else "ensemble"
        if self.kind == "final":
            self.models = [load_fold_model(self.folder / FINAL_CHECKPOINT, model=str(self.run["model"]),
                                           fold=FINAL_FOLD, config_hash=cfg_hash)]
            self.note = FINAL_NOTE.format(n=self.final.get("n_subjects", len(self.final.get("subjects", []))),
                                          epochs=_epochs(self.final.get("epochs")), clips=self.final.get("n_samples"))
        else:
            self.models = self._load_folds(folds, cfg_hash)
            self.note = ENSEMBLE_NOTE.format(k=len(self.models))
            if model is None:
                self.notes.append(NO_FINAL_NOTE)
        self.train = training_stats(self.folder, self.channels)
        self.trained_on = trained_on(self.run, self.folder)

    def _load_folds(self, folds: Any, cfg_hash: str | None) -> list[torch.nn.Module]:
        done = folds[folds["checkpoint"].astype(str) != ""]
        if done.empty:
            raise MerError(f"run {self.run_id} has no fold checkpoints (run without keep_checkpoints, or "
                           "unfinished); it cannot predict a new clip")
        models = []
        for f in done.itertuples():
            path = Path(str(f.checkpoint))
            path = path if path.is_absolute() else self.folder / path
            models.append(load_fold_model(path, model=str(self.run["model"]), fold=int(f.fold_index),
                                          config_hash=cfg_hash))
        return models

    def predict(self, x: np.ndarray) -> tuple[list[float], list[list[float]]]:
        batch = torch.as_tensor(x[None], dtype=torch.float32)
        with torch.no_grad():
            per = [torch.softmax(m(batch), dim=1)[0].tolist() for m in self.models]
        return [float(v) for v in np.mean(per, axis=0)], per

    def attribution(self, x: np.ndarray, target: int, method: str = "saliency", **options: Any) -> np.ndarray:
        """The combined attribution map (H, W), averaged over the models used (the final model alone: its map)."""
        if method not in METHODS:
            raise MerError(f"unknown attribution method {method!r}; valid methods: {', '.join(METHODS)}")
        maps = [explain(m, x, target, method, **options).combined for m in self.models]
        return np.mean(maps, axis=0).astype(np.float32)

    def attention(self, x: np.ndarray) -> np.ndarray | None:
        """The models' own attention (aggregate map, averaged over the models used), or None."""
        if not has_attention(self.models[0]):
            return None
        maps = []
        for m in self.models:
            att = model_attention(m, x)
            maps.append(att.maps[att.aggregate])
        return np.mean(maps, axis=0).astype(np.float32)


def _epochs(n: Any) -> str:
    return f"{n} epoch" if n == 1 else f"{n} epochs"


def stored_models(run_id: str, store: RunStore | None = None) -> dict[str, Any]:
    """What a run can predict with: {'final': its record or None, 'folds': fold checkpoints stored}."""
    with using_store(store) as store:
        folds = store.folds(run_id)
    n = int((folds["checkpoint"].astype(str) != "").sum()) if len(folds) else 0
    return {"final": read_final_record(run_folder(run_id, create=False)), "folds": n}


def model_labels(stored: dict[str, Any]) -> dict[str, str]:
    """kind -> what it is, for the models in :func:`stored_models`'s answer (final first)."""
    out = {}
    final = stored.get("final")
    if final:
        out["final"] = (f"final model trained on all {final.get('n_subjects', len(final.get('subjects', [])))} "
                        "subjects (not evaluated)")
    if stored.get("folds"):
        out["ensemble"] = f"ensemble of {stored['folds']} fold models"
    return out


def trained_on(run: dict[str, Any], folder: Path | None = None) -> str:
    """What a run learned from, in words: "48 clips of 16 synthetic faces (synthetic)", "255 clips of 26 people (casme2)".

    Counts come from the run folder's sample table when it has one, else from
    the run's row (clips) and its folds (subjects, under LOSO).
    """
    dataset = str(run.get("dataset") or "an unnamed dataset")
    clips, subjects = run.get("n_samples"), None
    if folder is not None:
        try:
            table = read_table(folder)
            clips, subjects = len(table), int(table["subject"].nunique())
        except (OSError, ValueError, KeyError, MerError):
            pass
    if subjects is None and str(run.get("protocol") or "") == "loso" and run.get("n_folds"):
        subjects = int(run["n_folds"])
    people = "synthetic faces" if dataset.startswith("synthetic") else "people"
    who = f"{subjects} {people}" if subjects else people
    what = f"{int(clips)} clips of {who}" if clips else who
    return f"{what} ({dataset})"


def verdict_withheld(face: str, probs: list[float], classes: list[str]) -> str:
    """Why the clip gets no verdict, in words, or ``""`` when the prediction may be shown as one.

    No verdict when no face was found (a centre crop is no face the model
    learned from) or when the top probability is within :data:`NEAR_CHANCE`
    of chance (1 / number of classes): the model is close to guessing.
    """
    reasons = []
    if face == "centre-fallback":
        reasons.append("no face was found in the clip, so the model looked at the centre of the frame instead")
    if probs:
        chance = 1.0 / len(probs)
        top = max(probs)
        if top - chance < NEAR_CHANCE:
            best = classes[int(np.argmax(probs))] if classes else "the top class"
            reasons.append(f"the probabilities are close to chance (the highest, {best}, is {top:.2f}; guessing "
                           f"among {len(probs)} classes gives {chance:.2f} each)")
    if not reasons:
        return ""
    text = " and ".join(reasons)
    return text[0].upper() + text[1:] + "."


def parse_sidecar(text: str | bytes, source: str = "sidecar") -> dict[str, int]:
    """Onset, apex (and offset, when given) of a clip's sidecar JSON (what ``mer synth --export-video`` writes).

    Frame indices in the video. MerError naming ``source`` and the value when
    the text is no JSON object or a frame is not a non-negative integer, or
    onset is not before apex.
    """
    try:
        data = json.loads(text)
    except (ValueError, UnicodeDecodeError) as exc:
        raise MerError(f"{source}: not JSON ({exc}); expected an object with onset and apex frame numbers") from None
    if not isinstance(data, dict):
        raise MerError(f"{source}: expected a JSON object with onset and apex frame numbers")
    out: dict[str, int] = {}
    for key in SIDECAR_KEYS:
        value = data.get(key)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise MerError(f"{source}: {key}={value!r}; expected a frame number (an integer from 0)")
        out[key] = int(value)
    if "onset" not in out or "apex" not in out:
        raise MerError(f"{source}: no onset and apex frame numbers in it (keys: {', '.join(map(str, data)) or 'none'})")
    if not out["onset"] < out["apex"] <= out.get("offset", out["apex"]):
        raise MerError(f"{source}: expected onset < apex <= offset, got "
                       + ", ".join(f"{k}={v}" for k, v in out.items()))
    return out


def read_sidecar(path: str | Path) -> dict[str, int] | None:
    """The sidecar JSON beside a video (``clip.mp4`` -> ``clip.json``), parsed; None when there is none."""
    side = Path(path).with_suffix(".json")
    if side == Path(path) or not side.is_file():
        return None
    return parse_sidecar(side.read_bytes(), side.name)


def predictable_runs(store: RunStore | None = None) -> list[str]:
    """Finished runs that can predict a new clip (a final model or fold checkpoints), best pooled UF1 first.

    A run without a UF1 comes after those with one, newest first among equals.
    """
    with using_store(store) as store:
        runs = store.list_runs()
        ok = []
        for r in runs.itertuples():
            if str(r.status) != "done":
                continue
            stored = stored_models(str(r.id), store)
            if stored["final"] or stored["folds"]:
                uf1 = float(r.uf1) if r.uf1 is not None and r.uf1 == r.uf1 else -1.0
                ok.append((-uf1, -float(r.created or 0.0), str(r.id)))
    return [rid for *_k, rid in sorted(ok)]


def training_stats(folder: Path, channels: list[str]) -> dict[str, Any]:
    """Per-sample mean flow magnitude (pixels at input size) percentiles and the frame rate of the training data."""
    out: dict[str, Any] = {"flow": None, "fps": None}
    try:
        table = read_table(folder)
        if "fps" in table:
            fps = table["fps"].astype(float)
            fps = fps[fps > 0]
            out["fps"] = float(fps.median()) if len(fps) else None
        if "flow_u" in channels and "flow_v" in channels and (folder / INPUTS_FILE).exists():
            x = load_array(folder / INPUTS_FILE, mmap=True)
            iu, iv = channels.index("flow_u"), channels.index("flow_v")
            mags = [flow_magnitude(np.asarray(s[iu]), np.asarray(s[iv])) for s in x]
            mags = [m for m in mags if m > 0]  # failed samples are zeros
            if mags:
                out["flow"] = {"p1": float(np.percentile(mags, 1)), "p50": float(np.median(mags)),
                               "p99": float(np.percentile(mags, 99)), "n": len(mags)}
    except (OSError, ValueError, KeyError, MerError):
        pass  # a run folder without a table or inputs: no statistics, no warning from them
    return out


def flow_magnitude(flow_u: np.ndarray, flow_v: np.ndarray) -> float:
    """Mean flow magnitude in pixels at input size, from normalised channels."""
    return float(np.sqrt(flow_u.astype(np.float32) ** 2 + flow_v.astype(np.float32) ** 2).mean() * FLOW_SCALE)


def ood_checks(x: np.ndarray, channels: list[str], face: str, fps: float | None, train: dict[str, Any]) -> list[str]:
    """Warnings where the clip looks unlike the run's training data (see the module docstring)."""
    warn = []
    if face == "centre-fallback":
        warn.append("No face was found: the centre of the frame was used instead. The model only ever saw faces "
                    "cropped around the eyes, nose and mouth.")
    flow = train.get("flow")
    if flow and "flow_u" in channels and "flow_v" in channels:
        m = flow_magnitude(x[channels.index("flow_u")], x[channels.index("flow_v")])
        if m > FLOW_FAR * flow["p99"]:
            warn.append(f"The clip moves much more than the training clips: mean flow {m:.2f} px against "
                        f"{flow['p1']:.2f}-{flow['p99']:.2f} px (1st-99th percentile of {flow['n']} training inputs); "
                        "this looks like a large movement, not a micro-expression.")
        elif m < flow["p1"] / FLOW_FAR:
            warn.append(f"The clip barely moves: mean flow {m:.3f} px, under the training clips' 1st percentile "
                        f"{flow['p1']:.3f} px; the prediction is close to a guess.")
    tfps = train.get("fps")
    if fps is None:
        warn.append("The file does not declare a frame rate; " + (f"the training data's {tfps:g} fps was assumed."
                                                                   if tfps else "30 fps was assumed."))
    elif tfps and not 1 / FPS_FAR <= fps / tfps <= FPS_FAR:
        warn.append(f"The clip runs at {fps:g} fps; the training clips at {tfps:g} fps. Motions between onset and "
                    "apex span other numbers of frames than the model learned from.")
    return warn


def analyse_clip(path: str | Path, run_id: str, *, onset: int | None = None, apex: int | None = None,
                 offset: int | None = None, cropped: bool = False, limits: ClipLimits | None = None,
                 predictor: RunPredictor | None = None, store: RunStore | None = None,
                 model: str | None = None, sidecar: dict[str, int] | None = None,
                 sidecar_name: str = "", use_sidecar: bool = True) -> ClipAnalysis:
    """Decode, spot, preprocess as the run did, predict (see the module docstring).

    Frames (onset/apex/offset) are relative to the analysed window (the whole
    clip unless it is longer than ``limits.max_frames``). ``cropped``: the
    frames are already face crops (the exported synthetic clips), as in the
    run's own data: no detection. ``model``: see :class:`RunPredictor`
    (ignored when ``predictor`` is given: it has chosen already).

    ``sidecar``: the clip's own onset/apex(/offset) in frames of the file
    (:func:`parse_sidecar`); when none is given, the JSON beside the video is
    read (:func:`read_sidecar`). Used instead of spotting unless the caller
    gives onset or apex (or ``use_sidecar=False``); the notes say so.
    """
    t0 = time.perf_counter()
    clip = decode_clip(path, limits)
    t1 = time.perf_counter()
    pred = predictor or RunPredictor(run_id, store, model=model)
    opt = pred.config.preprocess
    crop = face_mod.find_crop(clip.frames[0], cropped=cropped, enabled=opt.face_crop)
    crops = [face_mod.apply_crop(f, crop, 64) for f in clip.frames]
    sidecar_note, given_by = "", "given"
    if onset is None and apex is None and use_sidecar:
        side = sidecar if sidecar is not None else read_sidecar(path)
        name = sidecar_name or (Path(path).with_suffix(".json").name if sidecar is None else "the sidecar")
        if side:
            start = clip.window[0]
            inside = {k: v - start for k, v in side.items() if 0 <= v - start < len(clip.frames)}
            if "onset" in inside and "apex" in inside:
                onset, apex, offset = inside["onset"], inside["apex"], inside.get("offset", offset)
                given_by = "from the sidecar"
                sidecar_note = (f"Onset {side['onset']} and apex {side['apex']} (frames of the file) come from "
                                f"{name}, the clip's own annotation: not spotted.")
            else:
                sidecar_note = (f"{name} gives onset {side['onset']} and apex {side['apex']}, outside the analysed "
                                f"frames {start}-{start + len(clip.frames) - 1}: they were spotted instead.")
    try:
        spotted = spot(crops, onset=onset, apex=apex, offset=offset, given_by=given_by)
    except ValueError as exc:
        raise ClipError(f"{Path(path).name}: {exc}") from None
    t2 = time.perf_counter()
    row = {"sample_id": Path(path).name, "frames": clip.frames, "onset": spotted.onset, "apex": spotted.apex,
           "offset": spotted.offset, "cropped": cropped}
    try:
        maps, info = compute_maps(row, tuple(pred.channels), pred.size, opt, keep_clip=True)
    except SampleError as exc:
        raise ClipError(str(exc)) from None
    x = np.stack([maps[c] for c in pred.channels]).astype(np.float32)
    t3 = time.perf_counter()
    probs, per = pred.predict(x)
    t4 = time.perf_counter()
    train_fps = pred.train.get("fps")
    fps_used = clip.fps or train_fps or 30.0
    notes = list(clip.notes) + list(pred.notes) + ([sidecar_note] if sidecar_note else [])
    if info["face"] == "centre-fallback":
        notes.append("no face found on the first frame: a centre crop was used")
    return ClipAnalysis(
        run_id=run_id, classes=pred.classes, probs=probs, fold_probs=per,
        predicted=pred.classes[int(np.argmax(probs))], spotting=spotted, clip=clip, face=str(info["face"]),
        fps_used=float(fps_used), x=x, channels=pred.channels,
        maps={k: maps[k] for k in ("onset", "apex", "u_px", "v_px", "strain", "clip", "magnified_clip") if k in maps},
        warnings=ood_checks(x, pred.channels, str(info["face"]), clip.fps, pred.train), notes=notes,
        model_note=pred.note, model_used=pred.kind,
        withheld=verdict_withheld(str(info["face"]), probs, pred.classes), trained_on=pred.trained_on,
        seconds={"decode": round(t1 - t0, 3), "spot": round(t2 - t1, 3), "preprocess": round(t3 - t2, 3),
                 "predict": round(t4 - t3, 3), "total": round(t4 - t0, 3)},
    )


def overlay_rgb(face: np.ndarray | None, heat: np.ndarray, size: int = 256, opacity: float = 0.5) -> np.ndarray:
    """A heat map blended on a grey face, RGB uint8 (size, size, 3), for files written by ``mer predict``."""
    h = np.clip(np.asarray(heat, np.float32), 0, None)
    top = float(np.percentile(h, 99.5)) or float(h.max()) or 1.0
    g = cv2.resize((np.clip(h / top, 0, 1) * 255).astype(np.uint8), (size, size), interpolation=cv2.INTER_LINEAR)
    colour = cv2.cvtColor(cv2.applyColorMap(g, cv2.COLORMAP_INFERNO), cv2.COLOR_BGR2RGB).astype(np.float32)
    base = np.zeros((size, size, 3), np.float32) if face is None else np.repeat(
        cv2.resize(np.clip(face, 0, 1).astype(np.float32), (size, size))[..., None] * 255.0, 3, axis=2)
    alpha = opacity * (g.astype(np.float32) / 255.0)[..., None]
    return np.clip(base * (1 - alpha) + colour * alpha, 0, 255).astype(np.uint8)
