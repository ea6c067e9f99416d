"""Offline augmentations: the same geometry for image and labels, exact label values."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from flexplat_leukocyte import warp
from flexplat_leukocyte.classes import TYPES
from flexplat_leukocyte.dataset import Original, paint, palette, parse_split, split_originals

CELL_BGR = (180, 30, 160)


def disc_pair(size: int = 96, centre: tuple[int, int] = (30, 60), radius: int = 14):
    image = np.full((size, size, 3), 220, np.uint8)
    labels = np.zeros((size, size), np.uint8)
    cv2.circle(labels, centre, radius, 1, -1)
    cv2.circle(labels, centre, radius // 2, 2, -1)
    image[labels > 0] = CELL_BGR
    return image, labels


@pytest.mark.parametrize("name", ["rot90", "rot180", "rot270", "hflip", "vflip"])
def test_exact_geometric_copies(name):
    image, labels = disc_pair()
    out_image, out_labels = warp.apply(name, image, labels, np.random.default_rng(0))
    assert np.array_equal(np.all(out_image == CELL_BGR, -1), out_labels > 0)
    assert np.array_equal(np.sort(out_labels.ravel()), np.sort(labels.ravel()))  # a permutation of pixels
    assert not np.array_equal(out_labels, labels)
    if name == "rot90":  # counter-clockwise: the top-right corner goes to the top-left
        assert np.array_equal(out_labels, np.rot90(labels))


@pytest.mark.parametrize("name", ["elastic", "barrel", "pincushion"])
def test_warps_move_image_and_mask_together(name):
    image, labels = disc_pair()
    out_image, out_labels = warp.apply(name, image, labels, np.random.default_rng(1))
    assert out_labels.dtype == np.uint8 and set(np.unique(out_labels)) <= {0, 1, 2}
    assert not np.array_equal(out_labels, labels)
    cell_like = np.abs(out_image.astype(int) - 220).sum(-1) > 150  # at least half-way to the cell colour
    painted = out_labels > 0
    iou = (cell_like & painted).sum() / (cell_like | painted).sum()
    assert iou > 0.93, iou


def test_barrel_magnifies_and_pincushion_shrinks_a_lens_centre():
    centre = round(0.3 * 127)  # the first of the five lens centres
    image, labels = disc_pair(128, (centre, centre), 8)
    area = (labels > 0).sum()
    barrel = warp.apply("barrel", image, labels, np.random.default_rng(0))[1]
    pincushion = warp.apply("pincushion", image, labels, np.random.default_rng(0))[1]
    assert (barrel > 0).sum() > 1.3 * area
    assert (pincushion > 0).sum() < 0.8 * area


def test_elastic_depends_only_on_the_rng():
    image, labels = disc_pair()
    a = warp.apply("elastic", image, labels, np.random.default_rng(4))
    b = warp.apply("elastic", image, labels, np.random.default_rng(4))
    c = warp.apply("elastic", image, labels, np.random.default_rng(5))
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    assert not np.array_equal(a[0], c[0])


def test_elastic_keeps_the_edges_straight():
    """A dark frame along the edges (as LISC images carry) stays at the edges, never bent inward as curves."""
    image = np.full((288, 288, 3), 210, np.uint8)
    image[:4], image[-4:], image[:, :4], image[:, -4:] = 0, 0, 0, 0
    labels = np.zeros(image.shape[:2], np.uint8)
    for seed in range(3):
        out = warp.apply("elastic", image, labels, np.random.default_rng(seed))[0]
        dark = np.argwhere(out.max(axis=2) < 100)
        depth = np.minimum.reduce([dark[:, 0], 287 - dark[:, 0], dark[:, 1], 287 - dark[:, 1]])
        assert depth.max() <= 8, f"seed {seed}: the frame reaches {depth.max()} px into the image"
        assert out[0].max() < 100 and out[:, -1].max() < 100  # and it is still there along every edge
        assert (out[100:188, 100:188] > 200).all()  # the inside still moves (a warp), but holds no frame


def test_parse_augment():
    assert warp.parse_augment(None, ("rot90",)) == ("rot90",)
    assert warp.parse_augment("none", warp.AUGMENTATIONS) == ()
    assert warp.parse_augment(" Rot90, barrel ", ()) == ("rot90", "barrel")
    with pytest.raises(ValueError, match="twirl"):
        warp.parse_augment("rot90,twirl", ())
    with pytest.raises(ValueError, match="twice"):
        warp.parse_augment("rot90,rot90", ())
    with pytest.raises(ValueError):
        warp.lens_maps(8, 8, 0.6)


def test_paint_uses_exact_palette_colours():
    labels = np.array([[0, 1, 2]], np.uint8)
    bgr = {name: list(color[::-1]) for _, name, color in TYPES}
    assert paint(labels, "monocyte", parts=False)[0].tolist() == [[0, 0, 0], bgr["monocyte"], bgr["monocyte"]]
    half = [c // 2 for c in bgr["neutrophil"]]  # parts: cytoplasm at half intensity, nucleus in the type colour
    assert paint(labels, "neutrophil", parts=True)[0].tolist() == [[0, 0, 0], half, bgr["neutrophil"]]
    assert palette(False).shape == (6, 3) and palette(True).shape == (11, 3)


def test_parse_split():
    assert parse_split("70/15/15") == pytest.approx((0.7, 0.15, 0.15))
    assert parse_split("8,1,1") == pytest.approx((0.8, 0.1, 0.1))
    for bad in ("70/30", "0/50/50", "a/b/c", "70/-5/35"):
        with pytest.raises(ValueError):
            parse_split(bad)


def test_split_is_stratified_disjoint_and_seeded():
    originals = [Original(f"{p}_{n}", c) for p, c in (("neut", "neutrophil"), ("mono", "monocyte")) for n in range(20)]
    originals.append(Original("baso_1", "basophil"))
    splits = split_originals(originals, (0.7, 0.15, 0.15), seed=0)
    assert splits == split_originals(list(reversed(originals)), (0.7, 0.15, 0.15), seed=0)  # order-free
    assert splits != split_originals(originals, (0.7, 0.15, 0.15), seed=1)
    everything = sum(splits.values(), [])
    assert sorted(everything) == sorted(o.id for o in originals)
    for prefix in ("neut", "mono"):
        assert [sum(i.startswith(prefix) for i in splits[s]) for s in ("train", "valid", "test")] == [14, 3, 3]
    assert "baso_1" in splits["train"]  # a class of one goes to train


def test_cli_warp_defaults_are_the_library_defaults():
    from flexplat_leukocyte.command import generate

    defaults = {p.name: p.default for p in generate.params}
    options = warp.WarpOptions()
    assert (defaults["elastic_alpha"], defaults["elastic_sigma"], defaults["lens_amount"]) == (
        options.elastic_alpha,
        options.elastic_sigma,
        options.lens_amount,
    )
