"""The channel vocabulary shared by preprocessing and the models.

A model's config names the channels it reads, in order; preprocessing stacks
exactly those, resized to the model's input size, as float32 arrays of shape
(C, H, W). Values are normalised per channel as documented here so models and
explainers can rely on the ranges.
"""
from __future__ import annotations

from mer_core.errors import ConfigError

CHANNELS: dict[str, str] = {
    "flow_u": "horizontal optical flow onset->apex, pixels at input scale / FLOW_SCALE (about -1..1)",
    "flow_v": "vertical optical flow onset->apex, pixels at input scale / FLOW_SCALE (about -1..1)",
    "strain": "optical strain magnitude sqrt(ux^2 + vy^2 + 0.5 (uy + vx)^2) / STRAIN_SCALE (about 0..1)",
    "onset": "onset frame, grey, 0..1",
    "apex": "apex frame, grey, 0..1",
    "diff": "apex minus onset, grey, about -1..1 (times DIFF_GAIN)",
    "magnified_apex": "apex frame of the EVM-magnified clip, grey, 0..1",
    "magnified_onset": "onset frame of the EVM-magnified clip, grey, 0..1",
}

FLOW_CHANNELS = ("flow_u", "flow_v", "strain")

# Normalisation constants (documented above; shared by every flow method).
FLOW_SCALE = 2.0  # a 2-pixel motion at input scale maps to 1.0
STRAIN_SCALE = 0.5
DIFF_GAIN = 4.0


def check_channels(channels: tuple[str, ...] | list[str]) -> tuple[str, ...]:
    """Validate a channel list against the vocabulary."""
    bad = [c for c in channels if c not in CHANNELS]
    if bad:
        raise ConfigError(f"unknown input channel(s) {bad}; valid channels: {', '.join(CHANNELS)}")
    if not channels:
        raise ConfigError("a model needs at least one input channel")
    return tuple(channels)

# Precomputed flow images (manifest ``flow_image`` / table ``flow_path``):
# an 8-bit colour image whose R, G, B channels (RGB order, i.e. as read by
# cv2.imread then converted BGR->RGB) hold flow_u, flow_v and strain as the
# *normalised* channel values above: R = 128 + 127 * flow_u (128 = no motion,
# 255 = +1, 1 = -1), same for G with flow_v, B = 255 * strain. Values are
# taken as they are (not rescaled when the image is resized), so an image
# written by mer_core.preprocess.flow.encode_flow_image round-trips.
FLOW_IMAGE_ZERO = 128.0
FLOW_IMAGE_RANGE = 127.0
