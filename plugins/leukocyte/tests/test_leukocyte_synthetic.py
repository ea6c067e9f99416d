"""The synthetic smear generator: determinism, masks, one typed cell per image, dataset layout."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import yaml
from click.testing import CliRunner
from flexplat_leukocyte.classes import CYTOPLASM, NUCLEUS, TYPES, class_table, original_id
from flexplat_leukocyte.command import generate
from flexplat_leukocyte.synthetic import CELL_RADIUS, render_smear, synthetic_originals

PALETTE = {tuple(c["color"]) for c in class_table()}


def test_render_is_deterministic_under_a_seed():
    a = render_smear(np.random.default_rng([7, 3]), "monocyte", 64)
    b = render_smear(np.random.default_rng([7, 3]), "monocyte", 64)
    c = render_smear(np.random.default_rng([8, 3]), "monocyte", 64)
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    assert not np.array_equal(a[0], c[0])


@pytest.mark.parametrize("cls", list(CELL_RADIUS))
def test_one_whole_leukocyte_per_image(cls):
    for i in range(6):
        image, labels = render_smear(np.random.default_rng([1, i]), cls, 96)
        assert image.shape == (96, 96, 3) and image.dtype == np.uint8
        assert labels.shape == (96, 96) and set(np.unique(labels)) <= {0, CYTOPLASM, NUCLEUS}
        cell = (labels > 0).astype(np.uint8)
        count, _ = cv2.connectedComponents(cell)
        assert count == 2, f"{cls} #{i}: {count - 1} cells"
        # whole cell inside the image, with a size typical of its type (radius scaled to 96 px)
        assert not cell[0].any() and not cell[-1].any() and not cell[:, 0].any() and not cell[:, -1].any()
        lo, hi = CELL_RADIUS[cls]
        radius = np.sqrt(cell.sum() / np.pi) / (96 / 256)
        assert lo * 0.85 < radius < hi * 1.1, (cls, radius)
        if cls == "basophil":
            assert set(np.unique(labels)) == {0, NUCLEUS}  # like LISC's single-level basophil masks
        else:
            assert (labels == NUCLEUS).any() and (labels == CYTOPLASM).any()


def test_the_cell_shows_in_the_image_where_the_mask_is():
    """The leukocyte is stained darker/bluer than the plasma around it, so the mask is not arbitrary."""
    for i, original in enumerate(synthetic_originals(10)):
        image, labels = render_smear(np.random.default_rng([2, i]), original.cls, 128)
        cell = labels > 0
        ring = cv2.dilate(cell.astype(np.uint8), np.ones((9, 9), np.uint8)).astype(bool) & ~cell
        nucleus = labels == NUCLEUS
        blue_minus_red = image[..., 0].astype(float) - image[..., 2]
        assert blue_minus_red[nucleus].mean() > blue_minus_red[ring].mean(), original.id


def test_cli_synthetic_dataset_layout_manifest_and_palette(tmp_path):
    out = tmp_path / "s"
    result = CliRunner().invoke(generate, ["--synthetic", "20", "--out", str(out), "--size", "64", "--quiet"])
    assert result.exit_code == 0, result.output
    manifest = yaml.safe_load((out / "dataset.yaml").read_text())
    assert manifest["generator"]["kind"] == "synthetic"
    assert manifest["options"]["augment"] == []
    ids = [oid for split in ("train", "valid", "test") for oid in manifest["splits"][split]]
    assert sorted(ids) == sorted(o.id for o in synthetic_originals(20))  # each original in exactly one split
    assert {s: manifest["counts"][s]["originals"] for s in manifest["splits"]} == {
        s: len(v) for s, v in manifest["splits"].items()
    }
    total = 0
    for split in ("train", "valid", "test"):
        for path in sorted((out / split / "images").glob("*.png")):
            total += 1
            assert original_id(path.stem) in manifest["splits"][split]
            mask = cv2.imread(str(out / split / "masks" / path.name))[..., ::-1]
            colours = {tuple(int(v) for v in c) for c in np.unique(mask.reshape(-1, 3), axis=0)}
            assert colours <= PALETTE
            expected = next(color for prefix, _, color in TYPES if path.stem.startswith(prefix))
            assert colours == {(0, 0, 0), expected}, path.name
            assert cv2.imread(str(path)).shape == (64, 64, 3)
    assert total == 20


def test_cli_synthetic_augments_train_only_when_asked(tmp_path):
    out = tmp_path / "s"
    args = ["--synthetic", "10", "--out", str(out), "--size", "64", "--augment", "rot90,elastic", "--quiet"]
    result = CliRunner().invoke(generate, args)
    assert result.exit_code == 0, result.output
    manifest = yaml.safe_load((out / "dataset.yaml").read_text())
    train = sorted(p.stem for p in (out / "train" / "images").glob("*.png"))
    assert len(train) == 3 * len(manifest["splits"]["train"])
    assert {s.rsplit("_", 1)[1] for s in train if s.count("_") == 2} == {"rot90", "elastic"}
    for split in ("valid", "test"):
        assert all(p.stem.count("_") == 1 for p in (out / split / "images").glob("*.png"))


def test_synthetic_output_is_identical_for_the_same_seed(tmp_path):
    from flexplat_leukocyte.synthetic import generate_synthetic

    for name in ("a", "b"):
        generate_synthetic(8, tmp_path / name, size=48, seed=5, progress=False)
    files = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*.png"))
    assert len(files) == 16
    for rel in files:
        assert (tmp_path / "a" / rel).read_bytes() == (tmp_path / "b" / rel).read_bytes(), rel


def test_zoom_enlarges_cells_and_is_synthetic_only(tmp_path, fake_lisc):
    def mean_area(zoom: float) -> float:
        return np.mean(
            [(render_smear(np.random.default_rng(i), "lymphocyte", 128, zoom)[1] > 0).sum() for i in range(12)]
        )

    assert mean_area(1.5) == pytest.approx(mean_area(1.0) * 1.5**2, rel=0.12)
    result = CliRunner().invoke(
        generate, ["--source", str(fake_lisc.root), "--out", str(tmp_path / "x"), "--zoom", "2"]
    )
    assert result.exit_code == 2 and "--zoom" in result.output
