"""The fault catalogue (docs/reliability.md): one test per row - the fault, what flexplat does, what is kept.

Real processes where it matters: SIGINT and SIGKILL are sent to real `flexplat` subprocesses, a
full disk while Keras writes ``model.keras`` is a real ``EFBIG`` from a file-size limit
(``RLIMIT_FSIZE`` with ``SIGXFSZ`` ignored) in the subprocess. A disk filling up between files
(predictions, generated datasets) is ``OSError(ENOSPC)`` raised by ``os.write`` - the call every
atomic write makes - once a given number of files were written in the test's folder.
"""

from __future__ import annotations

import errno
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import time
import types
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import yaml

from flexplat.data.io import read_image, write_png
from flexplat.testing import dataset_config, sample_classes, write_rgb_dataset
from flexplat.testing import invoke as invoke_cli

keras = pytest.importorskip("keras")

FAULTS_FILE = Path(__file__).resolve().parent / "plugin_fixtures" / "flexplat_faults.py"
FAULTS_PLUGIN = FAULTS_FILE.read_text(encoding="utf-8")  # callback ``fault``: pause, absurd learning rate, raise


def fault_module() -> types.ModuleType:
    """The faults plugin as a module of its own (``flexplat_faults``), for in-process tests."""
    module = types.ModuleType("flexplat_faults")
    exec(compile(FAULTS_PLUGIN, "flexplat_faults.py", "exec"), module.__dict__)
    return module


@pytest.fixture
def faults(tiny_plugin):
    """The faults plugin added to this test's plugin system."""
    from flexplat.plugins import get_system

    get_system().add(fault_module(), "faults", "flexplat-faults", "0.0.1")


def train_config(tmp_path: Path, epochs: int = 2, fault: dict | None = None, **model_options) -> Path:
    """A --config file: a tiny colour-mask dataset (written once per folder) and the tiny U-Net."""
    classes = sample_classes(3)
    root = tmp_path / "data"
    if not root.exists():
        write_rgb_dataset(root, classes, n=6, size=(32, 32), splits=("train", "valid"))
    layer = dataset_config(root, classes, splits=("train", "valid"))
    layer["model"] = {"name": "tiny-unet", "image_size": [32, 32], "options": {"depth": 2, **model_options}}
    callbacks: dict = {"checkpoint": {}, "csv_plots": {"plots": False}}
    if fault:
        callbacks["fault"] = fault
    layer["train"] = {"epochs": epochs, "batch_size": 3, "learning_rate": 1e-3, "callbacks": callbacks}
    path = tmp_path / f"config-{len(list(tmp_path.glob('config-*.yaml')))}.yaml"
    path.write_text(yaml.safe_dump(layer), encoding="utf-8")
    return path


def flexplat(*args: str, env: dict[str, str], **kwargs) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "flexplat", *args]
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=300, **kwargs)


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def start(*args: str, env: dict[str, str], **kwargs) -> subprocess.Popen:
    """``flexplat ARGS`` in a subprocess that takes Ctrl-C as a terminal would give it.

    A child inherits ignored signals, and a test runner's worker may ignore SIGINT; Python then
    installs no KeyboardInterrupt handler and the test's SIGINT would be ignored (seen under xdist).
    """
    command = [sys.executable, "-m", "flexplat", *args]
    return subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        preexec_fn=_default_sigint,
        **kwargs,
    )


def wait_for(condition: Callable[[], bool], process: subprocess.Popen, what: str, seconds: float = 240) -> None:
    deadline = time.time() + seconds
    while time.time() < deadline:
        if condition():
            return
        if process.poll() is not None:
            raise AssertionError(f"the process ended before {what}: {process.communicate()}")
        time.sleep(0.05)
    process.kill()
    raise AssertionError(f"timed out waiting for {what}")


def invoke(args: list[str], **kwargs):
    """``flexplat ARGS`` in this process, on a wide terminal so that messages are not wrapped inside paths."""
    return invoke_cli(args, env={"COLUMNS": "400"}, **kwargs)


def flat(text: str) -> str:
    """``text`` with rich's line wrapping undone (words joined by single spaces)."""
    return " ".join(text.split())


def no_traceback(result) -> None:
    text = getattr(result, "output", "") or (result.stdout + result.stderr)
    assert "Traceback" not in text, text


