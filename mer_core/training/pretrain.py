"""Macro-expression pre-training and the fine-tuning helpers (transfer learning).

DenseAttention (Gan et al. 2024) is pre-trained on macro-expression datasets,
where expressions are large and labelled data is plentiful, then fine-tuned on
micro-expressions. Here:

* :func:`pretrain` trains the *same architecture* as the fine-tuned model
  (same channels, input size and options; only the head's class count
  differs) on all samples of one or more macro sources, with its own small
  loop (AdamW, cross-entropy, fixed epochs: nothing is selected on any
  micro-expression subject, so LOSO stays honest). The checkpoint is written
  once to ``checkpoints_dir()/pretrain/<key>.pt``, the key hashing everything
  that determines the weights (model config without the head, sources and a
  fingerprint of their samples, preprocessing, epochs, seed, optimiser
  settings), and reused by every fold and run that asks for the same thing.
* :func:`load_pretrained_backbone`, :func:`apply_freeze` and
  :func:`param_groups` are what a fold's trainer calls to fine-tune from it.

Macro sources (a list, or one string of comma-separated specs):

* ``NAME`` / ``NAME:ROOT`` -- a registered clip dataset (``synthetic-macro``
  by default), optionally ``NAME?key=value&key=value`` for indexer options
  (e.g. three synthetic macro sets with different seeds or rendering).
  Inputs come from :func:`mer_core.preprocess.pipeline.prepare_inputs`, as for
  micro data.
* ``ckplus:PATH`` -- a CK+-style tree: ``cohn-kanade-images/Sxxx/nnn/*.png``
  and ``Emotion/Sxxx/nnn/*_emotion.txt`` holding a float code (1 anger,
  2 contempt, 3 disgust, 4 fear, 5 happiness, 6 sadness, 7 surprise).
  Sequences run from neutral to peak, so each labelled sequence becomes a
  clip with onset = the first (neutral) frame and apex = offset = the last;
  it then goes through the same ``prepare_inputs`` (flow, EVM...).
* ``folder:PATH`` -- ImageFolder-style ``PATH/<class>/*.png``: unpaired
  stills. Image channels (apex, onset and their magnified versions) are the
  image itself; motion channels (diff, flow, strain) are zero, since a still
  has no onset to move from.

Label names are lower-cased and common synonyms unified (happy -> happiness),
so classes shared by several sources train one output; the head has one
output per class in the union.
"""
from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import cv2
import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from mer_core.config import PreprocessConfig
from mer_core.errors import ConfigError, DatasetError
from mer_core.paths import checkpoints_dir

PRETRAIN_VERSION = 1  # bump when the loop or the input derivation changes
IMAGE_EXTS = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff"}
CKPLUS_CODES = {1: "anger", 2: "contempt", 3: "disgust", 4: "fear", 5: "happiness", 6: "sadness", 7: "surprise"}
LABEL_ALIASES = {
    "happy": "happiness", "joy": "happiness", "angry": "anger", "sad": "sadness", "surprised": "surprise",
    "disgusted": "disgust", "fearful": "fear", "afraid": "fear", "neutrality": "neutral", "contemptuous": "contempt",
}
STILL_IMAGE_CHANNELS = ("onset", "apex", "magnified_apex", "magnified_onset")
FREEZE_MODES = ("none", "early", "all_but_head")
NOT_ARCH = ("dropout", "drop_rate")  # regularisation only: may differ between pre-training and fine-tuning

Log = Callable[[str], None]


# --- macro sources ------------------------------------------------------------


@dataclass(frozen=True)
class MacroSource:
    kind: str  # 'dataset' | 'ckplus' | 'folder'
    name: str  # dataset name, or the absolute path for ckplus/folder
    root: str = ""  # dataset root ('' = the registry's)
    options: tuple[tuple[str, Any], ...] = ()  # indexer options

    def spec(self) -> str:
        if self.kind != "dataset":
            return f"{self.kind}:{self.name}"
        text = self.name + (f":{self.root}" if self.root else "")
        return text + ("?" + "&".join(f"{k}={v}" for k, v in self.options) if self.options else "")


