"""``mer bench``: the benchmark suite whose report the estimates, docs/benchmarks.md and the dashboard read.

Sections (each a list of rows in the report, see :mod:`mer_core.benchmarking.bench_report`):

* ``preprocess``: per clip cost of DIS, Farneback and TV-L1 (channels flow_u,
  flow_v, strain) at 128 and 224 px, cold (empty cache: compute + write) and
  cached (the second pass), one worker;
* ``fwd_bwd``: forward+backward training samples/s per model and preset
  (:func:`step_seconds`, the one forward/backward timer the benchmark
  scripts share, on ``torch.utils.benchmark``);
* ``loso``: a whole LOSO per model, preset and executor (sequential and
  process unless asked otherwise) on the default synthetic set, at
  the cpu preset, and on a CUDA device at the paper preset too, with
  its UF1/UAR, wall time, CPU seconds and peak memory of the whole process
  tree (pool workers included, :class:`~mer_core.benchmarking.proctree.TreeMonitor`),
  the model's cold and cached preprocessing per clip, and the training cost
  the job estimate uses: start-up, per-fold set-up and steady-state cost per
  sample-epoch, from the epoch events' time stamps (:func:`loso_row`);
* ``pretrain``: macro pre-training cost per sample-epoch (models whose paper
  preset pre-trains);
* ``pages``: server-side render time of the Run, Compare and Leaderboard
  pages for a 442-prediction run (``benchmarks/bench_pages.py`` in a child
  process: it needs Streamlit, which the library never imports, and the
  test helpers that drive the pages, so only a source checkout has it; an
  installed package skips the section and says so when the suite starts).

Every repeated figure is the median with min and max. Everything runs in a
private temporary cache (``MER_CACHE``), so the user's runs and caches are
neither read nor filled.
"""
from __future__ import annotations

import contextlib
import dataclasses
import json
import multiprocessing as mp
import os
import queue
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import torch
from torch.utils import benchmark

from mer_core.config import EXECUTORS, ExperimentConfig, PreprocessConfig
from mer_core.datasets.registry import index_dataset
from mer_core.errors import MerError
from mer_core.benchmarking import bench_report
from mer_core.benchmarking.bench_report import PAGES_SCRIPT, SCHEMA, machine_info, pages_skip_reason, spread, validate
from mer_core.benchmarking.proctree import TreeMonitor
from mer_core.models.registry import create_model, list_models, list_presets, train_defaults
from mer_core.paths import cache_root, repo_root
from mer_core.preprocess.pipeline import prepare_inputs
from mer_core.store.db import RunStore
from mer_core.training.engine import prepare_experiment, run_experiment
from mer_core.training.executors import resolve_workers
from mer_core.training.experiment import resolve_experiment
from mer_core.training.macro import index_source, parse_source, split_sources
from mer_core.training.pretrain import pretrain

Log = Callable[[str], None]
FLOW3 = ("flow_u", "flow_v", "strain")


@dataclass(frozen=True)
class BenchPlan:
    """What one ``mer bench`` measures; :func:`quick_plan` and :func:`full_plan` are the two shipped."""

    quick: bool = False
    models: tuple[str, ...] = ()  # () = every registered model
    fwd_presets: tuple[str, ...] = ("cpu", "paper")
    fwd_batch: int = 16
    fwd_seconds: float = 3.0  # measured time per model and preset (torch.utils.benchmark's blocked_autorange)
    flow_methods: tuple[str, ...] = ("dis", "farneback", "tvl1")
    flow_sizes: tuple[int, ...] = (128, 224)
    preprocess_clips: int = 8
    preprocess_reps: int = 3
    loso_models: tuple[str, ...] = ()  # () = every registered model
    executors: tuple[str, ...] = ()  # () = sequential and process
    loso_presets: tuple[str, ...] = ()  # () = cpu, and on a CUDA device also paper (where the model has it)
    # models run on every executor; the others on the default one only (None = every model on every executor)
    executor_models: tuple[str, ...] | None = None
    loso_epochs: int = 0  # 0 = the preset's
    loso_reps: int = 3
    dataset_options: dict[str, Any] = field(default_factory=dict)  # the synthetic set's; {} = the default set
    pretrain_models: tuple[str, ...] | None = None  # None = models whose paper preset pre-trains
    pretrain_epochs: int = 2
    pretrain_source: str = "synthetic-macro"
    page_repeats: int = 5  # 0 = skip the page renders


