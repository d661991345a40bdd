"""Eulerian video magnification (Wu et al., SIGGRAPH 2012), for grey clips.

Each frame is decomposed into a spatial pyramid; every pixel of every level
is band-pass filtered over time; the filtered signal is amplified and added
back. Motions whose temporal frequency falls in the pass band are
exaggerated, which is how DenseAttention (Gan et al. 2024) makes a
micro-expression visible to the network.

Conventions of this implementation:

* The band edges ``low`` and ``high`` are fractions of the frame rate, i.e.
  frequencies in cycles per frame; that is why no fps is needed (a clip at
  200 fps with low=0.05 passes 10 Hz and up).
* ``pyramid='laplacian'``: ``levels`` band-pass levels, each amplified by
  ``alpha_k = alpha * min(1, lambda_k / LAMBDA_C)`` where ``lambda_k =
  2**(k+2)`` pixels is the level's typical wavelength (k = 0 finest): fine
  scales are attenuated, because the first-order Taylor argument behind EVM
  fails when the amplified motion approaches the wavelength (Wu et al.,
  Sec. 3.2). The low-pass residual is not amplified (as in the paper).
* ``pyramid='gaussian'``: the clip is blurred/down-sampled ``levels - 1``
  times, that single level is filtered and amplified by ``alpha`` and
  up-sampled back (the paper's variant for colour/intensity changes).
* ``filter='ideal'``: FFT along time, zero outside the band.
  ``filter='butterworth'``: first-order Butterworth band-pass run forward
  and backward (zero phase, so the magnified apex stays on the apex).
* Only the amplified *change* is added to the input, so ``alpha = 0``
  returns the input unchanged. Output is clipped to 0..1.
"""
from __future__ import annotations

import cv2
import numpy as np

EVM_VERSION = "evm-2"
LAMBDA_C = 16.0  # wavelength (pixels at working scale) from which alpha applies in full


def _gaussian_pyramid(frame: np.ndarray, levels: int) -> list[np.ndarray]:
    pyr = [frame]
    for _ in range(levels):
        pyr.append(cv2.pyrDown(pyr[-1]))
    return pyr


def laplacian_pyramid(frame: np.ndarray, levels: int) -> list[np.ndarray]:
    """``levels`` band-pass images (finest first) plus the low-pass residual."""
    gauss = _gaussian_pyramid(frame, levels)
    bands = [g - cv2.pyrUp(gauss[k + 1], dstsize=(g.shape[1], g.shape[0])) for k, g in enumerate(gauss[:-1])]
    return bands + [gauss[-1]]


def collapse(bands: list[np.ndarray]) -> np.ndarray:
    """Inverse of :func:`laplacian_pyramid` (exact up to float rounding)."""
    img = bands[-1]
    for band in reversed(bands[:-1]):
        img = cv2.pyrUp(img, dstsize=(band.shape[1], band.shape[0])) + band
    return img


def temporal_bandpass(x: np.ndarray, low: float, high: float, kind: str = "butterworth") -> np.ndarray:
    """Band-pass ``x`` along axis 0 between ``low`` and ``high`` cycles/frame."""
    t = x.shape[0]
    if t < 3:
        return np.zeros_like(x)
    if kind == "ideal":
        freqs = np.fft.rfftfreq(t, d=1.0)
        spec = np.fft.rfft(x, axis=0)
        keep = (freqs >= low) & (freqs <= high)
        spec[~keep] = 0
        return np.fft.irfft(spec, n=t, axis=0).astype(x.dtype)
    if kind == "butterworth":
        from scipy import signal  # lazy: scipy.signal is a slow import, and only this filter needs it

        nyq = 0.5
        if high >= nyq:  # band reaches Nyquist: a high-pass does the job
            sos = signal.butter(1, low / nyq, btype="highpass", output="sos")
        else:
            sos = signal.butter(1, [low / nyq, high / nyq], btype="bandpass", output="sos")
        # second-order sections: same response as (b, a), about 2x faster along axis 0
        return signal.sosfiltfilt(sos, x, axis=0, padlen=min(9, t - 1)).astype(x.dtype)
    raise ValueError(f"unknown temporal filter {kind!r}; expected 'ideal' or 'butterworth'")


def level_alphas(alpha: float, levels: int) -> list[float]:
    """Amplification per Laplacian level (finest first), attenuated at fine scales."""
    return [alpha * min(1.0, 2.0 ** (k + 2) / LAMBDA_C) for k in range(levels)]


def magnify(
    frames: np.ndarray,
    alpha: float = 10.0,
    low: float = 0.05,
    high: float = 0.4,
    levels: int = 3,
    pyramid: str = "laplacian",
    filter: str = "butterworth",
) -> np.ndarray:
    """Magnify a grey clip (T, H, W) float 0..1; returns the same shape, float32.

    Clips shorter than 3 frames cannot be band-passed and come back unchanged.
    """
    if frames.ndim != 3:
        raise ValueError(f"expected a grey clip (T, H, W), got shape {frames.shape}")
    clip = frames.astype(np.float32)
    if frames.dtype == np.uint8:
        clip /= 255.0
    t, h, w = clip.shape
    if alpha == 0 or t < 3:
        return clip
    # never go below ~4 px at the coarsest level
    levels = max(1, min(levels, int(np.log2(max(4, min(h, w)))) - 2))
    if pyramid == "laplacian":
        pyrs = [laplacian_pyramid(f, levels) for f in clip]
        alphas = level_alphas(alpha, levels)
        filtered = []
        for k in range(levels):
            band = np.stack([p[k] for p in pyrs])
            filtered.append(temporal_bandpass(band, low, high, filter) * alphas[k])
        residual_shape = pyrs[0][-1].shape
        delta = np.stack(
            [collapse([filtered[k][i] for k in range(levels)] + [np.zeros(residual_shape, np.float32)]) for i in range(t)]
        )
    elif pyramid == "gaussian":
        coarse = np.stack([_gaussian_pyramid(f, levels - 1)[-1] for f in clip])
        amp = temporal_bandpass(coarse, low, high, filter) * alpha
        delta = np.stack([_upsample_to(a, h, w, levels - 1) for a in amp])
    else:
        raise ValueError(f"unknown pyramid {pyramid!r}; expected 'laplacian' or 'gaussian'")
    return np.clip(clip + delta, 0.0, 1.0).astype(np.float32)


def _upsample_to(img: np.ndarray, h: int, w: int, times: int) -> np.ndarray:
    sizes = [(h, w)]
    for _ in range(times):
        ph, pw = sizes[-1]
        sizes.append(((ph + 1) // 2, (pw + 1) // 2))
    for ph, pw in reversed(sizes[:-1]):
        img = cv2.pyrUp(img, dstsize=(pw, ph))
    return img
