"""The Zheng WBC label numbering, class tables and codec options (light: no NumPy/OpenCV here)."""

from __future__ import annotations

import flexplat

# `class_labels.csv` numbering of Zheng et al. 2018 (Dataset 1): label number -> cell type
LABEL_TYPES: dict[int, str] = {1: "neutrophil", 2: "lymphocyte", 3: "monocyte", 4: "eosinophil", 5: "basophil"}

# grey levels of the masks
BACKGROUND_GREY, CYTOPLASM_GREY, NUCLEUS_GREY = 0, 128, 255
GREY_LEVELS = (BACKGROUND_GREY, CYTOPLASM_GREY, NUCLEUS_GREY)

# task "type": the leukocyte project's classes, same order and colours, so models are comparable
TYPE_CLASSES: tuple[tuple[str, tuple[int, int, int]], ...] = (
    ("background", (0, 0, 0)),
    ("basophil", (0, 0, 255)),
    ("eosinophil", (0, 255, 0)),
    ("lymphocyte", (255, 255, 0)),
    ("monocyte", (0, 255, 255)),
    ("neutrophil", (255, 0, 0)),
)

# task "parts": colours are the dataset's own grey levels, so predicted masks look like its masks
PARTS_CLASSES: tuple[tuple[str, tuple[int, int, int]], ...] = (
    ("background", (0, 0, 0)),
    ("cytoplasm", (128, 128, 128)),
    ("nucleus", (255, 255, 255)),
)

TASK_CLASSES = {"type": TYPE_CLASSES, "parts": PARTS_CLASSES}
TASK_PROJECTS = {"type": "zheng-wbc", "parts": "zheng-wbc-parts"}

CODEC_OPTIONS: dict[str, flexplat.Option] = {
    "labels": flexplat.Option(
        "class_labels.csv",
        "CSV of per-image cell types, relative to data.root (header 'image ID,class label'; labels "
        "1 neutrophil, 2 lymphocyte, 3 monocyte, 4 eosinophil, 5 basophil); needed by task 'type'",
    ),
    "task": flexplat.Option(
        "type",
        "type: the whole cell painted with its cell type (background + 5 types, the leukocyte classes); "
        "parts: background / cytoplasm / nucleus (project zheng-wbc-parts)",
        choices=("type", "parts"),
    ),
}


def class_table(task: str) -> list[dict]:
    """The config ``classes`` list of ``task``: ``[{name, color: [r, g, b]}]`` in index order."""
    return [{"name": name, "color": list(color)} for name, color in TASK_CLASSES[task]]


def image_key(text: str) -> str:
    """The id an image is matched by: ``"001"`` (a file stem) and ``"1"`` (a CSV id) are both ``"1"``."""
    text = text.strip()
    return str(int(text)) if text.isdigit() else text
