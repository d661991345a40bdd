"""Known-answer tests of the preprocessing transforms (flow, strain, EVM, apex, face crop)."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from mer_core.preprocess import apex, face, flow, magnify


def texture(n: int, seed: int = 0, blur: float = 1.5) -> np.ndarray:
    """Smooth random texture, uint8 (n, n): good for every flow method."""
    rng = np.random.default_rng(seed)
    t = cv2.GaussianBlur(rng.random((n, n)).astype(np.float32), (0, 0), blur)
    return cv2.normalize(t, None, 0, 255, cv2.NORM_MINMAX).astype(np.uint8)


def shifted_pair(n: int, dx: int, dy: int) -> tuple[np.ndarray, np.ndarray]:
    """Two views of one texture; the content of the second moved by (+dx, +dy)."""
    big = texture(n + 20)
    first = np.ascontiguousarray(big[10 : 10 + n, 10 : 10 + n])
    second = np.ascontiguousarray(big[10 - dy : 10 - dy + n, 10 - dx : 10 - dx + n])
    return first, second


# --- optical flow -----------------------------------------------------------


@pytest.mark.parametrize("method", flow.FLOW_METHODS)
def test_shifted_texture_gives_known_flow(method):
    first, second = shifted_pair(64, dx=2, dy=1)
    fl = flow.compute_flow(first, second, method)
    assert fl.shape == (64, 64, 2) and fl.dtype == np.float32
    inner = fl[10:-10, 10:-10]
    assert abs(float(np.median(inner[..., 0])) - 2.0) < 0.15, method
    assert abs(float(np.median(inner[..., 1])) - 1.0) < 0.15, method
    # and the opposite direction flips the sign
    back = flow.compute_flow(second, first, method)[10:-10, 10:-10]
    assert abs(float(np.median(back[..., 0])) + 2.0) < 0.15, method


def test_flow_accepts_float_images_and_rejects_bad_pairs():
    first, second = shifted_pair(48, dx=1, dy=0)
    fl = flow.compute_flow(first / 255.0, second / 255.0, "farneback")
    assert abs(float(np.median(fl[8:-8, 8:-8, 0])) - 1.0) < 0.15
    with pytest.raises(ValueError, match="equal shape"):
        flow.compute_flow(first, second[:-1], "dis")
    with pytest.raises(ValueError, match="unknown flow method"):
        flow.compute_flow(first, second, "lucas")


def test_strain_of_pure_translation_is_about_zero():
    first, second = shifted_pair(64, dx=2, dy=-1)
    fl = flow.compute_flow(first, second, "tvl1")
    strain = flow.optical_strain(fl[..., 0], fl[..., 1])
    assert float(np.mean(strain[10:-10, 10:-10])) < 0.02
    # exactly zero for an exactly constant field
    assert np.allclose(flow.optical_strain(np.full((16, 16), 3.0), np.full((16, 16), -2.0)), 0.0)


def test_strain_known_values_for_stretch_and_shear():
    ys, xs = np.mgrid[0:32, 0:32].astype(np.float32)
    stretch = flow.optical_strain(0.1 * xs, np.zeros_like(xs))  # ux = 0.1
    assert np.allclose(stretch, 0.1, atol=1e-6)
    shear = flow.optical_strain(0.2 * ys, np.zeros_like(xs))  # uy = 0.2 -> sqrt(0.5) * 0.2
    assert np.allclose(shear, np.sqrt(0.5) * 0.2, atol=1e-6)
    # scale-free: the same field on a 2x grid (vectors 2x) has the same strain
    ys2, xs2 = np.mgrid[0:64, 0:64].astype(np.float32)
    assert np.allclose(flow.optical_strain(0.1 * xs2, np.zeros_like(xs2)), 0.1, atol=1e-6)


def test_resize_flow_rescales_vectors():
    fl = np.zeros((64, 64, 2), np.float32)
    fl[..., 0], fl[..., 1] = 4.0, -2.0
    small = flow.resize_flow(fl, 16)
    assert small.shape == (16, 16, 2)
    assert np.allclose(small[..., 0], 1.0) and np.allclose(small[..., 1], -0.5)


def test_flow_pictures():
    u = np.zeros((16, 16), np.float32)
    assert flow.flow_to_rgb(u, u).max() == 0  # no motion = black
    rgb = flow.flow_to_rgb(u + 1.0, u)  # rightward: red on the wheel
    assert rgb.shape == (16, 16, 3) and rgb.dtype == np.uint8
    assert rgb[..., 0].mean() > 200 and rgb[..., 1].mean() < 50 and rgb[..., 2].mean() < 50
    arrows = flow.flow_arrows(u + 1.5, u - 0.5, step=4)
    assert len(arrows["x"]) == 16 and np.allclose(arrows["u"], 1.5) and np.allclose(arrows["v"], -0.5)
    assert arrows["x"].min() == 2 and arrows["y"].max() == 14


def test_flow_image_convention_round_trips():
    rng = np.random.default_rng(1)
    u, v = rng.uniform(-1, 1, (2, 8, 8)).astype(np.float32)
    s = rng.uniform(0, 1, (8, 8)).astype(np.float32)
    img = flow.encode_flow_image(u, v, s)
    assert flow.encode_flow_image(np.zeros(1), np.zeros(1), np.zeros(1)).tolist() == [[128, 128, 0]]
    du, dv, ds = flow.decode_flow_image(img)
    assert np.abs(du - u).max() < 0.005 and np.abs(dv - v).max() < 0.005 and np.abs(ds - s).max() < 0.003


# --- Eulerian video magnification -----------------------------------------------


def bump_clip(t: int = 15, apex_at: int = 7, n: int = 64, amplitude: float = 1.5) -> np.ndarray:
    """A textured clip whose content moves right and back (onset -> apex -> offset)."""
    tex = texture(n + 16, seed=3, blur=2.0).astype(np.float32) / 255.0
    frames = []
    for i in range(t):
        shift = amplitude * np.sin(np.pi * i / (t - 1)) if apex_at == (t - 1) // 2 else 0.0
        m = np.float32([[1, 0, shift], [0, 1, 0]])
        frames.append(cv2.warpAffine(tex, m, (n + 16, n + 16), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT)[8:-8, 8:-8])
    return np.clip(np.stack(frames), 0, 1)


@pytest.mark.parametrize("pyramid", ["laplacian", "gaussian"])
@pytest.mark.parametrize("kind", ["ideal", "butterworth"])
def test_evm_alpha_zero_returns_input(pyramid, kind):
    clip = bump_clip()
    out = magnify.magnify(clip, alpha=0.0, pyramid=pyramid, filter=kind)
    assert out.shape == clip.shape and out.dtype == np.float32
    assert np.array_equal(out, clip.astype(np.float32))


@pytest.mark.parametrize("pyramid", ["laplacian", "gaussian"])
@pytest.mark.parametrize("kind", ["ideal", "butterworth"])
def test_evm_increases_onset_apex_difference_in_band(pyramid, kind):
    clip = bump_clip()  # a 15-frame bump: about 0.07 cycles/frame, inside 0.05..0.4
    out = magnify.magnify(clip, alpha=10.0, low=0.05, high=0.4, levels=3, pyramid=pyramid, filter=kind)
    before = np.abs(clip[7] - clip[0]).mean()
    after = np.abs(out[7] - out[0]).mean()
    assert after > 1.5 * before, (before, after)


def test_evm_leaves_static_clip_and_out_of_band_motion_nearly_alone():
    static = np.repeat(bump_clip()[:1], 12, axis=0)
    out = magnify.magnify(static, alpha=20.0)
    assert np.abs(out - static).max() < 1e-4  # band-pass removes DC: nothing to amplify
    # a very slow drift (well below 0.05 cycles/frame) is amplified far less than the bump
    slow = np.stack([bump_clip(t=15)[0] * (1 + 0.002 * i) for i in range(60)]).clip(0, 1)
    gain_slow = np.abs(magnify.magnify(slow, alpha=10, filter="ideal")[30] - magnify.magnify(slow, alpha=0)[30]).mean()
    clip = bump_clip()
    gain_bump = np.abs(magnify.magnify(clip, alpha=10, filter="ideal")[7] - clip[7]).mean()
    assert gain_slow < 0.5 * gain_bump


def test_laplacian_pyramid_collapses_exactly_and_fine_scales_are_attenuated():
    img = texture(45).astype(np.float32) / 255.0  # odd size on purpose
    bands = magnify.laplacian_pyramid(img, 3)
    assert len(bands) == 4
    assert np.abs(magnify.collapse(bands) - img).max() < 1e-5
    alphas = magnify.level_alphas(20.0, 4)
    assert alphas[0] < alphas[1] < alphas[2] == alphas[3] == 20.0


def test_evm_short_clip_is_returned_unchanged():
    clip = bump_clip()[:2]
    assert np.array_equal(magnify.magnify(clip, alpha=10.0), clip.astype(np.float32))


# --- apex spotting ----------------------------------------------------------------


def test_spot_apex_finds_largest_difference_from_onset():
    clip = bump_clip(t=15, apex_at=7, amplitude=2.0)
    idx, method = apex.spot_apex((clip * 255).astype(np.uint8))
    assert idx == 7 and method == "max-diff"
    with pytest.raises(ValueError, match="at least 2 frames"):
        apex.spot_apex(clip[:1])


# --- face crop ----------------------------------------------------------------------


def test_face_crop_modes_without_a_face():
    noise = texture(120)
    assert face.find_crop(noise).mode == "centre-fallback"
    assert face.find_crop(noise, cropped=True).mode == "precropped"
    assert face.find_crop(noise, enabled=False).mode == "disabled"
    rect = np.zeros((100, 160), np.uint8)
    crop = face.find_crop(rect)
    assert (crop.cx, crop.cy, crop.side) == (80, 50, 100)
    assert face.apply_crop(rect, crop, 32).shape == (32, 32)


def test_roll_angle_and_eye_pairing():
    assert face.roll_angle([(0, 0), (100, 10)]) == pytest.approx(np.degrees(np.arctan(0.1)))
    assert face.roll_angle([(0, 0), (10, 10)]) == 0.0  # 45 degrees: not an eye pair
    assert face._eye_pair([(30, 40), (70, 42), (75, 90)], (0, 0, 100, 100)) == [(30, 40), (70, 42)]
    assert face._eye_pair([(30, 40), (35, 42)], (0, 0, 100, 100)) == []


def test_alignment_levels_the_eye_line():
    img = np.zeros((200, 200), np.float32)
    eyes = [(70.0, 90.0), (130.0, 90.0 + 60 * np.tan(np.radians(12)))]  # tilted by 12 degrees
    for x, y in eyes:
        cv2.circle(img, (round(x), round(y)), 4, 1.0, -1)
    crop = face.FaceCrop(100, 100, 160, face.roll_angle(eyes), "detected")
    out = face.apply_crop(img, crop, 80)
    ys, xs = np.nonzero(out > 0.3)
    left, right = xs < 40, xs >= 40
    assert left.any() and right.any()
    assert abs(ys[left].mean() - ys[right].mean()) < 1.0
    # the same crop, unrotated, keeps the tilt
    flat = face.apply_crop(img, face.FaceCrop(100, 100, 160, 0.0, "detected"), 80)
    ys, xs = np.nonzero(flat > 0.3)
    assert ys[xs >= 40].mean() - ys[xs < 40].mean() > 4


def test_large_downscale_crop_matches_direct_warp():
    img = texture(800, blur=6.0)
    crop = face.FaceCrop(400, 400, 600, 0.0, "detected")
    two_step = face.apply_crop(img, crop, 64).astype(np.float32)  # prescaled path
    direct = cv2.resize(img[100:700, 100:700], (64, 64), interpolation=cv2.INTER_AREA).astype(np.float32)
    assert np.abs(two_step - direct).mean() < 4.0  # was ~10 with a half-pixel drift
    # a crop at scale 1 is an exact copy of the box
    same = face.apply_crop(img, face.FaceCrop(400, 400, 100, 0.0, "detected"), 100)
    assert np.array_equal(same, img[350:450, 350:450])
