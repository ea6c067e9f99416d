"""The real KRD-WBC sample (../shared/datasets/krd-wbc-sample), read with ITS OWN colour map.

Source: KRD-WBC dataset, Mendeley Data, doi:10.17632/jzdj6h7gms.2 (Taha, Alizadeh, Mohammad,
2023), CC BY 4.0. Skipped when the shared folder is absent; its files are never copied here.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml
from click.testing import CliRunner

from flexplat.cli import cli
from flexplat.data.codecs import RgbMaskCodec
from flexplat.specs import ClassInfo

KRD = Path(__file__).resolve().parents[1] / ".." / "shared" / "datasets" / "krd-wbc-sample"
pytestmark = pytest.mark.skipif(not (KRD / "images").is_dir(), reason="KRD-WBC sample not available")

# Colours from the sample's README (they differ from the LISC/leukocyte map).
KRD_CLASSES = [
    ClassInfo("background", (0, 0, 0)),
    ClassInfo("neutrophil", (0, 255, 0)),
    ClassInfo("lymphocyte", (0, 0, 255)),
    ClassInfo("monocyte", (255, 0, 0)),
    ClassInfo("eosinophil", (0, 255, 255)),
    ClassInfo("basophil", (255, 255, 0)),
]

# The cell type of each file. The sample ships no label list besides the masks, so this table was
# recorded by inspecting each mask's single cell colour once (the barrel-distorted files keep the
# type of their source crop); it pins the decoding against colour-map or channel-order mistakes.
KNOWN_TYPE = {
    "1017": "basophil", "1024": "neutrophil", "1025": "lymphocyte", "1083": "monocyte", "1086": "lymphocyte",
    "1092": "neutrophil", "1114": "monocyte", "1124": "neutrophil", "1187": "neutrophil", "1213": "neutrophil",
    "1221": "neutrophil", "1239": "neutrophil", "1248": "neutrophil", "1280": "lymphocyte", "1305": "lymphocyte",
    "1307": "lymphocyte", "1321": "neutrophil", "1345": "neutrophil", "1355": "neutrophil", "1369": "neutrophil",
    "1404": "lymphocyte", "1489": "neutrophil", "1515": "lymphocyte", "1529": "neutrophil",
    "barrdistorted_1001_0.3_0.3_1198": "eosinophil", "barrdistorted_1003_0.3_0.3_1594": "basophil",
}  # fmt: skip
DISTORTED = {"barrdistorted_1001_0.3_0.3_1198", "barrdistorted_1003_0.3_0.3_1594"}


def test_every_pair_decodes_with_its_known_type_and_distorted_edges_are_snapped():
    codec = RgbMaskCodec(KRD_CLASSES, {})
    scan = codec.scan("images", "masks", KRD)
    assert len(scan.pairs) == 26 and not scan.images_without_mask and not scan.masks_without_image
    assert {p.stem for p in scan.pairs} == set(KNOWN_TYPE)
    names = [c.name for c in KRD_CLASSES]
    for pair in scan.pairs:
        image, read = codec.read_image(pair), codec.read_mask(pair)
        assert image.shape == (512, 512, 3) and read.mask.shape == (512, 512)
        present = [names[i] for i in np.unique(read.mask) if i != 0]
        assert present == [KNOWN_TYPE[pair.stem]], pair.stem  # exactly one cell, of its type
        if pair.stem in DISTORTED:
            assert read.snapped > 0, pair.stem  # anti-aliased edge colours were snapped ...
            assert read.snapped < 0.01 * read.mask.size  # ... and they are only edge pixels
        else:
            assert read.snapped == 0, pair.stem


def test_cli_check_reports_26_pairs_and_snapped_edges(tmp_path):
    config = tmp_path / "krd.yaml"
    config.write_text(yaml.safe_dump({"classes": [{"name": c.name, "color": list(c.color)} for c in KRD_CLASSES]}))
    result = CliRunner().invoke(cli, ["data", "check", str(KRD), "--config", str(config)])
    assert result.exit_code == 0, result.output
    assert "OK: 26 pairs" in result.output
    assert "barrdistorted_1001" in result.output and "barrdistorted_1003" in result.output
    for name in ("neutrophil", "lymphocyte", "monocyte", "eosinophil", "basophil"):
        assert name in result.output
