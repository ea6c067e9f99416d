"""The streaming tf.data input pipeline: file list -> decode -> stain-normalise -> resize -> augment -> batch.

Only file paths live in the dataset; images are decoded on demand by parallel workers and
dropped after use, so memory does not grow with the number of images (unless ``cache=True``).
"""

from __future__ import annotations

import ctypes
import itertools
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import cv2
import numpy as np

from flexplat.data.codec import Codec, Pair
from flexplat.data.stain import normalize
from flexplat.errors import DataError
from flexplat.schema import check_stain_norm

TRIM_EVERY = 64  # decoded pairs between two malloc_trim calls (glibc)


def _malloc_trim() -> Callable[[], Any]:
    """glibc's ``malloc_trim(0)``, or a no-op elsewhere.

    Decoding runs on many tf.data worker threads; glibc keeps the freed multi-megabyte decode
    buffers in per-thread arenas, so without trimming the process RSS creeps up over a long
    epoch although nothing is retained (measured: +8 % at 2,000 vs 200 pairs; with trimming
    every 64 pairs the two peaks are equal - see benchmarks/data_pipeline_memory.py).
    """
    try:
        trim = ctypes.CDLL("libc.so.6").malloc_trim
    except (OSError, AttributeError):
        return lambda: None
    return lambda: trim(0)


GREY_WEIGHTS = (0.299, 0.587, 0.114)  # ITU-R BT.601 luma of R, G, B: OpenCV's RGB2GRAY, used by inference


