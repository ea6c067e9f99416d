"""`flexplat infer --shard I/N` and `flexplat infer merge`: shards together equal one full run exactly."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from flexplat.cli import cli
from flexplat.engine.infer_shards import parse_shard, shard_indices, shard_of
from flexplat.engine.rundir import RunDir
from flexplat.engine.scale import TrainingScale
from flexplat.errors import FlexplatError
from flexplat.testing import write_run

keras = pytest.importorskip("keras")

CLASSES = [
    {"name": "background", "color": [0, 0, 0]},
    {"name": "redcell", "color": [255, 0, 0]},
    {"name": "greencell", "color": [0, 255, 0]},
]


def test_parse_shard_accepts_i_of_n_from_zero_and_explains_mistakes():
    assert parse_shard("0/4") == (0, 4) and parse_shard(" 3 / 4 ") == (3, 4)
    for bad in ("4/4", "1/0", "-1/3", "a/b", "2", ""):
        with pytest.raises(FlexplatError, match="expected I/N with 0 <= I < N"):
            parse_shard(bad)


def test_shards_partition_the_files_and_adding_files_moves_none():
    names = [f"img_{i:04d}.png" for i in range(400)]
    before = {name: shard_of(name, 4) for name in names}
    sizes = [sum(1 for s in before.values() if s == k) for k in range(4)]
    assert sum(sizes) == 400 and min(sizes) > 60, sizes  # every file in exactly one shard, roughly even
    more = names + [f"new_{i}.png" for i in range(50)] + ["aaa_first.png"]
    assert all(shard_of(name, 4) == before[name] for name in names)  # not positions in a sorted list
    folder = Path("/data")
    files = [folder / name for name in sorted(more)]
    chosen = [set(shard_indices(files, folder, (k, 4))) for k in range(4)]
    assert set.union(*chosen) == set(range(len(files))) and sum(map(len, chosen)) == len(files)


def colour_model():
    """1x1 conv: class 1 where red dominates, class 2 where green dominates, else background."""
    inputs = keras.Input((32, 32, 3))
    conv = keras.layers.Conv2D(3, 1, activation="softmax")
    outputs = conv(inputs)
    kernel = np.zeros((1, 1, 3, 3), np.float32)
    kernel[0, 0, 0], kernel[0, 0, 1] = [0.0, 0.1, -0.1], [0.0, -0.1, 0.1]
    conv.set_weights([kernel, np.array([0.0, -12.8, -12.8], np.float32)])
    return keras.Model(inputs, outputs)


@pytest.fixture(scope="module")
def scaled_run(tmp_path_factory) -> RunDir:
    """A completed run that records a training scale, so infer estimates one factor for the folder."""
    path = tmp_path_factory.mktemp("runs") / "colour"
    return write_run(path, colour_model(), CLASSES, scale=TrainingScale(10.0, 8.0, 12.0, 20, 5).to_dict())


def write_images(folder: Path) -> None:
    """Cells of several sizes and colours, two files sharing a stem, and one unreadable file."""
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(9):
        image = np.full((48 + 8 * i, 64, 3), 40, np.uint8)
        y, x, r = 20 + 2 * i, 30, 6 + i
        cv2.circle(image, (x, y), r, (0, 0, 255) if i % 2 else (0, 255, 0), -1)  # BGR
        image = np.clip(image + rng.integers(0, 20, image.shape), 0, 255).astype(np.uint8)
        cv2.imwrite(str(folder / f"cell_{i}.png"), image)
    cv2.imwrite(str(folder / "cell_0.jpg"), np.full((40, 40, 3), 90, np.uint8))
    (folder / "broken.png").write_bytes(b"not an image")


def files_digest(folder: Path) -> dict[str, str]:
    skip = ("summary",)
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.iterdir() if not p.name.startswith(skip)}


def invoke(*args: str):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def comparable(summary: dict) -> dict:
    return {k: v for k, v in summary.items() if k not in ("timings", "output_dir")}


def test_shards_and_merge_equal_one_full_run(scaled_run, tmp_path):
    images = tmp_path / "images"
    write_images(images)
    full, sharded = tmp_path / "full", tmp_path / "sharded"
    result = invoke("infer", "--images", str(images), "--run", str(scaled_run.path), "--output", str(full))
    assert result.exit_code == 0, result.output
    for index in range(3):
        result = invoke("infer", "--images", str(images), "--run", str(scaled_run.path), "--output", str(sharded),
                        "--shard", f"{index}/3")  # fmt: skip
        assert result.exit_code == 0, result.output
        assert f"shard {index}/3:" in result.output
    shard_files = sorted(p.name for p in sharded.glob("summary*"))
    assert shard_files == [f"summary.shard-{i}-of-3.{ext}" for i in range(3) for ext in ("csv", "json")]

    result = invoke("infer", "merge", str(sharded))
    assert result.exit_code == 0, result.output
    assert (sharded / "summary.csv").read_bytes() == (full / "summary.csv").read_bytes()
    merged = json.loads((sharded / "summary.json").read_text())
    whole = json.loads((full / "summary.json").read_text())
    assert comparable(merged) == comparable(whole)
    assert whole["scale"]["method"] == "estimated" and whole["counts"]["skipped"] == 1
    assert files_digest(sharded) == files_digest(full)  # every mask and overlay, byte for byte
    assert merged["timings"]["total_seconds"] > 0


def test_merge_names_missing_shards_and_never_overwrites(scaled_run, tmp_path):
    images = tmp_path / "images"
    write_images(images)
    out = tmp_path / "out"
    for index in (0, 2):
        result = invoke("infer", "--images", str(images), "--run", str(scaled_run.path), "--output", str(out),
                        "--shard", f"{index}/3", "--diameter", "20")  # fmt: skip
        assert result.exit_code == 0, result.output
    result = invoke("infer", "merge", str(out))
    assert result.exit_code != 0 and "shards 1/3 are missing" in result.output
    result = invoke("infer", "--images", str(images), "--run", str(scaled_run.path), "--output", str(out),
                    "--shard", "1/3", "--diameter", "25")  # fmt: skip
    assert result.exit_code == 0, result.output
    result = invoke("infer", "merge", str(out))
    assert result.exit_code != 0 and "differ in 'scale'" in result.output
    result = invoke("infer", "--images", str(images), "--run", str(scaled_run.path), "--output", str(out),
                    "--shard", "1/3", "--diameter", "20", "--overwrite")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert invoke("infer", "merge", str(out)).exit_code == 0
    again = invoke("infer", "merge", str(out))
    assert again.exit_code != 0 and "--overwrite" in again.output
    assert invoke("infer", "merge", str(out), "--overwrite").exit_code == 0


def test_a_shard_refuses_to_overwrite_only_its_own_files(scaled_run, tmp_path):
    images = tmp_path / "images"
    write_images(images)
    out = tmp_path / "out"
    args = ["infer", "--images", str(images), "--run", str(scaled_run.path), "--output", str(out), "--diameter", "20"]
    assert invoke(*args, "--shard", "0/2").exit_code == 0
    assert invoke(*args, "--shard", "1/2").exit_code == 0  # same folder, other files: no clash
    again = invoke(*args, "--shard", "1/2")
    assert again.exit_code != 0 and "--overwrite" in again.output
