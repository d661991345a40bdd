"""Reads: every cached loader of the dashboard, in one place.

Views call these loaders; the loaders call mer_core. Reads of a finished run
are cached longer than reads of the run list (which changes while jobs run).
Nothing here writes results or starts a worker (that is :mod:`dashboard.writes`);
the job reads only mark jobs and runs whose process died, so what they show is true.
"""
from __future__ import annotations

import json
from typing import Any

import cv2
import numpy as np
import pandas as pd
import streamlit as st

from mer_core.benchmarking.bench_report import results_dir, results_overview, results_stamp
from mer_core.config import ExperimentConfig, PreprocessConfig
from mer_core.datasets.check import check_dataset
from mer_core.datasets.synthetic import load_masks
from mer_core.errors import MerError
from mer_core.evaluation.export import record_json, run_record
from mer_core.evaluation.leaderboard import load_published
from mer_core.evaluation.statistics import bootstrap_intervals, paired_bootstrap, paired_permutation
from mer_core.jobs import plan as job_plan, queue as jobs, study as job_study
from mer_core.jobs.plan import identical_jobs, passes_words, plan, training_passes as passes
from mer_core.jobs.study import ablation_arms as arms, study_report as report
from mer_core.paths import cache_root, store_path
from mer_core.preprocess.pipeline import cached_sample_views
from mer_core.store.db import RunStore
from mer_core.store.jobs import ACTIVE as JOB_ACTIVE  # noqa: F401  (for views, which never import the store)
# Library reads the views call as they are, through here: the job time estimate (seconds, what it is based on),
# the dataset roots configured on this machine (environment, then cache/datasets.toml; uncached), and one line
# per `mer bench --update` of a results file ("the rows of M re-measured on DATE, commit C").
from mer_core.jobs.plan import estimate_seconds  # noqa: F401
from mer_core.datasets.roots import configured_roots as dataset_roots
from mer_core.benchmarking.bench_report import describe_updates as bench_update_lines  # noqa: F401

# Session-state and query-parameter keys (constants, never string literals in pages)
QP_RUN = "run"
QP_JOB = "job"
QP_RUNS = "runs"
QP_SAMPLE = "sample"
QP_DATASET = "dataset"


def runs_table() -> pd.DataFrame:
    """All stored runs, newest first (cached for a few seconds)."""
    return _runs_table(str(store_path()))


# The store path is part of every cache key: tests and users may switch stores.
@st.cache_data(ttl=3, show_spinner=False)
def _runs_table(path: str) -> pd.DataFrame:
    with RunStore(path) as store:
        return store.list_runs()


@st.cache_data(ttl=3, show_spinner=False)
def _run_bundle(path: str, run_id: str) -> dict[str, Any]:
    with RunStore(path) as store:
        run = store.get_run(run_id)
        return {
            "run": run,
            "predictions": store.predictions(run_id),
            "folds": store.folds(run_id),
            "epochs": store.epochs(run_id),
        }


def try_run_bundle(run_id: str) -> tuple[dict[str, Any] | None, str]:
    """(the run with its predictions, folds and epochs, ''), or (None, why) when it is unknown."""
    try:
        return _run_bundle(str(store_path()), run_id), ""
    except MerError as exc:
        return None, str(exc)


# --- results pages: intervals, paired tests, leaderboard ----------------------------
def run_stamp(run_id: str, listing: pd.DataFrame | None = None) -> tuple:
    """What changes when a run gets new results, read in ``listing`` (the runs table unless given, e.g. the
    spotting runs): part of the cache keys of the run's reads."""
    rows = (runs_table() if listing is None else listing).set_index("id")
    if run_id not in rows.index:
        return (run_id,)
    r = rows.loc[run_id]
    return (str(r["status"]), r["finished"], int(r["folds_done"]))


def run_intervals(run_id: str) -> dict[str, Any]:
    """Subject-level bootstrap 95% CIs of pooled UF1/UAR/accuracy (fixed seed, cached)."""
    return _run_intervals(str(store_path()), run_id, run_stamp(run_id))


