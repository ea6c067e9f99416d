"""Training end to end on tiny generated data: run folder, callbacks, third-party callbacks, evaluate."""

from __future__ import annotations

import csv
import json
import types
import zipfile

import h5py
import pytest
import yaml

import flexplat
from flexplat.config import resolve
from flexplat.engine.rundir import RunDir
from flexplat.testing import dataset_config, plugin_system, sample_classes, write_rgb_dataset

TINY_MODEL = {"name": "tiny-unet", "image_size": [32, 32], "options": {"filters": 4, "depth": 2}}


def tiny_config(tmp_path, **train) -> dict:
    classes = sample_classes(3)
    root = write_rgb_dataset(tmp_path / "data", classes, n=6, size=(40, 36), splits=("train", "valid", "test"))
    layer = dataset_config(root, classes, splits=("train", "valid", "test"))
    layer["model"] = TINY_MODEL
    layer["train"] = {
        "epochs": 2,
        "batch_size": 3,
        "learning_rate": 1e-3,
        "loss": "ce_dice",
        "callbacks": {"checkpoint": {}, "csv_plots": {}, "tensorboard": {}, "epoch_change_infer": {"num_images": 2}},
        **train,
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(layer))
    return resolve(config_file=path)


def read_csv(path):
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def test_train_writes_a_complete_run_folder(tmp_path):
    from flexplat.engine.evaluate import evaluate_run
    from flexplat.engine.train import train

    config = tiny_config(tmp_path)
    run = train(config, out=tmp_path / "run")
    info = run.info()
    assert info["status"] == "completed"
    assert info["epochs_completed"] == 2
    assert info["seed"] == 42
    assert len(info["dataset"]["sha256"]) == 64
    assert info["dataset"]["pairs"] == {"train": 6, "valid": 6, "test": 6}
    assert {"flexplat", "tensorflow", "keras"} <= set(info["versions"])
    assert info["versions"]["flexplat-tiny"] == "0.0.1"  # the plugins' distributions, with versions
    assert run.model_path.is_file()
    with zipfile.ZipFile(run.model_path) as archive, archive.open("model.weights.h5") as member:
        with h5py.File(member, "r") as store:  # the model kept for inference: weights only
            assert "layers" in store and "optimizer" not in store
    assert RunDir.open(run.path).config() == config
    rows = read_csv(run.metrics_csv)
    assert [r["epoch"] for r in rows] == ["1", "2"]
    assert {
        "loss",
        "val_loss",
        "dice_mean",
        "val_dice_mean",
        "val_object_dice",
        "val_seed_dice",
        "learning_rate",
    } <= set(rows[0])
    assert (run.plots_dir / "loss.png").is_file() and (run.plots_dir / "dice_mean.png").is_file()
    assert sorted(p.name for p in run.epoch_infer_dir.iterdir()) == ["epoch_001.png", "epoch_002.png"]
    assert any(run.tensorboard_dir.rglob("*tfevents*"))

    figures = evaluate_run(run, "test")
    assert figures["images"] == 6
    assert set(figures["per_class"]) == {"class1", "class2"}
    assert 0.0 <= figures["object_dice"] <= 1.0
    assert figures["seed_dice"] is not None
    saved = json.loads(run.evaluation_path.read_text())
    assert saved["test"]["images"] == 6
    assert (run.path / "confusion_matrix_test.png").is_file()


def test_reduce_lr_really_reduces_the_learning_rate(tmp_path):
    from flexplat.engine.train import train

    # a learning rate so small that val_loss cannot improve by Keras' min_delta: every epoch is a plateau
    callbacks = {"csv_plots": {"plots": False}, "reduce_lr": {"factor": 0.5, "patience": 1, "min_lr": 0.0}}
    config = tiny_config(tmp_path, epochs=4, learning_rate=1e-9, callbacks=callbacks)
    run = train(config, out=tmp_path / "run")
    rates = [float(r["learning_rate"]) for r in read_csv(run.metrics_csv)]
    assert rates[0] == pytest.approx(1e-9)
    assert rates[-1] < rates[0] / 1.9


