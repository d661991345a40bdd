"""A small flow CNN: the reference point every comparison needs.

Two 3x3 conv blocks over onset->apex optical flow (u, v, strain) at 32x32,
global average pooling and a linear head. It trains a whole LOSO on the
synthetic set in about a minute on two CPU cores, so the vertical slice
(dataset -> LOSO -> store -> dashboard) runs before the paper models.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from mer_core.models.registry import ModelConfig, register_model


@dataclass(frozen=True)
class BaselineConfig(ModelConfig):
    width: int = 16  # channels of the first conv block (second has 2x)


def _block(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(2),
    )


class BaselineCNN(nn.Module):
    prefers_channels_last = True  # trainer input layout on a CPU: its training step is faster so (docs/benchmarks.md)

    def __init__(self, cfg: BaselineConfig) -> None:
        super().__init__()
        self.features = nn.Sequential(_block(cfg.in_channels, cfg.width), _block(cfg.width, 2 * cfg.width))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.drop = nn.Dropout(cfg.dropout)
        self.head = nn.Linear(2 * cfg.width, cfg.num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(self.features(x)).flatten(1)

    def forward_head(self, f: torch.Tensor) -> torch.Tensor:
        return self.head(self.drop(f))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    def gradcam_layers(self) -> dict[str, nn.Module]:
        return {"features.1": self.features[1]}


register_model(
    "baseline",
    config_cls=BaselineConfig,
    presets={
        "cpu": dict(channels=("flow_u", "flow_v", "strain"), input_size=32, width=16, dropout=0.2),
        "paper": dict(channels=("flow_u", "flow_v", "strain"), input_size=64, width=32, dropout=0.3),
    },
    description="Small flow CNN (u, v, strain): the project's reference baseline.",
    train_defaults={"cpu": dict(epochs=40, lr=3e-3, batch_size=32, optimizer="adamw", loss="ce"),
                    "paper": dict(epochs=100, lr=1e-3, batch_size=64, optimizer="adamw", scheduler="cosine",
                                  weight_decay=1e-4, loss="ce", class_balance="weights", augment=True,
                                  selection="fixed")},
    provenance={  # the project's own model: every size is ours
        "cpu": {"*": "chosen here", "epochs": "tuned on synthetic seed 0 (LOSO score on the default set)",
                "lr": "tuned on synthetic seed 0 (LOSO score on the default set)"},
        "paper": {"*": "chosen here (a larger baseline for a GPU; there is no paper)"},
    },
)(BaselineCNN)
