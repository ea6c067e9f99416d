"""Online augmentation applied identically to an image and its mask.

Every option defaults to OFF, so ``train.augment: {}`` trains on the data as stored; switch on
what suits the data, e.g. ``{flip: true, rot90: true, rotate_degrees: 15, scale: 0.1,
brightness: 0.1, contrast: 0.1}``. Geometric transforms use the SAME random parameters for
image and mask (bilinear for the image, nearest-neighbour for the mask, so no new class
values appear); colour jitter touches the image only. Randomness is stateless: the output
depends only on ``seed`` and the per-element ``key`` the input pipeline passes, so a run is
reproducible and every epoch still sees new variants.

The options are declared in :data:`flexplat.schema.AUGMENT_SCHEMA`; TensorFlow is imported only
inside :func:`augment_fn`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

from flexplat.options import validate
from flexplat.schema import AUGMENT_SCHEMA

_AFFINE = ("rotate_degrees", "scale", "translate")
_STREAMS = 24  # random scalars available per element (17 used at most)
_COLOUR = ("brightness", "contrast", "saturation", "hue")


def is_enabled(options: Mapping[str, Any] | None) -> bool:
    """True when ``options`` switch on at least one transform."""
    if not options:
        return False
    values = validate(AUGMENT_SCHEMA, options, "train.augment")
    return bool(values["flip"] or values["rot90"] or values["elastic"] or any(values[k] for k in _AFFINE + _COLOUR))


def augment_fn(options: Mapping[str, Any] | None, seed: int) -> Callable[..., tuple[Any, Any]]:
    """A TensorFlow function ``fn(image, mask, key=None) -> (image, mask)``.

    ``image``: H x W x C (float 0..255, or uint8); ``mask``: H x W or H x W x 1 integer class
    indices. Both come back with their input shape and dtype. ``key`` (an integer scalar
    tensor, e.g. from ``tf.data.Dataset.random``) picks the variant: the same ``seed`` and
    ``key`` always give the same output; ``key=None`` means 0.
    """
    import tensorflow as tf

    opts = validate(AUGMENT_SCHEMA, options or {}, "train.augment")
    p = float(opts["probability"])
    fill = opts["fill_mode"].upper()
    affine_on = any(opts[k] > 0 for k in _AFFINE)

    def fn(image, mask, key=None):
        image = tf.convert_to_tensor(image)
        mask = tf.convert_to_tensor(mask)
        in_dtype, mask_dtype, mask_rank = image.dtype, mask.dtype, mask.shape.rank
        img = tf.cast(image, tf.float32)
        msk = tf.cast(mask if mask_rank == 3 else mask[..., None], tf.int32)
        key = tf.constant(0, tf.int64) if key is None else tf.cast(tf.reshape(key, []), tf.int64)
        keys = tf.random.experimental.stateless_split(tf.stack([tf.constant(seed, tf.int64), key]), num=_STREAMS + 1)
        uniform = _Uniform(keys)

        if opts["flip"]:
            img, msk = _maybe(uniform() < 0.5, lambda a, b: (a[:, ::-1], b[:, ::-1]), img, msk)
            img, msk = _maybe(uniform() < 0.5, lambda a, b: (a[::-1], b[::-1]), img, msk)
        if opts["rot90"]:
            height, width = img.shape[0], img.shape[1]
            square = height is not None and height == width
            k = tf.cast(tf.floor(uniform() * 4.0), tf.int32) if square else 2 * tf.cast(uniform() < 0.5, tf.int32)
            img, msk = tf.image.rot90(img, k), tf.image.rot90(msk, k)
        if affine_on:
            gate = tf.cast(uniform() < p, tf.float32)
            angle = gate * (2 * uniform() - 1) * math.radians(opts["rotate_degrees"])
            zoom = 1.0 + gate * (2 * uniform() - 1) * opts["scale"]
            shift = gate * (2 * tf.stack([uniform(), uniform()]) - 1) * opts["translate"]
            img, msk = _affine(img, msk, angle, zoom, shift, fill)
        if opts["elastic"] > 0:
            field_seed = keys[_STREAMS]
            img, msk = _maybe(
                uniform() < p,
                lambda a, b: _elastic(a, b, opts["elastic"], opts["elastic_sigma"], field_seed),
                img,
                msk,
            )
        img = _colour(img, opts, uniform, p)

        img = tf.clip_by_value(img, 0.0, 255.0)
        if in_dtype.is_integer:
            img = tf.round(img)
        img = tf.cast(img, in_dtype)
        msk = tf.cast(msk if mask_rank == 3 else msk[..., 0], mask_dtype)
        return img, msk

    return fn


class _Uniform:
    """Successive stateless uniform [0, 1) scalars from a fixed list of seeds."""

    def __init__(self, keys) -> None:
        self.keys = keys
        self.used = 0

    def __call__(self):
        import tensorflow as tf

        if self.used >= _STREAMS:  # keys[_STREAMS] is reserved for the elastic field
            raise RuntimeError("augment: out of random streams")
        value = tf.random.stateless_uniform([], seed=self.keys[self.used])
        self.used += 1
        return value


def _maybe(condition, transform, img, msk):
    import tensorflow as tf

    return tf.cond(condition, lambda: transform(img, msk), lambda: (img, msk))


def _affine(img, msk, angle, zoom, shift, fill: str):
    """Rotate by ``angle`` and zoom by ``zoom`` about the centre, shift by ``shift`` * size."""
    import tensorflow as tf

    shape = tf.shape(img)
    h, w = tf.cast(shape[0], tf.float32), tf.cast(shape[1], tf.float32)
    cx, cy = (w - 1) / 2, (h - 1) / 2
    cos, sin = tf.cos(angle) / zoom, tf.sin(angle) / zoom
    # maps each OUTPUT pixel (x, y) to the INPUT pixel it samples
    a0, a1, b0, b1 = cos, sin, -sin, cos
    a2 = cx - a0 * cx - a1 * cy - shift[0] * w
    b2 = cy - b0 * cx - b1 * cy - shift[1] * h
    transform = tf.reshape(tf.stack([a0, a1, a2, b0, b1, b2, 0.0, 0.0]), [1, 8])
    size = shape[:2]

    def apply(x, interpolation):
        return tf.raw_ops.ImageProjectiveTransformV3(
            images=x[None],
            transforms=transform,
            output_shape=size,
            fill_value=0.0,
            interpolation=interpolation,
            fill_mode=fill,
        )[0]

    return apply(img, "BILINEAR"), apply(msk, "NEAREST")


def _gaussian_kernel(sigma: float):
    import tensorflow as tf

    radius = max(1, int(math.ceil(3 * sigma)))
    x = tf.range(-radius, radius + 1, dtype=tf.float32)
    kernel = tf.exp(-(x**2) / (2 * sigma**2))
    return kernel / tf.reduce_sum(kernel)


def _elastic(img, msk, alpha: float, sigma: float, seed):
    """Simard elastic deformation: one smoothed random displacement field for image and mask."""
    import tensorflow as tf

    shape = tf.shape(img)
    h, w = shape[0], shape[1]
    noise = tf.random.stateless_uniform(tf.stack([1, h, w, 2]), seed=seed, minval=-1.0, maxval=1.0)
    kernel = _gaussian_kernel(sigma)
    size = int(kernel.shape[0])
    kx = tf.tile(tf.reshape(kernel, [1, size, 1, 1]), [1, 1, 2, 1])
    ky = tf.tile(tf.reshape(kernel, [size, 1, 1, 1]), [1, 1, 2, 1])
    smooth = tf.nn.depthwise_conv2d(noise, kx, [1, 1, 1, 1], "SAME")
    smooth = tf.nn.depthwise_conv2d(smooth, ky, [1, 1, 1, 1], "SAME")[0] * alpha
    return _warp(img, msk, smooth[..., 0], smooth[..., 1])


def _warp(img, msk, dy, dx):
    """Sample image (bilinear) and mask (nearest) at (y + dy, x + dx), clamped to the edges."""
    import tensorflow as tf

    shape = tf.shape(img)
    h, w = shape[0], shape[1]
    hf, wf = tf.cast(h - 1, tf.float32), tf.cast(w - 1, tf.float32)
    gy, gx = tf.meshgrid(tf.range(h, dtype=tf.float32), tf.range(w, dtype=tf.float32), indexing="ij")
    sy = tf.clip_by_value(gy + dy, 0.0, hf)
    sx = tf.clip_by_value(gx + dx, 0.0, wf)
    y0, x0 = tf.floor(sy), tf.floor(sx)
    wy, wx = (sy - y0)[..., None], (sx - x0)[..., None]
    y0i, x0i = tf.cast(y0, tf.int32), tf.cast(x0, tf.int32)
    y1i, x1i = tf.minimum(y0i + 1, h - 1), tf.minimum(x0i + 1, w - 1)

    def at(source, yi, xi):
        return tf.gather_nd(source, tf.stack([yi, xi], axis=-1))

    top = at(img, y0i, x0i) * (1 - wx) + at(img, y0i, x1i) * wx
    bottom = at(img, y1i, x0i) * (1 - wx) + at(img, y1i, x1i) * wx
    out_img = top * (1 - wy) + bottom * wy
    out_msk = at(msk, tf.cast(tf.round(sy), tf.int32), tf.cast(tf.round(sx), tf.int32))
    return out_img, out_msk


def _colour(img, opts: Mapping[str, Any], uniform: _Uniform, p: float):
    """Brightness / contrast / saturation / hue jitter on a float 0..255 image."""
    import tensorflow as tf

    def gated(amount):
        return tf.cast(uniform() < p, tf.float32) * (2 * uniform() - 1) * amount

    if opts["brightness"] > 0:
        img = img + gated(opts["brightness"]) * 255.0
    if opts["contrast"] > 0:
        img = tf.image.adjust_contrast(img, 1.0 + gated(opts["contrast"]))
    if (opts["saturation"] > 0 or opts["hue"] > 0) and img.shape[-1] == 3:
        rgb = tf.clip_by_value(img / 255.0, 0.0, 1.0)
        if opts["saturation"] > 0:
            rgb = tf.image.adjust_saturation(rgb, 1.0 + gated(opts["saturation"]))
        if opts["hue"] > 0:
            rgb = tf.image.adjust_hue(rgb, gated(opts["hue"]))
        img = rgb * 255.0
    return img
