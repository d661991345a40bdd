"""Honest transfer learning: only macro sources pre-train, a source that shares the evaluation dataset or its
subjects is refused before anything trains (CLI, library, form), and the run records what it started from."""
from __future__ import annotations

import json

import pytest

from mer_core.cli import main
from mer_core.config import ExperimentConfig
from mer_core.datasets.registry import _DATASETS, index_dataset, register_dataset
from mer_core.errors import ConfigError
from mer_core.store.db import RunStore, run_folder
from mer_core.training.engine import run_experiment
from mer_core.training.macro import macro_datasets

TINY_DATA = dict(subjects=2, clips_per_subject=4, size=32, frames=8)
TINY_NET = dict(block_layers=[1, 1], growth_rate=4, init_features=8)
MACRO = "synthetic-macro?subjects=2&clips_per_subject=4&size=32&frames=8"


def _config(**kw) -> ExperimentConfig:
    base = dict(dataset="synthetic", dataset_options=TINY_DATA, model="dense_attention", model_options=TINY_NET,
                epochs=1, batch_size=8, executor="sequential", pretrain=MACRO, pretrain_epochs=1,
                preprocess=dict(channels=["apex", "diff"], input_size=32))
    return ExperimentConfig.from_dict({**base, **kw})


def _runs() -> int:
    with RunStore() as store:
        return len(store.list_runs())


def test_only_macro_role_datasets_are_sources():
    assert "synthetic-macro" in macro_datasets() and "synthetic" not in macro_datasets()


def test_a_micro_dataset_as_source_is_refused_from_the_cli_before_anything_trains(capsys):
    rc = main(["loso", "--dataset", "synthetic", *sum((["--dataset-option", f"{k}={v}"] for k, v in TINY_DATA.items()), []),
               "--model", "dense_attention", "--pretrain", "synthetic", "--epochs", "1", "--executor", "sequential"])
    err = capsys.readouterr().err
    assert rc == 2 and "pretrain='synthetic': not a macro source" in err and "synthetic-macro" in err
    assert _runs() == 0


def test_the_evaluation_dataset_itself_is_refused():
    cfg = _config(dataset="synthetic-macro", dataset_options=dict(subjects=2, clips_per_subject=4, size=32, frames=8),
                  class_set="native")
    with pytest.raises(ConfigError, match="is the evaluation dataset 'synthetic-macro' itself"):
        run_experiment(cfg)
    assert _runs() == 0


def test_a_macro_source_sharing_the_evaluation_subjects_is_refused():
    @register_dataset("leaky-macro", description="the evaluation set again, under a macro name",
                      class_sets=("composite3",), needs_root=False)
    def _leaky(root=None, **options):
        return index_dataset("synthetic", **TINY_DATA)

    try:
        with pytest.raises(ConfigError, match=r"pretrain='leaky-macro' refused: it shares dataset\(s\) \['synthetic'\]"):
            run_experiment(_config(pretrain="leaky-macro"))
    finally:
        _DATASETS.pop("leaky-macro", None)
    assert _runs() == 0


def test_the_run_records_source_fingerprint_and_checkpoint_hash():
    rid = run_experiment(_config())
    with RunStore() as store:
        run = store.get_run(rid)
    assert run["status"] == "done"
    note = next(n for n in run["notes"] if n.startswith("pre-training: "))
    assert "synthetic-macro?" in note and "fingerprint " in note and "checkpoint key " in note
    record = json.loads((run_folder(rid) / "pretrain.json").read_text())
    assert len(record["checkpoint_sha256"]) == 64 and record["key"] in note and record["data_fingerprints"]
