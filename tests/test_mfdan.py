"""MFDAN: config, DropKey, window masking, flow guidance, stitching, magnification, focal loss."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from mer_core.errors import ConfigError
from mer_core.models import create_model, model_config
from mer_core.models.mfdan import AmplitudeJitter
from mer_core.models import swin_flow
from mer_core.models.swin_flow import (
    DROPKEY_OFFSET,
    CosineWindowAttention,
    FlowDrivenLayer,
    dropkey_additive,
    received_attention_grid,
    shift_region_mask,
    unit_norm,
    window_partition,
    window_reverse,
)
from mer_core.training.losses import FocalLoss, build_loss


def _tiny(**kw):
    opts = dict(input_size=32, embed_dim=16, heads=(2, 4), window=4, mlp_ratio=2.0)
    opts.update(kw)
    return create_model("mfdan", "cpu", **opts)


# --------------------------------------------------------------------------- config
def test_image_channels_option_rewrites_channels():
    cfg = model_config("mfdan", "cpu", image_channels=["apex"])
    assert cfg.channels == ("flow_u", "flow_v", "strain", "apex")
    assert cfg.image_channels == ("apex",) and cfg.flow_channels == ("flow_u", "flow_v", "strain")
    both = model_config("mfdan", "cpu", image_channels=("onset", "apex"))
    assert both.channels[-2:] == ("onset", "apex")


@pytest.mark.parametrize("bad", [
    dict(channels=("onset", "apex")),  # no flow
    dict(channels=("flow_u", "flow_v", "strain")),  # no image
    dict(image_channels=("strain",)),
    dict(input_size=60),  # 15 tokens: not a multiple of window 4
    dict(heads=(3, 4)),  # 32 not divisible by 3
    dict(dropkey=1.0),
    dict(magnify_alpha_range=(15.0, 5.0)),
])
def test_bad_configs_raise(bad):
    with pytest.raises(ConfigError):
        model_config("mfdan", "cpu", **bad)


def test_channels_split_by_name_not_position():
    torch.manual_seed(0)
    m = _tiny(channels=("apex", "flow_u", "flow_v", "strain")).eval()
    x = torch.randn(2, 4, 32, 32)
    flow, img = m.split(x)
    assert torch.equal(img, x[:, :1]) and torch.equal(flow, x[:, 1:])


# --------------------------------------------------------------------------- DropKey
def _attn_module(rate: float) -> CosineWindowAttention:
    torch.manual_seed(0)
    mod = CosineWindowAttention(8, 2, 4, dropkey=rate)
    mod.keep = True
    return mod


def test_dropkey_inactive_in_eval():
    mod = _attn_module(0.9).eval()
    tok = torch.randn(3, 16, 8)
    out1, out2 = mod(tok, tok, None), mod(tok, tok, None)
    assert torch.equal(out1, out2)
    logits, _ = _reference_logits(mod, tok, tok)
    torch.testing.assert_close(mod.last_attn, logits.softmax(-1))
    assert (mod.last_attn > 0).all()


def test_dropkey_masks_logits_then_renormalises_in_training():
    mod = _attn_module(0.5).train()
    tok = torch.randn(4, 16, 8)
    torch.manual_seed(1)
    mod(tok, tok, None)
    attn = mod.last_attn
    dropped = attn == 0
    frac = dropped.float().mean().item()
    assert 0.4 < frac < 0.6  # about the rate
    # masking logits (not weights): every row still sums to one ...
    torch.testing.assert_close(attn.sum(-1), torch.ones_like(attn.sum(-1)))
    # ... and equals the softmax over the surviving keys only
    with torch.no_grad():
        logits, _ = _reference_logits(mod, tok, tok)
    expected = logits.masked_fill(dropped, float("-inf")).softmax(-1)
    torch.testing.assert_close(attn, expected)
    # dropout on weights would rescale the kept weights by 1/(1-p): it does not happen here
    assert not torch.allclose(attn, logits.softmax(-1).masked_fill(dropped, 0) / 0.5)


def test_dropkey_never_empties_a_row():
    mod = _attn_module(0.99).train()
    tok = torch.randn(64, 16, 8)
    out = mod(tok, tok, None)
    assert torch.isfinite(out).all() and torch.isfinite(mod.last_attn).all()


def test_dropkey_in_both_attentions_of_the_model():
    m = _tiny(dropkey=0.4)
    layer = m.stages[0].layers[0]
    assert layer.attn.dropkey == 0.4 and layer.flow_attn.dropkey == 0.4
    assert _tiny(dropkey=0.0).stages[0].layers[0].attn.dropkey == 0.0
    m.train()
    x = torch.randn(2, 5, 32, 32)
    torch.manual_seed(0)
    a = m(x)
    torch.manual_seed(1)
    b = m(x)
    assert not torch.allclose(a, b)  # random in training
    m.eval()
    assert torch.equal(m(x), m(x))


def _reference_logits(mod: CosineWindowAttention, q_tok, kv_tok):
    """The textbook scaled-cosine logits (F.normalize) plus the relative position bias, and the values."""
    b, t, c = kv_tok.shape
    hd = c // mod.heads
    q = F.normalize(mod.q(q_tok).view(b, t, mod.heads, hd).transpose(1, 2), dim=-1)
    k, v = mod.kv(kv_tok).view(b, t, 2, mod.heads, hd).permute(2, 0, 3, 1, 4)
    scale = torch.clamp(mod.logit_scale, max=math.log(100.0)).exp()
    logits = q @ F.normalize(k, dim=-1).transpose(-2, -1) * scale
    return logits + mod.bias_table[mod.rel_index.view(-1)].view(t, t, mod.heads).permute(2, 0, 1), v


def _reference_attention(mod: CosineWindowAttention, q_tok, kv_tok, allowed, drop):
    """The textbook form: F.normalize, boolean -inf masks (shift regions and dropped keys),
    a row whose every admissible key is dropped left undropped."""
    b, t, c = kv_tok.shape
    logits, v = _reference_logits(mod, q_tok, kv_tok)
    blocked = torch.zeros_like(logits, dtype=torch.bool)
    if allowed is not None:
        blocked |= (~allowed).repeat(b // allowed.shape[0], 1, 1)[:, None]
    if drop is not None:
        drop = drop & ~(drop | blocked).all(-1, keepdim=True)
        blocked |= drop
    attn = logits.masked_fill(blocked, float("-inf")).softmax(-1)
    return mod.proj((attn @ v).transpose(1, 2).reshape(b, t, c)), attn


@pytest.mark.parametrize("shift", [False, True])
def test_additive_masks_equal_boolean_masks_in_value_and_gradient(shift, monkeypatch):
    torch.manual_seed(0)
    mod = CosineWindowAttention(8, 2, 4, dropkey=0.5).train()
    mod.keep = True
    with torch.no_grad():
        mod.bias_table.normal_(0, 0.5)
    allowed = shift_region_mask(8, 8, 4, 2) if shift else None  # 4 windows of 4x4
    q_tok, kv_tok = torch.randn(8, 16, 8, requires_grad=True), torch.randn(8, 16, 8, requires_grad=True)
    drop = torch.rand(8, 2, 16, 16) < 0.5
    drop[0, 0, 3] = True  # a row with every key dropped
    if allowed is not None:  # and a row whose few admissible keys are all dropped (window 3, corner region)
        drop[3, 1, 15] = allowed[3, 15] | drop[3, 1, 15]
    monkeypatch.setattr(swin_flow, "dropkey_additive",
                        lambda logits, rate: torch.zeros_like(logits).masked_fill(drop, DROPKEY_OFFSET))
    out = mod(q_tok, kv_tok, allowed)
    g = torch.randn_like(out)
    grads = torch.autograd.grad(out, [q_tok, kv_tok, mod.bias_table, mod.logit_scale, mod.q.weight], g)
    ref, ref_attn = _reference_attention(mod, q_tok, kv_tok, allowed, drop)
    ref_grads = torch.autograd.grad(ref, [q_tok, kv_tok, mod.bias_table, mod.logit_scale, mod.q.weight], g)
    torch.testing.assert_close(mod.last_attn, ref_attn, atol=2e-3, rtol=0)  # the undropped rows: offset rounding
    assert torch.equal(mod.last_attn == 0, ref_attn == 0)  # exactly the same keys get zero weight
    torch.testing.assert_close(out, ref, atol=2e-3, rtol=0)
    for a, b in zip(grads, ref_grads):
        torch.testing.assert_close(a, b, atol=2e-3, rtol=1e-3)


def test_dropkey_rate_both_halves_of_a_draw_and_seeding():
    logits = torch.zeros(64, 4, 16, 16)
    torch.manual_seed(0)
    a = dropkey_additive(logits, 0.3)
    assert set(a.unique().tolist()) == {0.0, DROPKEY_OFFSET}
    dropped = a < 0
    assert abs(dropped.float().mean().item() - 0.3) < 0.01
    # both 16-bit halves of each 32-bit draw are used, and neither is biased
    flat = dropped.flatten()
    assert abs(flat[0::2].float().mean().item() - 0.3) < 0.01 and abs(flat[1::2].float().mean().item() - 0.3) < 0.01
    torch.manual_seed(0)
    assert torch.equal(dropkey_additive(logits, 0.3), a)  # seeded by torch's generator
    assert not torch.equal(dropkey_additive(logits, 0.3), a)


def test_unit_norm_equals_normalize_in_value_and_gradient():
    x = torch.randn(6, 5, 3, 16, dtype=torch.float64, requires_grad=True)
    torch.testing.assert_close(unit_norm(x), F.normalize(x, dim=-1))
    assert torch.autograd.gradcheck(unit_norm, (x,))
    z = torch.zeros(2, 4, dtype=torch.float64)
    z[0] = torch.tensor([1e-14, 0, 0, 0])  # a norm below eps: x / eps, a linear map
    z.requires_grad_(True)
    g = torch.randn_like(z)
    (ga,) = torch.autograd.grad(unit_norm(z), z, g)
    (gb,) = torch.autograd.grad(F.normalize(z, dim=-1), z, g)
    torch.testing.assert_close(ga, gb)


# --------------------------------------------------------------------------- windows
def _layer(shift: int, flow_attention: bool = True) -> FlowDrivenLayer:
    torch.manual_seed(0)
    return FlowDrivenLayer(8, 2, 4, shift, 8, mlp_ratio=2.0, dropkey=0.0, flow_attention=flow_attention).eval()


def test_partition_reverse_roundtrip():
    x = torch.randn(2, 8, 8, 3)
    assert torch.equal(window_reverse(window_partition(x, 4), 4, 8, 8), x)


def test_no_leak_across_windows_in_the_non_shifted_layer():
    layer = _layer(0)
    x, f = torch.randn(1, 8, 8, 8), torch.randn(1, 8, 8, 8)
    y, _ = layer(x, f)
    x2, f2 = x.clone(), f.clone()
    x2[0, 5, 6] += 3.0  # outside window (0, 0) = rows 0..3, cols 0..3
    f2[0, 2, 7] += 3.0
    y2, _ = layer(x2, f2)
    assert torch.equal(y2[0, :4, :4], y[0, :4, :4])
    assert not torch.allclose(y2[0, 4:, 4:], y[0, 4:, 4:])  # the perturbed window did change


def test_shift_mask_confines_attention_to_regions():
    # H=8, window 4, shift 2: token (0,0) is rolled to (6,6), the corner region of the
    # last window, which holds exactly the original tokens rows 0..1 x cols 0..1.
    layer = _layer(2)
    x, f = torch.randn(1, 8, 8, 8), torch.randn(1, 8, 8, 8)
    y, _ = layer(x, f)
    x2 = x.clone()
    x2[0, 0, 0] += 3.0
    y2, _ = layer(x2, f)
    changed = {(i, j) for i in range(8) for j in range(8) if not torch.equal(y[0, i, j], y2[0, i, j])}
    assert changed == {(0, 0), (0, 1), (1, 0), (1, 1)}


def test_flow_guided_path_changes_the_output_when_the_flow_changes():
    torch.manual_seed(0)
    x = torch.randn(2, 5, 32, 32)
    x2 = x.clone()
    x2[:, :3] += torch.randn(2, 3, 32, 32)  # flow channels only
    with_flow = _tiny(flow_attention=True).eval()
    img, _ = with_flow.forward_branches(x)
    img2, _ = with_flow.forward_branches(x2)
    assert not torch.allclose(img, img2, atol=1e-4)
    without = _tiny(flow_attention=False).eval()
    img, _ = without.forward_branches(x)
    img2, _ = without.forward_branches(x2)
    torch.testing.assert_close(img, img2, rtol=0, atol=0)  # image branch blind to the flow
    assert not torch.allclose(without(x), without(x2))  # late fusion still sees it


# --------------------------------------------------------------------------- attention maps
@pytest.mark.parametrize("shift", [0, 2])
def test_stitching_puts_each_window_back_where_it_came_from(shift):
    # every query of window w attends only to key index w % T: that key receives T
    n, res, ws, heads = 2, 8, 4, 3
    t, nw = ws * ws, (res // ws) ** 2
    attn = torch.zeros(n * nw, heads, t, t)
    for b in range(n * nw):
        attn[b, :, :, (b % nw) % t] = 1.0
    grid = received_attention_grid(attn, n, res, ws, shift)
    assert grid.shape == (n, heads, res, res)
    expected = torch.zeros(res, res)
    for w in range(nw):
        wr, wc = divmod(w, res // ws)
        j = w % t
        i_rolled, j_rolled = wr * ws + j // ws, wc * ws + j % ws
        expected[(i_rolled + shift) % res, (j_rolled + shift) % res] = t
    for b in range(n):
        for h in range(heads):
            assert torch.equal(grid[b, h], expected)


def _focus_layer(shift: int) -> FlowDrivenLayer:
    """A layer whose every query attends (almost) only to tokens equal to c."""
    layer = _layer(shift, flow_attention=False)
    c = torch.tensor([1.0, -1, 1, -1, 1, -1, 1, -1])
    with torch.no_grad():
        layer.attn.q.weight.zero_()
        layer.attn.q.bias.copy_(c)
        layer.attn.kv.weight.zero_()
        layer.attn.kv.weight[:8] = torch.eye(8)  # keys = tokens
        layer.attn.kv.bias.zero_()
        layer.attn.bias_table.zero_()
        layer.attn.logit_scale.fill_(10.0)  # clamped to log(100)
    layer.attn.keep = True
    return layer


@pytest.mark.parametrize("shift,group", [(0, [(0, 0)]), (2, [(0, 0), (0, 1), (1, 0), (1, 1)])])
def test_received_attention_known_pattern_through_a_real_layer(shift, group):
    d = torch.tensor([1.0, 1, -1, -1, 1, 1, -1, -1])  # orthogonal to c, zero mean
    c = torch.tensor([1.0, -1, 1, -1, 1, -1, 1, -1])
    x = d.repeat(1, 8, 8, 1)
    x[0, 1, 1] = c  # the special token
    layer = _focus_layer(shift)
    layer(x, torch.zeros_like(x))
    grid = received_attention_grid(layer.attn.last_attn, 1, 8, layer.ws, layer.shift)[0, 0]
    expected = torch.ones(8, 8)
    if shift == 0:  # the whole window 0 (16 tokens) looks at (1, 1)
        expected[:4, :4] = 0
        expected[1, 1] = 16
    else:  # only the 2x2 region of the shifted window that holds (1, 1)
        for i, j in group:
            expected[i, j] = 0
        expected[1, 1] = len(group)
    torch.testing.assert_close(grid, expected, atol=1e-4, rtol=0)


def test_attention_maps_contract_and_rollout():
    torch.manual_seed(0)
    m = _tiny().train()
    x = torch.randn(2, 5, 32, 32)
    maps = m.attention_maps(x)
    assert m.training  # mode restored
    assert set(maps) == {f"stage{s}.layer{l}.{k}" for s in (0, 1) for l in (0, 1) for k in ("self", "flow")} | {"rollout"}
    assert maps["stage0.layer1.flow"].shape == (2, 2, 8, 8)
    assert maps["stage1.layer0.self"].shape == (2, 4, 4, 4)
    assert maps["rollout"].shape == (2, 1, 8, 8)
    for name, v in maps.items():
        assert torch.isfinite(v).all() and (v >= 0).all(), name
        torch.testing.assert_close(v.mean((2, 3)), torch.ones(v.shape[:2]), rtol=1e-4, atol=1e-4)
    # non-shifted layer: each 4x4 window's received mass sums to its 16 queries
    win = maps["stage0.layer0.self"].unfold(2, 4, 4).unfold(3, 4, 4).sum((-1, -2))
    torch.testing.assert_close(win, torch.full_like(win, 16.0))
    assert all(mod.last_attn is None for *_, mod in m._attention_modules())


def test_rollout_known_answer():
    # one stage (8x8 tokens, window 4): layer 0 (no shift) sends every query to key 0 of its
    # window, layer 1 (shifted) attends uniformly within its regions.
    m = _tiny(depths=(1,), heads=(2,), flow_attention=False).eval()
    nw = 4
    focus = torch.zeros(nw, 2, 16, 16)
    focus[..., 0] = 1.0
    allowed = m.stages[0].layers[1].allowed.float()  # (nW, T, T) regions of the shifted layer
    uniform = (allowed / allowed.sum(-1, keepdim=True))[:, None].expand(nw, 2, 16, 16)
    r = m._rollout({"stage0.layer0.self": focus, "stage0.layer1.self": uniform}, 1)[0, 0]
    expected = torch.full((8, 8), 0.5)
    for i, j in [(0, 0), (0, 4), (4, 0), (4, 4)]:  # window origins get half of 16 tokens' mass
        expected[i, j] = 0.5 + 0.5 * 16
    torch.testing.assert_close(r, expected)


# --------------------------------------------------------------------------- magnification
def test_amplitude_jitter_known_answers():
    onset, apex, mag = torch.rand(3, 2, 4, 4).unbind(0)
    jit = AmplitudeJitter(("apex", "magnified_apex"), (20.0, 20.0), 10.0, False)
    img = torch.stack([apex, mag], 1)
    jit.eval()
    assert torch.equal(jit(img), img)
    jit.train()
    torch.testing.assert_close(jit(img)[:, 1], apex + 2.0 * (mag - apex))
    torch.testing.assert_close(jit(img)[:, 0], apex)
    only_onset = AmplitudeJitter(("onset", "magnified_apex"), (21.0, 21.0), 10.0, False).train()
    out = only_onset(torch.stack([onset, mag], 1))
    torch.testing.assert_close(out[:, 1], onset + 2.0 * (mag - onset))
    raw = AmplitudeJitter(("onset", "apex"), (5.0, 15.0), 10.0, True).eval()
    torch.testing.assert_close(raw(torch.stack([onset, apex], 1))[:, 1], apex + 10.0 * (apex - onset))
    assert AmplitudeJitter(("apex",), (5.0, 15.0), 10.0, True).rules == []


def test_amplitude_jitter_is_random_per_sample_within_the_range():
    apex = torch.zeros(64, 1, 2, 2)
    mag = torch.ones(64, 1, 2, 2)  # mag - apex = 1 -> output = alpha' / 10
    jit = AmplitudeJitter(("apex", "magnified_apex"), (5.0, 15.0), 10.0, False).train()
    out = jit(torch.cat([apex, mag], 1))[:, 1, 0, 0]
    assert out.min() >= 0.5 and out.max() <= 1.5 and out.std() > 0.1


# --------------------------------------------------------------------------- focal loss
def test_focal_loss_equals_cross_entropy_at_gamma_zero():
    torch.manual_seed(0)
    logits, target = torch.randn(32, 3), torch.randint(0, 3, (32,))
    torch.testing.assert_close(FocalLoss(gamma=0.0)(logits, target), F.cross_entropy(logits, target))
    w = torch.tensor([1.0, 2.0, 0.5])
    torch.testing.assert_close(build_loss("focal", gamma=0.0, weight=w)(logits, target),
                               F.cross_entropy(logits, target, weight=w))


def test_focal_loss_gamma_two_known_value():
    logits = torch.tensor([[math.log(3.0), 0.0]])  # p_target = 0.75
    loss = FocalLoss(gamma=2.0)(logits, torch.tensor([0]))
    torch.testing.assert_close(loss, torch.tensor(-(0.25**2) * math.log(0.75)))
