"""Flow-driven Swin layers for MFDAN (Cai et al., TCSVT 2024).

Tokens are kept as (N, H, W, C) grids. A layer partitions the grid into
non-overlapping ``window x window`` windows (optionally after a cyclic shift by
half a window, as in Swin) and runs, per window:

* windowed self-attention: queries, keys, values from the image tokens;
* flow-guided attention: queries from the *flow* tokens, keys and values from
  the image tokens, so the motion field decides where the image branch looks.

Both use Swin-V2 scaled cosine logits, ``cos(q, k) * exp(min(s, log 100))``
with a learnable per-head ``s`` (temperature), plus a learned relative
position bias table (Swin-V1 style table; the paper names a relative position
bias, Swin-V2's continuous MLP bias is not needed at one fixed window size).
The layer output is ``x + proj(self) + proj_f(flow)`` followed by the usual
pre-norm MLP; flow tokens get their own small MLP so the flow stream deepens
alongside the image stream.

DropKey (Li et al., CVPR 2023): in training only, each logit is pushed to
effectively -inf (a finite offset whose softmax weight is exactly 0, see
:func:`dropkey_additive`) with probability ``dropkey`` *before* the softmax, so
the dropped keys get exactly zero weight and the remaining weights are
renormalised (unlike dropout on the attention weights, which rescales and does
not sum to one). A row whose every admissible key was dropped is left
undropped (otherwise the softmax would be NaN; at a 4x4 window and rate 0.4
that happens about once per 2.5 million rows).

The shifted-window mask adds -inf, so no information leaks between the
regions that the cyclic shift brings into one window (tested exactly).

Attention maps: every attention module can keep its last weights
(``keep=True``); :func:`received_attention_grid` turns them into a map on the
token grid, undoing the window partition and the shift.
"""
from __future__ import annotations

import math

import torch
from torch import nn

LOGIT_SCALE_MAX = math.log(1.0 / 0.01)  # Swin-V2 clamps the temperature at 100


