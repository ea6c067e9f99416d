"""Reading the raw LISC download and turning it into a flexplat dataset.

Raw layout (see projects/leukocyte/README.md)::

    <LISC>/Main Dataset/<Class>/<n>.bmp                                      720x576 colour
    <LISC>/Ground Truth Segmentation/<Class>/areaforexpert1/<n>_expert.bmp   712x568 grey

Folder names are matched case-insensitively (ignoring spaces/underscores); ``mixt`` and unknown
folders are skipped, files that do not match the patterns are ignored (all reported). An expert
mask is the image with 4 px trimmed on each side: it is padded back by 4 px so mask pixel
(x, y) lands on image pixel (x + 4, y + 4). Any non-zero pixel is cell; when the mask has two or
more levels the highest is nucleus, the rest cytoplasm; a single-level mask (basophils) is the
whole cell, labelled nucleus in ``--parts`` mode.

Framing: each image is cropped to a square of side ``min(H, W)`` (576 for LISC) placed as
centrally on the cell as the image allows, grown (edge-replicated) only if the cell plus a
margin were larger, then resized to ``size``. The whole cell is always inside, and every image
keeps the same scale (cell sizes stay comparable between types).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from flexplat import DataError
from flexplat_leukocyte import warp
from flexplat_leukocyte.classes import CYTOPLASM, NUCLEUS, TYPES
from flexplat_leukocyte.dataset import GenerateOptions, Original, SkipSample, write_dataset

MAIN_DIR = "Main Dataset"
TRUTH_DIR = "Ground Truth Segmentation"
EXPERT_DIR = "areaforexpert1"
MASK_BORDER = 4
CELL_MARGIN = 8
DEFAULT_SIZE = 512
DEFAULT_AUGMENT = warp.AUGMENTATIONS
_IMAGE = re.compile(r"^(\d+)\.bmp$", re.IGNORECASE)
_MASK = re.compile(r"^(\d+)_expert\.bmp$", re.IGNORECASE)


@dataclass(frozen=True)
class LiscItem:
    """One usable LISC original: image and expert mask paths."""

    id: str
    cls: str
    image: Path
    mask: Path


@dataclass
class LiscScan:
    """What a LISC folder holds: usable originals and everything left out (with reasons)."""

    items: list[LiscItem] = field(default_factory=list)
    no_mask: list[str] = field(default_factory=list)
    mask_without_image: list[str] = field(default_factory=list)
    skipped_folders: list[str] = field(default_factory=list)
    ignored_files: list[str] = field(default_factory=list)


def _norm(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


def _child(folder: Path, name: str) -> Path | None:
    """The sub-folder of ``folder`` called ``name``, ignoring case, spaces and underscores."""
    wanted = _norm(name)
    matches = sorted(p for p in folder.iterdir() if p.is_dir() and _norm(p.name) == wanted)
    return matches[0] if matches else None


def _class_folders(folder: Path, scan: LiscScan, root: Path) -> dict[str, Path]:
    """Map file prefix (baso, eosi, ...) -> class folder; record mixt and unknown folders."""
    found: dict[str, Path] = {}
    for path in sorted(p for p in folder.iterdir() if p.is_dir()):
        name = _norm(path.name)
        prefix = next((p for p, _, _ in TYPES if name.startswith(p)), None)
        if prefix is None or prefix in found:
            scan.skipped_folders.append(str(path.relative_to(root)))
        else:
            found[prefix] = path
    return found


def scan_lisc(source: Path) -> LiscScan:
    """List the usable LISC originals under ``source`` (images that have an expert mask)."""
    source = Path(source)
    if not source.is_dir():
        raise DataError(f"--source {source}: not a folder; point it at the unpacked LISC download")
    main = _child(source, MAIN_DIR)
    truth = _child(source, TRUTH_DIR)
    if main is None or truth is None:
        missing = MAIN_DIR if main is None else TRUTH_DIR
        raise DataError(
            f"--source {source}: no '{missing}' folder; expected the LISC layout '{MAIN_DIR}/<Class>/<n>.bmp' "
            f"and '{TRUTH_DIR}/<Class>/{EXPERT_DIR}/<n>_expert.bmp'"
        )
    scan = LiscScan()
    images = _class_folders(main, scan, source)
    masks = _class_folders(truth, scan, source)
    for prefix, cls, _ in TYPES:
        image_files: dict[int, Path] = {}  # by number: "07.bmp" matches "7_expert.bmp"
        if prefix in images:
            for path in sorted(images[prefix].iterdir()):
                match = _IMAGE.match(path.name) if path.is_file() else None
                if match:
                    image_files[int(match.group(1))] = path
                else:
                    scan.ignored_files.append(str(path.relative_to(source)))
        mask_files: dict[int, Path] = {}
        expert = _child(masks[prefix], EXPERT_DIR) if prefix in masks else None
        if prefix in masks:
            for path in sorted(masks[prefix].iterdir()):
                if path != expert:
                    scan.ignored_files.append(str(path.relative_to(source)))
        if expert is not None:
            for path in sorted(expert.iterdir()):
                match = _MASK.match(path.name) if path.is_file() else None
                if match:
                    mask_files[int(match.group(1))] = path
                else:
                    scan.ignored_files.append(str(path.relative_to(source)))
        for number in sorted(image_files):
            oid = f"{prefix}_{number}"
            if number in mask_files:
                scan.items.append(LiscItem(oid, cls, image_files[number], mask_files[number]))
            else:
                scan.no_mask.append(oid)
        scan.mask_without_image += [f"{prefix}_{n}" for n in sorted(mask_files) if n not in image_files]
    return scan


def read_pair(item: LiscItem) -> tuple[np.ndarray, np.ndarray, list[int]]:
    """Read one original: BGR image, aligned part labels (0/1/2) and the mask's grey levels."""
    image = cv2.imread(str(item.image), cv2.IMREAD_COLOR)
    if image is None:
        raise SkipSample(f"{item.image}: unreadable image")
    grey = cv2.imread(str(item.mask), cv2.IMREAD_GRAYSCALE)
    if grey is None:
        raise SkipSample(f"{item.mask}: unreadable mask")
    (h, w), (mh, mw) = image.shape[:2], grey.shape
    if (mh, mw) == (h - 2 * MASK_BORDER, w - 2 * MASK_BORDER):
        grey = cv2.copyMakeBorder(grey, *(MASK_BORDER,) * 4, cv2.BORDER_CONSTANT, value=0)
    elif (mh, mw) != (h, w):
        raise SkipSample(
            f"{item.mask}: mask is {mw}x{mh} but image is {w}x{h}; expected {w - 8}x{h - 8} (4 px trimmed per side)"
        )
    levels = [int(v) for v in np.unique(grey[grey > 0])]
    if not levels:
        raise SkipSample(f"{item.mask}: empty mask (no cell pixels)")
    labels = np.zeros(grey.shape, np.uint8)
    if len(levels) == 1:
        labels[grey > 0] = NUCLEUS
    else:
        labels[grey > 0] = CYTOPLASM
        labels[grey == levels[-1]] = NUCLEUS
    return image, labels, levels


