"""A paper preset is the paper's whole recipe: no training field comes from ExperimentConfig's defaults."""
from __future__ import annotations

import pytest

from mer_core.config import ExperimentConfig
from mer_core.errors import ConfigError
from mer_core.models.registry import (PAPER_RECIPE_FIELDS, ModelConfig, list_models, list_presets, model_spec,
                                      preset_provenance, register_model, train_defaults)
from mer_core.training import experiment

PAPER = [(m, p) for m in list_models() for p in list_presets(m) if p.startswith("paper")]


@pytest.mark.parametrize("model,preset", PAPER, ids=[f"{m}-{p}" for m, p in PAPER])
def test_no_field_of_a_paper_preset_comes_from_the_general_defaults(monkeypatch, model, preset):
    # resolve once with ExperimentConfig's defaults, once with every recipe default replaced by another value:
    # a field the preset sets itself cannot move
    plain = experiment.resolve_experiment("synthetic", model, preset)
    other = {"epochs": 7, "optimizer": "sgd", "lr": 0.123, "batch_size": 3, "scheduler": "step", "weight_decay": 0.5,
             "loss": "label_smoothing", "class_balance": "sampler", "augment": not plain.augment,
             "selection": "early_stop"}
    assert set(other) == set(PAPER_RECIPE_FIELDS)
    monkeypatch.setattr(ExperimentConfig, "__init__", _init_with(other, ExperimentConfig.__init__))
    moved = experiment.resolve_experiment("synthetic", model, preset)
    assert moved.epochs != 7 or plain.epochs == 7
    assert {k: getattr(moved, k) for k in other} == {k: getattr(plain, k) for k in other}
    notes = preset_provenance(model, preset)
    assert all(notes[k] for k in PAPER_RECIPE_FIELDS)


def _init_with(defaults, init):
    def wrapped(self, **kw):
        init(self, **{**defaults, **kw})
    return wrapped


ALL = [(m, p) for m in list_models() for p in list_presets(m)]


@pytest.mark.parametrize("model,preset", ALL, ids=[f"{m}-{p}" for m, p in ALL])
def test_the_resolved_config_carries_every_training_default_of_its_preset(model, preset):
    # preprocessing settings included (a paper's optical flow method): what `mer run` and the form train with
    cfg = experiment.resolve_experiment("synthetic", model, preset)
    for key, value in train_defaults(model, preset).items():
        if key == "preprocess":
            got = {k: getattr(cfg.preprocess, k) for k in value}
            assert got == {k: tuple(v) if isinstance(v, list) else v for k, v in value.items()}, (key, got)
        else:
            assert getattr(cfg, key) == (tuple(value) if isinstance(value, list) else value), key


def test_registering_a_paper_preset_without_its_whole_recipe_is_refused():
    with pytest.raises(ConfigError, match=r"preset 'paper'.*lacks \['scheduler', 'weight_decay'"):
        register_model("half-paper", config_cls=ModelConfig, presets={"cpu": {}, "paper": {}}, description="x",
                       train_defaults={"paper": dict(epochs=1, optimizer="adam", lr=1e-3, batch_size=2)},
                       provenance={"cpu": {"*": "chosen here"}, "paper": {"*": "paper"}})(lambda cfg: None)
    with pytest.raises(Exception):
        model_spec("half-paper")