def split_sources(value: str | Sequence[str]) -> list[str]:
    """``'a,b'`` or ``['a', 'b']`` -> ``['a', 'b']`` (empty items dropped)."""
    items = value.split(",") if isinstance(value, str) else list(value)
    return [s.strip() for s in items if s and s.strip()]


def parse_source(spec: str) -> MacroSource:
    """Parse one macro source spec (see the module docstring)."""
    spec = spec.strip()
    if not spec:
        raise ConfigError("empty macro source; expected NAME, NAME:ROOT, folder:PATH or ckplus:PATH")
    kind, sep, rest = spec.partition(":")
    if sep and kind.lower() in ("folder", "imagefolder", "ckplus", "ck+"):
        path = Path(rest).expanduser()
        if not path.is_dir():
            raise DatasetError(f"macro source {spec!r}: folder not found: {path}")
        return MacroSource("ckplus" if kind.lower() in ("ckplus", "ck+") else "folder", str(path.resolve()))
    base, _, query = spec.partition("?")
    name, _, root = base.partition(":")
    options: list[tuple[str, Any]] = []
    for item in filter(None, query.split("&")):
        key, eq, val = item.partition("=")
        if not eq or not key:
            raise ConfigError(f"macro source {spec!r}: option {item!r} is not key=value")
        options.append((key.strip(), _parse_value(val.strip())))
    return MacroSource("dataset", name.strip(), str(Path(root).expanduser().resolve()) if root else "", tuple(options))


def _parse_value(text: str) -> Any:
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text


def normalise_label(label: str) -> str:
    key = str(label).strip().lower().replace(" ", "_")
    return LABEL_ALIASES.get(key, key)


def _natural(name: str) -> list[Any]:
    import re

    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", name)]


def index_imagefolder(root: str | Path) -> list[tuple[str, str]]:
    """``(absolute image path, label)`` for every image under ``root/<class>/``."""
    root = Path(root)
    items: list[tuple[str, str]] = []
    for cls in sorted(p for p in root.iterdir() if p.is_dir()):
        for img in sorted(cls.rglob("*"), key=lambda p: _natural(str(p))):
            if img.suffix.lower() in IMAGE_EXTS and img.is_file():
                items.append((str(img.resolve()), normalise_label(cls.name)))
    if not items:
        raise DatasetError(f"image folder {root}: no images found; expected {root}/<class name>/<image>.png")
    return items


def _find_dir(root: Path, name: str) -> Path | None:
    for base in (root, *sorted(p for p in root.iterdir() if p.is_dir())):
        for child in (p for p in base.iterdir() if p.is_dir()):
            if child.name.lower() == name.lower():
                return child
    return None


def index_ckplus(root: str | Path) -> tuple[pd.DataFrame, list[str]]:
    """A CK+-style tree as a sample table (labelled sequences only) and a list of skipped items."""
    from mer_core.datasets.schema import make_table

    root = Path(root)
    images, emotion = _find_dir(root, "cohn-kanade-images"), _find_dir(root, "Emotion")
    if images is None or emotion is None:
        raise DatasetError(
            f"CK+ folder {root}: expected 'cohn-kanade-images/Sxxx/nnn/*.png' and 'Emotion/Sxxx/nnn/*_emotion.txt'"
        )
    rows, skipped = [], []
    for label_file in sorted(emotion.rglob("*_emotion.txt")):
        seq = label_file.parent
        subject = seq.parent.name
        try:
            code = float(label_file.read_text().split()[0])
        except (ValueError, IndexError):
            skipped.append(f"{label_file}: expected a number (emotion code 1..7)")
            continue
        if code != int(code) or int(code) not in CKPLUS_CODES:
            skipped.append(f"{label_file}: emotion code {code} is not one of 1..7")
            continue
        frame_dir = images / subject / seq.name
        frames = sorted(
            (p for p in frame_dir.glob("*") if p.suffix.lower() in IMAGE_EXTS), key=lambda p: _natural(p.name)
        ) if frame_dir.is_dir() else []
        if not frames:
            skipped.append(f"{frame_dir}: no frames for labelled sequence {label_file.name}")
            continue
        n = len(frames)
        rows.append(dict(
            dataset="ckplus", subject=f"ckplus:{subject}", native_subject=subject, clip=f"{subject}_{seq.name}",
            label=CKPLUS_CODES[int(code)], frames=tuple(str(p.resolve()) for p in frames),
            onset=0, apex=n - 1, offset=n - 1, fps=30.0, apex_method="last_frame",
        ))
    if not rows:
        raise DatasetError(f"CK+ folder {root}: no labelled sequence with frames ({len(skipped)} skipped: {skipped[:3]})")
    return make_table(rows), skipped


