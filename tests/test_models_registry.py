"""Registry-driven tests: every registered model, at its cpu preset.

A new model is tested as soon as it is registered: shapes, backward, no
NaNs, eval determinism, state-dict round trip through ``torch.load(weights_only=True)``,
and the optional ``attention_maps`` / ``gradcam_layers`` contracts.
"""
from __future__ import annotations

import dataclasses
import io
import subprocess
import sys

import pytest
import torch

from mer_core.config import ExperimentConfig
from mer_core.models import create_model, list_models, list_presets, model_config, model_spec, train_defaults

MODELS = list_models()
BATCH = 2


def _input(cfg, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(BATCH, cfg.in_channels, cfg.input_size, cfg.input_size, generator=g)


def test_expected_models_registered():
    assert {"baseline", "mfdan", "ststnet"} <= set(MODELS)


def test_importing_a_registry_alone_registers_every_built_in():
    """Python runs a package's __init__ before any of its modules, so a fresh process that imports only a
    registry module already sees every built-in model and dataset (the registries need no import of their own)."""
    code = ("from mer_core.models.registry import list_models; from mer_core.datasets.registry import list_datasets; "
            "print(','.join(list_models())); print(','.join(list_datasets()))")
    models, datasets = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True,
                                      text=True).stdout.split()
    assert models.split(",") == ["baseline", "dense_attention", "linear", "mfdan", "ststnet"]
    assert {"casme2", "casme3", "samm", "smic", "megc2019", "manifest", "synthetic", "synthetic-realism"} <= set(
        datasets.split(","))


@pytest.mark.parametrize("name", MODELS)
def test_every_preset_builds_a_valid_config(name):
    spec = model_spec(name)
    assert spec.description
    for preset in list_presets(name):
        cfg = model_config(name, preset)
        assert cfg.in_channels == len(cfg.channels) >= 1
        defaults = train_defaults(name, preset)
        config_keys = {f.name for f in dataclasses.fields(ExperimentConfig)} - {"dataset", "model", "preset"}
        for key in defaults:  # training defaults are experiment settings (preprocess as a mapping of its keys)
            assert key in config_keys, (name, preset, key)
        ExperimentConfig.from_dict(defaults)  # and valid ones


@pytest.mark.parametrize("name", MODELS)
def test_forward_backward_shapes_and_finite(name):
    torch.manual_seed(0)
    model = create_model(name, "cpu").train()
    cfg = model.config
    x = _input(cfg).requires_grad_(True)
    logits = model(x)
    assert logits.shape == (BATCH, cfg.num_classes)
    assert torch.isfinite(logits).all()
    feats = model.forward_features(x)
    assert feats.shape[0] == BATCH
    torch.nn.functional.cross_entropy(logits, torch.arange(BATCH) % cfg.num_classes).backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert any(g is not None for g in grads)
    for g in grads:
        assert g is None or torch.isfinite(g).all()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


@pytest.mark.parametrize("name", MODELS)
def test_eval_is_deterministic_and_state_dict_round_trips(name):
    torch.manual_seed(0)
    model = create_model(name, "cpu").eval()
    x = _input(model.config)
    with torch.no_grad():
        a, b = model(x), model(x)
    assert torch.equal(a, b)
    buf = io.BytesIO()
    torch.save(model.state_dict(), buf)
    buf.seek(0)
    state = torch.load(buf, weights_only=True)
    torch.manual_seed(123)  # a differently initialised twin
    twin = create_model(name, "cpu").eval()
    twin.load_state_dict(state)
    with torch.no_grad():
        assert torch.equal(twin(x), a)


@pytest.mark.parametrize("name", MODELS)
def test_attention_maps_contract(name):
    model = create_model(name, "cpu").eval()
    if not hasattr(model, "attention_maps"):
        pytest.skip(f"{name} has no attention_maps")
    x = _input(model.config)
    maps = model.attention_maps(x)
    assert not model.training  # the mode is left as it was
    assert isinstance(maps, dict) and maps
    for key, value in maps.items():
        assert isinstance(key, str)
        # spatial maps are (N, k, h, w); per-channel gates (N, C) are allowed too
        assert isinstance(value, torch.Tensor) and value.dim() in (2, 4) and value.shape[0] == BATCH, key
        assert torch.isfinite(value.detach()).all(), key
    assert any(v.dim() == 4 for v in maps.values())  # at least one spatial map
    again = model.attention_maps(x)
    for key in maps:
        assert torch.equal(maps[key], again[key]), key  # deterministic


@pytest.mark.parametrize("name", MODELS)
def test_gradcam_layers_are_submodules(name):
    model = create_model(name, "cpu")
    if not hasattr(model, "gradcam_layers"):
        pytest.skip(f"{name} has no gradcam_layers")
    layers = model.gradcam_layers()
    assert layers
    own = {id(m) for m in model.modules()}
    outputs = {}
    hooks = [m.register_forward_hook(lambda mod, inp, out, k=k: outputs.__setitem__(k, out)) for k, m in layers.items()]
    model.eval()
    with torch.no_grad():
        model(_input(model.config))
    for h in hooks:
        h.remove()
    for key, module in layers.items():
        assert id(module) in own, key
        assert outputs[key].dim() == 4 and outputs[key].shape[0] == BATCH, key  # (N, C, H, W) maps


# --- preset provenance ---------------------------------------------------------------
@pytest.mark.parametrize("name, preset", [(m, p) for m in list_models() for p in model_spec(m).presets])
def test_every_preset_value_has_a_provenance(name, preset):
    from mer_core.models.registry import PROVENANCE_KINDS, preset_provenance

    spec = model_spec(name)
    notes = preset_provenance(name, preset)
    assert set(notes) == set(spec.presets[preset]) | set(spec.train_defaults.get(preset, {}))
    assert all(any(kind in note for kind in PROVENANCE_KINDS) for note in notes.values()), notes


def test_the_readme_claims_are_declared():
    from mer_core.models.registry import preset_provenance

    for name in ("baseline", "mfdan"):
        notes = preset_provenance(name, "cpu")
        assert notes["epochs"].startswith("tuned on synthetic seed 0") and notes["lr"].startswith("tuned on")
    assert preset_provenance("dense_attention", "paper")["block_layers"] == "DenseNet-121 layout chosen here"


@pytest.mark.parametrize("provenance, message", [
    (None, "no provenance for"),
    ({"cpu": {"*": "chosen here", "widht": "paper"}}, "provenance for \\['widht'\\], which the preset does not set"),
    ({"cpu": {"*": "because"}}, "names none of"),
])
def test_a_preset_without_provenance_is_refused(provenance, message):
    from mer_core.errors import ConfigError
    from mer_core.models.registry import ModelConfig, register_model

    with pytest.raises(ConfigError, match=message):
        register_model("probe_model", config_cls=ModelConfig, presets={"cpu": {"input_size": 32}},
                       description="", train_defaults={"cpu": {"epochs": 3}}, provenance=provenance)(lambda cfg: None)
    assert "probe_model" not in list_models()


def test_mer_models_prints_the_provenance(capsys):
    from mer_core.cli import main

    assert main(["models"]) == 0
    out = capsys.readouterr().out
    assert "DenseNet-121 layout chosen here: input_size, growth_rate" in out
    assert "tuned on synthetic seed 0" in out
