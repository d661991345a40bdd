"""The run store: every run, fold, epoch and prediction in one SQLite file.

``cache/runs.sqlite`` in WAL mode with a busy timeout, so the dashboard reads
while a worker writes. Writes are short transactions. A fold's predictions,
curves and status are committed together when the fold finishes, so a crash
never leaves a half-stored fold that a resume would trust: resuming retrains
exactly the folds that are not ``done``.

The schema is versioned (mer_core.store.migrations): ``MIGRATIONS[i]`` (SQL, or a Python function of the
connection for a data migration) upgrades version i to i + 1, from an empty
file on. Add a migration, never edit a released one.
"""
from __future__ import annotations

import errno
import json
import os
import shutil
import sqlite3
import subprocess
import time
import urllib.parse
import uuid
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Sequence

import pandas as pd

from mer_core import __version__
from mer_core.errors import MerError
from mer_core.paths import repo_root, store_path
from mer_core.store.folders import check_id
from mer_core.store.migrations import MIGRATIONS, SCHEMA_VERSION
from mer_core.store.jobs import JobStoreMixin
from mer_core.store.liveness import LivenessStoreMixin, run_holder
from mer_core.store.spotting import SpotStoreMixin, _num
from mer_core.store.run_admin import RunAdminStoreMixin
from mer_core.store.studies import StudyStoreMixin

PROGRESS_RETRIES = 5  # extra tries of a progress write when the store is locked beyond its busy timeout
Owner = tuple[int, str]  # (pid, host) of the process that trains a run: the only one that may write it


class RunBusy(MerError):
    """A run cannot be resumed: its process is alive (the message names the run, the pid and the heartbeat)."""


class RunTakenOver(MerError):
    """Another process resumed this run: the process that gets this writes nothing more to it."""


def _writable(path: Path) -> bool:
    return os.access(path, os.W_OK)


def _disk_full(folder: Path) -> bool:
    try:
        return shutil.disk_usage(folder).free < 64 * 1024
    except OSError:
        return False


def _json(value: Any) -> str:
    return json.dumps(value, default=_jsonable, allow_nan=True)


