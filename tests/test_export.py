"""mer export: CSV tables, one JSON document and the CLI (MLflow: test_mlflow_export.py)."""
import json

import pandas as pd
import pytest

from mer_core.cli import main
from mer_core.errors import MerError
from mer_core.evaluation.export import export_run, flat_params, predictions_table, run_record
from mer_core.store.db import RunStore
from test_results_pages import CLASSES, store_fixture_run


@pytest.fixture
def run_id() -> str:
    return store_fixture_run("export-run", subjects=5, per_subject=4, accuracy=0.6)


def test_json_record_holds_the_whole_run(run_id, tmp_path):
    [path] = export_run(run_id, "json", tmp_path)
    record = json.loads(path.read_text())  # strict JSON: would fail on NaN tokens
    run = RunStore().get_run(run_id)
    assert record["run"]["id"] == run_id and record["run"]["uf1"] == pytest.approx(run["uf1"])
    assert record["run"]["config"]["model"] == "baseline"
    assert len(record["predictions"]) == 20 and len(record["per_subject"]) == 5
    assert sum(sum(map(sum, s["confusion"])) for s in record["per_subject"]) == 20
    iv = record["intervals"]["uf1"]
    assert iv["low"] <= run["uf1"] <= iv["high"]
    assert len(record["epochs"]) == 5 * 4 and len(record["folds"]) == 5
    assert record["per_part"][0]["part"] == "Full"


def test_csv_export_writes_tables_that_round_trip(run_id, tmp_path):
    paths = export_run(run_id, "csv", tmp_path / "out")
    names = sorted(p.name for p in paths)
    expected = [f"export-run_{k}.csv" for k in ("predictions", "per_subject", "per_part", "folds", "epochs")]
    assert names == sorted(expected + ["export-run_run.json"])
    pred = pd.read_csv(tmp_path / "out" / "export-run_predictions.csv")
    stored = RunStore().predictions(run_id)
    assert len(pred) == len(stored)
    merged = pred.merge(stored, on="sample_id", suffixes=("", "_stored"))
    assert (merged["y_true"] == merged["y_true_stored"]).all() and (merged["y_pred"] == merged["y_pred_stored"]).all()
    assert (merged["true"] == [CLASSES[i] for i in merged["y_true"]]).all()
    assert (merged["correct"] == (merged["y_true"] == merged["y_pred"])).all()
    subj = pd.read_csv(tmp_path / "out" / "export-run_per_subject.csv")
    assert json.loads(subj["confusion"].iloc[0])  # nested values stored as JSON text


def test_default_folder_is_inside_the_run_folder(run_id):
    paths = export_run(run_id, "json")
    assert paths[0].parent.name == "export" and paths[0].parent.parent.name == run_id


def test_predictions_table_names_classes_and_confidence():
    pred = pd.DataFrame({"sample_id": ["a", "b"], "subject": ["s1", "s2"], "part": "x", "clip": ["a", "b"],
                         "fold": [0, 1], "y_true": [0, 2], "y_pred": [0, 1],
                         "probs": [[0.7, 0.2, 0.1], [0.1, 0.6, 0.3]], "oracle_pred": [None, None]})
    t = predictions_table(pred, CLASSES)
    assert t["true"].tolist() == ["negative", "surprise"] and t["predicted"].tolist() == ["negative", "positive"]
    assert t["correct"].tolist() == [True, False]
    assert t["confidence"].tolist() == [0.7, 0.6] and t["p_true"].tolist() == [0.7, 0.3]
    assert "oracle_predicted" not in t


def test_unknown_run_and_format(run_id):
    with pytest.raises(MerError, match="no run 'nope'"):
        export_run("nope", "csv")
    with pytest.raises(MerError, match="format"):
        export_run(run_id, "xlsx")


def test_flat_params():
    assert flat_params({"a": 1, "b": {"c": (1, 2), "d": {}}}) == {"a": "1", "b.c": "1,2", "b.d": "{}"}


def test_cli_export(run_id, tmp_path, capsys):
    assert main(["export", run_id, "--format", "json", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert str(tmp_path / "export-run.json") in out
    assert main(["export", "missing-run"]) == 2
    assert "no run 'missing-run'" in capsys.readouterr().err
    record = run_record(run_id)
    assert record["format"] == "mer-bench run v1"


def test_exported_predictions_feed_the_metrics_functions(run_id, tmp_path):
    from mer_core.evaluation.metrics import summarize

    export_run(run_id, "csv", tmp_path)
    pred = pd.read_csv(tmp_path / "export-run_predictions.csv")
    run = RunStore().get_run(run_id)
    assert summarize(pred, list(run["classes"]))["pooled"]["uf1"] == pytest.approx(run["uf1"])


@pytest.mark.parametrize("where", ["file", "unwritable"])
def test_export_onto_a_file_or_an_unwritable_place_is_one_line(run_id, tmp_path, capsys, where):
    import os

    target = tmp_path / "taken"
    if where == "file":
        target.write_text("keep me")
    else:
        target.mkdir()
        os.chmod(target, 0o500)
        if os.access(target, os.W_OK):  # root ignores the mode bits
            target = tmp_path / "a_file" / "below"
            (tmp_path / "a_file").write_text("x")
    assert main(["export", run_id, "--out", str(target)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("mer export: error:") and "--out" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
    if where == "file":
        assert target.read_text() == "keep me"


def test_a_full_disk_during_synth_is_one_line(tmp_path, capsys, monkeypatch):
    import numpy as np

    def full_disk(*a, **k):
        raise OSError(28, "No space left on device", str(tmp_path / "syn" / "x.png"))

    monkeypatch.setattr("cv2.imwrite", full_disk)
    monkeypatch.setattr(np, "savez_compressed", full_disk)
    code = main(["synth", "--subjects", "2", "--out", str(tmp_path / "syn")])
    err = capsys.readouterr().err
    assert code == 2 and "No space left on device" in err and "Traceback" not in err
