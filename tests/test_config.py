"""Experiment config: validation, JSON round trip, stable hash."""
import pytest

from mer_core.config import ExperimentConfig, PreprocessConfig
from mer_core.errors import ConfigError


def test_json_round_trip_and_hash():
    c = ExperimentConfig(model="baseline", epochs=3, preprocess=PreprocessConfig(flow_method="tvl1", channels=("apex",)))
    back = ExperimentConfig.from_json(c.to_json())
    assert back == c
    assert back.stable_hash() == c.stable_hash()
    assert c.replace(epochs=4).stable_hash() != c.stable_hash()


def test_unknown_key_lists_valid_keys():
    with pytest.raises(ConfigError, match="unknown config key.*epochz.*valid keys:.*epochs"):
        ExperimentConfig.from_dict({"epochz": 3})
    with pytest.raises(ConfigError, match="preprocess.flow"):
        ExperimentConfig.from_dict({"preprocess": {"flow": "dis"}})


@pytest.mark.parametrize("bad, match", [
    ({"epochs": 0}, "epochs"), ({"lr": -1.0}, "lr"), ({"protocol": "random"}, "protocol"),
    ({"optimizer": "rmsprop"}, "optimizer"), ({"epochs": "ten"}, "integer"),
    ({"preprocess": {"evm_low": 0.5, "evm_high": 0.1}}, "evm_low"),
])
def test_bad_values_name_the_key(bad, match):
    with pytest.raises(ConfigError, match=match):
        ExperimentConfig.from_dict(bad)


def test_config_is_frozen():
    c = ExperimentConfig()
    with pytest.raises(Exception):
        c.epochs = 5  # type: ignore[misc]