def paired_tests(run_a: str, run_b: str) -> dict[str, Any]:
    """Paired sign-flip permutation test and bootstrap CI of the mean per-subject UF1 difference A - B (cached).

    Same test, permutation count and seed as a two-arm study, so the two pages give one p-value.
    """
    return _paired_tests(str(store_path()), run_a, run_b, run_stamp(run_a), run_stamp(run_b))


def run_record_json(run_id: str) -> str:
    """The whole run as JSON text (same content as ``mer export RUN --format json``)."""
    return _run_record_json(str(store_path()), run_id, run_stamp(run_id))


@st.cache_data(show_spinner=False)
def published_results() -> pd.DataFrame:
    """The MEGC2019 composite results as reported in the papers (shipped CSV)."""
    return load_published()


def run_details(run_ids: tuple[str, ...]) -> list[dict[str, Any]]:
    """Run rows with config and summary (no predictions) for many runs, for tables and plots."""
    return _run_details(str(store_path()), tuple(run_ids))


@st.cache_data(max_entries=64, show_spinner=False)
def _run_intervals(path: str, run_id: str, stamp: tuple) -> dict[str, Any]:
    with RunStore(path) as store:
        run = store.get_run(run_id)
        pred = store.predictions(run_id)
    if pred.empty:
        return {}
    return bootstrap_intervals(pred, run["classes"], n_boot=2000, seed=0)


@st.cache_data(max_entries=64, show_spinner=False)
def _paired_tests(path: str, run_a: str, run_b: str, stamp_a: tuple, stamp_b: tuple) -> dict[str, Any]:
    with RunStore(path) as store:
        classes = store.get_run(run_a)["classes"]
        pa, pb = store.predictions(run_a), store.predictions(run_b)
    return {"permutation": paired_permutation(pa, pb, classes, n_perm=10000, seed=0),
            "bootstrap": paired_bootstrap(pa, pb, classes, n_boot=2000, seed=0)}


@st.cache_data(max_entries=16, show_spinner=False)
def _run_record_json(path: str, run_id: str, stamp: tuple) -> str:
    with RunStore(path) as store:
        return record_json(run_record(run_id, store))


@st.cache_data(ttl=3, show_spinner=False)
def _run_details(path: str, run_ids: tuple[str, ...]) -> list[dict[str, Any]]:
    with RunStore(path) as store:
        return [store.get_run(r) for r in run_ids if store.has_run(r)]


def preset_labels(run_ids: tuple[str, ...]) -> dict[str, str]:
    """Run id -> "cpu preset" or "cpu preset, modified: epochs 3 (preset 15)" (mer_core.training.experiment)."""
    return _preset_labels(str(store_path()), tuple(run_ids))


@st.cache_data(ttl=30, max_entries=32, show_spinner=False)
def _preset_labels(path: str, run_ids: tuple[str, ...]) -> dict[str, str]:
    from mer_core.training.experiment import preset_label  # lazy: loads torch (about 2 s)

    return {r["id"]: preset_label(r["config"]) for r in _run_details(path, run_ids)}


# --- jobs: the queue, the live job view, the new-experiment plan ---------------------
def training_passes(config: Any, train_subjects: float | None) -> tuple[float, str]:
    """(fits' worth of training per fold, what they are in words or '') of mer_core.jobs.plan.training_passes."""
    return passes(config, train_subjects), passes_words(config, train_subjects)


def jobs_table() -> pd.DataFrame:
    """All jobs, active and queued first; live, uncached. Dead workers are marked failed; nothing is started here."""
    with RunStore(store_path()) as store:
        jobs.mark_stale(store)
        return jobs.list_jobs(store)


