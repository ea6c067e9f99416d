"""Augmentation keeps image and mask aligned, never invents classes, and is seed-deterministic."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from flexplat.data.augment import AUGMENT_SCHEMA, augment_fn, hed_to_rgb, is_enabled, rgb_to_hed
from flexplat.errors import ConfigError

tf = pytest.importorskip("tensorflow")

PALETTE = np.array([(0, 0, 0), (255, 0, 0), (0, 255, 0), (0, 0, 255)], np.float32)
GEOMETRIC = {
    "flip": True,
    "rot90": True,
    "rotate_degrees": 30.0,
    "scale": 0.2,
    "translate": 0.1,
    "elastic": 300.0,
    "elastic_sigma": 6.0,
}


def _scene(size: int = 64, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A mask of four classes in irregular blobs and an image whose colour IS the class."""
    rng = np.random.default_rng(seed)
    mask = np.zeros((size, size), np.uint8)
    for cls in (1, 2, 3, 1, 2, 3):
        centre = tuple(int(v) for v in rng.integers(8, size - 8, 2))
        axes = tuple(int(v) for v in rng.integers(4, size // 4, 2))
        cv2.ellipse(mask, centre, axes, float(rng.uniform(0, 180)), 0, 360, cls, -1)
    return PALETTE[mask], mask


def _misaligned(image: np.ndarray, mask: np.ndarray) -> tuple[int, int]:
    """(clean pixels whose image class != mask class, clean pixels), ignoring blended edge pixels.

    A pixel is "clean" when its colour is within 10 of a palette colour: bilinear sampling
    put >= 96 % of its weight on that class, so the nearest-neighbour mask must agree.
    """
    dist = np.sqrt(((image[:, :, None, :] - PALETTE[None, None]) ** 2).sum(-1))
    clean = dist.min(-1) <= 10
    return int(((dist.argmin(-1) != mask) & clean).sum()), int(clean.sum())


@pytest.mark.parametrize("name", ["flip", "rot90", "affine", "elastic", "all"])
def test_mask_stays_aligned_with_image(name):
    options = {
        "flip": {"flip": True},
        "rot90": {"rot90": True},
        "affine": {"rotate_degrees": 30.0, "scale": 0.2, "translate": 0.1},
        "elastic": {"elastic": 300.0, "elastic_sigma": 6.0},
        "all": GEOMETRIC,
    }[name]
    image, mask = _scene()
    fn = augment_fn(options, seed=11)
    changed = 0
    for key in range(8):
        out_image, out_mask = fn(tf.constant(image), tf.constant(mask), tf.constant(key, tf.int64))
        out_image, out_mask = out_image.numpy(), out_mask.numpy()
        assert out_image.shape == image.shape and out_image.dtype == np.float32
        assert out_mask.shape == mask.shape and out_mask.dtype == np.uint8
        assert set(np.unique(out_mask)) <= {0, 1, 2, 3}  # nearest: no new class values
        bad, clean = _misaligned(out_image, out_mask)
        assert clean > 0.8 * mask.size, "most pixels are interior pixels of a region"
        assert bad == 0, f"{name} key {key}: {bad} clean pixels disagree with the mask"
        changed += not np.array_equal(out_mask, mask)
    assert changed >= 4, "the augmentation should change most samples"


def test_same_seed_and_key_same_output_otherwise_different():
    image, mask = _scene(seed=1)
    options = {**GEOMETRIC, "brightness": 0.1, "contrast": 0.2, "saturation": 0.2, "hue": 0.05}

    def run(seed, key):
        out = augment_fn(options, seed)(tf.constant(image), tf.constant(mask), tf.constant(key, tf.int64))
        return out[0].numpy(), out[1].numpy()

    a, b = run(5, 3), run(5, 3)
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    assert not np.array_equal(a[0], run(5, 4)[0])
    assert not np.array_equal(a[0], run(6, 3)[0])
    no_key = augment_fn(options, 5)
    assert np.array_equal(no_key(image, mask)[0].numpy(), no_key(image, mask)[0].numpy())


def test_colour_jitter_changes_the_image_only():
    image, mask = _scene(seed=2)
    image = image * 0.5 + 60  # mid-range so the jitter is visible
    fn = augment_fn({"brightness": 0.2, "contrast": 0.3, "saturation": 0.3, "hue": 0.1}, seed=0)
    for key in range(3):
        out_image, out_mask = fn(tf.constant(image, tf.float32), tf.constant(mask), tf.constant(key, tf.int64))
        assert np.array_equal(out_mask.numpy(), mask)
        assert not np.allclose(out_image.numpy(), image)
        assert 0 <= out_image.numpy().min() and out_image.numpy().max() <= 255


def test_uint8_image_and_hxwx1_mask_keep_their_types():
    image, mask = _scene(seed=3)
    out_image, out_mask = augment_fn({"flip": True}, 0)(image.astype(np.uint8), mask[..., None].astype(np.int32))
    assert out_image.dtype == tf.uint8 and out_mask.dtype == tf.int32 and out_mask.shape == (64, 64, 1)


def test_non_square_rot90_keeps_the_shape():
    image = np.zeros((16, 24, 3), np.float32)
    mask = np.zeros((16, 24), np.uint8)
    for key in range(4):
        out_image, out_mask = augment_fn({"rot90": True}, 0)(image, mask, tf.constant(key, tf.int64))
        assert out_image.shape == (16, 24, 3) and out_mask.shape == (16, 24)


def test_schema_defaults_are_off_and_validated():
    assert not is_enabled({}) and not is_enabled(None)
    assert all(
        not option.default
        for k, option in AUGMENT_SCHEMA.items()
        if k not in ("probability", "elastic_sigma", "fill_mode")
    )
    assert is_enabled({"flip": True})
    with pytest.raises(ConfigError, match="train.augment.rotate"):
        is_enabled({"rotate": 10})


# --- stain and acquisition robustness (issue 12): image-only transforms, scale jitter ---------------

ACQUISITION = {
    "hed_scale": 0.2,
    "hed_shift": 0.1,
    "gamma": 0.5,
    "blur_sigma": 2.0,
    "noise_std": 0.05,
    "jpeg_quality": 20,
}
COLOUR = {"brightness": 0.2, "contrast": 0.3, "saturation": 0.3, "hue": 0.1}


def _apply(options, image, mask, key, seed=0):
    out_image, out_mask = augment_fn(options, seed)(tf.constant(image), tf.constant(mask), tf.constant(key, tf.int64))
    return out_image.numpy(), out_mask.numpy()


def _stained(size: int = 32, seed: int = 0) -> np.ndarray:
    """A float RGB image built from random H, E, D concentrations in 0.3..1 (mid-tones, nothing clips)."""
    stains = np.random.default_rng(seed).uniform(0.3, 1.0, (size, size, 3)).astype(np.float32)
    return hed_to_rgb(tf.constant(stains)).numpy()


@pytest.mark.parametrize("name", [*ACQUISITION, "all"])
def test_image_only_transforms_never_touch_the_mask(name):
    options = {**ACQUISITION, **COLOUR} if name == "all" else {name: ACQUISITION[name]}
    image, mask = _scene(seed=4)
    image = image * 0.5 + 60
    assert is_enabled(options)
    changed = 0
    for key in range(4):
        out_image, out_mask = _apply(options, image, mask, key)
        assert np.array_equal(out_mask, mask)
        assert out_image.shape == image.shape and out_image.dtype == np.float32
        assert out_image.min() >= 0 and out_image.max() <= 255
        changed += not np.allclose(out_image, image, atol=0.5)
    assert changed >= 3, f"{name} should change most images"


def test_image_only_transforms_leave_the_geometry_of_image_and_mask_alone():
    """The same seed and key give the same geometry with or without colour/stain transforms on."""
    image, mask = _scene(seed=5)
    for key in range(4):
        _, geometric = _apply(GEOMETRIC, image, mask, key, seed=9)
        _, everything = _apply({**GEOMETRIC, **COLOUR, **ACQUISITION}, image, mask, key, seed=9)
        assert np.array_equal(geometric, everything)


def test_scale_jitter_zooms_in_and_out_with_the_mask():
    """A centred disk: its mask area grows and shrinks, and the image follows it pixel for pixel."""
    size = 64
    mask = np.zeros((size, size), np.uint8)
    cv2.circle(mask, (size // 2, size // 2), 12, 1, -1)
    image = PALETTE[mask]
    areas = []
    for key in range(12):
        out_image, out_mask = _apply({"scale": 0.5, "fill_mode": "constant"}, image, mask, key)
        bad, _ = _misaligned(out_image, out_mask)
        assert bad == 0
        areas.append(int(out_mask.sum()))
    assert min(areas) < 0.8 * mask.sum() and max(areas) > 1.25 * mask.sum()
    assert max(areas) < 1.5**2 * mask.sum() * 1.1 and min(areas) > 0.5**2 * mask.sum() * 0.9


def test_hed_round_trip_returns_the_image():
    values = np.arange(256, dtype=np.float32)
    red, green = np.meshgrid(values, values[::-1], indexing="ij")
    image = np.stack([red, green, np.full((256, 256), 77.0, np.float32)], -1)
    back = hed_to_rgb(rgb_to_hed(tf.constant(image))).numpy()
    assert np.abs(back - image).max() < 0.05
    white = rgb_to_hed(tf.constant(np.full((1, 1, 3), 255.0, np.float32))).numpy()
    assert np.allclose(white, 0.0, atol=1e-6)  # white is no stain


def test_hed_jitter_scales_and_shifts_each_stain_within_range():
    image = _stained()
    mask = np.zeros(image.shape[:2], np.uint8)
    stains_in = rgb_to_hed(tf.constant(image)).numpy().reshape(-1, 3)
    gains, shifts = [], []
    for key in range(6):
        out_image, _ = _apply({"hed_scale": 0.1, "hed_shift": 0.05}, image, mask, key)
        stains_out = rgb_to_hed(tf.constant(out_image)).numpy().reshape(-1, 3)
        for c in range(3):
            gain, shift = np.polyfit(stains_in[:, c], stains_out[:, c], 1)
            gains.append(gain)
            shifts.append(shift)
    gains, shifts = np.array(gains), np.array(shifts)
    assert np.all(np.abs(gains - 1) <= 0.1 + 1e-3) and np.all(np.abs(shifts) <= 0.05 + 1e-3)
    assert np.abs(gains - 1).max() > 0.03 and np.abs(shifts).max() > 0.015  # and it does move them


def test_gamma_stays_in_its_range():
    ramp = np.tile(np.linspace(0, 255, 32, dtype=np.float32)[None, :, None], (8, 1, 3))
    mask = np.zeros((8, 32), np.uint8)
    exponents = []
    for key in range(10):
        out_image, _ = _apply({"gamma": 0.5}, ramp, mask, key)
        x, y = ramp[0, 1:-1, 0] / 255, out_image[0, 1:-1, 0] / 255
        exponent = np.log(y) / np.log(x)
        assert np.allclose(exponent, exponent.mean(), atol=1e-3)  # one power for the whole image
        exponents.append(exponent.mean())
    assert min(exponents) >= 1 / 1.5 - 1e-3 and max(exponents) <= 1.5 + 1e-3
    assert min(exponents) < 0.95 and max(exponents) > 1.05


def test_noise_strength_stays_in_its_range():
    grey = np.full((48, 48, 3), 128.0, np.float32)
    mask = np.zeros((48, 48), np.uint8)
    stds = [np.std(_apply({"noise_std": 0.04}, grey, mask, key)[0] - grey) for key in range(8)]
    assert max(stds) <= 0.04 * 255 * 1.1 and max(stds) > 0.01 * 255


def test_blur_smooths_only_near_edges_and_keeps_the_mean():
    image = np.zeros((32, 32, 3), np.float32)
    image[:, 16:] = 200.0
    mask = np.zeros((32, 32), np.uint8)
    blurred = 0
    for key in range(6):
        out_image, _ = _apply({"blur_sigma": 1.5}, image, mask, key)
        blurred += out_image[5, 15, 0] > 5.0
        far = np.r_[0:11, 21:32]  # beyond 3 sigma of the edge between columns 15 and 16
        assert np.allclose(out_image[:, far], image[:, far], atol=1e-3)
        assert abs(out_image.mean() - image.mean()) < 0.5
        assert np.all(np.diff(out_image[5, :, 0]) >= -1e-3)  # monotone across the edge: no ringing
    assert blurred >= 3


def test_blur_on_an_image_smaller_than_the_kernel():
    image, mask = np.full((6, 9, 3), 50.0, np.float32), np.zeros((6, 9), np.uint8)
    out_image, _ = _apply({"blur_sigma": 5.0}, image, mask, 1)
    assert out_image.shape == (6, 9, 3) and np.allclose(out_image, 50.0, atol=1e-3)


def test_jpeg_compresses_with_bounded_error():
    image, mask = _scene(seed=6)
    errors = [np.abs(_apply({"jpeg_quality": 30}, image, mask, key)[0] - image).mean() for key in range(4)]
    assert 0 < min(errors) and max(errors) < 20


def test_new_options_keep_uint8_images_and_are_seed_deterministic():
    image, mask = _scene(seed=7)
    image = image.astype(np.uint8)
    options = {**COLOUR, **ACQUISITION}
    a = _apply(options, image, mask, 2, seed=3)
    b = _apply(options, image, mask, 2, seed=3)
    assert a[0].dtype == np.uint8 and np.array_equal(a[0], b[0])
    assert not np.array_equal(a[0], _apply(options, image, mask, 3, seed=3)[0])
    assert not np.array_equal(a[0], _apply(options, image, mask, 2, seed=4)[0])


def test_probability_zero_leaves_the_image_as_it_was():
    image, mask = _scene(seed=8)
    out_image, _ = _apply({**ACQUISITION, "probability": 0.0}, image, mask, 1)
    assert np.allclose(out_image, image, atol=1e-3)


@pytest.mark.parametrize(
    ("options", "path"),
    [({"jpeg_quality": 101}, "train.augment.jpeg_quality"), ({"blur_sigma": -1.0}, "train.augment.blur_sigma")],
)
def test_new_options_are_range_checked(options, path):
    with pytest.raises(ConfigError, match=path):
        augment_fn(options, 0)
