"""Leak-free splits (split_by_original) and split resolution from a config (layout)."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from flexplat.config import validate_config
from flexplat.data.codecs import RgbMaskCodec
from flexplat.data.layout import detect_layout, resolve_split_scans
from flexplat.data.splits import split_by_original
from flexplat.errors import ConfigError, DataError
from flexplat.testing import dataset_config, sample_classes, write_rgb_dataset


def _origin(item: str) -> str:
    return item.split("~")[0]


def test_no_group_ever_spans_two_splits_random_cases():
    rng = random.Random(1234)
    for case in range(300):
        n_groups = rng.randint(1, 40)
        items = [f"g{g}~{k}" for g in range(n_groups) for k in range(rng.randint(1, 6))]
        rng.shuffle(items)
        valid = rng.choice([0.0, 0.1, 0.2, 0.3])
        test = rng.choice([0.0, 0.1, 0.25])
        labels = {f"g{g}": rng.choice("AB") for g in range(n_groups)}
        label = (lambda x, labels=labels: labels[_origin(x)]) if case % 2 else None
        parts = split_by_original(items, _origin, {"valid": valid, "test": test}, seed=case, label=label)
        assert set(parts) == {"train", "valid", "test"}
        assert sorted(x for p in parts.values() for x in p) == sorted(items)  # a partition
        owner: dict[str, str] = {}
        for name, part in parts.items():
            for x in part:
                assert owner.setdefault(_origin(x), name) == name, f"case {case}: {_origin(x)} spans splits"
        # deterministic, and independent of the input order
        shuffled = items[:]
        rng.shuffle(shuffled)
        again = split_by_original(shuffled, _origin, {"valid": valid, "test": test}, seed=case, label=label)
        assert {k: sorted(v) for k, v in again.items()} == {k: sorted(v) for k, v in parts.items()}
        # every split with a positive fraction gets a group when there are enough groups
        if n_groups >= 3:
            for name, fraction in (("valid", valid), ("test", test)):
                assert (len(parts[name]) > 0) == (fraction > 0)


def test_fractions_are_respected_in_items():
    items = [f"o{i // 2}~{i % 2}" for i in range(2000)]  # 1000 originals x 2 files
    parts = split_by_original(items, _origin, {"valid": 0.2, "test": 0.1}, seed=0)
    assert abs(len(parts["valid"]) - 400) <= 4
    assert abs(len(parts["test"]) - 200) <= 4
    assert len(parts["train"]) == 2000 - len(parts["valid"]) - len(parts["test"])
    # within a split, items keep their input order
    assert parts["train"] == [x for x in items if x in set(parts["train"])]


def test_stratified_by_label():
    items = [f"a{i}" for i in range(600)] + [f"b{i}" for i in range(400)]
    parts = split_by_original(items, lambda x: x, {"valid": 0.2, "test": 0.1}, seed=3, label=lambda x: x[0])
    counts = {name: Counter(x[0] for x in part) for name, part in parts.items()}
    assert counts["valid"] == {"a": 120, "b": 80}
    assert counts["test"] == {"a": 60, "b": 40}
    assert counts["train"] == {"a": 420, "b": 280}


def test_seed_changes_the_split_and_bad_fractions():
    items = [str(i) for i in range(100)]
    a = split_by_original(items, str, {"valid": 0.2}, seed=1)
    b = split_by_original(items, str, {"valid": 0.2}, seed=2)
    assert a["valid"] != b["valid"] and len(a["valid"]) == len(b["valid"]) == 20
    with pytest.raises(ConfigError, match="nothing for training"):
        split_by_original(items, str, {"valid": 0.6, "test": 0.4}, seed=0)
    with pytest.raises(ValueError):
        split_by_original(items, str, {"train": 0.5}, seed=0)


# -- layout -----------------------------------------------------------------------------------

CLASSES = sample_classes(3)


def _config(root, **data) -> dict:
    raw = dataset_config(root, CLASSES)
    raw["data"].update(data)
    return validate_config(raw)


def test_carves_valid_and_test_from_train_by_original(tmp_path):
    write_rgb_dataset(tmp_path, CLASSES, n=30, size=(8, 8))
    config = _config(tmp_path, split={"valid": 0.2, "test": 0.2, "seed": 5})
    codec = RgbMaskCodec(CLASSES, {})

    def original(stem: str) -> str:  # train_000 .. train_029: three files per original
        return str(int(stem.split("_")[1]) // 3)

    scans = resolve_split_scans(config, codec, original)
    sizes = {k: len(v.pairs) for k, v in scans.items()}
    assert sizes == {"train": 18, "valid": 6, "test": 6}
    seen: dict[str, str] = {}
    for split, scan in scans.items():
        for pair in scan.pairs:
            assert seen.setdefault(original(pair.stem), split) == split
    assert resolve_split_scans(config, codec, original)["valid"].pairs == scans["valid"].pairs  # deterministic


def test_explicit_split_folders_and_zero_fractions(tmp_path):
    write_rgb_dataset(tmp_path, CLASSES, n=3, size=(8, 8), splits=("train", "valid"))
    config = _config(
        tmp_path, valid={"images": "valid/images", "masks": "valid/masks"}, split={"valid": 0.3, "test": 0.0}
    )
    scans = resolve_split_scans(config, RgbMaskCodec(CLASSES, {}))
    assert [p.stem for p in scans["valid"].pairs] == ["valid_000", "valid_001", "valid_002"]
    assert len(scans["train"].pairs) == 3 and scans["test"].pairs == []


def test_root_not_set_and_train_missing(tmp_path):
    config = _config(tmp_path)
    config["data"]["root"] = None
    with pytest.raises(DataError, match="--data"):
        resolve_split_scans(config, RgbMaskCodec(CLASSES, {}))
    config["data"]["root"] = str(tmp_path)
    with pytest.raises(DataError) as err:
        resolve_split_scans(config, RgbMaskCodec(CLASSES, {}))
    assert str(tmp_path / "train" / "images") in str(err.value) and "--data" in str(err.value)


def test_detect_layout(tmp_path):
    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    assert detect_layout(tmp_path) == {"train": {"images": "images", "masks": "masks"}}
    write_rgb_dataset(tmp_path / "d", CLASSES, n=1, size=(4, 4), splits=("train", "test"))
    assert detect_layout(tmp_path / "d") == {
        "train": {"images": "train/images", "masks": "train/masks"},
        "test": {"images": "test/images", "masks": "test/masks"},
    }
    (tmp_path / "g" / "train" / "basophil" / "images").mkdir(parents=True)
    assert detect_layout(tmp_path / "g")["train"] == {"images": "train/*/images", "masks": "train/*/masks"}
    with pytest.raises(DataError, match="no dataset layout"):
        detect_layout(tmp_path / "d" / "train" / "images")