def _jsonable(value: Any) -> Any:
    if hasattr(value, "tolist"):
        return value.tolist()
    if hasattr(value, "item"):
        return value.item()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def code_version() -> str:
    """The git commit of the code (``+dirty`` when modified), or the package version."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short=12", "HEAD"], cwd=repo_root(), capture_output=True, text=True, timeout=5
        )
        if head.returncode == 0:
            dirty = subprocess.run(
                ["git", "status", "--porcelain", "--untracked-files=no"],
                cwd=repo_root(), capture_output=True, text=True, timeout=5,
            )
            return head.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        pass

    return f"mer-bench {__version__}"


def new_run_id(model: str) -> str:
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime())
    return f"{stamp}-{model}-{uuid.uuid4().hex[:4]}"


class RunStore(StudyStoreMixin, RunAdminStoreMixin, JobStoreMixin, LivenessStoreMixin, SpotStoreMixin):
    """Access to the SQLite run store (one connection per instance)."""

    def __init__(self, path: str | Path | None = None, *, timeout_s: float = 30.0, owner: Owner | None = None) -> None:
        self.path = Path(path) if path is not None else store_path()
        # (pid, host) this connection writes runs for: a status, fold or epoch write to a run that another
        # process has claimed since raises RunTakenOver instead (None: unchecked, for tools and tests)
        self.owner: Owner | None = owner
        self.read_only = False  # a store on a read-only mount (or a file nobody may write): inspection only
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise MerError(self._failure(f"cannot create its folder {self.path.parent}", exc)) from None
        try:
            self.conn = self._connect(timeout_s)
            self.conn.row_factory = sqlite3.Row
            if not self.read_only:
                self.conn.execute("PRAGMA journal_mode=WAL")
            self.conn.execute(f"PRAGMA busy_timeout={int(timeout_s * 1000)}")
            self.conn.execute("PRAGMA foreign_keys=ON")
            if not self.read_only:
                self.conn.execute("PRAGMA synchronous=NORMAL")
            self._migrate()
        except sqlite3.DatabaseError as exc:
            raise MerError(self._failure("cannot open", exc)) from exc

    def _connect(self, timeout_s: float) -> sqlite3.Connection:
        """Read-write, or read-only when the store exists but cannot be written (a read-only mount:
        ``immutable``, since nothing can change it and SQLite could not create its shared-memory file)."""
        if self.path.exists() and not _writable(self.path):
            self.read_only = True
            frozen = "" if _writable(self.path.parent) else "&immutable=1"
            uri = f"file:{urllib.parse.quote(str(self.path.resolve()))}?mode=ro{frozen}"
            return sqlite3.connect(uri, uri=True, timeout=timeout_s, isolation_level=None, check_same_thread=False)
        return sqlite3.connect(self.path, timeout=timeout_s, isolation_level=None, check_same_thread=False)

    def _failure(self, what: str, exc: BaseException) -> str:
        """A message that names the store and the real cause: a full disk, a read-only store, a damaged file."""
        text = str(getattr(exc, "strerror", None) or exc)
        code = getattr(exc, "errno", None)
        if "full" in text or code == errno.ENOSPC or _disk_full(self.path.parent):
            return (f"run store {self.path}: {what}: the disk is full ({text}); free space on the disk that holds "
                    f"{self.path.parent} (the store itself is not damaged)")
        if "readonly" in text or "read-only" in text or code in (errno.EROFS, errno.EACCES, errno.EPERM) \
                or not _writable(self.path.parent):
            return (f"run store {self.path}: {what}: it is read-only ({text}); runs can be listed, shown and "
                    "exported from a store that exists, nothing can be written there")
        if "not a database" in text or "malformed" in text:
            return f"run store {self.path}: {what} ({text}); the file is damaged: move it aside to start a new store"
        return f"run store {self.path}: {what} ({text})"

    def _write_error(self, exc: sqlite3.OperationalError) -> BaseException:
        """A write that failed for a full disk or a read-only store, as a MerError naming the store."""
        text = str(exc)
        if "full" in text:
            return MerError(f"run store {self.path}: the disk is full while writing to it ({text}); the change was "
                            f"not stored: free space on the disk that holds {self.path.parent}")
        if "readonly" in text or self.read_only:
            return MerError(f"run store {self.path} is read-only ({text}): runs can be listed, shown and exported, "
                            "not changed; use a writable copy or MER_STORE to write")
        return exc

    # --- plumbing --------------------------------------------------------
    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> "RunStore":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    @contextmanager
    def tx(self) -> Iterator[sqlite3.Connection]:
        """A short write transaction (BEGIN IMMEDIATE ... COMMIT); a full disk or a read-only store is a
        MerError that names the store."""
        try:
            self.conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            raise self._write_error(exc) from exc
        try:
            yield self.conn
            self.conn.execute("COMMIT")
        except BaseException as exc:
            if self.conn.in_transaction:
                self.conn.execute("ROLLBACK")
            if isinstance(exc, sqlite3.OperationalError):
                raise self._write_error(exc) from exc
            raise

    def schema_version(self) -> int:
        return int(self.conn.execute("PRAGMA user_version").fetchone()[0])

    def _migrate(self) -> None:
        version = self.schema_version()
        if version > SCHEMA_VERSION:
            raise MerError(
                f"run store {self.path} has schema version {version}, newer than this code ({SCHEMA_VERSION}); "
                "update MER Bench"
            )
        if self.read_only and version < SCHEMA_VERSION:
            raise MerError(f"run store {self.path} has schema version {version} and needs an upgrade to "
                           f"{SCHEMA_VERSION}, but it is read-only; open it once where it can be written")
        for target in range(version, SCHEMA_VERSION):
            step = MIGRATIONS[target]
            with self.tx() as c:
                if callable(step):  # a data migration written in Python
                    step(c)
                else:
                    for statement in _split_sql(step):
                        c.execute(statement)
                c.execute(f"PRAGMA user_version={target + 1}")

    # --- runs ------------------------------------------------------------
    def create_run(
        self,
        config: Any,
        *,
        classes: Sequence[str],
        n_folds: int,
        n_samples: int,
        dataset_fingerprint: str = "",
        device: str = "",
        run_id: str | None = None,
        name: str = "",
        notes: Sequence[str] = (),
    ) -> str:
        run_id = check_id(run_id or new_run_id(config.model))
        with self.tx() as c:
            c.execute(
                """INSERT INTO runs (id, name, status, created, dataset, model, preset, protocol, class_set,
                   classes_json, config_json, config_hash, code_version, dataset_fingerprint, device,
                   n_folds, n_samples, notes_json) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)""",
                (
                    run_id, name, "running", time.time(), config.dataset, config.model, config.preset,
                    config.protocol, config.class_set, _json(list(classes)), config.to_json(),
                    config.stable_hash(), code_version(), dataset_fingerprint, device, n_folds, n_samples,
                    _json(list(notes)),
                ),
            )
            if self.owner is not None:
                c.execute("UPDATE runs SET pid=?, host=?, heartbeat=? WHERE id=?", (*self.owner, time.time(), run_id))
        return run_id

    def claim_run(self, run_id: str) -> None:
        """Mark a stored run running for this store's owner; RunBusy while another live process holds it.

        The check and the claim are one transaction, so of two processes resuming the same run one wins.
        """
        if self.owner is None:
            raise ValueError("claim_run needs a store opened with owner=(pid, host)")
        with self.tx() as c:
            row = c.execute("SELECT status, pid, host, heartbeat, created FROM runs WHERE id=?", (run_id,)).fetchone()
            if row is None:
                raise MerError(f"no run {run_id!r} in the store {self.path}")
            busy = run_holder(run_id, dict(row), self.owner)
            if busy:
                raise RunBusy(busy)
            c.execute("UPDATE runs SET status='running', error='', pid=?, host=?, heartbeat=? WHERE id=?",
                      (*self.owner, time.time(), run_id))

    def check_run_free(self, run_id: str) -> None:
        """RunBusy (naming the run, its pid and the heartbeat's age) while another live process trains it."""
        row = self.conn.execute("SELECT status, pid, host, heartbeat, created FROM runs WHERE id=?",
                                (run_id,)).fetchone()
        busy = run_holder(run_id, dict(row), self.owner) if row is not None else ""
        if busy:
            raise RunBusy(busy)

    def check_owner(self, run_id: str, c: sqlite3.Connection | None = None) -> None:
        """RunTakenOver when this store writes for an owner and another process has claimed ``run_id`` since."""
        if self.owner is None:
            return
        row = (c or self.conn).execute("SELECT pid, host FROM runs WHERE id=?", (run_id,)).fetchone()
        if row is not None and (row["pid"], row["host"] or "") != tuple(self.owner):
            raise RunTakenOver(f"run {run_id} was taken over by pid {row['pid']} on {row['host'] or 'this machine'} "
                               f"(resumed there); this process (pid {self.owner[0]}) stops and writes nothing more "
                               "to it")

    @contextmanager
    def owned(self, run_id: str) -> Iterator[None]:
        """Hold the write lock with :meth:`check_owner` passed: a takeover, which must write the run's row, cannot
        come between the check and what the caller does inside (such as replacing a file of the run's folder)."""
        with self.tx() as c:
            self.check_owner(run_id, c)
            yield

    def _owned(self, c: sqlite3.Connection, run_id: str, changed: int) -> None:
        """After an UPDATE of the run row guarded by :meth:`_owner_sql`: no row changed = taken over."""
        if self.owner is not None and not changed and c.execute("SELECT 1 FROM runs WHERE id=?", (run_id,)).fetchone():
            self.check_owner(run_id, c)

    def _owner_sql(self) -> tuple[str, tuple[Any, ...]]:
        if self.owner is None:
            return "", ()
        return " AND pid=? AND host=?", tuple(self.owner)

    def set_run_status(self, run_id: str, status: str, error: str = "") -> None:
        where, params = self._owner_sql()
        with self.tx() as c:
            n = c.execute(f"UPDATE runs SET status=?, error=? WHERE id=?{where}", (status, error, run_id, *params))
            self._owned(c, run_id, n.rowcount)

    def finish_run(self, run_id: str, *, status: str, summary: dict | None = None, wall_time: float = 0.0,
                   error: str = "") -> None:
        summary = summary or {}
        pooled = summary.get("pooled", {})
        oracle = summary.get("oracle", {}) or {}
        where, params = self._owner_sql()
        with self.tx() as c:
            n = c.execute(
                f"""UPDATE runs SET status=?, finished=?, uf1=?, uar=?, accuracy=?, oracle_uf1=?, oracle_uar=?,
                   summary_json=?, wall_time=wall_time + ?, error=? WHERE id=?{where}""",
                (
                    status, time.time(), _num(pooled.get("uf1")), _num(pooled.get("uar")),
                    _num(pooled.get("accuracy")), _num(oracle.get("uf1")), _num(oracle.get("uar")),
                    _json(summary), wall_time, error, run_id, *params,
                ),
            )
            self._owned(c, run_id, n.rowcount)

    def add_run_note(self, run_id: str, note: str) -> None:
        """Append ``note`` to the run's stored notes (shown with the run), once."""
        with self.tx() as c:
            row = c.execute("SELECT notes_json FROM runs WHERE id=?", (run_id,)).fetchone()
            notes = json.loads(row[0] or "[]") if row is not None else []
            if row is not None and note not in notes:
                c.execute("UPDATE runs SET notes_json=? WHERE id=?", (_json(notes + [note]), run_id))

    def list_runs(self) -> pd.DataFrame:
        cursor = self.conn.execute(
            """SELECT id, name, status, created, finished, dataset, model, preset, protocol, class_set,
                      n_folds, n_samples, uf1, uar, accuracy, oracle_uf1, oracle_uar, wall_time, device,
                      config_hash, code_version, tags_json, note,
                      (SELECT COUNT(*) FROM folds f WHERE f.run_id = runs.id AND f.status = 'done') AS folds_done
               FROM runs ORDER BY created DESC""")
        cols = ["tags" if d[0] == "tags_json" else d[0] for d in cursor.description]  # tags parsed below
        records = [{**dict(r), "tags": json.loads(r["tags_json"] or "[]")} for r in cursor.fetchall()]
        return pd.DataFrame(records, columns=cols)

    def get_run(self, run_id: str) -> dict[str, Any]:
        row = self.conn.execute("SELECT * FROM runs WHERE id=?", (run_id,)).fetchone()
        if row is None:
            raise MerError(f"no run {run_id!r} in the store {self.path}")
        run = dict(row)
        run["classes"] = json.loads(run.pop("classes_json"))
        run["config"] = json.loads(run["config_json"])
        run["summary"] = json.loads(run.pop("summary_json") or "{}")
        run["notes"] = json.loads(run.pop("notes_json") or "[]")
        run["tags"] = json.loads(run.pop("tags_json", None) or "[]")
        return run

    def earlier_configs(self, run: dict[str, Any]) -> list[dict[str, Any]]:
        """The configs of the runs created before ``run`` on the same data (its dataset fingerprint), oldest first."""
        rows = self.conn.execute("SELECT config_json FROM runs WHERE created < ? AND dataset_fingerprint = ? AND id != ?"
                                 " ORDER BY created", (run["created"], run["dataset_fingerprint"], run["id"])).fetchall()
        return [json.loads(r["config_json"]) for r in rows]

    def has_run(self, run_id: str) -> bool:
        return self.conn.execute("SELECT 1 FROM runs WHERE id=?", (run_id,)).fetchone() is not None

    def delete_run(self, run_id: str) -> None:
        with self.tx() as c:
            c.execute("DELETE FROM runs WHERE id=?", (run_id,))

    # --- folds -------------------------------------------------------------
    def start_fold(self, run_id: str, fold_index: int, name: str, test_subjects: Sequence[str],
                   n_train: int, n_val: int, n_test: int) -> None:
        """Mark a fold running and drop what a previous, unfinished attempt left."""
        with self.tx() as c:
            self.check_owner(run_id, c)
            c.execute("DELETE FROM epochs WHERE run_id=? AND fold_index=?", (run_id, fold_index))
            c.execute("DELETE FROM predictions WHERE run_id=? AND fold_index=?", (run_id, fold_index))
            c.execute(
                """INSERT OR REPLACE INTO folds (run_id, fold_index, name, test_subjects_json, status,
                   n_train, n_val, n_test, started) VALUES (?,?,?,?,?,?,?,?,?)""",
                (run_id, fold_index, name, _json(list(test_subjects)), "running", n_train, n_val, n_test, time.time()),
            )

    def add_epoch(self, run_id: str, fold_index: int, epoch: int, **values: Any) -> None:
        cols = ["train_loss", "train_acc", "val_loss", "val_acc", "val_uf1", "test_acc", "test_uf1", "lr"]
        unknown = set(values) - set(cols)
        if unknown:
            raise ValueError(f"unknown epoch field(s) {sorted(unknown)}; valid: {cols}")
        sql = (f"INSERT OR REPLACE INTO epochs (run_id, fold_index, epoch, {', '.join(cols)}) "
               f"VALUES (?,?,?,{','.join('?' * len(cols))})")
        row = (run_id, fold_index, epoch, *[_num(values.get(k)) for k in cols])
        for attempt in range(PROGRESS_RETRIES + 1):  # a progress row is worth a retry, never a failed fold
            try:
                with self.tx() as c:
                    self.check_owner(run_id, c)
                    c.execute(sql, row)
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) and "busy" not in str(exc):
                    raise
                if attempt == PROGRESS_RETRIES:
                    warnings.warn(f"run store {self.path} stayed locked: epoch {epoch} of fold {fold_index} "
                                  "was not recorded (the fold goes on)", stacklevel=2)
                    return
                time.sleep(0.2 * (attempt + 1))

    def finish_fold(self, run_id: str, fold_index: int, predictions: pd.DataFrame, *, epochs_run: int,
                    selected_epoch: int, oracle_epoch: int | None = None, wall_time: float = 0.0,
                    checkpoint: str = "") -> None:
        """Store a fold's predictions and mark it done, in one transaction.

        ``predictions`` columns: sample_id, subject, part, clip, y_true, y_pred,
        probs (sequence of class probabilities), optional oracle_pred.
        """
        rows = [
            (
                run_id, fold_index, str(r.sample_id), str(r.subject), str(getattr(r, "part", "")),
                str(getattr(r, "clip", "")), int(r.y_true), int(r.y_pred), _json([float(p) for p in r.probs]),
                None if getattr(r, "oracle_pred", None) is None else int(r.oracle_pred),
            )
            for r in predictions.itertuples(index=False)
        ]
        with self.tx() as c:
            self.check_owner(run_id, c)
            c.execute("DELETE FROM predictions WHERE run_id=? AND fold_index=?", (run_id, fold_index))
            c.executemany("INSERT INTO predictions VALUES (?,?,?,?,?,?,?,?,?,?)", rows)
            c.execute(
                """UPDATE folds SET status='done', epochs_run=?, selected_epoch=?, oracle_epoch=?, wall_time=?,
                   finished=?, checkpoint=? WHERE run_id=? AND fold_index=?""",
                (epochs_run, selected_epoch, oracle_epoch, wall_time, time.time(), checkpoint, run_id, fold_index),
            )

    def fold_status(self, run_id: str) -> dict[int, str]:
        rows = self.conn.execute("SELECT fold_index, status FROM folds WHERE run_id=?", (run_id,)).fetchall()
        return {int(r[0]): str(r[1]) for r in rows}

    def completed_folds(self, run_id: str) -> set[int]:
        return {k for k, s in self.fold_status(run_id).items() if s == "done"}

    def folds(self, run_id: str) -> pd.DataFrame:
        df = pd.read_sql_query("SELECT * FROM folds WHERE run_id=? ORDER BY fold_index", self.conn, params=(run_id,))
        df["test_subjects"] = df.pop("test_subjects_json").map(json.loads)
        return df

    def epochs(self, run_id: str) -> pd.DataFrame:
        return pd.read_sql_query(
            "SELECT * FROM epochs WHERE run_id=? ORDER BY fold_index, epoch", self.conn, params=(run_id,)
        )

    def predictions(self, run_id: str) -> pd.DataFrame:
        df = pd.read_sql_query(
            "SELECT * FROM predictions WHERE run_id=? ORDER BY fold_index, sample_id", self.conn, params=(run_id,)
        )
        df["probs"] = df.pop("probs_json").map(json.loads)
        df = df.rename(columns={"fold_index": "fold"})
        return df


@contextmanager
def using_store(store: RunStore | None) -> Iterator[RunStore]:
    """The given store (left open), or a RunStore opened for the block and closed after it."""
    own = store is None
    store = store or RunStore()
    try:
        yield store
    finally:
        if own:
            store.close()


def _split_sql(script: str) -> list[str]:
    return [s.strip() for s in script.split(";") if s.strip()]
