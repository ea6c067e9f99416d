"""The synthetic smear generator: determinism, masks, one typed cell per image, dataset layout."""

from __future__ import annotations

from dataclasses import replace

import cv2
import numpy as np
import pytest
import yaml
from click.testing import CliRunner
from flexplat_leukocyte.classes import CYTOPLASM, NUCLEUS, TYPES, class_table, original_id
from flexplat_leukocyte.command import generate
from flexplat_leukocyte.synthetic import (
    CELL_RADIUS,
    PALETTES,
    REFERENCE_RADIUS,
    Randomization,
    draw_smear,
    recolour,
    render_smear,
    sample_style,
    synthetic_originals,
)

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
    """The nucleus is darker than the plasma and red cells around the cell, and bluer (but for an
    eosinophil's, seen through orange granules), so the mask is not arbitrary."""
    for i, original in enumerate(synthetic_originals(10)):
        image, labels = render_smear(np.random.default_rng([2, i]), original.cls, 128)
        cell = labels > 0
        ring = cv2.dilate(cell.astype(np.uint8), np.ones((9, 9), np.uint8)).astype(bool) & ~cell
        nucleus = labels == NUCLEUS
        brightness = image.astype(float).sum(-1)
        assert brightness[nucleus].mean() < brightness[ring].mean(), original.id
        if original.cls != "eosinophil":
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


def test_disk_full_while_generating_leaves_the_previous_dataset_intact(tmp_path):
    """A real EFBIG: the generator runs in a subprocess whose files may not exceed 2 KB."""
    import resource
    import signal
    import subprocess
    import sys

    out = tmp_path / "synth"
    args = [sys.executable, "-m", "flexplat", "generate", "leukocyte", "--synthetic", "6", "--size", "64"]
    assert subprocess.run([*args, "--out", str(out), "--quiet"], capture_output=True, timeout=300).returncode == 0
    before = sorted(p.relative_to(out) for p in out.rglob("*"))

    def limit() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (2048, 2048))

    command = [*args, "--seed", "1", "--out", str(out), "--overwrite", "--quiet"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, preexec_fn=limit)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "cannot write the dataset (File too large" in result.stderr and "was left as it was" in result.stderr
    assert sorted(p.relative_to(out) for p in out.rglob("*")) == before
    assert [p.name for p in tmp_path.iterdir()] == ["synth"]  # the staging folder was removed


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


# --- domain randomisation (the demo's smears) ---

RANDOM = Randomization()


def test_randomised_render_is_deterministic_under_a_seed():
    a = render_smear(np.random.default_rng([7, 3]), "neutrophil", 64, randomization=RANDOM)
    b = render_smear(np.random.default_rng([7, 3]), "neutrophil", 64, randomization=RANDOM)
    c = render_smear(np.random.default_rng([8, 3]), "neutrophil", 64, randomization=RANDOM)
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    assert not np.array_equal(a[0], c[0])
    classic = render_smear(np.random.default_rng([7, 3]), "neutrophil", 64)
    assert not np.array_equal(a[0], classic[0])


@pytest.mark.parametrize("cls", list(CELL_RADIUS))
def test_randomised_masks_cover_exactly_the_drawn_cell(cls):
    """Drawn again without the leukocyte's stains (same seed, same style), the image changes only on
    the masked cell and its one-pixel anti-aliased edge (sharp optics), and almost everywhere on it;
    also when the cell is cut off by the image edge."""
    for i, spec in enumerate([Randomization(cut_off=0.0)] * 2 + [Randomization(cut_off=1.0)] * 2):
        style = sample_style(np.random.default_rng([3, i]), cls, 96, randomization=spec)
        for blur, reach in ((1e-3, 1), (style.blur, int(np.ceil(3 * style.blur)) + 1)):
            sharp = replace(style, blur=blur)
            image, labels = draw_smear(np.random.default_rng([4, i]), cls, 96, sharp)
            zero = np.zeros(3, np.float32)
            bare = replace(sharp, nucleus=zero, cytoplasm=zero, granules=zero, red_cell_under=0.0)
            empty, _ = draw_smear(np.random.default_rng([4, i]), cls, 96, bare)
            changed = np.abs(image.astype(int) - empty).max(-1)
            cell = labels > 0
            near = cv2.dilate(cell.astype(np.uint8), np.ones((2 * reach + 1,) * 2, np.uint8)).astype(bool)
            assert not (changed[~near] > 2).any(), (cls, i, blur)
            assert (changed[cell] > 2).mean() > 0.95, (cls, i, blur)
        count, _ = cv2.connectedComponents(cell.astype(np.uint8))
        assert count == 2
        if style.whole_cell:
            assert not (cell[0].any() or cell[-1].any() or cell[:, 0].any() or cell[:, -1].any())


