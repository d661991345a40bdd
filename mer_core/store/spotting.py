"""Spotting runs in the run store: the SQL behind ``mer spot`` and the Spotting page.

A spotting run (:mod:`mer_core.spotting.loso`) is not a recognition run: it
has no classes, epochs or checkpoints, and the recognition pages must not
list it. It has its own tables:

* ``spot_runs``: one row per run (dataset, spotter, config, status, the
  videos it covers, the pooled figures once finished, its process);
* ``spot_folds``: one row per LOSO fold (the held-out subject, the training
  and test videos, the threshold and peak distance the fold chose on its
  training videos, status);
* ``spot_intervals``: the test videos' ground-truth and predicted intervals
  of every finished fold (``source`` 'truth' or 'predicted'), with the
  recognised label and probabilities once a recognition run classified them.

A fold's intervals and its ``done`` status are written in one transaction,
so a resumed run trusts exactly the folds marked done. The per-frame scores of
the test videos (the curve a timeline draws) are arrays in the run folder:
``cache/runs/<run id>/spotting/fold_<k>.npz`` (:func:`scores_path`), read
without pickles. :class:`SpotStoreMixin` is mixed into
:class:`mer_core.store.db.RunStore` (one connection, one migration list).
"""
from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any, Sequence

import pandas as pd

from mer_core.errors import MerError
from mer_core.store.folders import SPOTTING_DIR, check_id, fold_scores_name, run_folder
from mer_core.store.liveness import run_holder

# 6 -> 7 (appended to the migrations): spotting runs, their folds and intervals
SPOT_MIGRATION = """
    CREATE TABLE spot_runs (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL DEFAULT '',
        status TEXT NOT NULL,
        created REAL NOT NULL,
        finished REAL,
        dataset TEXT NOT NULL,
        spotter TEXT NOT NULL,
        config_json TEXT NOT NULL,
        code_version TEXT NOT NULL DEFAULT '',
        n_folds INTEGER NOT NULL DEFAULT 0,
        n_videos INTEGER NOT NULL DEFAULT 0,
        videos_json TEXT NOT NULL DEFAULT '[]',
        f1 REAL, micro_f1 REAL, macro_f1 REAL, strs REAL,
        summary_json TEXT NOT NULL DEFAULT '{}',
        wall_time REAL NOT NULL DEFAULT 0,
        error TEXT NOT NULL DEFAULT '',
        pid INTEGER, host TEXT NOT NULL DEFAULT '', heartbeat REAL
    );
    CREATE TABLE spot_folds (
        run_id TEXT NOT NULL REFERENCES spot_runs(id) ON DELETE CASCADE,
        fold_index INTEGER NOT NULL,
        subject TEXT NOT NULL,
        status TEXT NOT NULL,
        params_json TEXT NOT NULL DEFAULT '{}',
        train_videos_json TEXT NOT NULL DEFAULT '[]',
        test_videos_json TEXT NOT NULL DEFAULT '[]',
        wall_time REAL, started REAL, finished REAL,
        PRIMARY KEY (run_id, fold_index)
    );
    CREATE TABLE spot_intervals (
        run_id TEXT NOT NULL REFERENCES spot_runs(id) ON DELETE CASCADE,
        fold_index INTEGER NOT NULL,
        source TEXT NOT NULL,
        video TEXT NOT NULL,
        subject TEXT NOT NULL,
        onset INTEGER NOT NULL,
        apex INTEGER,
        offset INTEGER NOT NULL,
        type TEXT NOT NULL,
        label TEXT NOT NULL DEFAULT '',
        score REAL,
        pred_label TEXT NOT NULL DEFAULT '',
        probs_json TEXT NOT NULL DEFAULT ''
    );
    CREATE INDEX spot_intervals_run ON spot_intervals(run_id, fold_index)
"""

SPOT_RUN_COLUMNS = ["id", "name", "status", "created", "finished", "dataset", "spotter", "n_folds", "n_videos", "f1",
                    "micro_f1", "macro_f1", "strs", "wall_time", "folds_done", "error"]
INTERVAL_COLUMNS = ["fold", "source", "video", "subject", "onset", "apex", "offset", "type", "label", "score",
                    "pred_label", "probs"]


