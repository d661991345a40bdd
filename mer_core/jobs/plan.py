"""What a job will run and how long it should take, before it is queued.

:func:`plan` indexes the dataset and resolves the model config so that the
errors a worker would hit in its first second surface in the form instead;
:func:`estimate_parts` turns the measured figures of ``mer bench``
(``mer_core/benchmarking/data/<machine kind>.json``) into a time estimate:
preprocessing (cold or cached, the cache is checked), pre-training, training
and, with ``final_model = true``, the final model (:func:`final_model_seconds`).
A fold that trains several models (nested epoch choice, seeds per fold) counts
each of them (:func:`training_passes`).
"""
from __future__ import annotations

import os
import statistics
from typing import Any, Iterable, Mapping

import numpy as np

from mer_core.config import ExperimentConfig
from mer_core.errors import MerError
from mer_core.benchmarking.bench_report import LOSO_TIMING_KEYS, find_results
from mer_core.preprocess.cache_prune import count_cached


# Labelled fallback, used only when no shipped benchmark report (benchmarking/data/*.json) matches
# this machine's device family at all (see bench_report.find_results): rough
# training cost in ms per sample-epoch at the cpu presets on one thread of the
# shared 2-core build machine under load (upper bounds), and a preprocessing guess.
ROUGH_MS_PER_SAMPLE = {"baseline": 1.3, "ststnet": 1.2, "dense_attention": 35.0, "mfdan": 5.2}
DEFAULT_MS_PER_SAMPLE = 10.0
ROUGH_PREPROCESS_MS = {"cold": 60.0, "cached": 0.5}
ROUGH_LABEL = "rough constant, not measured"


def _results(results: dict[str, Any] | None) -> tuple[dict[str, Any] | None, str]:
    if results is not None:
        return results, f"measured ({results['machine']['kind']})"
    return find_results()


def _median(row: dict[str, Any], key: str) -> float | None:
    value = row.get(key)
    return value.get("median") if isinstance(value, dict) else value


def bench_ms_per_sample(model: str, preset: str, executor: str | None = None,
                        results: dict[str, Any] | None = None) -> tuple[float, str]:
    """(training ms per sample-epoch, where the figure comes from) for a model preset.

    From the benchmark report: a measured LOSO of the model preset (the same
    executor preferred); else its forward+backward figure scaled by the LOSO /
    forward+backward ratio of the models that have both; a rough constant only
    when no report matches this machine.
    """
    report, label = _results(results)
    if report is None:
        return ROUGH_MS_PER_SAMPLE.get(model, DEFAULT_MS_PER_SAMPLE), f"{ROUGH_LABEL} ({label})"
    rows = [r for r in report["loso"] if r["model"] == model and r["preset"] == preset and r["train_ms_per_sample_epoch"]]
    if rows:
        row = next((r for r in rows if r["executor"] == executor), rows[0])
        return float(row["train_ms_per_sample_epoch"]), f"{label}, LOSO {row['executor']} executor"
    fwd = {(r["model"], r["preset"]): _median(r, "ms_per_sample") for r in report["fwd_bwd"]}
    if fwd.get((model, preset)):
        ratios = [r["train_ms_per_sample_epoch"] / fwd[(r["model"], r["preset"])] for r in report["loso"]
                  if r["train_ms_per_sample_epoch"] and fwd.get((r["model"], r["preset"]))]
        ratio = statistics.median(ratios) if ratios else 1.0
        return float(fwd[(model, preset)]) * ratio, f"{label}, forward+backward x {ratio:.2f} (LOSO overhead)"
    return ROUGH_MS_PER_SAMPLE.get(model, DEFAULT_MS_PER_SAMPLE), f"{ROUGH_LABEL} ({label} has no {model}/{preset})"


def _timed(row: dict[str, Any]) -> bool:
    """Whether a LOSO row has the timing model (older ``mer bench`` reports lack it)."""
    return all(k in row for k in LOSO_TIMING_KEYS) and all(_median(row, k) is not None for k in LOSO_TIMING_KEYS)


