"""`python benchmarks/training.py --smoke` runs every path of the training benchmark end to end."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "training.py"

# the benchmark measures the FlexUNet presets against the original experiment: it needs that plugin
pytest.importorskip("flexplat_flexunet", reason="benchmarks/training.py trains flexplat-flexunet's models")


def test_training_benchmark_smoke(tmp_path: Path) -> None:
    out = tmp_path / "training.json"
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--smoke", "--data", str(tmp_path / "data"), "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    result = json.loads(out.read_text())
    assert result["smoke"] is True
    assert len(result["machine"]["load_average"]) == len(result["load_average_end"]) == 3

    memory = result["memory"]
    counts = memory["counts"]
    for side in ("flexplat", "original"):
        small, large = memory["runs"][side]
        assert (small["images"], large["images"]) == (counts["small"], counts["large"])
        # 2 epochs of ceil(images / batch) steps each, counted by the probe inside fit
        batch, epochs = memory["setup"]["batch"], memory["setup"]["epochs"]
        assert large["steps"] == epochs * -(-counts["large"] // batch)
        assert memory["growth"][side] == large["peak_rss_mib"] / small["peak_rss_mib"]
    # the original-style arrays: uint8 images + one-hot float32 masks (6 classes) of 32x32
    arrays = memory["runs"]["original"][1]["arrays_mib"]
    assert arrays == round(counts["large"] * 32 * 32 * (3 + 6 * 4) / 2**20, 1)

    speed = result["speed"]
    variants = {"flexplat", "original", "original-1thread", "flexplat-xla", "flexplat-aug"}
    assert set(speed["images_per_s"]) == variants | {"flexplat-input", "original-input"}
    assert all(rate > 0 for rate in speed["images_per_s"].values())
    threads = {v: runs[0]["threads"]["intra_op"] for v, runs in speed["runs"].items()}
    assert threads["original-1thread"] == 1 and threads["flexplat"] == threads["original"] != 1
    # one round (--smoke): each ratio is that round's images/s ratio; targets 1x and 2x
    first = {v: runs[0]["images_per_s"] for v, runs in speed["runs"].items()}
    by_pair = {(c["variant"], c["baseline"]): c for c in speed["comparisons"]}
    assert by_pair["flexplat", "original"]["ratio"] == first["flexplat"] / first["original"]
    assert by_pair["flexplat", "original"]["target"] == 1.0
    assert by_pair["flexplat", "original-1thread"]["target"] == 2.0
    assert by_pair["flexplat-xla", "flexplat"]["passed"] is None  # reported, no target
    assert "Training speed" in done.stdout and "Training memory" in done.stdout
