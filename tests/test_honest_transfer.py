"""Honest transfer learning: only macro sources pre-train, a source that shares the evaluation dataset or its
subjects is refused before anything trains (CLI, library, form), and the run records what it started from."""
from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import torch

from mer_core.cli import main
from mer_core.config import ExperimentConfig
from mer_core.datasets.registry import _DATASETS, index_dataset, register_dataset
from mer_core.errors import ConfigError
from mer_core.store.db import RunStore
from mer_core.store.folders import run_folder
from mer_core.training.engine import run_experiment
from mer_core.training.macro import macro_datasets
from mer_core.training import pretrain as pt
from mer_core.training.pretrain import file_sha256, weights_sha256

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
    assert len(record["weights_sha256"]) == 64
    assert record["code"] == run["code_version"]  # pre-trained by this code, so the Run page warns of nothing


def test_pre_training_again_gives_the_same_weights_hash_though_the_file_differs():
    """Pre-training is deterministic, and the weights hash shows it: a second run that pre-trains again (its
    checkpoint deleted) starts from a file of another sha256 (it records when it was made) with equal weights."""
    first = run_experiment(_config())
    record = json.loads((run_folder(first) / "pretrain.json").read_text())
    Path(record["checkpoint"]).unlink()
    time.sleep(1.1)  # the checkpoint records its creation time to the second
    again = json.loads((run_folder(run_experiment(_config())) / "pretrain.json").read_text())
    assert again["checkpoint_sha256"] != record["checkpoint_sha256"]
    assert again["weights_sha256"] == record["weights_sha256"]


def test_the_weights_hash_follows_the_tensors_not_the_file(tmp_path):
    state = {"a.weight": torch.arange(6, dtype=torch.float32).reshape(2, 3), "a.bias": torch.zeros(2)}
    for i, made in enumerate(("2026-01-01", "2026-06-01")):
        torch.save({"state_dict": state, "pretrain": {"created": made}}, tmp_path / f"{i}.pt")
    loaded = [torch.load(tmp_path / f"{i}.pt", weights_only=True)["state_dict"] for i in range(2)]
    assert file_sha256(tmp_path / "0.pt") != file_sha256(tmp_path / "1.pt")
    assert weights_sha256(loaded[0]) == weights_sha256(loaded[1]) == weights_sha256(state)
    nudged = dict(state, **{"a.bias": torch.tensor([0.0, 1e-7])})
    assert weights_sha256(nudged) != weights_sha256(state)  # one value moved by 1e-7
    assert weights_sha256({"a.weight": state["a.weight"].reshape(3, 2), "a.bias": state["a.bias"]}) != \
        weights_sha256(state)  # same values, another shape


def test_the_checkpoint_key_follows_the_optimisers_kernel(monkeypatch):
    """A checkpoint is reused by its key, so an optimiser that rounds differently (here AdamW's per-tensor loop in
    place of the trainer's foreach update) must give another key: else a run starts from weights another loop made."""
    cfg, table = _config(), index_dataset("synthetic", **TINY_DATA)
    key = pt.pretrain_record(cfg, table)["checkpoint_key"]
    assert pt.pretrain_record(cfg, table)["checkpoint_key"] == key
    monkeypatch.setattr(pt, "build_optimizer", lambda params, loop: torch.optim.AdamW(
        params, lr=loop.lr, weight_decay=loop.weight_decay, foreach=False))
    assert pt.pretrain_record(cfg, table)["checkpoint_key"] != key