def disk_fills_after(monkeypatch, folder: Path, files: int) -> None:
    """``os.write`` raises ENOSPC for every temp file under ``folder`` after the first ``files`` of them."""
    real_write, seen = os.write, set()

    def write(fd: int, data) -> int:
        target = os.readlink(f"/proc/self/fd/{fd}")
        if target.startswith(str(folder)) and target.endswith(".tmp"):
            if target not in seen and len(seen) >= files:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            seen.add(target)
        return real_write(fd, data)

    monkeypatch.setattr(os, "write", write)


def image_folder(folder: Path, count: int, size: tuple[int, int] = (48, 40)) -> Path:
    rng = np.random.default_rng(0)
    for i in range(count):
        write_png(folder / f"img_{i:03d}.png", rng.integers(0, 255, (*size, 3), dtype=np.uint8))
    return folder


def decodable(folder: Path) -> list[Path]:
    """The visible PNG files of ``folder``; each must decode (a half-written one would not)."""
    files = sorted(p for p in folder.glob("*.png"))
    for path in files:
        read_image(path)
    return files


# -- training ------------------------------------------------------------------------------------


def test_nan_loss_stops_naming_the_epoch_and_keeps_the_last_good_model(faults, tmp_path):
    config = train_config(tmp_path, epochs=4, fault={"lr_jump_at": 2})
    result = invoke(["train", "--config", str(config), "--out", str(tmp_path / "run"), "--no-evaluate"])
    assert result.exit_code == 1
    no_traceback(result)
    assert "training stopped at epoch 2, step" in result.output and "the training loss became nan" in result.output
    assert "up to epoch 1" in result.output and "Lower train.learning_rate" in result.output
    run = tmp_path / "run"
    assert json.loads((run / "run.json").read_text())["status"] == "failed"
    assert json.loads((run / "resume" / "state.json").read_text())["epoch"] == 1
    model = keras.models.load_model(run / "model.keras", compile=False)
    assert all(np.isfinite(w).all() for w in model.get_weights())  # epoch 1's weights, not the broken ones

    config = train_config(tmp_path, epochs=2, fault={"lr_jump_at": 1})  # absurd from the start: nothing to keep
    result = invoke(["train", "--config", str(config), "--out", str(tmp_path / "run1"), "--no-evaluate"])
    assert result.exit_code == 1 and "epoch 1, step" in result.output and "no model was kept" in result.output
    assert not (tmp_path / "run1" / "model.keras").exists()


def _limit_file_size(limit: int) -> Callable[[], None]:
    def limit_in_child() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit then fails with EFBIG
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return limit_in_child


def test_disk_full_while_writing_model_keras_names_the_file(site, tmp_path):
    config = train_config(tmp_path, epochs=1, filters=32)  # model.keras about 1 MB, every other file far smaller
    run = tmp_path / "run"
    args = ["train", "--config", str(config), "--out", str(run), "--no-evaluate"]
    result = flexplat(*args, env=site.env(COLUMNS="300"), preexec_fn=_limit_file_size(200_000))
    assert result.returncode == 1
    no_traceback(result)
    assert "model.keras: cannot write (File too large)" in result.stderr and "free some space" in result.stderr
    assert not (run / "model.keras").exists()  # never a half-written model under the final name
    assert [p.name for p in run.rglob("*") if p.name.startswith(".")] == []  # and no temp file left behind
    assert yaml.safe_load((run / "config.yaml").read_text())["model"]["name"] == "tiny-unet"  # earlier files intact
    assert json.loads((run / "run.json").read_text())["status"] == "failed"


def test_ctrl_c_during_training_stops_cleanly_and_resume_continues(site, tmp_path):
    site.add("flexplat_faults", FAULTS_PLUGIN, "flexplat-faults", "faults")
    config = train_config(tmp_path, epochs=2, fault={"pause_at": 2})
    run, env = tmp_path / "run", site.env(COLUMNS="300")
    paused = tmp_path / "paused"
    process = start("train", "--config", str(config), "--out", str(run), "--no-evaluate",
                    env={**env, "FLEXPLAT_TEST_PAUSE": str(paused)})  # fmt: skip
    state = run / "resume" / "state.json"
    try:
        wait_for(paused.is_file, process, "the pause before epoch 2")
        assert json.loads(state.read_text())["epoch"] == 1
        process.send_signal(signal.SIGINT)
        stdout, stderr = process.communicate(timeout=120)
    finally:
        process.kill()
        process.wait()
    assert process.returncode == 1
    assert "Traceback" not in stderr and f"interrupted; continue with `flexplat train --resume {run}`" in stderr
    assert json.loads((run / "run.json").read_text())["status"] == "interrupted"
    resumed = flexplat("train", "--resume", str(run), "--no-evaluate", env=env)
    assert resumed.returncode == 0, resumed.stderr
    assert "after epoch 1" in resumed.stdout
    info = json.loads((run / "run.json").read_text())
    assert info["status"] == "completed" and info["epochs_completed"] == 2