def _timing(row: dict[str, Any]) -> dict[str, float]:
    return {"startup_s": float(_median(row, "startup_s")), "fold_setup_s": float(_median(row, "fold_setup_s")),
            "ms": float(_median(row, "steady_ms_per_sample_epoch")), "parallel": int(row["parallel"])}


def _describe(t: dict[str, float]) -> str:
    return (f"start-up {t['startup_s']:.1f} s + folds / {t['parallel']} x ({t['fold_setup_s']:.2f} s + epochs x "
            f"clips x {t['ms']:.4f} ms)")


def bench_timing(model: str, preset: str, executor: str | None = None,
                 results: dict[str, Any] | None = None) -> tuple[dict[str, float] | None, str]:
    """The measured timing model of a model preset: ({startup_s, fold_setup_s, ms, parallel}, source).

    From the model's LOSO row (the same executor preferred): fixed start-up
    seconds, per-fold set-up seconds, steady-state ms per sample-epoch of one
    fold and the folds trained at a time. A model without a LOSO row: its
    forward+backward ms x the median steady / forward+backward ratio of the
    rows of the same executor, with their median start-up and set-up.
    (None, why) when the report predates the timing model (old rows carry only
    ``train_ms_per_sample_epoch``: :func:`estimate_seconds` then uses it).
    """
    report, label = _results(results)
    if report is None:
        return None, label
    own = [r for r in report["loso"] if r["model"] == model and r["preset"] == preset and r["train_ms_per_sample_epoch"]]
    if own:
        row = next((r for r in own if r["executor"] == executor), own[0])
        if not _timed(row):
            return None, f"{label}: LOSO row without start-up / steady-state timing"
        t = _timing(row)
        return t, f"{label}, LOSO {row['executor']} executor: {_describe(t)}"
    timed = [r for r in report["loso"] if _timed(r)]
    fwd = {(r["model"], r["preset"]): _median(r, "ms_per_sample") for r in report["fwd_bwd"]}
    if not timed or not fwd.get((model, preset)):
        return None, f"{label}: no timed LOSO row for {model}/{preset}"
    ex = executor if any(r["executor"] == executor for r in timed) else timed[0]["executor"]
    same = [r for r in timed if r["executor"] == ex]
    ratios = [_median(r, "steady_ms_per_sample_epoch") / fwd[(r["model"], r["preset"])] for r in same
              if fwd.get((r["model"], r["preset"]))]
    if not ratios:
        return None, f"{label}: no {ex} LOSO row with a forward+backward figure"
    ratio = statistics.median(ratios)
    t = {"startup_s": statistics.median(_median(r, "startup_s") for r in same),
         "fold_setup_s": statistics.median(_median(r, "fold_setup_s") for r in same),
         "ms": float(fwd[(model, preset)]) * ratio, "parallel": min(int(r["parallel"]) for r in same)}
    return t, f"{label}, forward+backward x {ratio:.2f} (steady LOSO overhead, {ex} executor): {_describe(t)}"


def executor_that_runs(executor: str | None, n_folds: int, workers: int | None) -> str | None:
    """The executor that will actually run a job's folds, whose measurements apply (a process pool of one
    worker runs them in-process)."""
    if executor == "process" and (n_folds <= 1 or workers == 1):
        return "sequential"
    return executor


def training_passes(config: ExperimentConfig, train_subjects: float | None = None) -> float:
    """One fold's training work in units of one fit of ``epochs`` over all its training clips.

    ``seeds_per_fold`` models each train on all of them (``S``). Nested selection
    (``selection = 'nested'``) first trains one model per inner fold, each on the
    training clips outside its inner validation subjects: ``K`` inner folds hold
    ``(K - 1) / K`` of the clips each, so ``K - 1`` fits' worth in all, where ``K``
    is ``nested_folds``, or the fold's ``train_subjects`` for ``nested_folds = 0``
    (leave one training subject out). So ``S + K - 1``; 1 for a plain fold.
    An upper bound under nested: the seeds train the chosen epoch count, at most
    ``epochs``. Forward passes (inner validation, test predictions) are not counted.
    """
    passes = float(config.seeds_per_fold)
    if config.selection == "nested":
        if config.nested_folds:
            inner = float(config.nested_folds)
        elif train_subjects is not None:
            inner = float(train_subjects)
        else:
            raise MerError("nested_folds=0 (leave one training subject out): the estimate needs the number of "
                           "training subjects per fold")
        passes += max(inner - 1.0, 0.0)
    return passes


