"""The streaming tf.data pipeline: shapes, dtypes, targets, NEAREST masks, shuffling, seeds."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from flexplat.data.codecs import RgbMaskCodec
from flexplat.data.pipeline import load_pair_resized, make_dataset
from flexplat.data.stain import normalize
from flexplat.errors import ConfigError, DataError
from flexplat.testing import sample_classes, write_rgb_dataset

tf = pytest.importorskip("tensorflow")

CLASSES = sample_classes(4)


@pytest.fixture(scope="module")
def pairs(tmp_path_factory):
    root = write_rgb_dataset(tmp_path_factory.mktemp("ds"), CLASSES, n=7, size=(40, 52), seed=1)
    return RgbMaskCodec(CLASSES, {}).scan("train/images", "train/masks", root).pairs


def _batches(ds):
    return [(x.numpy(), y.numpy()) for x, y in ds]


def test_shapes_dtypes_and_one_hot(pairs):
    codec = RgbMaskCodec(CLASSES, {})
    ds = make_dataset(pairs, codec, (32, 48), 4, 3, shuffle=False, augment=None, seed=0)
    batches = _batches(ds)
    assert [x.shape for x, _ in batches] == [(3, 32, 48, 3), (3, 32, 48, 3), (1, 32, 48, 3)]
    for x, y in batches:
        assert x.dtype == np.float32 and 0 <= x.min() and x.max() <= 255 and x.max() > 1  # 0..255, not normalised
        assert y.dtype == np.float32 and y.shape == x.shape[:3] + (4,)
        assert np.array_equal(y.sum(-1), np.ones(x.shape[:3]))  # exactly one class per pixel
    # unshuffled order is the pair order, and the content equals the numpy helper
    image, mask = load_pair_resized(pairs[4], codec, (32, 48))
    assert np.array_equal(batches[1][0][1], image.astype(np.float32))
    assert np.array_equal(batches[1][1][1].argmax(-1), mask)


def test_sparse_targets_and_nearest_resize_invent_no_classes(pairs):
    codec = RgbMaskCodec(CLASSES, {})
    ds = make_dataset(pairs, codec, (17, 23), 4, 7, shuffle=False, augment=None, seed=0, one_hot=False)
    ((x, y),) = _batches(ds)
    assert y.dtype == np.int32 and y.shape == (7, 17, 23)
    for i, pair in enumerate(pairs):
        source = np.unique(codec.read_mask(pair).mask)
        assert set(np.unique(y[i])) == set(source)  # bilinear would create in-between class values


def test_shuffle_is_seeded_and_reshuffles_each_epoch(pairs):
    codec = RgbMaskCodec(CLASSES, {})

    reference = [load_pair_resized(p, codec, (32, 48))[0].astype(np.float32) for p in pairs]

    def order(ds):  # which pair each element is, in iteration order
        images = [x for batch, _ in _batches(ds) for x in batch]
        return [next(i for i, ref in enumerate(reference) if np.array_equal(ref, x)) for x in images]

    a = make_dataset(pairs, codec, (32, 48), 4, 2, shuffle=True, augment=None, seed=7)
    b = make_dataset(pairs, codec, (32, 48), 4, 2, shuffle=True, augment=None, seed=7)
    first, second = order(a), order(a)
    assert first == order(b)  # same seed -> same order
    assert first != second  # new order each epoch (7! orders)
    assert sorted(first) == sorted(second) == list(range(7))


def test_augmented_pipeline_is_reproducible_and_changes_per_epoch(pairs):
    codec = RgbMaskCodec(CLASSES, {})
    options = {"flip": True, "rot90": True, "rotate_degrees": 20.0, "brightness": 0.1}

    def make():
        return make_dataset(pairs, codec, (32, 32), 4, 7, shuffle=False, augment=options, seed=3, one_hot=False)

    run1, run2 = make(), make()
    e1, e2 = _batches(run1)[0], _batches(run1)[0]
    assert np.array_equal(e1[0], _batches(run2)[0][0])  # same seed -> same first epoch
    assert not np.array_equal(e1[0], e2[0])  # a new variant each epoch
    assert set(np.unique(e1[1])) <= {0, 1, 2, 3}


def test_cache_repeat_and_drop_remainder(pairs):
    codec = RgbMaskCodec(CLASSES, {})
    ds = make_dataset(pairs, codec, (32, 48), 4, 3, shuffle=True, augment=None, seed=0, cache=True, repeat=True,
                      drop_remainder=True)  # fmt: skip
    shapes = [x.shape for x, _ in ds.take(5)]
    assert shapes == [(3, 32, 48, 3)] * 5


def test_empty_pairs_and_bad_file(tmp_path, pairs):
    codec = RgbMaskCodec(CLASSES, {})
    with pytest.raises(DataError, match="no image/mask pairs"):
        make_dataset([], codec, (8, 8), 4, 1, shuffle=False, augment=None, seed=0)
    broken = type(pairs[0])(tmp_path / "missing.png", pairs[0].mask, "missing")
    ds = make_dataset([broken], codec, (8, 8), 4, 1, shuffle=False, augment=None, seed=0)
    with pytest.raises(Exception, match="missing.png"):
        _batches(ds)


STAIN = {"method": "reinhard", "target": {"lab_mean": [60.0, 15.0, -5.0], "lab_std": [10.0, 8.0, 8.0]}}


def test_stain_norm_applies_to_the_whole_decoded_image_before_resizing(pairs):
    codec = RgbMaskCodec(CLASSES, {})
    ds = make_dataset(pairs, codec, (32, 48), 4, 7, shuffle=False, augment=None, seed=0, stain_norm=STAIN)
    ((x, _),) = _batches(ds)
    plain = make_dataset(pairs, codec, (32, 48), 4, 7, shuffle=False, augment=None, seed=0)
    assert not np.array_equal(x, _batches(plain)[0][0])
    for i, pair in enumerate(pairs):
        expected = cv2.resize(normalize(codec.read_image(pair), "reinhard", STAIN["target"]), (48, 32))
        assert np.array_equal(x[i], expected.astype(np.float32))
        assert np.array_equal(load_pair_resized(pair, codec, (32, 48), STAIN)[0], expected)


def test_stain_norm_none_changes_nothing_and_a_bad_target_fails_early(pairs):
    codec = RgbMaskCodec(CLASSES, {})
    off = make_dataset(pairs, codec, (32, 48), 4, 7, shuffle=False, augment=None, seed=0, stain_norm={"method": "none"})
    plain = make_dataset(pairs, codec, (32, 48), 4, 7, shuffle=False, augment=None, seed=0)
    assert np.array_equal(_batches(off)[0][0], _batches(plain)[0][0])
    bad = {"method": "reinhard", "target": {"lab_mean": [50.0, 0.0]}}
    with pytest.raises(ConfigError, match=r"data\.stain_norm\.target\.lab_mean"):
        make_dataset(pairs, codec, (32, 48), 4, 7, shuffle=False, augment=None, seed=0, stain_norm=bad)


def test_pipeline_with_stain_and_acquisition_augmentation(pairs):
    codec = RgbMaskCodec(CLASSES, {})
    options = {"flip": True, "scale": 0.3, "hed_scale": 0.1, "hed_shift": 0.05, "gamma": 0.3, "blur_sigma": 1.0,
               "noise_std": 0.02, "jpeg_quality": 50}  # fmt: skip

    def make():
        return make_dataset(pairs, codec, (32, 32), 4, 7, shuffle=False, augment=options, seed=3, one_hot=False,
                            stain_norm=STAIN)  # fmt: skip

    ((x, y),) = _batches(make())
    assert x.shape == (7, 32, 32, 3) and x.dtype == np.float32 and 0 <= x.min() and x.max() <= 255
    assert set(np.unique(y)) <= {0, 1, 2, 3}
    assert np.array_equal(x, _batches(make())[0][0])  # reproducible from the seed
