"""`flexplat infer` end to end with real tiny Keras models saved in run folders (TensorFlow on CPU)."""

from __future__ import annotations

import csv
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from flexplat.cli import cli
from flexplat.data.io import read_gray, read_image, write_png
from flexplat.engine.rundir import RunDir
from flexplat.testing import write_run

keras = pytest.importorskip("keras")

CLASSES = [
    {"name": "background", "color": [0, 0, 0]},
    {"name": "redcell", "color": [255, 0, 0]},
    {"name": "greencell", "color": [0, 255, 0]},
]
RED, GREEN = (255, 0, 0), (0, 255, 0)


def colour_model(size: int = 32):
    """Per-pixel: class 1 where red dominates, class 2 where green dominates, else background.

    logits = (0, 0.1*(R - G) - 12.8, 0.1*(G - R) - 12.8), so (255,0,0) -> 1, (0,255,0) -> 2, gray -> 0.
    """
    inputs = keras.Input((size, size, 3))
    conv = keras.layers.Conv2D(3, 1, activation="softmax")
    outputs = conv(inputs)
    kernel = np.zeros((1, 1, 3, 3), np.float32)
    kernel[0, 0, 0] = [0.0, 0.1, -0.1]  # R
    kernel[0, 0, 1] = [0.0, -0.1, 0.1]  # G
    conv.set_weights([kernel, np.array([0.0, -12.8, -12.8], np.float32)])
    return keras.Model(inputs, outputs)


def constant_model(size: int = 256):
    """Output independent of the input: zero kernel + bias; class 1 wins by a hair (0.01 logit)."""
    inputs = keras.Input((size, size, 3))
    conv = keras.layers.Conv2D(3, 1, activation="softmax")
    outputs = conv(inputs)
    conv.set_weights([np.zeros((1, 1, 3, 3), np.float32), np.array([0.0, 0.01, 0.0], np.float32)])
    return keras.Model(inputs, outputs)


def make_run(path: Path, model, size: int, classes=CLASSES, finished="2026-01-01T10:00:00", status="completed"):
    config = {"model": {"image_size": [size, size]}}
    return write_run(path, model, classes, config, status=status, finished=finished)


def picture(height: int, width: int, rect: tuple[int, int, int, int], color) -> np.ndarray:
    image = np.full((height, width, 3), 40, np.uint8)
    y0, y1, x0, x1 = rect
    image[y0:y1, x0:x1] = color
    return image


def save(path: Path, rgb: np.ndarray) -> None:
    ok, data = cv2.imencode(path.suffix, np.ascontiguousarray(rgb[:, :, ::-1]))
    assert ok
    path.write_bytes(data.tobytes())


