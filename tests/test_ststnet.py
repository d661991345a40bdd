"""STSTNet-style baseline: shapes, parameter count, stream wiring."""
from __future__ import annotations

import pytest
import torch

from mer_core.errors import ConfigError
from mer_core.models import create_model, model_config


def test_shapes_and_parameter_count():
    m = create_model("ststnet", "cpu")
    assert m.config.input_size == 28 and m.config.channels == ("flow_u", "flow_v", "strain")
    x = torch.randn(4, 3, 28, 28)
    assert m.forward_maps(x).shape == (4, 16, 10, 10)  # 3 + 5 + 8 maps, 28 -> 10 by 3x3/3 pooling
    assert m(x).shape == (4, 3)
    # convs 3*(3*9)+3, 5*27+5, 8*27+8 = 84+140+224; BN 2*16; head 16*25*3+3
    assert sum(p.numel() for p in m.parameters()) == 448 + 32 + 1203


def test_split_streams_each_read_one_channel():
    torch.manual_seed(0)
    m = create_model("ststnet", "cpu", split_streams=True).eval()
    x = torch.randn(2, 3, 28, 28)
    x2 = x.clone()
    x2[:, 2] += 1.0  # strain only -> only the third stream (8 maps) changes
    a, b = m.forward_maps(x), m.forward_maps(x2)
    assert torch.equal(a[:, :8], b[:, :8])
    assert not torch.allclose(a[:, 8:], b[:, 8:])
    shared = create_model("ststnet", "cpu").eval()
    assert not torch.allclose(shared.forward_maps(x)[:, :3], shared.forward_maps(x2)[:, :3])


def test_other_input_sizes_keep_the_head():
    m = create_model("ststnet", "cpu", input_size=56)
    assert m(torch.randn(2, 3, 56, 56)).shape == (2, 3)


@pytest.mark.parametrize("bad", [dict(filters=()), dict(filters=(3, 0)), dict(split_streams=True, filters=(3, 5))])
def test_bad_configs_raise(bad):
    with pytest.raises(ConfigError):
        model_config("ststnet", "cpu", **bad)
