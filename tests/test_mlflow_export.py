"""MLflow export of a run and of a study, read back from a local MLflow store with MLflow's own client."""
from __future__ import annotations

import sys

import pytest

pytest.importorskip("mlflow")
from mlflow.tracking import MlflowClient  # noqa: E402

from mer_core.cli import main  # noqa: E402
from mer_core.errors import MerError  # noqa: E402
from mer_core.evaluation.export import run_record  # noqa: E402
from mer_core.evaluation.mlflow_export import _unique_keys, log_run, mlflow_key  # noqa: E402
from mer_core.jobs.study import study_report, study_to_mlflow  # noqa: E402
from mer_core.store.db import RunStore  # noqa: E402
from test_results_pages import store_fixture_run  # noqa: E402

ARMS = ("Net, batched", "Net (process)")  # a comma and parentheses: both refused in MLflow metric keys


@pytest.fixture
def tracking(tmp_path, monkeypatch) -> str:
    """A local MLflow file store in tmp_path (MLflow 3 wants the opt-in for the file backend)."""
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    return (tmp_path / "mlruns").as_uri()


def _runs(uri: str, experiment: str) -> list:
    client = MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name(experiment)
    assert exp is not None, f"no MLflow experiment {experiment!r}"
    return client.search_runs([exp.experiment_id])


def _study(store: RunStore) -> None:
    """Two arms x 3 seeds; the second arm's seed 2 has no run (a cell that never finished)."""
    store.create_study("mlf", dataset="synthetic", protocol="loso",
                       definition={"dataset": "synthetic", "protocol": "loso", "seeds": [0, 1, 2],
                                   "options": {"epochs": 2}, "arms": [{"name": a} for a in ARMS]})
    for arm, acc, base in ((ARMS[0], 0.9, 1), (ARMS[1], 0.5, 20)):
        for seed in (0, 1, 2):
            if arm == ARMS[1] and seed == 2:
                store.set_study_cell("mlf", arm, seed, job_id="j-lost", run_id="")
                continue
            rid = store_fixture_run(f"m{base + seed}", subjects=8, per_subject=5, accuracy=acc, seed=base + seed,
                                    store=store, config={"lr": 0.001 * (1 + seed)})
            store.set_study_cell("mlf", arm, seed, job_id="", run_id=rid)


def test_keys_mlflow_refuses_are_rewritten_and_kept_apart() -> None:
    assert mlflow_key("Net, batched") == "Net_ batched"
    assert mlflow_key("CAS(ME)^3.uf1") == "CAS_ME_3.uf1"
    assert mlflow_key("CASME II/uf1_mean-2") == "CASME II/uf1_mean-2"  # what MLflow allows stays
    assert _unique_keys(["A, b", "A; b", "A_ b"]) == {"A, b": "A_ b", "A; b": "A_ b-2", "A_ b": "A_ b-3"}


def test_a_composite_run_is_logged_with_its_config_figures_parts_and_tables(tracking) -> None:
    rid = store_fixture_run("mlf-run", composite=True, subjects=6, per_subject=4, accuracy=0.7)
    record = run_record(rid, n_boot=50)
    logged = log_run(record, tracking_uri=tracking)
    [run] = _runs(tracking, "mer-bench/megc2019")
    assert run.info.run_id == logged.run_ids[0] and run.info.status == "FINISHED"
    assert run.data.params["model"] == "baseline" and run.data.params["run_id"] == rid
    assert run.data.metrics["uf1"] == pytest.approx(record["run"]["uf1"])
    assert run.data.metrics["uf1_ci_low"] <= run.data.metrics["uf1"] <= run.data.metrics["uf1_ci_high"]
    parts = {row["part"]: row for row in record["per_part"] if row["part"] != "Full"}
    assert len(parts) == 3
    for part, row in parts.items():
        assert run.data.metrics[f"{mlflow_key(part)}.uf1"] == pytest.approx(row["uf1"])
    names = {a.path for a in MlflowClient(tracking_uri=tracking).list_artifacts(run.info.run_id)}
    assert {"run_predictions.csv", "run_per_subject.csv", "run_record.json"} <= names
    assert set(logged.artifacts) == names