def test_two_trains_in_the_same_second_get_two_run_folders(site, tmp_path):
    config = train_config(tmp_path, epochs=1)
    env = site.env(COLUMNS="300")
    processes = [start("train", "--config", str(config), "--no-evaluate", env=env, cwd=tmp_path) for _ in range(2)]
    for process in processes:
        stdout, stderr = process.communicate(timeout=300)
        assert process.returncode == 0, stderr
    runs = sorted(p.parent for p in (tmp_path / "runs").glob("*/*/run.json"))
    assert len(runs) == 2
    assert all(json.loads((r / "run.json").read_text())["status"] == "completed" for r in runs)

    from flexplat.engine.rundir import RunDir  # the same second, for certain: 8 threads on one frozen clock

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(time, "strftime", lambda *_: "20260101-120000")
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(8) as pool:
            made = list(pool.map(lambda _: RunDir.create(None, "p", tmp_path / "same"), range(8)))
    assert len({r.path for r in made}) == 8


def test_plugin_hook_raising_during_train_names_the_plugin(faults, tmp_path):
    config = train_config(tmp_path, epochs=2, fault={"raise_at": 1})
    result = invoke(["train", "--config", str(config), "--out", str(tmp_path / "run"), "--no-evaluate"])
    assert result.exit_code == 1
    no_traceback(result)
    assert "plugin 'faults' (flexplat-faults 0.0.1) failed: ValueError: this callback is broken on purpose" in (
        result.output
    )
    assert "flexplat_faults.py:" in result.output
    assert json.loads((tmp_path / "run" / "run.json").read_text())["status"] == "failed"


# -- generate ---------------------------------------------------------------------------------------


def test_disk_full_while_generating_keeps_earlier_files(monkeypatch, tmp_path):
    out = tmp_path / "data"
    disk_fills_after(monkeypatch, tmp_path, files=5)
    result = invoke(["generate", "tiny", "--out", str(out), "--count", "6"])
    assert result.exit_code == 1
    no_traceback(result)
    assert "cannot write (No space left on device)" in result.output and "files written before are complete" in (
        result.output
    )
    written = decodable(out / "train" / "images") + decodable(out / "train" / "masks")
    assert len(written) == 5  # the files before the disk filled up, each complete
    assert [p for p in out.rglob(".*")] == []  # the failed temp file was removed
    monkeypatch.undo()  # space freed: the same command finishes the job
    assert invoke(["generate", "tiny", "--out", str(out), "--count", "6"]).exit_code == 0
    assert len(decodable(out / "train" / "images")) == 6


def test_sigkill_during_generate_leaves_only_complete_files_and_rerun_finishes(site, tmp_path):
    out = tmp_path / "data"
    process = start("generate", "tiny", "--out", str(out), "--count", "1500", env=site.env())
    try:
        wait_for(lambda: len(list((out / "train" / "masks").glob("*.png"))) >= 20, process, "20 pairs")
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
    finally:
        process.kill()
        process.wait()
    assert 20 <= len(decodable(out / "train" / "masks")) < 1500  # visible files are complete
    decodable(out / "train" / "images")
    rerun = flexplat("generate", "tiny", "--out", str(out), "--count", "1500", env=site.env())
    assert rerun.returncode == 0, rerun.stderr
    assert len(list((out / "train" / "masks").glob("*.png"))) == 1500


# -- infer ----------------------------------------------------------------------------------------


def infer(run, images: Path, output: Path, *extra: str):
    return invoke(["infer", "--run", str(run.path), "--images", str(images), "--output", str(output), *extra])


