"""Fine-tuning with `train --init RUN`: weights carried over, classes and model checked, scale matched."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml
from rich.console import Console

from flexplat.config import resolve
from flexplat.engine.model_file import load_model
from flexplat.engine.rundir import RunDir
from flexplat.errors import FlexplatError
from flexplat.testing import dataset_config, sample_classes, write_rgb_dataset

keras = pytest.importorskip("keras")

TINY_MODEL = {"name": "tiny-unet-any-size", "image_size": [32, 32], "options": {"filters": 4, "depth": 2}}


def config_for(tmp_path, name: str, classes, size=(40, 36), **train) -> dict:
    root = write_rgb_dataset(tmp_path / name, classes, n=6, size=size, splits=("train", "valid"))
    layer = dataset_config(root, classes, splits=("train", "valid"))
    layer["model"] = TINY_MODEL
    layer["train"] = {"epochs": 1, "batch_size": 3, "learning_rate": 1e-3, "callbacks": {"checkpoint": {}}, **train}
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(layer))
    return resolve(config_file=path)


@pytest.fixture
def source(tmp_path) -> RunDir:
    from flexplat.engine.train import train

    return train(config_for(tmp_path, "source-data", sample_classes(3)), out=tmp_path / "source")


def test_init_starts_from_the_source_runs_weights(tmp_path, source):
    from flexplat.engine.train import train

    config = config_for(tmp_path, "target-data", sample_classes(3), learning_rate=0.0)  # nothing learnt
    run = train(config, out=tmp_path / "tuned", init=source.path)
    for mine, theirs in zip(load_model(run).get_weights(), load_model(source).get_weights(), strict=True):
        np.testing.assert_array_equal(mine, theirs)
    assert run.info()["init"] == {"run": str(source.path), "model": "tiny-unet-any-size"}


def test_init_refuses_other_classes_or_another_model(tmp_path, source):
    from flexplat.engine.train import train

    renamed = sample_classes(3)
    renamed[2] = dataclasses.replace(renamed[2], name="other")
    with pytest.raises(FlexplatError, match="classes .* differ") as error:
        train(config_for(tmp_path, "renamed", renamed), out=tmp_path / "x", init=source.path)
    assert "new here: ['other']" in str(error.value) and not (tmp_path / "x").exists()
    swapped = sample_classes(3)
    swapped[1], swapped[2] = swapped[2], swapped[1]
    with pytest.raises(FlexplatError, match="another order"):
        train(config_for(tmp_path, "swapped", swapped), out=tmp_path / "y", init=source.path)
    config = config_for(tmp_path, "deeper", sample_classes(3))
    config["model"]["options"]["filters"] = 8
    with pytest.raises(FlexplatError, match="do not fit this model"):
        train(config, out=tmp_path / "z", init=source.path)


def test_init_brings_another_labs_images_to_the_scale_the_source_learnt(tmp_path, source):
    from flexplat.engine.data import load_splits
    from flexplat.engine.train import _match_init_scale

    learnt = source.training_scale()
    assert learnt is not None and learnt.object_diameter > 0
    # the source's own images inside a field of view twice as wide (as another lab's smears): resized to the
    # same model input, their cells look half as big
    config = config_for(tmp_path, "wider", sample_classes(3))
    root = Path(config["data"]["root"])
    for path in sorted(root.glob("*/*/*.png")):
        image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        h, w = image.shape[:2]
        wider = cv2.copyMakeBorder(image, h // 2, h - h // 2, w // 2, w - w // 2, cv2.BORDER_CONSTANT, value=0)
        cv2.imwrite(str(path), wider)
    codec, splits = load_splits(config, Console(quiet=True))
    _match_init_scale(config, source, codec, splits["train"], Console(quiet=True))
    assert config["model"]["image_size"] == [64, 64]  # twice the side, a multiple of 4 (depth 2)
    same = config_for(tmp_path, "same", sample_classes(3))
    codec, splits = load_splits(same, Console(quiet=True))
    _match_init_scale(same, source, codec, splits["train"], Console(quiet=True))
    assert same["model"]["image_size"] == [32, 32]
    assert json.loads((source.path / "run.json").read_text())["scale"]["object_diameter"] > 0


def test_init_points_out_class_weights_chosen_for_other_data(tmp_path, source):
    from flexplat.engine.train import train

    config = config_for(tmp_path, "target-data", sample_classes(3), loss_options={"class_weights": [1.0, 2.0, 3.0]})
    console = Console(record=True, width=200)
    train(config, out=tmp_path / "tuned", init=source.path, console=console)
    said = " ".join(console.export_text().split())
    assert "class_weights [1.0, 2.0, 3.0] balance the classes" in said and "class_weights: null" in said
    plain = Console(record=True, width=200)
    other = config_for(tmp_path, "other-data", sample_classes(3))
    train(other, out=tmp_path / "plain", init=source.path, console=plain)
    assert "class_weights" not in plain.export_text()
