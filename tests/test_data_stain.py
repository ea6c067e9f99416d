"""Stain normalisation: uint8 in and out, Reinhard hits its target, Macenko recovers stains, fitting, errors."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from flexplat.data.io import write_png
from flexplat.data.stain import fit_target, lab_stats, normalize, stain_vectors
from flexplat.errors import ConfigError, DataError
from flexplat.schema import STAIN_TARGET_SCHEMA, check_stain_norm

H_TRUE = np.array([0.5626, 0.7201, 0.4062])  # Macenko's reference H&E vectors
E_TRUE = np.array([0.2159, 0.8012, 0.5581])
TARGET = {"lab_mean": [65.0, 12.0, -8.0], "lab_std": [12.0, 8.0, 6.0]}


def _smear(seed: int = 0, size: int = 64) -> np.ndarray:
    """A smear-like uint8 RGB image: tinted background, pinkish cells, purple nuclei, a little noise."""
    rng = np.random.default_rng(seed)
    image = np.empty((size, size, 3), np.float32)
    image[:] = rng.uniform(200, 235, 3)
    for _ in range(6):
        centre = tuple(int(v) for v in rng.integers(6, size - 6, 2))
        cv2.circle(image, centre, int(rng.integers(5, 10)), tuple(float(v) for v in rng.uniform(120, 200, 3)), -1)
    cv2.circle(image, (size // 2, size // 2), 9, tuple(float(v) for v in rng.uniform(40, 120, 3)), -1)
    image += rng.normal(0, 4, image.shape)
    return np.clip(np.rint(image), 0, 255).astype(np.uint8)


def _he_image(h_vec=H_TRUE, e_vec=E_TRUE, h_max=1.2, e_max=0.8, seed: int = 0, size: int = 64) -> np.ndarray:
    """Beer-Lambert H&E image: white background, pure-H, pure-E and mixed regions."""
    rng = np.random.default_rng(seed)
    conc = np.zeros((size, size, 2))
    conc[: size // 4, :, 0] = rng.uniform(0.3, 1.0, (size // 4, size)) * h_max  # nuclei
    conc[size // 4 : size // 2, :, 1] = rng.uniform(0.3, 1.0, (size // 4, size)) * e_max  # cytoplasm
    conc[size // 2 : 5 * size // 8] = rng.uniform(0.2, 0.6, (size // 8, size, 2)) * [h_max, e_max]  # mixed
    od = conc @ np.stack([h_vec, e_vec])
    return np.clip(np.rint(256 * np.exp(-od) - 1), 0, 255).astype(np.uint8)


@pytest.mark.parametrize("method", ["none", "white-balance", "reinhard", "macenko"])
def test_uint8_rgb_in_and_out(method):
    image = _smear()
    out = normalize(image, method, TARGET)
    assert out.dtype == np.uint8 and out.shape == image.shape
    if method == "none":
        assert out is image
    else:
        assert not np.array_equal(out, image)


def test_reinhard_maps_lab_statistics_to_the_target():
    for seed in range(3):
        mean, std = lab_stats(normalize(_smear(seed), "reinhard", TARGET))
        assert np.allclose(mean, TARGET["lab_mean"], atol=0.6), mean
        assert np.allclose(std, TARGET["lab_std"], rtol=0.05), std


def test_reinhard_makes_differently_stained_images_alike():
    a, b = _smear(1), _smear(2)
    before = np.abs(lab_stats(a)[0] - lab_stats(b)[0]).max()
    after = np.abs(lab_stats(normalize(a, "reinhard", TARGET))[0] - lab_stats(normalize(b, "reinhard", TARGET))[0])
    assert after.max() < 1.0 < before


@pytest.mark.parametrize("method", ["reinhard", "macenko"])
def test_normalising_twice_is_about_normalising_once(method):
    image = _smear(3) if method == "reinhard" else _he_image(seed=3)
    once = normalize(image, method, TARGET)
    twice = normalize(once, method, TARGET)
    assert np.abs(twice.astype(int) - once.astype(int)).mean() < 1.0


def test_reinhard_on_a_flat_image_only_shifts():
    flat = np.full((8, 8, 3), 180, np.uint8)
    out = normalize(flat, "reinhard", TARGET)
    assert len(np.unique(out.reshape(-1, 3), axis=0)) == 1
    assert np.allclose(lab_stats(out)[0], TARGET["lab_mean"], atol=1.0)


def _lit(light: tuple[float, float, float]) -> np.ndarray:
    """The same smear (transmittances) under a lamp of colour ``light``: glass, a cell, its nucleus."""
    transmittance = np.ones((40, 40, 3), np.float32)
    cv2.circle(transmittance, (20, 20), 12, (0.85, 0.65, 0.75), -1)
    cv2.circle(transmittance, (20, 20), 6, (0.35, 0.2, 0.55), -1)
    return np.clip(np.rint(transmittance * np.float32(light)), 0, 255).astype(np.uint8)


def test_white_balance_takes_the_lamp_out():
    yellow, green = _lit((250, 235, 160)), _lit((190, 215, 200))
    target = {"background": [230.0, 230.0, 230.0]}
    a, b = normalize(yellow, "white-balance", target), normalize(green, "white-balance", target)
    assert np.abs(yellow.astype(int) - green.astype(int)).max() > 50
    assert np.abs(a.astype(int) - b.astype(int)).max() <= 2  # the same smear under either lamp
    assert np.array_equal(a[0, 0], [230, 230, 230])  # glass becomes the target background
    assert np.allclose(a[20, 20], np.array([0.35, 0.2, 0.55]) * 230, atol=2)  # the stain's own colour is kept


def test_macenko_recovers_the_stain_vectors_of_a_beer_lambert_image():
    vectors, maxima = stain_vectors(_he_image())
    assert vectors[:, 0] @ H_TRUE > 0.99 and vectors[:, 1] @ E_TRUE > 0.99  # H first, E second
    assert np.allclose(maxima, [1.2 * 0.99, 0.8 * 0.99], rtol=0.1)


def test_macenko_maps_stains_and_concentrations_to_the_target():
    h_target, e_target = np.array([0.65, 0.70, 0.29]), np.array([0.27, 0.90, 0.35])
    target = {"hematoxylin_od": h_target.tolist(), "eosin_od": e_target.tolist(), "max_concentrations": [0.9, 1.1]}
    out = normalize(_he_image(h_max=1.5, e_max=0.5), "macenko", target)
    vectors, maxima = stain_vectors(out)
    assert vectors[:, 0] @ (h_target / np.linalg.norm(h_target)) > 0.99
    assert vectors[:, 1] @ (e_target / np.linalg.norm(e_target)) > 0.99
    assert np.allclose(maxima, [0.9, 1.1], rtol=0.1)


def test_macenko_keeps_a_blank_field_blank():
    blank = np.full((16, 16, 3), 240, np.uint8)
    assert stain_vectors(blank) is None
    assert np.array_equal(normalize(blank, "macenko"), np.full_like(blank, 255))  # its background becomes white


def test_fit_target_from_a_folder_matches_the_images(tmp_path):
    images = [_smear(seed) for seed in range(3)]
    for i, image in enumerate(images):
        write_png(tmp_path / f"{i}.png", image)
    (tmp_path / "notes.txt").write_text("not an image")
    target = fit_target(tmp_path)
    assert set(target) == set(STAIN_TARGET_SCHEMA)
    backgrounds = [np.percentile(im.reshape(-1, 3), 99, axis=0) for im in images]
    assert np.allclose(target["background"], np.mean(backgrounds, 0), atol=1e-3)
    assert np.allclose(target["lab_mean"], np.mean([lab_stats(im)[0] for im in images], 0), atol=1e-3)
    assert np.allclose(target["lab_std"], np.mean([lab_stats(im)[1] for im in images], 0), atol=1e-3)
    check_stain_norm({"method": "reinhard", "target": target})  # usable as data.stain_norm.target as is
    fitted = fit_target([_he_image(seed=s) for s in range(2)])
    assert np.array(fitted["hematoxylin_od"]) @ H_TRUE > 0.99


def test_fit_target_needs_images(tmp_path):
    with pytest.raises(DataError, match="no images"):
        fit_target(tmp_path)
    with pytest.raises(DataError, match="not a folder"):
        fit_target(tmp_path / "missing")


def test_defaults_and_config_errors_name_the_key():
    config = check_stain_norm(None)
    assert config["method"] == "none" and len(config["target"]["lab_mean"]) == 3
    with pytest.raises(ConfigError, match=r"data\.stain_norm\.method"):
        check_stain_norm({"method": "vahadane"})
    with pytest.raises(ConfigError, match=r"data\.stain_norm\.target\.lab_std: must be a list of 3"):
        check_stain_norm({"method": "reinhard", "target": {"lab_std": [1.0, 2.0]}})
    with pytest.raises(
        ConfigError, match=r"data\.stain_norm\.target\.max_concentrations: every value must be positive"
    ):
        check_stain_norm({"target": {"max_concentrations": [1.0, 0.0]}})
    with pytest.raises(ConfigError, match=r"data\.stain_norm\.target\.lab_men: unknown key"):
        check_stain_norm({"target": {"lab_men": [1.0, 2.0, 3.0]}})
    with pytest.raises(ConfigError, match=r"data\.stain_norm\.method"):
        normalize(_smear(), "reinhardt", TARGET)


def test_rejects_images_that_are_not_uint8_rgb():
    with pytest.raises(ValueError, match="uint8 H x W x 3"):
        normalize(np.zeros((4, 4, 3), np.float32), "reinhard", TARGET)
    with pytest.raises(ValueError, match="uint8 H x W x 3"):
        normalize(np.zeros((4, 4), np.uint8), "none")
