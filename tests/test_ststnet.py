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


class PerStream(torch.nn.Module):
    """The former layout, written out: three streams of conv -> ReLU -> BN -> 3x3/3 max pool, concatenated."""

    def __init__(self, filters=(3, 5, 8)) -> None:
        super().__init__()
        nn = torch.nn
        self.streams = nn.ModuleList(
            nn.Sequential(nn.Conv2d(3, f, 3, padding=1), nn.ReLU(), nn.BatchNorm2d(f), nn.MaxPool2d(3, 3, 1))
            for f in filters)
        self.pool = nn.AdaptiveAvgPool2d(5)
        self.head = nn.Linear(sum(filters) * 25, 3)

    def forward(self, x):
        return self.head(self.pool(torch.cat([s(x) for s in self.streams], 1)).flatten(1))


def _fused_from_per_stream(seed=0):
    torch.manual_seed(seed)
    ref = PerStream()
    with torch.no_grad():  # non-trivial BN parameters and running statistics
        for s in ref.streams:
            s[2].weight.uniform_(0.5, 1.5), s[2].bias.uniform_(-0.3, 0.3)
            s[2].running_mean.uniform_(0, 0.5), s[2].running_var.uniform_(0.5, 2)
    model = create_model("ststnet", "cpu")
    model.load_state_dict(ref.state_dict())  # a checkpoint stored with the per-stream layout
    return ref, model


def test_one_fused_convolution_is_the_three_streams_function_and_gradients():
    ref, model = _fused_from_per_stream()
    x, y = torch.randn(16, 3, 28, 28), torch.randint(0, 3, (16,))
    for mode in (False, True):
        ref.train(mode), model.train(mode)
        assert torch.allclose(ref(x), model(x), atol=1e-4), f"train={mode}"
    ref.train(), model.train()
    torch.nn.functional.cross_entropy(ref(x), y).backward()
    torch.nn.functional.cross_entropy(model(x.contiguous(memory_format=torch.channels_last)), y).backward()
    ref_w = torch.cat([s[0].weight.grad for s in ref.streams])
    assert torch.allclose(ref_w, model.conv.weight.grad, atol=1e-4)
    assert torch.allclose(torch.cat([s[2].weight.grad for s in ref.streams]), model.bn.weight.grad, atol=1e-4)
    assert torch.allclose(ref.head.weight.grad, model.head.weight.grad, atol=1e-4)
    # both updated their running statistics from the same two training batches
    assert torch.allclose(torch.cat([s[2].running_var for s in ref.streams]), model.bn.running_var, atol=1e-5)


def test_per_stream_gradcam_layers_see_each_streams_maps_in_eval_mode():
    ref, model = _fused_from_per_stream(1)
    ref.eval(), model.eval()
    layers = model.gradcam_layers()
    assert list(layers) == ["stream0", "stream1", "stream2"]
    seen = {}
    hooks = [m.register_forward_hook(lambda _m, _i, out, k=k: seen.__setitem__(k, out)) for k, m in layers.items()]
    x = torch.randn(2, 3, 28, 28)
    model(x)
    for h in hooks:
        h.remove()
    for i, s in enumerate(ref.streams):
        assert torch.allclose(seen[f"stream{i}"], s[0](x), atol=1e-5)  # stream i's convolution output
