"""Copy-paste augmentation: objects moved onto a registered background, composited in optical density."""

from __future__ import annotations

import numpy as np
import pytest

from flexplat.data.paste import object_diameter, paste_fn, paste_objects
from flexplat.errors import ConfigError
from flexplat.testing import invoke

LIGHT = 220.0


def _cell(size=(48, 64), centre=(20, 24), radius=9):
    """A dark two-class disc (class 2 core, class 1 rim) on glass of brightness LIGHT."""
    yy, xx = np.mgrid[: size[0], : size[1]]
    dist = np.hypot(yy - centre[0], xx - centre[1])
    mask = np.where(dist <= radius, 1, 0).astype(np.uint8)
    mask[dist <= radius / 2] = 2
    image = np.full((*size, 3), LIGHT, np.float32)
    image[mask == 1] = (150, 120, 170)
    image[mask == 2] = (60, 30, 90)
    return image.astype(np.uint8), mask


def _glass(rng, size, diameter):
    return np.full((*size, 3), LIGHT, np.uint8)


def render_stripes(rng, size, diameter):
    """The fixture plugin's background, through the registry."""
    from flexplat import get_registry

    return get_registry().get("background", "tiny-stripes").render(rng, size, diameter)


def _moved(before: np.ndarray, after: np.ndarray) -> tuple[int, int]:
    (y0, x0), (y1, x1) = (np.argwhere(m == 2).mean(0) for m in (before, after))
    return int(round(y1 - y0)), int(round(x1 - x0))


def test_pasting_onto_plain_glass_of_the_same_light_reproduces_the_object():
    image, mask = _cell()
    out, moved = paste_objects(image, mask, _glass, np.random.default_rng(3))
    dy, dx = _moved(mask, moved)
    assert (dy, dx) != (0, 0)  # the object moved
    assert np.bincount(moved.ravel(), minlength=3).tolist() == np.bincount(mask.ravel(), minlength=3).tolist()
    shifted = np.roll(image, (dy, dx), axis=(0, 1)).astype(int)
    inside = moved > 0
    assert np.abs(out[inside].astype(int) - shifted[inside]).max() <= 2  # Beer-Lambert: same object, same light
    assert np.abs(out[~inside].astype(int) - int(LIGHT)).max() <= 2  # glass elsewhere


def test_the_background_shows_around_and_under_the_object():
    image, mask = _cell()
    out, moved = paste_objects(image, mask, render_stripes, np.random.default_rng(5))
    around = out[moved == 0].mean(-1)
    assert (around < 120).mean() > 0.3 and (around > 200).mean() > 0.3  # stripes, not the crop's glass
    core = out[moved == 2].astype(float).mean(0)
    assert core[2] > core[1]  # the core keeps its purple stain on top of whatever lies beneath


def test_empty_pastes_show_the_background_alone():
    image, mask = _cell()
    out, moved = paste_objects(image, mask, _glass, np.random.default_rng(0), empty=1.0)
    assert not moved.any() and np.all(out == LIGHT)


def test_an_image_without_objects_is_left_alone():
    image, mask = _cell()
    mask[:] = 0
    out, moved = paste_objects(image, mask, _glass, np.random.default_rng(0))
    assert out is image and moved is mask


def test_paste_fn_is_reproducible_per_key_and_respects_its_chance():
    image, mask = _cell()
    options = {"paste": 1.0, "paste_empty": 0.0}
    fn = paste_fn(options, _glass, seed=7)
    a, b, c = fn(image, mask, 11), fn(image, mask, 11), fn(image, mask, 12)
    assert np.array_equal(a[1], b[1]) and np.array_equal(a[0], b[0])
    assert not np.array_equal(a[1], c[1])
    never = paste_fn({"paste": 0.0, "paste_empty": 0.0}, _glass, seed=7)
    assert never(image, mask, 11)[1] is mask


def test_object_diameter_is_the_equivalent_diameter():
    mask = np.zeros((40, 40), np.uint8)
    mask[10:20, 10:20] = 1
    assert object_diameter(mask) == pytest.approx(2 * np.sqrt(100 / np.pi))


def test_paste_needs_a_registered_background():
    from flexplat.config import resolve

    with pytest.raises(ConfigError, match="train.augment.paste_background: required"):
        resolve("tiny", sets=["train.augment.paste=0.5"])
    unknown = "train.augment.paste_background: Unknown background 'tiny-stripe'.*tiny-stripes"
    with pytest.raises(ConfigError, match=unknown):
        resolve("tiny", sets=["train.augment.paste=0.5", "train.augment.paste_background=tiny-stripe"])
    config = resolve("tiny", sets=["train.augment.paste=0.5", "train.augment.paste_background=tiny-stripes"])
    assert config["train"]["augment"]["paste"] == 0.5


def test_backgrounds_are_listed_and_described():
    result = invoke(["list", "--kind", "background", "--json"])
    assert result.exit_code == 0
    assert "tiny-stripes" in result.output
    info = invoke(["info", "tiny-stripes"])
    assert info.exit_code == 0, info.output
    assert "(background)" in info.output and "paste_background: tiny-stripes" in info.output


def _dataset(tmp_path, augment, **kwargs):
    """The pipeline's first batch (4 images of 32 px) of a small RGB dataset, as NumPy arrays."""
    pytest.importorskip("tensorflow")
    from flexplat.data.codecs import RgbMaskCodec
    from flexplat.data.pipeline import make_dataset
    from flexplat.testing import sample_classes, write_rgb_dataset

    classes = sample_classes(3)
    root = tmp_path / "data"
    if not root.is_dir():
        write_rgb_dataset(root, classes, n=4, size=(32, 32), seed=2)
    codec = RgbMaskCodec(classes, {})
    pairs = codec.scan("train/images", "train/masks", root).pairs
    ds = make_dataset(pairs, codec, (32, 32), 3, 4, shuffle=False, augment=augment, seed=1, **kwargs)
    x, y = next(iter(ds))
    return x.numpy(), y.numpy()


def test_the_pipeline_pastes_reproducibly(tmp_path):
    augment = {"paste": 1.0, "paste_background": "tiny-stripes", "paste_empty": 0.0}
    (x0, y0), (x1, y1), (x2, y2) = _dataset(tmp_path, None), _dataset(tmp_path, augment), _dataset(tmp_path, augment)
    assert np.array_equal(x1, x2) and np.array_equal(y1, y2)  # same seed, same pastes
    assert not np.array_equal(x0, x1) and not np.array_equal(y0, y1)  # moved onto stripes
    before, after = y0.sum((1, 2))[:, 1:], y1.sum((1, 2))[:, 1:]
    assert np.all(after <= before)  # objects move (and may be cut by the edge); nothing is invented


def test_pasted_backgrounds_are_stain_normalised_like_the_images(tmp_path):
    empty = {"paste": 1.0, "paste_background": "tiny-stripes", "paste_empty": 1.0}
    stain = {"method": "white-balance", "target": {"background": [200.0, 120.0, 60.0]}}
    for image in _dataset(tmp_path, empty, stain_norm=stain)[0]:  # backgrounds alone, mapped to the target
        assert np.allclose(np.percentile(image.reshape(-1, 3), 99, axis=0), [200, 120, 60], atol=1.5)
    raw = _dataset(tmp_path, empty)[0][0]
    assert not np.allclose(np.percentile(raw.reshape(-1, 3), 99, axis=0), [200, 120, 60], atol=10)
