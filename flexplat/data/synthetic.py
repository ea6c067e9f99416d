"""Synthetic samples among the real training images, teaching where objects are but not their type.

One lab's images show its objects in one look; a registered :class:`flexplat.SyntheticSpec` draws
objects of the same domain in looks no training lab shows (for blood smears: domain-randomised stain,
light, blur and red-cell crowding). A model trained on ds1's crops plus such smears segmented the KRD
sample's leukocytes better than one trained on ds1 alone (benchmarks/RESULTS.md), but took their type
from the synthetic cells' drawn looks. So here a sample's object pixels are labelled
:data:`ANY_OBJECT` - "some object, class unknown" - and the loss rewards any object class there
(:func:`flexplat.engine.losses.cross_entropy_map`): the real images alone teach the types.

Runs in the input pipeline after object fade and before copy-paste, reproducibly from the seed and
the element's key, like :mod:`flexplat.data.paste`. Each sample is drawn at the size of the image it
replaces, its objects as large as that image's (so the run's pixel scale stays the real images').
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from flexplat.data.paste import object_diameter
from flexplat.errors import DataError

ANY_OBJECT = 255
"""Mask value of a synthetic object pixel: some object class, which one unknown. The pipeline's one-hot
target sets every class but the background there; training metrics count it as the first object class."""

Render = Callable[[np.random.Generator, tuple[int, int], float], tuple[np.ndarray, np.ndarray]]


def synthetic_fn(chance: float, render: Render, seed: int, name: str = "synthetic") -> Callable[..., Any]:
    """``fn(image, mask, key) -> (image, mask)`` for the input pipeline: with probability ``chance`` the
    pair becomes a sample drawn by ``render`` (objects :data:`ANY_OBJECT`); an image without objects
    is kept (there is no size to draw at). The same ``seed`` and ``key`` always give the same result."""

    def fn(image: np.ndarray, mask: np.ndarray, key: Any) -> tuple[np.ndarray, np.ndarray]:
        rng = np.random.default_rng([seed, int(key) & 0x7FFFFFFF, 0x5A5A])
        if rng.random() >= chance or not mask.any():
            return image, mask
        drawn, objects = render(rng, mask.shape[:2], object_diameter(mask))
        if drawn.shape != image.shape or objects.shape != mask.shape:
            raise DataError(
                f"synthetic source '{name}' drew a {drawn.shape} image with a {objects.shape} mask for a "
                f"{image.shape} training image; its render must return the size it is asked for"
            )
        labels = np.where(objects, ANY_OBJECT, 0).astype(mask.dtype)
        return drawn.astype(image.dtype), labels

    return fn
