"""`flexplat export` and `flexplat infer --backend`: real tiny Keras models, real tf2onnx and ONNX Runtime."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from flexplat.cli import cli
from flexplat.data.io import read_gray, read_image, write_png
from flexplat.engine.rundir import RunDir
from flexplat.testing import plugin_system, write_run

keras = pytest.importorskip("keras")
pytest.importorskip("onnxruntime")
pytest.importorskip("tf2onnx")

CLASSES = [
    {"name": "background", "color": [0, 0, 0]},
    {"name": "class1", "color": [255, 0, 0]},
    {"name": "class2", "color": [0, 255, 0]},
]
SCALE = {"object_diameter": 9.5, "diameter_p10": 7.0, "diameter_p90": 12.0, "objects": 40, "images": 6}


def small_unet(fixed: bool, seed: int = 3):
    """Conv, pool, conv, upsample, concat, softmax: fixed 32x32 input (tiny-unet) or any size."""
    keras.utils.set_random_seed(seed)
    x = inputs = keras.Input((32, 32, 3) if fixed else (None, None, 3))
    colour = x = keras.layers.Rescaling(1 / 255)(x)
    skip = keras.layers.Conv2D(6, 3, padding="same", activation="relu")(x)
    x = keras.layers.MaxPooling2D()(skip)
    x = keras.layers.Conv2D(8, 3, padding="same", activation="relu")(x)
    x = keras.layers.Concatenate()([keras.layers.UpSampling2D()(x), skip, colour])
    head = keras.layers.Conv2D(3, 1, activation="softmax")
    outputs = head(x)
    kernel, _ = head.get_weights()
    kernel[0, 0, -3:] = [[0, 8, -8], [0, -8, 8], [0, 0, 0]]  # red pixels: class 1, green: class 2
    head.set_weights([kernel, np.array([0.0, -2.0, -2.0], np.float32)])
    return keras.Model(inputs, outputs)


def make_run(path: Path, fixed: bool) -> RunDir:
    config = {"project": "tiny", "model": {"name": "tiny-unet", "options": {"depth": 1}}}
    return write_run(path, small_unet(fixed), CLASSES, config, finished="2026-01-01T10:00:00", scale=SCALE)


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, RunDir]:
    root = tmp_path_factory.mktemp("runs")
    return {"fixed": make_run(root / "fixed", True), "dynamic": make_run(root / "dynamic", False)}


def _tiny_module():
    spec = importlib.util.spec_from_file_location(
        "flexplat_tiny", Path(__file__).parent / "plugin_fixtures" / "flexplat_tiny.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def exports(runs) -> dict[str, Path]:
    """Each run exported to ONNX at its default place (RUN/export/onnx), through the CLI."""
    with plugin_system() as system:  # module scope: the per-test tiny plugin (conftest) is not set up yet
        system.add(_tiny_module(), "tiny", "flexplat-tiny", "0.0.1")
        for run in runs.values():
            result = CliRunner().invoke(cli, ["export", str(run.path), "--format", "onnx"], catch_exceptions=False)
            assert result.exit_code == 0, result.output
            assert "max |difference|" in result.output
    return {name: run.path / "export" / "onnx" for name, run in runs.items()}


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("images")
    rng = np.random.default_rng(0)
    for name, (height, width) in {"a.png": (32, 32), "b.png": (45, 70), "c.png": (90, 75)}.items():
        image = np.full((height, width, 3), 30, np.uint8)
        image[height // 4 : height // 2, width // 3 : width // 2] = (220, 40, 40)
        write_png(folder / name, np.clip(image + rng.integers(0, 25, image.shape), 0, 255).astype(np.uint8))
    (folder / "broken.png").write_bytes(b"not a png")
    return folder


def infer(*args: str):
    return CliRunner().invoke(cli, ["infer", *args], catch_exceptions=False)


def test_export_writes_a_self_describing_folder(runs, exports):
    for name, fixed in (("fixed", True), ("dynamic", False)):
        manifest = json.loads((exports[name] / "manifest.json").read_text())
        assert (exports[name] / "model.onnx").stat().st_size > 1000
        assert manifest["format"] == "onnx"
        assert manifest["input"]["shape"] == ([32, 32, 3] if fixed else [None, None, 3])
        assert manifest["input"]["dynamic_size"] is (not fixed)
        assert manifest["input"]["size_multiple"] == 2  # tiny-unet: 2**depth
        assert manifest["config"]["classes"] == CLASSES
        assert manifest["config"]["model"]["image_size"] == [32, 32]
        assert "stain_norm" in manifest["config"]["data"]
        assert manifest["training_scale"]["object_diameter"] == SCALE["object_diameter"]
        assert manifest["source_run"] == str(runs[name].path.resolve())
        assert manifest["flexplat_version"]
        assert manifest["check"]["max_abs_difference"] < 1e-4


def test_export_refuses_to_overwrite_and_names_the_flag(runs, exports, tmp_path):
    run = runs["fixed"]
    result = CliRunner().invoke(cli, ["export", str(run.path), "--format", "onnx"])
    assert result.exit_code != 0
    assert "--overwrite" in result.output and "Traceback" not in result.output
    out = tmp_path / "copy"
    for extra in ([], ["--overwrite"]):
        result = CliRunner().invoke(cli, ["export", str(run.path), "--out", str(out), *extra])
        assert result.exit_code == 0, result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["copy"]  # no staging folders left behind


def _dead_pid() -> int:
    """The id of a process that has exited (as an export killed with SIGKILL leaves behind)."""
    proc = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    return int(proc.stdout)


def test_a_killed_exports_leftovers_are_cleaned_or_reported(runs, exports, tmp_path):
    run, out = runs["fixed"], tmp_path / "copy"
    killed = tmp_path / ".copy-k1ll3d"  # staging of an export killed before its rename
    (killed / "_large_model").mkdir(parents=True)
    (killed / ".owner").write_text(str(_dead_pid()))
    unknown = tmp_path / ".copy-unknown"  # not made by an export we can recognise: left alone
    unknown.mkdir()
    result = CliRunner().invoke(cli, ["export", str(run.path), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert not killed.exists() and unknown.is_dir()
    assert "removed" in result.output and "k1ll3d" in result.output
    assert "left" in result.output and ".copy-unknown" in result.output
    # killed between its two renames: the previous export sits aside and `out` is missing -> put back
    out.rename(tmp_path / ".copy-old-123")
    result = CliRunner().invoke(cli, ["export", str(run.path), "--out", str(out)])
    assert result.exit_code != 0 and "restored" in result.output and "--overwrite" in result.output
    assert json.loads((out / "manifest.json").read_text())["format"] == "onnx"
    assert not (tmp_path / ".copy-old-123").exists()


@pytest.mark.parametrize(
    ("kind", "options"),
    [
        ("fixed", ["--tile"]),  # fixed 32x32 input: every image tiled with blending
        ("fixed", ["--no-rescale", "--tta"]),  # resized to the model input, 8-view TTA
        ("dynamic", ["--diameter", "12"]),  # whole images at the training scale, padded to a multiple
    ],
)
def test_same_outputs_on_both_backends(runs, exports, images, tmp_path, kind, options):
    outputs = {}
    for backend in ("tensorflow", "onnx"):
        out = tmp_path / backend
        args = ["--images", str(images), "--run", str(runs[kind].path), "--output", str(out), "--index-masks"]
        result = infer(*args, "--backend", backend, *options)
        assert result.exit_code == 0, result.output
        outputs[backend] = out
    summaries = [json.loads((outputs[b] / "summary.json").read_text()) for b in ("tensorflow", "onnx")]
    assert [s["backend"] for s in summaries] == ["tensorflow", "onnx"]
    assert summaries[0]["images"] == summaries[1]["images"]  # sizes, tiling, scale, class fractions
    assert summaries[0]["skipped"] == summaries[1]["skipped"]
    assert [s["file"] for s in summaries[1]["skipped"]] == ["broken.png"]
    for name in ("a", "b", "c"):
        for suffix in ("index", "mask", "overlay"):
            read = read_gray if suffix == "index" else read_image
            ours, theirs = (read(outputs[b] / f"{name}_{suffix}.png") for b in ("tensorflow", "onnx"))
            assert np.array_equal(ours, theirs), (name, suffix)
    assert len(np.unique(read_gray(outputs["onnx"] / "b_index.png"))) > 1  # not a trivial mask


def test_evaluate_scores_the_export_as_keras(runs, exports, tmp_path):
    """`flexplat evaluate --backend onnx` scores the exported model: the same figures as TensorFlow."""
    from flexplat.testing import write_rgb_dataset

    run, data = runs["dynamic"], write_rgb_dataset(tmp_path / "lab", CLASSES, n=4, size=(40, 56))
    figures = {}
    for backend in ("tensorflow", "onnx"):
        args = ["evaluate", str(run.path), "--data", str(data), "--backend", backend, "--diameter", "9.5"]
        result = CliRunner().invoke(cli, args, catch_exceptions=False)
        assert result.exit_code == 0, result.output
        figures[backend] = run.evaluation()["folder:lab"]
    tf_figures, onnx_figures = figures["tensorflow"], figures["onnx"]
    assert (tf_figures["backend"], onnx_figures["backend"]) == ("tensorflow", "onnx")
    assert onnx_figures["model"].endswith("model.onnx")
    for key in ("per_class", "dice_mean", "object_dice", "class_accuracy", "pixel_confusion", "class_confusion"):
        assert onnx_figures[key] == tf_figures[key], key
    assert onnx_figures["seed_dice"] == pytest.approx(tf_figures["seed_dice"], abs=1e-5)


def test_an_export_folder_alone_runs_infer(runs, exports, images, tmp_path):
    copy = tmp_path / "deployed"
    copy.mkdir()
    for file in exports["dynamic"].iterdir():
        (copy / file.name).write_bytes(file.read_bytes())
    result = infer("--images", str(images), "--run", str(copy), "--output", str(tmp_path / "out"))
    assert result.exit_code == 0, result.output
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["backend"] == "onnx" and summary["run"] == str(copy)
    assert summary["scale"]  # the training scale came from the manifest
    result = infer("--images", str(images), "--run", str(copy), "--backend", "tensorflow", "--output", str(tmp_path))
    assert result.exit_code != 0 and "--backend onnx" in result.output


def test_auto_backend_in_a_run_folder(runs, exports, images, tmp_path):
    run = runs["dynamic"]
    result = infer("--images", str(images), "--run", str(run.path), "--output", str(tmp_path / "auto"))
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "auto" / "summary.json").read_text())["backend"] == "onnx"
    stat = run.model_path.stat()
    os.utime(run.model_path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))  # model.keras newer than export
    try:
        result = infer("--images", str(images), "--run", str(run.path), "--output", str(tmp_path / "stale"))
        assert result.exit_code == 0, result.output
        assert "older than the run's model.keras" in " ".join(result.output.split())
        assert json.loads((tmp_path / "stale" / "summary.json").read_text())["backend"] == "tensorflow"
        result = infer("--images", str(images), "--run", str(run.path), "--backend", "onnx", "--output", str(tmp_path))
        assert result.exit_code != 0 and "--overwrite" in result.output
    finally:
        os.utime(run.model_path, ns=(stat.st_atime_ns, stat.st_mtime_ns))


def test_onnx_backend_without_an_export_says_how_to_make_one(tmp_path, images):
    run = make_run(tmp_path / "plain", fixed=True)
    result = infer("--images", str(images), "--run", str(run.path), "--backend", "onnx")
    assert result.exit_code != 0
    assert f"flexplat export {run.path} --format onnx" in result.output and "Traceback" not in result.output


def test_saved_model_export_runs_on_tensorflow(runs, images, tmp_path):
    out = tmp_path / "sm"
    args = ["export", str(runs["dynamic"].path), "--format", "saved_model", "--out", str(out)]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert (out / "saved_model" / "saved_model.pb").is_file()
    masks = {}
    for source in (out, runs["dynamic"].path):
        target = tmp_path / f"masks-{source.name}"
        args = ["--images", str(images), "--run", str(source), "--backend", "tensorflow"]
        result = infer(*args, "--output", str(target))
        assert result.exit_code == 0, result.output
        masks[source.name] = read_image(target / "b_mask.png")
    assert np.array_equal(*masks.values())


def test_onnx_inference_never_imports_tensorflow_or_keras(exports, images, site, tmp_path):
    env = site.env_without("tensorflow", "keras", "tf2onnx")
    check = subprocess.run([sys.executable, "-c", "import keras"], capture_output=True, text=True, env=env)
    assert "blocked in this test" in check.stderr  # the blocker works
    out = tmp_path / "out"
    for export in exports.values():  # the fixed-size model tiles, the dynamic one predicts whole images
        command = [sys.executable, "-m", "flexplat", "infer", "--images", str(images), "--run", str(export)]
        result = subprocess.run(
            [*command, "--output", str(out), "--overwrite", "--tta"], capture_output=True, text=True, env=env
        )
        assert result.returncode == 0, result.stdout + result.stderr
        assert json.loads((out / "summary.json").read_text())["counts"]["processed"] == 3


def test_export_without_the_extra_names_it(runs, site, tmp_path):
    env = site.env_without("onnxruntime", "tf2onnx", "onnx")
    command = [sys.executable, "-m", "flexplat", "export", str(runs["fixed"].path), "--out", str(tmp_path / "x")]
    result = subprocess.run(command, capture_output=True, text=True, env=env)
    assert result.returncode != 0
    assert 'pip install "flexplat[onnx]"' in result.stderr and "Traceback" not in result.stderr


def test_large_model_route_keeps_weights_outside_and_agrees(runs, images, tmp_path):
    out = tmp_path / "large"
    args = ["export", str(runs["dynamic"].path), "--out", str(out), "--large-model"]
    result = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    manifest = json.loads((out / "manifest.json").read_text())
    assert "large_model" in manifest["route"] and manifest["check"]["max_abs_difference"] < 1e-4
    assert sorted(p.name for p in out.iterdir()) == ["manifest.json", "model.onnx", "model.onnx.data"]
    result = infer("--images", str(images), "--run", str(out), "--output", str(tmp_path / "masks"))
    assert result.exit_code == 0, result.output


def test_help_and_list_import_neither_tensorflow_nor_onnxruntime(site, tmp_path):
    env = site.env_without("tensorflow", "keras", "onnxruntime", "tf2onnx", "onnx")
    for args in (["--help"], ["list"], ["export", "--help"], ["infer", "--help"]):
        result = subprocess.run([sys.executable, "-m", "flexplat", *args], capture_output=True, text=True, env=env)
        assert result.returncode == 0, result.stderr
    assert "--backend" in result.stdout
