"""Faithfulness: does a map mark what the model actually uses?

Hand-written (``quantus`` and ``grad-cam`` resolve against the pinned torch
but would install a second OpenCV distribution next to the project's
``opencv-contrib-python-headless<5``, so they are not used); Captum's
``infidelity`` and ``sensitivity_max`` are used as they are.

* :func:`perturbation_curves` — deletion and insertion (Petsiuk et al. 2018):
  pixels are ranked by the (H, W) map, most relevant first; *deletion*
  replaces the top share with the baseline in ``steps`` equal steps and
  records the model's probability of the target class after each step;
  *insertion* starts from the baseline and reveals the top share. A pixel is
  a location: every input channel there is removed or revealed together.
  Areas under the curves (trapezoid over the removed share 0..1): deletion
  low = faithful, insertion high = faithful. The same curves with a random
  pixel order are the *chance* reference (``*_random``).
* ROAD (Rong et al. 2022), ``fill='road'``: removed pixels are filled by
  *noisy linear imputation* (each removed pixel = the weighted mean of its 8
  neighbours, solved as one sparse linear system, plus a little noise), so a
  curve is not driven by holes the model never saw in training. Reported as
  MoRF (most relevant first removed; low = faithful) and LeRF (least relevant
  first; high = faithful).
* :func:`infidelity_score`, :func:`sensitivity_score` — Captum's metrics
  (Yeh et al. 2019): infidelity = expected squared error between the map's
  predicted score change and the real one under small Gaussian perturbations
  (lower = faithful); max-sensitivity = largest change of the map under small
  input perturbations (lower = steadier).
"""
from __future__ import annotations

from typing import Any, Callable

import numpy as np
import torch
from torch import nn

from mer_core.errors import MerError
from mer_core.explain.attributions import as_batch

FILLS = ("baseline", "road")


def pixel_order(attr: np.ndarray, *, seed: int | None = None) -> np.ndarray:
    """Flat pixel indices, most relevant first (``seed``: a random order instead, the chance reference).

    Ties are broken at random (seeded), so a flat map behaves like the chance order.
    """
    m = np.nan_to_num(np.asarray(attr, dtype=np.float64)).ravel()
    rng = np.random.default_rng(0 if seed is None else seed)
    if seed is not None:
        return rng.permutation(m.size)
    jitter = rng.random(m.size)  # secondary key: lexsort sorts by the last key first
    return np.lexsort((jitter, -m))


def _probabilities(model: nn.Module, xs: torch.Tensor, target: int, batch: int = 64) -> np.ndarray:
    out = []
    with torch.no_grad():
        for i in range(0, len(xs), batch):
            out.append(torch.softmax(model(xs[i:i + batch]), -1)[:, target])
    return torch.cat(out).numpy().astype(np.float64)


def _masks(order: np.ndarray, shape: tuple[int, int], fractions: np.ndarray) -> np.ndarray:
    """(len(fractions), H, W) bool: True where the first ``fraction`` of ``order`` lies."""
    n = order.size
    ranks = np.empty(n, dtype=np.int64)
    ranks[order] = np.arange(n)
    counts = np.round(fractions * n).astype(int)
    return (ranks[None, :] < counts[:, None]).reshape(len(fractions), *shape)


