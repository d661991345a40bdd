"""Explainers with known answers: tiny models whose attributions can be worked out."""
from dataclasses import dataclass

import numpy as np
import pytest
import torch
from torch import nn

from mer_core.errors import MerError
from mer_core.explain.attention import model_attention
from mer_core.explain.attributions import METHODS, explain, make_baseline
from mer_core.explain.localisation import aggregate_scores, resize_mask, score_map
from mer_core.models import create_model, list_models

R, C = 5, 9  # the pixel the tiny model reads


@dataclass(frozen=True)
class Cfg:
    channels: tuple = ("flow_u", "flow_v")


class OnePixel(nn.Module):
    """logit0 = 3 * x[0, R, C], logit1 = -3 * x[0, R, C]: only one pixel matters."""

    def __init__(self):
        super().__init__()
        self.config = Cfg()
        self.scale = nn.Parameter(torch.tensor(3.0))

    def forward(self, x):
        v = x[:, 0, R, C] * self.scale
        return torch.stack([v, -v], dim=1)


class PooledBlob(nn.Module):
    """Logit 0 = sum of a 2x-pooled feature map (an identity layer Grad-CAM can use)."""

    def __init__(self):
        super().__init__()
        self.config = Cfg(channels=("flow_u",))
        self.pool = nn.AvgPool2d(2)
        self.feat = nn.Identity()

    def forward(self, x):
        f = self.feat(self.pool(x))
        s = f.sum((1, 2, 3))
        return torch.stack([s, -s], dim=1)

    def gradcam_layers(self):
        return {"feat": self.feat}


def sample(channels=2, size=16, seed=0):
    return torch.rand(channels, size, size, generator=torch.Generator().manual_seed(seed)) + 0.5


@pytest.mark.parametrize("method", ["integrated_gradients", "saliency", "smoothgrad"])
def test_gradient_methods_put_all_mass_on_the_read_pixel(method):
    x = sample()
    e = explain(OnePixel(), x, 0, method)
    assert e.combined.shape == (16, 16)
    assert set(e.channels) == {"flow_u", "flow_v"}
    assert np.argmax(e.combined) == R * 16 + C
    assert e.combined[R, C] / e.combined.sum() == pytest.approx(1.0, abs=1e-6)
    assert np.abs(e.channels["flow_v"]).sum() == 0


def test_integrated_gradients_completeness_with_zero_motion_baseline():
    x = sample()
    e = explain(OnePixel(), x, 0, "integrated_gradients", steps=8)
    # linear model, zero baseline for flow: attribution = 3 * x at the pixel, exactly
    assert e.channels["flow_u"][R, C] == pytest.approx(3 * float(x[0, R, C]), rel=1e-5)
    assert e.options["convergence_delta"] < 1e-4


def test_target_sign_and_positive_combination():
    x = sample()
    pos = explain(OnePixel(), x, 0, "saliency", combine="positive")
    neg = explain(OnePixel(), x, 1, "saliency", combine="positive")
    assert pos.combined[R, C] == pytest.approx(3.0) and neg.combined.sum() == 0
    assert neg.channels["flow_u"][R, C] == pytest.approx(-3.0)
    assert explain(OnePixel(), x, None, "saliency").target == 0  # predicted class (x > 0)


def test_occlusion_stays_in_the_windows_covering_the_pixel():
    e = explain(OnePixel(), sample(), 0, "occlusion", window=3, stride=1)
    nz = np.argwhere(e.combined > 1e-6)
    assert len(nz) and (np.abs(nz - [R, C]).max(axis=0) <= 2).all()
    assert np.argmax(e.combined) == R * 16 + C


def test_gradcam_shape_and_nearest_interpolation_of_the_layer_map():
    x = torch.zeros(1, 16, 16)
    x[0, 4:6, 10:12] = 1.0  # one bright cell (2, 5) of the 8x8 pooled map
    e = explain(PooledBlob(), x, 0, "gradcam", layer="feat", interpolate="nearest")
    assert e.combined.shape == (16, 16) and e.channels == {}
    assert e.options["layer_shape"] == [8, 8]
    hot = e.combined > 1e-9
    assert hot[4:6, 10:12].all() and hot.sum() == 4
    smooth = explain(PooledBlob(), x, 0, "gradcam", layer="feat")  # bilinear: same peak, spread
    assert np.unravel_index(np.argmax(smooth.combined), (16, 16))[0] in (4, 5)
    assert (smooth.combined > 1e-9).sum() > 4