def quick_plan() -> BenchPlan:
    """Under 5 minutes on 2 cores: the two fast models at 3 epochs, fewer repetitions, smaller inputs."""
    return BenchPlan(quick=True, fwd_presets=("cpu",), fwd_seconds=0.5, preprocess_clips=3, preprocess_reps=2,
                     loso_models=("ststnet", "baseline"), loso_epochs=3, loso_reps=2, pretrain_epochs=1,
                     pretrain_source="synthetic-macro?subjects=4&clips_per_subject=6", page_repeats=2)


def full_plan() -> BenchPlan:
    """Under 60 minutes on 2 cores: every model and preset, LOSO at the preset's epochs; the executors are
    compared on the two fast models, the paper models run on the default executor (what the estimate uses;
    MFDAN on all three executors alone would take about an hour)."""
    return BenchPlan(loso_reps=2, executor_models=("ststnet", "baseline"))


def _loso_executors(plan: BenchPlan, model: str) -> list[str]:
    if plan.executors or plan.executor_models is None or model in plan.executor_models:
        return _executors(plan.executors)
    return [ExperimentConfig().executor]


def _loso_presets(plan: BenchPlan, model: str, device: str) -> list[str]:
    """The presets whose LOSO is measured: ``plan.loso_presets`` where the model has them, else ``cpu``,
    and on a CUDA device ``paper`` too (what a GPU user trains; the estimate reads rows by model and preset)."""
    have = list_presets(model)
    wanted = plan.loso_presets or (("cpu", "paper") if device != "cpu" else ("cpu",))
    return [p for p in wanted if p in have]


def _models(names: tuple[str, ...]) -> list[str]:
    return list(names) or list_models()


def _executors(names: tuple[str, ...]) -> list[str]:
    wanted = names or ("sequential", "process")
    unknown = [e for e in names if e not in EXECUTORS]
    if unknown:
        raise MerError(f"unknown executor(s) {', '.join(unknown)}; valid: {', '.join(EXECUTORS)}")
    return [e for e in wanted if e in EXECUTORS]


@contextlib.contextmanager
def private_cache() -> Iterator[Path]:
    """A temporary ``MER_CACHE`` (and no ``MER_STORE``) for the block; the old values come back after."""
    old = {k: os.environ.get(k) for k in ("MER_CACHE", "MER_STORE")}
    tmp = tempfile.mkdtemp(prefix="mer-bench-")
    os.environ["MER_CACHE"] = tmp
    os.environ.pop("MER_STORE", None)
    try:
        yield Path(tmp)
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        shutil.rmtree(tmp, ignore_errors=True)


def _clear_preprocessed() -> None:
    shutil.rmtree(cache_root() / "preprocessed", ignore_errors=True)


# --- preprocessing -----------------------------------------------------------------------
def bench_preprocess(plan: BenchPlan, log: Log) -> list[dict[str, Any]]:
    """Cold and cached ms per clip of each flow method and size (one worker)."""
    table = index_dataset("synthetic", **plan.dataset_options)
    table = table[table.frames.map(len) >= 2].iloc[: plan.preprocess_clips].reset_index(drop=True)
    rows = []
    for method in plan.flow_methods:
        for size in plan.flow_sizes:
            opts = PreprocessConfig(flow_method=method)
            cold, cached = [], []
            for _ in range(plan.preprocess_reps):
                _clear_preprocessed()
                t0 = time.perf_counter()
                first = prepare_inputs(table, FLOW3, size, opts, workers=1)
                cold.append(1000 * (time.perf_counter() - t0) / len(table))
                t0 = time.perf_counter()
                prepare_inputs(table, FLOW3, size, opts, workers=1)
                cached.append(1000 * (time.perf_counter() - t0) / len(table))
            rows.append({"method": method, "size": size, "clips": len(table), "workers": 1, "channels": list(FLOW3),
                         "ok": int(first.ok.sum()), "cold_ms_per_clip": spread(cold, 2),
                         "cached_ms_per_clip": spread(cached, 3)})
            log(f"preprocess {method:9s} {size:3d} px: cold {rows[-1]['cold_ms_per_clip']['median']:8.1f} ms/clip, "
                f"cached {rows[-1]['cached_ms_per_clip']['median']:6.2f} ms/clip")
    _clear_preprocessed()
    return rows