def job_detail(job_id: str) -> dict[str, Any] | None:
    """A job with its run's folds, epochs, predictions and log tail (None if unknown); live, starts nothing."""
    with RunStore(store_path()) as store:
        jobs.mark_stale(store)
        try:
            job = jobs.get_job(store, job_id)
        except MerError:
            return None
        out: dict[str, Any] = {"job": job, "run": None, "folds": pd.DataFrame(), "epochs": pd.DataFrame(),
                               "predictions": pd.DataFrame(), "log": jobs.log_tail(job, 40)}
        if store.has_run(job["run_id"]):
            out.update(run=store.get_run(job["run_id"]), folds=store.folds(job["run_id"]),
                       epochs=store.epochs(job["run_id"]), predictions=store.predictions(job["run_id"]))
        return out


def experiment_plan(config_json: str) -> dict[str, Any]:
    """mer_core.jobs.plan.plan of a config (samples, folds, estimate) or {'error': message}.

    Successes are cached; errors are not, so fixing the data on disk shows at the next rerun.
    """
    try:
        return _experiment_plan(str(store_path()), config_json)
    except MerError as exc:
        return {"error": str(exc)}
    except Exception as exc:  # an indexer bug must not take the page down
        return {"error": f"{type(exc).__name__}: {exc}"}


@st.cache_data(ttl=300, max_entries=32, show_spinner="Indexing the dataset…")
def _experiment_plan(path: str, config_json: str) -> dict[str, Any]:
    return plan(ExperimentConfig.from_json(config_json))


def executor_that_runs(executor: str, n_folds: int, workers: int | None) -> str:
    """The executor that will actually run the folds (mer_core.jobs.plan)."""
    return job_plan.executor_that_runs(executor, n_folds, workers) or executor


def machine_load() -> tuple[float, int, bool]:
    """(1-minute load, cores, high) of this machine (mer_core.jobs.plan); not cached: it is now."""
    return job_plan.machine_load()


def identical_active_jobs(config_json: str) -> list[str]:
    """Queued or running jobs whose config is this one exactly (mer_core.jobs.plan.identical_jobs)."""
    with RunStore(store_path()) as store:
        table = jobs.list_jobs(store)
        active = table[table["status"].isin(("queued", "running"))]
        rows = [jobs.get_job(store, j) for j in active["id"]]
    return identical_jobs(ExperimentConfig.from_json(config_json), rows)


# --- datasets page: roots, indexing reports, preprocessing ------------------------
def _roots_stamp() -> str:
    """Changes when dataset roots change, so cached reports follow the configuration."""
    return json.dumps(dataset_roots(), sort_keys=True)


def dataset_report(name: str, options_json: str = "{}", frames: str = "quick") -> dict[str, Any]:
    """The dataset check as plain data: fatal, table, problems, problems_frame, usable.

    ``frames="none"`` indexes without decoding any frame (mer_core's check_dataset): enough for a page that
    only needs the table (the Lesson, a clip's views), and about half the cost of the quick check.
    """
    return _dataset_report(name, options_json, _roots_stamp(), str(cache_root()), frames)


def sample_views(name: str, options_json: str, sample_id: str, preprocess_json: str, size: int) -> dict[str, Any]:
    """Onset, apex, difference, flow, strain and EVM clip of one sample (cached in memory, and on disk in the
    preprocessed cache, so a restarted server shows the showcase clips without recomputing them)."""
    return _sample_views(name, options_json, sample_id, preprocess_json, size, _roots_stamp(), str(cache_root()))


def clear_dataset_caches() -> None:
    _dataset_report.clear()
    _sample_views.clear()


@st.cache_data(max_entries=8, show_spinner="indexing and checking the dataset…")
def _dataset_report(name: str, options_json: str, stamp: str, cache: str, frames: str = "quick") -> dict[str, Any]:
    report = check_dataset(name, frames=frames, **json.loads(options_json))  # every frame: `mer datasets check`
    return {"fatal": report.fatal, "table": report.table, "problems": list(report.problems),
            "problems_frame": report.problems_frame(), "usable": report.usable}