def passes_words(config: ExperimentConfig, train_subjects: float | None = None) -> str:
    """What :func:`training_passes` counts, in words ('' for one model per fold)."""
    if config.selection != "nested" and config.seeds_per_fold == 1:
        return ""
    parts = []
    if config.selection == "nested":
        k = float(config.nested_folds or train_subjects or 0)
        parts.append(f"{k:g} inner fits to choose the epoch ({_worth(max(k - 1, 0))}: each leaves out "
                     "its inner validation subjects)")
    s = config.seeds_per_fold
    parts.append(f"{s} models (seeds averaged)" if s > 1 else "1 model")
    return f"each fold trains {' + '.join(parts)} = {_worth(training_passes(config, train_subjects))}"


def _worth(fits: float) -> str:
    return f"{fits:g} fit's worth" if fits == 1 else f"{fits:g} fits' worth"


def estimate_seconds(model: str, preset: str, *, n_samples: int, n_folds: int, epochs: int,
                     executor: str | None = None, results: dict[str, Any] | None = None,
                     workers: int | None = None, train_samples: int | None = None,
                     passes: float = 1.0) -> tuple[float, str]:
    """Training time: start-up + folds / parallel x (fold set-up + passes x epochs x training clips x steady ms).

    The parts come from :func:`bench_timing`; ``parallel`` is the measured
    folds at a time, at most ``n_folds`` and ``workers`` (0 / None: auto).
    A report without them (older ``mer bench``): folds x epochs x training
    clips x ``train_ms_per_sample_epoch`` (:func:`bench_ms_per_sample`).
    ``train_samples``: training clips per fold (a holdout split's); by default
    the LOSO/k-fold share ``N - N / folds``. ``passes``: fits' worth of
    training per fold (:func:`training_passes`; 1 for one model per fold).
    Preprocessing and pre-training are added by :func:`estimate_parts` (and :func:`plan`).
    """
    n_train = n_samples - n_samples / max(n_folds, 1) if train_samples is None else train_samples
    timing, source = bench_timing(model, preset, executor_that_runs(executor, n_folds, workers), results)
    if timing is not None:
        parallel = max(1, min(timing["parallel"], max(n_folds, 1), workers or timing["parallel"]))
        per_fold = timing["fold_setup_s"] + passes * epochs * n_train * timing["ms"] / 1000.0
        return timing["startup_s"] + n_folds / parallel * per_fold, source
    ms, source = bench_ms_per_sample(model, preset, executor, results)
    return n_folds * passes * epochs * n_train * ms / 1000.0, source


def final_model_seconds(model: str, preset: str, *, n_samples: int, epochs: int, executor: str | None = None,
                        results: dict[str, Any] | None = None) -> tuple[float, str]:
    """The final model's training (``final_model = true``): one more fit of ``epochs`` over all ``n_samples``.

    It trains in the run's own process after the folds: one fold's set-up plus
    ``epochs`` x ``n_samples`` at the sequential executor's measured steady cost
    (:func:`bench_timing`); an older report without it: its cost per sample-epoch.
    Under early_stop or nested selection it trains the folds' median selected
    epoch, at most ``epochs``: this is the upper bound. It is one model whatever
    ``seeds_per_fold`` says.
    """
    timing, source = bench_timing(model, preset, "sequential", results)
    if timing is not None:
        return timing["fold_setup_s"] + epochs * n_samples * timing["ms"] / 1000.0, source
    ms, source = bench_ms_per_sample(model, preset, executor, results)
    return epochs * n_samples * ms / 1000.0, source


