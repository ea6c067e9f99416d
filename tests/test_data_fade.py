"""Object fade: the light part of each labelled object loses stain; nucleus, glass and masks stay."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from flexplat.data.fade import fade_fn, fade_objects


def _cell() -> tuple[np.ndarray, np.ndarray]:
    """A stained cell on glass: pale cytoplasm disc around a dark nucleus; its mask is the whole cell."""
    image = np.full((64, 64, 3), (235, 225, 200), np.uint8)
    cv2.circle(image, (32, 32), 20, (200, 150, 130), -1)  # cytoplasm
    cv2.circle(image, (32, 32), 9, (60, 20, 90), -1)  # nucleus
    mask = np.zeros((64, 64), np.uint8)
    cv2.circle(mask, (32, 32), 20, 1, -1)
    return image, mask


def _od(image: np.ndarray, glass: np.ndarray) -> np.ndarray:
    return -np.log((image.astype(np.float64) + 1.0) / (glass + 1.0))


def test_the_cytoplasm_keeps_the_chosen_share_of_its_stain_and_the_rest_is_untouched():
    image, mask = _cell()
    glass = image[0, 0].astype(np.float64)
    faded = fade_objects(image, mask, 0.25)
    cytoplasm, nucleus = (32, 16), (32, 32)
    assert np.allclose(_od(faded[cytoplasm], glass), 0.25 * _od(image[cytoplasm], glass), atol=0.02)
    assert np.array_equal(faded[nucleus], image[nucleus])
    assert np.array_equal(faded[mask == 0], image[mask == 0])
    assert np.abs(fade_objects(image, mask, 1.0).astype(int) - image.astype(int)).max() <= 1


def test_a_uniform_object_or_an_empty_mask_is_left_alone():
    image, mask = _cell()
    flat = np.full_like(image, 120)
    assert np.array_equal(fade_objects(flat, mask, 0.1), flat)
    assert np.array_equal(fade_objects(image, np.zeros_like(mask), 0.1), image)


def test_fade_fn_is_reproducible_per_key_and_respects_its_chance():
    image, mask = _cell()
    fn = fade_fn(1.0, seed=3)
    first, again, other = fn(image, mask, 5), fn(image, mask, 5), fn(image, mask, 6)
    assert np.array_equal(first, again) and not np.array_equal(first, image)
    assert not np.array_equal(first, other)  # another key draws another share
    assert all(np.array_equal(fade_fn(0.0, seed=3)(image, mask, k), image) for k in range(5))


def test_the_pipeline_fades_images_and_keeps_masks(tmp_path):
    pytest.importorskip("tensorflow")
    from flexplat.data.codecs import RgbMaskCodec
    from flexplat.data.pipeline import make_dataset
    from flexplat.testing import sample_classes

    classes = sample_classes(2)
    image, mask = _cell()
    for kind in ("images", "masks"):
        (tmp_path / kind).mkdir()
    for i in range(3):
        cv2.imwrite(str(tmp_path / "images" / f"{i}.png"), image[:, :, ::-1])
        colours = np.array([c.color for c in classes], np.uint8)[mask]
        cv2.imwrite(str(tmp_path / "masks" / f"{i}.png"), colours[:, :, ::-1])
    codec = RgbMaskCodec(classes, {})
    pairs = codec.scan("images", "masks", tmp_path).pairs
    kwargs = {"shuffle": False, "seed": 1, "one_hot": False}
    plain = next(iter(make_dataset(pairs, codec, (64, 64), 2, 3, augment=None, **kwargs)))
    faded = next(iter(make_dataset(pairs, codec, (64, 64), 2, 3, augment={"object_fade": 1.0}, **kwargs)))
    assert np.array_equal(plain[1].numpy(), faded[1].numpy())
    changed = np.any(plain[0].numpy() != faded[0].numpy(), axis=-1)
    assert changed.any() and not changed[:, mask == 0].any()  # inside the cells only
