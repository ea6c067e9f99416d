"""A new user's first minutes: TensorFlow missing, library noise, data check in one pass, 80-column tables.

The CLI runs in real subprocesses where it matters (what the terminal shows); tables are rendered
with a rich Console of 80 columns.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from rich.console import Console

from flexplat.config import SCHEMA
from flexplat.data.io import write_png
from flexplat.options import Option, defaults
from flexplat.testing import invoke, sample_classes, write_rgb_dataset

LIBRARY_NOISE = (
    "absl::InitializeLog",
    "oneDNN",
    "port.cc",
    "cpu_feature_guard",
    "grfmt_png",
    "[ERROR:",
    "[ WARN:",
    "WARNING:tensorflow",
)


def flexplat(*args: str, env: dict[str, str], cwd: Path | None = None) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "flexplat", *args]
    return subprocess.run(command, capture_output=True, text=True, env=env, cwd=cwd, timeout=300)


# -- TensorFlow missing -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        ["train", "tiny", "--data", "missing-data"],
        ["evaluate", "missing-run"],
        ["export", "missing-run"],
    ],
)
def test_without_tensorflow_one_line_names_the_extra_before_any_work(args, site, tmp_path):
    env = site.env_without("tensorflow", "keras")
    work = tmp_path / "work"
    work.mkdir()
    result = flexplat(*args, env=env, cwd=work)
    assert result.returncode == 1
    assert "needs TensorFlow, which is not installed" in result.stderr
    assert 'pip install "flexplat[cpu]"' in result.stderr and "flexplat[gpu]" in result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) <= 2  # one message (rich may wrap it once)
    assert list(work.iterdir()) == []  # checked first: no data generated, no run folder


def test_without_tensorflow_infer_on_a_run_names_the_extra(keras_run, site, tmp_path):
    images = tmp_path / "images"
    write_png(images / "a.png", np.full((40, 40, 3), 128, np.uint8))
    env = site.env_without("tensorflow", "keras")
    result = flexplat("infer", "--images", str(images), "--run", str(keras_run.path), env=env, cwd=tmp_path)
    assert result.returncode == 1
    assert "needs TensorFlow" in result.stderr and "--backend onnx" in result.stderr
    assert not (keras_run.path / "predictions").exists()


# -- library noise ------------------------------------------------------------------------------


@pytest.fixture
def images_with_a_corrupt_png(tmp_path: Path) -> Path:
    folder = tmp_path / "images"
    write_png(folder / "good.png", np.full((40, 48, 3), 200, np.uint8))
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"not a png chunk" * 10)
    return folder


def test_infer_shows_flexplat_output_only_and_verbose_brings_the_library_logs_back(
    keras_run, images_with_a_corrupt_png, site, tmp_path
):
    env = site.env()
    env.pop("FLEXPLAT_VERBOSE", None)
    args = ["infer", "--images", str(images_with_a_corrupt_png), "--run", str(keras_run.path)]
    quiet = flexplat(*args, "--output", str(tmp_path / "quiet"), env=env)
    assert quiet.returncode == 0, quiet.stderr
    assert "Skipped broken.png" in quiet.stdout  # flexplat's own message stays
    noise = [line for line in quiet.stderr.splitlines() if any(word in line for word in LIBRARY_NOISE)]
    assert noise == []
    loud = flexplat("--verbose", *args, "--output", str(tmp_path / "loud"), env=env)
    assert loud.returncode == 0, loud.stderr
    assert "absl::InitializeLog" in loud.stderr or "oneDNN" in loud.stderr
    by_env = flexplat(*args, "--output", str(tmp_path / "env"), env={**env, "FLEXPLAT_VERBOSE": "1"})
    assert any(word in by_env.stderr for word in LIBRARY_NOISE)


QUIET_TRAINING_PROBE = """
import os, sys, warnings
from flexplat.runtime import quiet_training
with quiet_training():
    os.write(2, b"E0000 util.cc:131] oneDNN supports DT_INT32 only on platforms with AVX-512.\\n")
    os.write(2, b"a real problem\\n")
    print("a Python message", file=sys.stderr, flush=True)
