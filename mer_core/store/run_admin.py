"""Run management in the run store: rename a run, set its tags and note, delete it with its folder.

The ``tags_json`` and ``note`` columns came with the studies migration
(:data:`mer_core.store.studies.STUDY_MIGRATION`). :class:`RunAdminStoreMixin`
is mixed into :class:`mer_core.store.db.RunStore` (one connection, one migration list).
"""
from __future__ import annotations

import json
import shutil
from typing import Any, Sequence

from mer_core.errors import MerError
from mer_core.store.folders import run_folder


class RunAdminStoreMixin:
    """Run-management methods of RunStore (needs ``self.conn`` and ``self.tx``)."""

    conn: Any
    path: Any

    def _update_run(self, run_id: str, column: str, value: Any) -> None:
        with self.tx() as c:  # type: ignore[attr-defined]
            if c.execute(f"UPDATE runs SET {column}=? WHERE id=?", (value, run_id)).rowcount == 0:
                raise MerError(f"no run {run_id!r} in the store {self.path}")

    def rename_run(self, run_id: str, name: str) -> None:
        self._update_run(run_id, "name", str(name).strip())

    def set_run_tags(self, run_id: str, tags: Sequence[str]) -> list[str]:
        """Replace a run's tags (trimmed, empty ones dropped, each kept once, in order); returns them."""
        clean = list(dict.fromkeys(t.strip() for t in tags if str(t).strip()))
        bad = [t for t in clean if "," in t]
        if bad:
            raise MerError(f"tag {bad[0]!r}: a tag cannot contain a comma (commas separate tags)")
        self._update_run(run_id, "tags_json", json.dumps(clean))
        return clean

    def set_run_note(self, run_id: str, note: str) -> None:
        self._update_run(run_id, "note", str(note))

    def delete_run_with_files(self, run_id: str) -> None:
        """Delete a run's rows and its folder (cache/runs/<id>); refused while it runs or a job will run it."""
        row = self.conn.execute("SELECT status FROM runs WHERE id=?", (run_id,)).fetchone()
        if row is None:
            raise MerError(f"no run {run_id!r} in the store {self.path}")
        job = self.conn.execute("SELECT id, status FROM jobs WHERE run_id=? AND status IN "
                                "('queued','running','cancelling')", (run_id,)).fetchone()
        if row["status"] == "running" or job is not None:
            what = f"its job {job['id']} is {job['status']}" if job else "it is running"
            raise MerError(f"run {run_id} cannot be deleted: {what}; cancel it first")
        with self.tx() as c:  # type: ignore[attr-defined]
            c.execute("DELETE FROM runs WHERE id=?", (run_id,))
        folder = run_folder(run_id, create=False)
        if folder.is_dir():
            shutil.rmtree(folder)
