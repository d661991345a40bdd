"""Fold checkpoints: what load_fold_checkpoint refuses, each with a message naming the file."""
from __future__ import annotations

import os

import pytest
import torch
from torch import nn

from mer_core.errors import MerError
from mer_core.training.checkpoints import load_fold_checkpoint, save_fold_checkpoint


class Smuggled:
    """Unpickling it calls a function (harmless here, os.getcwd): what weights_only=True must refuse."""

    def __reduce__(self):
        return (os.getcwd, ())


@pytest.fixture
def saved(tmp_path):
    torch.manual_seed(0)
    path = tmp_path / "fold_03.pt"
    save_fold_checkpoint(path, nn.Linear(4, 3), model_name="baseline", model_config={"width": 4},
                         config_json="{}", config_hash="cfg-a", fold=3, test_subjects=["s03"])
    return path


def test_a_saved_checkpoint_loads_with_every_expectation_met(saved) -> None:
    ckpt = load_fold_checkpoint(saved, model="baseline", fold=3, config_hash="cfg-a")
    assert ckpt["test_subjects"] == ["s03"] and set(ckpt["state_dict"]) == {"weight", "bias"}
    assert not list(saved.parent.glob(".*.tmp"))  # the atomic write left no temporary file


def test_a_file_that_needs_pickle_to_load_is_refused(saved) -> None:
    doc = torch.load(saved, weights_only=True)
    doc["note"] = Smuggled()
    torch.save(doc, saved)
    with pytest.raises(MerError, match=rf"{saved} cannot be read safely"):
        load_fold_checkpoint(saved)


@pytest.mark.parametrize("damage, message", [
    (lambda p: p.unlink(), "is missing"),
    (lambda p: p.write_bytes(p.read_bytes()[:100]), "cannot be read safely"),
    (lambda p: torch.save([1, 2, 3], p), "holds a list"),
    (lambda p: torch.save({"state_dict": {}}, p), "no 'model' entry"),
])
def test_a_missing_truncated_or_foreign_file_is_refused_naming_it(saved, damage, message) -> None:
    damage(saved)
    with pytest.raises(MerError, match=message) as err:
        load_fold_checkpoint(saved)
    assert str(saved) in str(err.value)


@pytest.mark.parametrize("expect, message", [
    ({"model": "ststnet"}, "is a 'baseline' model but the run trained 'ststnet'"),
    ({"fold": 4}, "belongs to fold 3, not fold 4"),
    ({"config_hash": "cfg-b"}, "trained with config cfg-a, not this run's cfg-b"),
])
def test_a_checkpoint_of_another_model_fold_or_config_is_refused(saved, expect, message) -> None:
    with pytest.raises(MerError, match=message):
        load_fold_checkpoint(saved, **expect)


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(saved, monkeypatch) -> None:
    before = saved.read_bytes()

    def broken(*_a, **_k):
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken)
    with pytest.raises(OSError, match="disk full"):
        save_fold_checkpoint(saved, nn.Linear(4, 3), model_name="baseline", model_config={}, config_json="{}",
                             config_hash="cfg-a", fold=3, test_subjects=["s03"])
    assert saved.read_bytes() == before and not list(saved.parent.glob(".*.tmp"))
