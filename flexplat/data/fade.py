"""Object fade: the lighter part of each labelled object loses some of its stain (a training augmentation).

Labs stain differently, and the part of a cell that takes up least stain varies most: a neutrophil's
cytoplasm is orange-brown in one lab's smears and almost as pale as the glass in another's. A model that
has only seen it stained reads the paler cell as another type (a ds1 model called 156 of 176 neutrophils
lymphocytes once their cytoplasm was faded 75 % toward the background; benchmarks/RESULTS.md).

Within each connected labelled object, the pixels whose optical density (OD = -ln(I / I0), I0 = the
image's background, its 99th-percentile brightness) lies below both the object's Otsu threshold and
half its 95th-percentile OD - the cytoplasm of a stained cell, not a nucleus's paler half - keep a
random fraction of their OD, drawn once per image from ``[1 - FADE_MAX, 1]``. Masks are untouched.
Runs in the input pipeline before copy-paste, reproducibly from the seed and the element's key, like
:mod:`flexplat.data.paste`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import cv2
import numpy as np

from flexplat.data.stain import background_colour, optical_density

FADE_MAX = 0.9  # at most 90 % of the light part's stain is removed
MIN_OBJECT_PIXELS = 16  # smaller objects are left alone (no threshold to speak of)
LIGHT_FRACTION = 0.5  # and at most half the object's dark (95th-percentile) OD: a nucleus's paler half stays


def fade_objects(image: np.ndarray, mask: np.ndarray, keep: float) -> np.ndarray:
    """``image`` (uint8 RGB) with the light part of every object in ``mask`` (class indices, 0 background)
    keeping ``keep`` (0..1) of its optical density."""
    white = background_colour(image) + 1.0
    od = optical_density(image, white)
    total = od.sum(axis=2)
    count, labels = cv2.connectedComponents((mask > 0).astype(np.uint8), connectivity=8)
    light = np.zeros(mask.shape, bool)
    for index in range(1, count):
        inside = labels == index
        if inside.sum() >= MIN_OBJECT_PIXELS:
            values = total[inside]
            light |= inside & (total <= min(_otsu(values), LIGHT_FRACTION * np.percentile(values, 95)))
    out = image.astype(np.float32)
    out[light] = white * np.exp(-od[light] * keep) - 1.0
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def _otsu(values: np.ndarray) -> float:
    """Otsu's threshold of a set of non-negative values (256 bins between their minimum and maximum)."""
    low, high = float(values.min()), float(values.max())
    if high - low < 1e-6:
        return low
    scaled = np.rint((values - low) / (high - low) * 255).astype(np.uint8).reshape(-1, 1)
    threshold, _ = cv2.threshold(scaled, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    return low + threshold / 255.0 * (high - low)


def fade_fn(chance: float, seed: int) -> Callable[[np.ndarray, np.ndarray, Any], np.ndarray]:
    """``fn(image, mask, key) -> image`` for the input pipeline: fades with probability ``chance``;
    the same ``seed`` and ``key`` always give the same result."""

    def fn(image: np.ndarray, mask: np.ndarray, key: Any) -> np.ndarray:
        rng = np.random.default_rng([seed, int(key) & 0x7FFFFFFF, 0xFADE])
        if rng.random() >= chance:
            return image
        return fade_objects(image, mask, float(rng.uniform(1.0 - FADE_MAX, 1.0)))

    return fn
