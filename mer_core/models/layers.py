"""Small, generic layers shared by the models (append-only for other models).

Attention gates here return both their output and the gate itself, so a model
can expose its own attention (``attention_maps``) without hooks reached from
the outside.

* :class:`ChannelAttention` -- which features: average- and max-pooled channel
  descriptors through one shared bottleneck MLP, summed, sigmoid. Gate (N, C)
  in (0, 1).
* :class:`SpatialAttention` -- where: the channel-wise mean and max maps,
  stacked, through one k x k convolution, sigmoid. Gate (N, 1, H, W) in (0, 1).
* :class:`MixedAttention` -- channel then spatial gating (the CBAM order: the
  spatial map is computed from channel-refined features, so "where" is decided
  on the features that matter). Either part can be switched off. It applies the
  two gates itself: the gate modules only compute them (:meth:`gate`).

The gates are independent sigmoids, not distributions: they do not sum to one
(a map can be high everywhere). Divide by the sum if a distribution is needed.
"""
from __future__ import annotations

import torch
from torch import nn


class ChannelAttention(nn.Module):
    """Channel gate from pooled descriptors through a shared MLP (reduction r)."""

    def __init__(self, channels: int, reduction: int = 8) -> None:
        super().__init__()
        hidden = max(1, channels // reduction)
        self.mlp = nn.Sequential(
            nn.Conv2d(channels, hidden, 1, bias=True),
            nn.ReLU(inplace=True),
            nn.Conv2d(hidden, channels, 1, bias=True),
        )

    def gate(self, x: torch.Tensor) -> torch.Tensor:
        """Channel weights (N, C) in (0, 1)."""
        avg = x.mean(dim=(2, 3), keepdim=True)
        mx = x.amax(dim=(2, 3), keepdim=True)
        return torch.sigmoid(self.mlp(avg) + self.mlp(mx)).flatten(1)


class SpatialAttention(nn.Module):
    """Spatial gate from channel mean/max maps through one k x k convolution."""

    def __init__(self, kernel_size: int = 7) -> None:
        super().__init__()
        self.conv = nn.Conv2d(2, 1, kernel_size, padding=kernel_size // 2, bias=True)

    def gate(self, x: torch.Tensor) -> torch.Tensor:
        """Spatial map (N, 1, H, W) in (0, 1)."""
        pooled = torch.cat([x.mean(dim=1, keepdim=True), x.amax(dim=1, keepdim=True)], dim=1)
        return torch.sigmoid(self.conv(pooled))


class MixedAttention(nn.Module):
    """Channel then spatial attention; ``forward_with_maps`` also returns the gates."""

    def __init__(
        self,
        channels: int,
        reduction: int = 8,
        kernel_size: int = 7,
        use_channel: bool = True,
        use_spatial: bool = True,
    ) -> None:
        super().__init__()
        self.channel = ChannelAttention(channels, reduction) if use_channel else None
        self.spatial = SpatialAttention(kernel_size) if use_spatial else None
        # When ``record`` is set, ``forward`` keeps its gates in ``last_maps``
        # (a model's ``attention_maps`` sets it for one pass); calling through
        # ``forward`` keeps module hooks (Grad-CAM) working.
        self.record = False
        self.last_maps: tuple[torch.Tensor | None, torch.Tensor | None] = (None, None)

    def forward_with_maps(
        self, x: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        """(output, channel weights (N, C) or None, spatial map (N, 1, H, W) or None)."""
        cw = sm = None
        if self.channel is not None:
            cw = self.channel.gate(x)
            x = x * cw[:, :, None, None]
        if self.spatial is not None:
            sm = self.spatial.gate(x)
            x = x * sm
        return x, cw, sm

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, cw, sm = self.forward_with_maps(x)
        if self.record:
            self.last_maps = (cw, sm)
        return out