def digest(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


def invoke(*args: str):
    return CliRunner().invoke(cli, ["infer", *args], catch_exceptions=False)


@pytest.fixture(scope="module")
def colour_run(tmp_path_factory) -> RunDir:
    return make_run(tmp_path_factory.mktemp("runs") / "colour", colour_model(32), 32)


@pytest.fixture
def mixed_images(tmp_path: Path) -> Path:
    folder = tmp_path / "images"
    folder.mkdir()
    save(folder / "a_exact.png", picture(32, 32, (8, 16, 4, 20), RED))  # model size: 8x16 red = 0.125
    save(folder / "b_photo.JPG", picture(40, 50, (5, 30, 10, 40), GREEN))  # larger: resized (no scale record)
    save(folder / "c_small.bmp", picture(20, 30, (0, 20, 0, 15), RED))  # smaller: resized
    (folder / "notes.txt").write_text("not an image\n")
    return folder


def test_masks_overlays_and_summary_at_original_sizes(colour_run, mixed_images, tmp_path):
    before = digest(mixed_images)
    out = tmp_path / "out"
    result = invoke("--images", str(mixed_images), "--run", str(colour_run.path), "--output", str(out), "--index-masks")
    assert result.exit_code == 0, result.output
    assert digest(mixed_images) == before  # inputs untouched
    expected_sizes = {"a_exact": (32, 32), "b_photo": (40, 50), "c_small": (20, 30)}
    for stem, size in expected_sizes.items():
        assert read_image(out / f"{stem}_mask.png").shape == (*size, 3)
        assert read_image(out / f"{stem}_overlay.png").shape == (*size, 3)
        assert read_gray(out / f"{stem}_index.png").shape == size
    # the exact-size image: the mask is the rectangle painted red, nothing else
    mask = read_image(out / "a_exact_mask.png")
    expected = np.zeros((32, 32, 3), np.uint8)
    expected[8:16, 4:20] = RED
    np.testing.assert_array_equal(mask, expected)
    index = read_gray(out / "a_exact_index.png")
    assert index.dtype == np.uint8 and set(np.unique(index)) == {0, 1}
    # the tiled JPEG: green rectangle found, mask green inside, black far outside
    green = read_image(out / "b_photo_mask.png")
    assert (green[8:27, 13:37] == GREEN).all()
    assert (green[35:, :5] == 0).all()

    rows = list(csv.DictReader((out / "summary.csv").open()))
    assert [r["file"] for r in rows] == ["a_exact.png", "b_photo.JPG", "c_small.bmp"]
    first = rows[0]
    assert (first["width"], first["height"], first["tiled"]) == ("32", "32", "False")
    assert first["predicted_class"] == "redcell"
    assert float(first["foreground_fraction"]) == pytest.approx(0.125)
    assert float(first["fraction_redcell"]) == pytest.approx(0.125)
    assert float(first["fraction_background"]) == pytest.approx(0.875)
    assert float(first["fraction_greencell"]) == 0.0
    # the run records no training scale: every image is resized to the model input, as training did
    assert rows[1]["tiled"] == "False" and rows[1]["predicted_class"] == "greencell"
    assert float(rows[1]["foreground_fraction"]) == pytest.approx(25 * 30 / 2000, abs=0.02)
    assert rows[2]["tiled"] == "False" and rows[2]["predicted_class"] == "redcell"
    assert float(rows[2]["foreground_fraction"]) == pytest.approx(0.5, abs=0.04)

    data = json.loads((out / "summary.json").read_text())
    assert data["counts"] == {"found": 3, "processed": 3, "tiled": 0, "skipped": 0}
    assert data["scale"]["method"] == "training framing" and data["tta"] is False
    assert data["classes"] == ["background", "redcell", "greencell"]
    assert data["images"][0]["fraction_redcell"] == pytest.approx(0.125)
    assert data["run"] == str(colour_run.path)
    timings = data["timings"]
    assert 0 < timings["model_seconds"] <= timings["processing_seconds"] < timings["total_seconds"]
    assert timings["total_seconds"] == pytest.approx(timings["load_seconds"] + timings["processing_seconds"], abs=1e-3)
    assert "3 of 3 segmented (0 tiled)" in result.output


def test_default_output_is_inside_the_run_and_no_overwrite_without_flag(colour_run, mixed_images):
    first = invoke("--images", str(mixed_images), "--run", str(colour_run.path), "--no-overlay")
    assert first.exit_code == 0, first.output
    out = colour_run.path / "predictions" / "images"
    assert sorted(p.name for p in out.iterdir()) == [
        "a_exact_mask.png",
        "b_photo_mask.png",
        "c_small_mask.png",
        "summary.csv",
        "summary.json",
    ]
    before = digest(out)
    again = invoke("--images", str(mixed_images), "--run", str(colour_run.path), "--no-overlay")
    assert again.exit_code != 0
    message = " ".join(again.output.split())
    assert "5 of the 5 output files already exist" in message
    assert "a_exact_mask.png" in message and "--overwrite" in message
    assert digest(out) == before
    forced = invoke("--images", str(mixed_images), "--run", str(colour_run.path), "--no-overlay", "--overwrite")
    assert forced.exit_code == 0, forced.output


def test_unreadable_files_are_reported_and_skipped(colour_run, mixed_images, tmp_path):
    (mixed_images / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n this is not really a png")
    (mixed_images / "empty.tif").write_bytes(b"")
    out = tmp_path / "out"
    result = invoke("--images", str(mixed_images), "--run", str(colour_run.path), "--output", str(out))
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert "broken.png" in text and "cannot decode image" in text
    assert "empty.tif" in text and "empty file" in text
    assert "3 of 5 segmented" in text
    data = json.loads((out / "summary.json").read_text())
    assert data["counts"]["skipped"] == 2 and data["counts"]["processed"] == 3
    assert [s["file"] for s in data["skipped"]] == ["broken.png", "empty.tif"]
    assert not (out / "broken_mask.png").exists()
    assert (out / "c_small_mask.png").is_file()


def test_without_run_uses_the_latest_completed_run(tmp_path, monkeypatch):
    make_run(tmp_path / "runs" / "p" / "old", colour_model(32), 32, finished="2026-01-01T10:00:00")
    make_run(tmp_path / "runs" / "p" / "new", colour_model(32), 32, finished="2026-02-01T10:00:00")
    make_run(tmp_path / "runs" / "q" / "running", colour_model(32), 32, finished="2026-03-01", status="running")
    images = tmp_path / "imgs"
    images.mkdir()
    save(images / "x.png", picture(32, 32, (0, 4, 0, 4), RED))
    monkeypatch.chdir(tmp_path)
    result = invoke("--images", "imgs")
    assert result.exit_code == 0, result.output
    assert "Using run runs/p/new" in " ".join(result.output.split())
    assert (tmp_path / "runs" / "p" / "new" / "predictions" / "imgs" / "x_mask.png").is_file()
    assert not (tmp_path / "runs" / "p" / "old" / "predictions").exists()


def test_no_runs_at_all_explains_what_to_do(tmp_path, monkeypatch):
    (tmp_path / "imgs").mkdir()
    monkeypatch.chdir(tmp_path)
    result = invoke("--images", "imgs")
    assert result.exit_code != 0
    assert "no completed training run" in result.output and "--run" in result.output


def test_tile_flags_and_tile_size(colour_run, tmp_path):
    images = tmp_path / "imgs"
    images.mkdir()
    save(images / "big.png", picture(70, 45, (10, 60, 10, 30), GREEN))
    save(images / "tiny.png", picture(16, 16, (0, 8, 0, 8), RED))
    runner_args = ["--images", str(images), "--run", str(colour_run.path), "--no-overlay"]

    never = invoke(*runner_args, "--output", str(tmp_path / "never"), "--no-tile")
    assert never.exit_code == 0, never.output
    rows = json.loads((tmp_path / "never" / "summary.json").read_text())["images"]
    assert [r["tiled"] for r in rows] == [False, False]

    always = invoke(*runner_args, "--output", str(tmp_path / "always"), "--tile", "--batch-size", "1")
    assert always.exit_code == 0, always.output
    rows = json.loads((tmp_path / "always" / "summary.json").read_text())["images"]
    assert [r["tiled"] for r in rows] == [True, True]
    tiny = read_image(tmp_path / "always" / "tiny_mask.png")  # padded up to the tile, cropped back
    assert tiny.shape == (16, 16, 3)
    assert (tiny[:8, :8] == RED).all() and (tiny[8:, 8:] == 0).all()
    big = read_image(tmp_path / "always" / "big_mask.png")
    expected = np.zeros((70, 45, 3), np.uint8)
    expected[10:60, 10:30] = GREEN
    np.testing.assert_array_equal(big, expected)  # per-pixel model: tiling is exact

    bad = invoke(*runner_args, "--output", str(tmp_path / "bad"), "--tile-size", "16")
    assert bad.exit_code != 0
    assert "only accepts 32x32 input" in " ".join(bad.output.split())


def test_sigmoid_two_class_model(tmp_path):
    inputs = keras.Input((16, 16, 3))
    conv = keras.layers.Conv2D(1, 1, activation="sigmoid")
    outputs = conv(inputs)
    conv.set_weights([np.array([0.1, -0.1, 0.0], np.float32).reshape(1, 1, 3, 1), np.array([-1.0], np.float32)])
    classes = [{"name": "background", "color": [0, 0, 0]}, {"name": "cell", "color": [255, 255, 0]}]
    run = make_run(tmp_path / "run", keras.Model(inputs, outputs), 16, classes=classes)
    images = tmp_path / "imgs"
    images.mkdir()
    save(images / "s.png", picture(16, 16, (0, 4, 0, 16), RED))
    result = invoke("--images", str(images), "--run", str(run.path), "--output", str(tmp_path / "o"))
    assert result.exit_code == 0, result.output
    row = json.loads((tmp_path / "o" / "summary.json").read_text())["images"][0]
    assert row["predicted_class"] == "cell" and row["foreground_fraction"] == pytest.approx(0.25)


def test_duplicate_stems_get_distinct_outputs(colour_run, tmp_path):
    images = tmp_path / "imgs"
    images.mkdir()
    save(images / "same.png", picture(32, 32, (0, 8, 0, 8), RED))
    save(images / "same.bmp", picture(32, 32, (0, 8, 0, 8), GREEN))
    out = tmp_path / "o"
    result = invoke("--images", str(images), "--run", str(colour_run.path), "--output", str(out), "--no-overlay")
    assert result.exit_code == 0, result.output
    assert (read_image(out / "same_png_mask.png")[0, 0] == RED).all()
    assert (read_image(out / "same_bmp_mask.png")[0, 0] == GREEN).all()


RSS_PROBE = """
import resource, sys
from flexplat.cli import main
sys.argv = ["flexplat"] + sys.argv[1:]
try:
    main()
finally:
    print("PEAK_RSS_KB=%d" % resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)
"""


@pytest.mark.slow
def test_2048_image_with_256_model_tiles_without_seams_in_bounded_memory(tmp_path):
    run = make_run(tmp_path / "run", constant_model(256), 256)
    images = tmp_path / "imgs"
    images.mkdir()
    rng = np.random.default_rng(0)
    write_png(images / "large.png", rng.integers(0, 256, (2048, 2048, 3), dtype=np.uint8))
    out = tmp_path / "out"
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    args = ["infer", "--images", str(images), "--run", str(run.path), "--output", str(out), "--index-masks", "--tile"]
    result = subprocess.run(
        [sys.executable, "-c", RSS_PROBE, *args], capture_output=True, text=True, env=env, timeout=300
    )
    assert result.returncode == 0, result.stdout + result.stderr
    peak_kb = int(result.stderr.rsplit("PEAK_RSS_KB=", 1)[1].split()[0])
    assert peak_kb < 3 * 1024 * 1024, f"peak RSS {peak_kb / 1024:.0f} MB"
    index = read_gray(out / "large_index.png")
    assert index.shape == (2048, 2048)
    assert (index == 1).all()  # constant prediction -> constant mask: no seams anywhere
    mask = read_image(out / "large_mask.png")
    assert (mask == RED).all()
    row = json.loads((out / "summary.json").read_text())["images"][0]
    assert row["tiled"] is True and row["fraction_redcell"] == 1.0


def test_output_that_is_a_file_is_refused(colour_run, mixed_images, tmp_path):
    target = tmp_path / "taken"
    target.write_text("keep me\n")
    result = invoke("--images", str(mixed_images), "--run", str(colour_run.path), "--output", str(target))
    assert result.exit_code != 0
    assert "is a file" in " ".join(result.output.split())  # click's own check of the option
    from flexplat.engine.infer import run_inference
    from flexplat.errors import FlexplatError

    with pytest.raises(FlexplatError, match="must be a folder"):
        run_inference(colour_run, mixed_images, target, progress=False)
    assert target.read_text() == "keep me\n"


def test_prediction_batches_stay_within_max_batch_pixels_unless_a_batch_size_is_given(tmp_path):
    run = write_run(tmp_path / "run", colour_model(32), CLASSES, {"infer": {"max_batch_pixels": 2 * 32 * 32}})
    images = tmp_path / "images"
    images.mkdir()
    for i in range(7):
        save(images / f"{i}.png", picture(32, 32, (4, 12, 4, 12), RED))
    batches = {}
    for name, extra in (("capped", ()), ("given", ("--batch-size", "4"))):
        out = tmp_path / name
        result = invoke("--images", str(images), "--run", str(run.path), "--output", str(out), *extra)
        assert result.exit_code == 0, result.output
        batches[name] = json.loads((out / "summary.json").read_text())["timings"]["model_batches"]
        assert len(list(out.glob("*_mask.png"))) == 7
    assert batches == {"capped": 1 + 3, "given": 1 + 2}  # the first batch holds one image, then 2 or 4 each