# --- forward + backward ----------------------------------------------------------------------
def time_calls(fn: Callable[[], Any], min_seconds: float) -> list[float]:
    """Seconds per call of ``fn``, one figure per measured block: ``torch.utils.benchmark.Timer.blocked_autorange``.

    The Timer warms up, groups calls too fast to time alone into blocks (one call per block for a model step
    of milliseconds), measures until ``min_seconds`` have passed and synchronises CUDA around each block;
    it runs with this process's thread count (its own default is one thread).
    """
    timer = benchmark.Timer(stmt="fn()", globals={"fn": fn}, num_threads=torch.get_num_threads())
    return list(timer.blocked_autorange(min_run_time=min_seconds).times)


def step_seconds(model: Any, batch: int, min_seconds: float, *, train: bool = True, optimizer: bool = True) -> list[float]:
    """Seconds per step of ``model`` on a random batch of its config's input (:func:`time_calls`).

    ``train``: forward, cross-entropy backward and, with ``optimizer``, an AdamW step, in train mode;
    otherwise one forward in eval mode without gradients. The batch lives on the model's device.
    """
    cfg = model.config
    device = next(model.parameters()).device
    x = torch.randn(batch, cfg.in_channels, cfg.input_size, cfg.input_size, device=device)
    y = torch.randint(0, cfg.num_classes, (batch,), device=device)
    if not train:
        model.eval()

        @torch.no_grad()
        def forward() -> None:
            model(x)

        return time_calls(forward, min_seconds)
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, foreach=True) if optimizer else None  # as the trainer's
    loss_fn = torch.nn.CrossEntropyLoss()

    def step() -> None:
        model.zero_grad(set_to_none=True)
        loss_fn(model(x), y).backward()
        if opt is not None:
            opt.step()

    return time_calls(step, min_seconds)


def bench_fwd_bwd(plan: BenchPlan, log: Log) -> list[dict[str, Any]]:
    """Training step (forward + backward + AdamW) samples/s per model and preset."""
    device = "cuda" if torch.cuda.is_available() else "cpu"
    rows = []
    for name in _models(plan.models):
        for preset in [p for p in plan.fwd_presets if p in list_presets(name)]:
            torch.manual_seed(0)
            model = create_model(name, preset).to(device)
            cfg, times = model.config, step_seconds(model, plan.fwd_batch, plan.fwd_seconds)
            rows.append({"model": name, "preset": preset, "input_size": int(cfg.input_size),
                         "channels": list(cfg.channels), "batch": plan.fwd_batch, "device": device,
                         "threads": torch.get_num_threads(),
                         "ms_per_sample": spread([1000 * t / plan.fwd_batch for t in times], 3),
                         "samples_per_s": spread([plan.fwd_batch / t for t in times], 1)})
            log(f"fwd+bwd {name:16s} {preset:5s}: {rows[-1]['samples_per_s']['median']:9.1f} samples/s "
                f"({rows[-1]['ms_per_sample']['median']:.3f} ms/sample)")
    return rows


# --- LOSO ---------------------------------------------------------------------------------------
def _loso_config(plan: BenchPlan, model: str, executor: str, preset: str = "cpu") -> Any:
    overrides: dict[str, Any] = {"executor": executor}  # otherwise the defaults a user's run has
    if plan.loso_epochs:
        overrides["epochs"] = plan.loso_epochs
    return resolve_experiment("synthetic", model, preset, overrides=overrides, dataset_options=plan.dataset_options)


def _timed_prepare(config: Any) -> tuple[float, int]:
    t0 = time.perf_counter()
    exp = prepare_experiment(config)
    return time.perf_counter() - t0, len(exp.table)


def _loso_child(config: Any, events: Any, status: Any) -> None:
    """One measured LOSO in a fresh interpreter (spawned), as a queued job runs it: its pool starts cold,
    with no forkserver or warmed-up workers left by earlier measurements in the bench process."""
    def progress(e: dict[str, Any]) -> None:  # the worker's own time stamp 't' (a pool's events arrive late)
        if e.get("event") in ("fold_start", "epoch"):
            events.put((e["event"], int(e["fold"]), int(e.get("epoch") or 0), float(e.get("t") or time.time())))

    status.put(("ready", ""))  # imports done: the measurement starts here
    try:
        status.put(("done", run_experiment(config, progress=progress)))
    except BaseException as exc:  # noqa: BLE001 - reported to the parent, which raises
        status.put(("error", f"{type(exc).__name__}: {exc}"))