def preprocess_ms_per_clip(config: ExperimentConfig, results: dict[str, Any] | None = None) -> tuple[float, float, str]:
    """(cold, cached) ms per clip for the config's model inputs, and the source.

    The model's own measured preprocessing when the report has it at the same
    flow method and input size; else the flow table at the nearest size.
    """
    report, label = _results(results)
    if report is None:
        return ROUGH_PREPROCESS_MS["cold"], ROUGH_PREPROCESS_MS["cached"], f"{ROUGH_LABEL} ({label})"
    method, size = config.preprocess.flow_method, int(config.preprocess.input_size)
    for r in report["loso"]:
        if (r["model"], r["preset"], r.get("flow_method"), r.get("input_size")) == (config.model, config.preset, method, size):
            return float(r["preprocess_cold_ms_per_clip"]), float(r["preprocess_cached_ms_per_clip"]), \
                f"{label}, {config.model} inputs"
    flows = [r for r in report["preprocess"] if r["method"] == method]
    if flows:
        r = min(flows, key=lambda r: abs(r["size"] - size))
        return float(_median(r, "cold_ms_per_clip")), float(_median(r, "cached_ms_per_clip")), \
            f"{label}, {method} flow at {r['size']} px"
    return ROUGH_PREPROCESS_MS["cold"], ROUGH_PREPROCESS_MS["cached"], f"{ROUGH_LABEL} ({label} has no {method})"


def pretrain_seconds(config: ExperimentConfig, results: dict[str, Any] | None = None) -> tuple[float, str]:
    """Macro pre-training time (0 without ``pretrain``), counted in full: a cached checkpoint makes it ~0."""
    if not config.pretrain:
        return 0.0, "no pre-training"
    report, label = _results(results)
    rows = [r for r in (report or {}).get("pretrain", []) if r["model"] == config.model] if report else []
    if not rows:
        n_guess = 300  # macro clips of the default synthetic-macro set, roughly
        ms, source = bench_ms_per_sample(config.model, config.preset, results=results)
        return n_guess * config.pretrain_epochs * ms / 1000.0, f"{source}; macro size guessed ({n_guess} clips)"
    row = rows[0]
    n = row["n_samples"] or 1
    ms = row["ms_per_sample_epoch"]
    if config.preset != row["preset"]:  # scale by the two presets' forward+backward cost
        ms *= bench_ms_per_sample(config.model, config.preset, results=results)[0] / max(
            bench_ms_per_sample(config.model, row["preset"], results=results)[0], 1e-9)
    return (n * row["preprocess_ms_per_clip"] + n * config.pretrain_epochs * ms) / 1000.0, \
        f"{label}, pre-training {n} macro clips (counted in full; a cached checkpoint makes it ~0)"


def estimate_parts(config: ExperimentConfig, *, n_samples: int, n_folds: int, n_cached: int = 0,
                   train_samples: int | None = None, results: dict[str, Any] | None = None,
                   train_subjects: float | None = None) -> dict[str, Any]:
    """Preprocessing (cached clips at the cached cost, the others cold), pre-training, training and final-model seconds.

    ``final_s`` is 0 unless ``config.final_model`` (see :func:`final_model_seconds`).

    ``train_samples``: the training-set size of a single split (holdout);
    by default the LOSO/k-fold share ``N - N / folds`` of each of ``n_folds``.
    ``train_subjects``: training subjects per fold, for nested selection with
    ``nested_folds = 0`` (by default ``n_folds - 1``, as under LOSO).
    """
    if results is None:
        results = find_results()[0]
    single = train_samples is not None  # one split (holdout) of train_samples clips
    if train_subjects is None:
        train_subjects = max(n_folds - 1, 1)
    passes = training_passes(config, train_subjects)
    train, train_src = estimate_seconds(config.model, config.preset, n_samples=n_samples,
                                        n_folds=1 if single else n_folds, epochs=config.epochs,
                                        executor=config.executor, results=results, workers=config.workers,
                                        train_samples=train_samples, passes=passes)
    if passes != 1.0:
        train_src += f"; {passes_words(config, train_subjects)}"
    cold, cached, pre_src = preprocess_ms_per_clip(config, results)
    n_cached = min(max(n_cached, 0), n_samples)
    preprocess = ((n_samples - n_cached) * cold + n_cached * cached) / 1000.0
    pretrain, pt_src = pretrain_seconds(config, results)
    final, final_src = 0.0, "no final model"
    if config.final_model:
        final, final_src = final_model_seconds(config.model, config.preset, n_samples=n_samples, epochs=config.epochs,
                                               executor=config.executor, results=results)
    return {"train_s": train, "preprocess_s": preprocess, "pretrain_s": pretrain, "final_s": final,
            "total_s": train + preprocess + pretrain + final, "n_cached": n_cached, "n_uncached": n_samples - n_cached,
            "sources": {"train": train_src, "preprocess": pre_src, "pretrain": pt_src, "final": final_src}}


