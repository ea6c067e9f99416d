"""Figures a person can look at, drawn with OpenCV (no plotting library needed)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import cv2
import numpy as np

PALETTE = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189), (140, 86, 75)]
FONT = cv2.FONT_HERSHEY_SIMPLEX


def _text(img: np.ndarray, text: str, org: tuple[int, int], scale: float = 0.45, color=(40, 40, 40), thick=1) -> None:
    cv2.putText(img, text, org, FONT, scale, color, thick, cv2.LINE_AA)


def _nice(value: float) -> str:
    if value == 0 or not math.isfinite(value):
        return "0"
    if abs(value) >= 1000 or abs(value) < 0.01:
        return f"{value:.1e}"
    return f"{value:.3g}"


def line_plot(
    series: Mapping[str, Sequence[float]],
    x: Sequence[float],
    title: str,
    xlabel: str = "epoch",
    size: tuple[int, int] = (640, 420),
) -> np.ndarray:
    """An RGB line plot of named series over ``x`` with axes, ticks and a legend."""
    width, height = size
    img = np.full((height, width, 3), 255, np.uint8)
    left, right, top, bottom = 70, 20, 40, 50
    values = [v for s in series.values() for v in s if v is not None and math.isfinite(v)]
    if not values or not x:
        _text(img, f"{title}: no data", (left, height // 2))
        return img
    lo, hi = min(values), max(values)
    if hi - lo < 1e-12:
        lo, hi = lo - 0.5 * (abs(lo) or 1), hi + 0.5 * (abs(hi) or 1)
    pad = 0.05 * (hi - lo)
    lo, hi = lo - pad, hi + pad
    x0, x1 = min(x), max(x)
    if x1 == x0:
        x0, x1 = x0 - 1, x1 + 1

    def px(xv: float, yv: float) -> tuple[int, int]:
        u = left + (xv - x0) / (x1 - x0) * (width - left - right)
        v = top + (hi - yv) / (hi - lo) * (height - top - bottom)
        return int(round(u)), int(round(v))

    cv2.rectangle(img, (left, top), (width - right, height - bottom), (0, 0, 0), 1)
    for i in range(5):
        yv = lo + (hi - lo) * i / 4
        _, v = px(x0, yv)
        cv2.line(img, (left, v), (width - right, v), (225, 225, 225), 1)
        _text(img, _nice(yv), (5, v + 4), 0.4)
    ticks = sorted(set(int(round(x0 + (x1 - x0) * i / 5)) for i in range(6)))
    for xv in ticks:
        u, _ = px(xv, lo)
        _text(img, str(xv), (u - 6, height - bottom + 18), 0.4)
    _text(img, xlabel, (width // 2 - 20, height - 10), 0.45)
    _text(img, title, (left, 25), 0.6, thick=1)
    for i, (name, ys) in enumerate(series.items()):
        color = PALETTE[i % len(PALETTE)]
        points = [px(xv, yv) for xv, yv in zip(x, ys, strict=False) if yv is not None and math.isfinite(yv)]
        for a, b in zip(points, points[1:], strict=False):
            cv2.line(img, a, b, color, 2, cv2.LINE_AA)
        for p in points:
            cv2.circle(img, p, 3, color, -1, cv2.LINE_AA)
        lx, ly = width - right - 170, top + 18 + 18 * i
        cv2.line(img, (lx, ly - 4), (lx + 20, ly - 4), color, 2)
        _text(img, name, (lx + 26, ly), 0.42)
    return img


def confusion_image(matrix: np.ndarray, row_labels: Sequence[str], col_labels: Sequence[str], title: str) -> np.ndarray:
    """An RGB picture of a confusion matrix: rows = truth, columns = prediction, counts in cells."""
    rows, cols = matrix.shape
    cell = 64
    left, top = 130, 120
    width, height = left + cols * cell + 20, top + rows * cell + 40
    img = np.full((height, width, 3), 255, np.uint8)
    _text(img, title, (10, 25), 0.6)
    _text(img, "predicted", (left, 50), 0.45)
    row_sums = matrix.sum(axis=1, keepdims=True).clip(min=1)
    for j, label in enumerate(col_labels):
        org = (left + j * cell + 4, top - 10)
        _text(img, label[:9], org, 0.38)
    for i, label in enumerate(row_labels):
        _text(img, label[:14], (8, top + i * cell + cell // 2 + 5), 0.42)
        for j in range(cols):
            share = matrix[i, j] / row_sums[i, 0]
            shade = int(255 - 180 * share)
            x, y = left + j * cell, top + i * cell
            cv2.rectangle(img, (x, y), (x + cell, y + cell), (shade, shade, 255), -1)
            cv2.rectangle(img, (x, y), (x + cell, y + cell), (150, 150, 150), 1)
            _text(img, str(int(matrix[i, j])), (x + 8, y + cell // 2 + 5), 0.45)
    _text(img, "truth (rows)", (8, top - 10), 0.42)
    return img


def side_by_side(panels: Sequence[np.ndarray], labels: Sequence[str], caption: str) -> np.ndarray:
    """Equal-height RGB panels in a row with a label above each and a caption line on top."""
    height = max(p.shape[0] for p in panels)
    resized = [
        cv2.resize(p, (int(round(p.shape[1] * height / p.shape[0])), height), interpolation=cv2.INTER_NEAREST)
        for p in panels
    ]
    gap, head = 6, 44
    width = sum(p.shape[1] for p in resized) + gap * (len(resized) + 1)
    img = np.full((height + head + gap, width, 3), 255, np.uint8)
    _text(img, caption, (gap, 16), 0.5)
    x = gap
    for panel, label in zip(resized, labels, strict=True):
        _text(img, label, (x, 36), 0.45)
        img[head : head + height, x : x + panel.shape[1]] = panel
        x += panel.shape[1] + gap
    return img