def still_inputs(paths: Sequence[str], channels: Sequence[str], size: int) -> tuple[np.ndarray, np.ndarray]:
    """Inputs for unpaired stills: image channels = the image, motion channels = 0.

    Returns ``(x (N, C, size, size) float32, ok (N,) bool)``; unreadable
    images have ``ok`` False.
    """
    x = np.zeros((len(paths), len(channels), size, size), np.float32)
    ok = np.zeros(len(paths), bool)
    for i, path in enumerate(paths):
        img = cv2.imread(path, cv2.IMREAD_GRAYSCALE)
        if img is None:
            continue
        grey = cv2.resize(img, (size, size), interpolation=cv2.INTER_AREA).astype(np.float32) / 255.0
        for c, name in enumerate(channels):
            if name in STILL_IMAGE_CHANNELS:
                x[i, c] = grey
        ok[i] = True
    return x, ok


@dataclass
class MacroData:
    x: np.ndarray  # (N, C, H, W) float32
    labels: list[str]  # normalised label per row
    sources: list[str]  # source spec per row
    report: list[dict[str, Any]] = field(default_factory=list)  # one entry per source


def _table_fingerprint(table: pd.DataFrame) -> str:
    h = hashlib.sha256()
    for sid, label, frames in zip(table["sample_id"], table["label"], table["frames"]):
        h.update(f"{sid}|{label}|{len(frames)}\n".encode())
    return h.hexdigest()[:16]


def _index_source(src: MacroSource) -> tuple[Any, str, list[str]]:
    """(table or list of (path, label), fingerprint, skipped) without loading pixels."""
    if src.kind == "folder":
        items = index_imagefolder(src.name)
        h = hashlib.sha256()
        for path, label in items:
            h.update(f"{os.path.relpath(path, src.name)}|{label}|{os.path.getsize(path)}\n".encode())
        return items, h.hexdigest()[:16], []
    if src.kind == "ckplus":
        table, skipped = index_ckplus(src.name)
        return table, _table_fingerprint(table), skipped
    from mer_core.datasets import index_dataset

    table = index_dataset(src.name, src.root or None, **dict(src.options))
    if len(table) == 0:
        raise DatasetError(f"macro dataset {src.spec()!r} has no samples")
    return table, _table_fingerprint(table), []