print("after", file=sys.stderr)
"""


@pytest.mark.parametrize("verbose", [False, True])
def test_training_hides_tensorflows_late_notices_only(verbose):
    """TensorFlow prints some notices at the first training step, long after start-up: hidden unless verbose,
    while every other line written to stderr meanwhile comes through, in order."""
    env = {**os.environ, "FLEXPLAT_VERBOSE": "1" if verbose else "0"}
    done = subprocess.run([sys.executable, "-c", QUIET_TRAINING_PROBE], capture_output=True, text=True, env=env,
                          timeout=60)  # fmt: skip
    assert done.returncode == 0, done.stderr
    lines = done.stderr.splitlines()
    assert lines[-3:] == ["a real problem", "a Python message", "after"]
    assert any("DT_INT32" in line for line in lines) is verbose


def test_data_check_of_a_corrupt_png_prints_flexplat_message_only(site, tmp_path):
    root = write_rgb_dataset(tmp_path / "data", sample_classes(3), n=3)
    (root / "train" / "images" / "train_000.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"x" * 64)
    env = site.env()
    env.pop("FLEXPLAT_VERBOSE", None)
    result = flexplat("data", "check", "--config", str(dataset_yaml(tmp_path / "c.yaml", root)), env=env)
    assert result.returncode == 1
    assert "train_000.png: cannot decode image" in result.stdout
    assert not any(word in result.stdout + result.stderr for word in LIBRARY_NOISE)


def dataset_yaml(path: Path, root: Path, more_data: str = "") -> Path:
    """A --config file for a dataset written by write_rgb_dataset (the sample classes, train split)."""
    classes = "".join(f"  - {{name: {c.name}, color: {list(c.color)}}}\n" for c in sample_classes(3))
    data = f"data:\n  codec: rgb-mask\n  root: {root}\n  train: {{images: train/images, masks: train/masks}}\n"
    path.write_text(f"classes:\n{classes}{data}{more_data}", encoding="utf-8")
    return path


# -- data check: every problem in one pass -------------------------------------------------------


def test_data_check_reports_every_missing_folder_in_one_pass(tmp_path):
    root = write_rgb_dataset(tmp_path / "data", sample_classes(3), n=3)
    splits = "  valid: {images: valid/images, masks: valid/masks}\n  test: {images: test/pics, masks: test/masks}\n"
    config = dataset_yaml(tmp_path / "c.yaml", root, splits)
    result = invoke(["data", "check", "--config", str(config)], terminal_width=200)
    assert result.exit_code == 1
    for folder in ("valid/images", "valid/masks", "test/pics", "test/masks"):
        assert f"{root / folder}: no such folder" in result.output
    assert "OK" not in result.output and "4 error(s) in 3 pairs" in result.output


# -- tables at 80 columns ----------------------------------------------------------------------


def rendered(renderable) -> list[str]:
    console = Console(width=80, record=True, file=io.StringIO())
    console.print(renderable)
    return console.export_text().splitlines()


def assert_readable(lines: list[str], phrases: list[str]) -> None:
    """Every line fits 80 columns and every phrase (headers, first words of prose) stays on one line."""
    assert max(len(line) for line in lines) <= 80
    for phrase in phrases:
        assert any(phrase in line for line in lines), f"{phrase!r} is broken across lines:\n" + "\n".join(lines)


def test_options_table_keeps_help_readable_at_80_columns():
    from flexplat.listing import options_table

    options = {
        "a_rather_long_option_name": Option(
            ["rot90", "rot180", "rot270", "hflip", "vflip", "elastic"], "augmentations applied to every copy"
        ),
        "activation": Option("relu", "activation of the convolutions", choices=["relu", "elu", "gelu", "swish"]),
    }
    lines = rendered(options_table(options))
    assert_readable(lines, ["option", "default", "type", "help", "augmentations applied", "activation of the"])


def test_list_table_keeps_descriptions_readable_at_80_columns():
    from flexplat.listing import collect, render_list
    from flexplat.plugins import get_system

    console = Console(width=80, record=True, file=io.StringIO())
    render_list(collect(get_system(), "codec"), console)
    lines = console.export_text().splitlines()
    assert_readable(lines, ["name", "plugin (distribution)", "description", "images + RGB colour"])


def test_data_check_splits_table_readable_at_80_columns(tmp_path):
    from flexplat.data.check import check_dataset
    from flexplat.reports import _splits_table
    from flexplat.testing import dataset_config

    classes = sample_classes(3)
    root = write_rgb_dataset(tmp_path / "a-rather-long-dataset-folder-name", classes, n=3, splits=("train", "valid"))
    config = {**defaults(SCHEMA), **dataset_config(root, classes, splits=("train", "valid"))}
    config["data"] = {**defaults(SCHEMA)["data"], **config["data"]}
    lines = rendered(_splits_table(check_dataset(config)))
    assert_readable(lines, ["split", "pairs", "usable", "no mask", "no image", "snapped", "folders"])
    assert not any("…" in line for line in lines)  # folders fold, never cut