def test_a_study_is_one_parent_run_with_a_child_run_per_complete_cell(tracking) -> None:
    with RunStore() as store:
        _study(store)
        report = study_report(store, "mlf", n_boot=50)
        logged = study_to_mlflow(store, "mlf", tracking_uri=tracking, n_boot=50)
    runs = {r.info.run_id: r for r in _runs(tracking, "mer-study/mlf")}
    assert len(runs) == 1 + 5 and set(runs) == set(logged.run_ids)
    parent = runs[logged.run_ids[0]]
    assert parent.info.run_name == "mlf" and "mlflow.parentRunId" not in parent.data.tags
    table = report.table.set_index("arm")
    for arm in ARMS:
        key = mlflow_key(arm)
        assert parent.data.metrics[f"{key}.uf1_mean"] == pytest.approx(table.loc[arm, "uf1_mean"])
        assert parent.data.metrics[f"{key}.uf1_sd"] == pytest.approx(table.loc[arm, "uf1_sd"])
    assert parent.data.metrics["Net_ batched.complete_seeds"] == 3
    assert parent.data.metrics["Net _process_.complete_seeds"] == 2
    assert parent.data.metrics["test.p_value"] == pytest.approx(report.test["p_value"])
    assert parent.data.tags["mer.verdict"] == report.test["verdict"]
    assert parent.data.tags["mer.incomplete"] == "Net (process) seed 2" and logged.skipped == ("Net (process) seed 2",)
    assert parent.data.params["seeds"] == "0,1,2" and parent.data.params["options.epochs"] == "2"
    artifacts = {a.path for a in MlflowClient(tracking_uri=tracking).list_artifacts(parent.info.run_id)}
    assert artifacts == {"mlf.md", "mlf.csv", "mlf.tex"}
    children = [r for r in runs.values() if r.info.run_id != parent.info.run_id]
    assert all(c.data.tags["mlflow.parentRunId"] == parent.info.run_id for c in children)
    cells = report.cells[report.cells["complete"]].set_index("run_id")
    for child in children:
        cell = cells.loc[child.data.params["run_id"]]
        assert child.info.run_name == f"{cell['arm']} seed {cell['seed']}" and child.data.params["arm"] == cell["arm"]
        assert child.data.metrics["uf1"] == pytest.approx(cell["uf1"])
        assert child.data.params["lr"] == str(0.001 * (1 + int(cell["seed"])))  # the cell's own config


def test_the_cli_logs_a_study_and_a_run(tracking, capsys) -> None:
    with RunStore() as store:
        _study(store)
    assert main(["study", "export", "mlf", "--format", "mlflow", "--tracking-uri", tracking, "--n-boot", "20"]) == 0
    out = capsys.readouterr().out
    assert "parent run" in out and "5 cell run(s)" in out and "not logged (not complete): Net (process) seed 2" in out
    assert main(["export", "m1", "--format", "mlflow", "--tracking-uri", tracking]) == 0
    assert "logged run m1 to MLflow" in capsys.readouterr().out
    assert len(_runs(tracking, "mer-bench/synthetic")) == 1


def test_an_unusable_tracking_uri_names_it(tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.delenv("MLFLOW_ALLOW_FILE_STORE", raising=False)
    rid = store_fixture_run("mlf-uri", subjects=4, per_subject=3)
    uri = (tmp_path / "plain").as_uri()  # MLflow 3 refuses the file backend without its opt-in
    with pytest.raises(MerError, match=f"tracking URI '{uri}' cannot be used"):
        log_run(run_record(rid, n_boot=20), tracking_uri=uri)
    assert main(["export", rid, "--format", "mlflow", "--tracking-uri", uri]) == 2
    assert "--tracking-uri" in capsys.readouterr().err


def test_without_mlflow_both_exports_say_what_to_install(monkeypatch, capsys) -> None:
    monkeypatch.setitem(sys.modules, "mlflow", None)  # import mlflow now raises ImportError
    with RunStore() as store:
        _study(store)
    assert main(["study", "export", "mlf", "--format", "mlflow", "--n-boot", "20"]) == 2
    assert "pip install mlflow-skinny" in capsys.readouterr().err
    assert main(["export", "m1", "--format", "mlflow"]) == 2
    err = capsys.readouterr().err
    assert "pip install mlflow-skinny" in err and "Traceback" not in err


def test_a_study_without_a_complete_cell_is_refused(tracking) -> None:
    with RunStore() as store:
        store.create_study("empty", dataset="synthetic", protocol="loso", definition={"arms": [{"name": "a"}]})
        store.set_study_cell("empty", "a", 0, job_id="j", run_id="")
        with pytest.raises(MerError, match="no complete cell"):
            study_to_mlflow(store, "empty", tracking_uri=tracking)