def scores_path(run_id: str, fold_index: int, *, create: bool = True) -> Path:
    """``cache/runs/<run id>/spotting/fold_<k>.npz``: the per-frame scores of a fold's test videos."""
    folder = run_folder(run_id, create=create) / SPOTTING_DIR
    if create:
        folder.mkdir(parents=True, exist_ok=True)
    return folder / fold_scores_name(fold_index)


def _num(value: Any) -> float | None:
    """A figure as the run store keeps it (here and in db.py): a float, or None for a missing value or NaN."""
    if value is None:
        return None
    value = float(value)
    return None if math.isnan(value) else value


class SpotStoreMixin:
    """Spotting-run methods of RunStore (needs ``self.conn``, ``self.tx`` and ``self.path``)."""

    conn: Any
    path: Any

    # --- runs ------------------------------------------------------------------------
    def create_spot_run(self, run_id: str, *, dataset: str, spotter: str, config_json: str, n_folds: int,
                        videos: Sequence[dict[str, Any]], name: str = "", code_version: str = "",
                        owner: tuple[int, str] | None = None) -> str:
        run_id = check_id(run_id)
        with self.tx() as c:  # type: ignore[attr-defined]
            c.execute(
                """INSERT INTO spot_runs (id, name, status, created, dataset, spotter, config_json, code_version,
                   n_folds, n_videos, videos_json, pid, host, heartbeat) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)""",
                (run_id, name, "running", time.time(), dataset, spotter, config_json, code_version, n_folds,
                 len(videos), json.dumps(list(videos), default=str), *(owner or (None, "")), time.time()),
            )
        return run_id

    def has_spot_run(self, run_id: str) -> bool:
        return self.conn.execute("SELECT 1 FROM spot_runs WHERE id=?", (run_id,)).fetchone() is not None

    def get_spot_run(self, run_id: str) -> dict[str, Any]:
        row = self.conn.execute("SELECT * FROM spot_runs WHERE id=?", (check_id(run_id),)).fetchone()
        if row is None:
            raise MerError(f"no spotting run {run_id!r} in the store {self.path}; see `mer spot --list`")
        run = dict(row)
        run["config"] = json.loads(run["config_json"])
        run["videos"] = json.loads(run.pop("videos_json") or "[]")
        run["summary"] = json.loads(run.pop("summary_json") or "{}")
        return run

    def list_spot_runs(self) -> pd.DataFrame:
        rows = self.conn.execute(
            """SELECT id, name, status, created, finished, dataset, spotter, n_folds, n_videos, f1, micro_f1,
                      macro_f1, strs, wall_time, error,
                      (SELECT COUNT(*) FROM spot_folds f WHERE f.run_id = spot_runs.id AND f.status = 'done')
                      AS folds_done
               FROM spot_runs ORDER BY created DESC""").fetchall()
        return pd.DataFrame([dict(r) for r in rows], columns=SPOT_RUN_COLUMNS)

    def claim_spot_run(self, run_id: str, owner: tuple[int, str]) -> None:
        """Mark a stored spotting run running for ``owner``; MerError while another live process holds it."""
        with self.tx() as c:  # type: ignore[attr-defined]
            row = c.execute("SELECT status, pid, host, heartbeat, created FROM spot_runs WHERE id=?",
                            (run_id,)).fetchone()
            if row is None:
                raise MerError(f"no spotting run {run_id!r} in the store {self.path}")
            busy = run_holder(run_id, dict(row), owner)
            if busy:
                raise MerError(busy)
            c.execute("UPDATE spot_runs SET status='running', error='', pid=?, host=?, heartbeat=? WHERE id=?",
                      (*owner, time.time(), run_id))

    def finish_spot_run(self, run_id: str, *, status: str, summary: dict[str, Any], wall_time: float = 0.0,
                        error: str = "") -> None:
        overall = summary.get("scores", {})
        with self.tx() as c:  # type: ignore[attr-defined]
            c.execute(
                """UPDATE spot_runs SET status=?, finished=?, f1=?, micro_f1=?, macro_f1=?, strs=?, summary_json=?,
                   wall_time=wall_time + ?, error=? WHERE id=?""",
                (status, time.time(), _num(overall.get("overall", {}).get("f1")),
                 _num(overall.get("micro", {}).get("f1")), _num(overall.get("macro", {}).get("f1")),
                 _num(summary.get("strs")), json.dumps(summary, default=str, allow_nan=True), wall_time, error,
                 run_id),
            )

    # --- folds -------------------------------------------------------------------------
    def start_spot_fold(self, run_id: str, fold_index: int, subject: str, train_videos: Sequence[str],
                        test_videos: Sequence[str]) -> None:
        """Mark a fold running and drop what a previous, unfinished attempt left."""
        with self.tx() as c:  # type: ignore[attr-defined]
            c.execute("DELETE FROM spot_intervals WHERE run_id=? AND fold_index=?", (run_id, fold_index))
            c.execute(
                """INSERT OR REPLACE INTO spot_folds (run_id, fold_index, subject, status, train_videos_json,
                   test_videos_json, started) VALUES (?,?,?,?,?,?,?)""",
                (run_id, fold_index, subject, "running", json.dumps(list(train_videos)),
                 json.dumps(list(test_videos)), time.time()),
            )
            c.execute("UPDATE spot_runs SET heartbeat=? WHERE id=?", (time.time(), run_id))

    def finish_spot_fold(self, run_id: str, fold_index: int, *, params: dict[str, Any], truth: pd.DataFrame,
                         predicted: pd.DataFrame, wall_time: float = 0.0) -> None:
        """A fold's intervals (truth and predicted: video, subject, onset, apex, offset, type, label / score)
        and its chosen parameters stored, and the fold marked done, in one transaction."""
        rows = [(run_id, fold_index, source, str(r.video), str(r.subject), int(r.onset),
                 None if getattr(r, "apex", None) is None else int(r.apex), int(r.offset), str(r.type),
                 str(getattr(r, "label", "") or ""), _num(getattr(r, "score", None)), "", "")
                for source, table in (("truth", truth), ("predicted", predicted))
                for r in table.itertuples(index=False)]
        with self.tx() as c:  # type: ignore[attr-defined]
            c.execute("DELETE FROM spot_intervals WHERE run_id=? AND fold_index=?", (run_id, fold_index))
            c.executemany("INSERT INTO spot_intervals VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)", rows)
            c.execute("""UPDATE spot_folds SET status='done', params_json=?, wall_time=?, finished=?
                         WHERE run_id=? AND fold_index=?""",
                      (json.dumps(params, allow_nan=True), wall_time, time.time(), run_id, fold_index))
            c.execute("UPDATE spot_runs SET heartbeat=? WHERE id=?", (time.time(), run_id))

    def spot_folds(self, run_id: str) -> pd.DataFrame:
        df = pd.read_sql_query("SELECT * FROM spot_folds WHERE run_id=? ORDER BY fold_index", self.conn,
                               params=(run_id,))
        for col in ("params", "train_videos", "test_videos"):
            df[col] = df.pop(f"{col}_json").map(json.loads)
        return df

    def spot_done_folds(self, run_id: str) -> set[int]:
        rows = self.conn.execute("SELECT fold_index FROM spot_folds WHERE run_id=? AND status='done'",
                                 (run_id,)).fetchall()
        return {int(r[0]) for r in rows}

    # --- intervals ---------------------------------------------------------------------
    def spot_intervals(self, run_id: str, source: str | None = None) -> pd.DataFrame:
        """The stored intervals (``source``: 'truth', 'predicted' or both), one row each, fold order."""
        sql = "SELECT * FROM spot_intervals WHERE run_id=?" + (" AND source=?" if source else "") + \
              " ORDER BY fold_index, video, onset, source"
        df = pd.read_sql_query(sql, self.conn, params=(run_id, source) if source else (run_id,))
        df = df.rename(columns={"fold_index": "fold"})
        df["probs"] = df.pop("probs_json").map(lambda s: json.loads(s) if s else None)
        return df[INTERVAL_COLUMNS]

    def set_spot_labels(self, run_id: str, predicted: pd.DataFrame) -> None:
        """The recognised label and probabilities of predicted intervals (by fold, video, onset, offset, type)."""
        rows = [(str(r.pred_label), json.dumps([float(p) for p in r.probs]), run_id, int(r.fold), str(r.video),
                 int(r.onset), int(r.offset), str(r.type)) for r in predicted.itertuples(index=False)]
        with self.tx() as c:  # type: ignore[attr-defined]
            c.executemany("""UPDATE spot_intervals SET pred_label=?, probs_json=? WHERE run_id=? AND fold_index=?
                             AND source='predicted' AND video=? AND onset=? AND offset=? AND type=?""", rows)
