"""The original experiment's weight files load into flexplat's FlexUNet and reproduce its output.

Reads ../shared/seed-weights (weights written by the original code, its probe input and outputs);
never copied into the repository; skips when absent.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import flexplat_flexunet
import numpy as np
import pytest

from flexplat import FlexplatError, import_original_config
from flexplat.testing import invoke, plugin_system, write_rgb_dataset

SEED = Path(__file__).resolve().parents[3].parent / "shared" / "seed-weights"
pytestmark = pytest.mark.skipif(not (SEED / "tiny_input.npy").is_file(), reason="../shared/seed-weights is absent")
FORMATS = ["tiny_original_weights.h5", "tiny_original_best_model.h5"]


@pytest.fixture(scope="module")
def flexunet():
    with plugin_system(flexplat_flexunet) as system:
        yield system.registry().get("model", "flexunet")


@pytest.fixture(scope="module")
def probe(flexunet):
    """The tiny FlexUNet of the fixture's config, with a second output at the penultimate layer."""
    import keras

    model_config = import_original_config(SEED / "tiny_train_eval_infer.config").config["model"]
    model = flexunet.build(tuple(model_config["image_size"]), 3, 6, **model_config["options"])
    return model, keras.Model(model.input, [model.output, model.get_layer("dec0_conv2").output])


@pytest.mark.parametrize("name", [*FORMATS, "tiny_nonzero_bias_weights.h5"])
def test_both_formats_reproduce_the_original_output(flexunet, probe, name):
    model, both = probe
    summary = flexunet.load_weights(model, SEED / name)
    assert "loaded 18 layers (120,870 weights)" in summary
    output, penultimate = both.predict(np.load(SEED / "tiny_input.npy"), verbose=0)
    expected = "tiny_nonzero_bias_output.npy" if "nonzero" in name else "tiny_output.npy"
    assert np.abs(output - np.load(SEED / expected)).max() < 1e-5
    if "nonzero" not in name:
        assert np.abs(penultimate - np.load(SEED / "tiny_penultimate.npy")).max() < 1e-4
    else:  # the biases really are in use: the zero-bias reference no longer matches
        assert np.abs(output - np.load(SEED / "tiny_output.npy")).max() > 1e-3


def test_a_model_of_other_options_is_refused_naming_the_layer(flexunet):
    model = flexunet.build((64, 64), 3, 6, base_filters=16, base_kernels=3, num_layers=4, input_normalize=False)
    with pytest.raises(FlexplatError, match=r"layer 'conv2d' \[\(3, 3, 3, 8\), \(8,\)\] does not fit flexplat layer"):
        flexunet.load_weights(model, SEED / FORMATS[0])
    deeper = flexunet.build((64, 64), 3, 6, base_filters=8, base_kernels=3, num_layers=3)
    with pytest.raises(FlexplatError, match="18 layers with weights, this flexunet has 13"):
        flexunet.load_weights(deeper, SEED / FORMATS[0])


def original_layout(tmp_path: Path, classes: list) -> Path:
    """A small dataset laid out as the original's: <split>/<class>/images|masks (the config's wildcards)."""
    stage = write_rgb_dataset(tmp_path / "stage", classes, n=4, size=(64, 64), splits=("train", "valid", "test"))
    root = tmp_path / "dataset"
    for split in ("train", "valid", "test"):
        shutil.copytree(stage / split, root / split / "baso")
    return root


def test_import_adopts_weights_into_a_run_that_infer_and_train_use(flexunet, tmp_path):
    config = tmp_path / "tiny.yaml"
    run = tmp_path / "adopted"
    result = invoke(["config", "import", str(SEED / "tiny_train_eval_infer.config"), "--out", str(config),
                     "--weights", str(SEED / FORMATS[1]), "--run-out", str(run)], terminal_width=200)  # fmt: skip
    assert result.exit_code == 0, result.output
    assert json.loads((run / "run.json").read_text())["status"] == "completed"
    data = original_layout(tmp_path, import_original_config(SEED / "tiny_train_eval_infer.config").config["classes"])
    inferred = invoke(["infer", "--run", str(run), "--images", str(data / "test" / "baso" / "images"),
                       "--output", str(tmp_path / "pred"), "--no-overlay"], terminal_width=200)  # fmt: skip
    assert inferred.exit_code == 0, inferred.output
    assert len(list((tmp_path / "pred").glob("*.png"))) == 4
    evaluated = invoke(["evaluate", str(run), "--data", str(data / "test" / "baso")], terminal_width=200)
    assert evaluated.exit_code == 0, evaluated.output
    trained = invoke(["train", "--config", str(config), "--data", str(data), "--epochs", "1", "--out",
                      str(tmp_path / "tuned"), "--init-weights", str(SEED / FORMATS[0]), "--no-evaluate"])  # fmt: skip
    assert trained.exit_code == 0, trained.output
    assert "loaded 18 layers" in trained.output
    assert (tmp_path / "tuned" / "model.keras").is_file()
