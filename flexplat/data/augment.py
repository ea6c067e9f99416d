"""Online augmentation applied identically to an image and its mask.

Every option defaults to OFF, so ``train.augment: {}`` trains on the data as stored; switch on
what suits the data, e.g. ``{flip: true, rot90: true, rotate_degrees: 15, scale: 0.1,
brightness: 0.1, contrast: 0.1}``. Geometric transforms use the SAME random parameters for
image and mask (bilinear for the image, nearest-neighbour for the mask, so no new class
values appear); every other transform touches the image only. Randomness is stateless: the
output depends only on ``seed`` and the per-element ``key`` the input pipeline passes, so a run
is reproducible and every epoch still sees new variants.

Order, following how a slide becomes a file: geometry (flips, rot90, rotation/zoom/shift,
elastic); stain (HED jitter: Ruifrok-Johnston colour deconvolution, per-stain scale and shift,
Tellez et al. 2018); optics (Gaussian blur); camera (brightness, contrast, saturation, hue,
gamma, Gaussian noise); storage (JPEG). The stain, blur, gamma, noise and JPEG transforms draw
from random streams of their own, so switching them on leaves the draws of the others - and
so the augmentations of existing configs - unchanged.

The options are declared in :data:`flexplat.schema.AUGMENT_SCHEMA`; TensorFlow is imported only
inside :func:`augment_fn`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from flexplat.options import validate
from flexplat.schema import AUGMENT_SCHEMA

_AFFINE = ("rotate_degrees", "scale", "translate")
_STREAMS = 24  # random scalars available per element (17 used at most)
_EXTRA_STREAMS = 16  # a second set for stain, blur, gamma, noise, JPEG (15 used at most)
_SETTINGS = ("probability", "elastic_sigma", "fill_mode")  # tune transforms; switch none on
_PASTE = ("paste", "paste_background", "paste_empty", "object_fade")  # run in the pipeline (paste.py, fade.py)

# Ruifrok & Johnston 2001 stain OD vectors (rows: haematoxylin, eosin, DAB), as scikit-image's rgb2hed
RGB_FROM_HED = np.array([[0.65, 0.70, 0.29], [0.07, 0.99, 0.11], [0.27, 0.57, 0.78]])
HED_FROM_RGB = np.linalg.inv(RGB_FROM_HED)


def is_enabled(options: Mapping[str, Any] | None) -> bool:
    """True when ``options`` switch on at least one transform."""
    if not options:
        return False
    values = validate(AUGMENT_SCHEMA, options, "train.augment")
    return any(bool(value) for key, value in values.items() if key not in _SETTINGS + _PASTE)


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
        base = tf.stack([tf.constant(seed, tf.int64), key])
        keys = tf.random.experimental.stateless_split(base, num=_STREAMS + 1)
        uniform = _Uniform(keys, _STREAMS)
        extra_keys = tf.random.experimental.stateless_split(
            tf.random.experimental.stateless_fold_in(base, 1), num=_EXTRA_STREAMS + 1
        )
        extra = _Uniform(extra_keys, _EXTRA_STREAMS)

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
        img = _stain_and_optics(img, opts, extra, p)
        img = _colour(img, opts, uniform, p)
        img = _camera_and_storage(img, opts, extra, p, extra_keys[_EXTRA_STREAMS])

        img = tf.clip_by_value(img, 0.0, 255.0)
        if in_dtype.is_integer:
            img = tf.round(img)
        img = tf.cast(img, in_dtype)
        msk = tf.cast(msk if mask_rank == 3 else msk[..., 0], mask_dtype)
        return img, msk

    return fn


class _Uniform:
    """Successive stateless uniform [0, 1) scalars from a fixed list of seeds (``limit`` of them;
    the key after them is reserved for a per-pixel field: elastic, noise)."""

    def __init__(self, keys, limit: int) -> None:
        self.keys = keys
        self.limit = limit
        self.used = 0

    def __call__(self):
        import tensorflow as tf

        if self.used >= self.limit:
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


def rgb_to_hed(img):
    """Ruifrok-Johnston colour deconvolution of a float 0..255 RGB image into H, E, D
    concentrations in natural-log optical density, OD = -ln((I + 1) / 256) (0 for white).
    Nothing is clipped, so :func:`hed_to_rgb` inverts it exactly."""
    import tensorflow as tf

    od = -tf.math.log((img + 1.0) / 256.0)
    return tf.tensordot(od, tf.constant(HED_FROM_RGB, tf.float32), 1)


def hed_to_rgb(stains):
    """The inverse of :func:`rgb_to_hed`: float RGB on the 0..255 scale (not clipped)."""
    import tensorflow as tf

    od = tf.tensordot(stains, tf.constant(RGB_FROM_HED, tf.float32), 1)
    return 256.0 * tf.exp(-od) - 1.0


def _hed_jitter(img, scale, shift):
    """``hed_to_rgb(rgb_to_hed(img) * scale + shift)`` as one 3 x 3 map of optical densities."""
    import tensorflow as tf

    hed_from_rgb = tf.constant(HED_FROM_RGB, tf.float32)
    rgb_from_hed = tf.constant(RGB_FROM_HED, tf.float32)
    matrix = tf.matmul(hed_from_rgb * scale[None, :], rgb_from_hed)
    offset = tf.linalg.matvec(rgb_from_hed, shift, transpose_a=True)
    od = -tf.math.log((tf.clip_by_value(img, 0.0, 255.0) + 1.0) / 256.0)
    od = tf.reshape(tf.matmul(tf.reshape(od, [-1, 3]), matrix) + offset, tf.shape(img))
    return 256.0 * tf.exp(-od) - 1.0


def _stain_and_optics(img, opts: Mapping[str, Any], uniform: _Uniform, p: float):
    """HED stain jitter (scale and shift each stain's OD), then Gaussian blur of random sigma."""
    import tensorflow as tf

    if (opts["hed_scale"] > 0 or opts["hed_shift"] > 0) and img.shape[-1] == 3:
        on = uniform() < p
        scale = 1.0 + (2 * tf.stack([uniform() for _ in range(3)]) - 1) * opts["hed_scale"]
        shift = (2 * tf.stack([uniform() for _ in range(3)]) - 1) * opts["hed_shift"]
        img = tf.cond(on, lambda: _hed_jitter(img, scale, shift), lambda: img)
    if opts["blur_sigma"] > 0:
        on = uniform() < p
        sigma = uniform() * opts["blur_sigma"]
        img = tf.cond(on, lambda: _blur(img, sigma, opts["blur_sigma"]), lambda: img)
    return img


def _blur(img, sigma, max_sigma: float):
    """Separable Gaussian blur with a tensor ``sigma`` (0 = identity), mirrored borders."""
    import tensorflow as tf

    radius = max(1, int(math.ceil(3 * max_sigma)))
    for side in img.shape[:2]:
        if side is not None:
            radius = min(radius, side - 1)
    if radius < 1:
        return img
    x = tf.range(-radius, radius + 1, dtype=tf.float32)
    kernel = tf.exp(-(x**2) / (2 * tf.maximum(sigma, 1e-3) ** 2))
    kernel = kernel / tf.reduce_sum(kernel)
    channels = img.shape[-1]
    padded = tf.pad(img[None], [[0, 0], [radius, radius], [radius, radius], [0, 0]], mode="SYMMETRIC")
    ky = tf.tile(tf.reshape(kernel, [-1, 1, 1, 1]), [1, 1, channels, 1])
    kx = tf.tile(tf.reshape(kernel, [1, -1, 1, 1]), [1, 1, channels, 1])
    out = tf.nn.depthwise_conv2d(padded, ky, [1, 1, 1, 1], "VALID")
    return tf.nn.depthwise_conv2d(out, kx, [1, 1, 1, 1], "VALID")[0]


def _camera_and_storage(img, opts: Mapping[str, Any], uniform: _Uniform, p: float, noise_seed):
    """Gamma, additive Gaussian noise of random strength, then JPEG at a random quality."""
    import tensorflow as tf

    if opts["gamma"] > 0:
        on = tf.cast(uniform() < p, tf.float32)
        gamma = tf.exp(on * (2 * uniform() - 1) * math.log1p(opts["gamma"]))
        img = 255.0 * tf.pow(tf.clip_by_value(img / 255.0, 0.0, 1.0), gamma)
    if opts["noise_std"] > 0:
        on = tf.cast(uniform() < p, tf.float32)
        std = on * uniform() * opts["noise_std"] * 255.0
        img = img + std * tf.random.stateless_normal(tf.shape(img), seed=noise_seed)
    if opts["jpeg_quality"] > 0 and img.shape[-1] in (1, 3):
        on = uniform() < p
        low = int(opts["jpeg_quality"])
        quality = tf.minimum(low + tf.cast(tf.floor(uniform() * (101 - low)), tf.int32), 100)
        img = tf.cond(on, lambda: _jpeg(img, quality), lambda: img)
    return img


def _jpeg(img, quality):
    import tensorflow as tf

    rgb = tf.clip_by_value(img / 255.0, 0.0, 1.0)
    out = tf.image.adjust_jpeg_quality(rgb, quality)
    return tf.reshape(out, tf.shape(img)) * 255.0