def road_impute(x: torch.Tensor, removed: np.ndarray, *, noise: float = 0.01, seed: int = 0) -> torch.Tensor:
    """ROAD's noisy linear imputation of the ``removed`` (H, W) pixels of ``x`` (1, C, H, W).

    Each removed pixel equals the weighted mean of its 8 neighbours (1/6 for
    the 4 direct, 1/12 for the diagonal ones; known neighbours enter as
    constants), solved jointly; a tiny pull to the channel mean keeps the
    system solvable when everything is removed. Gaussian noise of ``noise``
    times the channel's spread is added to the filled values.
    """
    from scipy.sparse import coo_matrix  # lazy: loads scipy (about 1 s)
    from scipy.sparse.linalg import spsolve  # lazy: loads scipy (about 1 s)

    removed = np.asarray(removed, dtype=bool)
    out = x.detach().clone()
    if not removed.any():
        return out
    h, w = removed.shape
    img = x[0].detach().numpy().astype(np.float64).reshape(x.shape[1], -1)  # (C, H*W)
    idx = -np.ones(h * w, dtype=np.int64)
    unknown = np.flatnonzero(removed.ravel())
    idx[unknown] = np.arange(unknown.size)
    eps = 1e-3
    rows, cols, vals = [], [], []
    rhs = np.repeat(eps * img.mean(1, keepdims=True), unknown.size, axis=1).T  # (U, C)
    diag = np.full(unknown.size, eps)
    uy, ux = np.divmod(unknown, w)
    for dy, dx, wt in ((-1, 0, 1 / 6), (1, 0, 1 / 6), (0, -1, 1 / 6), (0, 1, 1 / 6),
                       (-1, -1, 1 / 12), (-1, 1, 1 / 12), (1, -1, 1 / 12), (1, 1, 1 / 12)):
        ny, nx = uy + dy, ux + dx
        ok = (ny >= 0) & (ny < h) & (nx >= 0) & (nx < w)
        nflat = ny[ok] * w + nx[ok]
        diag[ok] += wt
        inner = idx[nflat] >= 0
        rows.append(np.flatnonzero(ok)[inner])
        cols.append(idx[nflat[inner]])
        vals.append(np.full(int(inner.sum()), -wt))
        known = ~inner
        np.add.at(rhs, np.flatnonzero(ok)[known], wt * img[:, nflat[known]].T)
    rows.append(np.arange(unknown.size))
    cols.append(np.arange(unknown.size))
    vals.append(diag)
    a = coo_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
                   shape=(unknown.size, unknown.size)).tocsc()
    filled = np.asarray(spsolve(a, rhs)).reshape(unknown.size, -1)  # (U, C)
    spread = img.std(1) if img.shape[1] > 1 else np.ones(img.shape[0])
    filled = filled + np.random.default_rng(seed).normal(size=filled.shape) * noise * spread[None, :]
    flat = out[0].reshape(x.shape[1], -1)
    flat[:, unknown] = torch.as_tensor(filled.T, dtype=out.dtype)
    return out


def _area(fractions: np.ndarray, scores: np.ndarray) -> float:
    return float(np.trapezoid(scores, fractions)) if hasattr(np, "trapezoid") else float(np.trapz(scores, fractions))


def perturbation_curves(model: nn.Module, sample: Any, attr: np.ndarray, target: int, *,
                        baseline: Any = None, steps: int = 10, fill: str = "baseline", random_reference: bool = True,
                        seed: int = 0) -> dict[str, Any]:
    """Deletion/insertion (``fill='baseline'``) or ROAD MoRF/LeRF (``fill='road'``) curves and areas.

    ``attr``: (H, W) map; ``baseline``: the removed-pixel values (C, H, W),
    default zeros (``fill='baseline'`` only). Returns ``fractions`` and, per
    curve, its scores (probability of ``target``) and ``<curve>_auc``; with
    ``random_reference`` also the same curves under a random pixel order
    (``<curve>_random`` and ``<curve>_random_auc``): the chance level, which
    does not depend on the map (:func:`random_curves` computes it once per clip).
    """
    if fill not in FILLS:
        raise MerError(f"faithfulness: fill={fill!r}; expected one of {', '.join(FILLS)}")
    if int(steps) < 1:
        raise MerError(f"faithfulness: steps={steps}; expected >= 1")
    x = as_batch(sample)
    attr = np.asarray(attr)
    if attr.shape != tuple(x.shape[-2:]):
        raise MerError(f"faithfulness: the map is {attr.shape} but the input is {tuple(x.shape[-2:])}")
    out = _curves(model, x, baseline, pixel_order(attr), int(steps), fill, int(target), seed, "")
    if random_reference:
        out.update(random_curves(model, x, target, baseline=baseline, steps=steps, fill=fill, seed=seed))
    return out


def random_curves(model: nn.Module, sample: Any, target: int, *, baseline: Any = None, steps: int = 10,
                  fill: str = "baseline", seed: int = 0) -> dict[str, Any]:
    """The chance reference of :func:`perturbation_curves`: its curves under a random pixel order (``*_random``)."""
    x = as_batch(sample)
    order = pixel_order(np.zeros(x.shape[-2:]), seed=seed + 1)
    return _curves(model, x, baseline, order, int(steps), fill, int(target), seed, "_random")


