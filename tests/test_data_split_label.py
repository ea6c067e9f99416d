"""Codec.split_label stratifies carved splits; `flexplat data check --json` reports the same figures as the tables."""

from __future__ import annotations

import json
from collections import Counter

from click.testing import CliRunner

from flexplat.config import validate_config
from flexplat.data.codecs import RgbMaskCodec
from flexplat.data.layout import resolve_split_scans
from flexplat.testing import dataset_config, sample_classes, write_rgb_dataset

CLASSES = sample_classes(3)


class LabelledCodec(RgbMaskCodec):
    """Labels train_000..train_059: the first 48 'common', the last 12 'rare'."""

    def split_label(self, pair):
        return "rare" if int(pair.stem.split("_")[1]) >= 48 else "common"


def _carve(root, codec):
    raw = dataset_config(root, CLASSES)
    raw["data"]["split"] = {"valid": 0.25, "test": 0.25, "seed": 0}
    return resolve_split_scans(validate_config(raw), codec)


def test_split_label_of_the_codec_stratifies_carved_splits(tmp_path):
    write_rgb_dataset(tmp_path, CLASSES, n=60, size=(8, 8))
    scans = _carve(tmp_path, LabelledCodec(CLASSES, {}))
    label = LabelledCodec(CLASSES, {}).split_label
    counts = {split: Counter(label(p) for p in scan.pairs) for split, scan in scans.items()}
    # 25 % of each label in valid and in test: 12 + 3, exactly
    assert counts["valid"] == {"common": 12, "rare": 3}
    assert counts["test"] == {"common": 12, "rare": 3}
    assert counts["train"] == {"common": 24, "rare": 6}


def test_codecs_without_a_label_split_as_before(tmp_path):
    from flexplat.data.splits import split_by_original

    write_rgb_dataset(tmp_path, CLASSES, n=60, size=(8, 8))
    codec = RgbMaskCodec(CLASSES, {})
    assert codec.split_label(codec.scan("train/images", "train/masks", tmp_path).pairs[0]) is None
    scans = _carve(tmp_path, codec)
    pairs = codec.scan("train/images", "train/masks", tmp_path).pairs
    expected = split_by_original(pairs, lambda p: p.stem, {"valid": 0.25, "test": 0.25}, 0)
    assert {k: v.pairs for k, v in scans.items()} == expected


def test_data_check_json(tmp_path):
    from flexplat.cli import cli

    write_rgb_dataset(tmp_path, CLASSES, n=6, size=(8, 8), splits=("train", "valid", "test"))
    (tmp_path / "dataset.yaml").write_text(json.dumps({"classes": dataset_config(tmp_path, CLASSES)["classes"]}))
    result = CliRunner().invoke(cli, ["data", "check", str(tmp_path), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["ok"] is True and report["total_pairs"] == 18 and report["codec"] == "rgb-mask"
    assert [c["name"] for c in report["classes"]] == ["background", "class1", "class2"]
    train, valid = report["splits"]["train"], report["splits"]["valid"]
    assert (train["pairs"], train["usable"], valid["pairs"], report["splits"]["test"]["pairs"]) == (6, 6, 6, 6)
    # write_dataset cycles foreground classes 1, 2, 1, ...: 3 images of each per split; every image has background
    assert train["class_images"] == [6, 3, 3] and valid["class_images"] == [6, 3, 3]
    assert report["totals"]["class_images"] == [18, 9, 9]
    assert sum(report["totals"]["class_pixels"]) == 18 * 8 * 8
    assert train["sizes"] == [{"height": 8, "width": 8, "count": 6}]
    assert report["errors"] == [] and report["skipped"] == []

    (tmp_path / "train" / "masks" / "train_000.png").write_bytes(b"not a png")
    broken = CliRunner().invoke(cli, ["data", "check", str(tmp_path), "--json"])
    assert broken.exit_code == 1
    report = json.loads(broken.output)
    assert report["ok"] is False and any("train_000.png" in e for e in report["errors"])
