"""Runs and studies logged to MLflow (optional: ``pip install mlflow-skinny``, the tracking client).

* :func:`log_run`: one MLflow run per stored run. Params are the flattened
  config, metrics the pooled and per-part figures with their subject-level
  bootstrap intervals, artifacts the CSV tables and the JSON record of
  :mod:`mer_core.evaluation.export`.
* :func:`log_study`: one parent run per study and one child run per complete
  cell (``mlflow.parentRunId``, so the MLflow UI nests them). The parent holds
  the definition, each arm's mean and sd over seeds, the paired test and its
  verdict, and the paper table as Markdown, CSV and LaTeX. A child holds its
  cell's config and pooled figures. Cells that are not complete are not logged
  and are named in the parent's ``mer.incomplete`` tag.

The MLflow client API is used, not the fluent one, so nothing here leaves an
active run behind when a call fails; a run that fails half-way is closed as
FAILED. Names MLflow refuses in metric keys (commas, parentheses, ``^``, as in
"MFDAN, batched" or "CAS(ME)^3") are written with ``_`` (:func:`mlflow_key`).

A missing MLflow, or a tracking URI it cannot open, is a :class:`MerError`
that says what to install or which URI to give; never an ImportError trace.
A tracking server that does not accept a connection is given up on after
about 10 s (:data:`GIVE_UP_S`, the message says so), and MLflow's own HTTP
retries are bounded while exporting (:data:`REQUEST_LIMITS`, unless set).
"""
from __future__ import annotations

import contextlib
import os
import re
import socket
import tempfile
import time
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import pandas as pd

from mer_core.errors import MerError
from mer_core.evaluation.export import write_csvs, flat_params, record_json

_BAD_KEY = re.compile(r"[^A-Za-z0-9_\-. /]+")
PARAM_CHARS = 500  # MLflow 3 takes 6000; 500 keeps older tracking servers working
_BATCH = 100  # params per log_batch call (MLflow's limit)
GIVE_UP_S = 10.0  # a tracking server that does not accept a connection for this long is not there
# MLflow's own retries (7, doubling from 2 s, 120 s timeouts) wait over 4 minutes on a dead server;
# these bound them (about 10 s of waiting) unless the user set the variables
REQUEST_LIMITS = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "3", "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
                  "MLFLOW_HTTP_REQUEST_BACKOFF_JITTER": "0", "MLFLOW_HTTP_REQUEST_TIMEOUT": "30"}


@dataclass(frozen=True)
class Logged:
    """What was logged: MLflow run ids (the parent first for a study), where, and the artifact names."""

    run_ids: tuple[str, ...]
    experiment: str
    tracking_uri: str
    artifacts: tuple[str, ...] = ()
    skipped: tuple[str, ...] = ()  # cells not logged (not complete)


def mlflow_key(text: str) -> str:
    """``text`` as an MLflow metric/param key: alphanumerics, ``_ - . /`` and spaces kept, anything else ``_``."""
    key = _BAD_KEY.sub("_", str(text)).strip()
    return key or "_"


def _unique_keys(names: Sequence[str]) -> dict[str, str]:
    """Name -> key, with ``-2``, ``-3``... where two names map to one key ("A, b" and "A; b")."""
    out: dict[str, str] = {}
    used: set[str] = set()
    for name in names:
        key, n = mlflow_key(name), 1
        while key in used:
            n += 1
            key = f"{mlflow_key(name)}-{n}"
        out[name] = key
        used.add(key)
    return out


@contextlib.contextmanager
def bounded_requests() -> Any:
    """MLflow's HTTP retries bounded (:data:`REQUEST_LIMITS`) for the block, or the decorated call; the
    environment restored after."""
    added = {k: v for k, v in REQUEST_LIMITS.items() if k not in os.environ}
    os.environ.update(added)
    try:
        yield
    finally:
        for key in added:
            os.environ.pop(key, None)


def check_server(uri: str, give_up_s: float = GIVE_UP_S) -> None:
    """An http(s) tracking URI must accept a connection within ``give_up_s``; else a MerError that says
    how long it tried (other URIs are left to MLflow)."""
    parsed = urllib.parse.urlparse(uri)
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        return
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    t0, tries, reason = time.monotonic(), 0, ""
    while True:
        tries += 1
        left = give_up_s - (time.monotonic() - t0)
        try:
            with socket.create_connection((parsed.hostname, port), timeout=max(0.5, min(3.0, left))):
                return
        except OSError as exc:
            reason = exc.strerror or str(exc) or type(exc).__name__
        if time.monotonic() - t0 + 1.0 >= give_up_s:
            break
        time.sleep(1.0)
    raise MerError(f"MLflow tracking server {uri} did not answer ({reason}; {tries} tries over "
                   f"{time.monotonic() - t0:.0f} s, then gave up): start it (mlflow server --port {port}) "
                   "or give another --tracking-uri (or MLFLOW_TRACKING_URI)")