def _run_loso_fresh(config: Any) -> tuple[str, list[tuple[str, int, int, float]], TreeMonitor]:
    ctx = mp.get_context("spawn")
    events_q, status_q = ctx.Queue(), ctx.Queue()
    child = ctx.Process(target=_loso_child, args=(config, events_q, status_q))  # not daemonic: it starts a pool
    events: list[tuple[str, int, int, float]] = []

    def drain() -> None:
        while True:
            try:
                events.append(events_q.get_nowait())
            except queue.Empty:
                return

    child.start()
    try:
        kind, payload = status_q.get(timeout=600)  # the child's imports
        with TreeMonitor(root=child.pid) as mon:  # the child and its pool: not this waiting bench process
            while True:
                try:
                    kind, payload = status_q.get(timeout=0.5)
                    break
                except queue.Empty:
                    drain()
                    if not child.is_alive():
                        raise MerError(f"benchmark LOSO {config.model}/{config.executor}: the measuring process "
                                       f"exited ({child.exitcode}) without a result")
        while child.is_alive():
            drain()
            child.join(timeout=0.2)
        drain()
    finally:
        if child.is_alive():
            child.kill()
    if kind != "done":
        raise MerError(f"benchmark LOSO {config.model}/{config.executor} failed: {payload}")
    return payload, events, mon


def _one_loso(config: Any) -> dict[str, Any]:
    """One LOSO as a user's run is: the config's defaults (oracle recorded, checkpoints kept), in a fresh
    process (so its start-up is a job's, not a warm bench process's, which is about twice as fast), timed from
    its workers' fold and epoch events."""
    rid, events, mon = _run_loso_fresh(config)
    with RunStore() as store:
        run = store.get_run(rid)
        folds = store.folds(rid)
    if run["status"] != "done":
        raise MerError(f"benchmark LOSO {config.model}/{config.executor} ended {run['status']}: {run.get('error', '')}")
    n_train = {int(r.fold_index): int(r.n_train) for r in folds.itertuples()}
    timing = fold_timing(events, n_train)
    timing["parallel"] = _parallel(config, int(run["n_folds"]), timing.pop("overlap"))
    return {"wall": mon.wall_s, "cpu": mon.cpu_s, "rss": mon.peak_rss_mb, "uf1": run["uf1"], "uar": run["uar"],
            "n_samples": int(run["n_samples"]), "n_folds": int(run["n_folds"]), "timing": timing}


def _parallel(config: Any, n_folds: int, overlap: int) -> int:
    """Folds trained at a time: 1 (sequential), the pool's workers (process), else as measured (ray)."""
    if config.executor == "sequential":
        return 1
    if config.executor == "process":
        return resolve_workers(config, n_folds)
    return max(1, overlap)


def fold_timing(events: list[tuple[str, int, int, float]], n_train: dict[int, int]) -> dict[str, Any]:
    """Steady-state cost per sample-epoch and per-fold set-up from time-stamped fold_start / epoch events.

    ``events``: (kind, fold, epoch, time) with kind 'fold_start' or 'epoch'.
    ``steady_ms``: median over folds and epochs 2.. of the epoch's duration /
    the fold's training clips (with one epoch only: the first epoch, set-up
    included, and then ``fold_setup_s`` is 0); ``fold_setup_s``: median over
    folds of (fold start to last epoch) - epochs x clips x steady, i.e. model
    creation and the first epoch's warm-up; ``overlap``: the most folds open
    at once.
    """
    starts = {f: t for kind, f, _, t in events if kind == "fold_start"}
    epochs: dict[int, dict[int, float]] = {}
    for kind, f, e, t in events:
        if kind == "epoch" and f in starts:
            epochs.setdefault(f, {})[e] = t
    folds = [f for f in epochs if n_train.get(f)]
    steady = [(ts[e] - ts[e - 1]) / n_train[f] for f in folds for ts in [epochs[f]] for e in ts if e - 1 in ts]
    single = not steady
    if single:  # one epoch per fold: no steady state to separate from the set-up
        steady = [(epochs[f][min(epochs[f])] - starts[f]) / n_train[f] for f in folds]
    if not steady:
        return {"steady_ms": None, "fold_setup_s": None, "overlap": 1}
    per = statistics.median(steady)
    setups = [max(epochs[f].values()) - starts[f] - len(epochs[f]) * n_train[f] * per for f in folds]
    spans = sorted((starts[f], max(epochs[f].values())) for f in folds)
    overlap = max(sum(1 for s, e in spans if s <= t0 < e) for t0, _ in spans)
    return {"steady_ms": 1000 * per, "fold_setup_s": 0.0 if single else max(statistics.median(setups), 0.0),
            "overlap": max(overlap, 1)}


