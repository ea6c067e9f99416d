"""The codec contract: how a dataset on disk becomes (image, class-index mask) pairs.

A codec lists image/mask files, pairs them BY FILE STEM (never by listing order), decodes an
image (``uint8`` RGB) and a mask (``uint8`` class indices), and can write one pair back in its
format. Codecs hold only their classes and options: reading a pair must be thread-safe because
the input pipeline calls it from several tf.data worker threads at once.
"""

from __future__ import annotations

import glob
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from flexplat.data import io
from flexplat.errors import DataError
from flexplat.specs import ClassInfo

_GLOB_CHARS = set("*?[")


@dataclass(frozen=True)
class Pair:
    """One image and its mask, matched by ``stem`` (the file name without extension)."""

    image: Path
    mask: Path
    stem: str


@dataclass
class PairScan:
    """The outcome of listing a split: matched pairs and the files left without a partner."""

    pairs: list[Pair]
    images_without_mask: list[Path] = field(default_factory=list)
    masks_without_image: list[Path] = field(default_factory=list)


@dataclass
class MaskRead:
    """A decoded mask: ``mask`` is H x W ``uint8`` class indices.

    ``snapped`` counts pixels whose stored value was not exactly a class (e.g. anti-aliased
    edge colours) and was mapped to the nearest class; ``notes`` lists conversions applied
    (e.g. "RGBA mask: alpha channel dropped").
    """

    mask: np.ndarray
    snapped: int = 0
    notes: tuple[str, ...] = ()


def pair_by_stem(images: Iterable[Path], masks: Iterable[Path]) -> PairScan:
    """Pair image and mask files by stem; the listing order plays no role.

    A stem present twice among the images (or twice among the masks), e.g. ``a.png`` and
    ``a.jpg`` or the same name in two class folders, raises DataError naming both files.
    Results are sorted by stem / path.
    """
    image_by_stem = _by_stem(images, "image")
    mask_by_stem = _by_stem(masks, "mask")
    pairs = [Pair(image_by_stem[s], mask_by_stem[s], s) for s in sorted(image_by_stem.keys() & mask_by_stem.keys())]
    return PairScan(
        pairs=pairs,
        images_without_mask=sorted(image_by_stem[s] for s in image_by_stem.keys() - mask_by_stem.keys()),
        masks_without_image=sorted(mask_by_stem[s] for s in mask_by_stem.keys() - image_by_stem.keys()),
    )


def _by_stem(paths: Iterable[Path], what: str) -> dict[str, Path]:
    found: dict[str, Path] = {}
    for path in paths:
        path = Path(path)
        other = found.get(path.stem)
        if other is not None:
            first, second = sorted([other, path])
            raise DataError(
                f"two {what} files share the stem '{path.stem}': {first} and {second}; pairing is by file "
                f"name without extension, so stems must be unique across all matched folders - rename or "
                f"remove one"
            )
        found[path.stem] = path
    return found


def has_glob(pattern: str) -> bool:
    """True when ``pattern`` holds a glob wildcard (``*``, ``?`` or ``[``)."""
    return any(ch in _GLOB_CHARS for ch in pattern)


def list_files(pattern: str, root: Path | None, extensions: Sequence[str] = io.IMAGE_EXTENSIONS) -> list[Path]:
    """Files with one of ``extensions`` (case-insensitive) in the folder(s) ``pattern`` names.

    ``pattern`` is a folder or a glob (``train/*/images``), relative to ``root`` unless
    absolute; a glob may also match files directly. Other files (Thumbs.db, .DS_Store,
    hidden files) are ignored. A folder that does not exist, or a glob matching nothing,
    raises DataError naming the resolved path.
    """
    base = Path(pattern).expanduser()
    anchored = not base.is_absolute() and root is not None
    if anchored:
        base = Path(root).expanduser() / base
    exts = {e.lower() for e in extensions}
    if has_glob(pattern):
        # the root itself may hold characters such as '[': only the pattern part is a glob
        expr = str(Path(glob.escape(str(Path(root).expanduser()))) / pattern) if anchored else str(base)
        matches = [Path(p) for p in sorted(glob.glob(expr))]
        if not matches:
            raise DataError(f"{base}: the pattern matches no folder or file")
    else:
        if not base.is_dir():
            raise DataError(f"{base}: no such folder")
        matches = [base]
    files: list[Path] = []
    for match in matches:
        children = sorted(match.iterdir()) if match.is_dir() else [match]
        files.extend(p for p in children if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in exts)
    return files


class Codec(ABC):
    """Base class of dataset codecs; a :class:`flexplat.CodecSpec` factory returns one."""

    name: str = ""
    image_extensions: tuple[str, ...] = io.IMAGE_EXTENSIONS
    mask_extensions: tuple[str, ...] = io.IMAGE_EXTENSIONS

    def __init__(self, classes: Sequence[ClassInfo], options: Mapping[str, Any]) -> None:
        self.classes = list(classes)
        self.options = dict(options)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def scan(self, images: str, masks: str, root: Path | None) -> PairScan:
        """List the image and mask files of one split and pair them by stem."""
        return pair_by_stem(
            list_files(images, root, self.image_extensions), list_files(masks, root, self.mask_extensions)
        )

    def read_image(self, pair: Pair) -> np.ndarray:
        """The image of ``pair`` as ``uint8`` H x W x 3 RGB."""
        return io.read_image(pair.image)

    def split_label(self, pair: Pair) -> str | None:
        """The label that valid/test splits carved out of train are stratified by, e.g. the image's class.

        Called once per training pair, after :meth:`scan`, when ``data.split`` carves splits; it
        must be cheap and must not raise for a bad pair (the quick check reports bad pairs). None
        (the default) means the codec knows no label: carved splits are then stratified by image
        folder in a glob layout (``train/*/images``), or not at all.
        """
        return None

    @abstractmethod
    def read_mask(self, pair: Pair) -> MaskRead:
        """The mask of ``pair`` as class indices; DataError naming the file on bad content."""

    def write(self, image_path: Path, mask_path: Path, image: np.ndarray, mask: np.ndarray) -> None:
        """Write one pair (RGB image, class-index mask) in this codec's format."""
        raise DataError(f"codec '{self.name or type(self).__name__}' cannot write datasets")
