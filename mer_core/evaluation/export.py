"""Exports of a stored run: CSV tables or one JSON document (MLflow: :mod:`mer_core.evaluation.mlflow_export`).

The JSON document (:func:`run_record`) is the whole run as plain data: the
run row with its config, the summary, subject-level bootstrap intervals, the
per-part table, folds, epochs, per-subject figures and every prediction. The
dashboard's "download run as JSON" uses the same function, so a file saved
from the browser and one from ``mer export`` are identical in content.

The MLflow export logs the same tables and record as artifacts.
"""
from __future__ import annotations

import json
import math
import os
import re
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from mer_core.errors import MerError
from mer_core.evaluation.leaderboard import part_table
from mer_core.evaluation.metrics import per_group
from mer_core.evaluation.statistics import bootstrap_intervals, per_subject_confusions
from mer_core.store.db import RunStore, using_store
from mer_core.store.folders import EXPORT_DIR, run_folder

FORMATS = ("csv", "json")
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")  # a spreadsheet runs a cell starting so as a formula (OWASP)
_PLAIN_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")


def csv_cell(value: Any) -> Any:
    """One CSV cell a spreadsheet will not run: a string starting with ``= + - @``, tab or CR gets a
    leading ``'`` (OWASP CSV injection), unless it is a plain number written as text (``-0.050``).
    Anything that is not a string (numbers, negative ones included) is returned unchanged."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS) and not _PLAIN_NUMBER.fullmatch(value):
        return "'" + value
    return value


def csv_safe(df: pd.DataFrame) -> pd.DataFrame:
    """A copy of ``df`` for ``to_csv``: every string cell and column name through :func:`csv_cell`.

    Every CSV the project writes goes through it (``mer export``, the MLflow artifacts, the
    study's paper table, the Run page's download, the preprocessing report)."""
    out = df.copy()
    for col in out.columns:
        if out[col].dtype == object or pd.api.types.is_string_dtype(out[col].dtype):
            out[col] = out[col].map(csv_cell)
    out.columns = [csv_cell(c) for c in out.columns]
    return out


def predictions_table(pred: pd.DataFrame, classes: Sequence[str]) -> pd.DataFrame:
    """Predictions with class names, correctness and confidence (one row per tested clip)."""
    names = list(classes)
    probs = pred["probs"].tolist() if "probs" in pred else [[] for _ in range(len(pred))]
    out = pd.DataFrame({
        "sample_id": pred["sample_id"].astype(str),
        "subject": pred["subject"].astype(str),
        "part": pred["part"].astype(str) if "part" in pred else "",
        "clip": pred["clip"].astype(str) if "clip" in pred else "",
        "fold": pred["fold"].astype(int) if "fold" in pred else 0,
        "true": [names[i] for i in pred["y_true"].astype(int)],
        "predicted": [names[i] for i in pred["y_pred"].astype(int)],
        # the integer labels the metrics functions take (mer_core.evaluation.metrics.scores / summarize)
        "y_true": pred["y_true"].astype(int).to_numpy(),
        "y_pred": pred["y_pred"].astype(int).to_numpy(),
        "correct": (pred["y_true"].astype(int) == pred["y_pred"].astype(int)).to_numpy(),
        "confidence": [float(max(p)) if len(p) else float("nan") for p in probs],
        "p_true": [float(p[t]) if len(p) > t else float("nan") for p, t in zip(probs, pred["y_true"].astype(int))],
    })
    if "oracle_pred" in pred and pred["oracle_pred"].notna().any():
        out["oracle_predicted"] = [names[int(i)] if not pd.isna(i) else "" for i in pred["oracle_pred"]]
    for k, name in enumerate(names):
        out[f"prob_{name}"] = [float(p[k]) if len(p) > k else float("nan") for p in probs]
    return out


def run_record(run_id: str, store: RunStore | None = None, *, n_boot: int = 2000) -> dict[str, Any]:
    """The whole run as JSON-ready data (NaN becomes null)."""
    with using_store(store) as store:
        run = store.get_run(run_id)
        pred = store.predictions(run_id)
        folds = store.folds(run_id)
        epochs = store.epochs(run_id)
    classes = list(run["classes"])
    meta = {k: v for k, v in run.items() if k not in ("config_json",)}
    record: dict[str, Any] = {"format": "mer-bench run v1", "run": meta}
    if len(pred):
        ci = bootstrap_intervals(pred, classes, n_boot=n_boot)
        record["intervals"] = {m: iv.as_dict() for m, iv in ci.items()}
        record["intervals_method"] = f"subject-level percentile bootstrap, {n_boot} replicates, seed 0"
        record["per_part"] = part_table(run.get("summary") or {}).to_dict("records")
        subj = per_group(pred, classes, "subject")
        cms = per_subject_confusions(pred, classes)
        subj["confusion"] = [cms[str(s)] for s in subj["subject"]]
        record["per_subject"] = subj.to_dict("records")
    record["folds"] = folds.to_dict("records")
    record["epochs"] = epochs.to_dict("records")
    record["predictions"] = predictions_table(pred, classes).to_dict("records") if len(pred) else []
    return json_safe(record)


def record_json(record: Mapping[str, Any]) -> str:
    """Strict JSON text of a record (no NaN tokens)."""
    return json.dumps(record, indent=1, allow_nan=False)


def stored_record(run_id: str, store: RunStore) -> dict[str, Any]:
    """:func:`run_record` of a stored run; an unknown id is a MerError that says how to list the runs."""
    if not store.has_run(run_id):
        raise MerError(f"no run {run_id!r} in the store {store.path}; list runs with `mer runs`")
    return run_record(run_id, store)


def export_run(run_id: str, fmt: str = "csv", out_dir: str | Path | None = None, *,
               store: RunStore | None = None) -> list[Path]:
    """Write a run as CSV tables (predictions, per_subject, per_part, folds, epochs + run.json)
    or one JSON file. Returns the written paths. Default folder: ``cache/runs/<id>/export``.
    """
    if fmt not in FORMATS:
        raise MerError(f"export format {fmt!r}: expected one of {list(FORMATS)}")
    with using_store(store) as store:
        record = stored_record(run_id, store)
    out = Path(out_dir) if out_dir is not None else run_folder(run_id) / EXPORT_DIR
    if out.exists() and not out.is_dir():
        raise MerError(f"--out {out}: is an existing file; give a folder (it is created if missing)")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise MerError(f"--out {out}: cannot create the folder ({exc.strerror or exc})") from None
    if not os.access(out, os.W_OK):
        raise MerError(f"--out {out}: the folder is not writable")
    safe = run_id.replace("/", "_")
    if fmt == "json":
        path = out / f"{safe}.json"
        path.write_text(record_json(record))
        return [path]
    return write_csvs(record, out, safe)


def write_csvs(record: Mapping[str, Any], out: Path, stem: str) -> list[Path]:
    paths = []
    for key in ("predictions", "per_subject", "per_part", "folds", "epochs"):
        rows = record.get(key) or []
        df = pd.DataFrame(rows)
        for col in df.columns:  # nested values (confusion, test subjects) as JSON text
            if df[col].map(lambda v: isinstance(v, (list, dict))).any():
                df[col] = df[col].map(json.dumps)
        path = out / f"{stem}_{key}.csv"
        csv_safe(df).to_csv(path, index=False)
        paths.append(path)
    meta = {k: record[k] for k in record if k in ("format", "run", "intervals", "intervals_method")}
    path = out / f"{stem}_run.json"
    path.write_text(record_json(meta))
    paths.append(path)
    return paths


def flat_params(config: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """A nested config as flat 'a.b' -> str pairs (MLflow params, hyper-parameter plots)."""
    out: dict[str, str] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            if value:
                out.update(flat_params(value, name + "."))
            else:
                out[name] = "{}"
        elif isinstance(value, (list, tuple)):
            out[name] = ",".join(map(str, value))
        else:
            out[name] = str(value)
    return out


def json_safe(value: Any) -> Any:
    """JSON-safe copy (strict JSON: no NaN tokens): numpy scalars -> Python, NaN/inf -> None, tuples -> lists."""
    if isinstance(value, Mapping):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, np.ndarray):
        return [json_safe(v) for v in value.tolist()]
    if isinstance(value, (np.bool_, bool)):
        return bool(value)
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        value = float(value)
        return None if math.isnan(value) or math.isinf(value) else value
    if value is pd.NA or value is pd.NaT:
        return None
    return value