def loso_row(config: Any, runs: list[dict[str, Any]], prep: dict[str, float]) -> dict[str, Any]:
    """One report row from repeated runs: spreads plus the training cost per sample-epoch.

    ``train_ms_per_sample_epoch`` = (median wall - cached preprocessing) /
    (folds x epochs x (N - N / folds)), the inverse of the old estimate's
    formula (start-up spread over the sample-epochs; kept for old readers).

    With the runs' epoch timing (:func:`fold_timing`) the row also has the
    model the estimate uses, wall - cached preprocessing =
    ``startup_s`` + folds / ``parallel`` x (``fold_setup_s`` + epochs x
    (N - N / folds) x ``steady_ms_per_sample_epoch``): ``parallel`` folds
    train at a time, ``steady_ms_per_sample_epoch`` is one fold's epoch
    time per training clip after the first epoch, ``fold_setup_s`` a fold's
    model creation and first-epoch warm-up, and ``startup_s`` the rest (run
    set-up, pool start, the first folds' warm-up, storing the folds), each per
    run, as spreads.
    """
    n, k = runs[0]["n_samples"], runs[0]["n_folds"]
    wall = spread([r["wall"] for r in runs], 2)
    n_train = n - n / max(k, 1)
    sample_epochs = k * config.epochs * n_train
    train_s = max(wall["median"] - prep["cached_s_per_clip"] * n, 0.0)
    row = {"model": config.model, "preset": config.preset, "executor": config.executor, "workers": config.workers,
           "epochs": config.epochs, "batch_size": config.batch_size, "n_samples": n, "n_folds": k,
           "flow_method": config.preprocess.flow_method, "input_size": int(config.preprocess.input_size),
           "wall_s": wall, "cpu_s": spread([r["cpu"] for r in runs], 2),
           "peak_rss_mb": spread([r["rss"] for r in runs], 1), "uf1": spread([r["uf1"] for r in runs]),
           "uar": spread([r["uar"] for r in runs]),
           "train_ms_per_sample_epoch": round(1000 * train_s / sample_epochs, 4) if sample_epochs else None,
           "preprocess_cold_ms_per_clip": round(1000 * prep["cold_s_per_clip"], 3),
           "preprocess_cached_ms_per_clip": round(1000 * prep["cached_s_per_clip"], 4)}
    timed = [r["timing"] for r in runs if r.get("timing") and r["timing"].get("steady_ms") is not None]
    if timed and len(timed) == len(runs):
        parallel = max(1, min(int(t["parallel"]) for t in timed))
        startup = [max(r["wall"] - prep["cached_s_per_clip"] * n - k / min(parallel, max(k, 1))
                       * (t["fold_setup_s"] + config.epochs * n_train * t["steady_ms"] / 1000), 0.0)
                   for r, t in zip(runs, timed)]
        row.update(parallel=parallel, startup_s=spread(startup, 3),
                   fold_setup_s=spread([t["fold_setup_s"] for t in timed], 4),
                   steady_ms_per_sample_epoch=spread([t["steady_ms"] for t in timed], 4))
    return row