def test_some_randomised_cells_are_cut_off_by_the_edge_as_in_a_tile():
    def touching(spec: Randomization) -> int:
        found = 0
        for i, original in enumerate(synthetic_originals(20)):
            cell = render_smear(np.random.default_rng([12, i]), original.cls, 64, randomization=spec)[1] > 0
            assert cell.any()
            found += bool(cell[0].any() or cell[-1].any() or cell[:, 0].any() or cell[:, -1].any())
        return found

    assert touching(Randomization(cut_off=0.0)) == 0
    assert touching(Randomization(cut_off=1.0)) >= 5
    assert 0 < touching(Randomization()) < 20


def test_randomised_cell_size_follows_the_cell_fraction():
    """The leukocyte's diameter relative to the image follows Randomization.cell_fraction (times the
    type's size relative to a mid-sized cell), at any image size; a cell too big is drawn as large as fits."""
    for fraction in (0.2, 0.45):
        spec = Randomization(cell_fraction=(fraction, fraction), cut_off=0.0)
        for size in (64, 160):
            for i, original in enumerate(synthetic_originals(5)):
                labels = render_smear(np.random.default_rng([5, i]), original.cls, size, randomization=spec)[1]
                diameter = 2 * np.sqrt((labels > 0).sum() / np.pi) / size
                lo, hi = (fraction * r / REFERENCE_RADIUS for r in CELL_RADIUS[original.cls])
                assert lo * 0.85 < diameter < hi * 1.15, (fraction, size, original.cls, diameter)
    for i, original in enumerate(synthetic_originals(5)):
        huge = Randomization(cell_fraction=(3.0, 3.0), cut_off=0.0)
        labels = render_smear(np.random.default_rng([6, i]), original.cls, 64, randomization=huge)[1]
        cell = labels > 0
        assert cell.mean() > 0.3 and not (cell[0].any() or cell[-1].any() or cell[:, 0].any() or cell[:, -1].any())


def test_randomised_styles_stay_within_their_ranges():
    spec = Randomization()
    blurs, noises, coverages, lights = [], [], [], []
    for i in range(60):
        cls = list(CELL_RADIUS)[i % 5]
        style = sample_style(np.random.default_rng([9, i]), cls, 128, randomization=spec)
        u = 128 / 256 * style.zoom
        blurs.append(style.blur / u)
        noises.append(style.noise)
        coverages.append(style.red_cell_coverage)
        lights.append(style.light)
        assert spec.outline[0] <= style.outline <= spec.outline[1]
        assert spec.red_cell_clearance[0] <= style.red_cell_clearance <= spec.red_cell_clearance[1]
        assert all((od >= 0).all() for od in (style.nucleus, style.cytoplasm, style.red_cell, style.granules))
    assert spec.blur[0] <= min(blurs) and max(blurs) <= spec.blur[1]
    assert spec.noise[0] <= min(noises) and max(noises) <= spec.noise[1]
    assert spec.red_cell_coverage[0] <= min(coverages) and max(coverages) <= spec.red_cell_coverage[1]
    assert max(coverages) - min(coverages) > 0.6  # sparse to crowded, not one density
    brightest = max(float(p.light.max()) for p in PALETTES.values()) * (1 + spec.light_tint) * spec.exposure[1]
    assert max(float(light.max()) for light in lights) <= brightest
    with pytest.raises(ValueError, match="palettes"):
        Randomization(palettes=("sepia",))


