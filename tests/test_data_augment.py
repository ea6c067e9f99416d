"""Augmentation keeps image and mask aligned, never invents classes, and is seed-deterministic."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from flexplat.data.augment import AUGMENT_SCHEMA, augment_fn, is_enabled
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
