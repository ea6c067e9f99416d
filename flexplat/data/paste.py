"""Copy-paste augmentation: a training image's objects moved onto a generated background.

A model trained on one lab's crops learns that everything dark in the frame is an object; another
lab's fields are crowded with things that are not (red cells around a leukocyte, debris, other
cells). Pasting the labelled objects onto backgrounds drawn by a registered
:class:`flexplat.BackgroundSpec` (Dwibedi et al. 2017, "Cut, Paste and Learn"; Ghiasi et al. 2021)
shows the model those distractors as background, with its own real objects as the foreground.

Bright-field images are composited in optical density (Beer-Lambert): an object absorbs light on
top of whatever lies under it, so its stain and texture are kept and its edge blends as a stained
cell does, without a cut-out seam. The object's own light level is read from its image's
background pixels.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import cv2
import numpy as np

Render = Callable[[np.random.Generator, tuple[int, int], float], np.ndarray]
"""``render(rng, (height, width), object_diameter) -> RGB uint8 image`` of an object-free field."""

HIDE_UNDER = (0.3, 1.0)  # how much of the background an object hides (it lies on top of it)
EDGE_FRACTION = 0.3  # share of pastes whose object may be cut by the image edge (as in a tile)


def object_diameter(mask: np.ndarray) -> float:
    """Equivalent diameter ``2 * sqrt(area / pi)`` of the foreground (all classes but 0) in pixels."""
    return float(2.0 * np.sqrt(np.count_nonzero(mask) / np.pi))


def paste_objects(
    image: np.ndarray,
    mask: np.ndarray,
    render: Render,
    rng: np.random.Generator,
    empty: float = 0.0,
) -> tuple[np.ndarray, np.ndarray]:
    """``image`` (H x W x 3, 0..255) and ``mask`` (H x W class indices) with the objects moved onto a
    background from ``render`` at a random position; with probability ``empty`` the background alone
    (all-background mask). An image without objects comes back unchanged."""
    foreground = mask > 0
    if not foreground.any():
        return image, mask
    height, width = mask.shape
    field = render(rng, (height, width), object_diameter(mask)).astype(np.float32)
    if rng.random() < empty:
        return field.astype(image.dtype), np.zeros_like(mask)
    shift = _placement(foreground, rng)
    alpha, density, moved = (_shift(a, shift) for a in _cut_out(image, foreground, mask))
    hide = rng.uniform(*HIDE_UNDER) * alpha[..., None]
    light = np.percentile(field.reshape(-1, 3), 95, axis=0) + 1.0
    field_od = np.log(light) - np.log(field + 1.0)
    od = field_od * (1.0 - hide) + density * alpha[..., None]
    out = np.clip(light * np.exp(-od) - 1.0, 0, 255)
    return out.astype(image.dtype), moved.astype(mask.dtype)


def _cut_out(image: np.ndarray, foreground: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, ...]:
    """(soft alpha of the objects, their optical density, the mask)."""
    rgb = image.astype(np.float32)
    near = cv2.dilate(foreground.astype(np.uint8), np.ones((9, 9), np.uint8)).astype(bool)
    around = rgb[~near] if np.count_nonzero(~near) >= 50 else rgb.reshape(-1, 3)
    light = np.percentile(around, 90, axis=0) + 1.0
    density = np.clip(np.log(light) - np.log(rgb + 1.0), 0.0, None)
    edge = cv2.dilate(foreground.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(np.float32)
    alpha = np.maximum(cv2.GaussianBlur(edge, (0, 0), 1.0), foreground)  # opaque object, a soft 1-2 px fringe
    return alpha, density, mask


def _placement(foreground: np.ndarray, rng: np.random.Generator) -> tuple[int, int]:
    """A random (dy, dx) moving the objects' centre somewhere in the image; mostly whole objects."""
    height, width = foreground.shape
    ys, xs = np.nonzero(foreground)
    cy, cx = ys.mean(), xs.mean()
    if rng.random() < EDGE_FRACTION:  # the centre anywhere but the outermost rim
        ry, rx = 0.2 * height, 0.2 * width
        ty, tx = rng.uniform(ry * 0.5, height - ry * 0.5), rng.uniform(rx * 0.5, width - rx * 0.5)
    else:  # whole where it fits: the bounding box stays inside
        ty = cy + rng.uniform(-ys.min(), height - 1 - ys.max()) if ys.max() - ys.min() < height else cy
        tx = cx + rng.uniform(-xs.min(), width - 1 - xs.max()) if xs.max() - xs.min() < width else cx
    return int(round(ty - cy)), int(round(tx - cx))


def _shift(array: np.ndarray, shift: tuple[int, int]) -> np.ndarray:
    """``array`` moved by (dy, dx); what moves in from outside is zero."""
    dy, dx = shift
    out = np.zeros_like(array)
    height, width = array.shape[:2]
    src_y, dst_y = slice(max(0, -dy), min(height, height - dy)), slice(max(0, dy), min(height, height + dy))
    src_x, dst_x = slice(max(0, -dx), min(width, width - dx)), slice(max(0, dx), min(width, width + dx))
    out[dst_y, dst_x] = array[src_y, src_x]
    return out


def paste_fn(
    options: Mapping[str, Any], render: Render, seed: int
) -> Callable[[np.ndarray, np.ndarray, Any], tuple[np.ndarray, np.ndarray]]:
    """``fn(image, mask, key)`` for the input pipeline: pastes with probability ``options["paste"]``;
    the same ``seed`` and ``key`` always give the same result."""
    chance, empty = float(options["paste"]), float(options["paste_empty"])

    def fn(image: np.ndarray, mask: np.ndarray, key: Any) -> tuple[np.ndarray, np.ndarray]:
        rng = np.random.default_rng([seed, int(key) & 0x7FFFFFFF, 0x5A57E])
        if rng.random() >= chance:
            return image, mask
        return paste_objects(image, mask, render, rng, empty)

    return fn
