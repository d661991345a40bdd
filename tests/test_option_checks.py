"""Options that cannot mean anything are one line naming the key and what was expected, never a traceback."""
from __future__ import annotations

import json

import pytest

from mer_core.cli import main


def _one_error_line(err: str) -> str:
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


@pytest.mark.parametrize("key, value", [("dataset_options", "subjects=3"), ("dataset_options", ["subjects", 3]),
                                        ("model_options", "dropout=0.1")])
def test_an_options_table_given_as_text_in_a_config_file_names_the_key(tmp_path, capsys, key, value):
    path = tmp_path / "config.json"
    path.write_text(json.dumps({key: value}))
    assert main(["loso", "--config", str(path)]) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert key in line and "mapping" in line and "dictionary update" not in line, line


@pytest.mark.parametrize("frames", ["-1", "0", "1"])
def test_predict_max_frames_below_two_is_one_line(tmp_path, capsys, frames):
    clip = tmp_path / "clip.mp4"
    clip.write_bytes(b"not read: the option is refused first")
    assert main(["predict", str(clip), "--run", "no-such-run", "--max-frames", frames]) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert "--max-frames" in line and frames in line and ">= 2" in line, line


# --- float options: finite and in range; a diverged fold is never a result ------------------------------------
def _float_keys() -> list[str]:
    import dataclasses

    from mer_core.config import ExperimentConfig, PreprocessConfig

    keys = [f.name for f in dataclasses.fields(ExperimentConfig) if isinstance(f.default, float)]
    keys += ["preprocess." + f.name for f in dataclasses.fields(PreprocessConfig) if isinstance(f.default, float)]
    return keys


@pytest.mark.parametrize("value", [float("inf"), float("-inf"), float("nan")])
@pytest.mark.parametrize("key", _float_keys())
def test_every_float_config_key_must_be_finite(key, value):
    from mer_core.config import ExperimentConfig
    from mer_core.errors import ConfigError

    head, _, sub = key.partition(".")
    data = {head: {sub: value}} if sub else {key: value}
    with pytest.raises(ConfigError, match=key.split(".")[-1] + r".*finite"):
        ExperimentConfig.from_dict(data)


@pytest.mark.parametrize("data, key", [
    ({"momentum": 1.5}, "momentum"), ({"momentum": -0.1}, "momentum"), ({"lr": 1e6}, "lr"),
    ({"focal_gamma": 1e9}, "focal_gamma"), ({"backbone_lr_mult": -1.0}, "backbone_lr_mult"),
])
def test_float_config_keys_out_of_range_are_refused(data, key):
    from mer_core.config import ExperimentConfig
    from mer_core.errors import ConfigError

    with pytest.raises(ConfigError, match=key):
        ExperimentConfig.from_dict(data)


@pytest.mark.parametrize("argv, key", [
    (["--lr", "inf"], "lr"), (["--set", "focal_gamma=inf"], "focal_gamma"), (["--set", "momentum=nan"], "momentum"),
    (["--set", "weight_decay=nan"], "weight_decay"),
])
def test_mer_loso_refuses_a_non_finite_float_option_in_one_line(capsys, argv, key):
    assert main(["loso", "--dataset-option", "subjects=2", *argv]) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert key in line and "finite" in line, line


def test_a_learning_rate_of_1e400_in_a_config_file_is_refused(tmp_path, capsys):
    path = tmp_path / "config.json"
    path.write_text('{"lr": 1e400}')  # JSON reads it as inf
    assert main(["loso", "--config", str(path)]) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert "lr" in line and "finite" in line, line


@pytest.mark.parametrize("option, value", [("--older-than", "inf"), ("--older-than", "nan"),
                                           ("--larger-than", "nan"), ("--older-than", "-1")])
def test_cache_prune_refuses_a_non_finite_or_negative_age(capsys, option, value):
    assert main(["cache", "prune", option, value, "--dry-run"]) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert option in line and value in line, line


def test_weights_that_diverge_on_the_last_step_fail_the_fold_instead_of_storing_it(tmp_path, monkeypatch):
    # The loss is checked during training; a last step that leaves NaN weights was stored as a 'done' fold
    # (every clip predicted as the first class). The fold must fail, naming itself and the learning rate.
    import torch

    from fixtures_clips import make_clip_manifest, tiny_config
    from mer_core.errors import MerError
    from mer_core.store.db import RunStore
    from mer_core.training import trainer
    from mer_core.training.engine import run_experiment

    real = trainer.train_one_epoch

    def diverging(state, loader, epoch, should_stop=None, on_step=None):
        row = real(state, loader, epoch, should_stop, on_step)
        with torch.no_grad():
            next(state.model.parameters()).fill_(float("nan"))  # what one step at lr=inf does
        return row

    monkeypatch.setattr(trainer, "train_one_epoch", diverging)
    manifest = make_clip_manifest(tmp_path / "clips", subjects=3, clips_per_subject=3, size=32, frames=5)
    with pytest.raises(MerError) as info:
        run_experiment(tiny_config(manifest, epochs=1), run_id="diverged")
    message = str(info.value)
    assert "fold 0" in message and "s00" in message and "lr" in message and "not finite" in message, message
    with RunStore() as store:
        run = store.get_run("diverged")
        assert run["status"] == "failed" and "not finite" in run["error"]
        assert store.completed_folds("diverged") == set() and store.predictions("diverged").empty