def test_bad_requests_raise_clear_errors():
    with pytest.raises(MerError, match="no layer 'nope'.*offered layers: feat"):
        explain(PooledBlob(), torch.ones(1, 8, 8), 0, "gradcam", layer="nope")
    with pytest.raises(MerError, match="unknown method"):
        explain(OnePixel(), sample(), 0, "lime")
    with pytest.raises(MerError, match="out of range"):
        explain(OnePixel(), sample(), 5, "saliency")
    with pytest.raises(MerError, match="unknown option"):
        explain(OnePixel(), sample(), 0, "saliency", steps=3)
    with pytest.raises(MerError, match="channel"):
        explain(OnePixel(), sample(channels=3), 0, "saliency")


def test_baselines_by_channel_name():
    x = torch.rand(1, 4, 16, 16)
    base = make_baseline(x, ["flow_u", "onset", "magnified_apex", "diff"])
    assert torch.equal(base[:, 0], torch.zeros_like(base[:, 0]))
    assert torch.equal(base[:, 2], x[:, 1])  # apex-like -> the onset frame
    assert torch.equal(base[:, 3], torch.zeros_like(base[:, 3]))
    assert 0 < float(base[:, 1].std()) < float(x[:, 1].std())  # onset -> blurred
    alone = make_baseline(x[:, 2:3], ["apex"])  # no onset channel: blur
    assert float(alone.std()) < float(x[:, 2].std())