def _curves(model: nn.Module, x: torch.Tensor, baseline: Any, order: np.ndarray, steps: int, fill: str,
            target: int, seed: int, suffix: str) -> dict[str, Any]:
    model.eval()
    shape = tuple(x.shape[-2:])
    fractions = np.linspace(0.0, 1.0, steps + 1)
    inner = fractions[1:-1]  # both ends are shared by the two curves: the input itself, and nothing left of it
    masks = _masks(order, shape, inner)
    if fill == "baseline":
        base = torch.zeros_like(x) if baseline is None else as_batch(baseline)
        m = torch.as_tensor(masks[:, None], dtype=x.dtype)
        names, ends = ("deletion", "insertion"), [x, base]
        inner_xs = [x * (1 - m) + base * m, base * (1 - m) + x * m]
    else:
        lerf = _masks(order[::-1].copy(), shape, inner)
        names, ends = ("morf", "lerf"), [x, road_impute(x, np.ones(shape, bool), seed=seed)]
        inner_xs = [torch.cat([road_impute(x, k, seed=seed) for k in km] or [x[:0]]) for km in (masks, lerf)]
    p = _probabilities(model, torch.cat([*ends, *inner_xs]), target)
    p_full, p_none, n = p[0], p[1], len(inner)
    out: dict[str, Any] = {"fractions": fractions.tolist(), "fill": fill}
    for i, name in enumerate(names):
        mid = p[2 + i * n: 2 + (i + 1) * n]
        first, last = (p_full, p_none) if name in ("deletion", "morf", "lerf") else (p_none, p_full)
        scores = np.concatenate([[first], mid, [last]])
        out[name + suffix] = scores.tolist()
        out[f"{name}{suffix}_auc"] = _area(fractions, scores)
    return out


def infidelity_score(model: nn.Module, sample: Any, attr: np.ndarray, target: int, *, n_perturb: int = 16,
                     noise: float = 0.05, seed: int = 0) -> float:
    """Captum's infidelity of an (H, W) or (C, H, W) map (broadcast over channels); lower = faithful.

    Perturbations: Gaussian noise of ``noise`` times the input's spread.
    Normalised (``normalize=True``): the map's scale does not count.
    """
    from captum.metrics import infidelity  # lazy: loads captum and torch

    x = as_batch(sample)
    a = torch.as_tensor(np.asarray(attr, dtype=np.float32))
    a = (a[None, None] if a.dim() == 2 else a[None]).expand_as(x).contiguous()
    spread = float(x.max() - x.min()) or 1.0
    gen = torch.Generator().manual_seed(int(seed))

    def perturb(inputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        eps = torch.randn(inputs.shape, generator=gen) * noise * spread
        return eps, inputs - eps

    model.eval()
    with torch.no_grad():
        value = infidelity(lambda t: torch.softmax(model(t), -1), perturb, x, a, target=int(target),
                           n_perturb_samples=int(n_perturb), max_examples_per_batch=int(n_perturb), normalize=True)
    return float(value[0])


def sensitivity_score(explain_fn: Callable[[torch.Tensor], np.ndarray], sample: Any, *, n_perturb: int = 4,
                      radius: float = 0.02) -> float:
    """Captum's ``sensitivity_max`` of ``explain_fn`` (one (C, H, W) input -> its map); lower = steadier.

    ``radius``: the uniform perturbation's radius as a share of the input's
    spread. The map's norm is divided out, so only the map's shape counts.
    """
    from captum.metrics import sensitivity_max  # lazy: loads captum and torch

    x = as_batch(sample)
    spread = float(x.max() - x.min()) or 1.0

    def fn(inputs: torch.Tensor) -> torch.Tensor:
        maps = []
        for one in inputs:
            m = torch.as_tensor(np.asarray(explain_fn(one), dtype=np.float32))
            maps.append(m / (m.norm() + 1e-12))
        return torch.stack(maps)

    value = sensitivity_max(fn, x, perturb_radius=radius * spread, n_perturb_samples=int(n_perturb),
                            max_examples_per_batch=1)
    return float(value[0])
