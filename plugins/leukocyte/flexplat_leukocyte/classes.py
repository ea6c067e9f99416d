"""Leukocyte classes, their mask colours and file naming (light: no NumPy/OpenCV here)."""

from __future__ import annotations

import re

GENERATOR_NAME = "flexplat-leukocyte"
GENERATOR_VERSION = "1.1"  # 1.1: splits drawn by flexplat.split_by_original (same seed, other members)

# (file-name prefix = LISC folder name lower-cased, class name, mask colour R,G,B), class index = position + 1
TYPES: tuple[tuple[str, str, tuple[int, int, int]], ...] = (
    ("baso", "basophil", (0, 0, 255)),
    ("eosi", "eosinophil", (0, 255, 0)),
    ("lymp", "lymphocyte", (255, 255, 0)),
    ("mono", "monocyte", (0, 255, 255)),
    ("neut", "neutrophil", (255, 0, 0)),
)
PREFIXES = tuple(prefix for prefix, _, _ in TYPES)
TYPE_NAMES = tuple(name for _, name, _ in TYPES)
BACKGROUND = ("background", (0, 0, 0))

# Part labels used internally before painting: 0 background, 1 cytoplasm, 2 nucleus.
CYTOPLASM, NUCLEUS = 1, 2


def class_table(parts: bool = False) -> list[dict]:
    """The classes a generated dataset uses, in index order: ``[{name, color: [r, g, b]}]``.

    Whole-cell mode (default, the project's classes): background + the 5 types. ``parts`` mode:
    background + for each type ``<type>_cytoplasm`` (colour at half intensity) and
    ``<type>_nucleus`` (the type colour), i.e. indices ``2t-1`` and ``2t`` for type ``t = 1..5``.
    """
    table = [{"name": BACKGROUND[0], "color": list(BACKGROUND[1])}]
    for _, name, color in TYPES:
        if parts:
            table.append({"name": f"{name}_cytoplasm", "color": [c // 2 for c in color]})
            table.append({"name": f"{name}_nucleus", "color": list(color)})
        else:
            table.append({"name": name, "color": list(color)})
    return table


_STEM = re.compile(r"^(?P<original>[A-Za-z]+_\d+)(?:_[A-Za-z0-9]+)*$")


def original_id(stem: str) -> str:
    """The original image a file derives from: ``neut_12_rot90`` -> ``neut_12``.

    Generated files are named ``<prefix>_<n>[_<augmentation>]``; a stem that does not follow
    that pattern is its own original.
    """
    match = _STEM.match(stem)
    return match.group("original") if match else stem


def type_of(original: str) -> str:
    """The class name of an original id (``neut_12`` -> ``neutrophil``)."""
    prefix = original.split("_", 1)[0].lower()
    for p, name, _ in TYPES:
        if p == prefix:
            return name
    raise ValueError(f"{original!r} does not start with a leukocyte prefix ({', '.join(PREFIXES)})")
