"""Tiled prediction: tile positions, blending window, stitching equals untiled for per-pixel models."""

from __future__ import annotations

import numpy as np
import pytest

from flexplat.engine.tiling import blend_window, predict_tiled, tile_positions


@pytest.mark.parametrize(
    ("size", "tile", "overlap", "expected"),
    [
        (256, 256, 0.25, [0]),
        (100, 256, 0.25, [0]),
        (512, 256, 0.0, [0, 256]),
        (512, 256, 0.25, [0, 192, 256]),
        (2048, 256, 0.25, [0, 192, 384, 576, 768, 960, 1152, 1344, 1536, 1728, 1792]),
        (300, 256, 0.5, [0, 44]),
    ],
)
def test_tile_positions_hand_computed(size, tile, overlap, expected):
    assert tile_positions(size, tile, overlap) == expected


@pytest.mark.parametrize("size", [1, 63, 64, 65, 127, 500, 1000, 4096])
@pytest.mark.parametrize("overlap", [0.0, 0.25, 0.5, 0.75])
def test_tile_positions_cover_everything_and_touch_both_borders(size, overlap):
    tile = 64
    positions = tile_positions(size, tile, overlap)
    assert positions[0] == 0
    assert positions == sorted(set(positions))
    covered = np.zeros(max(size, tile), bool)
    for p in positions:
        assert 0 <= p and p + tile <= max(size, tile)
        covered[p : p + tile] = True
    assert covered.all()
    assert positions[-1] + tile == max(size, tile)  # the last tile is aligned to the border
    if len(positions) > 1:
        steps = np.diff(positions)
        assert steps.max() <= round(tile * (1 - overlap))


def test_tile_positions_reject_bad_arguments():
    with pytest.raises(ValueError):
        tile_positions(0, 64, 0.25)
    with pytest.raises(ValueError):
        tile_positions(100, 64, 1.0)


def test_blend_window_positive_symmetric_peak_in_middle():
    window = blend_window(64, 48)
    assert window.shape == (64, 48)
    assert window.dtype == np.float32
    assert (window > 0).all()
    np.testing.assert_allclose(window, window[::-1, :])
    np.testing.assert_allclose(window, window[:, ::-1])
    assert window[32, 24] > 0.99
    assert window[0, 0] < 0.01


def _per_pixel_softmax(batch: np.ndarray) -> np.ndarray:
    """A per-pixel 'model': softmax of three linear functions of the pixel's channels."""
    weights = np.array([[0.02, -0.01, 0.0], [-0.03, 0.01, 0.02], [0.01, 0.0, -0.02]], np.float32)
    logits = batch @ weights.T
    logits -= logits.max(axis=-1, keepdims=True)
    e = np.exp(logits)
    return e / e.sum(axis=-1, keepdims=True)


@pytest.mark.parametrize("shape", [(200, 150), (64, 64), (40, 90), (129, 257)])
@pytest.mark.parametrize("overlap", [0.0, 0.25, 0.5])
def test_tiled_equals_untiled_for_a_per_pixel_model(shape, overlap):
    rng = np.random.default_rng(1)
    image = rng.integers(0, 256, (*shape, 3), dtype=np.uint8)
    calls = []

    def predict(batch):
        calls.append(batch.shape)
        assert batch.dtype == np.float32
        return _per_pixel_softmax(batch)

    tiled = predict_tiled(predict, image, (64, 64), overlap, batch_size=3)
    expected = _per_pixel_softmax(image.astype(np.float32)[None])[0]
    assert tiled.shape == (*shape, 3)
    np.testing.assert_allclose(tiled, expected, atol=1e-5)
    assert all(c[0] <= 3 and c[1:3] == (64, 64) for c in calls)
    n_tiles = len(tile_positions(max(shape[0], 64), 64, overlap)) * len(tile_positions(max(shape[1], 64), 64, overlap))
    assert sum(c[0] for c in calls) == n_tiles


def test_tiled_keras_per_pixel_model_matches_full_image_prediction():
    keras = pytest.importorskip("keras")
    inputs = keras.Input((None, None, 3))
    outputs = keras.layers.Conv2D(4, 1, activation="softmax", kernel_initializer="glorot_uniform")(inputs / 255.0)
    model = keras.Model(inputs, outputs)
    rng = np.random.default_rng(2)
    image = rng.integers(0, 256, (150, 230, 3), dtype=np.uint8)

    def predict(batch):
        return model(batch, training=False).numpy()

    tiled = predict_tiled(predict, image, (64, 64), 0.25, batch_size=4)
    full = predict(image.astype(np.float32)[None])[0]
    np.testing.assert_allclose(tiled, full, atol=1e-5)
    assert (tiled.argmax(-1) == full.argmax(-1)).mean() > 0.999


def test_constant_prediction_gives_constant_probabilities_without_seams():
    image = np.zeros((700, 500, 3), np.uint8)
    value = np.array([0.1, 0.7, 0.2], np.float32)

    def predict(batch):
        return np.broadcast_to(value, (*batch.shape[:3], 3)).copy()

    probs = predict_tiled(predict, image, (128, 128), 0.25, batch_size=8)
    np.testing.assert_allclose(probs, np.broadcast_to(value, probs.shape), atol=1e-6)
