"""Pairing by stem, folder/glob layouts and the built-in codecs (rgb-mask, index-mask)."""

from __future__ import annotations

import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from flexplat.data import io
from flexplat.data.codec import Pair, list_files, pair_by_stem
from flexplat.data.codecs import IndexMaskCodec, RgbMaskCodec
from flexplat.errors import DataError
from flexplat.plugins import get_registry
from flexplat.testing import sample_classes, write_index_dataset, write_rgb_dataset

CLASSES = sample_classes(3)  # background (0,0,0), class1 (255,0,0), class2 (0,255,0)


def test_pairing_is_by_stem_not_order():
    images = [Path(f"img/{s}.png") for s in ["c", "a", "b", "d"]]
    masks = [Path(f"msk/{s}.png") for s in ["b", "e", "a", "c"]]
    for _ in range(5):
        random.shuffle(images)
        random.shuffle(masks)
        scan = pair_by_stem(images, masks)
        assert [(p.image.stem, p.mask.stem, p.stem) for p in scan.pairs] == [(s, s, s) for s in "abc"]
        assert scan.images_without_mask == [Path("img/d.png")]
        assert scan.masks_without_image == [Path("msk/e.png")]


def test_pairing_across_extensions_and_duplicate_stems():
    scan = pair_by_stem([Path("i/x.jpg")], [Path("m/x.png")])
    assert scan.pairs == [Pair(Path("i/x.jpg"), Path("m/x.png"), "x")]
    with pytest.raises(DataError) as err:
        pair_by_stem([Path("i/x.jpg"), Path("i/x.png")], [Path("m/x.png")])
    assert "i/x.jpg" in str(err.value) and "i/x.png" in str(err.value)


def _touch_pair(root: Path, folder: str, stem: str, mask_value: int = 1) -> None:
    image = np.zeros((4, 4, 3), np.uint8)
    mask = np.full((4, 4, 3), CLASSES[mask_value].color, np.uint8)
    io.write_png(root / folder / "images" / f"{stem}.png", image)
    io.write_png(root / folder / "masks" / f"{stem}.png", mask)


def test_glob_layout_and_ignored_files(tmp_path):
    _touch_pair(tmp_path, "train/basophil", "bas_1")
    _touch_pair(tmp_path, "train/basophil", "bas_2")
    _touch_pair(tmp_path, "train/eosinophil", "eos_1")
    (tmp_path / "train/basophil/images/Thumbs.db").write_bytes(b"junk")
    (tmp_path / "train/basophil/images/.DS_Store").write_bytes(b"junk")
    (tmp_path / "train/eosinophil/masks/notes.txt").write_text("hello")
    io.write_png(tmp_path / "train/eosinophil/images/UPPER.PNG", np.zeros((4, 4, 3), np.uint8))
    codec = RgbMaskCodec(CLASSES, {})
    scan = codec.scan("train/*/images", "train/*/masks", tmp_path)
    assert [p.stem for p in scan.pairs] == ["bas_1", "bas_2", "eos_1"]
    assert scan.pairs[2].image == tmp_path / "train/eosinophil/images/eos_1.png"
    assert [p.name for p in scan.images_without_mask] == ["UPPER.PNG"]
    assert scan.masks_without_image == []
    # a flat layout with the same code path
    _touch_pair(tmp_path, "flat", "f1")
    assert [p.stem for p in codec.scan("flat/images", "flat/masks", tmp_path).pairs] == ["f1"]


def test_same_stem_in_two_class_folders_is_an_error(tmp_path):
    _touch_pair(tmp_path, "train/a", "img1")
    _touch_pair(tmp_path, "train/b", "img1")
    with pytest.raises(DataError) as err:
        RgbMaskCodec(CLASSES, {}).scan("train/*/images", "train/*/masks", tmp_path)
    assert "train/a/images/img1.png" in str(err.value) and "train/b/images/img1.png" in str(err.value)


def test_missing_folder_and_empty_glob(tmp_path):
    with pytest.raises(DataError, match="no such folder"):
        list_files("nothing/here", tmp_path)
    with pytest.raises(DataError, match="matches no folder"):
        list_files("train/*/images", tmp_path)


def _mask_pair(tmp_path: Path, mask_rgb: np.ndarray) -> Pair:
    io.write_png(tmp_path / "m.png", mask_rgb)
    return Pair(tmp_path / "i.png", tmp_path / "m.png", "m")


def test_rgb_mask_exact_and_snapped(tmp_path):
    mask = np.zeros((2, 4, 3), np.uint8)
    mask[0, 1] = (255, 0, 0)  # class1 exactly
    mask[0, 2] = (250, 5, 0)  # 7 from class1 -> class1, snapped
    mask[0, 3] = (100, 155, 0)  # on the class1-class2 mix, nearer class2 -> class2 (blend)
    mask[1, 0] = (0, 128, 0)  # half way black-green: 128 > 127.5 from black -> class2 (blend)
    mask[1, 1] = (0, 255, 0)
    read = RgbMaskCodec(CLASSES, {}).read_mask(_mask_pair(tmp_path, mask))
    assert read.mask.dtype == np.uint8
    assert read.mask.tolist() == [[0, 1, 1, 2], [2, 2, 0, 0]]
    assert read.snapped == 3