def test_randomised_red_cells_range_from_none_to_crowded():
    def darkened(coverage: float) -> float:
        spec = Randomization(red_cell_coverage=(coverage, coverage), red_cell_density=(1.0, 1.0), texture=(0.0, 0.0))
        fractions = []
        for i in range(4):
            style = sample_style(np.random.default_rng([10, i]), "lymphocyte", 96, randomization=spec)
            image, labels = draw_smear(np.random.default_rng([11, i]), "lymphocyte", 96, style)
            bare, _ = draw_smear(np.random.default_rng([11, i]), "lymphocyte", 96, replace(style, red_cell=np.zeros(3)))
            fractions.append((np.abs(image.astype(int) - bare).max(-1) > 10)[labels == 0].mean())
        return float(np.mean(fractions))

    none, sparse, crowded = darkened(0.0), darkened(0.25), darkened(0.9)
    assert none == 0.0 < sparse < crowded and crowded > 0.35


def test_randomised_stains_keep_their_colour_when_not_rotated():
    od = np.array([0.3, 0.6, 0.2], np.float32)
    assert np.allclose(recolour(od, 0.0, 1.0, 1.0), od)
    assert np.allclose(recolour(od, 0.0, 0.0, 2.0), np.full(3, 2 * od.mean()))  # no chroma: grey
    turned = recolour(od, np.radians(120), 1.0, 1.0)  # a third of a turn permutes the channels' chroma
    assert np.allclose(turned, od[[2, 0, 1]], atol=1e-6)


def test_cli_randomize_records_the_ranges(tmp_path):
    out = tmp_path / "r"
    args = ["--synthetic", "5", "--out", str(out), "--size", "48", "--randomize", "--quiet"]
    assert CliRunner().invoke(generate, args).exit_code == 0
    record = yaml.safe_load((out / "dataset.yaml").read_text())["synthetic"]
    assert record["randomization"]["cell_fraction"] == list(Randomization().cell_fraction)
    classic = tmp_path / "c"
    assert (
        CliRunner().invoke(generate, ["--synthetic", "5", "--out", str(classic), "--size", "48", "--quiet"]).exit_code
        == 0
    )
    assert yaml.safe_load((classic / "dataset.yaml").read_text())["synthetic"]["randomization"] is None


def test_a_share_of_randomised_smears_keeps_the_classic_look_at_a_random_scale():
    always = [
        sample_style(np.random.default_rng([13, i]), "monocyte", 128, randomization=Randomization(classic=1.0))
        for i in range(5)
    ]
    assert all(s.outline == 1.0 and s.texture == 0.0 and s.whole_cell for s in always)
    assert len({round(s.zoom, 6) for s in always}) == 5
    never = [
        sample_style(np.random.default_rng([14, i]), "monocyte", 128, randomization=Randomization(classic=0.0))
        for i in range(20)
    ]
    assert all(s.texture > 0.0 for s in never)
    default = [sample_style(np.random.default_rng([15, i]), "monocyte", 128, randomization=RANDOM) for i in range(100)]
    assert 8 <= sum(s.texture == 0.0 for s in default) <= 35  # about Randomization.classic = 20 %


def test_blood_smear_background_has_red_cells_sized_against_the_object_and_no_leukocyte():
    from flexplat import get_registry

    render = get_registry().get("background", "blood-smear").render
    fields = [render(np.random.default_rng([5, i]), (72, 96), 40.0) for i in range(12)]
    assert all(f.shape == (72, 96, 3) and f.dtype == np.uint8 for f in fields)
    again = render(np.random.default_rng([5, 0]), (72, 96), 40.0)
    assert np.array_equal(fields[0], again)  # reproducible from the generator
    # no leukocyte: nothing as dark as a nucleus; red cells: a share of clearly darker pixels than the glass
    grey = np.stack([cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) for f in fields]).astype(float)
    glass = np.percentile(grey.reshape(12, -1), 95, axis=1)[:, None]
    darker = (grey.reshape(12, -1) < glass - 25).mean(axis=1)
    assert np.median(darker) > 0.1
    # the same draw for 3x larger objects: red cells 3x as wide, so about a third of the outline per area
    edges = [_edge_density(render(np.random.default_rng(1), (256, 256), d)) for d in (24.0, 72.0)]
    assert edges[0] > 1.5 * edges[1]  # (noise and plasma texture add edges that do not scale)


def _edge_density(field: np.ndarray) -> float:
    return float((cv2.Canny(cv2.cvtColor(field, cv2.COLOR_RGB2GRAY), 30, 60) > 0).mean())
