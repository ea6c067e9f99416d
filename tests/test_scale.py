"""Pixel scale: the training scale record, estimating object size with the model, TTA."""

from __future__ import annotations

import json
import math

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from flexplat.cli import cli
from flexplat.engine.rundir import RunDir
from flexplat.engine.scale import (
    ScalePlan,
    TrainingScale,
    estimate_diameter,
    measure_training_scale,
    object_diameters,
    plan_scale,
    predicted_diameter,
)
from flexplat.engine.segment import with_tta
from flexplat.testing import write_run

keras = pytest.importorskip("keras")

CLASSES = [{"name": "background", "color": [0, 0, 0]}, {"name": "cell", "color": [255, 0, 0]}]
SCALE = TrainingScale(16.0, 12.0, 20.0, 5, 5).to_dict()  # the runs below learnt 16 px objects


def disc(size: int, diameter: float, value: int = 1, channels: int | None = None) -> np.ndarray:
    shape = (size, size) if channels is None else (size, size, channels)
    image = np.zeros(shape, np.uint8)
    colour = value if channels is None else (value,) * channels
    cv2.circle(image, (size // 2, size // 2), int(round(diameter / 2)), colour, -1)
    return image


def test_object_diameters_of_discs_are_their_equivalent_diameters():
    labels = np.zeros((100, 200), np.uint8)
    cv2.circle(labels, (50, 50), 20, 1, -1)
    cv2.circle(labels, (150, 50), 10, 2, -1)
    found = sorted(object_diameters(labels))
    assert found == pytest.approx([21, 41], abs=1.5)


def test_training_scale_is_measured_after_the_resize_to_the_model_input():
    masks = [disc(120, 60), disc(120, 80), disc(120, 40)]
    scale = measure_training_scale(masks, (96, 96))
    assert scale is not None and scale.objects == 3 and scale.images == 3
    assert scale.object_diameter == pytest.approx(60 * 96 / 120, abs=2)  # the median disc, in model pixels
    assert TrainingScale.from_dict(scale.to_dict()).object_diameter == pytest.approx(scale.object_diameter, abs=0.01)
    assert measure_training_scale([np.zeros((10, 10), np.uint8)], (8, 8)) is None


def test_predicted_diameter_weights_large_objects_and_ignores_specks():
    labels = disc(200, 80)
    labels[5:8, 5:8] = 1  # a speck far below 0.15 x the expected 60 px
    labels[180:190, 180:190] = 1  # a small object: counts, but weighs little
    assert predicted_diameter(labels, expected=60) == pytest.approx(80, abs=2)
    assert predicted_diameter(np.zeros((20, 20), np.uint8), expected=10) is None


def test_size_estimate_sweeps_scales_and_keeps_the_one_nearest_the_training_diameter():
    """A model that, shown objects far smaller than it learnt, takes the whole field for one object
    (as a ds1 model does with a crowded smear): the first pass alone would report the field."""
    image = disc(400, 80)  # the object is 80 px across; the model input is 100 px, it learnt 60 px objects
    passes = []

    def segment(img, factor):
        passes.append(factor)
        size = round(img.shape[0] * factor)
        if 80 * factor < 30:  # too small for this model: everything is "object"
            return np.ones((size, size), np.uint8)
        return (cv2.resize(img, (size, size), interpolation=cv2.INTER_NEAREST) > 0).astype(np.uint8)

    first = predicted_diameter(segment(image, 0.25), 60.0) / 0.25
    assert first > 300  # one pass at the training framing (400 -> 100 px) is fooled
    passes.clear()
    assert estimate_diameter(segment, image, 0.25, 60.0) == pytest.approx(80, rel=0.05)
    assert passes[:5] == pytest.approx([0.25 * m for m in (1, 2**0.5, 2, 2**1.5, 4)])


def test_plan_scale_given_estimated_per_image_and_fallbacks():
    training = TrainingScale(40.0, 30.0, 50.0, 10, 10)
    calls = []

    def estimate():
        calls.append(1)
        return [80.0, None, 100.0]

    given = plan_scale(training, diameter=20.0, per_image=False, rescale=True, estimate=estimate)
    assert (given.method, given.factor, calls) == ("given", 2.0, [])
    folder = plan_scale(training, diameter=None, per_image=False, rescale=True, estimate=estimate)
    assert folder.method == "estimated" and folder.diameter == 90.0 and folder.factor == pytest.approx(40 / 90)
    assert folder.factor_for(0, 300, 300, (96, 96)) == pytest.approx(40 / 90)
    each = plan_scale(training, diameter=None, per_image=True, rescale=True, estimate=estimate)
    assert each.factor_for(2, 300, 300, (96, 96)) == pytest.approx(0.4)
    assert each.factor_for(1, 300, 150, (96, 96)) == (96 / 300, 96 / 150)  # nothing found: training framing
    off = plan_scale(training, diameter=None, per_image=False, rescale=False, estimate=estimate)
    old = plan_scale(None, diameter=None, per_image=False, rescale=True, estimate=estimate)
    assert off.method == old.method == "training framing" and off.factor_for(0, 64, 32, (32, 32)) == (0.5, 1.0)
    nothing = plan_scale(training, diameter=None, per_image=False, rescale=True, estimate=lambda: [None])
    assert nothing.method == "training framing" and isinstance(nothing, ScalePlan)


def test_tta_makes_any_prediction_flip_and_turn_equivariant():
    rng = np.random.default_rng(0)
    weights = rng.normal(size=(3, 2)).astype(np.float32)

    def predict(batch: np.ndarray) -> np.ndarray:  # position-dependent: not equivariant by itself
        height, width = batch.shape[1:3]
        ramp = np.linspace(0, 1, height * width, dtype=np.float32).reshape(1, height, width, 1)
        logits = batch @ weights
        logits[..., 1:] += 3 * ramp
        exp = np.exp(logits - logits.max(-1, keepdims=True))
        return exp / exp.sum(-1, keepdims=True)

    batch = rng.random((2, 8, 8, 3)).astype(np.float32)
    averaged = with_tta(predict)
    plain_flip = predict(batch[:, :, ::-1])[:, :, ::-1]
    assert not np.allclose(plain_flip, predict(batch), atol=1e-3)
    np.testing.assert_allclose(averaged(batch[:, :, ::-1])[:, :, ::-1], averaged(batch), atol=1e-5)
    turned = np.rot90(averaged(np.ascontiguousarray(np.rot90(batch, 1, axes=(1, 2)))), -1, axes=(1, 2))
    np.testing.assert_allclose(turned, averaged(batch), atol=1e-5)
    np.testing.assert_allclose(averaged(batch).sum(-1), 1.0, atol=1e-5)
    rectangle = rng.random((1, 8, 12, 3)).astype(np.float32)
    assert averaged(rectangle).shape == (1, 8, 12, 2)


def red_model():
    """Fully convolutional, per pixel: 'cell' where red dominates."""
    inputs = keras.Input((None, None, 3))
    conv = keras.layers.Conv2D(2, 1, activation="softmax")
    outputs = conv(inputs)
    kernel = np.zeros((1, 1, 3, 2), np.float32)
    kernel[0, 0, 0] = [0.0, 0.1]
    kernel[0, 0, 1] = [0.0, -0.1]
    conv.set_weights([kernel, np.array([0.0, -12.8], np.float32)])
    return keras.Model(inputs, outputs)


@pytest.fixture(scope="module")
def scaled_run(tmp_path_factory) -> RunDir:
    return write_run(tmp_path_factory.mktemp("runs") / "scaled", red_model(), CLASSES, scale=SCALE)


def write_disc_images(folder, diameters, size=160):
    folder.mkdir()
    for i, diameter in enumerate(diameters):
        image = np.full((size, size, 3), 40, np.uint8)
        cv2.circle(image, (size // 2, size // 2), int(diameter / 2), (255, 0, 0), -1)
        ok, data = cv2.imencode(".png", image[:, :, ::-1])
        (folder / f"img{i}.png").write_bytes(data.tobytes())


def test_infer_estimates_the_object_size_and_brings_the_folder_to_the_training_scale(scaled_run, tmp_path):
    images = tmp_path / "images"
    write_disc_images(images, [40, 40, 48])
    out = tmp_path / "out"
    args = ["infer", "--images", str(images), "--run", str(scaled_run.path), "--output", str(out), "--index-masks"]
    result = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "summary.json").read_text())
    scale = summary["scale"]
    assert scale["method"] == "estimated" and scale["training_object_diameter"] == 16.0
    assert scale["object_diameter"] == pytest.approx(40, abs=3)  # folder median of 40, 40, 48
    assert scale["factor"] == pytest.approx(16 / 40, rel=0.08)
    rows = summary["images"]
    assert [r["estimated_diameter"] for r in rows] == pytest.approx([40, 40, 48], abs=3)
    assert all(r["scale"] == scale["factor"] for r in rows) and not any(r["tiled"] for r in rows)
    index = cv2.imread(str(out / "img2_index.png"), cv2.IMREAD_UNCHANGED)
    assert index.shape == (160, 160)  # written at the image's own size
    assert math.isclose((index > 0).mean(), (disc(160, 48) > 0).mean(), abs_tol=0.01)
    assert "scale: estimated" in " ".join(result.output.split())


def test_given_diameter_per_image_scale_and_no_rescale(scaled_run, tmp_path):
    images = tmp_path / "images"
    write_disc_images(images, [40, 80])
    base = ["infer", "--images", str(images), "--run", str(scaled_run.path), "--no-overlay"]
    runner = CliRunner()
    given = runner.invoke(cli, [*base, "--output", str(tmp_path / "g"), "--diameter", "8"], catch_exceptions=False)
    assert given.exit_code == 0, given.output
    summary = json.loads((tmp_path / "g" / "summary.json").read_text())
    assert summary["scale"]["method"] == "given" and summary["scale"]["factor"] == 2.0
    each = runner.invoke(cli, [*base, "--output", str(tmp_path / "e"), "--scale-per-image"], catch_exceptions=False)
    assert each.exit_code == 0, each.output
    rows = json.loads((tmp_path / "e" / "summary.json").read_text())["images"]
    assert [r["scale"] for r in rows] == pytest.approx([16 / 40, 16 / 80], rel=0.1)
    plain = runner.invoke(cli, [*base, "--output", str(tmp_path / "n"), "--no-rescale"], catch_exceptions=False)
    assert plain.exit_code == 0, plain.output
    rows = json.loads((tmp_path / "n" / "summary.json").read_text())["images"]
    assert rows[0]["scale"] == [0.2, 0.2]  # the training framing: 160 px resized to the 32 px input
    bad = runner.invoke(cli, [*base, "--output", str(tmp_path / "b"), "--diameter", "-3"])
    assert bad.exit_code != 0 and "--diameter" in bad.output


def test_a_fixed_input_model_without_tiles_gets_images_resized_to_its_input(tmp_path):
    inputs = keras.Input((32, 32, 3))
    outputs = red_model()(inputs)  # the same per-pixel rule, saved with one fixed input size
    run = write_run(tmp_path / "fixed", keras.Model(inputs, outputs), CLASSES, scale=SCALE)
    images = tmp_path / "images"
    write_disc_images(images, [40])
    out = tmp_path / "out"
    args = ["infer", "--images", str(images), "--run", str(run.path), "--output", str(out), "--no-tile"]
    result = CliRunner().invoke(cli, [*args, "--diameter", "40", "--index-masks"])
    assert result.exit_code == 0, result.output  # 64 px after scaling, resized to the 32 px input
    index = cv2.imread(str(out / "img0_index.png"), cv2.IMREAD_UNCHANGED)
    assert index.shape == (160, 160)
    assert math.isclose((index > 0).mean(), (disc(160, 40) > 0).mean(), abs_tol=0.01)


def test_images_larger_than_max_side_after_scaling_are_tiled(tmp_path):
    run = write_run(tmp_path / "small-side", red_model(), CLASSES, {"infer": {"max_side": 64}}, scale=SCALE)
    images = tmp_path / "images"
    write_disc_images(images, [40])
    base = ["infer", "--images", str(images), "--run", str(run.path), "--no-overlay", "--index-masks"]
    runner = CliRunner()
    for diameter, tiled in (("16", True), ("40", False)):  # 160 px stays 160 (> 64): tiles; 64 px: whole
        out = tmp_path / f"out{diameter}"
        result = runner.invoke(cli, [*base, "--output", str(out), "--diameter", diameter], catch_exceptions=False)
        assert result.exit_code == 0, result.output
        assert json.loads((out / "summary.json").read_text())["images"][0]["tiled"] is tiled
        index = cv2.imread(str(out / "img0_index.png"), cv2.IMREAD_UNCHANGED)
        assert math.isclose((index > 0).mean(), (disc(160, 40) > 0).mean(), abs_tol=0.01)


def test_drop_specks_turns_small_objects_into_certain_background():
    from flexplat.engine.segment import drop_specks

    probs = np.zeros((40, 40, 3), np.float32)
    probs[..., 0] = 1.0
    probs[5:25, 5:25] = [0.2, 0.7, 0.1]  # a 20 px object (equivalent diameter 22.6)
    probs[30:33, 30:33] = [0.1, 0.1, 0.8]  # a 3 px speck of another class (3.4)
    kept = drop_specks(probs, 3.0)
    assert kept is probs  # nothing below 3 px: untouched
    dropped = drop_specks(probs, 10.0)
    assert np.array_equal(dropped[30:33, 30:33], np.tile([1.0, 0.0, 0.0], (3, 3, 1)))
    assert np.array_equal(dropped[5:25, 5:25], probs[5:25, 5:25]) and probs[31, 31, 2] == np.float32(0.8)
    assert drop_specks(probs, 30.0)[..., 0].min() == 1.0  # everything is a speck at 30 px


def test_infer_drops_specks_below_a_quarter_of_the_small_training_objects(scaled_run, tmp_path):
    image = np.full((160, 160, 3), 40, np.uint8)
    cv2.circle(image, (100, 100), 40, (255, 0, 0), -1)  # 80 px: 16 px at the training framing (32 / 160)
    image[50:60, 50:60] = (255, 0, 0)  # 10 px: 2 px there, below 0.25 x the 12 px p10 = 3 px
    images = tmp_path / "images"
    images.mkdir()
    (images / "cells.png").write_bytes(cv2.imencode(".png", image[:, :, ::-1])[1].tobytes())
    keep_all = write_run(tmp_path / "keep-all", red_model(), CLASSES, {"infer": {"min_object": 0.0}}, scale=SCALE)
    found = {}
    for run in (scaled_run, keep_all):
        out = tmp_path / run.path.name
        args = ["infer", "--images", str(images), "--run", str(run.path), "--output", str(out), "--index-masks"]
        result = CliRunner().invoke(cli, [*args, "--no-rescale", "--no-overlay"], catch_exceptions=False)
        assert result.exit_code == 0, result.output
        found[run.path.name] = cv2.imread(str(out / "cells_index.png"), cv2.IMREAD_UNCHANGED)
    assert found["keep-all"][50:60, 50:60].mean() > 0.5 and found["keep-all"][100, 100] == 1
    assert found["scaled"][45:65, 45:65].max() == 0 and found["scaled"][100, 100] == 1