def test_disk_full_while_writing_predictions_keeps_earlier_files_and_rerun_finishes(keras_run, monkeypatch, tmp_path):
    images, out = image_folder(tmp_path / "images", 6), tmp_path / "out"
    disk_fills_after(monkeypatch, out, files=5)  # the job marker, then 4 image files
    result = infer(keras_run, images, out)
    assert result.exit_code == 1
    no_traceback(result)
    assert "cannot write (No space left on device)" in result.output
    assert len(decodable(out)) == 4 and not (out / "summary.json").exists()
    monkeypatch.undo()
    again = infer(keras_run, images, out)  # no --overwrite needed: the interrupted job is finished
    assert again.exit_code == 0, again.output
    assert "finishing an interrupted" in again.output
    assert json.loads((out / "summary.json").read_text())["counts"]["processed"] == 6
    assert [p.name for p in out.iterdir() if p.name.startswith(".")] == []
    assert infer(keras_run, images, out).exit_code == 1  # a finished job is not replaced without --overwrite


def test_sigkill_during_infer_leaves_only_complete_files_and_rerun_finishes(keras_run, site, tmp_path):
    images, out = image_folder(tmp_path / "images", 300, (64, 64)), tmp_path / "out"
    args = ["infer", "--run", str(keras_run.path), "--images", str(images), "--output", str(out)]
    process = start(*args, env=site.env())
    try:
        wait_for(lambda: len(list(out.glob("*_overlay.png"))) >= 5, process, "5 predictions")
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
    finally:
        process.kill()
        process.wait()
    assert 5 <= len(list(out.glob("*_mask.png"))) < 300
    decodable(out)
    assert not (out / "summary.json").exists()  # the job is not presented as complete
    rerun = flexplat(*args, env=site.env(COLUMNS="300"))
    assert rerun.returncode == 0, rerun.stderr
    assert json.loads((out / "summary.json").read_text())["counts"]["processed"] == 300
    assert len(decodable(out)) == 600 and not (out / ".flexplat-incomplete.json").exists()


def test_truncated_or_foreign_model_keras_is_a_clear_error(keras_run, tmp_path):
    images = image_folder(tmp_path / "images", 1)
    for name, damage in {
        "truncated": lambda data: data[: len(data) // 2],
        "foreign": lambda data: b"this is not a Keras model\n" * 40,
    }.items():
        run = tmp_path / name
        shutil.copytree(keras_run.path, run)
        (run / "model.keras").write_bytes(damage((run / "model.keras").read_bytes()))
        result = invoke(["infer", "--run", str(run), "--images", str(images), "--output", str(tmp_path / f"o-{name}")])
        assert result.exit_code == 1
        no_traceback(result)
        assert f"{run / 'model.keras'}: cannot load the model" in flat(result.output)


def test_run_folder_of_another_flexplat_version_is_a_clear_error(keras_run, tmp_path):
    run = tmp_path / "future"
    shutil.copytree(keras_run.path, run)
    config = yaml.safe_load((run / "config.yaml").read_text())
    config["model"]["precision"] = "float8"  # a key this version does not know
    (run / "config.yaml").write_text(yaml.safe_dump(config))
    info = json.loads((run / "run.json").read_text())
    (run / "run.json").write_text(json.dumps({**info, "versions": {"flexplat": "9.0.0"}}))
    for args in (["infer", "--run", str(run), "--images", str(tmp_path)], ["evaluate", str(run)]):
        result = invoke(args)
        assert result.exit_code == 1
        no_traceback(result)
        text = flat(result.output)
        assert f"{run / 'config.yaml'}: this run folder cannot be read (written by flexplat 9.0.0" in text
        assert "model.precision" in text and "use flexplat 9.0.0 for this run" in text
    (run / "run.json").write_text('{"status": "compl')  # truncated
    result = invoke(["evaluate", str(run)])
    assert result.exit_code == 1 and f"{run / 'run.json'}: unreadable" in result.output


# -- images ---------------------------------------------------------------------------------------


def test_image_header_claiming_100000_pixels_is_refused_before_decoding(keras_run, tmp_path):
    import struct
    import zlib

    images = image_folder(tmp_path / "images", 1)
    ihdr = struct.pack(">IIBBBBB", 100_000, 100_000, 8, 2, 0, 0, 0)
    chunk = struct.pack(">I", len(ihdr)) + b"IHDR" + ihdr + struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))
    (images / "huge.png").write_bytes(b"\x89PNG\r\n\x1a\n" + chunk + b"\x00" * 64)
    result = infer(keras_run, images, tmp_path / "out")
    assert result.exit_code == 0, result.output
    assert "huge.png: the header says 100000 x 100000 pixels" in flat(result.output)
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["counts"]["processed"] == 1 and summary["skipped"][0]["file"] == "huge.png"


