"""`flexplat data check` and the quick check run before training."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import yaml
from click.testing import CliRunner

from flexplat.cli import cli
from flexplat.config import validate_config
from flexplat.data import io
from flexplat.data.check import check_dataset, quick_check
from flexplat.data.codecs import RgbMaskCodec
from flexplat.data.layout import resolve_split_scans
from flexplat.errors import DataError
from flexplat.testing import dataset_config, sample_classes, write_rgb_dataset

CLASSES = sample_classes(3)


def _broken_dataset(root):
    """Six pairs, then: train_001 loses its mask, train_002's image is a truncated PNG, train_003's mask
    holds a blue blob (no class is blue)."""
    write_rgb_dataset(root, CLASSES, n=6, size=(24, 24))
    (root / "train/masks/train_001.png").unlink()
    corrupt = root / "train/images/train_002.png"
    corrupt.write_bytes(corrupt.read_bytes()[:120])
    mask = io.read_image(root / "train/masks/train_003.png")
    mask[2:6, 2:6] = (0, 0, 255)
    io.write_png(root / "train/masks/train_003.png", mask)
    return root


def _classes_file(tmp_path):
    path = tmp_path / "classes.yaml"
    path.write_text(yaml.safe_dump({"classes": dataset_config(tmp_path, CLASSES)["classes"]}))
    return path


def test_cli_reports_missing_mask_corrupt_png_and_off_palette_mask(tmp_path):
    root = _broken_dataset(tmp_path / "ds")
    result = CliRunner().invoke(cli, ["data", "check", str(root), "--config", str(_classes_file(tmp_path))])
    assert result.exit_code == 1, result.output
    out = result.output
    assert f"{root / 'train/images/train_001.png'}: image has no mask" in out
    assert f"{root / 'train/images/train_002.png'}: cannot decode image" in out
    assert f"{root / 'train/masks/train_003.png'}: 16 pixel(s) have colours matching no class" in out
    assert "(0, 0, 255) x 16 px" in out
    assert "3 error(s)" in out

    lenient = CliRunner().invoke(cli, ["data", "check", str(root), "--config", str(_classes_file(tmp_path)),
                                       "--lenient"])  # fmt: skip
    assert lenient.exit_code == 0, lenient.output
    assert "skipped: " in lenient.output and "OK: 5 pairs, 2 skipped" in lenient.output


def test_cli_directory_needs_classes(tmp_path):
    root = write_rgb_dataset(tmp_path / "ds", CLASSES, n=2, size=(8, 8))
    result = CliRunner().invoke(cli, ["data", "check", str(root)])
    assert result.exit_code != 0 and "no classes known" in result.output
    (root / "dataset.yaml").write_text(yaml.safe_dump({"classes": dataset_config(root, CLASSES)["classes"]}))
    result = CliRunner().invoke(cli, ["data", "check", str(root)])
    assert result.exit_code == 0, result.output
    assert "OK: 2 pairs" in result.output
    result = CliRunner().invoke(cli, ["data", "check", str(tmp_path / "nope")])
    assert result.exit_code != 0 and "neither a dataset folder nor an installed project" in result.output


def _config(root, **data):
    """A config with train only (no carving), unless ``data`` says otherwise."""
    raw = dataset_config(root, CLASSES, splits=("train",))
    raw["data"].update({"split": {"valid": 0.0, "test": 0.0, "seed": 0}, **data})
    return validate_config(raw)


def test_report_counts_histograms_conversions_and_size_mismatch(tmp_path):
    root = write_rgb_dataset(tmp_path, CLASSES, n=4, size=(10, 10))
    gray = cv2.cvtColor(io.read_image(root / "train/images/train_000.png"), cv2.COLOR_RGB2GRAY)
    io.write_png(root / "train/images/train_000.png", gray)  # converted, with a warning
    io.write_png(root / "train/images/train_001.png", np.zeros((10, 12, 3), np.uint8))  # size mismatch
    report = check_dataset(_config(root))
    train = report.splits["train"]
    assert (train.pairs, train.usable) == (4, 3)
    assert len(report.errors) == 1 and "is 12x10 but its mask" in report.errors[0]
    assert any("train_000.png: grayscale repeated into 3 channels (converted)" in w for w in report.warnings)
    pairs = resolve_split_scans(_config(root), codec())["train"].pairs
    masks = [codec().read_mask(pairs[i]).mask for i in (0, 2, 3)]
    assert train.class_pixels == np.bincount(np.concatenate([m.ravel() for m in masks]), minlength=3).tolist()
    assert train.class_images == [3, 2, 1]  # train_000/002 hold class1, train_003 class2 (001 unusable)


def codec():
    return RgbMaskCodec(CLASSES, {})


def test_quick_check_raises_or_skips_when_lenient(tmp_path):
    root = _broken_dataset(tmp_path)
    config = _config(root)
    scans = resolve_split_scans(config, codec())
    with pytest.raises(DataError) as err:
        quick_check(config, scans)
    message = str(err.value)
    for name in ("images/train_001.png", "images/train_002.png", "masks/train_003.png"):
        assert name in message
    config["data"]["lenient"] = True
    result = quick_check(config, scans)
    assert sorted(p.stem for p in result.skip) == ["train_002", "train_003"]
    assert result.checked == result.total == 5
    kept = result.apply(scans)
    assert sum(len(s.pairs) for s in kept.values()) == 3
    assert all(p.stem not in ("train_002", "train_003") for s in kept.values() for p in s.pairs)


def test_quick_check_samples_large_datasets(tmp_path):
    root = write_rgb_dataset(tmp_path, CLASSES, n=10, size=(8, 8))
    config = _config(root)
    result = quick_check(config, resolve_split_scans(config, codec()), max_decode=4)
    assert (result.checked, result.total, result.skip, result.problems) == (4, 10, [], [])


def test_rendered_report_shortens_long_lists_and_names_snapped_masks_under_the_root(tmp_path):
    from rich.console import Console

    from flexplat.reports import render_check_report

    root = _broken_dataset(tmp_path)
    mask = io.read_image(root / "train/masks/train_004.png")
    mask[0:3, 0:3] = (5, 5, 5)  # near background: snapped, not an error
    io.write_png(root / "train/masks/train_004.png", mask)
    console = Console(record=True, width=200, color_system=None)
    render_check_report(check_dataset(_config(root)), console, max_lines=1)
    out = console.export_text()
    assert "Errors (3):" in out and "... and 2 more" in out
    assert "train/masks/train_004.png" in out and str(root / "train/masks/train_004.png") not in out
    assert "9 mask pixels snapped to the nearest class in 1 files" in out
    assert "3 error(s) in 5 pairs" in out
