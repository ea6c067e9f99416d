"""Synthetic samples among the training images: drawn at the image's object size, labelled "some object"."""

from __future__ import annotations

import numpy as np
import pytest

from flexplat.data.synthetic import ANY_OBJECT, synthetic_fn
from flexplat.errors import ConfigError, DataError
from flexplat.plugins import get_registry
from flexplat.testing import invoke


def _render(rng, size, diameter):
    return get_registry().get("synthetic", "tiny-discs").render(rng, size, diameter)


def _pair() -> tuple[np.ndarray, np.ndarray]:
    image = np.full((32, 32, 3), 200, np.uint8)
    mask = np.zeros((32, 32), np.uint8)
    mask[8:20, 8:20] = 2
    return image, mask


def test_a_sample_replaces_the_pair_its_objects_marked_any_object_and_as_large_as_the_real_ones():
    image, mask = _pair()
    fn = synthetic_fn(1.0, _render, seed=4)
    drawn, labels = fn(image, mask, 7)
    again = fn(image, mask, 7)
    assert np.array_equal(drawn, again[0]) and np.array_equal(labels, again[1])  # same key, same sample
    assert set(np.unique(labels)) == {0, ANY_OBJECT}
    assert np.all(drawn[labels == ANY_OBJECT] == 60)  # the disc the source drew, where it drew it
    real, fake = np.count_nonzero(mask), np.count_nonzero(labels)
    assert 0.8 * real < fake < 1.2 * real  # as large as the real object
    kept = synthetic_fn(0.0, _render, seed=4)
    assert all(np.array_equal(kept(image, mask, k)[1], mask) for k in range(5))
    empty = np.zeros_like(mask)
    assert np.array_equal(synthetic_fn(1.0, _render, seed=4)(image, empty, 3)[1], empty)  # no size to draw at


def test_a_source_that_draws_the_wrong_size_is_named():
    image, mask = _pair()
    fn = synthetic_fn(1.0, lambda rng, size, d: (np.zeros((8, 8, 3), np.uint8), np.zeros((8, 8), bool)), 1, "bad")
    with pytest.raises(DataError, match="synthetic source 'bad' drew a"):
        fn(image, mask, 1)


def test_synthetic_needs_a_registered_source_and_is_listed():
    from flexplat.config import resolve

    with pytest.raises(ConfigError, match="train.augment.synthetic_source: required"):
        resolve("tiny", sets=["train.augment.synthetic=0.5"])
    with pytest.raises(ConfigError, match="Unknown synthetic 'tiny-disc'.*tiny-discs"):
        resolve("tiny", sets=["train.augment.synthetic=0.5", "train.augment.synthetic_source=tiny-disc"])
    config = resolve("tiny", sets=["train.augment.synthetic=0.5", "train.augment.synthetic_source=tiny-discs"])
    assert config["train"]["augment"]["synthetic"] == 0.5
    info = invoke(["info", "tiny-discs"])
    assert info.exit_code == 0, info.output
    assert "(synthetic)" in info.output and "synthetic_source: tiny-discs" in info.output


def test_the_pipeline_targets_any_object_class_on_samples_and_one_class_on_real_images(tmp_path):
    pytest.importorskip("tensorflow")
    from flexplat.data.codecs import RgbMaskCodec
    from flexplat.data.pipeline import make_dataset
    from flexplat.testing import sample_classes, write_rgb_dataset

    classes = sample_classes(3)
    write_rgb_dataset(tmp_path, classes, n=4, size=(32, 32), seed=2)
    codec = RgbMaskCodec(classes, {})
    pairs = codec.scan("train/images", "train/masks", tmp_path).pairs

    def first_batch(chance: float, one_hot: bool = True):
        augment = {"synthetic": chance, "synthetic_source": "tiny-discs"}
        ds = make_dataset(pairs, codec, (32, 32), 3, 4, shuffle=False, augment=augment, seed=1, one_hot=one_hot)
        x, y = next(iter(ds))
        return x.numpy(), y.numpy()

    real_x, real_y = first_batch(0.0)
    assert np.array_equal(real_y.sum(-1), np.ones(real_y.shape[:3]))  # one class per pixel
    x, y = first_batch(1.0)
    objects = y[..., 0] == 0
    assert objects.any() and not np.array_equal(x, real_x)
    assert np.array_equal(y[objects], np.tile([0.0, 1.0, 1.0], (objects.sum(), 1)))  # any object class
    assert np.all(y[~objects] == [1.0, 0.0, 0.0])
    indices = first_batch(1.0, one_hot=False)[1]
    assert np.array_equal(indices == 1, objects)  # class indices: the first object class
