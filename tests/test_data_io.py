"""Image decoding rules, atomic PNG writes and colouring (flexplat.data.io)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from flexplat.data import io
from flexplat.errors import DataError


def _encode(path, array_bgr):
    ok, data = cv2.imencode(".png", array_bgr)
    assert ok
    path.write_bytes(data.tobytes())
    return path


def test_rgb_roundtrip_and_channel_order(tmp_path):
    rgb = np.zeros((4, 5, 3), np.uint8)
    rgb[..., 0] = 200  # red
    io.write_png(tmp_path / "a.png", rgb)
    back = io.read_image(tmp_path / "a.png")
    assert back.dtype == np.uint8 and back.shape == (4, 5, 3)
    assert back[0, 0].tolist() == [200, 0, 0]
    assert cv2.imread(str(tmp_path / "a.png"))[0, 0].tolist() == [0, 0, 200]  # stored as BGR by OpenCV


def test_grayscale_is_repeated_into_three_channels(tmp_path):
    gray = np.arange(12, dtype=np.uint8).reshape(3, 4) * 20
    path = _encode(tmp_path / "g.png", gray)
    image, notes = io.decode_image(path)
    assert image.shape == (3, 4, 3)
    assert (image[..., 0] == gray).all() and (image[..., 1] == gray).all() and (image[..., 2] == gray).all()
    assert any("grayscale" in n for n in notes)


def test_rgba_drops_alpha_keeps_colours(tmp_path):
    bgra = np.zeros((2, 2, 4), np.uint8)
    bgra[..., 0], bgra[..., 1], bgra[..., 2], bgra[..., 3] = 10, 20, 30, 0  # fully transparent
    image, notes = io.decode_image(_encode(tmp_path / "a.png", bgra))
    assert image[0, 0].tolist() == [30, 20, 10]  # colours as stored, not composited
    assert any("alpha" in n for n in notes)


def test_16bit_scaled_with_v_over_257(tmp_path):
    values = np.array([[0, 128, 129, 257, 32896, 65535]], np.uint16)
    image, notes = io.decode_image(_encode(tmp_path / "deep.png", values))
    # round(v / 257): 128/257 = 0.498 -> 0, 129/257 = 0.502 -> 1, 32896/257 = 128
    assert image[0, :, 0].tolist() == [0, 0, 1, 1, 128, 255]
    assert any("16-bit" in n for n in notes)


@pytest.mark.parametrize(
    "content, words",
    [(b"", "empty"), (b"this is not an image at all" * 4, "cannot decode"), ("truncated", "cannot decode")],
)
def test_bad_files_raise_dataerror_naming_the_file(tmp_path, content, words):
    path = tmp_path / "bad.png"
    if content == "truncated":
        _encode(path, np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8))
        path.write_bytes(path.read_bytes()[:300])
    else:
        path.write_bytes(content)
    with pytest.raises(DataError) as err:
        io.read_image(path)
    assert str(path) in str(err.value) and words in str(err.value)


def test_missing_file(tmp_path):
    with pytest.raises(DataError, match="not found"):
        io.read_image(tmp_path / "nope.png")


def test_non_ascii_paths(tmp_path):
    path = tmp_path / "dossier é 日本" / "imäge.png"
    image = np.full((3, 3, 3), 77, np.uint8)
    io.write_png(path, image)
    assert (io.read_image(path) == 77).all()


def test_read_gray_keeps_values_and_dtype(tmp_path):
    mask16 = np.array([[0, 1, 300]], np.uint16)
    assert io.read_gray(_encode(tmp_path / "m16.png", mask16)).tolist() == [[0, 1, 300]]
    gray_as_rgb = np.repeat(np.array([[0, 2, 5]], np.uint8)[..., None], 3, axis=2)
    back = io.read_gray(_encode(tmp_path / "m3.png", gray_as_rgb))
    assert back.dtype == np.uint8 and back.tolist() == [[0, 2, 5]]
    colour = np.zeros((1, 2, 3), np.uint8)
    colour[0, 0] = (0, 0, 255)
    with pytest.raises(DataError, match="single-channel"):
        io.read_gray(_encode(tmp_path / "c.png", colour))


def test_write_png_is_atomic_and_leaves_no_temp(tmp_path):
    path = tmp_path / "out" / "x.png"
    io.write_png(path, np.zeros((2, 2, 3), np.uint8))
    io.write_png(path, np.ones((2, 2), np.uint8))  # replaces
    assert sorted(p.name for p in path.parent.iterdir()) == ["x.png"]
    assert io.read_gray(path).tolist() == [[1, 1], [1, 1]]
    with pytest.raises(ValueError):
        io.write_png(path, np.zeros((2, 2), np.float32))
    assert io.read_gray(path).tolist() == [[1, 1], [1, 1]]  # the old file survives a failed write


def test_colorize():
    mask = np.array([[0, 1], [2, 1]])
    out = io.colorize(mask, [(0, 0, 0), (255, 0, 0), (0, 0, 255)])
    assert out.dtype == np.uint8
    assert out.tolist() == [[[0, 0, 0], [255, 0, 0]], [[0, 0, 255], [255, 0, 0]]]
    with pytest.raises(ValueError, match="index 2"):
        io.colorize(mask, [(0, 0, 0), (255, 0, 0)])