# --------------------------------------------------------------------------- windows
def window_partition(x: torch.Tensor, ws: int) -> torch.Tensor:
    """(N, H, W, C) -> (N * nW, ws * ws, C); windows in row-major order."""
    n, h, w, c = x.shape
    x = x.view(n, h // ws, ws, w // ws, ws, c).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(-1, ws * ws, c)


def window_reverse(windows: torch.Tensor, ws: int, h: int, w: int) -> torch.Tensor:
    """Inverse of :func:`window_partition`: (N * nW, ws * ws, C) -> (N, H, W, C)."""
    c = windows.shape[-1]
    n = windows.shape[0] // ((h // ws) * (w // ws))
    x = windows.view(n, h // ws, w // ws, ws, ws, c).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(n, h, w, c)


def shift_region_mask(h: int, w: int, ws: int, shift: int) -> torch.Tensor:
    """Boolean (nW, ws*ws, ws*ws): True where query and key may attend.

    After a cyclic shift by ``-shift`` the last row/column of windows holds
    tokens from up to three regions that are not neighbours in the image;
    tokens attend only within their region.
    """
    label = torch.zeros(h, w, dtype=torch.long)
    cuts = (slice(0, -ws), slice(-ws, -shift), slice(-shift, None))
    region = 0
    for hs in cuts:
        for wsl in cuts:
            label[hs, wsl] = region
            region += 1
    lw = window_partition(label.view(1, h, w, 1), ws).squeeze(-1)  # (nW, ws*ws)
    return lw[:, :, None] == lw[:, None, :]


def relative_position_index(ws: int) -> torch.Tensor:
    """(ws*ws, ws*ws) indices into a (2ws-1)^2 bias table."""
    coords = torch.stack(torch.meshgrid(torch.arange(ws), torch.arange(ws), indexing="ij")).flatten(1)
    rel = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0) + (ws - 1)
    return rel[..., 0] * (2 * ws - 1) + rel[..., 1]


# --------------------------------------------------------------------------- attention
class _UnitNorm(torch.autograd.Function):
    """``x / max(||x||, eps)`` over the last dim, with a hand-written backward.

    Same function and gradient as ``F.normalize`` (tested), in fewer passes over
    the tensor: autograd differentiates ``x / norm.expand_as(x)`` through the
    division, the norm and the clamp; this backward is one reduction and two
    elementwise kernels (``g - y * <g, y>``, times ``1 / norm``).
    """

    @staticmethod
    def forward(x: torch.Tensor, eps: float) -> torch.Tensor:
        sq = (x * x).sum(-1, keepdim=True)
        clamped = sq < eps * eps
        inv = sq.clamp_min(eps * eps).rsqrt()
        return x * inv, inv, clamped

    @staticmethod
    def setup_context(ctx, inputs, output) -> None:
        y, inv, clamped = output
        ctx.save_for_backward(y, inv, clamped)
        ctx.mark_non_differentiable(inv, clamped)

    @staticmethod
    def backward(ctx, g: torch.Tensor, _g_inv, _g_clamped):
        y, inv, clamped = ctx.saved_tensors
        # d(x / n) = (g - y <g, y>) / n; where eps clamped the norm, y = x / eps is linear: g / eps
        dot = (g * y).sum(-1, keepdim=True).masked_fill_(clamped, 0.0)
        return torch.addcmul(g, y, dot, value=-1.0).mul_(inv), None


def unit_norm(x: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """``F.normalize(x, dim=-1, eps=eps)`` with a cheaper backward (see :class:`_UnitNorm`)."""
    return _UnitNorm.apply(x, eps)[0]


class CosineWindowAttention(nn.Module):
    """Scaled-cosine window attention; queries may come from another stream.

    ``forward(q_tokens, kv_tokens, allowed)`` with windowed tokens
    (B, T, C); ``allowed`` is None or a boolean (nW, T, T) mask (B = N * nW).
    """

    def __init__(self, dim: int, heads: int, ws: int, dropkey: float = 0.0) -> None:
        super().__init__()
        self.heads, self.ws, self.dropkey = heads, ws, float(dropkey)
        self.q = nn.Linear(dim, dim)
        self.kv = nn.Linear(dim, 2 * dim)
        self.proj = nn.Linear(dim, dim)
        self.logit_scale = nn.Parameter(torch.full((heads, 1, 1), math.log(10.0)))
        self.bias_table = nn.Parameter(torch.zeros((2 * ws - 1) ** 2, heads))
        nn.init.trunc_normal_(self.bias_table, std=0.02)
        self.register_buffer("rel_index", relative_position_index(ws), persistent=False)
        self.keep = False  # keep the last attention weights (explanations, tests)
        self.last_attn: torch.Tensor | None = None

    def _qkv(self, q_tokens: torch.Tensor, kv_tokens: torch.Tensor
             ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Unit-norm queries and keys (B, h, T, hd), values (B, h, T, hd).

        The norms are taken on the contiguous (B, T, h, hd) layout, before the
        head transpose, not on the strided transposed view.
        """
        b, t, c = kv_tokens.shape
        hd = c // self.heads
        q = unit_norm(self.q(q_tokens).view(b, t, self.heads, hd)).transpose(1, 2)
        k, v = self.kv(kv_tokens).view(b, t, 2, self.heads, hd).unbind(2)
        return q, unit_norm(k).transpose(1, 2), v.transpose(1, 2)

    def _bias(self, t: int) -> torch.Tensor:
        return self.bias_table[self.rel_index.view(-1)].view(t, t, self.heads).permute(2, 0, 1)

    def forward(self, q_tokens: torch.Tensor, kv_tokens: torch.Tensor, allowed: torch.Tensor | None) -> torch.Tensor:
        """Masks enter as additive terms, never as boolean ``masked_fill``: on CPU a
        boolean fill of a (B, h, T, T) tensor costs about 20x an addition of the same
        size (docs/benchmarks.md, "MFDAN's training step")."""
        b, t, c = kv_tokens.shape
        q, k, v = self._qkv(q_tokens, kv_tokens)
        scale = torch.clamp(self.logit_scale, max=LOGIT_SCALE_MAX).exp()
        logits = (q * scale) @ k.transpose(-2, -1)  # (B, h, T, T); the temperature folded into q
        add = self._bias(t)  # (h, T, T)
        if allowed is not None:  # shifted windows: -inf between regions, per window
            nw = allowed.shape[0]
            add = add + region_additive(allowed)
            logits = (logits.view(b // nw, nw, self.heads, t, t) + add).view(b, self.heads, t, t)
        else:
            logits = logits + add
        if self.training and self.dropkey > 0:
            logits = logits + dropkey_additive(logits, self.dropkey)
        attn = logits.softmax(-1)
        if self.keep:
            self.last_attn = attn.detach()
        out = (attn @ v).transpose(1, 2).reshape(b, t, c)
        return self.proj(out)


DROPKEY_OFFSET = -1.0e4  # added to a dropped logit; see dropkey_additive


def region_additive(allowed: torch.Tensor) -> torch.Tensor:
    """Boolean (nW, T, T) region mask -> additive (nW, 1, T, T): 0 allowed, -inf blocked."""
    return torch.zeros(allowed.shape, dtype=torch.float32, device=allowed.device).masked_fill(
        ~allowed, float("-inf"))[:, None]


def dropkey_additive(logits: torch.Tensor, rate: float) -> torch.Tensor:
    """DropKey as an additive term for ``logits``: ``DROPKEY_OFFSET`` with probability ``rate``, else 0.

    Each logit draws 15 random bits (one 32-bit draw serves two logits, each half
    keeping its low 15 bits: torch's ``random_`` leaves an int32's sign bit 0),
    so the rate is ``round(rate * 2**15) / 2**15`` (0.3 -> 0.29999); on CPU this
    costs under half of ``rand_like(logits) < rate`` (docs/benchmarks.md, "MFDAN's training step").

    The offset is finite on purpose. Cosine logits are bounded by the clamped
    temperature (|logit| <= 100) plus the small relative bias, so a dropped key
    sits at least ~9,800 below any kept one and its softmax weight is exactly 0
    in float32 (exp underflows below -104): dropping renormalises the kept
    weights as DropKey prescribes. A row whose every admissible key was dropped
    gets the same offset on all of them, which cancels in the softmax: the row
    is left undropped (up to float rounding of the offset, ~1e-3 of a logit)
    instead of becoming NaN. Regions blocked by the shift mask stay at -inf.
    """
    n = logits.numel()
    draws = torch.empty((n + 1) // 2, dtype=torch.int32, device=logits.device).random_().bitwise_and_(0x7FFF7FFF)
    bits = draws.view(torch.int16)[:n].view(logits.shape)
    # compared in float32 (exact for 15-bit integers, unlike half precision), then cast
    return bits.to(torch.float32).lt_(round(rate * 32768)).mul_(DROPKEY_OFFSET).to(logits.dtype)


def _mlp(dim: int, ratio: float) -> nn.Sequential:
    hidden = int(dim * ratio)
    return nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))


class DropPath(nn.Module):
    """Stochastic depth: drop a residual branch per sample in training."""

    def __init__(self, p: float = 0.0) -> None:
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0:
            return x
        keep = torch.rand(x.shape[0], *([1] * (x.dim() - 1)), device=x.device) >= self.p
        return x * keep / (1 - self.p)


# --------------------------------------------------------------------------- layers
class FlowDrivenLayer(nn.Module):
    """One (shifted-)window layer with self + flow-guided attention."""

    def __init__(self, dim: int, heads: int, ws: int, shift: int, resolution: int, *, mlp_ratio: float = 4.0,
                 dropkey: float = 0.0, flow_attention: bool = True, drop_path: float = 0.0) -> None:
        super().__init__()
        if resolution <= ws:  # as in Swin: one window covers the grid, no shift
            ws, shift = resolution, 0
        self.ws, self.shift, self.resolution = ws, shift, resolution
        self.flow_attention = flow_attention
        self.norm1 = nn.LayerNorm(dim)
        self.attn = CosineWindowAttention(dim, heads, ws, dropkey)
        if flow_attention:
            self.norm_f = nn.LayerNorm(dim)
            self.flow_attn = CosineWindowAttention(dim, heads, ws, dropkey)
        self.drop_path = DropPath(drop_path)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = _mlp(dim, mlp_ratio)
        self.norm_f2 = nn.LayerNorm(dim)
        self.flow_mlp = _mlp(dim, 2.0)
        mask = shift_region_mask(resolution, resolution, ws, shift) if shift else None
        self.register_buffer("allowed", mask, persistent=False)

    def forward(self, x: torch.Tensor, f: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x, f: (N, H, W, C) image and flow tokens -> updated (x, f)."""
        n, h, w, c = x.shape
        if h != self.resolution or w != self.resolution:
            raise ValueError(f"token grid {h}x{w} does not match this layer's {self.resolution}x{self.resolution}")
        ws, s = self.ws, self.shift
        hx = self.norm1(x)
        if s:
            hx = torch.roll(hx, (-s, -s), (1, 2))
        hw = window_partition(hx, ws)
        out = self.attn(hw, hw, self.allowed)
        if self.flow_attention:
            hf = self.norm_f(f)
            if s:
                hf = torch.roll(hf, (-s, -s), (1, 2))
            out = out + self.flow_attn(window_partition(hf, ws), hw, self.allowed)
        out = window_reverse(out, ws, h, w)
        if s:
            out = torch.roll(out, (s, s), (1, 2))
        x = x + self.drop_path(out)
        x = x + self.drop_path(self.mlp(self.norm2(x)))
        f = f + self.flow_mlp(self.norm_f2(f))
        return x, f

    def attention_modules(self) -> dict[str, CosineWindowAttention]:
        mods = {"self": self.attn}
        if self.flow_attention:
            mods["flow"] = self.flow_attn
        return mods


class PatchMerging(nn.Module):
    """2x2 neighbourhood concat -> LayerNorm -> Linear(4C, 2C): halves the grid."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(4 * dim)
        self.reduce = nn.Linear(4 * dim, 2 * dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.cat([x[:, 0::2, 0::2], x[:, 1::2, 0::2], x[:, 0::2, 1::2], x[:, 1::2, 1::2]], dim=-1)
        return self.reduce(self.norm(x))


class FlowDrivenStage(nn.Module):
    """``depth`` flow-driven blocks (each = window layer + shifted-window layer),
    then (optionally) patch merging of the image *and* the flow tokens."""

    def __init__(self, dim: int, heads: int, ws: int, resolution: int, depth: int, *, merge: bool,
                 mlp_ratio: float, dropkey: float, flow_attention: bool, drop_path: list[float]) -> None:
        super().__init__()
        self.layers = nn.ModuleList(
            FlowDrivenLayer(dim, heads, ws, 0 if i % 2 == 0 else ws // 2, resolution, mlp_ratio=mlp_ratio,
                            dropkey=dropkey, flow_attention=flow_attention, drop_path=drop_path[i])
            for i in range(2 * depth))
        self.merge = PatchMerging(dim) if merge else None
        self.merge_flow = PatchMerging(dim) if merge else None

    def forward(self, x: torch.Tensor, f: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        for layer in self.layers:
            x, f = layer(x, f)
        if self.merge is not None:
            x, f = self.merge(x), self.merge_flow(f)
        return x, f


# --------------------------------------------------------------------------- maps
def received_attention_grid(attn: torch.Tensor, n: int, resolution: int, ws: int, shift: int) -> torch.Tensor:
    """Attention received per token, stitched back onto the (un-shifted) grid.

    ``attn`` is (N * nW, heads, T, T) softmax weights (rows = queries). For a
    key token k in window w the value is ``sum_q attn[q, k]`` — the total
    attention mass the window's queries give to k. Each query distributes
    exactly 1, so a window's values sum to its number of tokens and *uniform
    attention gives 1.0 everywhere*, with or without the shift mask; values
    above 1 mark tokens the window concentrates on. Returns (N, heads, H, W).
    """
    received = attn.sum(dim=2)  # (B, heads, T)
    grid = window_reverse(received.transpose(1, 2), ws, resolution, resolution)  # (N, H, W, heads)
    if shift:
        grid = torch.roll(grid, (shift, shift), (1, 2))
    return grid.permute(0, 3, 1, 2).contiguous()


def rollout_step(v: torch.Tensor, attn: torch.Tensor, resolution: int, ws: int, shift: int) -> torch.Tensor:
    """One step of attention rollout for a relevance vector on the token grid.

    ``v`` (N, H, W) is relevance of this layer's *output* tokens; returns the
    relevance of its input tokens under ``v @ A`` with A the (block-diagonal,
    head-averaged) window attention matrix of the layer, i.e. relevance flows
    from each query to the keys it attends to.
    """
    n = v.shape[0]
    g = v[..., None]
    if shift:
        g = torch.roll(g, (-shift, -shift), (1, 2))
    vw = window_partition(g, ws).squeeze(-1)  # (B, T)
    a = attn.mean(1)  # (B, T, T)
    out = torch.einsum("bq,bqk->bk", vw, a)[..., None]
    grid = window_reverse(out, ws, resolution, resolution)
    if shift:
        grid = torch.roll(grid, (shift, shift), (1, 2))
    return grid[..., 0].reshape(n, resolution, resolution)
