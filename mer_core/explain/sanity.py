"""Sanity checks (Adebayo et al. 2018) and map-to-map agreement.

* :func:`randomisation_check` — cascading model-parameter randomisation: the
  model's parametrised layers are re-initialised from the top (the output
  layer) down, in ``stages`` groups; after each stage the map is recomputed
  and compared with the original by Spearman rank correlation and SSIM. A
  method that explains the model must change once the weights are gone; a
  method whose map still matches the original after the whole model was
  randomised (rank correlation or SSIM >= ``threshold``) is *flagged*: it
  shows the input (edges, bright skin), not what the model learned.
* :func:`rank_correlation` — Spearman correlation of two maps over pixels
  (attention against attribution, per clip).
* :func:`ssim` — structural similarity of two maps, each scaled to [0, 1]
  (a Gaussian-window SSIM written here: scikit-image is not a dependency).

Hand-written (Captum has no sanity check; ``quantus`` is not installed, see
:mod:`.faithfulness`).
"""
from __future__ import annotations

import copy
from typing import Any, Callable

import cv2
import numpy as np
import torch
from torch import nn

from mer_core.errors import MerError

DEFAULT_THRESHOLD = 0.5  # similarity after full randomisation at or above this = the method fails the check


def rank_correlation(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman rank correlation of two same-shaped maps (NaN when one of them is flat)."""
    from scipy.stats import spearmanr  # lazy: loads scipy (about 1 s)

    a, b = np.asarray(a, dtype=np.float64).ravel(), np.asarray(b, dtype=np.float64).ravel()
    if a.shape != b.shape:
        raise MerError(f"rank correlation: maps of {a.size} and {b.size} pixels")
    if np.ptp(a) == 0 or np.ptp(b) == 0:
        return float("nan")
    return float(spearmanr(a, b).statistic)


def _unit(m: np.ndarray) -> np.ndarray:
    m = np.nan_to_num(np.asarray(m, dtype=np.float64))
    lo, hi = m.min(), m.max()
    return (m - lo) / (hi - lo) if hi > lo else np.zeros_like(m)


def ssim(a: np.ndarray, b: np.ndarray, *, sigma: float = 1.5) -> float:
    """Mean SSIM (Wang et al. 2004; Gaussian window, data range 1) of two maps scaled to [0, 1]."""
    a, b = _unit(a), _unit(b)
    if a.shape != b.shape or a.ndim != 2:
        raise MerError(f"ssim: expected two (H, W) maps of one shape, got {a.shape} and {b.shape}")
    c1, c2 = 0.01 ** 2, 0.03 ** 2

    def blur(m: np.ndarray) -> np.ndarray:
        return cv2.GaussianBlur(m, (0, 0), sigma, borderType=cv2.BORDER_REFLECT)

    mu_a, mu_b = blur(a), blur(b)
    va = blur(a * a) - mu_a ** 2
    vb = blur(b * b) - mu_b ** 2
    cov = blur(a * b) - mu_a * mu_b
    s = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a ** 2 + mu_b ** 2 + c1) * (va + vb + c2))
    return float(s.mean())


def parametrised_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """Modules that own parameters directly, in definition order (input side first)."""
    return [(n, m) for n, m in model.named_modules() if n and any(True for _ in m.parameters(recurse=False))]


def _reinit(module: nn.Module, gen: torch.Generator) -> None:
    reset = getattr(module, "reset_parameters", None)
    with torch.no_grad():
        if callable(reset):
            reset()
        for p in module.parameters(recurse=False):  # a seeded draw on top: reset alone may restore constants
            p.copy_(torch.randn(p.shape, generator=gen) * (p.std() if p.numel() > 1 and p.std() > 0 else 0.1))


def randomisation_check(model: nn.Module, map_fn: Callable[[nn.Module], np.ndarray], *, stages: int = 3,
                        threshold: float = DEFAULT_THRESHOLD, seed: int = 0) -> dict[str, Any]:
    """Cascading randomisation of a copy of ``model``; ``map_fn(model) -> (H, W) map`` explains one input.

    Returns the per-stage ``layers`` randomised so far (top-down),
    ``spearman`` and ``ssim`` against the original map, and ``flagged``
    (True when the fully randomised model's map still matches:
    ``max(|spearman|, ssim) >= threshold``).
    """
    layers = parametrised_layers(model)
    if not layers:
        raise MerError(f"randomisation check: model {type(model).__name__} has no parameters to randomise")
    original = np.asarray(map_fn(model))
    rand = copy.deepcopy(model).eval()
    named = dict(rand.named_modules())
    top_down = [n for n, _ in reversed(layers)]
    groups = [list(g) for g in np.array_split(np.array(top_down, dtype=object), min(int(stages), len(top_down)))]
    gen = torch.Generator().manual_seed(int(seed))
    out: dict[str, Any] = {"layers": [], "spearman": [], "ssim": []}
    for group in groups:
        for name in group:
            _reinit(named[name], gen)
        m = np.asarray(map_fn(rand))
        out["layers"].append(str(group[-1]))
        out["spearman"].append(rank_correlation(original, m))
        out["ssim"].append(ssim(original, m))
    last_rho, last_ssim = out["spearman"][-1], out["ssim"][-1]
    rho = 0.0 if np.isnan(last_rho) else abs(last_rho)
    out["flagged"] = bool(max(rho, last_ssim) >= threshold)
    out["threshold"] = float(threshold)
    return out