def load_macro(
    sources: Sequence[MacroSource],
    channels: Sequence[str],
    size: int,
    options: PreprocessConfig | None = None,
    *,
    indexed: Sequence[tuple[Any, str, list[str]]] | None = None,
    workers: int = 1,
    log: Log | None = None,
) -> MacroData:
    """Model inputs and labels for all samples of the macro sources."""
    channels = tuple(channels)
    xs, labels, origin, report = [], [], [], []
    indexed = list(indexed) if indexed is not None else [_index_source(s) for s in sources]
    for src, (data, _fp, skipped) in zip(sources, indexed):
        if src.kind == "folder":
            paths = [p for p, _ in data]
            x, ok = still_inputs(paths, channels, size)
            lab = [label for _, label in data]
            errors = [f"cannot read image {p}" for p, good in zip(paths, ok) if not good]
        else:
            from mer_core.preprocess.pipeline import prepare_inputs

            prep = prepare_inputs(data, channels, size, options or PreprocessConfig(), workers=workers)
            x, ok = prep.x, np.asarray(prep.ok, bool)
            lab = [normalise_label(v) for v in data["label"]]
            errors = [f"{r.sample_id}: {r.error}" for r in prep.report.itertuples() if not r.ok]
        x = x[ok]
        lab = [label for label, good in zip(lab, ok) if good]
        report.append(dict(source=src.spec(), samples=int(ok.sum()), failed=int((~ok).sum()),
                           skipped=len(skipped), errors=(errors + skipped)[:10],
                           classes={k: int(v) for k, v in sorted(pd.Series(lab, dtype=str).value_counts().items())}))
        if log:
            log(f"macro source {src.spec()}: {int(ok.sum())} samples ({int((~ok).sum())} failed, {len(skipped)} skipped)")
        xs.append(x)
        labels += lab
        origin += [src.spec()] * len(lab)
    if not labels:
        raise DatasetError(f"no usable macro samples in {[s.spec() for s in sources]}: {report}")
    return MacroData(np.concatenate(xs).astype(np.float32, copy=False), labels, origin, report)


# --- pre-training -------------------------------------------------------------


def _arch(cfg: Any) -> dict[str, Any]:
    """A model config as plain JSON data, without the head's class count."""
    data = {k: (list(v) if isinstance(v, tuple) else v) for k, v in dataclasses.asdict(cfg).items()}
    data.pop("num_classes", None)
    return data


def _resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        return torch.device("cpu")
    return torch.device(name)


def _augment(x: torch.Tensor, channels: tuple[str, ...], gen: torch.Generator) -> torch.Tensor:
    """Horizontal flip (negating flow_u, as a mirrored face moves the other way) and a +-2 px shift."""
    flip = torch.rand(x.shape[0], generator=gen) < 0.5
    x = x.clone()
    if flip.any():
        xf = x[flip].flip(-1)
        if "flow_u" in channels:
            xf[:, channels.index("flow_u")] *= -1
        x[flip] = xf
    dy, dx = (int(v) for v in torch.randint(-2, 3, (2,), generator=gen))
    return torch.roll(x, shifts=(dy, dx), dims=(-2, -1))


