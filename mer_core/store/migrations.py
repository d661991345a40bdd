"""The run store's schema history: ``MIGRATIONS[i]`` upgrades version i to i + 1.

Each step is SQL, or a Python function of the connection for a data
migration. Add a migration, never edit a released one.
"""
from __future__ import annotations

import json
import sqlite3
from typing import Callable

from mer_core.config import ExperimentConfig
from mer_core.errors import ConfigError
from mer_core.store.spotting import SPOT_MIGRATION
from mer_core.store.studies import STUDY_MIGRATION

MIGRATIONS: list[str | Callable[[sqlite3.Connection], None]] = [
    # 0 -> 1: the first release
    """
    CREATE TABLE runs (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL DEFAULT '',
        status TEXT NOT NULL,
        created REAL NOT NULL,
        finished REAL,
        dataset TEXT NOT NULL,
        model TEXT NOT NULL,
        preset TEXT NOT NULL DEFAULT '',
        protocol TEXT NOT NULL,
        class_set TEXT NOT NULL DEFAULT '',
        classes_json TEXT NOT NULL DEFAULT '[]',
        config_json TEXT NOT NULL,
        config_hash TEXT NOT NULL,
        code_version TEXT NOT NULL DEFAULT '',
        dataset_fingerprint TEXT NOT NULL DEFAULT '',
        device TEXT NOT NULL DEFAULT '',
        n_folds INTEGER NOT NULL DEFAULT 0,
        n_samples INTEGER NOT NULL DEFAULT 0,
        uf1 REAL, uar REAL, accuracy REAL,
        oracle_uf1 REAL, oracle_uar REAL,
        summary_json TEXT NOT NULL DEFAULT '{}',
        wall_time REAL NOT NULL DEFAULT 0,
        error TEXT NOT NULL DEFAULT '',
        notes_json TEXT NOT NULL DEFAULT '[]'
    );
    CREATE TABLE folds (
        run_id TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
        fold_index INTEGER NOT NULL,
        name TEXT NOT NULL,
        test_subjects_json TEXT NOT NULL DEFAULT '[]',
        status TEXT NOT NULL,
        n_train INTEGER, n_val INTEGER, n_test INTEGER,
        epochs_run INTEGER, selected_epoch INTEGER, oracle_epoch INTEGER,
        wall_time REAL, started REAL, finished REAL,
        checkpoint TEXT NOT NULL DEFAULT '',
        PRIMARY KEY (run_id, fold_index)
    );
    CREATE TABLE epochs (
        run_id TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
        fold_index INTEGER NOT NULL,
        epoch INTEGER NOT NULL,
        train_loss REAL, train_acc REAL,
        val_loss REAL, val_acc REAL, val_uf1 REAL,
        test_acc REAL, test_uf1 REAL,
        lr REAL,
        PRIMARY KEY (run_id, fold_index, epoch)
    );
    CREATE TABLE predictions (
        run_id TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
        fold_index INTEGER NOT NULL,
        sample_id TEXT NOT NULL,
        subject TEXT NOT NULL,
        part TEXT NOT NULL DEFAULT '',
        clip TEXT NOT NULL DEFAULT '',
        y_true INTEGER NOT NULL,
        y_pred INTEGER NOT NULL,
        probs_json TEXT NOT NULL,
        oracle_pred INTEGER,
        PRIMARY KEY (run_id, sample_id)
    );
    CREATE TABLE artifacts (
        run_id TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
        kind TEXT NOT NULL,
        path TEXT NOT NULL,
        created REAL NOT NULL,
        PRIMARY KEY (run_id, kind, path)
    );
    CREATE INDEX predictions_run ON predictions(run_id, fold_index);
    """,
    # 1 -> 2: background jobs (the queue: mer_core/jobs/queue.py, its SQL: mer_core/store/jobs.py)
    """
    CREATE TABLE jobs (
        id TEXT PRIMARY KEY,
        seq INTEGER NOT NULL,
        priority INTEGER NOT NULL DEFAULT 0,
        name TEXT NOT NULL DEFAULT '',
        created REAL NOT NULL,
        started REAL, finished REAL,
        config_json TEXT NOT NULL,
        run_id TEXT NOT NULL,
        status TEXT NOT NULL,
        host TEXT NOT NULL DEFAULT '',
        pid INTEGER, gpu INTEGER, heartbeat REAL,
        attempts INTEGER NOT NULL DEFAULT 0,
        stage TEXT NOT NULL DEFAULT '',
        fold INTEGER, n_folds INTEGER, folds_done INTEGER NOT NULL DEFAULT 0,
        epoch INTEGER, epochs INTEGER, loss REAL, eta_s REAL,
        progress REAL NOT NULL DEFAULT 0,
        message TEXT NOT NULL DEFAULT '',
        cancel INTEGER NOT NULL DEFAULT 0,
        resumable INTEGER NOT NULL DEFAULT 0,
        error TEXT NOT NULL DEFAULT '',
        log_path TEXT NOT NULL DEFAULT ''
    );
    CREATE INDEX jobs_queue ON jobs(status, priority, seq);
    """,
]

