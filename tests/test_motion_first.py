"""The motion-first switches of the flow presets: a positional head (head_grid) and MFDAN's image dropout."""
from __future__ import annotations

import pytest
import torch

from mer_core.errors import ConfigError
from mer_core.models.dense_attention import DenseAttentionConfig, DenseAttentionNet
from mer_core.models.mfdan import MFDAN, MFDANConfig

FLOW = ("flow_u", "flow_v", "strain")


def test_dense_attention_head_grid_reads_the_block_means_of_the_last_maps_in_place_order():
    torch.manual_seed(0)
    net = DenseAttentionNet(DenseAttentionConfig(channels=FLOW, input_size=28, block_layers=(2, 2), head_grid=2,
                                                 num_classes=3)).eval()
    x = torch.randn(2, 3, 28, 28)
    with torch.no_grad():
        maps = net.feature_map(x)  # (2, C, 7, 7)
        feats = net.forward_features(x)
    c, h, w = maps.shape[1:]
    assert (h, w) == (7, 7) and feats.shape == (2, c * 4)
    # adaptive pooling of 7 into 2: rows/cols 0..3 and 3..6 (they share the middle one)
    by_hand = torch.stack([maps[:, :, r0:r1, c0:c1].mean((2, 3))
                           for r0, r1 in ((0, 4), (3, 7)) for c0, c1 in ((0, 4), (3, 7))], dim=2).flatten(1)
    assert torch.allclose(feats, by_hand, atol=1e-6)
    # the top-left cell and the bottom-right cell are different features: place is kept
    assert not torch.allclose(by_hand.view(2, c, 4)[:, :, 0], by_hand.view(2, c, 4)[:, :, 3])


def _mfdan(**kw) -> MFDAN:
    cfg = MFDANConfig(channels=FLOW + ("apex",), input_size=32, embed_dim=8, depths=(1, 1), heads=(2, 2), window=4,
                      mlp_ratio=2.0, dropkey=0.0, drop_path=0.0, dropout=0.0, magnify_alpha_range=(), num_classes=3,
                      **kw)
    return MFDAN(cfg)


def test_mfdan_image_dropout_zeroes_whole_samples_appearance_in_training_only_and_never_the_flow():
    torch.manual_seed(0)
    ref = _mfdan(head_grid=2)
    dropped = _mfdan(head_grid=2, image_dropout=0.5)
    dropped.load_state_dict(ref.state_dict())
    x = torch.randn(64, 4, 32, 32)
    ref.train(), dropped.train()
    with torch.no_grad():
        a, b = ref.forward_features(x), dropped.forward_features(x)
    half = a.shape[1] // 2
    img_a, img_b = a[:, :half], b[:, :half]
    assert torch.allclose(a[:, half:], b[:, half:])  # the flow features are never dropped
    zeroed = (img_b == 0).all(1)
    kept = torch.isclose(img_b, 2 * img_a, atol=1e-6).all(1)  # the rest rescaled by 1 / (1 - p)
    assert bool((zeroed | kept).all()) and 16 < int(zeroed.sum()) < 48  # whole samples, about half of 64
    ref.eval(), dropped.eval()
    with torch.no_grad():
        assert torch.allclose(ref(x), dropped(x))  # evaluation sees the appearance whole


@pytest.mark.parametrize("kw, name", [(dict(head_grid=5), "head_grid"), (dict(image_dropout=1.0), "image_dropout")])
def test_mfdan_motion_first_options_out_of_range_name_the_option(kw, name):
    with pytest.raises(ConfigError, match=name):
        _mfdan(**kw)


def test_dense_connectivity_ablation_passes_maps_of_the_same_shape_without_reusing_earlier_features():
    from mer_core.models.dense_attention import DenseBlock

    torch.manual_seed(0)
    x = torch.randn(2, 16, 7, 7)
    dense, plain = DenseBlock(2, 16, 12, 4, 0.0).eval(), DenseBlock(2, 16, 12, 4, 0.0, dense=False).eval()
    with torch.no_grad():
        d, p = dense(x), plain(x)
    assert d.shape == p.shape == (2, 40, 7, 7)
    assert torch.equal(d[:, :16], x)  # dense: the block input travels on, concatenated
    # plain: the second layer reads only the first layer's output (its input width is the block's width)
    assert plain.layers[1].norm1.num_features == 40 and dense.layers[1].norm1.num_features == 28
    with torch.no_grad():
        assert torch.allclose(p, plain.layers[1]([plain.layers[0]([x])]))
