"""Rendering predictions: colour masks, overlays on the input image and cell outlines."""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from flexplat.data.io import colorize

__all__ = ["colorize", "outline", "overlay", "outline_thickness"]


def outline_thickness(height: int, width: int) -> int:
    """Outline width in pixels: 1 px up to 384 px images, then growing with the image (3 px at 1024)."""
    return max(1, int(round(min(height, width) / 384)))


def outline(index_mask: np.ndarray, thickness: int = 1) -> np.ndarray:
    """Boolean H x W: foreground pixels (index > 0) within ``thickness`` px of a different class.

    Borders between two foreground classes and between foreground and background are drawn on
    the foreground side; the image border itself is not an outline.
    """
    index_mask = np.asarray(index_mask)
    if index_mask.dtype not in (np.uint8, np.uint16):
        index_mask = index_mask.astype(np.uint16)
    kernel = np.ones((2 * thickness + 1, 2 * thickness + 1), np.uint8)
    grown = cv2.dilate(index_mask, kernel, borderType=cv2.BORDER_REPLICATE)
    shrunk = cv2.erode(index_mask, kernel, borderType=cv2.BORDER_REPLICATE)
    return (grown != shrunk) & (index_mask > 0)


def overlay(
    image: np.ndarray,
    index_mask: np.ndarray,
    colors: Sequence[Sequence[int]],
    alpha: float,
    thickness: int | None = None,
) -> np.ndarray:
    """The RGB ``image`` with foreground classes tinted by their colour and outlined.

    Foreground pixels become ``(1 - alpha) * image + alpha * colour``; background (index 0) keeps
    the image as is. Outline pixels (see :func:`outline`) are painted in the class colour.
    """
    if image.shape[:2] != index_mask.shape[:2]:
        raise ValueError(f"overlay: image {image.shape[:2]} and mask {index_mask.shape[:2]} differ in size")
    if image.ndim == 2:
        image = np.repeat(image[:, :, None], 3, axis=2)
    color_mask = colorize(index_mask, colors)
    out = image.copy()
    fg = index_mask > 0
    if fg.any():
        blended = cv2.addWeighted(image, 1.0 - alpha, color_mask, alpha, 0.0)
        out[fg] = blended[fg]
        if thickness is None:
            thickness = outline_thickness(*index_mask.shape[:2])
        edge = outline(index_mask, thickness)
        out[edge] = color_mask[edge]
    return out