# What class set '' meant for each dataset when runs and jobs could still store it
# (DatasetInfo.default_class_set at schema 2). Frozen with migration 2 -> 3: the
# store sits below the datasets and must not ask them.
CLASS_SET_DEFAULTS_V2 = {
    "casme2": "casme2_5", "casme3": "casme3_7", "manifest": "native", "megc2019": "composite3",
    "samm": "samm_5", "smic": "composite3", "synthetic": "composite3", "synthetic-macro": "native",
}


def _resolved_config_json(text: str, dataset: str) -> tuple[str, str | None]:
    """(config JSON with class_set '' resolved, its new stable hash or None when the config no longer loads)."""
    data = json.loads(text)
    if not isinstance(data, dict) or data.get("class_set", "") or dataset not in CLASS_SET_DEFAULTS_V2:
        return text, None
    data["class_set"] = CLASS_SET_DEFAULTS_V2[dataset]
    try:
        config = ExperimentConfig.from_dict(data)
    except ConfigError:  # a config of older code: rewrite the key, keep the rest as it was
        return json.dumps(data, sort_keys=True, indent=1), None
    return config.to_json(), config.stable_hash()


def _migrate_class_sets(c: sqlite3.Connection) -> None:
    """2 -> 3: runs and jobs that stored class set '' get the name it meant (see CLASS_SET_DEFAULTS_V2)."""
    for run_id, dataset, text in c.execute("SELECT id, dataset, config_json FROM runs WHERE class_set = ''").fetchall():
        if dataset in CLASS_SET_DEFAULTS_V2:
            new_text, new_hash = _resolved_config_json(text, dataset)
            c.execute("UPDATE runs SET class_set=?, config_json=?, config_hash=COALESCE(?, config_hash) WHERE id=?",
                      (CLASS_SET_DEFAULTS_V2[dataset], new_text, new_hash, run_id))
    for job_id, text in c.execute("SELECT id, config_json FROM jobs").fetchall():
        try:
            dataset = json.loads(text).get("dataset", "")
        except (json.JSONDecodeError, AttributeError):
            continue
        new_text, _ = _resolved_config_json(text, dataset)
        if new_text != text:
            c.execute("UPDATE jobs SET config_json=? WHERE id=?", (new_text, job_id))


MIGRATIONS.append(_migrate_class_sets)  # 2 -> 3: class set '' resolved
# 3 -> 4: runs keep a heartbeat and their process, like worker jobs, so a killed `mer loso` is found dead
MIGRATIONS.append("""
    ALTER TABLE runs ADD COLUMN heartbeat REAL;
    ALTER TABLE runs ADD COLUMN pid INTEGER;
    ALTER TABLE runs ADD COLUMN host TEXT NOT NULL DEFAULT ''
""")
MIGRATIONS.append(STUDY_MIGRATION)  # 4 -> 5: studies + study_cells; runs get tags and a note (store/studies.py)

JOB_KINDS = ("experiment", "explain_report")  # jobs.kind: a LOSO experiment, or the explanation report of a run


def _job_kind_column(c: sqlite3.Connection) -> None:
    """5 -> 6: the job kind becomes a column (it was a ``"job"`` key inside config_json, absent for experiments);
    runs get the cancel flag that every process training them polls; the never-used artifacts table goes."""
    c.execute("ALTER TABLE jobs ADD COLUMN kind TEXT NOT NULL DEFAULT 'experiment'")
    c.execute("ALTER TABLE runs ADD COLUMN cancel INTEGER NOT NULL DEFAULT 0")
    c.execute("DROP TABLE IF EXISTS artifacts")
    for job_id, text in c.execute("SELECT id, config_json FROM jobs").fetchall():
        try:
            data = json.loads(text)
        except json.JSONDecodeError:
            continue
        if isinstance(data, dict) and "job" in data:
            kind = data.pop("job")
            c.execute("UPDATE jobs SET kind=?, config_json=? WHERE id=?",
                      (kind if kind in JOB_KINDS else "experiment", json.dumps(data), job_id))


MIGRATIONS.append(_job_kind_column)  # 5 -> 6
MIGRATIONS.append(SPOT_MIGRATION)  # 6 -> 7: spotting runs, their folds and intervals (store/spotting.py)

SCHEMA_VERSION = len(MIGRATIONS)
