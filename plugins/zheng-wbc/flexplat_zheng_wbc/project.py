"""The ``zheng-wbc`` and ``zheng-wbc-parts`` project specs (default configs are package YAML).

Imported when plugins register (``flexplat list``): keep it light, no NumPy/OpenCV here.
"""

from __future__ import annotations

from pathlib import Path

import flexplat

_HERE = Path(__file__).resolve().parent

DATA_HINT = """\
Data: WBC Dataset 1 of X. Zheng, Y. Wang, G. Wang, J. Liu, "Fast and robust
segmentation of white blood cell images by self-supervised learning", Micron 107
(2018) 55-71; courtesy of Jiangxi Tecom Science Corporation, China. GNU GPL v3:
flexplat never ships it. Get the folder "Dataset 1" of the GitHub repository
zxaoyou/segmentation_WBC (300 BMP images, grey masks, class_labels.csv), then:
  flexplat data check zheng-wbc --data "path/to/Dataset 1"
  flexplat train zheng-wbc --data "path/to/Dataset 1"
  flexplat train zheng-wbc-parts --data "path/to/Dataset 1"   (cytoplasm/nucleus)"""


CONFIG = flexplat.load_yaml(_HERE / "zheng-wbc.yaml")
PARTS_CONFIG = flexplat.merge_configs(CONFIG, flexplat.load_yaml(_HERE / "zheng-wbc-parts.yaml"))

PROJECT = flexplat.ProjectSpec(
    name="zheng-wbc",
    description="Zheng et al. 2018 white blood cells (300 real images): background + 5 types, the whole cell "
    "painted with its type colour (leukocyte classes and colours)",
    config=CONFIG,
    data_hint=DATA_HINT,
    object_label="cell",
    class_label="cell type",
)

PARTS_PROJECT = flexplat.ProjectSpec(
    name="zheng-wbc-parts",
    description="Zheng et al. 2018 white blood cells (300 real images): background / cytoplasm / nucleus",
    config=PARTS_CONFIG,
    data_hint=DATA_HINT,
    object_label="cell",
    class_label="cell part",
)