def bench_loso(plan: BenchPlan, log: Log) -> list[dict[str, Any]]:
    """Whole LOSO runs per model, preset and executor, each preset's preprocessing measured cold then warm."""
    device = bench_report.device_name()  # looked up when called: a test names another device
    rows = []
    for model in _models(plan.loso_models):
        for preset in _loso_presets(plan, model, device):
            prep: dict[str, float] = {}
            for executor in _loso_executors(plan, model):
                config = _loso_config(plan, model, executor, preset)
                if not prep:
                    _clear_preprocessed()
                    cold, n = _timed_prepare(config)
                    cached, _ = _timed_prepare(config)
                    prep = {"cold_s_per_clip": cold / n, "cached_s_per_clip": cached / n}
                rows.append(_measured_loso(config, plan, prep, log))
    return rows


def _measured_loso(config: Any, plan: BenchPlan, prep: dict[str, float], log: Log) -> dict[str, Any]:
    """``plan.loso_reps`` fresh-process LOSOs of ``config`` as one report row, logged."""
    runs = [_one_loso(config) for _ in range(plan.loso_reps)]
    r = loso_row(config, runs, prep)
    log(f"loso {config.model:16s} {config.preset:5s} {config.executor:10s}: {r['wall_s']['median']:7.1f} s "
        f"({r['wall_s']['min']:.1f}-{r['wall_s']['max']:.1f}), CPU {r['cpu_s']['median']:.1f} s, "
        f"peak {r['peak_rss_mb']['median']:.0f} MB, UF1 {r['uf1']['median']:.3f} UAR {r['uar']['median']:.3f}")
    if "startup_s" in r:
        log(f"     {'':16s} {'':5s} {'':10s}  start-up {r['startup_s']['median']:.2f} s, {r['parallel']} fold(s) at "
            f"a time, set-up {r['fold_setup_s']['median']:.3f} s/fold, steady "
            f"{r['steady_ms_per_sample_epoch']['median']:.4f} ms/sample-epoch")
    return r


# --- pre-training ------------------------------------------------------------------------------
def _pretrain_models(plan: BenchPlan) -> list[str]:
    if plan.pretrain_models is not None:
        return list(plan.pretrain_models)
    return [m for m in _models(plan.models) if "paper" in list_presets(m) and train_defaults(m, "paper").get("pretrain")]


def bench_pretrain(plan: BenchPlan, log: Log) -> list[dict[str, Any]]:
    """Macro pre-training at the cpu preset: cold (macro preprocessing included) and again from the cache."""
    rows = []
    for model in _pretrain_models(plan):
        times = []
        for _ in range(2):  # first: preprocessing cold; second: cached, training only
            t0 = time.perf_counter()
            pretrain(model, "cpu", plan.pretrain_source, plan.pretrain_epochs, 0, force=True)
            times.append(time.perf_counter() - t0)
        n = _macro_size(plan.pretrain_source)
        train_s = times[1]
        rows.append({"model": model, "preset": "cpu", "source": plan.pretrain_source, "epochs": plan.pretrain_epochs,
                     "n_samples": n, "cold_s": round(times[0], 2), "train_s": round(train_s, 2),
                     "preprocess_ms_per_clip": round(1000 * max(times[0] - train_s, 0.0) / max(n, 1), 3),
                     "ms_per_sample_epoch": round(1000 * train_s / max(n * plan.pretrain_epochs, 1), 4)})
        log(f"pretrain {model}: {n} macro samples x {plan.pretrain_epochs} epoch(s): cold {times[0]:.1f} s, "
            f"cached {train_s:.1f} s ({rows[-1]['ms_per_sample_epoch']:.2f} ms/sample-epoch)")
    return rows


def _macro_size(source: str) -> int:
    try:
        return sum(len(index_source(parse_source(s))[0]) for s in split_sources(source))
    except Exception:  # the count is informative; the timing stands without it
        return 0


# --- pages -----------------------------------------------------------------------------------------
def bench_pages(plan: BenchPlan, log: Log, script: Path = PAGES_SCRIPT) -> dict[str, Any]:
    """Page render times from ``benchmarks/bench_pages.py`` run in a child process (Streamlit lives there)."""
    reason = pages_skip_reason(plan.page_repeats, script)
    if reason:
        return {"skipped": reason}
    with tempfile.TemporaryDirectory(prefix="mer-bench-pages-") as tmp:
        out = Path(tmp) / "pages.json"
        res = subprocess.run([sys.executable, str(script), "--repeats", str(plan.page_repeats), "--out", str(out)],
                             capture_output=True, text=True, check=False, cwd=repo_root())
        if res.returncode != 0 or not out.is_file():
            return {"skipped": f"bench_pages.py failed (exit {res.returncode}): {res.stderr.strip()[-500:]}"}
        data = json.loads(out.read_text())
    for page, r in data.get("pages", {}).items():
        log(f"page {page:12s}: cold {r['cold_s']:.3f} s, warm median {r['warm_s']['median']:.3f} s")
    return {"what": data.get("what", ""), "predictions": data.get("predictions"), "pages": data.get("pages", {})}


