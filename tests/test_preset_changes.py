"""A run whose training values differ from its preset's is named as modified, with each change and the preset's value."""
from __future__ import annotations

import pytest

from mer_core.models.registry import list_models, list_presets
from mer_core.training.experiment import preset_changes, preset_label, resolve_experiment


@pytest.mark.parametrize("model", list_models())
def test_every_preset_as_resolved_is_unmodified(model):
    for preset in list_presets(model):
        cfg = resolve_experiment("synthetic", model, preset)
        assert preset_changes(cfg) == {}, (model, preset)
        assert preset_label(cfg) == f"{preset} preset"


def test_changed_values_are_named_with_the_presets_value():
    cfg = resolve_experiment("synthetic", "dense_attention", "cpu",
                             overrides={"epochs": 3, "lr": 0.01, "preprocess": {"evm_alpha": 5.0}})
    assert preset_changes(cfg) == {"epochs": (3, 15), "lr": (0.01, 0.002), "preprocess.evm_alpha": (5.0, 10.0)}
    assert preset_label(cfg) == "cpu preset, modified: epochs 3 (preset 15), lr 0.01 (preset 0.002), " \
                                "preprocess.evm_alpha 5 (preset 10)"
    assert preset_label(cfg, limit=1).endswith("epochs 3 (preset 15) and 2 more")


def test_seed_executor_and_data_are_no_preset_change():
    cfg = resolve_experiment("synthetic", "baseline", "cpu", overrides={"seed": 7, "executor": "sequential"},
                             dataset_options={"subjects": 4})
    assert preset_changes(cfg) == {}
    stored = cfg.to_dict()  # a stored config (plain JSON) reads the same
    stored["epochs"] = 2
    assert preset_label(stored) == "cpu preset, modified: epochs 2 (preset 40)"
    assert preset_changes({**stored, "model": "no-such-model"}) == {}
    stored["preprocess"] = {**stored["preprocess"], "channels": [], "input_size": 0}  # left to the model: no change
    assert list(preset_changes(stored)) == ["epochs"]


def test_settings_that_differ_always_show_the_seed_and_every_preset_change():
    from mer_core.training.experiment import settings_that_differ

    a = resolve_experiment("synthetic", "baseline", "cpu", overrides={"epochs": 3, "seed": 0})
    b = resolve_experiment("synthetic", "ststnet", "cpu", overrides={"epochs": 3, "seed": 0})
    rows = {r["setting"]: r for r in settings_that_differ({"A": a, "B": b})}
    assert list(rows)[0] == "seed" and rows["seed"]["A"] == rows["seed"]["B"] == "0"
    assert rows["epochs"]["A"] == "3 (preset 40)" and rows["epochs"]["B"] == "3 (preset 30)"
    assert rows["model"]["A"] == "baseline" and "lr" in rows and "batch_size" not in rows