def pretrain(
    model_name: str,
    preset: str = "cpu",
    macro_dataset: str | Sequence[str] = "synthetic-macro",
    epochs: int = 10,
    seed: int = 0,
    *,
    model_options: dict[str, Any] | None = None,
    preprocess: PreprocessConfig | None = None,
    lr: float = 1e-3,
    batch_size: int = 32,
    weight_decay: float = 1e-4,
    device: str = "auto",
    workers: int = 1,
    force: bool = False,
    log: Log | None = None,
    progress: Callable[[int, int, float], None] | None = None,
) -> Path:
    """Pre-train ``model_name`` on macro data; return the (cached) checkpoint path.

    ``model_options`` are the fine-tuned model's overrides (channels,
    input_size, ...; ``num_classes`` is ignored: the macro head has one output
    per macro class). ``progress(epoch, epochs, loss)`` is called after each
    epoch. With ``force`` an existing checkpoint is retrained.
    """
    from mer_core.models import model_config

    if epochs < 1:
        raise ConfigError(f"pretrain epochs={epochs}: expected an integer >= 1")
    if not lr > 0 or batch_size < 1:
        raise ConfigError(f"pretrain lr={lr}, batch_size={batch_size}: expected lr > 0 and batch_size >= 1")
    overrides = {k: v for k, v in (model_options or {}).items() if k != "num_classes"}
    base_cfg = model_config(model_name, preset, **overrides)
    channels, size = tuple(base_cfg.channels), int(base_cfg.input_size)
    options = preprocess or PreprocessConfig()
    sources = [parse_source(s) for s in split_sources(macro_dataset)]
    if not sources:
        raise ConfigError("no macro source given; e.g. 'synthetic-macro', 'folder:PATH' or 'ckplus:PATH'")
    indexed = [_index_source(s) for s in sources]
    prep = {k: v for k, v in dataclasses.asdict(options).items() if k not in ("channels", "input_size")}
    recipe = dict(
        version=PRETRAIN_VERSION, model=model_name, preset=preset, arch=_arch(base_cfg),
        sources=[s.spec() for s in sources], data=[fp for _, fp, _ in indexed], preprocess=prep,
        epochs=epochs, seed=seed, lr=lr, batch_size=batch_size, weight_decay=weight_decay,
    )
    key = hashlib.sha256(json.dumps(recipe, sort_keys=True, default=str).encode()).hexdigest()[:16]
    path = checkpoints_dir() / "pretrain" / f"{key}.pt"
    path.parent.mkdir(parents=True, exist_ok=True)
    with _exclusive(path.with_suffix(".lock")):  # two workers asking at once train it once
        if path.exists() and not force:
            try:
                read_checkpoint(path)
                if log:
                    log(f"reusing pre-trained checkpoint {path}")
                return path
            except Exception as exc:  # a truncated or foreign file is retrained, never served
                if log:
                    log(f"checkpoint {path} unreadable ({exc}); pre-training again")
        _train(path, key, recipe, model_name, preset, overrides, sources, indexed, channels, size, options,
               epochs, seed, lr, batch_size, weight_decay, device, workers, log, progress)
    return path


