"""Tiled prediction of images larger than the model input, with smooth blending.

The image is covered by tiles of the model's input size. Neighbouring tiles overlap by
``overlap`` (a fraction of the tile side); the last tile of each row/column is aligned to the
image border, so every pixel is covered and no tile reaches outside the image. Images smaller
than a tile are mirror-padded (reflect, the border pixel repeated) up to the tile size.

Each tile's softmax is weighted by a 2-D Hann window (with a small floor, so pixels covered by
a single tile at the image border still count) and accumulated into one float32 ``(H, W, C)``
buffer plus a ``(H, W)`` weight buffer; the result is their ratio. Tiles are predicted in batches
of ``batch_size``, so memory stays bounded: besides the input image, about ``H*W*(C+1)*4``
bytes (400 MB for a 4096x4096 image with 6 classes).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

WINDOW_FLOOR = 1e-3
"""Smallest relative weight of a window pixel (keeps single-tile borders well defined)."""


def tile_positions(size: int, tile: int, overlap: float) -> list[int]:
    """Start offsets of tiles of side ``tile`` covering ``size`` pixels.

    Stride is ``round(tile * (1 - overlap))`` (at least 1); the last start is ``size - tile`` so the
    last tile ends exactly at the border. A ``size`` up to ``tile`` needs one tile at 0 (the image
    is padded to the tile).
    """
    if size < 1 or tile < 1:
        raise ValueError(f"size and tile must be positive, got size={size}, tile={tile}")
    if not 0.0 <= overlap < 1.0:
        raise ValueError(f"overlap must be in [0, 1), got {overlap}")
    if size <= tile:
        return [0]
    stride = max(1, int(round(tile * (1.0 - overlap))))
    last = size - tile
    positions = list(range(0, last, stride))
    positions.append(last)
    return positions


def _hann(n: int) -> np.ndarray:
    """A symmetric Hann window sampled at pixel centres: positive everywhere, peak 1 in the middle."""
    i = np.arange(n, dtype=np.float64) + 0.5
    return 0.5 - 0.5 * np.cos(2.0 * np.pi * i / n)


def blend_window(tile_h: int, tile_w: int) -> np.ndarray:
    """The ``(tile_h, tile_w)`` float32 blending weights: an outer product of Hann windows, floored."""
    window = np.outer(_hann(tile_h), _hann(tile_w))
    return np.maximum(window, WINDOW_FLOOR).astype(np.float32)


def pad_to(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """Mirror-pad ``image`` at the bottom/right up to at least ``height`` x ``width``."""
    pad_h = max(0, height - image.shape[0])
    pad_w = max(0, width - image.shape[1])
    if not pad_h and not pad_w:
        return image
    widths = [(0, pad_h), (0, pad_w)] + [(0, 0)] * (image.ndim - 2)
    return np.pad(image, widths, mode="symmetric")


def predict_tiled(
    predict_fn: Callable[[np.ndarray], np.ndarray],
    image: np.ndarray,
    tile_hw: tuple[int, int],
    overlap: float,
    batch_size: int,
) -> np.ndarray:
    """Class probabilities ``(H, W, C)`` float32 for ``image`` ``(H, W, channels)``, tile by tile.

    ``predict_fn`` maps a float32 batch ``(B, tile_h, tile_w, channels)`` to probabilities
    ``(B, tile_h, tile_w, C)``. Tiles are cut from ``image`` (any dtype) and converted to float32
    one batch at a time.
    """
    if image.ndim == 2:
        image = image[:, :, None]
    height, width = image.shape[:2]
    tile_h, tile_w = int(tile_hw[0]), int(tile_hw[1])
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    padded = pad_to(image, tile_h, tile_w)
    full_h, full_w = padded.shape[:2]
    starts = [(y, x) for y in tile_positions(full_h, tile_h, overlap) for x in tile_positions(full_w, tile_w, overlap)]
    window = blend_window(tile_h, tile_w)
    weights = np.zeros((full_h, full_w), np.float32)
    acc: np.ndarray | None = None
    for first in range(0, len(starts), batch_size):
        chunk = starts[first : first + batch_size]
        batch = np.stack([padded[y : y + tile_h, x : x + tile_w] for y, x in chunk]).astype(np.float32, copy=False)
        probs = np.asarray(predict_fn(batch), dtype=np.float32)
        if probs.shape[:3] != (len(chunk), tile_h, tile_w):
            raise ValueError(
                f"predict_fn returned shape {probs.shape} for a batch of shape {batch.shape}; "
                f"expected ({len(chunk)}, {tile_h}, {tile_w}, classes)"
            )
        if acc is None:
            acc = np.zeros((full_h, full_w, probs.shape[-1]), np.float32)
        for (y, x), tile_probs in zip(chunk, probs, strict=True):
            acc[y : y + tile_h, x : x + tile_w] += tile_probs * window[:, :, None]
            weights[y : y + tile_h, x : x + tile_w] += window
    assert acc is not None  # at least one tile always exists
    acc /= weights[:, :, None]
    if (full_h, full_w) != (height, width):
        acc = np.ascontiguousarray(acc[:height, :width])
    return acc