# --- contradictions: an explicit option and an explicit --set of the same key with another value ------------------
@pytest.mark.parametrize("argv, flag, setting", [
    (["--final-model", "--set", "final_model=false"], "--final-model", "final_model=false"),
    (["--lr", "0.01", "--set", "lr=0.02"], "--lr", "lr=0.02"),
    (["--epochs", "3", "--set", "epochs=4"], "--epochs", "epochs=4"),
    (["--flow", "dis", "--set", "preprocess.flow_method=tvl1"], "--flow", "preprocess.flow_method=tvl1"),
    (["--model", "baseline", "--set", "model=mfdan"], "--model", "model=mfdan"),
    (["--set", "protocol=holdout"], "mer loso", "protocol=holdout"),
    (["--set", "seed=1", "--set", "seed=2"], "--set seed=1", "seed=2"),
    (["--dataset-option", "subjects=3", "--set", 'dataset_options={"subjects": 4}'], "--dataset-option subjects=3",
     "dataset_options"),
])
def test_contradicting_explicit_options_are_an_error_naming_both(capsys, argv, flag, setting):
    assert main(["loso", *argv]) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert flag in line and setting in line and "contradict" in line, line


def test_an_option_and_a_set_that_agree_are_no_contradiction():
    from mer_core.cli import build_parser
    from mer_core.cli.cmd_loso import config_from_args

    args = build_parser().parse_args(["loso", "--final-model", "--set", "final_model=true", "--lr", "0.01",
                                      "--set", "lr=1e-2", "--dataset-option", "subjects=3"])
    config = config_from_args(args, "loso")
    assert config.final_model is True and config.lr == 0.01


# --- the resume hint works as printed; options that differ from the stored config name the keys ---------------
def _stopped_run(tmp_path, monkeypatch, capsys) -> tuple[str, str]:
    """A tiny LOSO stopped by Ctrl-C in its second fold: (run id, the resume command the CLI printed)."""
    import re

    from fixtures_clips import make_clip_manifest
    from mer_core.training import executors

    manifest = make_clip_manifest(tmp_path / "clips", subjects=3, clips_per_subject=3, size=32, frames=5)
    real = executors.run_fold

    def ctrl_c_in_fold_1(task, *a, **k):
        if task.fold.index == 1:
            raise KeyboardInterrupt
        return real(task, *a, **k)

    monkeypatch.setattr(executors, "run_fold", ctrl_c_in_fold_1)
    argv = ["loso", "--dataset", "manifest", "--dataset-option", f"manifest={manifest}", "--class-set", "native",
            "--epochs", "1", "--batch-size", "8", "--executor", "sequential", "--set", "seed=3"]
    assert main(argv) == 130
    err = capsys.readouterr().err
    hint = re.search(r"continue it with `?((?:mer \w+ )?--resume (\S+?))`?$", err, re.M)
    assert hint, err
    monkeypatch.setattr(executors, "run_fold", real)
    command = hint.group(1) if hint.group(1).startswith("mer ") else "mer loso " + hint.group(1)
    return hint.group(2), command


def test_the_resume_hint_after_ctrl_c_continues_the_run_with_its_stored_config(tmp_path, monkeypatch, capsys):
    from mer_core.store.db import RunStore

    run_id, command = _stopped_run(tmp_path, monkeypatch, capsys)
    with RunStore() as store:
        assert store.get_run(run_id)["status"] == "cancelled" and store.completed_folds(run_id) == {0}
        stored = store.get_run(run_id)["config_json"]
    assert main(command.split()[1:] + ["--json"]) == 0, capsys.readouterr().err
    with RunStore() as store:
        run = store.get_run(run_id)
        assert run["status"] == "done" and store.completed_folds(run_id) == {0, 1, 2}
        assert run["config_json"] == stored and len(store.list_runs()) == 1


def test_resume_with_options_that_differ_from_the_stored_config_names_the_keys(tmp_path, monkeypatch, capsys):
    from mer_core.store.db import RunStore

    run_id, _command = _stopped_run(tmp_path, monkeypatch, capsys)
    assert main(["loso", "--resume", run_id, "--epochs", "3", "--set", "seed=3", "--set", "lr=0.5"]) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert run_id in line and "epochs" in line and "lr" in line and "seed" not in line, line
    assert main(["train", "--resume", run_id]) == 2  # mer train is another protocol
    line = _one_error_line(capsys.readouterr().err)
    assert "protocol" in line and "loso" in line and "holdout" in line, line
    with RunStore() as store:
        assert store.get_run(run_id)["status"] == "cancelled" and store.completed_folds(run_id) == {0}


@pytest.mark.parametrize("fps", ["inf", "nan", "-30"])
def test_a_manifest_fps_that_is_not_a_finite_positive_rate_names_the_row(tmp_path, fps):
    import pandas as pd

    from fixtures_clips import make_clip_manifest
    from mer_core.datasets.registry import index_dataset

    manifest = make_clip_manifest(tmp_path / "clips", subjects=2, clips_per_subject=2, size=16, frames=4)
    rows = pd.read_csv(manifest)
    rows["fps"] = rows["fps"].astype(str)
    rows.loc[0, "fps"] = fps
    rows.to_csv(manifest, index=False)
    table = index_dataset("manifest", manifest=str(manifest))
    problems = [p["message"] for p in table.attrs.get("problems", []) if p.get("row") == 2]
    assert len(table) == 3 and any("fps" in m and "row 2" in m and "finite" in m for m in problems), problems
