"""Losses: cross-entropy, label smoothing and focal loss (Lin et al. 2017).

Focal loss down-weights easy examples: FL = -alpha_t (1 - p_t)^gamma log p_t.
With gamma = 0 and no alpha it equals cross-entropy (tested). MFDAN trains
with gamma = 2. Optional per-class weights (class balance) multiply in as in
``F.cross_entropy(weight=...)``, normalised by the summed weights of the batch.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class FocalLoss(nn.Module):
    def __init__(self, gamma: float = 2.0, alpha: float = 0.0, weight: torch.Tensor | None = None) -> None:
        super().__init__()
        if gamma < 0:
            raise ValueError(f"focal loss gamma={gamma}: expected >= 0")
        self.gamma = gamma
        self.alpha = alpha
        self.register_buffer("weight", weight if weight is not None else None)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        logp = F.log_softmax(logits, dim=1)
        logp_t = logp.gather(1, target[:, None]).squeeze(1)
        p_t = logp_t.exp()
        loss = -((1 - p_t) ** self.gamma) * logp_t
        if self.alpha > 0:
            loss = self.alpha * loss
        if self.weight is not None:
            w = self.weight[target]
            return (loss * w).sum() / w.sum()
        return loss.mean()


def build_loss(name: str, *, gamma: float = 2.0, alpha: float = 0.0, smoothing: float = 0.1,
               weight: torch.Tensor | None = None) -> nn.Module:
    """The loss named in the config ('ce', 'label_smoothing', 'focal')."""
    if name == "ce":
        return nn.CrossEntropyLoss(weight=weight)
    if name == "label_smoothing":
        return nn.CrossEntropyLoss(weight=weight, label_smoothing=smoothing)
    if name == "focal":
        return FocalLoss(gamma=gamma, alpha=alpha, weight=weight)
    raise ValueError(f"unknown loss {name!r}; expected ce, label_smoothing or focal")