# --- the whole suite ------------------------------------------------------------------------------
SECTION_FUNCS = {"preprocess": bench_preprocess, "fwd_bwd": bench_fwd_bwd, "loso": bench_loso,
                 "pretrain": bench_pretrain}


def run_bench(plan: BenchPlan | None = None, *, log: Log = print) -> dict[str, Any]:
    """Run every section of ``plan`` in a private cache; the validated report."""
    plan = plan or quick_plan()
    t0 = time.perf_counter()
    report: dict[str, Any] = {"schema": SCHEMA, "quick": plan.quick, "machine": machine_info(),
                              "plan": {k: (list(v) if isinstance(v, tuple) else v)
                                       for k, v in dataclasses.asdict(plan).items()}}
    log(f"mer bench on {report['machine']['kind']} ({report['machine']['cpu']}, torch {report['machine']['torch']})")
    if plan.page_repeats > 0 and pages_skip_reason(plan.page_repeats):
        log(f"pages skipped: {pages_skip_reason(plan.page_repeats)}")
    with private_cache():
        for name, fn in SECTION_FUNCS.items():
            s0 = time.perf_counter()
            report[name] = fn(plan, log)
            log(f"-- {name}: {time.perf_counter() - s0:.1f} s")
    report["pages"] = bench_pages(plan, log)
    report["seconds"] = round(time.perf_counter() - t0, 1)
    return validate(report)


MODEL_SECTIONS = ("fwd_bwd", "loso", "pretrain")  # sections whose rows belong to one model each
SAME_MACHINE = ("kind", "cpu", "cores", "torch", "device")


def update_plan(plan: BenchPlan, models: tuple[str, ...]) -> BenchPlan:
    """``plan`` cut down to re-measuring ``models``: their model rows only (no preprocessing, no pages)."""
    if not models:
        raise MerError("mer bench --update: name the models to re-measure with --models")
    return dataclasses.replace(plan, models=models, loso_models=models, flow_methods=(), page_repeats=0)


def check_same_machine(old: dict[str, Any], new: dict[str, Any]) -> None:
    """MerError naming the first of :data:`SAME_MACHINE` on which two reports' machines differ."""
    for k in SAME_MACHINE:
        if old.get(k) != new.get(k):
            raise MerError(f"mer bench --update: the report was measured on {k}={old.get(k)!r}, this machine "
                           f"has {k}={new.get(k)!r}; write a new report with --out instead")


def merge_report(old: dict[str, Any], new: dict[str, Any], models: tuple[str, ...]) -> dict[str, Any]:
    """``old`` with every row of ``models`` in the model sections replaced by ``new``'s rows.

    The other rows, the preprocessing rows and the page timings stay as measured; ``updates`` records
    which models were re-measured, when, at which commit and how long it took. Refused when the two
    reports come from different machines (kind, CPU, cores, torch or device differ): their rows
    would not compare.
    """
    validate(old, "the report to update")
    validate(new, "the new measurement")
    check_same_machine(old["machine"], new["machine"])
    merged = json.loads(json.dumps(old))
    wanted = set(models)
    for section in MODEL_SECTIONS:
        kept = [r for r in merged[section] if r.get("model") not in wanted]
        rows = kept + [r for r in new[section] if r.get("model") in wanted]
        merged[section] = sorted(rows, key=lambda r: str(r.get("model")))  # stable: a model's rows keep their order
    merged.setdefault("updates", []).append(
        {"models": list(models), **{k: new["machine"].get(k) for k in ("date", "commit", "load_avg")},
         "seconds": new.get("seconds")})
    return validate(merged)


def write_report(report: dict[str, Any], path: Path) -> Path:
    """Write atomically (temporary file + rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(validate(report), indent=1) + "\n")
    os.replace(tmp, path)
    return path
