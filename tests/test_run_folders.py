"""Run folders: ids that cannot leave cache/runs/, a table that is never pickled, atomic writes."""
from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mer_core.config import ExperimentConfig
from mer_core.errors import MerError
from mer_core.store.db import RunStore
from mer_core.store import folders
from mer_core.store.folders import (atomic_write_text, check_id, load_array, read_table, run_folder, save_array,
                                    write_table)
from mer_core.store.spotting import scores_path

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("bad", ["../../x", "..", "a/b", "/etc", "", "x" * 200, "-rf", "a\nb", "run%", "r..s"])
def test_ids_that_could_name_another_folder_are_refused(bad, isolated_cache):
    with pytest.raises(MerError, match="not valid"):
        check_id(bad)
    with pytest.raises(MerError):
        run_folder(bad)
    assert not any(p.name.startswith(".") for p in Path(isolated_cache).glob("*"))


@pytest.mark.parametrize("good", ["20261201-101010-dense_attention-ab12", "j3-ff00", "with-ckpt", "r.1"])
def test_ordinary_ids_are_accepted(good, isolated_cache):
    assert check_id(good) == good
    assert run_folder(good).is_dir()


def test_the_store_refuses_a_run_id_with_a_path_in_it(isolated_cache):
    cfg = ExperimentConfig.from_dict({"model": "baseline"})
    with RunStore() as store, pytest.raises(MerError, match="not valid"):
        store.create_run(cfg, classes=("a", "b"), n_folds=2, n_samples=4, run_id="../../escape")


def test_job_prefixes_are_literal_not_sql_wildcards(isolated_cache):
    from mer_core.jobs import queue

    with RunStore() as store:
        job_id = queue.submit(ExperimentConfig.from_dict({"model": "baseline"}), store=store, start=False)
        assert queue.get_job(store, job_id[:3])["id"] == job_id
        for pattern in ("j_", "%"):
            with pytest.raises(MerError):
                queue.get_job(store, pattern)


def test_table_round_trip_keeps_values_types_and_frame_tuples(tmp_path):
    table = pd.DataFrame({
        "sample_id": ["s/a/1", "s/b/2"], "onset": [0, 3], "fps": [200.0, float("nan")],
        "apex_estimated": [False, True], "frames": [("/f/1.jpg", "/f/2.jpg"), ()],
        "flow_path": [None, "/x/flow.png"],
    })
    write_table(tmp_path, table)
    back = read_table(tmp_path)
    assert list(back.columns) == list(table.columns)
    assert back["onset"].dtype == np.int64 and back["apex_estimated"].dtype == bool
    assert back.loc[0, "frames"] == ("/f/1.jpg", "/f/2.jpg") and back.loc[1, "frames"] == ()
    assert back.loc[0, "fps"] == 200.0 and np.isnan(back.loc[1, "fps"])
    assert back.loc[1, "flow_path"] == "/x/flow.png"


def test_a_damaged_table_is_a_clear_error(tmp_path):
    (tmp_path / "table.json").write_text('{"format": 1, "columns": ["a"], "rows": [[1, 2]]}')
    with pytest.raises(MerError, match="not a sample table"):
        read_table(tmp_path)
    (tmp_path / "table.json").write_text("not json")
    with pytest.raises(MerError, match="not a sample table"):
        read_table(tmp_path)


def test_arrays_round_trip_and_object_arrays_are_refused(tmp_path):
    x = np.arange(12, dtype=np.float32).reshape(3, 4)
    save_array(tmp_path / "x.npy", x)
    assert np.array_equal(load_array(tmp_path / "x.npy"), x)
    assert np.array_equal(load_array(tmp_path / "x.npy", mmap=True), x)
    with pytest.raises(ValueError):
        save_array(tmp_path / "o.npy", np.array([{"a": 1}], dtype=object))
    assert not (tmp_path / "o.npy").exists() and not list(tmp_path.glob(".*tmp"))


def test_a_failed_write_leaves_the_old_file_intact(tmp_path, monkeypatch):
    path = tmp_path / "state.toml"
    atomic_write_text(path, "old = 1\n")

    def full_disk(*_a, **_k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("os.fsync", full_disk)
    with pytest.raises(OSError):
        atomic_write_text(path, "new = 2\n" * 1000)
    assert path.read_text() == "old = 1\n"
    assert [p.name for p in tmp_path.iterdir()] == ["state.toml"]


def _pickle_calls(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            names = [a.name for a in node.names] + [getattr(node, "module", None) or ""]
            if any(n.split(".")[0] in ("pickle", "cloudpickle", "dill", "joblib") for n in names):
                found.append(f"{path.relative_to(ROOT)}:{node.lineno}: imports a pickle module")
        elif isinstance(node, ast.Attribute) and node.attr in ("read_pickle", "to_pickle"):
            found.append(f"{path.relative_to(ROOT)}:{node.lineno}: {node.attr}")
        elif isinstance(node, ast.keyword) and node.arg in ("allow_pickle", "weights_only"):
            if isinstance(node.value, ast.Constant) and node.value.value is (node.arg == "allow_pickle"):
                found.append(f"{path.relative_to(ROOT)}:{node.lineno}: {node.arg}={node.value.value}")
    return found


def test_nothing_in_the_library_or_dashboard_reads_pickles():
    bad = [hit for top in ("mer_core", "dashboard") for p in sorted((ROOT / top).rglob("*.py"))
           for hit in _pickle_calls(p)]
    assert not bad, "pickle in what MER Bench reads back:\n" + "\n".join(bad)


def test_the_run_folder_layout_keeps_the_names_stored_runs_have_on_disk(isolated_cache):
    """Folders written by earlier versions are read back: every name below is on disk already."""
    names = [folders.INPUTS_FILE, folders.LABELS_FILE, folders.TABLE_FILE, folders.PRETRAIN_FILE,
             folders.FINAL_CHECKPOINT, folders.FINAL_RECORD, folders.fold_checkpoint_name(3),
             folders.EXPORT_DIR, folders.EXPLAIN_DIR, folders.report_name("k"), folders.REPORT_GLOB,
             folders.localisation_name("k"), folders.explanation_name("saliency", "k"),
             str(scores_path("r1", 3).relative_to(run_folder("r1")))]
    assert names == ["inputs.npy", "labels.npy", "table.json", "pretrain.json", "final.pt", "final.json",
                     "fold_003.pt", "export", "explain", "report-k.json", "report-*.json", "localisation-k.json",
                     "saliency-k.npz", "spotting/fold_003.npz"]


def test_earlier_configs_are_the_older_runs_on_the_same_data(isolated_cache):
    with RunStore() as store:
        def make(model: str, fingerprint: str) -> str:
            cfg = ExperimentConfig.from_dict({"model": model})
            return store.create_run(cfg, classes=("a", "b"), n_folds=2, n_samples=4, dataset_fingerprint=fingerprint)

        first = make("baseline", "f1")
        make("linear", "f2")
        second = make("ststnet", "f1")
        third = make("mfdan", "f1")
        models = [c["model"] for c in store.earlier_configs(store.get_run(third))]
        assert models == ["baseline", "ststnet"]  # same data, created before, oldest first; not itself, not f2
        assert store.earlier_configs(store.get_run(first)) == []
        assert [c["model"] for c in store.earlier_configs(store.get_run(second))] == ["baseline"]
