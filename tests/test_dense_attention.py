"""DenseAttention model: shapes, gradients, attention maps, config checks, checkpoints."""
from __future__ import annotations

import dataclasses

import pytest
import torch

from mer_core.errors import ConfigError
from mer_core.models import create_model, model_config
from mer_core.models.dense_attention import DenseBlock, DenseAttentionNet
from mer_core.models.layers import ChannelAttention, MixedAttention, SpatialAttention

# the paper preset is DenseNet-121-sized at 224 px: test its layout (stem, 4 blocks) at a tiny size
TINY_PAPER = dict(input_size=32, block_layers=(2, 2, 2, 1), growth_rate=4, init_features=8, attn_reduction=2)
CASES = [("cpu", {}), ("paper", TINY_PAPER)]


def _model(preset: str, **over) -> DenseAttentionNet:
    torch.manual_seed(0)
    return create_model("dense_attention", preset, **over)


@pytest.mark.parametrize("preset,over", CASES)
def test_forward_backward_shapes_no_nans(preset, over):
    m = _model(preset, num_classes=5, **over)
    c = m.config
    x = torch.randn(3, c.in_channels, c.input_size, c.input_size, requires_grad=True)
    f = m.forward_features(x)
    assert f.shape == (3, m.num_features)
    logits = m.forward_head(f)
    assert logits.shape == (3, 5)
    assert torch.allclose(m.eval()(x), m.forward_head(m.forward_features(x)))
    m.train()
    loss = torch.nn.functional.cross_entropy(m(x), torch.tensor([0, 1, 4]))
    loss.backward()
    assert torch.isfinite(loss)
    grads = [p.grad for p in m.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert x.grad is not None and x.grad.abs().sum() > 0


@pytest.mark.parametrize("preset,over", CASES)
def test_attention_maps_shapes_and_range(preset, over):
    m = _model(preset, **over).eval()
    c = m.config
    x = torch.randn(2, c.in_channels, c.input_size, c.input_size)
    maps = m.attention_maps(x)
    n_stages = len(c.block_layers)
    assert sorted(maps) == sorted([f"stage{i}.{k}" for i in range(1, n_stages + 1) for k in ("channel", "spatial")])
    side = c.input_size // (2 if c.stem == "conv3" else 4)
    for i in range(1, n_stages + 1):
        sm, cw = maps[f"stage{i}.spatial"], maps[f"stage{i}.channel"]
        assert sm.shape == (2, 1, side, side)
        assert cw.shape[0] == 2 and cw.shape[1] == m.stages[i - 1].block.out_channels
        for t in (sm, cw):
            assert torch.isfinite(t).all() and t.min() >= 0 and t.max() <= 1
        side = -(-side // 2)  # transitions pool with ceil_mode
    up = m.attention_maps(x, upsample=True)
    for k, v in up.items():
        if k.endswith("spatial"):
            assert v.shape == (2, 1, c.input_size, c.input_size) and v.min() >= 0 and v.max() <= 1
    # maps are not left behind on the modules, and a second call is deterministic
    assert all(a.last_maps == (None, None) and not a.record for a in m.attention_modules().values())
    assert torch.equal(m.attention_maps(x)["stage1.spatial"], maps["stage1.spatial"])


def test_attention_maps_are_the_gates_that_scale_the_features():
    """The exposed spatial map is the one that multiplies the block output."""
    m = _model("cpu").eval()
    x = torch.randn(1, 2, 64, 64)
    att = m.stages[0].attention
    captured = {}
    h1 = m.stages[0].block.register_forward_hook(lambda mod, i, o: captured.setdefault("block", o))
    h2 = att.register_forward_hook(lambda mod, i, o: captured.setdefault("att", o))
    maps = m.attention_maps(x)
    h1.remove(), h2.remove()
    expected = captured["block"] * maps["stage1.channel"][:, :, None, None] * maps["stage1.spatial"]
    assert torch.allclose(captured["att"], expected, atol=1e-6)


@pytest.mark.parametrize(
    "where,kind,expected",
    [
        ("none", "mixed", []),
        ("last", "mixed", ["stage3.channel", "stage3.spatial"]),
        ("blocks", "channel", ["stage1.channel", "stage2.channel", "stage3.channel"]),
        ("blocks", "spatial", ["stage1.spatial", "stage2.spatial", "stage3.spatial"]),
    ],
)
def test_attention_options(where, kind, expected):
    m = _model("cpu", attention_where=where, attention_type=kind).eval()
    assert sorted(m.attention_maps(torch.randn(1, 2, 64, 64))) == expected
    assert len(m.gradcam_layers()) == 3
    assert m(torch.randn(2, 2, 64, 64)).shape == (2, 3)


def test_spatial_and_channel_gates_known_answers():
    sa = SpatialAttention(kernel_size=1)
    with torch.no_grad():
        sa.conv.weight.copy_(torch.tensor([1.0, 0.0]).view(1, 2, 1, 1))  # read the channel mean only
        sa.conv.bias.zero_()
    x = torch.randn(2, 5, 4, 4)
    assert torch.allclose(sa.gate(x), torch.sigmoid(x.mean(1, keepdim=True)), atol=1e-6)
    ca = ChannelAttention(6, reduction=2)
    for p in ca.parameters():
        torch.nn.init.zeros_(p)
    assert torch.allclose(ca.gate(torch.randn(3, 6, 4, 4)), torch.full((3, 6), 0.5))
    mixed = MixedAttention(6, reduction=2, kernel_size=3)
    y, cw, sm = mixed.forward_with_maps(torch.randn(2, 6, 5, 5))
    assert y.shape == (2, 6, 5, 5) and cw.shape == (2, 6) and sm.shape == (2, 1, 5, 5)


def test_dense_block_concatenates_every_layer():
    block = DenseBlock(layers=3, cin=5, growth=4, bn_size=2, drop_rate=0.0).eval()
    x = torch.randn(2, 5, 8, 8)
    y = block(x)
    assert y.shape == (2, 5 + 3 * 4, 8, 8)
    assert torch.equal(y[:, :5], x)  # the block input is passed on unchanged
    # layer k's input width grows by the growth rate (it sees all earlier outputs)
    assert [layer.norm1.num_features for layer in block.layers] == [5, 9, 13]


def test_gradcam_layers_return_feature_maps():
    m = _model("cpu").eval()
    outputs = {}
    hooks = [mod.register_forward_hook(lambda mod, i, o, n=name: outputs.__setitem__(n, o))
             for name, mod in m.gradcam_layers().items()]
    m(torch.randn(1, 2, 64, 64))
    for h in hooks:
        h.remove()
    assert {k: tuple(v.shape[-2:]) for k, v in outputs.items()} == {"stage1": (32, 32), "stage2": (16, 16),
                                                                     "stage3": (8, 8)}


@pytest.mark.parametrize(
    "over,match",
    [
        (dict(attn_kernel=4), "attn_kernel"),
        (dict(block_layers=()), "block_layers"),
        (dict(compression=0.0), "compression"),
        (dict(attention_where="everywhere"), "attention_where"),
        (dict(input_size=8, block_layers=(1, 1, 1, 1, 1)), "too small"),
        (dict(channels=("magnified_apex", "bogus")), "bogus"),
    ],
)
def test_bad_config_is_refused(over, match):
    with pytest.raises(ConfigError, match=match):
        model_config("dense_attention", "cpu", **over)


def test_channel_list_is_configurable():
    m = _model("cpu", channels=("flow_u", "flow_v", "strain", "magnified_apex"))
    assert m.stem[0].in_channels == 4
    assert m(torch.randn(2, 4, 64, 64)).shape == (2, 3)


def test_checkpoint_round_trip_weights_only(tmp_path):
    m = _model("cpu", num_classes=4, growth_rate=6).eval()
    path = tmp_path / "m.pt"
    cfg = {k: (list(v) if isinstance(v, tuple) else v) for k, v in dataclasses.asdict(m.config).items()}
    torch.save({"state_dict": m.state_dict(), "config": cfg}, path)
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    m2 = create_model("dense_attention", "cpu", **{k: tuple(v) if isinstance(v, list) else v
                                                    for k, v in ckpt["config"].items()}).eval()
    m2.load_state_dict(ckpt["state_dict"])
    x = torch.randn(2, 2, 64, 64)
    assert torch.equal(m(x), m2(x))
    assert m2.config == m.config
