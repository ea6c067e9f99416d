"""Resume after SIGKILL: a real training process is killed after epoch 2 of 4 and continued."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time

import yaml

from flexplat.testing import dataset_config, sample_classes, write_rgb_dataset

PAUSE_PLUGIN = """
import os, time
import flexplat


def _pause(context, options):
    import keras

    class Pause(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            if epoch == options["at_epoch"] and os.environ.get("FLEXPLAT_TEST_PAUSE"):
                time.sleep(600)  # the test kills the process here

    return Pause()


@flexplat.hookimpl
def register_callbacks(register):
    register(flexplat.CallbackSpec("pause", "sleep before an epoch (tests)", _pause,
                                   {"at_epoch": flexplat.Option(2, "0-based epoch to pause before")}))
"""


def test_resume_after_sigkill_continues_where_it_stopped(tmp_path, site):
    classes = sample_classes(3)
    root = write_rgb_dataset(tmp_path / "data", classes, n=6, size=(32, 32), splits=("train", "valid"))
    layer = dataset_config(root, classes, splits=("train", "valid"))
    layer["model"] = {"name": "tiny-unet", "image_size": [32, 32], "options": {"depth": 2}}
    layer["train"] = {
        "epochs": 4,
        "batch_size": 3,
        "learning_rate": 1e-3,
        "callbacks": {
            "checkpoint": {},
            "csv_plots": {"plots": False},
            "early_stopping": {"patience": 3},
            "reduce_lr": {"patience": 1},
            "pause": {"at_epoch": 2},
        },
    }
    config_file = tmp_path / "config.yaml"
    config_file.write_text(yaml.safe_dump(layer))
    site.add("flexplat_pause", PAUSE_PLUGIN, "flexplat-pause", "pause")
    env = site.env(COLUMNS="250")
    run_dir = tmp_path / "run"
    command = [
        sys.executable,
        "-m",
        "flexplat",
        "train",
        "--config",
        str(config_file),
        "--out",
        str(run_dir),
        "--no-evaluate",
    ]
    process = subprocess.Popen(
        command, env={**env, "FLEXPLAT_TEST_PAUSE": "1"}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    state_file = run_dir / "resume" / "state.json"
    deadline = time.time() + 300
    try:
        while time.time() < deadline:
            assert process.poll() is None, process.stdout.read()
            if state_file.is_file() and json.loads(state_file.read_text())["epoch"] == 2:
                break
            time.sleep(0.2)
        else:
            raise AssertionError("training did not reach epoch 2 in time")
        time.sleep(0.5)  # the process is now sleeping before epoch 3
        os.kill(process.pid, signal.SIGKILL)
    finally:
        process.kill()
        process.wait()
    assert json.loads((run_dir / "run.json").read_text())["status"] == "running"
    config_before = (run_dir / "config.yaml").read_text()
    saved_state = json.loads(state_file.read_text())
    assert set(saved_state["callbacks"]) >= {"checkpoint", "early_stopping", "reduce_lr"}

    resumed = subprocess.run(
        [sys.executable, "-m", "flexplat", "train", "--resume", str(run_dir), "--no-evaluate"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert "Resuming" in resumed.stdout and "after epoch 2" in resumed.stdout
    with open(run_dir / "metrics.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3, 4]
    rates = [float(r["learning_rate"]) for r in rows]
    assert rates[2] <= rates[1], "the learning rate was reset by the resume"
    assert (run_dir / "config.yaml").read_text() == config_before
    info = json.loads((run_dir / "run.json").read_text())
    assert info["status"] == "completed"
    assert info["epochs_completed"] == 4
    assert (run_dir / "model.keras").is_file()