def load_pair_resized(
    pair: Pair, codec: Codec, image_size: Sequence[int], stain_norm: Mapping[str, Any] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Decode ``pair``, stain-normalise the image, and resize to ``image_size`` (H, W): bilinear
    image, NEAREST mask.

    ``stain_norm``: the ``data.stain_norm`` config (``{method, target}``; ``None`` or method
    ``none``: no normalisation), applied to the whole image at its stored size, as inference does
    before tiling. Returns ``(image uint8 H x W x 3 RGB, mask uint8 H x W class indices)``. An
    image and mask of different sizes raise DataError naming both files.
    """
    image = codec.read_image(pair)
    mask = codec.read_mask(pair).mask
    if image.shape[:2] != mask.shape[:2]:
        raise DataError(
            f"{pair.image} is {image.shape[1]}x{image.shape[0]} but its mask {pair.mask} is "
            f"{mask.shape[1]}x{mask.shape[0]} (width x height); image and mask must have the same size"
        )
    if stain_norm and stain_norm.get("method", "none") != "none":
        image = normalize(image, stain_norm["method"], stain_norm.get("target"))
    height, width = int(image_size[0]), int(image_size[1])
    if image.shape[:2] != (height, width):
        image = cv2.resize(image, (width, height), interpolation=cv2.INTER_LINEAR)
        mask = cv2.resize(mask, (width, height), interpolation=cv2.INTER_NEAREST)
    return image, mask


def make_dataset(
    pairs: Sequence[Pair],
    codec: Codec,
    image_size: Sequence[int],
    num_classes: int,
    batch_size: int,
    *,
    shuffle: bool,
    augment: Mapping[str, Any] | None,
    seed: int,
    cache: bool = False,
    one_hot: bool = True,
    drop_remainder: bool = False,
    repeat: bool = False,
    stain_norm: Mapping[str, Any] | None = None,
    channels: int = 3,
) -> Any:
    """A ``tf.data.Dataset`` of ``(images, targets)`` batches streamed from ``pairs``.

    images: float32 ``(B, H, W, channels)`` in 0..255 (the model normalises); ``channels=1`` gives
    the luminance of the augmented RGB image, as inference's grey view of an image. targets: one-hot float32
    ``(B, H, W, num_classes)``, or int32 ``(B, H, W)`` class indices with ``one_hot=False``.
    Decoding runs on parallel workers in a deterministic order; ``shuffle`` reshuffles each
    epoch from ``seed``; ``augment`` (``train.augment`` options) is applied after resizing,
    with per-element randomness that is new every epoch yet reproducible from ``seed``.
    ``cache=True`` keeps decoded, resized (not augmented) pairs in memory after the first pass.
    ``stain_norm`` (the ``data.stain_norm`` config, checked here so a bad target fails before
    training starts) normalises each image as it is decoded, before resizing and augmentation.
    ``augment``'s copy-paste (``paste`` > 0) moves objects onto the registered background its
    ``paste_background`` names, before the other transforms.
    """
    import tensorflow as tf

    from flexplat.data.augment import is_enabled

    pairs = list(pairs)
    if not pairs:
        raise DataError("no image/mask pairs to build a dataset from; check the data folders (flexplat data check)")
    height, width = int(image_size[0]), int(image_size[1])
    autotune = tf.data.AUTOTUNE
    stain = check_stain_norm(stain_norm) if stain_norm else None

    counter = itertools.count(1)
    trim = _malloc_trim()

    def load(index: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if next(counter) % TRIM_EVERY == 0:
            trim()
        return load_pair_resized(pairs[int(index)], codec, (height, width), stain)

    def decode(index):
        image, mask = tf.numpy_function(load, [index], [tf.uint8, tf.uint8], stateful=False)
        image.set_shape([height, width, 3])
        mask.set_shape([height, width])
        return image, mask

    ds = tf.data.Dataset.range(len(pairs))
    if cache:
        ds = ds.map(decode, num_parallel_calls=autotune, deterministic=True).cache()
    if shuffle:
        ds = ds.shuffle(len(pairs), seed=seed, reshuffle_each_iteration=True)
    if repeat:
        ds = ds.repeat()
    if not cache:
        ds = ds.map(decode, num_parallel_calls=autotune, deterministic=True)

    if augment and augment.get("object_fade"):
        ds = _with_fade(ds, float(augment["object_fade"]), seed, (height, width))
    if augment and augment.get("paste"):
        ds = _with_paste(ds, augment, seed, (height, width), stain)
    if is_enabled(augment):
        ds = _with_augment(ds, augment, seed)

    ds = ds.map(_finisher(num_classes, one_hot, channels), num_parallel_calls=autotune, deterministic=True)
    ds = ds.batch(batch_size, drop_remainder=drop_remainder, num_parallel_calls=autotune, deterministic=True)
    return ds.prefetch(autotune)


def _finisher(num_classes: int, one_hot: bool, channels: int) -> Callable:
    """The last step of an element: float image (grey for 1 channel), one-hot or int32 target."""
    import tensorflow as tf

    def finish(image, mask):
        image = tf.cast(image, tf.float32)
        if channels == 1:
            image = tf.round(tf.tensordot(image, tf.constant(GREY_WEIGHTS), axes=[[-1], [0]]))[..., None]
        if one_hot:
            return image, tf.one_hot(tf.cast(mask, tf.int32), num_classes, dtype=tf.float32)
        return image, tf.cast(mask, tf.int32)

    return finish


def _with_paste(ds: Any, augment: Mapping[str, Any], seed: int, size: tuple, stain: Mapping | None) -> Any:
    """``ds`` with copy-paste (flexplat/data/paste.py) applied per element, reproducibly from ``seed``;
    the backgrounds are stain-normalised like the images (``stain``), so a pasted image looks like a
    normalised field."""
    from flexplat.data.paste import paste_fn
    from flexplat.plugins import get_registry

    background = get_registry().get("background", augment["paste_background"]).render
    if stain and stain["method"] != "none":
        background = _normalised(background, stain)
    return _keyed_numpy_map(ds, paste_fn(augment, background, seed), seed + 1, size)


def _with_fade(ds: Any, chance: float, seed: int, size: tuple) -> Any:
    """``ds`` with object fade (flexplat/data/fade.py) applied per element, reproducibly from ``seed``."""
    from flexplat.data.fade import fade_fn

    fade = fade_fn(chance, seed)
    return _keyed_numpy_map(ds, lambda image, mask, key: (fade(image, mask, key), mask), seed + 2, size)


def _keyed_numpy_map(ds: Any, fn: Callable, key_seed: int, size: tuple) -> Any:
    """``ds`` of (image, mask) mapped through NumPy ``fn(image, mask, key) -> (image, mask)`` (uint8), each
    element with a key of its own: new every epoch, reproducible from ``key_seed``."""
    import tensorflow as tf

    def apply(pair, key):
        image, mask = tf.numpy_function(fn, [pair[0], pair[1], key], [tf.uint8, tf.uint8], stateful=False)
        image.set_shape([*size, 3])
        mask.set_shape(list(size))
        return image, mask

    keys = tf.data.Dataset.random(seed=key_seed, rerandomize_each_iteration=True)
    return tf.data.Dataset.zip((ds, keys)).map(apply, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)


def _normalised(render: Callable, stain: Mapping[str, Any]) -> Callable:
    """``render`` whose backgrounds come out stain-normalised by ``stain`` (``data.stain_norm``)."""

    def draw(rng: Any, shape: tuple, diameter: float) -> np.ndarray:
        return normalize(render(rng, shape, diameter), stain["method"], stain["target"])

    return draw


def _with_augment(ds: Any, augment: Mapping[str, Any], seed: int) -> Any:
    """``ds`` with the ``train.augment`` transforms (flexplat/data/augment.py), new each epoch, from ``seed``."""
    import tensorflow as tf

    from flexplat.data.augment import augment_fn

    fn = augment_fn(augment, seed)
    keys = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True)
    return tf.data.Dataset.zip((ds, keys)).map(
        lambda pair, key: fn(tf.cast(pair[0], tf.float32), pair[1], key),
        num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=True,
    )
