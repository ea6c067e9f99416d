"""Offline augmentations: one geometric warp applied identically to an image and its label map.

Every warp is either an exact array operation (rotations, flips) or one pair of coordinate maps
used by ``cv2.remap`` for both the image (bilinear) and the label map (nearest neighbour), so
the mask stays aligned and keeps exact label values. Sizes are relative to a 512-px image and
scale with the actual size, so a warp looks the same at any resolution.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

AUGMENTATIONS = ("rot90", "rot180", "rot270", "hflip", "vflip", "elastic", "barrel", "pincushion")
LENS_CENTRES = ((0.3, 0.3), (0.7, 0.3), (0.5, 0.5), (0.3, 0.7), (0.7, 0.7))
LENS_RADIUS = 0.3


@dataclass(frozen=True)
class WarpOptions:
    """Strengths of the random warps.

    ``elastic_alpha`` / ``elastic_sigma``: displacement scale and smoothness in pixels of a
    512-px image (sigma scales with the size, alpha with its square, so the relative warp is
    the same at any size). The displacement's standard deviation is about
    ``0.163 * alpha / sigma`` px: the defaults (1000, 20) move pixels ~8 px with a smooth field.
    The original generator's (1300, 8) moves them ~26 px over an 8-px field, which folds the
    image into shreds, so it is not the default. ``lens_amount``: barrel (+) / pincushion (-)
    strength of each of the five lenses (radius 0.3 x side, as in the original) applied one
    after the other; must stay below 0.5.
    """

    elastic_alpha: float = 1000.0
    elastic_sigma: float = 20.0
    lens_amount: float = 0.3


def parse_augment(text: str | None, default: tuple[str, ...]) -> tuple[str, ...]:
    """``"rot90,hflip"`` -> ``("rot90", "hflip")``; ``None`` gives ``default``; ``none``/empty gives ``()``."""
    if text is None:
        return tuple(default)
    names = [part.strip().lower() for part in text.split(",") if part.strip()]
    if names in ([], ["none"]):
        return ()
    unknown = [n for n in names if n not in AUGMENTATIONS]
    if unknown:
        raise ValueError(f"unknown augmentation {', '.join(unknown)}; choose from {', '.join(AUGMENTATIONS)} or none")
    if len(set(names)) != len(names):
        raise ValueError(f"augmentation listed twice in {text!r}")
    return tuple(names)


def apply(
    name: str, image: np.ndarray, labels: np.ndarray, rng: np.random.Generator, options: WarpOptions = WarpOptions()
) -> tuple[np.ndarray, np.ndarray]:
    """Return ``(image, labels)`` warped by augmentation ``name`` (the same geometry for both)."""
    if name.startswith("rot"):
        k = {"rot90": 1, "rot180": 2, "rot270": 3}[name]
        return np.ascontiguousarray(np.rot90(image, k)), np.ascontiguousarray(np.rot90(labels, k))
    if name == "hflip":
        return np.ascontiguousarray(image[:, ::-1]), np.ascontiguousarray(labels[:, ::-1])
    if name == "vflip":
        return np.ascontiguousarray(image[::-1]), np.ascontiguousarray(labels[::-1])
    h, w = labels.shape
    if name == "elastic":
        map_x, map_y = elastic_maps(h, w, rng, options.elastic_alpha, options.elastic_sigma)
    elif name in ("barrel", "pincushion"):
        amount = abs(options.lens_amount) * (1 if name == "barrel" else -1)
        map_x, map_y = lens_maps(h, w, amount)
    else:
        raise ValueError(f"unknown augmentation {name!r}")
    return remap_pair(image, labels, map_x, map_y)


def remap_pair(
    image: np.ndarray, labels: np.ndarray, map_x: np.ndarray, map_y: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Warp image (bilinear) and labels (nearest) with the SAME maps and the same border rule."""
    warped = cv2.remap(image, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)
    warped_labels = cv2.remap(labels, map_x, map_y, cv2.INTER_NEAREST, borderMode=cv2.BORDER_REFLECT_101)
    return warped, warped_labels


def _grid(h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    return xs, ys


def elastic_maps(h: int, w: int, rng: np.random.Generator, alpha: float, sigma: float) -> tuple[np.ndarray, np.ndarray]:
    """Simard-style elastic deformation: smoothed random displacement fields.

    The displacement fades to zero over ``3 * sigma`` at the image edges and every sample stays
    inside the image: the edges stay straight, as in the other warps. Without this, whatever runs
    along an edge (LISC's dark frame) was pulled into the image as curved lines, and samples from
    outside the image came from the border rule.
    """
    scale = max(h, w) / 512.0
    sigma_px, alpha_px = sigma * scale, alpha * scale * scale
    xs, ys = _grid(h, w)
    band = max(1.0, 3.0 * sigma_px)
    taper = np.minimum(np.minimum(xs, w - 1 - xs), np.minimum(ys, h - 1 - ys))
    taper = np.clip(taper / band, 0.0, 1.0)
    fields = []
    for _ in range(2):
        noise = rng.uniform(-1.0, 1.0, size=(h, w)).astype(np.float32)
        fields.append(cv2.GaussianBlur(noise, (0, 0), sigma_px, borderType=cv2.BORDER_REFLECT_101) * alpha_px * taper)
    return np.clip(xs + fields[0], 0, w - 1), np.clip(ys + fields[1], 0, h - 1)


def lens_maps(h: int, w: int, amount: float) -> tuple[np.ndarray, np.ndarray]:
    """Five local lenses applied one after the other: ``amount > 0`` barrel (the centre bulges),
    ``< 0`` pincushion. Inside radius R, an output point at distance r from a lens centre samples
    the source at ``r * (1 - amount * (1 - (r/R)^2))``: continuous at R and monotonic for
    ``|amount| < 0.5``, so nothing folds over."""
    if not abs(amount) < 0.5:
        raise ValueError(f"lens amount must be within (-0.5, 0.5), got {amount}")
    xs, ys = _grid(h, w)
    radius = LENS_RADIUS * w
    # output <- lens 5 <- ... <- lens 1 <- source: follow the output coordinates back to the source
    for fx, fy in reversed(LENS_CENTRES):
        cx, cy = fx * (w - 1), fy * (h - 1)
        dx, dy = xs - cx, ys - cy
        r2 = (dx * dx + dy * dy) / (radius * radius)
        factor = np.where(r2 < 1.0, 1.0 - amount * (1.0 - r2), 1.0).astype(np.float32)
        xs, ys = cx + dx * factor, cy + dy * factor
    return xs.astype(np.float32), ys.astype(np.float32)
