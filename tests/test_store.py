"""Run store: migration from an empty file, round trip, resume bookkeeping."""
import sqlite3

import pandas as pd
import pytest

from mer_core.config import ExperimentConfig
from mer_core.errors import MerError
from mer_core.store.db import SCHEMA_VERSION, RunStore


def preds(fold, subjects):
    return pd.DataFrame({"sample_id": [f"d/{s}/c" for s in subjects], "subject": subjects, "part": "d",
                         "clip": "c", "y_true": [0] * len(subjects), "y_pred": [0] * len(subjects),
                         "probs": [[0.9, 0.1]] * len(subjects), "oracle_pred": [0] * len(subjects)})


def test_migrates_an_empty_file_and_is_wal(tmp_path):
    path = tmp_path / "runs.sqlite"
    path.touch()  # an empty file, as a first release would find it
    with RunStore(path) as store:
        assert store.schema_version() == SCHEMA_VERSION
        assert store.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert store.list_runs().empty
    with RunStore(path) as store:  # re-opening does not migrate again
        assert store.schema_version() == SCHEMA_VERSION


def test_refuses_a_newer_schema(tmp_path):
    path = tmp_path / "runs.sqlite"
    con = sqlite3.connect(path)
    con.execute(f"PRAGMA user_version={SCHEMA_VERSION + 5}")
    con.close()
    with pytest.raises(MerError, match="newer"):
        RunStore(path)


def test_round_trip(tmp_path):
    cfg = ExperimentConfig(epochs=2)
    with RunStore(tmp_path / "s.sqlite") as store:
        rid = store.create_run(cfg, classes=["neg", "pos"], n_folds=2, n_samples=2, dataset_fingerprint="fp")
        store.start_fold(rid, 0, "a", ["a"], 1, 0, 1)
        store.add_epoch(rid, 0, 1, train_loss=0.5, train_acc=0.8, test_acc=1.0)
        store.finish_fold(rid, 0, preds(0, ["a"]), epochs_run=1, selected_epoch=1, oracle_epoch=1)
        store.start_fold(rid, 1, "b", ["b"], 1, 0, 1)  # unfinished fold
        assert store.completed_folds(rid) == {0}
        assert store.fold_status(rid) == {0: "done", 1: "running"}
        store.finish_run(rid, status="partial", summary={"pooled": {"uf1": 0.5, "uar": 0.6, "accuracy": 0.7}})
        run = store.get_run(rid)
        assert ExperimentConfig.from_json(run["config_json"]) == cfg
        assert run["classes"] == ["neg", "pos"] and run["uf1"] == 0.5 and run["status"] == "partial"
        p = store.predictions(rid)
        assert list(p["sample_id"]) == ["d/a/c"] and p["probs"][0] == [0.9, 0.1]
        assert store.epochs(rid)["train_loss"].tolist() == [0.5]
        runs = store.list_runs()
        assert runs.loc[0, "folds_done"] == 1
        # restarting a fold drops what the unfinished attempt left
        store.add_epoch(rid, 1, 1, train_loss=0.9)
        store.start_fold(rid, 1, "b", ["b"], 1, 0, 1)
        assert store.epochs(rid)["fold_index"].tolist() == [0]
        store.delete_run(rid)
        assert store.list_runs().empty
        assert store.predictions(rid).empty


def test_unknown_run_is_a_clear_error(tmp_path):
    with RunStore(tmp_path / "s.sqlite") as store, pytest.raises(MerError, match="no run 'nope'"):
        store.get_run("nope")