@contextlib.contextmanager
def _exclusive(lock_path: Path) -> Iterator[None]:
    """An inter-process lock (flock; released by the OS if the holder dies)."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows: no lock, atomic writes still hold
        yield
        return
    with open(lock_path, "a+") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _train(path: Path, key: str, recipe: dict[str, Any], model_name: str, preset: str, overrides: dict[str, Any],
           sources: list[MacroSource], indexed: list[Any], channels: tuple[str, ...], size: int,
           options: PreprocessConfig, epochs: int, seed: int, lr: float, batch_size: int, weight_decay: float,
           device: str, workers: int, log: Log | None, progress: Callable[[int, int, float], None] | None) -> None:
    from mer_core.models import create_model

    t0 = time.time()
    data = load_macro(sources, channels, size, options, indexed=indexed, workers=workers, log=log)
    classes = sorted(set(data.labels))
    if len(classes) < 2:
        raise DatasetError(f"macro data {recipe['sources']} has one class only ({classes}); pre-training needs >= 2")
    y = np.array([classes.index(v) for v in data.labels], np.int64)
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    dev = _resolve_device(device)
    model = create_model(model_name, preset, **overrides, num_classes=len(classes)).to(dev)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs)
    xt, yt = torch.from_numpy(data.x), torch.from_numpy(y)
    history = []
    for epoch in range(1, epochs + 1):
        model.train()
        order = torch.randperm(len(yt), generator=gen)
        loss_sum, correct = 0.0, 0
        for i in range(0, len(order), batch_size):
            idx = order[i : i + batch_size]
            if len(idx) < 2 and len(order) > 1:  # BatchNorm needs two samples
                continue
            xb = _augment(xt[idx], channels, gen).to(dev)
            yb = yt[idx].to(dev)
            opt.zero_grad(set_to_none=True)
            logits = model(xb)
            loss = F.cross_entropy(logits, yb)
            if not torch.isfinite(loss):
                raise FloatingPointError(f"pre-training loss became {loss.item()} at epoch {epoch}; lower lr={lr}")
            loss.backward()
            opt.step()
            loss_sum += float(loss.detach()) * len(idx)
            correct += int((logits.argmax(1) == yb).sum())
        sched.step()
        row = dict(epoch=epoch, loss=loss_sum / len(yt), acc=correct / len(yt))
        history.append(row)
        if log:
            log(f"pretrain epoch {epoch}/{epochs}: loss {row['loss']:.4f} acc {row['acc']:.3f}")
        if progress:
            progress(epoch, epochs, row["loss"])
    info = dict(
        recipe, key=key, classes=classes, samples=len(y), report=data.report, history=history,
        seconds=round(time.time() - t0, 2), device=str(dev), created=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    )
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    ckpt = {"state_dict": state, "config": _arch(model.config) | {"num_classes": len(classes)},
            "model": model_name, "pretrain": json.loads(json.dumps(info, default=str))}
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    torch.save(ckpt, tmp)
    os.replace(tmp, path)  # atomic: a reader never sees half a file
    if log:
        log(f"pre-trained on {len(y)} samples, {len(classes)} classes in {info['seconds']} s -> {path}")


def pretrain_for_experiment(cfg: Any, *, log: Log | None = None,
                            progress: Callable[[int, int, float], None] | None = None) -> Path | None:
    """The checkpoint an :class:`~mer_core.config.ExperimentConfig` asks for (None when ``pretrain`` is '').

    The pre-trained model gets exactly the fine-tuned model's architecture:
    ``model_options`` plus the preprocessing's channel list and input size
    when those override the model's defaults.
    """
    if not cfg.pretrain:
        return None
    options = dict(cfg.model_options)
    if cfg.preprocess.channels:
        options["channels"] = tuple(cfg.preprocess.channels)
    if cfg.preprocess.input_size:
        options["input_size"] = cfg.preprocess.input_size
    return pretrain(cfg.model, cfg.preset, cfg.pretrain, cfg.pretrain_epochs, cfg.seed, model_options=options,
                    preprocess=cfg.preprocess, device=cfg.device, log=log, progress=progress)


# --- fine-tuning helpers ------------------------------------------------------


def prepare_finetune(model: nn.Module, cfg: Any, checkpoint: str | Path | None = None) -> list[dict[str, Any]] | None:
    """A fold's fine-tuning set-up from an ExperimentConfig; returns optimiser param groups.

    None when ``cfg.pretrain`` is empty (train from scratch). Otherwise:
    the checkpoint (given, or :func:`pretrain_for_experiment`, which reuses
    the stored one) is loaded into the backbone, ``cfg.freeze`` is applied,
    and the groups put the head at ``cfg.lr`` and the backbone at
    ``cfg.lr * cfg.backbone_lr_mult``.
    """
    if not cfg.pretrain:
        return None
    path = checkpoint or pretrain_for_experiment(cfg)
    load_pretrained_backbone(model, path)
    apply_freeze(model, cfg.freeze)
    return param_groups(model, cfg.lr, cfg.backbone_lr_mult)



def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load a checkpoint safely (``weights_only=True``) and check its keys."""
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"pre-trained checkpoint not found: {path}")
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(ckpt, dict) or not {"state_dict", "config"} <= set(ckpt):
        raise ConfigError(f"{path}: not a checkpoint of this project (expected keys 'state_dict' and 'config')")
    return ckpt


def head_module(model: nn.Module) -> tuple[str, nn.Module]:
    """(qualified name, module) of the classifier head that fine-tuning replaces."""
    head = model.head_module() if hasattr(model, "head_module") else None
    if head is None:
        for name in ("head", "classifier", "fc"):
            if isinstance(getattr(model, name, None), nn.Module):
                head = getattr(model, name)
                break
    for name, module in model.named_modules():
        if module is head and name:
            return name, module
    raise ConfigError(f"{type(model).__name__}: no classifier head found (expected head_module() or .head)")


