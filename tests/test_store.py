"""Run store: migration from an empty file, round trip, resume bookkeeping."""
import json
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


def _schema_5_store(path) -> None:
    """A store written by the code before the job kind became a column: the kind was a "job" key in the config."""
    from mer_core.store.migrations import MIGRATIONS

    conn = sqlite3.connect(path)
    for step in MIGRATIONS[:5]:
        if callable(step):
            step(conn)
        else:
            for statement in [s for s in step.split(";") if s.strip()]:
                conn.execute(statement)
    conn.execute("""INSERT INTO runs (id, status, created, dataset, model, protocol, class_set, config_json,
                    config_hash) VALUES ('r1', 'done', 0, 'synthetic', 'baseline', 'loso', 'composite3', '{}', 'h')""")
    conn.execute("INSERT INTO artifacts VALUES ('r1', 'plot', '/tmp/x.png', 0)")
    report = {"job": "explain_report", "run": "r1", "report": {}, "model": "baseline", "dataset": "synthetic",
              "protocol": "explanation report"}
    for seq, (job_id, config) in enumerate([("j1-aaaa", ExperimentConfig(epochs=2).to_json()),
                                            ("j2-bbbb", json.dumps(report)), ("j3-cccc", "not json")], 1):
        conn.execute("INSERT INTO jobs (id, seq, created, config_json, run_id, status) VALUES (?,?,0,?,?,?)",
                     (job_id, seq, config, "r1", "done"))
    conn.execute("PRAGMA user_version=5")
    conn.commit()
    conn.close()


def test_a_store_of_the_old_schema_gets_the_job_kind_column(tmp_path):
    from mer_core.jobs import queue

    path = tmp_path / "runs.sqlite"
    _schema_5_store(path)
    with RunStore(path) as store:
        assert store.schema_version() == SCHEMA_VERSION
        experiment, report, broken = (store.get_job(j) for j in ("j1", "j2", "j3"))
        assert (experiment["kind"], report["kind"], broken["kind"]) == ("experiment", "explain_report", "experiment")
        assert "job" not in report["config"] and report["config"]["run"] == "r1"  # the magic key is gone
        assert ExperimentConfig.from_json(experiment["config_json"]) == ExperimentConfig(epochs=2)
        assert list(queue.list_jobs(store)["kind"]) == ["experiment", "explain_report", "experiment"][::-1]
        assert not store.conn.execute("SELECT name FROM sqlite_master WHERE name='artifacts'").fetchall()
        assert not store.cancel_requested("r1") and store.get_run("r1")["status"] == "done"
        new = store.add_job("{}", "r1", kind="explain_report", log_dir=tmp_path)
        assert store.get_job(new)["kind"] == "explain_report"
        with pytest.raises(ValueError, match="unknown job kind"):
            store.add_job("{}", "r1", kind="job", log_dir=tmp_path)


def test_the_cancel_flag_is_polled_at_a_bounded_interval(tmp_path):
    import time

    with RunStore(tmp_path / "s.sqlite") as store:
        rid = store.create_run(ExperimentConfig(epochs=2), classes=["a", "b"], n_folds=1, n_samples=2)
        reads = []
        real = store.cancel_requested
        store.cancel_requested = lambda run_id: reads.append(time.monotonic()) or real(run_id)
        stop = store.cancel_poll(rid, every_s=0.2)
        assert not stop()
        store.request_cancel(rid)
        t0 = time.monotonic()
        while not stop():  # a check per batch: the store is read at most every 0.2 s, and the cancel seen within it
            assert time.monotonic() - t0 < 1.0
        assert time.monotonic() - t0 <= 0.3 and len(reads) == 2
        assert stop()  # it keeps saying stop
        store.clear_cancel(rid)
        assert not store.cancel_poll(rid)() and store.cancel_poll(rid, also=lambda: True)()


def test_one_heartbeat_thread_beats_a_job_and_its_run_and_sees_the_cancel(tmp_path):
    import threading
    import time

    from mer_core.store.liveness import Heartbeat

    def beating() -> int:
        return sum(t.name == "heartbeat" and t.is_alive() for t in threading.enumerate())

    with RunStore(tmp_path / "s.sqlite") as store:
        rid = store.create_run(ExperimentConfig(epochs=2), classes=["a", "b"], n_folds=1, n_samples=2)
        job = store.add_job("{}", rid, log_dir=tmp_path)
        store.claim_job(job, 1)
        cancelled = threading.Event()
        before = beating()
        job_beat = Heartbeat(store, job_id=job, on_cancel=cancelled.set)  # the worker
        run_beat = Heartbeat(store, run_id=rid)  # the engine, in the same process
        assert beating() == before + 1
        deadline = time.time() + 10
        while not store.get_run(rid)["heartbeat"] and time.time() < deadline:
            time.sleep(0.05)
        assert store.get_run(rid)["heartbeat"] and store.get_run(rid)["pid"]
        assert store.cancel_job(job) == "cancelling" and store.cancel_requested(rid)  # the run's folds see it too
        assert cancelled.wait(5)
        run_beat.stop()
        job_beat.stop()
        assert beating() == before
