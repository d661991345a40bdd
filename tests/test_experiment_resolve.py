"""One path from choices to a resolved ExperimentConfig: CLI and form agree, files are not overridden by
argparse defaults, class sets are never '', KEY=VALUE typing, store migration, preset provenance."""
from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from fixtures_clips import make_clip_manifest
from mer_core.cli import build_parser, main
from mer_core.cli.cmd_loso import config_from_args
from mer_core.config import ExperimentConfig
from mer_core.errors import ConfigError
from mer_core.jobs import queue as jobs
from mer_core.keyvalue import parse_lines, parse_pairs
from mer_core.models import model_config, train_defaults
from mer_core.models.dense_attention import DenseAttentionConfig
from mer_core.store import db
from mer_core.store.db import RunStore
from mer_core.store.migrations import CLASS_SET_DEFAULTS_V2
from mer_core.training.experiment import complete_config, resolve_experiment


@pytest.fixture
def manifest(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("MER_ALLOWED_ROOTS", str(tmp_path))  # the form reads browser paths only in allowed folders
    return make_clip_manifest(tmp_path / "clips", subjects=3, clips_per_subject=4, size=32, frames=5)


def cli_config(*argv: str, command: str = "loso") -> ExperimentConfig:
    args = build_parser().parse_args([command, *argv])
    return config_from_args(args, "loso" if command == "loso" else None)


def form_config(manifest: Path, model: str, preset: str, monkeypatch) -> ExperimentConfig:
    """Drive the New experiment form to Submit and read back the queued job's config."""
    from streamlit.testing.v1 import AppTest

    from dashboard.views import new_experiment as ne

    monkeypatch.setattr(jobs, "kick", lambda *a, **k: [])

    def script():
        from dashboard.views import new_experiment

        new_experiment.render()

    at = AppTest.from_function(script, default_timeout=60)
    at.session_state[ne.K_DATASET] = "manifest"
    at.session_state["ne_options_manifest"] = f"manifest={manifest}"
    at.session_state[ne.K_MODEL] = model
    at.session_state[f"{ne.K_PRESET}_{model}"] = preset
    at.run()
    assert not at.exception, at.exception
    assert not at.error, "\n".join(e.value for e in at.error)
    at.button(key=ne.K_SUBMIT).click()
    at.run()
    with RunStore() as store:
        table = jobs.list_jobs(store)
        job = jobs.get_job(store, table["id"][0])
    return ExperimentConfig.from_dict(job["config"])


@pytest.mark.parametrize("model, preset", [("baseline", "cpu"), ("dense_attention", "paper")])
def test_cli_and_form_give_the_same_config_hash(manifest, monkeypatch, model, preset):
    cli = cli_config("--dataset", "manifest", "--dataset-option", f"manifest={manifest}", "--model", model,
                     "--preset", preset)
    form = form_config(manifest, model, preset, monkeypatch)
    assert form.to_dict() == cli.to_dict()
    assert form.stable_hash() == cli.stable_hash()
    assert cli.class_set == "native"  # the manifest's default, never ''
    if preset == "paper":  # the preset's pre-training settings reach both paths
        preset_pretrain = {k: v for k, v in train_defaults(model, preset).items() if "pretrain" in k or "backbone" in k}
        assert preset_pretrain and preset_pretrain == {k: getattr(cli, k) for k in preset_pretrain}


def test_config_file_keys_are_not_overwritten_by_argparse_defaults(tmp_path):
    path = tmp_path / "c.json"
    path.write_text(json.dumps({"model": "ststnet", "dataset": "synthetic", "epochs": 3, "class_set": "composite3",
                                "preprocess": {"flow_method": "farneback"}}))
    cfg = cli_config("--config", str(path))
    assert cfg.model == "ststnet" and cfg.epochs == 3 and cfg.preprocess.flow_method == "farneback"
    own = train_defaults("ststnet", "cpu")  # ststnet's preset, not baseline's
    assert (cfg.lr, cfg.optimizer) == (own["lr"], own["optimizer"]) != tuple(train_defaults("baseline", "cpu")[k]
                                                                          for k in ("lr", "optimizer"))
    cfg = cli_config("--config", str(path), "--epochs", "5", "--set", "preprocess.flow_method=dis", "--set", "seed=3")
    assert cfg.epochs == 5 and cfg.preprocess.flow_method == "dis" and cfg.seed == 3 and cfg.model == "ststnet"


@pytest.mark.parametrize("content, message", [
    (b"[1, 2]", "got a JSON array"),
    (b'"epochs"', "got a JSON string"),
    (b"\xff\xfe{}", "not UTF-8"),
    (b"{epochs: 3}", "not valid JSON"),
])
def test_a_bad_config_file_is_one_line(tmp_path, capsys, content, message):
    path = tmp_path / "c.json"
    path.write_bytes(content)
    assert main(["loso", "--config", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and str(path) in err and len(err.splitlines()) == 1


@pytest.mark.parametrize("dataset", ["synthetic", "samm", "manifest", "casme2"])
def test_class_set_is_never_empty(dataset):
    from mer_core.datasets import dataset_info

    cfg = resolve_experiment(dataset, "baseline", "cpu")
    assert cfg.class_set == dataset_info(dataset).default_class_set != ""
    assert complete_config(cfg) == cfg  # idempotent
    assert complete_config(ExperimentConfig(dataset=dataset)).class_set == cfg.class_set


def test_unknown_class_set_is_refused():
    with pytest.raises(ConfigError, match="class_set='nope': expected one of"):
        resolve_experiment("synthetic", "baseline", "cpu", overrides={"class_set": "nope"})


def test_model_input_is_resolved_and_an_equal_override_changes_nothing():
    plain = resolve_experiment("synthetic", "mfdan", "cpu")
    size = model_config("mfdan", "cpu").input_size
    assert plain.preprocess.input_size == size and plain.preprocess.channels
    same = resolve_experiment("synthetic", "mfdan", "cpu", overrides={"preprocess": {"input_size": size}},
                              model_options={"evm_alpha": 10.0})
    assert same.stable_hash() == plain.stable_hash()


def test_keyvalue_typing_from_the_dataclass():
    out = parse_pairs(["seed=3", "lr=2e-3", "augment=false", "preprocess.channels=flow_u,flow_v"],
                      ExperimentConfig, "--set")
    assert out == {"seed": 3, "lr": 2e-3, "augment": False, "preprocess": {"channels": ("flow_u", "flow_v")}}
    assert isinstance(out["seed"], int)
    assert parse_pairs(["block_layers=2,2"], DenseAttentionConfig)["block_layers"] == (2, 2)
    assert parse_pairs(["seed=3", "modality=VIS", "flag=True"]) == {"seed": 3, "modality": "VIS", "flag": True}
    assert parse_lines("# comment\nsubjects=4\n\nseed=3", None, "dataset options") == {"subjects": 4, "seed": 3}


@pytest.mark.parametrize("items, target, message", [
    (["dropout=abc"], DenseAttentionConfig, "--model-option dropout='abc': expected a number"),
    (["epochs=2.5"], ExperimentConfig, "epochs='2.5': expected an integer"),
    (["augment=maybe"], ExperimentConfig, "augment='maybe': expected true or false"),
    (["block_layers=a,b"], DenseAttentionConfig, "block_layers='a,b': expected an integer for each item"),
    (["epochz=3"], ExperimentConfig, "epochz: unknown option; valid options: .*epochs"),
    (["preprocess.nope=1"], ExperimentConfig, "nope: unknown option; valid options: .*flow_method"),
    (["novalue"], ExperimentConfig, "'novalue': expected KEY=VALUE"),
])
def test_keyvalue_errors_name_the_key_and_the_expected_type(items, target, message):
    with pytest.raises(ConfigError, match=message):
        parse_pairs(items, target, "--model-option")


def test_form_option_box_errors_name_the_line():
    from dashboard.views.new_experiment import parse_options

    with pytest.raises(ConfigError, match="dataset options line 2 'oops': expected KEY=VALUE"):
        parse_options("subjects=4\noops")


def _old_store(path: Path) -> None:
    """A schema-2 store (before class sets were resolved) holding one run with class set ''."""
    conn = sqlite3.connect(path)
    for script in db.MIGRATIONS[:2]:
        for statement in db._split_sql(script):
            conn.execute(statement)
    old = ExperimentConfig(dataset="synthetic", model="ststnet")
    conn.execute("""INSERT INTO runs (id, status, created, dataset, model, protocol, class_set, classes_json,
                    config_json, config_hash) VALUES (?,?,?,?,?,?,?,?,?,?)""",
                 ("old", "done", 0.0, "synthetic", "ststnet", "loso", "", '["negative", "positive", "surprise"]',
                  old.to_json(), old.stable_hash()))
    conn.execute("""INSERT INTO jobs (id, seq, created, config_json, run_id, status) VALUES (?,?,?,?,?,?)""",
                 ("j1", 1, 0.0, old.to_json(), "old2", "queued"))
    conn.execute("PRAGMA user_version=2")
    conn.commit()
    conn.close()


def test_old_runs_with_empty_class_set_are_migrated_and_compare(tmp_path):
    from mer_core.evaluation.statistics import compare_problems

    path = tmp_path / "runs.sqlite"
    _old_store(path)
    new = resolve_experiment("synthetic", "baseline", "cpu")
    with RunStore(path) as store:
        assert store.schema_version() == db.SCHEMA_VERSION
        store.create_run(new, classes=("negative", "positive", "surprise"), n_folds=2, n_samples=10, run_id="new")
        old_run, new_run = store.get_run("old"), store.get_run("new")
        job = jobs.get_job(store, "j1")
    assert old_run["class_set"] == "composite3"
    stored = ExperimentConfig.from_json(old_run["config_json"])
    assert stored.class_set == "composite3" and old_run["config_hash"] == stored.stable_hash()
    assert job["config"]["class_set"] == "composite3"
    assert compare_problems([old_run, new_run]) == []


def test_frozen_migration_mapping_names_class_sets_the_datasets_offer():
    from mer_core.datasets import dataset_info

    for name, class_set in CLASS_SET_DEFAULTS_V2.items():
        assert class_set in dataset_info(name).class_sets, name


def _training_imports() -> dict[str, set[str]]:
    """Module -> the mer_core.training modules it imports (function-level imports included)."""
    import ast

    root = Path(__file__).resolve().parents[1] / "mer_core" / "training"
    graph: dict[str, set[str]] = {}
    for path in root.glob("*.py"):
        deps: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import) else
                     [f"{node.module}.{a.name}" if node.module == "mer_core.training" else node.module or ""
                      for a in node.names] if isinstance(node, ast.ImportFrom) else [])
            deps |= {n.split(".")[2] for n in names if n.startswith("mer_core.training.")}
        graph[path.stem] = deps - {path.stem}
    return graph


def test_no_training_module_imports_one_that_imports_it_back():
    """One way through the training package: the engine imports the resolution, never the reverse."""
    graph = _training_imports()
    assert "experiment" in graph["engine"] and "batched" not in graph

    def reach(start: str) -> set[str]:
        seen, todo = set(), [start]
        while todo:
            for dep in graph.get(todo.pop(), ()):
                if dep not in seen:
                    seen.add(dep)
                    todo.append(dep)
        return seen

    circles = sorted(m for m in graph if m in reach(m))
    assert not circles, f"import circles through: {circles}"


def test_every_command_resolves_the_preset_through_the_one_module():
    """The commands that take a model default to preset auto and resolve it in mer_core.training.experiment."""
    parser = build_parser()
    for argv in (["loso"], ["submit"], ["preprocess", "--dataset", "synthetic"], ["pretrain"]):
        args = parser.parse_args(argv)
        assert (args.preset or "auto") == "auto", argv
    root = Path(__file__).resolve().parents[1]
    for rel in ("mer_core/cli/cmd_preprocess.py", "mer_core/cli/cmd_pretrain.py", "mer_core/cli/cmd_loso.py",
                "mer_core/jobs/study.py", "dashboard/views/new_experiment.py"):
        text = (root / rel).read_text(encoding="utf-8")
        assert "mer_core.training.experiment import" in text, rel
        assert "training.engine import resolve_model_config" not in text and "auto_preset" not in text, rel