@pytest.mark.parametrize("name", list_models())
def test_every_registered_model_gives_input_sized_maps(name):
    torch.manual_seed(0)
    model = create_model(name, "cpu", num_classes=3)
    cfg = model.config
    x = torch.rand(len(cfg.channels), cfg.input_size, cfg.input_size)
    for method in METHODS:
        opts = {"steps": 4} if method == "integrated_gradients" else {"samples": 2} if method == "smoothgrad" else {}
        if method == "occlusion":
            opts = {"window": cfg.input_size // 4}
        e = explain(model, x, 1, method, **opts)
        assert e.combined.shape == (cfg.input_size,) * 2, (name, method)
        assert np.isfinite(e.combined).all() and (e.combined >= 0).all()
        if method != "gradcam":
            assert list(e.channels) == list(cfg.channels)


class KnownAttention(nn.Module):
    """attention_maps returns a 4x4 token grid, one hot token per head, and a channel vector."""

    model_name = "mfdan"  # token grid: nearest upsampling

    def attention_maps(self, x):
        g = torch.zeros(x.shape[0], 2, 4, 4)
        g[:, 0, 1, 2] = 2.0
        g[:, 1, 1, 2] = 4.0
        return {"stage0.layer0.self": g, "stage0.channel": torch.ones(x.shape[0], 5)}


def test_attention_known_pattern_lands_on_its_pixel_block():
    att = model_attention(KnownAttention(), torch.zeros(1, 16, 16))
    m = att.maps["stage0.layer0.self"]
    assert m.shape == (16, 16)
    assert np.allclose(m[4:8, 8:12], 3.0) and m.sum() == pytest.approx(3.0 * 16)
    assert att.heads["stage0.layer0.self"].shape == (2, 16, 16)
    assert att.vectors["stage0.channel"].shape == (5,)
    assert att.native_shapes["stage0.layer0.self"] == (4, 4)
    assert att.aggregate == "aggregate"


@pytest.mark.parametrize("name", [n for n in list_models() if n in ("dense_attention", "mfdan")])
def test_models_own_attention_at_input_size(name):
    model = create_model(name, "cpu", num_classes=3)
    model.train()
    cfg = model.config
    att = model_attention(model, torch.rand(len(cfg.channels), cfg.input_size, cfg.input_size))
    assert model.training  # mode restored
    assert att.aggregate in att.maps
    for key, m in att.maps.items():
        assert m.shape == (cfg.input_size, cfg.input_size) and np.isfinite(m).all(), key
    if name == "dense_attention":
        assert any(k.endswith(".channel") for k in att.vectors)
        assert all(0 <= m.min() and m.max() <= 1 for m in att.maps.values())
    else:
        assert att.aggregate == "rollout"


def test_attention_of_a_model_without_it_is_a_clear_error():
    with pytest.raises(MerError, match="no attention of its own"):
        model_attention(create_model("baseline", "cpu"), torch.rand(3, 32, 32))


# --- localisation -----------------------------------------------------------------


def test_localisation_map_equal_to_mask_scores_one():
    mask = np.zeros((64, 64), bool)
    mask[10:20, 30:50] = True
    blink = np.zeros_like(mask)
    blink[40:44, 5:15] = True
    s = score_map(mask.astype(float), mask, blink)
    assert s["au_share"] == pytest.approx(1.0) and s["blink_share"] == 0 and s["pointing"] == 1


def test_localisation_uniform_map_scores_the_area_fraction():
    mask = np.zeros((64, 64), bool)
    mask[10:20, 30:50] = True
    s = score_map(np.ones((64, 64)), mask, mask[::-1])
    assert s["au_share"] == pytest.approx(200 / 4096) == pytest.approx(s["au_area"])
    assert s["blink_share"] == pytest.approx(200 / 4096)
    assert s["pointing"] == 0  # a flat map's tied maxima are mostly outside


def test_localisation_resizes_frame_masks_to_the_map():
    mask = np.zeros((128, 128), bool)
    mask[32:64, 64:96] = True
    small = resize_mask(mask, (32, 32))
    assert small.sum() == 64 and small[8:16, 16:24].all()
    m = np.zeros((32, 32))
    m[10, 20] = 1.0  # inside
    m[0, 0] = 0.5  # outside
    s = score_map(m, mask)
    assert s["au_share"] == pytest.approx(1 / 1.5) and s["pointing"] == 1
    m[0, 0] = 2.0
    assert score_map(m, mask)["pointing"] == 0
    assert score_map(m, mask, tolerance=0)["au_share"] == pytest.approx(1 / 3)


def test_aggregate_scores_per_model_and_method():
    rows = [dict(model="a", method="ig", au_share=1.0, blink_share=0.0, pointing=1.0, au_area=0.1),
            dict(model="a", method="ig", au_share=0.5, blink_share=0.2, pointing=0.0, au_area=0.1),
            dict(model="b", method="ig", au_share=0.2, blink_share=0.1, pointing=0.0, au_area=0.1),
            dict(model="a", method="ig", **score_map(np.zeros((8, 8)), np.eye(8, dtype=bool)))]  # empty map
    agg = aggregate_scores(rows)
    a = agg[agg.model == "a"].iloc[0]
    assert a.au_share == pytest.approx(0.75) and a.pointing == pytest.approx(0.5) and a.n == 2 and a["n_empty"] == 1


def test_explainer_class_binds_the_model():
    from mer_core.explain import Explainer

    ex = Explainer(OnePixel())
    e = ex.attribute(sample(), 0, "saliency")
    assert np.argmax(e.combined) == R * 16 + C and list(e.channels) == ["flow_u", "flow_v"]


def test_overlay_image_blends_the_map_and_outlines_the_mask():
    from dashboard.plots import overlay_image

    face = np.tile(np.linspace(0, 1, 32, dtype=np.float32), (32, 1))
    heat = np.zeros((32, 32), np.float32)
    heat[8:12, 20:24] = 1.0
    mask = np.zeros((32, 32), bool)
    mask[16:28, 4:12] = True
    plain = overlay_image(face, heat, opacity=0.0, size=64)
    assert plain.shape == (64, 64, 3) and (plain[..., 0] == plain[..., 1]).all()  # grey: the face only
    shown = overlay_image(face, heat, opacity=1.0, size=64, outlines=[(mask, (0, 255, 0))])
    assert not np.array_equal(shown[16:24, 40:48], plain[16:24, 40:48])  # the hot block is coloured
    assert np.array_equal(shown[0:8, 0:8], plain[0:8, 0:8])  # cold pixels keep the face
    green = (shown[..., 1] == 255) & (shown[..., 0] == 0) & (shown[..., 2] == 0)
    assert green[32:56, 8:24].any() and not green[:30].any()  # the outline sits on the mask