def test_rgb_mask_off_palette_error_names_file_colour_and_count(tmp_path):
    mask = np.zeros((3, 3, 3), np.uint8)
    mask[0, :] = (0, 0, 255)  # blue is far from black, red, green and every mix of them
    with pytest.raises(DataError) as err:
        RgbMaskCodec(CLASSES, {}).read_mask(_mask_pair(tmp_path, mask))
    message = str(err.value)
    assert str(tmp_path / "m.png") in message and "(0, 0, 255) x 3 px" in message and "tolerance" in message


def test_rgb_mask_tolerance_and_blends_options(tmp_path):
    mask = np.zeros((1, 2, 3), np.uint8)
    mask[0, 0] = (200, 0, 0)  # 55 from red; on the black-red mix
    mask[0, 1] = (100, 155, 0)  # on the red-green mix only
    pair = _mask_pair(tmp_path, mask)
    assert RgbMaskCodec(CLASSES, {"tolerance": 60.0, "blends": True}).read_mask(pair).mask.tolist() == [[1, 2]]
    with pytest.raises(DataError, match=r"\(100, 155, 0\) x 1 px"):
        RgbMaskCodec(CLASSES, {"tolerance": 60.0, "blends": False}).read_mask(pair)
    only_red = _mask_pair(tmp_path, mask[:, :1])
    assert RgbMaskCodec(CLASSES, {"tolerance": 60.0, "blends": False}).read_mask(only_red).mask.tolist() == [[1]]
    with pytest.raises(DataError, match=r"\(200, 0, 0\)"):
        RgbMaskCodec(CLASSES, {"tolerance": 50.0, "blends": False}).read_mask(only_red)
    assert RgbMaskCodec(CLASSES, {"tolerance": 50.0, "blends": True}).read_mask(only_red).mask.tolist() == [[1]]


def test_rgb_mask_gray_and_rgba_masks_are_converted(tmp_path):
    rgba = np.zeros((1, 2, 4), np.uint8)
    rgba[0, 1] = (0, 255, 0, 128)
    read = RgbMaskCodec(CLASSES, {}).read_mask(_mask_pair(tmp_path, rgba))
    assert read.mask.tolist() == [[0, 2]] and any("alpha" in n for n in read.notes)


def test_index_mask_reads_and_rejects_out_of_range(tmp_path):
    codec = IndexMaskCodec(CLASSES, {})
    io.write_png(tmp_path / "ok.png", np.array([[0, 1, 2]], np.uint8))
    assert codec.read_mask(Pair(tmp_path / "i.png", tmp_path / "ok.png", "ok")).mask.tolist() == [[0, 1, 2]]
    io.write_png(tmp_path / "bad.png", np.array([[0, 3, 7, 7]], np.uint8))
    with pytest.raises(DataError) as err:
        codec.read_mask(Pair(tmp_path / "i.png", tmp_path / "bad.png", "bad"))
    message = str(err.value)
    assert str(tmp_path / "bad.png") in message and "value 7" in message and "3 x 1 px" in message


def test_write_then_read_roundtrip_both_codecs(tmp_path):
    write_rgb_dataset(tmp_path / "rgb", CLASSES, n=4, size=(20, 24))
    write_index_dataset(tmp_path / "idx", CLASSES, n=4, size=(20, 24))
    for codec, root in ((RgbMaskCodec(CLASSES, {}), tmp_path / "rgb"), (IndexMaskCodec(CLASSES, {}), tmp_path / "idx")):
        scan = codec.scan("train/images", "train/masks", root)
        assert [p.stem for p in scan.pairs] == [f"train_{i:03d}" for i in range(4)]
        for i, pair in enumerate(scan.pairs):
            image, read = codec.read_image(pair), codec.read_mask(pair)
            assert image.shape == (20, 24, 3) and read.mask.shape == (20, 24) and read.snapped == 0
            assert set(np.unique(read.mask).tolist()) == {0, 1 + i % 2}


def test_registered_builtin_codecs():
    registry = get_registry()
    assert {"rgb-mask", "index-mask"} <= set(registry.names("codec"))
    codec = registry.get("codec", "rgb-mask").factory(CLASSES, {"tolerance": 10.0, "blends": True})
    assert isinstance(codec, RgbMaskCodec) and codec.tolerance == 10.0
    assert isinstance(registry.get("codec", "index-mask").factory(CLASSES, {}), IndexMaskCodec)


def test_builtin_codecs_module_is_light():
    code = "import sys, flexplat.default_plugins.codecs; assert 'numpy' not in sys.modules and 'cv2' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)
