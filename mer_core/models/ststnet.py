"""STSTNet-style baseline (Liong et al., FG 2019): a shallow three-stream CNN.

The literature's reference point on the MEGC2019 composite (published UF1
0.7353, UAR 0.7605). Input: 28x28 onset->apex optical flow u, v and optical
strain. Three parallel streams, each one 3x3 convolution (3, 5 and 8 filters)
+ ReLU + batch norm + 3x3 max pooling (stride 3); the streams are
concatenated (16 maps), average-pooled to 5x5 and classified by one dense
layer — about 2k parameters, so it cannot memorise the few hundred clips.

As in the original, every stream sees all three input channels by default;
``split_streams=True`` gives each stream one channel (u / v / strain) instead,
the stricter reading of "one stream per flow image".
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from mer_core.errors import ConfigError
from mer_core.models.registry import ModelConfig, register_model


@dataclass(frozen=True)
class STSTNetConfig(ModelConfig):
    channels: tuple[str, ...] = ("flow_u", "flow_v", "strain")
    input_size: int = 28
    filters: tuple[int, ...] = (3, 5, 8)  # filters of each stream's 3x3 convolution
    split_streams: bool = False  # True: stream i reads only channel i
    pooled_size: int = 5  # side of the average-pooled map fed to the dense head

    def __post_init__(self) -> None:
        super().__post_init__()
        object.__setattr__(self, "filters", tuple(self.filters))
        if not self.filters or any(f < 1 for f in self.filters):
            raise ConfigError(f"ststnet filters={self.filters}: expected positive filter counts, one per stream")
        if self.split_streams and len(self.filters) != len(self.channels):
            raise ConfigError(f"ststnet split_streams needs one stream per channel: filters={self.filters}, "
                              f"channels={self.channels}")
        if self.pooled_size < 1:
            raise ConfigError(f"ststnet pooled_size={self.pooled_size}: expected >= 1")


class STSTNet(nn.Module):
    """The three streams share their input (unless ``split_streams``), so they are one convolution with
    ``sum(filters)`` output maps, one ReLU, one batch norm and one max pool. Per-channel batch norm and
    pooling make this the same function, with the same gradients, as three separate streams concatenated,
    with fewer and larger kernels. Checkpoints stored with the former per-stream layout
    (``streams.<i>.0.weight`` ...) still load. In eval mode each stream's slice of the convolution output
    passes through its own identity module (``stream0``, ``stream1``, ... in :meth:`gradcam_layers`), so
    Grad-CAM can still be asked for one stream.
    """

    # trainer input layout on a CPU: channels-last input makes this net's training step faster than NCHW
    # (the figures are in docs/benchmarks.md, "The fold-batched executor (removed)")
    prefers_channels_last = True

    def __init__(self, cfg: STSTNetConfig) -> None:
        super().__init__()
        self.cfg = cfg
        total = sum(cfg.filters)
        if cfg.split_streams:  # each stream reads its own channel: separate convolutions
            self.streams = nn.ModuleList(
                nn.Sequential(nn.Conv2d(1, f, 3, padding=1), nn.ReLU(inplace=True), nn.BatchNorm2d(f),
                              nn.MaxPool2d(3, stride=3, padding=1))
                for f in cfg.filters
            )
        else:
            self.conv = nn.Conv2d(cfg.in_channels, total, 3, padding=1)
            self.relu = nn.ReLU(inplace=True)
            self.bn = nn.BatchNorm2d(total)
            self.maxpool = nn.MaxPool2d(3, stride=3, padding=1)
            self.taps = nn.ModuleList(nn.Identity() for _ in cfg.filters)
            self.register_load_state_dict_pre_hook(_load_stream_layout)
        self.pool = nn.AdaptiveAvgPool2d(cfg.pooled_size)
        self.drop = nn.Dropout(cfg.dropout)
        self.head = nn.Linear(total * cfg.pooled_size**2, cfg.num_classes)

    def forward_maps(self, x: torch.Tensor) -> torch.Tensor:
        """Concatenated stream maps (N, sum(filters), H/3, W/3)."""
        if self.cfg.split_streams:
            return torch.cat([s(x[:, i:i + 1]) for i, s in enumerate(self.streams)], dim=1)
        z = self.conv(x)
        if not self.training:  # the per-stream taps Grad-CAM hooks (an identity, so the same maps)
            z = torch.cat([tap(part) for tap, part in zip(self.taps, z.split(list(self.cfg.filters), dim=1))], 1)
        return self.maxpool(self.bn(self.relu(z)))

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        maps = self.forward_maps(x)
        k, side = maps.shape[-1] // self.cfg.pooled_size, self.cfg.pooled_size
        if maps.shape[-2] == maps.shape[-1] == k * side:  # even windows: the same mean, a cheaper backward
            return F.avg_pool2d(maps, k).flatten(1)
        return self.pool(maps).flatten(1)

    def forward_head(self, f: torch.Tensor) -> torch.Tensor:
        return self.head(self.drop(f))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    def gradcam_layers(self) -> dict[str, nn.Module]:
        """Each stream's convolution output (pre-ReLU), as in the per-stream model. Eval mode only for the
        shared-input model: its taps run in eval mode, which is the mode explanations use."""
        if self.cfg.split_streams:
            return {f"stream{i}": s[0] for i, s in enumerate(self.streams)}
        return {f"stream{i}": tap for i, tap in enumerate(self.taps)}


_STREAM_PARTS = {"0.weight": "conv.weight", "0.bias": "conv.bias", "2.weight": "bn.weight", "2.bias": "bn.bias",
                 "2.running_mean": "bn.running_mean", "2.running_var": "bn.running_var"}


def _load_stream_layout(module: nn.Module, state_dict: dict, prefix: str, *_args: object) -> None:
    """Rewrite a per-stream checkpoint (``streams.<i>.0.weight``, ...) into the fused layout, in place."""
    first = f"{prefix}streams.0.0.weight"
    if first not in state_dict:
        return
    n = len(module.cfg.filters)  # type: ignore[attr-defined]
    for part, fused in _STREAM_PARTS.items():
        keys = [f"{prefix}streams.{i}.{part}" for i in range(n)]
        if all(k in state_dict for k in keys):
            state_dict[prefix + fused] = torch.cat([state_dict.pop(k) for k in keys])
    tracked = [state_dict.pop(f"{prefix}streams.{i}.2.num_batches_tracked", None) for i in range(n)]
    if tracked[0] is not None:
        state_dict[f"{prefix}bn.num_batches_tracked"] = tracked[0]


register_model(
    "ststnet",
    config_cls=STSTNetConfig,
    presets={
        "cpu": dict(channels=("flow_u", "flow_v", "strain"), input_size=28, dropout=0.0),
        "paper": dict(channels=("flow_u", "flow_v", "strain"), input_size=28, dropout=0.0),
    },
    description="STSTNet-style shallow three-stream CNN on 28x28 u, v, strain (literature baseline).",
    train_defaults={
        "cpu": dict(epochs=30, lr=1e-3, batch_size=32, optimizer="adam", loss="ce"),
        # the published recipe, whole: Adam lr 5e-5, batch 256, 800 epochs, plain cross-entropy, no schedule,
        # no weight decay, no class weighting, no augmentation, the last epoch
        "paper": dict(epochs=800, lr=5e-5, batch_size=256, optimizer="adam", scheduler="none", weight_decay=0.0,
                      loss="ce", class_balance="none", augment=False, selection="fixed"),
    },
    provenance={
        "cpu": {"*": "chosen here (a short CPU schedule)", "channels": "paper", "input_size": "paper",
                "dropout": "paper (no dropout)"},
        "paper": {"*": "reference implementation (STSTNet training script)", "channels": "paper",
                  "input_size": "paper", "dropout": "paper (no dropout)", "loss": "paper (plain cross-entropy)",
                  "selection": "reference implementation (last epoch; never the test subject's best)"},
    },
)(STSTNet)
