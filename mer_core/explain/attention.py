"""The models' own attention, brought to the input's pixel grid.

Models expose their attention through ``attention_maps(x) -> dict[str,
Tensor]`` (see :mod:`mer_core.models.registry`); this module does not
re-implement any stitching. It only

* runs that method once without gradients, in eval mode;
* sorts the result into spatial maps (N, 1|heads, h, w) and vectors (N, C)
  (e.g. DenseAttention's channel weights);
* resizes each spatial map to the input's H x W: ``nearest`` for token grids
  (an MFDAN token covers a ``patch x 2^stage`` pixel square, so a block is
  the honest picture), ``bilinear`` otherwise; per-head maps are kept and
  also averaged over heads;
* builds one ``aggregate`` map to overlay: the model's ``rollout`` when it has
  one (MFDAN: attention rollout to the first token grid), else the geometric
  mean of the spatial maps (DenseAttention: where every stage's gate is high
  at once, which is what passes through all of them).

Values keep the model's scale (DenseAttention: sigmoid gates in [0, 1];
MFDAN: received attention, 1.0 = uniform); overlays normalise per map.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from mer_core.errors import MerError
from mer_core.explain.attributions import as_batch

TOKEN_MODELS = ("mfdan",)  # models whose maps live on token grids (nearest upsampling)


@dataclass
class AttentionResult:
    """One sample's attention: maps at the input's H x W, plus raw vectors."""

    maps: dict[str, np.ndarray] = field(default_factory=dict)  # name -> (H, W), heads averaged
    heads: dict[str, np.ndarray] = field(default_factory=dict)  # name -> (heads, H, W) when > 1 head
    vectors: dict[str, np.ndarray] = field(default_factory=dict)  # name -> (C,) e.g. channel weights
    native_shapes: dict[str, tuple[int, int]] = field(default_factory=dict)  # name -> (h, w) before resizing
    aggregate: str = ""  # the key of the map to overlay by default

    def names(self) -> list[str]:
        return list(self.maps)


def has_attention(model: nn.Module) -> bool:
    return callable(getattr(model, "attention_maps", None))


def upsample(grid: torch.Tensor, size: tuple[int, int], mode: str) -> torch.Tensor:
    """(N, K, h, w) -> (N, K, H, W); ``nearest`` repeats each cell over its pixel block."""
    if tuple(grid.shape[-2:]) == tuple(size):
        return grid
    if mode == "nearest":
        return F.interpolate(grid, size=size, mode="nearest")
    return F.interpolate(grid, size=size, mode="bilinear", align_corners=False)


def model_attention(model: nn.Module, sample: object, *, mode: str | None = None) -> AttentionResult:
    """The attention of ``model`` for one sample (C, H, W), at the input's size.

    ``mode``: 'nearest' or 'bilinear' resizing; default nearest for token
    models (:data:`TOKEN_MODELS`), bilinear otherwise. Raises MerError when
    the model has no ``attention_maps``.
    """
    if not has_attention(model):
        name = getattr(model, "model_name", type(model).__name__)
        raise MerError(f"model {name!r} has no attention of its own (no attention_maps method); "
                       "use an attribution method instead")
    x = as_batch(sample)
    mode = mode or ("nearest" if getattr(model, "model_name", "") in TOKEN_MODELS else "bilinear")
    if mode not in ("nearest", "bilinear"):
        raise MerError(f"attention: mode={mode!r}; expected nearest or bilinear")
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            raw = model.attention_maps(x)
    finally:
        model.train(was_training)
    size = tuple(x.shape[-2:])
    out = AttentionResult()
    for name, t in raw.items():
        t = t.detach().float()
        if t.dim() == 2:  # (N, C): a vector per sample (channel weights)
            out.vectors[name] = t[0].numpy()
            continue
        if t.dim() == 3:
            t = t[:, None]
        if t.dim() != 4:
            raise MerError(f"attention map {name!r} has shape {tuple(t.shape)}; expected (N, C) or (N, K, h, w)")
        out.native_shapes[name] = (int(t.shape[-2]), int(t.shape[-1]))
        up = upsample(t, size, mode)[0].numpy().astype(np.float32)
        if up.shape[0] > 1:
            out.heads[name] = up
        out.maps[name] = up.mean(0)
    if not out.maps:
        raise MerError("the model's attention_maps returned no spatial map")
    if "rollout" in out.maps:
        out.aggregate = "rollout"
    else:
        stack = np.stack([np.clip(m, 1e-6, None) for m in out.maps.values()])
        out.maps["aggregate"] = np.exp(np.log(stack).mean(0)).astype(np.float32)
        out.aggregate = "aggregate"
    return out
