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
    preset = resolve_experiment("synthetic", "dense_attention", "cpu")
    epochs, lr, alpha = preset.epochs, preset.lr, preset.preprocess.evm_alpha
    cfg = resolve_experiment("synthetic", "dense_attention", "cpu",
                             overrides={"epochs": epochs + 3, "lr": lr * 5, "preprocess": {"evm_alpha": alpha + 2.5}})
    assert preset_changes(cfg) == {"epochs": (epochs + 3, epochs), "lr": (lr * 5, lr),
                                   "preprocess.evm_alpha": (alpha + 2.5, alpha)}
    assert preset_label(cfg) == (f"cpu preset, modified: epochs {epochs + 3} (preset {epochs}), lr {lr * 5:g} "
                                 f"(preset {lr:g}), preprocess.evm_alpha {alpha + 2.5:g} (preset {alpha:g})")
    assert preset_label(cfg, limit=1).endswith(f"epochs {epochs + 3} (preset {epochs}) and 2 more")


def test_seed_executor_and_data_are_no_preset_change():
    cfg = resolve_experiment("synthetic", "baseline", "cpu", overrides={"seed": 7, "executor": "sequential"},
                             dataset_options={"subjects": 4})
    assert preset_changes(cfg) == {}
    stored = cfg.to_dict()  # a stored config (plain JSON) reads the same
    stored["epochs"] = cfg.epochs + 2
    assert preset_label(stored) == f"cpu preset, modified: epochs {cfg.epochs + 2} (preset {cfg.epochs})"
    assert preset_changes({**stored, "model": "no-such-model"}) == {}
    stored["preprocess"] = {**stored["preprocess"], "channels": [], "input_size": 0}  # left to the model: no change
    assert list(preset_changes(stored)) == ["epochs"]


def test_settings_that_differ_always_show_the_seed_and_every_preset_change():
    from mer_core.training.experiment import settings_that_differ

    presets = {m: resolve_experiment("synthetic", m, "cpu").epochs for m in ("baseline", "ststnet")}
    assert len({presets["baseline"], presets["ststnet"], 3}) == 3  # 3 epochs is a change for both, and they differ
    a = resolve_experiment("synthetic", "baseline", "cpu", overrides={"epochs": 3, "seed": 0})
    b = resolve_experiment("synthetic", "ststnet", "cpu", overrides={"epochs": 3, "seed": 0})
    rows = {r["setting"]: r for r in settings_that_differ({"A": a, "B": b})}
    assert list(rows)[0] == "seed" and rows["seed"]["A"] == rows["seed"]["B"] == "0"
    assert rows["epochs"]["A"] == f"3 (preset {presets['baseline']})" and \
        rows["epochs"]["B"] == f"3 (preset {presets['ststnet']})"
    assert rows["model"]["A"] == "baseline" and "lr" in rows and "batch_size" not in rows