def plan(config: ExperimentConfig) -> dict[str, Any]:
    """What a config will run, without training: samples, subjects, folds, classes, estimated time.

    Indexes the dataset (may generate the synthetic set the first time) and
    resolves the model config, so the errors a worker would hit in its first
    second are raised here instead, as :class:`MerError` naming the problem.
    """
    from mer_core.training.engine import load_table  # lazy: loads torch and scikit-learn (about 2 s)
    from mer_core.training.experiment import complete_config, resolve_model_config  # lazy: loads torch (about 2 s)
    from mer_core.training.protocols import make_folds  # lazy: loads scikit-learn and scipy (about 1 s)

    config = complete_config(config)
    table, classes, notes = load_table(config)
    if len(classes) < 2:
        raise MerError(f"dataset {config.dataset!r} has a single class {list(classes)}; need at least 2")
    mcfg = resolve_model_config(config, len(classes))
    val = config.val_subjects if config.selection == "early_stop" else 0
    nested = config.nested_folds if config.selection == "nested" else None  # refused here as the run would be
    folds = make_folds(table, config.protocol, folds=config.folds, holdout_fraction=config.holdout_fraction,
                       val_subjects=val, seed=config.seed, nested_folds=nested)

    n_cached = count_cached(table, tuple(mcfg.channels), int(mcfg.input_size), config.preprocess)
    single = len(folds[0].train_idx) if config.protocol == "holdout" else None  # one split, not N - N/folds
    subjects = table["subject"].to_numpy()
    train_subjects = float(np.mean([len(set(subjects[f.train_idx])) for f in folds]))
    parts = estimate_parts(config, n_samples=len(table), n_folds=len(folds), n_cached=n_cached, train_samples=single,
                           train_subjects=train_subjects)
    return {
        "n_samples": len(table), "n_subjects": int(table["subject"].nunique()), "n_folds": len(folds),
        "classes": {c: int((table["label"] == c).sum()) for c in classes}, "notes": notes,
        "input_size": int(mcfg.input_size), "channels": list(mcfg.channels), "class_set": config.class_set,
        "estimated_seconds": parts["total_s"], "estimate_source": parts["sources"]["train"], "estimate": parts,
        "min_train": int(min((len(f.train_idx) for f in folds), default=0)), "train_subjects": train_subjects,
    }


HIGH_LOAD = 1.0  # a 1-minute load average above this many runnable processes per core is "high"


def machine_load() -> tuple[float, int, bool]:
    """(1-minute load average, CPU cores, whether it is high) of this machine; (0, cores, False) where unknown.

    Training estimates are measured on an idle machine; under a load above
    ``HIGH_LOAD`` per core every job shares the cores and takes longer.
    """
    cores = os.cpu_count() or 1
    try:
        load = float(os.getloadavg()[0])
    except (OSError, AttributeError):
        return 0.0, cores, False
    return load, cores, load > HIGH_LOAD * cores


def identical_jobs(config: ExperimentConfig, jobs: Iterable[Mapping[str, Any]]) -> list[str]:
    """Ids of the given jobs (rows with "id" and "config", a mapping) whose config is ``config`` exactly
    (same :meth:`ExperimentConfig.stable_hash`: the same run would be trained twice)."""
    want = config.stable_hash()
    same = []
    for job in jobs:
        try:
            other = ExperimentConfig.from_dict(dict(job.get("config") or {}))
        except (MerError, TypeError, ValueError):
            continue
        if other.stable_hash() == want:
            same.append(str(job["id"]))
    return same
