"""``mer export RUN [--format csv|json|mlflow] [--out DIR]``: a stored run as files or an MLflow run."""
from __future__ import annotations

import argparse

from mer_core.evaluation.export import export_run, stored_record
from mer_core.evaluation.mlflow_export import log_run
from mer_core.store.db import RunStore


def cmd_export(args: argparse.Namespace) -> int:
    if args.format == "mlflow":
        with RunStore() as store:
            record = stored_record(args.run_id, store)
        logged = log_run(record, tracking_uri=args.tracking_uri)
        print(f"logged run {args.run_id} to MLflow at {logged.tracking_uri}, experiment {logged.experiment!r}, "
              f"run {logged.run_ids[0]} (artifacts: {', '.join(logged.artifacts)})")
        return 0
    for path in export_run(args.run_id, args.format, args.out):
        print(path)
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("export", help="export a stored run as CSV tables, one JSON file, or to MLflow")
    p.add_argument("run_id", metavar="RUN", help="run id (see `mer runs`)")
    p.add_argument("--format", choices=("csv", "json", "mlflow"), default="csv",
                   help="csv: one table per file + run.json (default); json: everything in one file; "
                        "mlflow: log params, metrics and artifacts (pip install mlflow-skinny)")
    p.add_argument("--out", default=None, metavar="DIR",
                   help="output folder (default: cache/runs/RUN/export); ignored for mlflow")
    p.add_argument("--tracking-uri", default=None,
                   help="mlflow: the tracking URI (default: MLFLOW_TRACKING_URI, else MLflow's own default)")
    p.set_defaults(handler=cmd_export)