def load_pretrained_backbone(model: nn.Module, checkpoint_path: str | Path) -> dict[str, Any]:
    """Copy every pre-trained weight except the head into ``model``.

    The checkpoint's architecture must equal the model's (all config fields
    but ``num_classes`` and the dropout rates); a mismatch raises, naming
    the fields. Returns a
    summary: loaded and skipped tensor names and the checkpoint's
    pre-training info.
    """
    ckpt = read_checkpoint(checkpoint_path)
    cfg = getattr(model, "config", None)
    if cfg is not None:
        mine, theirs = _arch(cfg), {k: v for k, v in ckpt["config"].items() if k != "num_classes"}
        diff = sorted(k for k in set(mine) | set(theirs) if mine.get(k) != theirs.get(k) and k not in NOT_ARCH)
        if diff:
            detail = ", ".join(f"{k}: checkpoint {theirs.get(k)!r} vs model {mine.get(k)!r}" for k in diff)
            raise ConfigError(f"{checkpoint_path}: pre-trained architecture differs from the model ({detail})")
    prefix = head_module(model)[0] + "."
    state = {k: v for k, v in ckpt["state_dict"].items() if not k.startswith(prefix)}
    result = model.load_state_dict(state, strict=False)
    bad_missing = [k for k in result.missing_keys if not k.startswith(prefix)]
    if bad_missing or result.unexpected_keys:
        raise ConfigError(
            f"{checkpoint_path}: weights do not fit the model (missing {bad_missing[:5]}, "
            f"unexpected {list(result.unexpected_keys)[:5]})"
        )
    return dict(loaded=sorted(state), skipped=sorted(set(ckpt["state_dict"]) - set(state)),
                pretrain=ckpt.get("pretrain", {}))


def apply_freeze(model: nn.Module, mode: str) -> list[str]:
    """Freeze parameters for fine-tuning; return the frozen parameter names.

    * ``none``: everything trains;
    * ``early``: the model's ``early_modules()`` (DenseAttention: stem and
      first dense stage; other models: their first child module) are frozen;
    * ``all_but_head``: only the classifier head trains (a linear probe).

    Frozen means ``requires_grad=False``. BatchNorm running statistics still
    follow the micro data in training mode, which keeps training and
    evaluation consistent and adapts normalisation to the smaller motion
    range of micro-expressions. Calling it again resets earlier freezing.
    """
    if mode not in FREEZE_MODES:
        raise ConfigError(f"freeze={mode!r}: expected one of {', '.join(FREEZE_MODES)}")
    for p in model.parameters():
        p.requires_grad_(True)
    if mode == "none":
        return []
    if mode == "early":
        modules = model.early_modules() if hasattr(model, "early_modules") else list(model.children())[:1]
        frozen_ids = {id(p) for m in modules for p in m.parameters()}
    else:
        head_ids = {id(p) for p in head_module(model)[1].parameters()}
        frozen_ids = {id(p) for p in model.parameters() if id(p) not in head_ids}
    names = []
    for name, p in model.named_parameters():
        if id(p) in frozen_ids:
            p.requires_grad_(False)
            names.append(name)
    return names


def param_groups(model: nn.Module, lr: float, backbone_lr_mult: float = 1.0) -> list[dict[str, Any]]:
    """Optimiser groups: the head at ``lr``, the (trainable) backbone at ``lr * backbone_lr_mult``.

    Frozen parameters are left out; a group with no parameters (or a
    backbone multiplier of 0) is omitted. Each group has a ``name``.
    """
    if backbone_lr_mult < 0:
        raise ConfigError(f"backbone_lr_mult={backbone_lr_mult}: expected >= 0")
    head_ids = {id(p) for p in head_module(model)[1].parameters()}
    head = [p for p in model.parameters() if id(p) in head_ids and p.requires_grad]
    backbone = [p for p in model.parameters() if id(p) not in head_ids and p.requires_grad]
    groups = []
    if backbone and backbone_lr_mult > 0:
        groups.append({"params": backbone, "lr": lr * backbone_lr_mult, "name": "backbone"})
    if head:
        groups.append({"params": head, "lr": lr, "name": "head"})
    if not groups:
        raise ConfigError("no trainable parameters left (everything frozen); use freeze='all_but_head' or 'none'")
    return groups