def _open(tracking_uri: str | None, experiment: str) -> tuple[Any, str, str]:
    """(client, tracking URI, id of ``experiment``, created if missing); a missing MLflow or an unusable
    tracking URI is a MerError that says what to install or to give."""
    try:
        import mlflow  # lazy: loads mlflow (an optional extra)
        from mlflow.exceptions import MlflowException  # lazy: loads mlflow (an optional extra)
        from mlflow.tracking import MlflowClient  # lazy: loads mlflow (an optional extra)
    except ImportError:
        raise MerError("MLflow export needs the optional package MLflow, which is not installed here: "
                       "pip install mlflow-skinny (or mlflow), or export with another --format") from None
    uri = tracking_uri or mlflow.get_tracking_uri()
    check_server(uri)
    try:
        client = MlflowClient(tracking_uri=uri)
        found = client.get_experiment_by_name(experiment)
        return client, uri, found.experiment_id if found is not None else client.create_experiment(experiment)
    except MlflowException as exc:
        first = str(exc).strip().split(". ")[0]
        raise MerError(f"MLflow tracking URI {uri!r} cannot be used ({first}); give --tracking-uri "
                       "http://HOST:PORT (an MLflow server), or set MLFLOW_TRACKING_URI") from None


def _floats(items: Iterable[tuple[str, Any]]) -> dict[str, float]:
    out = {}
    for key, value in items:
        try:
            value = float(value)
        except (TypeError, ValueError):
            continue
        if value == value and abs(value) != float("inf"):  # NaN / inf are not figures
            out[mlflow_key(key)] = value
    return out


def _log(client: Any, run_id: str, *, params: Mapping[str, Any] = {}, metrics: Mapping[str, float] = {},
         tags: Mapping[str, str] = {}) -> None:
    from mlflow.entities import Metric, Param, RunTag  # lazy: loads mlflow (an optional extra)
    from mlflow.utils.time import get_current_time_millis  # lazy: loads mlflow (an optional extra)

    now = get_current_time_millis()
    ps = [Param(mlflow_key(k), str(v)[:PARAM_CHARS]) for k, v in params.items()]
    ms = [Metric(k, float(v), now, 0) for k, v in metrics.items()]
    ts = [RunTag(k, str(v)[:5000]) for k, v in tags.items()]
    for i in range(0, max(len(ps), len(ms), len(ts), 1), _BATCH):
        client.log_batch(run_id, metrics=ms[i:i + _BATCH], params=ps[i:i + _BATCH], tags=ts[i:i + _BATCH])


class _Run:
    """An MLflow run as a context: FINISHED when the block completes, FAILED when it raises."""

    def __init__(self, client: Any, experiment_id: str, name: str, tags: Mapping[str, str]) -> None:
        self.client = client
        self.id = client.create_run(experiment_id, run_name=name, tags=dict(tags)).info.run_id

    def __enter__(self) -> "_Run":
        return self

    def __exit__(self, kind: Any, *_: Any) -> None:
        self.client.set_terminated(self.id, "FAILED" if kind else "FINISHED")


# --- one run ---------------------------------------------------------------------------
def run_metrics(record: Mapping[str, Any]) -> dict[str, float]:
    """Pooled figures, bootstrap interval ends and per-part UF1/UAR of a run record, as MLflow metric keys."""
    run = record["run"]
    items: list[tuple[str, Any]] = [(k, run.get(k)) for k in
                                    ("uf1", "uar", "accuracy", "oracle_uf1", "oracle_uar", "wall_time")]
    for m, iv in (record.get("intervals") or {}).items():
        items += [(f"{m}_ci_low", iv.get("low")), (f"{m}_ci_high", iv.get("high"))]
    for row in record.get("per_part") or []:
        if row.get("part") != "Full":
            items += [(f"{row['part']}.uf1", row.get("uf1")), (f"{row['part']}.uar", row.get("uar"))]
    return _floats(items)


