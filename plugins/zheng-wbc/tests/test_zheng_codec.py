"""The zheng-wbc codec: grey part masks + label CSV -> class-index masks, for both tasks, and its errors."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from flexplat_zheng_wbc.classes import LABEL_TYPES, class_table, image_key
from flexplat_zheng_wbc.codec import ZhengCodec, read_labels

import flexplat
from flexplat import ClassInfo, ConfigError, DataError

TYPE_NAMES = ["background", "basophil", "eosinophil", "lymphocyte", "monocyte", "neutrophil"]


def classes(task: str) -> list[ClassInfo]:
    return [ClassInfo(c["name"], tuple(c["color"])) for c in class_table(task)]


def scanned(root, task: str = "type", **options) -> tuple[ZhengCodec, list[flexplat.Pair]]:
    codec = ZhengCodec(classes(task), {"task": task, **options})
    return codec, codec.scan("images", "masks", root).pairs


def test_type_task_paints_the_whole_cell_with_its_type(zheng_small):
    root, fakes = zheng_small
    codec, pairs = scanned(root)
    assert [p.stem for p in pairs] == [f.stem for f in fakes]
    assert [p.image.suffix for p in pairs] == [".bmp"] * 10 and [p.mask.suffix for p in pairs] == [".png"] * 10
    for pair, fake in zip(pairs, fakes, strict=True):
        mask = codec.read_mask(pair).mask
        index = TYPE_NAMES.index(fake.type)
        assert mask.dtype == np.uint8 and mask.shape == fake.size
        counts = np.bincount(mask.reshape(-1), minlength=6)
        assert counts[index] == fake.cytoplasm + fake.nucleus
        assert counts[0] == fake.size[0] * fake.size[1] - fake.cytoplasm - fake.nucleus
        assert counts.sum() == counts[0] + counts[index]
        assert codec.split_label(pair) == fake.type
    # CSV numbering 1 neutrophil .. 5 basophil maps to the leukocyte indices 5, 3, 4, 2, 1
    first_five = [codec.read_mask(p).mask.max() for p in pairs[:5]]
    assert first_five == [5, 3, 4, 2, 1]


def test_classes_are_matched_by_name_not_position(zheng_small):
    root, fakes = zheng_small
    shuffled = [classes("type")[0], *reversed(classes("type")[1:])]  # neutrophil first ... basophil last
    codec = ZhengCodec(shuffled, {})
    pairs = codec.scan("images", "masks", root).pairs
    assert codec.read_mask(pairs[0]).mask.max() == 1  # image 1 is a neutrophil: now index 1
    assert codec.read_mask(pairs[4]).mask.max() == 5  # image 5 is a basophil: now index 5


def test_parts_task_maps_grey_levels(zheng_small):
    root, fakes = zheng_small
    codec, pairs = scanned(root, "parts")
    for pair, fake in zip(pairs, fakes, strict=True):
        read = codec.read_mask(pair)
        counts = np.bincount(read.mask.reshape(-1), minlength=3)
        assert (counts[1], counts[2]) == (fake.cytoplasm, fake.nucleus) and len(counts) == 3
        assert read.snapped == 0
    # the exact mapping, pixel by pixel
    grey = flexplat.read_gray(pairs[0].mask)
    expected = np.select([grey == 128, grey == 255], [1, 2], 0)
    assert np.array_equal(codec.read_mask(pairs[0]).mask, expected)


def test_parts_task_needs_no_label_file(zheng_copy):
    root, fakes = zheng_copy
    (root / "class_labels.csv").unlink()
    codec, pairs = scanned(root, "parts")
    assert len(pairs) == 10 and codec.read_mask(pairs[0]).mask.max() == 2
    assert codec.split_label(pairs[0]) is None
    with pytest.raises(DataError, match="class_labels.csv: label file not found"):
        scanned(root, "type")


def test_unexpected_grey_level_names_file_and_values(zheng_copy):
    root, _ = zheng_copy
    path = root / "masks" / "003.png"
    grey = flexplat.read_gray(path)
    grey[0, :5] = 200
    grey[1, :2] = 7
    flexplat.write_png(path, grey)
    codec, pairs = scanned(root)
    with pytest.raises(DataError) as err:
        codec.read_mask(pairs[2])
    message = str(err.value)
    assert str(path) in message and "7 (2 px)" in message and "200 (5 px)" in message
    assert "0 (background), 128 (cytoplasm) and 255 (nucleus)" in message
    codec.read_mask(pairs[1])  # others still read


def test_image_without_label_row_is_an_error_naming_it(zheng_copy):
    root, _ = zheng_copy
    csv = root / "class_labels.csv"
    csv.write_text("\n".join(line for line in csv.read_text().splitlines() if not line.startswith("7,")) + "\n")
    codec, pairs = scanned(root)
    assert codec.split_label(pairs[6]) is None  # no label: the split does not stratify it, no error here
    with pytest.raises(DataError) as err:
        codec.read_mask(pairs[6])
    assert str(root / "images" / "007.bmp") in str(err.value) and "'7'" in str(err.value)
    assert "data.lenient" in str(err.value)


def test_label_file_parsing(tmp_path):
    path = tmp_path / "labels.csv"
    path.write_text("image ID,class label\n1,2\n\n002,5\nabc,1\n1,2\n", encoding="utf-8")
    assert read_labels(path) == {"1": "lymphocyte", "2": "basophil", "abc": "neutrophil"}
    path.write_text("1,1\n2,3\n")  # no header
    assert read_labels(path) == {"1": "neutrophil", "2": "monocyte"}
    assert image_key("001") == image_key("1") == "1" and image_key(" x7 ") == "x7"
    for text, expected in (
        ("image ID,class label\n1,2\n2,6\n", "line 3: class label 6 is not one of 1 neutrophil"),
        ("image ID,class label\n1,2\n2,x\n", "line 3: class label 'x' is not a number"),
        ("image ID,class label\n1,2\n1,3\n", "line 3: image '1' is labelled monocyte here but lymphocyte on line 2"),
        ("image ID,class label\n1\n", "line 2: expected 'image ID,class label'"),
        ("image ID,class label\n", "holds no rows"),
    ):
        path.write_text(text)
        with pytest.raises(DataError, match=expected) as err:
            read_labels(path)
        assert str(path) in str(err.value)


def test_labels_option_is_relative_to_the_root_or_absolute(zheng_copy, tmp_path):
    root, fakes = zheng_copy
    (root / "class_labels.csv").rename(root / "types.csv")
    codec, pairs = scanned(root, labels="types.csv")
    assert codec.split_label(pairs[0]) == fakes[0].type
    moved = tmp_path / "elsewhere.csv"
    (root / "types.csv").rename(moved)
    codec, pairs = scanned(root, labels=str(moved))
    assert codec.read_mask(pairs[1]).mask.max() == TYPE_NAMES.index(LABEL_TYPES[2])


def test_wrong_classes_for_the_task_point_to_the_right_project():
    with pytest.raises(ConfigError, match="use project zheng-wbc-parts or set data.codec_options.task=parts"):
        ZhengCodec(classes("parts"), {"task": "type"})
    with pytest.raises(ConfigError, match="task 'parts' .* needs the classes background, cytoplasm, nucleus"):
        ZhengCodec(classes("type"), {"task": "parts"})
    with pytest.raises(ConfigError, match="data.codec_options.task: 'shape' is not allowed"):
        ZhengCodec(classes("type"), {"task": "shape"})


def test_read_before_scan_and_concurrent_reads(zheng_small):
    root, _ = zheng_small
    fresh = ZhengCodec(classes("type"), {})
    pair = flexplat.Pair(root / "images" / "001.bmp", root / "masks" / "001.png", "001")
    with pytest.raises(DataError, match="scan"):
        fresh.read_mask(pair)
    codec, pairs = scanned(root)
    expected = [codec.read_mask(p).mask for p in pairs]
    results: dict[int, list] = {}

    def work(k: int) -> None:
        results[k] = [codec.read_mask(p).mask for p in pairs * 3]

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for masks in results.values():
        assert all(np.array_equal(a, b) for a, b in zip(masks, expected * 3, strict=True))


def test_images_decode_as_rgb_of_their_own_size(zheng_small):
    root, fakes = zheng_small
    codec, pairs = scanned(root)
    for pair, fake in zip(pairs[:3], fakes[:3], strict=True):
        image = codec.read_image(pair)
        assert image.shape == (*fake.size, 3) and image.dtype == np.uint8