def test_large_real_image_is_tiled_within_the_pixel_limit(keras_run, monkeypatch, tmp_path):
    images = image_folder(tmp_path / "images", 1, (1800, 2500))
    result = infer(keras_run, images, tmp_path / "out", "--tile", "--no-overlay")
    assert result.exit_code == 0, result.output
    row = json.loads((tmp_path / "out" / "summary.json").read_text())["images"][0]
    assert row["tiled"] and (row["width"], row["height"]) == (2500, 1800)
    monkeypatch.setenv("FLEXPLAT_MAX_IMAGE_PIXELS", "4000000")  # the limit applies to real images too
    result = infer(keras_run, images, tmp_path / "out2")
    assert "(4.5 megapixels), above the limit of 4.0 megapixels" in flat(result.output)


# -- folders and names ------------------------------------------------------------------------------


def test_unwritable_output_folder_is_a_clear_error(keras_run, tmp_path):
    images = image_folder(tmp_path / "images", 1)
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    result = infer(keras_run, images, blocker / "out")
    assert result.exit_code == 1
    no_traceback(result)
    assert f"{blocker / 'out'}: cannot write" in flat(result.output)
    if os.geteuid() != 0:  # root writes into read-only folders anyway
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        result = infer(keras_run, images, locked / "out")
        assert result.exit_code == 1 and "Permission denied" in result.output


def test_output_folder_inside_the_input_folder_is_refused(keras_run, tmp_path):
    images = image_folder(tmp_path / "images", 1)
    for output in (images, images / "predictions"):
        result = infer(keras_run, images, output)
        assert result.exit_code == 1
        assert "is inside the input folder" in flat(result.output)
    assert sorted(p.name for p in images.iterdir()) == ["img_000.png"]  # nothing written there


def test_symlink_loops_under_images_are_reported_not_followed(keras_run, tmp_path):
    images = image_folder(tmp_path / "images", 2)
    (images / "loop.png").symlink_to("loop.png")
    (images / "again").symlink_to(".")  # a folder loop: --images is not recursive
    (images / "gone.png").symlink_to("missing.png")
    result = infer(keras_run, images, tmp_path / "out")
    assert result.exit_code == 0, result.output
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["counts"]["processed"] == 2 and summary["counts"]["found"] == 4
    reasons = {s["file"]: s["reason"] for s in summary["skipped"]}
    assert reasons == {"loop.png": "symlink loop", "gone.png": "link to a file that does not exist"}


def test_non_utf8_file_names_are_segmented_and_summarised(keras_run, site, tmp_path):
    images = image_folder(tmp_path / "images", 1)
    latin1 = os.fsdecode(b"caf\xe9.png")  # not valid UTF-8
    shutil.copy(images / "img_000.png", images / latin1)
    out = tmp_path / "out"
    args = ["infer", "--run", str(keras_run.path), "--images", str(images), "--output", str(out)]
    result = subprocess.run([sys.executable, "-m", "flexplat", *args], capture_output=True, env=site.env(), timeout=300)
    assert result.returncode == 0, result.stderr
    assert b"Traceback" not in result.stderr
    assert (out / os.fsdecode(b"caf\xe9_mask.png")).is_file()
    files = [row["file"] for row in json.loads((out / "summary.json").read_text(encoding="utf-8"))["images"]]
    assert files == ["caf\ufffd.png", "img_000.png"]
    (out / "summary.csv").read_text(encoding="utf-8")  # valid UTF-8


def test_reliability_doc_names_every_fault_test():
    """docs/reliability.md's table and this module agree: every row's test exists, every test has a row."""
    doc = Path(__file__).resolve().parents[1] / "docs" / "reliability.md"
    rows = [line for line in doc.read_text(encoding="utf-8").splitlines() if line.startswith("| ") and "`test_" in line]
    named = [line.rstrip(" |").rsplit("`", 2)[-2] for line in rows]
    tests = {name for name in globals() if name.startswith("test_")} - {"test_reliability_doc_names_every_fault_test"}
    assert len(named) == len(set(named)) == len(rows)
    assert set(named) == tests
