"""Test helpers: a tiny fake LISC download in exactly the documented layout.

Used by this plugin's tests (and usable by anyone testing code that reads LISC); never imported
by the plugin itself. Real LISC data is never needed or shipped.

Every image is flat grey with ONE disc-shaped cell drawn in known colours (cytoplasm and
nucleus); its expert mask marks the same disc with two grey levels (one for basophils), in the
712x568 frame that trims 4 px from every side. Folder names use mixed case, and the tree holds
the noise real copies carry: Thumbs.db, a second expert folder, an image without a mask and a
``mixt`` class.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

W, H = 720, 576
BACKGROUND_BGR = (205, 215, 210)
CYTOPLASM_BGR = (200, 40, 180)
NUCLEUS_BGR = (120, 20, 90)
# class folder names as spelled in this copy (mixed case) -> (mask folder spelling, levels)
CLASSES = {
    "Baso": ("baso", (50,)),
    "eosi": ("Eosi", (75, 100)),
    "LYMP": ("lymp", (125, 150)),
    "Mono": ("MONO", (175, 200)),
    "neut": ("Neut", (225, 255)),
}
PER_CLASS = 7
NO_MASK = ("neut", 8)  # an 8th neutrophil image without an expert mask
EDGE_CELL = ("mono", 1)  # drawn at the bottom-right corner (the original's top-left 512 crop cuts it)


@dataclass(frozen=True)
class FakeCell:
    cx: int  # centre in IMAGE pixels
    cy: int
    radius: int
    nucleus: int  # nucleus radius (0 for single-level masks)


@dataclass(frozen=True)
class FakeLisc:
    root: Path
    cells: dict[str, FakeCell]  # original id (e.g. "mono_1") -> cell


def cell_for(prefix: str, n: int) -> FakeCell:
    """Deterministic cell geometry per original; one sits at the bottom-right edge."""
    if (prefix, n) == EDGE_CELL:
        return FakeCell(W - 48, H - 48, 40, 20)
    rng = np.random.default_rng([n, len(prefix), ord(prefix[0])])
    radius = int(rng.integers(30, 60))
    cx = int(rng.integers(radius + 6, W - radius - 6))  # inside the 4-px frame the expert mask keeps
    cy = int(rng.integers(radius + 6, H - radius - 6))
    return FakeCell(cx, cy, radius, 0 if prefix == "baso" else radius // 2)


def draw(cell: FakeCell) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Image (720x576 BGR) and the cell/nucleus masks in IMAGE coordinates."""
    image = np.empty((H, W, 3), np.uint8)
    image[:] = BACKGROUND_BGR
    cell_mask = np.zeros((H, W), np.uint8)
    nucleus_mask = np.zeros((H, W), np.uint8)
    cv2.circle(cell_mask, (cell.cx, cell.cy), cell.radius, 1, -1)
    if cell.nucleus:
        cv2.circle(nucleus_mask, (cell.cx + 3, cell.cy - 2), cell.nucleus, 1, -1)
    image[cell_mask == 1] = CYTOPLASM_BGR
    image[nucleus_mask == 1] = NUCLEUS_BGR
    return image, cell_mask, nucleus_mask


def expert_mask(cell_mask: np.ndarray, nucleus_mask: np.ndarray, levels: tuple[int, ...]) -> np.ndarray:
    """The grey expert mask in LISC's frame: 712x568, mask (x, y) = image (x + 4, y + 4)."""
    grey = np.zeros(cell_mask.shape, np.uint8)
    grey[cell_mask == 1] = levels[0]
    if len(levels) > 1:
        grey[nucleus_mask == 1] = levels[1]
    return np.ascontiguousarray(grey[4:-4, 4:-4])


def build_fake_lisc(root: Path) -> FakeLisc:
    main = root / "Main Dataset"
    truth = root / "Ground Truth Segmentation"
    cells: dict[str, FakeCell] = {}
    for folder, (mask_folder, levels) in CLASSES.items():
        prefix = folder.lower()
        (main / folder).mkdir(parents=True)
        expert = truth / mask_folder / "areaforexpert1"
        expert.mkdir(parents=True)
        count = PER_CLASS + (1 if prefix == NO_MASK[0] else 0)
        for n in range(1, count + 1):
            cell = cell_for(prefix, n)
            image, cell_mask, nucleus_mask = draw(cell)
            assert cv2.imwrite(str(main / folder / f"{n}.bmp"), image)
            if (prefix, n) != NO_MASK:
                assert cv2.imwrite(str(expert / f"{n}_expert.bmp"), expert_mask(cell_mask, nucleus_mask, levels))
                cells[f"{prefix}_{n}"] = cell
    # noise found in real copies
    (main / "eosi" / "Thumbs.db").write_bytes(b"\x00thumbs")
    other = truth / "Mono" if (truth / "Mono").exists() else truth / "MONO"
    (other / "areaforexpert2").mkdir()
    image, cell_mask, nucleus_mask = draw(cell_for("mono", 2))
    cv2.imwrite(str(other / "areaforexpert2" / "2_expert.bmp"), expert_mask(cell_mask, nucleus_mask, (10, 20)))
    (main / "mixt").mkdir()
    (truth / "Mixt" / "areaforexpert1").mkdir(parents=True)
    image, cell_mask, nucleus_mask = draw(cell_for("mixt", 1))
    cv2.imwrite(str(main / "mixt" / "1.bmp"), image)
    cv2.imwrite(str(truth / "Mixt" / "areaforexpert1" / "1_expert.bmp"), expert_mask(cell_mask, nucleus_mask, (90,)))
    return FakeLisc(root, cells)