def test_third_party_callback_registers_like_builtins(tmp_path, tiny_plugin):
    import keras

    from flexplat.engine.train import train

    seen = []

    class Recorder(keras.callbacks.Callback):
        def __init__(self, tag):
            super().__init__()
            self.tag = tag

        def on_epoch_end(self, epoch, logs=None):
            seen.append((self.tag, epoch, round(float(logs["val_loss"]), 6)))

    spec = flexplat.CallbackSpec(
        name="recorder",
        description="records epochs",
        factory=lambda context, options: Recorder(options["tag"]),
        options={"tag": flexplat.Option("x", "a label")},
    )
    plugin = types.SimpleNamespace(
        __name__="recorder-plugin", register_callbacks=flexplat.hookimpl(lambda register: register(spec))
    )
    with plugin_system(tiny_plugin, plugin):
        config = tiny_config(tmp_path, callbacks={"recorder": {"tag": "mine"}})
        train(config, out=tmp_path / "run")
        with pytest.raises(flexplat.ConfigError, match="train.callbacks.recorder.tagg: unknown key"):
            tiny_config(tmp_path / "again", callbacks={"recorder": {"tagg": "mine"}})
    assert [(tag, epoch) for tag, epoch, _ in seen] == [("mine", 0), ("mine", 1)]


def test_out_folder_with_files_is_never_reused(tmp_path):
    from flexplat.engine.train import train

    out = tmp_path / "run"
    out.mkdir()
    (out / "keep.txt").write_text("precious")
    with pytest.raises(flexplat.FlexplatError, match="already holds files"):
        train(tiny_config(tmp_path), out=out)
    assert (out / "keep.txt").read_text() == "precious"


def test_training_pastes_onto_the_configured_background(tmp_path, tiny_plugin):
    """The training pipeline draws from the registered background that train.augment names."""
    from flexplat.engine.train import train

    drawn = []

    def render(rng, size, diameter):
        drawn.append((size, diameter))
        import numpy as np

        return np.full((*size, 3), 200, np.uint8)

    spec = flexplat.BackgroundSpec("plain-glass", "d", render)
    plugin = types.SimpleNamespace(
        __name__="glass-plugin", register_backgrounds=flexplat.hookimpl(lambda register: register(spec))
    )
    with plugin_system(tiny_plugin, plugin):
        config = tiny_config(tmp_path, epochs=1, augment={"paste": 1.0, "paste_background": "plain-glass"})
        run = train(config, out=tmp_path / "run")
    assert run.info()["status"] == "completed"
    assert drawn and all(size == (32, 32) and diameter > 0 for size, diameter in drawn)


def test_a_one_channel_model_trains_on_the_luminance_and_infers_the_same_way(tmp_path):
    import numpy as np

    from flexplat.data.codecs import RgbMaskCodec
    from flexplat.data.pipeline import GREY_WEIGHTS, make_dataset
    from flexplat.engine.evaluate import evaluate_run
    from flexplat.engine.train import train

    config = tiny_config(tmp_path)
    config["model"]["channels"] = 1
    run = train(config, out=tmp_path / "run")
    assert run.info()["status"] == "completed"
    assert sorted(p.name for p in run.epoch_infer_dir.iterdir()) == ["epoch_001.png", "epoch_002.png"]
    assert evaluate_run(run, "test")["images"] == 6  # evaluation shows the model grey images too

    codec = RgbMaskCodec(sample_classes(3), {})
    pairs = codec.scan("train/images", "train/masks", config["data"]["root"]).pairs
    kwargs = {"shuffle": False, "augment": None, "seed": 0}
    rgb = next(iter(make_dataset(pairs, codec, (32, 32), 3, 6, **kwargs)))[0].numpy()
    grey = next(iter(make_dataset(pairs, codec, (32, 32), 3, 6, channels=1, **kwargs)))[0].numpy()
    assert grey.shape == (6, 32, 32, 1)
    assert np.abs(grey[..., 0] - np.round(rgb @ np.array(GREY_WEIGHTS))).max() <= 1.0
