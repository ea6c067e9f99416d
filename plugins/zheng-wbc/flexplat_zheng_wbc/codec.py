"""The ``zheng-wbc`` codec: BMP images + grey part masks (0/128/255) + a per-image cell-type CSV.

Imported by the codec factory only (it loads NumPy), never at ``flexplat list`` time.
"""

from __future__ import annotations

import csv
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

import flexplat
from flexplat import ClassInfo, ConfigError, DataError, MaskRead, Pair, PairScan
from flexplat_zheng_wbc.classes import (
    CODEC_OPTIONS,
    CYTOPLASM_GREY,
    GREY_LEVELS,
    LABEL_TYPES,
    NUCLEUS_GREY,
    TASK_CLASSES,
    TASK_PROJECTS,
    image_key,
)

_LABEL_HELP = ", ".join(f"{n} {t}" for n, t in LABEL_TYPES.items())


def read_labels(path: Path) -> dict[str, str]:
    """Read a Zheng ``class_labels.csv``: image key (see :func:`image_key`) -> cell-type name.

    A first row whose label is not a number is a header. Blank lines are ignored. A label
    outside 1..5, a short row or an image listed twice with different labels raises DataError
    naming the file and line.
    """
    try:
        text = Path(path).read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise DataError(
            f"{path}: label file not found; task 'type' needs the per-image cell types (set "
            f"data.codec_options.labels to the CSV, relative to data.root)"
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: cannot read the label file: {exc}") from None
    labels: dict[str, str] = {}
    where: dict[str, int] = {}
    first = True
    for line, row in enumerate(csv.reader(text.splitlines()), start=1):
        if not row or not "".join(row).strip():
            continue
        header, first = first, False
        if len(row) < 2:
            raise DataError(f"{path}, line {line}: expected 'image ID,class label', got {','.join(row)!r}")
        raw = row[1].strip()
        if not raw.lstrip("-").isdigit():
            if header:
                continue
            raise DataError(f"{path}, line {line}: class label {raw!r} is not a number ({_LABEL_HELP})")
        number = int(raw)
        if number not in LABEL_TYPES:
            raise DataError(f"{path}, line {line}: class label {number} is not one of {_LABEL_HELP}")
        key = image_key(row[0])
        if key in labels and labels[key] != LABEL_TYPES[number]:
            raise DataError(
                f"{path}, line {line}: image {row[0].strip()!r} is labelled {LABEL_TYPES[number]} here but "
                f"{labels[key]} on line {where[key]}; keep one row per image"
            )
        labels[key] = LABEL_TYPES[number]
        where.setdefault(key, line)
    if not labels:
        raise DataError(f"{path}: the label file holds no rows ('image ID,class label')")
    return labels


class ZhengCodec(flexplat.Codec):
    """Images ``*.bmp`` + grey masks ``*.png`` paired by stem, types from a CSV read once per file.

    Task ``type``: every cell pixel (grey > 0) takes the class of the image's cell type; task
    ``parts``: 128 is cytoplasm and 255 nucleus. Classes are matched by NAME, so the config must
    list the task's classes (any order after background). The label CSV is read in :meth:`scan`
    (it is relative to ``data.root``); afterwards reads only look it up, so they are thread-safe.
    """

    name = "zheng-wbc"
    image_extensions = (".bmp",)
    mask_extensions = (".png",)

    def __init__(self, classes: Sequence[ClassInfo], options: Mapping[str, Any]) -> None:
        super().__init__(classes, flexplat.validate_options(CODEC_OPTIONS, options, "data.codec_options"))
        self.task: str = self.options["task"]
        wanted = [name for name, _ in TASK_CLASSES[self.task]]
        names = [c.name for c in self.classes]
        if not names or names[0] != "background" or sorted(names) != sorted(wanted):
            other = next(t for t in TASK_CLASSES if t != self.task)
            hint = (
                f" (these are the classes of task '{other}': use project {TASK_PROJECTS[other]} or set "
                f"data.codec_options.task={other})"
                if sorted(names) == sorted(n for n, _ in TASK_CLASSES[other])
                else ""
            )
            raise ConfigError(
                f"data.codec_options.task: task '{self.task}' of codec zheng-wbc needs the classes "
                f"{', '.join(wanted)} (background first), but the config lists {', '.join(names) or 'none'}{hint}. "
                f"Use project {TASK_PROJECTS[self.task]}, whose defaults list them."
            )
        self.index = {name: i for i, name in enumerate(names)}
        # grey level -> class index (parts); -1 marks grey levels that are not allowed
        self._parts = np.full(256, -1, np.int16)
        self._parts[list(GREY_LEVELS)] = [0, self.index.get("cytoplasm", 0), self.index.get("nucleus", 0)]
        self._labels: dict[str, str] | None = None
        self._labels_path: Path | None = None
        self._lock = threading.Lock()

    # -- labels ---------------------------------------------------------------------------------
    def labels_path(self, root: Path | None) -> Path:
        """The label CSV: ``labels`` resolved against ``root`` (data.root) unless absolute."""
        path = Path(self.options["labels"]).expanduser()
        return path if path.is_absolute() or root is None else Path(root).expanduser() / path

    def load_labels(self, root: Path | None) -> dict[str, str] | None:
        """Read the label CSV under ``root`` once (task ``parts``: only if it exists)."""
        path = self.labels_path(root)
        with self._lock:
            if self._labels_path != path:
                if self.task == "parts" and not path.is_file():
                    self._labels = None
                else:
                    self._labels = read_labels(path)
                self._labels_path = path
            return self._labels

    def scan(self, images: str, masks: str, root: Path | None) -> PairScan:
        self.load_labels(root)
        return super().scan(images, masks, root)

    def cell_type(self, pair: Pair) -> str:
        """The cell-type name of ``pair``'s image; DataError when the CSV has no row for it."""
        if self._labels_path is None:
            raise DataError(f"codec zheng-wbc: no label file read yet; list the pairs with scan() first ({pair.image})")
        labels = self._labels or {}
        found = labels.get(image_key(pair.stem))
        if found is None:
            raise DataError(
                f"{pair.image}: no cell-type label for image ID {image_key(pair.stem)!r} in {self._labels_path}; "
                f"add a row '{image_key(pair.stem)},<label>' ({_LABEL_HELP}), remove the image, or set "
                f"data.lenient: true to skip it"
            )
        return found

    def split_label(self, pair: Pair) -> str | None:
        """The image's cell type (stratifies carved valid/test splits); None when unknown."""
        return (self._labels or {}).get(image_key(pair.stem))

    # -- masks ----------------------------------------------------------------------------------
    def read_mask(self, pair: Pair) -> MaskRead:
        grey = flexplat.read_gray(pair.mask)
        if grey.dtype != np.uint8:
            raise DataError(f"{pair.mask}: 16-bit mask; zheng-wbc masks are 8-bit grey (0, 128, 255)")
        counts = np.bincount(grey.reshape(-1), minlength=256)
        bad = [int(v) for v in np.flatnonzero(counts) if v not in GREY_LEVELS]
        if bad:
            shown = ", ".join(f"{v} ({counts[v]} px)" for v in bad[:8]) + (" ..." if len(bad) > 8 else "")
            raise DataError(
                f"{pair.mask}: unexpected grey levels {shown}; zheng-wbc masks hold only 0 (background), "
                f"{CYTOPLASM_GREY} (cytoplasm) and {NUCLEUS_GREY} (nucleus)"
            )
        if self.task == "parts":
            return MaskRead(self._parts[grey].astype(np.uint8))
        index = self.index[self.cell_type(pair)]
        return MaskRead(np.where(grey > 0, np.uint8(index), np.uint8(0)))
