"""What a job will run and how long it should take, before it is queued.

:func:`plan` indexes the dataset and resolves the model config so that the
errors a worker would hit in its first second surface in the form instead;
:func:`estimate_seconds` turns measured throughput into a time estimate.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from mer_core.config import ExperimentConfig
from mer_core.errors import MerError
from mer_core.paths import repo_root


# Rough training cost in ms per sample per epoch on one CPU thread, used when no
# benchmark file (bench_out/*.json, written by benchmarks/bench_*.py) covers the
# model preset. Measured once at the cpu presets (forward+backward+AdamW step,
# batch 16, torch.set_num_threads(1)) on the shared 2-core build machine under a
# load average of ~16, so they are upper bounds; 'paper' presets are far slower.
ROUGH_MS_PER_SAMPLE = {"baseline": 1.3, "ststnet": 1.2, "dense_attention": 35.0, "mfdan": 5.2}
DEFAULT_MS_PER_SAMPLE = 10.0


def bench_ms_per_sample(model: str, preset: str, bench_dir: Path | None = None) -> tuple[float, str]:
    """(train ms per sample-epoch, where the figure comes from) for a model preset."""
    folder = bench_dir or repo_root() / "bench_out"
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        try:
            data = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            continue
        if not isinstance(data, dict):
            continue
        for t in data.get("timings", []):  # bench_mfdan layout: a list of rows
            if t.get("model") == model and t.get("preset") == preset and t.get("train_ms_per_sample"):
                return float(t["train_ms_per_sample"]), f"measured ({path.name})"
        timing = data.get("timing", {}) if data.get("model") == model else {}  # bench_dense_attention layout
        if isinstance(timing, dict) and isinstance(timing.get(preset), dict):
            ms = timing[preset].get("fwd_bwd_ms_per_sample") or timing[preset].get("train_ms_per_sample")
            if ms:
                return float(ms), f"measured ({path.name})"
    if model in ROUGH_MS_PER_SAMPLE:
        return ROUGH_MS_PER_SAMPLE[model], "rough constant"
    return DEFAULT_MS_PER_SAMPLE, "default guess"


def estimate_seconds(model: str, preset: str, *, n_samples: int, n_folds: int, epochs: int) -> tuple[float, str]:
    """Training time of a run: folds x epochs x training samples per fold x cost per sample.

    Preprocessing (cached after the first run) and evaluation are not counted.
    """
    ms, source = bench_ms_per_sample(model, preset)
    n_train = n_samples - n_samples / max(n_folds, 1)
    return n_folds * epochs * n_train * ms / 1000.0, source


def plan(config: ExperimentConfig) -> dict[str, Any]:
    """What a config will run, without training: samples, subjects, folds, classes, estimated time.

    Indexes the dataset (may generate the synthetic set the first time) and
    resolves the model config, so the errors a worker would hit in its first
    second are raised here instead, as :class:`MerError` naming the problem.
    """
    from mer_core.training.engine import load_table, resolve_model_config
    from mer_core.training.experiment import complete_config
    from mer_core.training.protocols import make_folds

    config = complete_config(config)
    table, classes, notes = load_table(config)
    if len(classes) < 2:
        raise MerError(f"dataset {config.dataset!r} has a single class {list(classes)}; need at least 2")
    mcfg = resolve_model_config(config, len(classes))
    val = config.val_subjects if config.selection == "early_stop" else 0
    folds = make_folds(table, config.protocol, folds=config.folds, holdout_fraction=config.holdout_fraction,
                       val_subjects=val, seed=config.seed)
    seconds, source = estimate_seconds(config.model, config.preset, n_samples=len(table), n_folds=len(folds),
                                       epochs=config.epochs)
    if config.protocol == "holdout":  # one split: the formula's (N - N/folds) overestimates the training share
        seconds = config.epochs * len(folds[0].train_idx) * bench_ms_per_sample(config.model, config.preset)[0] / 1000
    return {
        "n_samples": len(table), "n_subjects": int(table["subject"].nunique()), "n_folds": len(folds),
        "classes": {c: int((table["label"] == c).sum()) for c in classes}, "notes": notes,
        "input_size": int(mcfg.input_size), "channels": list(mcfg.channels), "class_set": config.class_set,
        "estimated_seconds": seconds, "estimate_source": source,
    }