def frame_cell(
    image: np.ndarray, labels: np.ndarray, size: int, margin: int = CELL_MARGIN
) -> tuple[np.ndarray, np.ndarray, tuple[int, int, int]]:
    """Crop a square that contains the whole cell (see module doc) and resize it to ``size``.

    Returns the image, the labels and the crop ``(x0, y0, side)`` in source pixels.
    """
    h, w = labels.shape
    ys, xs = np.nonzero(labels)
    x_lo, x_hi, y_lo, y_hi = int(xs.min()), int(xs.max()) + 1, int(ys.min()), int(ys.max()) + 1
    side = max(min(h, w), x_hi - x_lo + 2 * margin, y_hi - y_lo + 2 * margin)
    x0 = _place(x_lo, x_hi, side, w)
    y0 = _place(y_lo, y_hi, side, h)
    pad = max(0, -x0, -y0, x0 + side - w, y0 + side - h)
    if pad:
        image = cv2.copyMakeBorder(image, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
        labels = cv2.copyMakeBorder(labels, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=0)
    crop = image[y0 + pad : y0 + pad + side, x0 + pad : x0 + pad + side]
    crop_labels = labels[y0 + pad : y0 + pad + side, x0 + pad : x0 + pad + side]
    return resize_pair(crop, crop_labels, size) + ((x0, y0, side),)


def _place(lo: int, hi: int, side: int, length: int) -> int:
    """Start of a window of ``side`` centred on [lo, hi), shifted to stay inside [0, length) if it fits."""
    start = (lo + hi - side) // 2
    if side <= length:
        start = min(max(start, 0), length - side)
    return start


def resize_pair(image: np.ndarray, labels: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Resize a square image and its labels to ``size``; labels by area-weighted vote per class,
    so the mask boundary follows the resized image (no half-pixel shift of nearest neighbour)."""
    if image.shape[0] == size:
        return image, labels
    down = size < image.shape[0]
    interp = cv2.INTER_AREA if down else cv2.INTER_LINEAR
    resized = cv2.resize(image, (size, size), interpolation=interp)
    n = int(labels.max()) + 1
    votes = np.stack(
        [cv2.resize((labels == k).astype(np.float32), (size, size), interpolation=interp) for k in range(n)], -1
    )
    return resized, votes.argmax(-1).astype(np.uint8)


def generate_lisc(
    source: Path,
    out: Path,
    *,
    size: int = DEFAULT_SIZE,
    seed: int = 0,
    split: tuple[float, float, float] = (0.70, 0.15, 0.15),
    augment: Sequence[str] = DEFAULT_AUGMENT,
    parts: bool = False,
    warp_options: warp.WarpOptions | None = None,
    overwrite: bool = False,
    progress: bool = True,
) -> dict:
    """Build a flexplat dataset at ``out`` from the raw LISC folder ``source``; returns the manifest."""
    source = Path(source).expanduser().resolve()
    scan = scan_lisc(source)
    if not scan.items:
        raise DataError(
            f"--source {source}: no usable image (an image needs '{TRUTH_DIR}/<Class>/{EXPERT_DIR}/<n>_expert.bmp'); "
            f"{len(scan.no_mask)} image(s) without a mask"
        )
    items = {item.id: item for item in scan.items}
    crops: dict[str, list[int]] = {}
    levels: dict[str, set[tuple[int, ...]]] = {}

    def load(original: Original) -> tuple[np.ndarray, np.ndarray]:
        image, labels, found = read_pair(items[original.id])
        levels.setdefault(original.cls, set()).add(tuple(found))
        image, labels, crop = frame_cell(image, labels, size)
        crops[original.id] = list(crop)
        return image, labels

    options = GenerateOptions(size, seed, split, tuple(augment), parts, warp_options or warp.WarpOptions())
    skipped = {
        "no_mask": scan.no_mask,
        "mask_without_image": scan.mask_without_image,
        "folders": scan.skipped_folders,
        "ignored_files": scan.ignored_files,
    }

    def extra() -> dict:
        return {
            "mask_levels": {cls: sorted(list(v) for v in found) for cls, found in sorted(levels.items())},
            "crops": {
                "units": "[x0, y0, side] of the square cut from the source image, in its pixels",
                "by_original": crops,
            },
        }

    return write_dataset(
        out,
        [Original(i.id, i.cls) for i in scan.items],
        load,
        options,
        kind="lisc",
        source=str(source),
        overwrite=overwrite,
        progress=progress,
        extra=extra,
        skipped=skipped,
    )
