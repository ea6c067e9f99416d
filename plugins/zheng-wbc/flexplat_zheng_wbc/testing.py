"""Tiny generated datasets in the Zheng layout, for this plugin's tests and yours (loads NumPy/OpenCV).

``write_zheng_dataset(root, n)`` writes ``images/NNN.bmp`` (RGB, sides varying between images),
``masks/NNN.png`` (8-bit grey: 0 background, 128 cytoplasm, 255 nucleus) and
``class_labels.csv`` (``image ID,class label``, IDs without leading zeros, as in the real file).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

import flexplat
from flexplat_zheng_wbc.classes import LABEL_TYPES

# a stain per type, so a model can tell the types apart
_STAIN = {1: (200, 90, 150), 2: (90, 60, 170), 3: (150, 120, 200), 4: (230, 120, 90), 5: (60, 40, 110)}


@dataclass(frozen=True)
class FakeImage:
    """One generated pair: its stem, label number, type name, size (h, w) and pixel counts."""

    stem: str
    label: int
    type: str
    size: tuple[int, int]
    cytoplasm: int
    nucleus: int


def make_cell(size: tuple[int, int], label: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``(RGB image, grey mask 0/128/255)`` of one cell: an elliptical cytoplasm holding a nucleus."""
    rng = np.random.default_rng(seed)
    h, w = size
    image = np.clip(rng.normal((225, 200, 205), 5, (h, w, 3)), 0, 255).astype(np.uint8)
    mask = np.zeros((h, w), np.uint8)
    centre = (w // 2 + int(rng.integers(-2, 3)), h // 2 + int(rng.integers(-2, 3)))
    outer = (max(4, int(w * 0.32)), max(4, int(h * 0.28)))
    inner = (max(2, outer[0] // 2), max(2, outer[1] // 2))
    angle = float(rng.uniform(0, 180))
    cv2.ellipse(mask, centre, outer, angle, 0, 360, 128, -1)
    cv2.ellipse(mask, centre, inner, angle, 0, 360, 255, -1)
    stain = np.asarray(_STAIN[label], np.float64)
    image[mask == 128] = np.clip(0.5 * stain + 110, 0, 255).astype(np.uint8)
    image[mask == 255] = stain.astype(np.uint8)
    return image, mask


def write_zheng_dataset(
    root: str | Path,
    n: int = 10,
    sizes: tuple[tuple[int, int], ...] = ((40, 40), (36, 44), (44, 32)),
    seed: int = 0,
    labels: tuple[int, ...] = (1, 2, 3, 4, 5),
    csv_name: str = "class_labels.csv",
) -> list[FakeImage]:
    """Write ``n`` pairs to ``root`` in the Zheng layout; label numbers cycle through ``labels``.

    Image ``i`` (stem ``f"{i + 1:03d}"``) has size ``sizes[i % len(sizes)]``. Returns what was written.
    """
    root = Path(root)
    (root / "images").mkdir(parents=True, exist_ok=True)
    written = []
    rows = ["image ID,class label"]
    for i in range(n):
        label = labels[i % len(labels)]
        size = sizes[i % len(sizes)]
        stem = f"{i + 1:03d}"
        image, mask = make_cell(size, label, seed * 10_007 + i)
        ok, data = cv2.imencode(".bmp", image[:, :, ::-1])
        if not ok:
            raise RuntimeError("BMP encoding failed")
        (root / "images" / f"{stem}.bmp").write_bytes(data.tobytes())
        flexplat.write_png(root / "masks" / f"{stem}.png", mask)
        rows.append(f"{i + 1},{label}")
        written.append(
            FakeImage(stem, label, LABEL_TYPES[label], size, int((mask == 128).sum()), int((mask == 255).sum()))
        )
    (root / csv_name).write_text("\n".join(rows) + "\n", encoding="utf-8")
    return written
