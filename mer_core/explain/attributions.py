"""Captum attributions for any registered model, behind one call.

``explain(model, sample, target, method, **options)`` follows Captum's shape
(the constructor-like part is the method name; the call validates and returns
maps in the input's spatial shape) and returns an :class:`Explanation` with

* ``channels``: one signed (H, W) map per input channel, named by the model's
  ``config.channels`` (empty for Grad-CAM, which explains a layer, not the
  input channels);
* ``combined``: one non-negative (H, W) map, the sum over channels of the
  absolute attributions (``combine='abs'``, default: "where did the model
  look", independent of the motion's direction, since a flow field's sign only
  says which way the skin moved), or of the positive parts only
  (``combine='positive'``: evidence *for* the target). Grad-CAM's map is
  already ReLU'd and is used as it is.

Methods: ``integrated_gradients``, ``saliency``, ``gradcam``, ``occlusion``,
``smoothgrad`` (see :data:`METHODS`).

Baselines (Integrated Gradients and Occlusion) are "no expression" inputs,
chosen per channel by name because channels mean different things:

* flow channels (``flow_u``, ``flow_v``, ``strain``) -> 0 (zero motion);
* ``diff`` -> 0 (apex equals onset);
* apex-like images (``apex``, ``magnified_apex``) -> the sample's own
  ``onset`` channel when the model reads one (the same face, unmoved), else a
  Gaussian blur of the channel (sigma = H/16: the face's layout without the
  fine edges where micro-motion lives);
* ``onset``, ``magnified_onset`` -> their Gaussian blur.

``baseline='zero'`` or ``'blur'`` forces one rule for every channel.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from mer_core.errors import MerError

METHODS: dict[str, str] = {
    "integrated_gradients": "Integrated Gradients from a no-expression baseline (path integral of gradients)",
    "saliency": "Saliency: gradient of the class score w.r.t. the input (cheap, noisy)",
    "gradcam": "Grad-CAM on a model layer, upsampled to the input size (coarse, class-specific)",
    "occlusion": "Occlusion: score drop when a sliding window is replaced by the baseline",
    "smoothgrad": "SmoothGrad: Saliency averaged over noisy copies of the input",
}
ZERO_BASELINE = ("flow_u", "flow_v", "strain", "diff")
ONSET_BASELINE = ("apex", "magnified_apex")
COMBINE = ("abs", "positive")


@dataclass
class Explanation:
    """Maps of one sample for one target class (numpy, input's H x W)."""

    method: str
    target: int
    combined: np.ndarray  # (H, W) float32, >= 0
    channels: dict[str, np.ndarray] = field(default_factory=dict)  # name -> (H, W) signed float32
    options: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0

    def to_npz(self) -> dict[str, np.ndarray]:
        """Arrays for ``np.savez`` (see :meth:`from_npz`)."""
        out = {"combined": self.combined, "target": np.array(self.target), "seconds": np.array(self.seconds),
               "method": np.array(self.method), "options_json": np.array(json.dumps(self.options, default=str))}
        for name, arr in self.channels.items():
            out[f"ch_{name}"] = arr
        return out

    @classmethod
    def from_npz(cls, data: Any, options: dict[str, Any] | None = None) -> "Explanation":
        channels = {k[3:]: np.asarray(data[k]) for k in data.files if k.startswith("ch_")}
        stored = json.loads(str(data["options_json"])) if "options_json" in data.files else {}
        return cls(str(data["method"]), int(data["target"]), np.asarray(data["combined"]), channels,
                   {**stored, **(options or {})}, float(data["seconds"]))


# --- inputs and baselines -------------------------------------------------------


def as_batch(sample: Any, n_channels: int | None = None) -> torch.Tensor:
    """(C, H, W) or (1, C, H, W), numpy or torch -> float32 (1, C, H, W)."""
    x = torch.as_tensor(np.asarray(sample) if not isinstance(sample, torch.Tensor) else sample).float()
    if x.dim() == 3:
        x = x[None]
    if x.dim() != 4 or x.shape[0] != 1:
        raise MerError(f"explain: expected one sample shaped (C, H, W) or (1, C, H, W), got {tuple(x.shape)}")
    if n_channels is not None and x.shape[1] != n_channels:
        raise MerError(f"explain: the sample has {x.shape[1]} channel(s), the model reads {n_channels}")
    return x.detach().clone()


def gaussian_blur(img: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of (N, C, H, W) with reflect padding."""
    radius = max(1, int(round(3 * sigma)))
    h, w = img.shape[-2:]
    radius = min(radius, h - 1, w - 1) if min(h, w) > 1 else 0
    if radius < 1:
        return img.clone()
    t = torch.arange(-radius, radius + 1, dtype=img.dtype)
    k = torch.exp(-0.5 * (t / sigma) ** 2)
    k = k / k.sum()
    c = img.shape[1]
    out = F.pad(img, (radius, radius, 0, 0), mode="reflect")
    out = F.conv2d(out, k.view(1, 1, 1, -1).repeat(c, 1, 1, 1), groups=c)
    out = F.pad(out, (0, 0, radius, radius), mode="reflect")
    return F.conv2d(out, k.view(1, 1, -1, 1).repeat(c, 1, 1, 1), groups=c)


def make_baseline(x: torch.Tensor, channels: Sequence[str], kind: str = "default") -> torch.Tensor:
    """The "no expression" input for ``x`` (see the module docstring)."""
    if kind not in ("default", "zero", "blur"):
        raise MerError(f"explain: baseline={kind!r}; expected one of default, zero, blur")
    channels = list(channels)
    if len(channels) != x.shape[1]:
        raise MerError(f"explain: {len(channels)} channel names for an input with {x.shape[1]} channels")
    if kind == "zero":
        return torch.zeros_like(x)
    blurred = gaussian_blur(x, sigma=max(1.0, x.shape[-2] / 16))
    if kind == "blur":
        return blurred
    base = torch.zeros_like(x)
    onset = channels.index("onset") if "onset" in channels else None
    for i, name in enumerate(channels):
        if name in ZERO_BASELINE:
            continue
        if name in ONSET_BASELINE and onset is not None:
            base[:, i] = x[:, onset]
        else:
            base[:, i] = blurred[:, i]
    return base


# --- the model wrapper -------------------------------------------------------------


def prepare_model(model: nn.Module) -> nn.Module:
    """Eval mode and no in-place ReLUs (Captum's hooks need the layer outputs intact)."""
    model.eval()
    for m in model.modules():
        if isinstance(m, (nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.ELU)) and getattr(m, "inplace", False):
            m.inplace = False
    return model


def gradcam_layers(model: nn.Module) -> dict[str, nn.Module]:
    """The layers a model offers to Grad-CAM (its ``gradcam_layers()``, else none)."""
    fn = getattr(model, "gradcam_layers", None)
    return dict(fn()) if callable(fn) else {}


def resolve_layer(model: nn.Module, layer: str) -> tuple[str, nn.Module]:
    """A Grad-CAM layer by name: one of ``gradcam_layers()`` or any submodule path."""
    offered = gradcam_layers(model)
    if layer in offered:
        return layer, offered[layer]
    modules = dict(model.named_modules())
    if layer in modules and layer:
        return layer, modules[layer]
    raise MerError(f"gradcam: no layer {layer!r} in model {type(model).__name__}; "
                   f"offered layers: {', '.join(offered) or 'none'} (any submodule path also works)")


def default_layers(model: nn.Module, x: torch.Tensor) -> list[tuple[str, nn.Module]]:
    """Grad-CAM's default layers for ``x``, in the order to try them.

    The offered layers with a (N, C, h, w) output for ``x``, coarsest first
    (the most class-specific map, as in the Grad-CAM paper's choice of the
    last conv layer), offered order on ties; the last offered one when none
    has such an output.
    """
    offered = gradcam_layers(model)
    if not offered:
        raise MerError(f"gradcam: model {type(model).__name__} offers no gradcam_layers(); pass layer=<module path>")
    sizes: dict[str, int] = {}
    hooks = []
    for name, mod in offered.items():
        def hook(_m, _i, out, name=name):
            if isinstance(out, torch.Tensor) and out.dim() == 4:
                sizes[name] = int(out.shape[-2] * out.shape[-1])
        hooks.append(mod.register_forward_hook(hook))
    try:
        with torch.no_grad():
            model(x)
    finally:
        for h in hooks:
            h.remove()
    order = list(offered)
    ranked = sorted(sizes, key=lambda n: (sizes[n], order.index(n)))
    return [(n, offered[n]) for n in ranked or order[-1:]]


def _check_target(model: nn.Module, x: torch.Tensor, target: int | None) -> int:
    with torch.no_grad():
        logits = model(x)
    n = logits.shape[-1]
    if target is None:
        return int(logits.argmax(-1)[0])
    t = int(target)
    if not 0 <= t < n:
        raise MerError(f"explain: target class {t} out of range; the model has {n} classes (0..{n - 1})")
    return t


def _combine(attr: np.ndarray, how: str) -> np.ndarray:
    if how == "abs":
        return np.abs(attr).sum(0).astype(np.float32)
    return np.clip(attr, 0, None).sum(0).astype(np.float32)


# --- methods -------------------------------------------------------------------------


def explain(model: nn.Module, sample: Any, target: int | None = None, method: str = "integrated_gradients",
            *, channels: Sequence[str] | None = None, combine: str = "abs", **options: Any) -> Explanation:
    """Attribution maps of ``model`` for ``sample`` and class ``target``.

    ``sample``: one input (C, H, W) or (1, C, H, W); ``target``: class index,
    None = the model's own prediction. ``channels`` names the input channels
    (default ``model.config.channels``). Method options:

    * integrated_gradients: ``steps`` (32), ``baseline`` ('default'|'zero'|'blur'),
      ``internal_batch_size`` (16);
    * saliency: none;
    * gradcam: ``layer`` (a name from ``model.gradcam_layers()`` or a module
      path), ``interpolate`` ('bilinear'|'nearest'). Default layer: the
      coarsest offered layer whose map is not empty for this sample and
      class, trying coarser layers first (the Grad-CAM paper's last conv
      layer; a ReLU'd map can be all zero there when the class's evidence is
      negative, and then the next finer layer is used; the skipped ones are
      listed in ``options['empty_layers']``). Per model (``gradcam_layers``):
      DenseAttention: its last stage, then earlier stages; MFDAN: the final
      image / flow feature maps, then the flow stem; baseline:
      ``features.1``; STSTNet: the first stream;
    * occlusion: ``window`` (side in px, default max(3, H // 8)), ``stride``
      (default window // 2), ``baseline`` as for IG;
    * smoothgrad: ``samples`` (16), ``noise`` (0.15, std as a share of the
      input's value range), ``seed`` (0).

    Raises :class:`MerError` for an unknown method, option, layer or target.
    """
    if method not in METHODS:
        raise MerError(f"explain: unknown method {method!r}; valid methods: {', '.join(METHODS)}")
    if combine not in COMBINE:
        raise MerError(f"explain: combine={combine!r}; expected one of {', '.join(COMBINE)}")
    allowed = {
        "integrated_gradients": {"steps", "baseline", "internal_batch_size"},
        "saliency": set(),
        "gradcam": {"layer", "interpolate"},
        "occlusion": {"window", "stride", "baseline"},
        "smoothgrad": {"samples", "noise", "seed"},
    }[method]
    unknown = sorted(set(options) - allowed)
    if unknown:
        raise MerError(f"explain: unknown option(s) {unknown} for {method}; valid: {', '.join(sorted(allowed)) or 'none'}")
    names = list(channels if channels is not None else getattr(getattr(model, "config", None), "channels", ()))
    x = as_batch(sample)
    if not names:
        names = [f"c{i}" for i in range(x.shape[1])]
    if len(names) != x.shape[1]:
        raise MerError(f"explain: the sample has {x.shape[1]} channel(s) but the model reads {len(names)}: {names}")
    prepare_model(model)
    t0 = time.perf_counter()
    target = _check_target(model, x, target)
    fn = {"integrated_gradients": _ig, "saliency": _saliency, "gradcam": _gradcam, "occlusion": _occlusion,
          "smoothgrad": _smoothgrad}[method]
    attr, used = fn(model, x, target, names, **options)
    if method == "gradcam":
        combined, per_channel = attr, {}
    else:
        per_channel = {n: attr[i].astype(np.float32) for i, n in enumerate(names)}
        combined = _combine(attr, combine)
    used["combine"] = combine if method != "gradcam" else "relu"
    return Explanation(method, target, np.ascontiguousarray(combined, dtype=np.float32), per_channel, used,
                       time.perf_counter() - t0)


def _ig(model: nn.Module, x: torch.Tensor, target: int, names: list[str], *, steps: int = 32,
        baseline: str = "default", internal_batch_size: int = 16) -> tuple[np.ndarray, dict[str, Any]]:
    from captum.attr import IntegratedGradients  # lazy: loads captum and torch

    if int(steps) < 2:
        raise MerError(f"integrated_gradients: steps={steps}; expected >= 2")
    base = make_baseline(x, names, baseline)
    attr, delta = IntegratedGradients(model).attribute(
        x, baselines=base, target=target, n_steps=int(steps), internal_batch_size=int(internal_batch_size),
        return_convergence_delta=True,
    )
    return attr[0].detach().numpy(), {"steps": int(steps), "baseline": baseline,
                                      "convergence_delta": float(delta.abs().max())}


def _saliency(model: nn.Module, x: torch.Tensor, target: int, names: list[str]) -> tuple[np.ndarray, dict[str, Any]]:
    from captum.attr import Saliency  # lazy: loads captum and torch

    attr = Saliency(model).attribute(x.requires_grad_(), target=target, abs=False)
    return attr[0].detach().numpy(), {}


def _gradcam(model: nn.Module, x: torch.Tensor, target: int, names: list[str], *, layer: str | None = None,
             interpolate: str = "bilinear") -> tuple[np.ndarray, dict[str, Any]]:
    from captum.attr import LayerAttribution, LayerGradCam  # lazy: loads captum and torch

    if interpolate not in ("bilinear", "nearest"):
        raise MerError(f"gradcam: interpolate={interpolate!r}; expected bilinear or nearest")
    candidates = [resolve_layer(model, layer)] if layer is not None else default_layers(model, x)
    cams: list[tuple[str, torch.Tensor]] = []  # the default tries coarser layers first, finer ones while empty
    for name, module in candidates:
        cam = LayerGradCam(model, module).attribute(x, target=target, relu_attributions=True)
        if isinstance(cam, tuple):
            cam = cam[0]
        if cam.dim() != 4:
            raise MerError(f"gradcam: layer {name!r} outputs shape {tuple(cam.shape)}; Grad-CAM needs a (N, C, h, w) "
                           f"feature map (choose one of {', '.join(gradcam_layers(model)) or 'a conv layer'})")
        cams.append((name, cam))
        if bool((cam > 0).any()):
            break
    else:
        if layer is None:  # empty everywhere: show the coarsest, said so
            name, cam = cams[0]
    low = tuple(cam.shape[-2:])
    up = LayerAttribution.interpolate(cam, tuple(x.shape[-2:]), interpolate)
    used = {"layer": name, "layer_shape": list(low), "interpolate": interpolate}
    if layer is None and len(cams) > 1:
        used["empty_layers"] = [n for n, _ in cams if n != name]
    return up[0, 0].detach().clamp_min(0).numpy(), used


def _occlusion(model: nn.Module, x: torch.Tensor, target: int, names: list[str], *, window: int | None = None,
               stride: int | None = None, baseline: str = "default") -> tuple[np.ndarray, dict[str, Any]]:
    from captum.attr import Occlusion  # lazy: loads captum and torch

    c, h, w = x.shape[1:]
    window = int(window or max(3, h // 8))
    stride = int(stride or max(1, window // 2))
    if not 1 <= window <= min(h, w) or stride < 1:
        raise MerError(f"occlusion: window={window}, stride={stride}; expected 1 <= window <= {min(h, w)}, stride >= 1")
    base = make_baseline(x, names, baseline)
    attr = Occlusion(model).attribute(x, sliding_window_shapes=(c, window, window), strides=(c, stride, stride),
                                      baselines=base, target=target, perturbations_per_eval=16)
    return attr[0].detach().numpy(), {"window": window, "stride": stride, "baseline": baseline}


def _smoothgrad(model: nn.Module, x: torch.Tensor, target: int, names: list[str], *, samples: int = 16,
                noise: float = 0.15, seed: int = 0) -> tuple[np.ndarray, dict[str, Any]]:
    from captum.attr import NoiseTunnel, Saliency  # lazy: loads captum and torch

    if int(samples) < 1 or noise < 0:
        raise MerError(f"smoothgrad: samples={samples}, noise={noise}; expected samples >= 1 and noise >= 0")
    spread = float(x.max() - x.min()) or 1.0
    state = torch.random.get_rng_state()
    torch.manual_seed(int(seed))
    try:
        attr = NoiseTunnel(Saliency(model)).attribute(x.requires_grad_(), nt_type="smoothgrad", nt_samples=int(samples),
                                                      nt_samples_batch_size=8, stdevs=float(noise) * spread,
                                                      target=target, abs=False)
    finally:
        torch.random.set_rng_state(state)
    return attr[0].detach().numpy(), {"samples": int(samples), "noise": float(noise), "seed": int(seed)}


class Explainer:
    """Captum-shaped wrapper: the constructor takes the model, ``attribute`` validates and explains.

    ``Explainer(model).attribute(x, target, "gradcam", layer="stage3")`` is
    :func:`explain` with the model (and its channel names) bound once, for
    code that explains many samples with one model.
    """

    def __init__(self, model: nn.Module, channels: Sequence[str] | None = None) -> None:
        self.model = prepare_model(model)
        self.channels = list(channels) if channels is not None else None

    def attribute(self, sample: Any, target: int | None = None, method: str = "integrated_gradients",
                  **options: Any) -> Explanation:
        return explain(self.model, sample, target, method, channels=self.channels, **options)
