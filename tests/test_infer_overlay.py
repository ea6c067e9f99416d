"""Rendering of predictions: outlines and overlays, checked pixel by pixel."""

from __future__ import annotations

import numpy as np

from flexplat.engine.overlay import outline, outline_thickness, overlay

COLORS = [(0, 0, 0), (255, 0, 0), (0, 255, 0)]


def test_outline_is_the_foreground_side_of_class_borders():
    mask = np.zeros((7, 8), np.uint8)
    mask[1:5, 1:5] = 1  # a 4x4 square of class 1
    mask[2:4, 5:7] = 2  # class 2 touching its right side
    edge = outline(mask, 1)
    expected = np.zeros_like(edge)
    expected[1:5, 1:5] = True
    expected[2:4, 2:4] = False  # interior of the square
    expected[2:4, 5:7] = True  # class 2 is only 2 px thick: all of it is border
    np.testing.assert_array_equal(edge, expected)
    assert not outline(np.zeros((5, 5), np.uint8)).any()
    assert not outline(np.ones((5, 5), np.uint8)).any()  # the image border is not an outline


def test_outline_thickness_grows_with_the_image():
    assert outline_thickness(32, 32) == 1
    assert outline_thickness(512, 512) == 1
    assert outline_thickness(1024, 768) == 2
    assert outline_thickness(4096, 4096) == 11


def test_overlay_tints_foreground_keeps_background_and_draws_outline():
    image = np.full((9, 9, 3), 100, np.uint8)
    mask = np.zeros((9, 9), np.uint8)
    mask[2:7, 2:7] = 1
    out = overlay(image, mask, COLORS, alpha=0.5, thickness=1)
    assert out.dtype == np.uint8 and out.shape == (9, 9, 3)
    np.testing.assert_array_equal(out[0, 0], [100, 100, 100])  # background unchanged
    np.testing.assert_array_equal(out[4, 4], [178, 50, 50])  # 0.5 * 100 + 0.5 * (255, 0, 0), rounded
    np.testing.assert_array_equal(out[2, 2], [255, 0, 0])  # outline in the class colour
    np.testing.assert_array_equal(image, 100)  # the input is not modified


def test_overlay_with_alpha_zero_shows_only_outlines():
    image = np.full((9, 9, 3), 100, np.uint8)
    mask = np.zeros((9, 9), np.uint8)
    mask[1:8, 1:8] = 2
    out = overlay(image, mask, COLORS, alpha=0.0, thickness=1)
    np.testing.assert_array_equal(out[4, 4], [100, 100, 100])
    np.testing.assert_array_equal(out[1, 4], [0, 255, 0])