@bounded_requests()
def log_run(record: Mapping[str, Any], *, tracking_uri: str | None = None) -> Logged:
    """Log one run record (:func:`mer_core.evaluation.export.run_record`) as an MLflow run in
    experiment ``mer-bench/<dataset>``; its CSV tables and JSON record are the artifacts."""
    run = record["run"]
    experiment = f"mer-bench/{run.get('dataset', '?')}"
    client, uri, exp_id = _open(tracking_uri, experiment)
    params = flat_params(run.get("config") or {})
    params.update({"run_id": run.get("id"), "code_version": run.get("code_version", ""),
                   "dataset_fingerprint": run.get("dataset_fingerprint", "")})
    with tempfile.TemporaryDirectory(prefix="mer-mlflow-") as tmp, \
            _Run(client, exp_id, str(run.get("id")), {"mer.run_id": str(run.get("id"))}) as mrun:
        folder = Path(tmp)
        paths = write_csvs(record, folder, "run")
        (folder / "run_record.json").write_text(record_json(record))
        paths.append(folder / "run_record.json")
        _log(client, mrun.id, params=params, metrics=run_metrics(record))
        for path in paths:
            client.log_artifact(mrun.id, str(path))
    return Logged((mrun.id,), experiment, uri, tuple(p.name for p in paths))


# --- one study -------------------------------------------------------------------------
def study_metrics(table: pd.DataFrame, test: Mapping[str, Any]) -> dict[str, float]:
    """Per arm: UF1/UAR mean and sd over seeds, the oracle gap, the UF1 bootstrap interval; the test's p."""
    keys = _unique_keys([str(a) for a in table["arm"]])
    items: list[tuple[str, Any]] = []
    for row in table.to_dict("records"):
        k = keys[str(row["arm"])]
        items += [(f"{k}.{col}", row.get(col)) for col in
                  ("uf1_mean", "uf1_sd", "uar_mean", "uar_sd", "oracle_gap_uf1", "uf1_low", "uf1_high")]
        items.append((f"{k}.complete_seeds", row.get("complete")))
    items.append(("test.p_value", test.get("p_value")))
    return _floats(items)


@bounded_requests()
def log_study(report: Any, definition: Mapping[str, Any], configs: Mapping[str, Mapping[str, Any]],
              tables: Mapping[str, str], *, tracking_uri: str | None = None) -> Logged:
    """Log a study (:class:`mer_core.evaluation.study_stats.StudyReport`) in experiment ``mer-study/<name>``:
    one parent run, one child run per complete cell; ``configs`` maps a cell's run id to its config,
    ``tables`` a file name to its text (the paper table in each format)."""
    experiment = f"mer-study/{report.name}"
    client, uri, exp_id = _open(tracking_uri, experiment)
    cells = report.cells
    done = cells[cells["complete"]]
    skipped = tuple(f"{r.arm} seed {r.seed}" for r in cells[~cells["complete"]].itertuples())
    params = {"dataset": definition.get("dataset", ""), "protocol": definition.get("protocol", ""),
              "seeds": ",".join(map(str, definition.get("seeds", []))),
              "arms": " | ".join(a.get("name", "") for a in definition.get("arms", [])),
              "test": report.test.get("kind", "")}
    params.update(flat_params(definition.get("options") or {}, "options."))
    tags = {"mer.study": report.name, "mer.verdict": report.test.get("verdict", ""),
            "mer.best_arm": report.best, "mer.incomplete": "; ".join(skipped) or "none"}
    ids: list[str] = []
    with tempfile.TemporaryDirectory(prefix="mer-mlflow-") as tmp, \
            _Run(client, exp_id, report.name, {"mer.study": report.name}) as parent:
        ids.append(parent.id)
        _log(client, parent.id, params=params, metrics=study_metrics(report.table, report.test), tags=tags)
        for fname, text in tables.items():
            path = Path(tmp) / fname
            path.write_text(text, encoding="utf-8")
            client.log_artifact(parent.id, str(path))
        for cell in done.itertuples():
            child_tags = {"mlflow.parentRunId": parent.id, "mer.study": report.name, "mer.arm": str(cell.arm),
                          "mer.run_id": str(cell.run_id)}
            with _Run(client, exp_id, f"{cell.arm} seed {cell.seed}", child_tags) as child:
                ids.append(child.id)
                cparams = flat_params(configs.get(str(cell.run_id)) or {})
                cparams.update({"arm": cell.arm, "seed": int(cell.seed), "run_id": cell.run_id})
                _log(client, child.id, params=cparams, metrics=_floats(
                    (k, getattr(cell, k)) for k in ("uf1", "uar", "oracle_uf1", "oracle_uar")))
    return Logged(tuple(ids), experiment, uri, tuple(tables), skipped)