@st.cache_data(max_entries=32, show_spinner="computing flow, strain and magnification…")
def _sample_views(name: str, options_json: str, sample_id: str, preprocess_json: str, size: int, stamp: str,
                  cache: str) -> dict[str, Any]:
    report = _dataset_report(name, options_json, stamp, cache, "none")
    if report["fatal"]:
        raise MerError(report["fatal"])
    table = report["table"]
    rows = table[table["sample_id"] == sample_id]
    if rows.empty:
        raise MerError(f"sample {sample_id!r} is not in dataset {name!r}")
    return cached_sample_views(rows.iloc[0].to_dict(), PreprocessConfig(**json.loads(preprocess_json)), size=size)


def shrunk_grey(img: np.ndarray, max_side: int) -> np.ndarray:
    """A grey uint8 frame as float in 0..1, shrunk when its longer side is larger than ``max_side``."""
    scale = max_side / max(img.shape)
    if scale < 1:
        img = cv2.resize(img, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    return img.astype(np.float32) / 255.0


@st.cache_data(max_entries=16, show_spinner=False)
def clip_frames(frames: tuple[str, ...], max_side: int = 256) -> np.ndarray:
    """A clip's frames as grey float (T, H, W) in 0..1, shrunk when larger than ``max_side``."""
    out = []
    for path in frames:
        img = cv2.imread(path, cv2.IMREAD_GRAYSCALE)
        if img is None:
            raise MerError(f"cannot read frame {path}")
        out.append(shrunk_grey(img, max_side))
    return np.stack(out)


@st.cache_data(max_entries=32, show_spinner=False)
def ground_truth(mask_path: str) -> dict[str, np.ndarray]:
    """Ground-truth masks of a synthetic clip ({} for real data): 'au' and 'blink'."""
    if not mask_path:
        return {}

    masks = load_masks(mask_path)
    return {k: masks[k] for k in ("au", "blink") if k in masks}


@st.cache_data(max_entries=32, show_spinner=False)
def face_mask(mask_path: str) -> np.ndarray | None:
    """The face mask of a synthetic clip's ground truth (None for real data or a set without one): where the
    motion figures (Datasets' Motion tab, the Lesson, the Overview's showcase) grey the outside of the face."""
    if not mask_path:
        return None

    return load_masks(mask_path).get("face")


def magnified_max(name: str, options_json: str, sample_id: str, preprocess_json: str, size: int, *,
                  alpha_max: float) -> np.ndarray | None:
    """The clip magnified with ``alpha_max``, the largest α the page offers (the rest of ``preprocess_json``
    kept): its range is the magnification's one colour scale, the scale of every α's picture."""
    pre = json.loads(preprocess_json) | {"evm_alpha": alpha_max}
    return sample_views(name, options_json, sample_id, json.dumps(pre, sort_keys=True), size)["magnified_clip"]


# --- explanations (Explain page) -------------------------------------------------------
# Computations are on demand: each loader caches in memory here and on disk in
# the run folder (mer_core.explain.runs), so a reload or another user is instant.


@st.cache_resource(ttl=60, show_spinner=False, max_entries=8)
def _explainer(path: str, run_id: str) -> Any:
    import torch  # lazy: loads torch (about 2 s)

    from mer_core.explain.runs import RunExplainer  # lazy: loads torch (about 2 s)

    # one thread for explanations in the dashboard process: the cores belong to training workers, and on a
    # busy machine two OpenMP threads can be several times slower than one (benchmarks/bench_explain.py times both)
    torch.set_num_threads(1)

    with RunStore(path) as store:
        return RunExplainer(run_id, store)


def explain_overview(run_id: str) -> dict[str, Any]:
    """What the page needs to set itself up: classes, channels, samples, failures, capabilities."""
    return _explain_overview(str(store_path()), run_id)


@st.cache_data(ttl=60, show_spinner=False)
def _explain_overview(path: str, run_id: str) -> dict[str, Any]:
    ex = _explainer(path, run_id)
    ckpts = [str(c) for c in ex.folds["checkpoint"] if str(c)]
    info: dict[str, Any] = {
        "run": ex.run, "classes": ex.classes, "channels": ex.channels(), "samples": ex.sample_ids(),
        "predictions": ex.predictions, "failures": ex.failure_cases(), "has_masks": ex.has_masks(),
        "has_checkpoints": bool(ckpts), "has_attention": False, "gradcam_layers": [],
    }
    if ckpts:
        from mer_core.explain.attributions import gradcam_layers  # lazy: loads torch (about 2 s)

        first = int(ex.folds[ex.folds["checkpoint"].astype(str) != ""].iloc[0].fold_index)
        try:
            model = ex.fold_model(first)
            info["has_attention"] = callable(getattr(model, "attention_maps", None))
            info["gradcam_layers"] = list(gradcam_layers(model))
        except MerError:
            info["has_checkpoints"] = False
    return info


def sample_view(run_id: str, sample_id: str) -> dict[str, Any]:
    """Onset/apex frames, the model input, masks and prediction of one sample."""
    return _sample_view(str(store_path()), run_id, sample_id)


@st.cache_data(ttl=600, show_spinner=False, max_entries=64)
def _sample_view(path: str, run_id: str, sample_id: str) -> dict[str, Any]:
    ex = _explainer(path, run_id)
    row = ex.row(sample_id)
    return {"row": row.to_dict(), "frames": ex.frames(sample_id), "input": ex.sample_input(sample_id),
            "face": ex.display_face(sample_id), "masks": ex.masks(sample_id), "prediction": ex.prediction(sample_id)}


def explanation(run_id: str, sample_id: str, method: str, target: Any = "pred", **options: Any) -> Any:
    """One attribution (mer_core.explain.attributions.Explanation), from the held-out fold model."""
    return _explanation(str(store_path()), run_id, sample_id, method, target, tuple(sorted(options.items())))


@st.cache_data(ttl=3600, show_spinner=False, max_entries=256)
def _explanation(path: str, run_id: str, sample_id: str, method: str, target: Any, options: tuple) -> Any:
    return _explainer(path, run_id).explain(sample_id, method, target, **dict(options))


def attention(run_id: str, sample_id: str) -> Any:
    """The held-out fold model's own attention (mer_core.explain.attention.AttentionResult)."""
    return _attention(str(store_path()), run_id, sample_id)


@st.cache_data(ttl=3600, show_spinner=False, max_entries=128)
def _attention(path: str, run_id: str, sample_id: str) -> Any:
    return _explainer(path, run_id).attention(sample_id)


def localisation(run_ids: tuple[str, ...], methods: tuple[str, ...], max_samples: int,
                 compute: bool = False, progress: Any = None) -> pd.DataFrame | None:
    """Per-model/per-method localisation table; None when not computed yet and ``compute`` is False.

    Not cached in memory: the scores are cached in each run's folder, read back cheaply, and a computation
    reports ``progress(done, total, message)`` after each clip (a cached function would have to replay it).
    """
    from mer_core.explain.runs import localisation_table  # lazy: loads torch (about 2 s)

    with RunStore(str(store_path())) as store:
        return localisation_table(run_ids, methods, max_samples=max_samples, store=store, compute=compute,
                                  progress=progress)


# --- benchmarks: the mer bench results files -------------------------------------------
def bench_results() -> dict[str, Any]:
    """{'files': {name: report}, 'match': the file this machine's estimates use, 'label', 'kind'}."""
    return _bench_results(str(results_dir()), results_stamp())


@st.cache_data(ttl=60, show_spinner=False)
def _bench_results(folder: str, stamp: tuple) -> dict[str, Any]:
    return results_overview(folder)


# --- studies and run management: tags, notes, deletion, study reports ---------------------
QP_STUDY, QP_CLONE = "study", "clone"  # ?clone=RUN: New experiment prefilled from that run's config


def study_cells(name: str | None = None) -> pd.DataFrame:
    """A study's cells with job and run status, or with no name every study (live, uncached); MerError if unknown."""
    with RunStore(store_path()) as store:
        return store.list_studies() if name is None else store.study_cells(name)


def study_report(name: str) -> Any:
    """The study's statistics (mer_core.evaluation.study_stats.StudyReport), cached until a cell changes."""
    cells = study_cells(name)
    return _study_report(str(store_path()), name, tuple(zip(cells["run_id"], cells["run_status"], cells["folds_done"])))


@st.cache_data(max_entries=16, show_spinner="Computing the study's statistics…")
def _study_report(path: str, name: str, stamp: tuple) -> Any:
    with RunStore(path) as store:
        return report(store, name, n_boot=500)


def ablation_arms(model: str, preset: str) -> list[dict[str, Any]]:
    """The arms of "ablate one component": the full model and one arm per component switched off."""
    return [dict(a.__dict__) for a in arms(model, preset)]


def study_preview(definition_json: str) -> dict:
    """Jobs and estimated time of a study definition (mer_core.jobs.study.preview), or {"error": message}."""
    try:
        spec = job_study.parse_study(json.loads(definition_json))
        return job_study.preview(spec, plan_fn=_cell_plan)
    except MerError as exc:
        return {"error": str(exc)}


def _cell_plan(config) -> dict:
    """:func:`experiment_plan` of one study cell, its error raised (the study preview's ``plan_fn``)."""
    out = experiment_plan(config.to_json())
    if "error" in out:
        raise MerError(out["error"])
    return out


def run_config(run_id: str) -> dict[str, Any] | None:
    """A stored run's config (the dict ExperimentConfig.from_dict takes), None when unknown: for "clone"."""
    with RunStore(store_path()) as store:
        return store.get_run(run_id)["config"] if store.has_run(run_id) else None


# --- explanation reports (Explain page's Faithfulness tab; loaders for Compare) ----------------
def explain_report(run_id: str, settings_json: str) -> dict[str, Any] | None:
    """The cached report of a run for these ReportConfig settings (JSON), else None; never computes, never memoised."""
    from mer_core.explain.report import ReportConfig, explanation_report  # lazy: loads torch (about 2 s)

    with RunStore(store_path()) as store:
        return explanation_report(run_id, ReportConfig.from_dict(json.loads(settings_json)), store=store,
                                  compute=False)


def compare_explain_reports(run_a: str, run_b: str, *, measure: str = "au_share",
                            method: str = "integrated_gradients", method_b: str | None = None) -> dict[str, Any]:
    """Newest cached reports of two runs compared, paired over shared clips: values, p and a ``sentence``."""
    from mer_core.explain.compare import compare_reports  # lazy: loads torch (about 2 s)
    from mer_core.explain.report import cached_reports  # lazy: loads torch (about 2 s)

    got = [next((r for r in cached_reports(rid) if m in r.get("methods", [])), None)
           for rid, m in ((run_a, method), (run_b, method_b or method))]
    if None in got:
        rid = (run_a, run_b)[got.index(None)]
        raise MerError(f"run {rid} has no explanation report with {method_b or method}; compute one on its Explain "
                       f"page (Faithfulness) or with `mer explain-report {rid}`")
    return compare_reports(got[0], got[1], measure=measure, method=method, method_b=method_b)


def explain_report_methods(run_id: str) -> list[str]:
    """Methods covered by a run's cached explanation reports (newest first), for Compare."""
    from mer_core.explain.report import cached_reports  # lazy: loads torch (about 2 s)

    seen: list[str] = []
    for cached in cached_reports(run_id):
        seen += [m for m in cached.get("methods", []) if m not in seen]
    return seen


def explain_report_job(run_id: str) -> dict[str, Any] | None:
    """The newest explanation-report job of a run (a jobs-table row) or None; live, uncached."""
    t = jobs_table()
    t = t[(t["run_id"] == run_id) & (t["protocol"] == "explanation report")] if len(t) else t
    return None if t.empty else t.sort_values("seq").iloc[-1].to_dict()
