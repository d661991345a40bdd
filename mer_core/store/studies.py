"""Studies in the run store: the SQL behind studies and their cells.

A *study* (see :mod:`mer_core.jobs.study`) is a named grid of ordinary runs;
the store keeps its definition (JSON) and one ``study_cells`` row per
(arm, seed) naming the job and run of that cell. Cells are never trained
here: this is persistence only. :class:`StudyStoreMixin` is mixed into
:class:`mer_core.store.db.RunStore` (one connection, one migration list).

The schema step that added the study tables also gave runs their tags and
note (``STUDY_MIGRATION``, one released migration, kept whole); the methods
that rename, tag, annotate and delete runs are in :mod:`mer_core.store.run_admin`.
"""
from __future__ import annotations

import json
import time
from typing import Any

import pandas as pd

from mer_core.errors import MerError

# 4 -> 5 (appended to db.MIGRATIONS): studies with their cells; a run's tags and free-text note
STUDY_MIGRATION = """
    CREATE TABLE studies (
        name TEXT PRIMARY KEY,
        created REAL NOT NULL,
        dataset TEXT NOT NULL,
        protocol TEXT NOT NULL,
        definition_json TEXT NOT NULL
    );
    CREATE TABLE study_cells (
        study TEXT NOT NULL REFERENCES studies(name) ON DELETE CASCADE,
        arm TEXT NOT NULL,
        seed INTEGER NOT NULL,
        job_id TEXT NOT NULL DEFAULT '',
        run_id TEXT NOT NULL DEFAULT '',
        PRIMARY KEY (study, arm, seed)
    );
    ALTER TABLE runs ADD COLUMN tags_json TEXT NOT NULL DEFAULT '[]';
    ALTER TABLE runs ADD COLUMN note TEXT NOT NULL DEFAULT ''
"""

CELL_COLUMNS = ["arm", "seed", "job_id", "run_id", "job_status", "run_status", "folds_done", "n_folds", "uf1", "uar",
                "error", "kind", "f1", "micro_f1", "macro_f1"]


class StudyStoreMixin:
    """Study methods of RunStore (needs ``self.conn`` and ``self.tx``)."""

    conn: Any
    path: Any

    # --- studies -----------------------------------------------------------------
    def create_study(self, name: str, *, dataset: str, protocol: str, definition: dict[str, Any]) -> None:
        with self.tx() as c:  # type: ignore[attr-defined]
            if c.execute("SELECT 1 FROM studies WHERE name=?", (name,)).fetchone():
                raise MerError(f"a study named {name!r} already exists in {self.path}; pick another name "
                               "or resume it with `mer study resume NAME`")
            c.execute("INSERT INTO studies VALUES (?,?,?,?,?)",
                      (name, time.time(), dataset, protocol, json.dumps(definition, sort_keys=True)))

    def set_study_cell(self, study: str, arm: str, seed: int, *, job_id: str, run_id: str) -> None:
        with self.tx() as c:  # type: ignore[attr-defined]
            c.execute("INSERT OR REPLACE INTO study_cells VALUES (?,?,?,?,?)", (study, arm, int(seed), job_id, run_id))

    def get_study(self, name: str) -> dict[str, Any]:
        """The study's row with its definition parsed; MerError naming the known studies if unknown."""
        row = self.conn.execute("SELECT * FROM studies WHERE name=?", (name,)).fetchone()
        if row is None:
            known = [r[0] for r in self.conn.execute("SELECT name FROM studies ORDER BY created").fetchall()]
            raise MerError(f"no study {name!r} in the store {self.path}; studies: {', '.join(known) or 'none yet'}")
        study = dict(row)
        study["definition"] = json.loads(study.pop("definition_json"))
        return study

    def list_studies(self) -> pd.DataFrame:
        rows = self.conn.execute(
            """SELECT s.name, s.created, s.dataset, s.protocol, COUNT(c.arm) AS cells,
                      SUM(CASE WHEN r.status = 'done' THEN 1 ELSE 0 END) AS done
               FROM studies s LEFT JOIN study_cells c ON c.study = s.name
                    LEFT JOIN (SELECT id, status FROM runs UNION ALL SELECT id, status FROM spot_runs) r
                    ON r.id = c.run_id
               GROUP BY s.name ORDER BY s.created DESC""").fetchall()
        return pd.DataFrame([dict(r) for r in rows], columns=["name", "created", "dataset", "protocol", "cells", "done"])

    def study_cells(self, name: str) -> pd.DataFrame:
        """One row per cell with its job's and run's status (a run not started yet has run_status '').

        ``uf1``/``uar`` are a finished run's; a cancelled or failed run's figures over the folds it finished are
        not the cell's result, so they read as missing (``folds_done`` says how far it got). A spotting study's
        cell (``kind`` 'spotting', its run a spotting run) has ``f1``/``micro_f1``/``macro_f1`` instead, by the
        same rule; a recognition cell's ``kind`` is 'recognition'.
        """
        self.get_study(name)  # an unknown study: the error naming the known ones
        rows = self.conn.execute(
            """SELECT c.arm, c.seed, c.job_id, c.run_id, COALESCE(j.status, '') AS job_status,
                      COALESCE(r.status, sr.status, '') AS run_status,
                      CASE WHEN sr.id IS NULL
                           THEN (SELECT COUNT(*) FROM folds f WHERE f.run_id = c.run_id AND f.status = 'done')
                           ELSE (SELECT COUNT(*) FROM spot_folds f WHERE f.run_id = c.run_id AND f.status = 'done')
                      END AS folds_done,
                      COALESCE(r.n_folds, sr.n_folds, j.n_folds, 0) AS n_folds,
                      CASE WHEN r.status = 'done' THEN r.uf1 END AS uf1,
                      CASE WHEN r.status = 'done' THEN r.uar END AS uar,
                      COALESCE(NULLIF(r.error, ''), NULLIF(sr.error, ''), j.error, '') AS error,
                      CASE WHEN sr.id IS NOT NULL OR j.kind = 'spotting' THEN 'spotting' ELSE 'recognition' END
                      AS kind,
                      CASE WHEN sr.status = 'done' THEN sr.f1 END AS f1,
                      CASE WHEN sr.status = 'done' THEN sr.micro_f1 END AS micro_f1,
                      CASE WHEN sr.status = 'done' THEN sr.macro_f1 END AS macro_f1
               FROM study_cells c LEFT JOIN jobs j ON j.id = c.job_id LEFT JOIN runs r ON r.id = c.run_id
                    LEFT JOIN spot_runs sr ON sr.id = c.run_id
               WHERE c.study = ? ORDER BY c.rowid""", (name,)).fetchall()
        return pd.DataFrame([dict(r) for r in rows], columns=CELL_COLUMNS)
