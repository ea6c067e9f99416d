"""Exported models (``flexplat export``): a run's model in a portable format plus a manifest.

An export folder is self-describing, like a run folder, and ``flexplat infer --run EXPORT`` needs
nothing else (with the ONNX format not even TensorFlow):

    manifest.json    format, model file, classes and colours, input size and channels, size multiple,
                     the training scale (run.json ``scale``), data.stain_norm, the run's ``infer``
                     settings, flexplat version, source run, the ONNX Runtime check
    model.onnx       (format ``onnx``) opset from tf2onnx, dynamic height/width for fully
                     convolutional models
    saved_model/     (format ``saved_model``) a TensorFlow SavedModel, endpoint ``serve``

The default place is ``RUN/export/<format>/``; ``flexplat infer --backend auto`` on a run folder uses
``RUN/export/onnx`` when it is there, up to date with model.keras, and onnxruntime is installed.
The whole folder is written next to its target and renamed into place, so it is never half written.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from flexplat.atomic import atomic_write_text
from flexplat.engine.rundir import RunDir
from flexplat.engine.scale import TrainingScale
from flexplat.errors import FlexplatError
from flexplat.runtime import installed
from flexplat.specs import ClassInfo, classes_from_config
from flexplat.version import __version__

MANIFEST = "manifest.json"
FORMATS = {"onnx": "model.onnx", "saved_model": "saved_model"}
EXPORT_DIR = "export"
MANIFEST_VERSION = 1
ONNX_EXTRA = 'pip install "flexplat[onnx]"'
LARGE_MODEL_BYTES = 256 * 2**20
"""Models with more weight bytes go the large-model ONNX route (see :func:`_write_onnx_large`)."""
ONNX_OPSET = 17
_TF2ONNX = (  # tf2onnx 1.17's --large_model path still calls np.product, which NumPy 2 removed
    "import sys, numpy; numpy.product = getattr(numpy, 'product', numpy.prod); "
    "from tf2onnx import convert; sys.argv[0] = 'tf2onnx.convert'; convert.main()"
)


def onnxruntime_available() -> bool:
    """Whether onnxruntime is installed (found without importing it)."""
    return installed("onnxruntime")


def require(module: str, purpose: str) -> Any:
    """Import one of the ``flexplat[onnx]`` packages, or explain how to install it."""
    try:
        if not installed(module):
            raise ImportError(module)
        return importlib.import_module(module)
    except ImportError as exc:
        raise FlexplatError(f"{purpose} needs the package '{module}', which is not installed; {ONNX_EXTRA}") from exc


def default_export_dir(run_path: Path, fmt: str) -> Path:
    return Path(run_path) / EXPORT_DIR / fmt


@dataclass(frozen=True)
class ExportDir:
    """An export folder on disk; reads like a :class:`RunDir` for inference (config, classes, scale)."""

    path: Path
    manifest: dict = field(compare=False, repr=False)

    @classmethod
    def open(cls, path: str | Path) -> ExportDir:
        path = Path(path)
        file = path / MANIFEST
        try:
            manifest = json.loads(file.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise FlexplatError(f"{file}: cannot read the export manifest ({exc}); export again") from exc
        if manifest.get("format") not in FORMATS or not isinstance(manifest.get("config"), dict):
            raise FlexplatError(f"{file}: not a flexplat export manifest; export again with `flexplat export`")
        export = cls(path, manifest)
        if not export.model_path.exists():
            raise FlexplatError(f"{export.model_path}: missing from the export folder; export again")
        return export

    @staticmethod
    def is_export(path: str | Path) -> bool:
        return (Path(path) / MANIFEST).is_file()

    @property
    def format(self) -> str:
        return self.manifest["format"]

    @property
    def model_path(self) -> Path:
        return self.path / self.manifest.get("model_file", FORMATS[self.format])

    @property
    def size_multiple(self) -> int:
        return int(self.manifest.get("input", {}).get("size_multiple", 1))

    @property
    def input_hw(self) -> tuple[int | None, int | None]:
        height, width = self.manifest["input"]["shape"][:2]
        return height, width

    @property
    def channels(self) -> int:
        return int(self.manifest["input"]["shape"][2])

    def config(self) -> dict:
        return json.loads(json.dumps(self.manifest["config"]))  # a copy the caller may change

    def classes(self) -> list[ClassInfo]:
        return classes_from_config(self.manifest["config"]["classes"])

    def training_scale(self) -> TrainingScale | None:
        recorded = self.manifest.get("training_scale")
        return TrainingScale.from_dict(recorded) if recorded else None

    def info(self) -> dict:
        return {"status": "completed", "source_run": self.manifest.get("source_run")}

    def matches(self, run: RunDir) -> bool:
        """Whether this export was made from ``run``'s current model.keras (same size and time)."""
        source = self.manifest.get("source_model", {})
        try:
            stat = run.model_path.stat()
        except OSError:
            return False
        return source.get("size") == stat.st_size and source.get("mtime_ns") == stat.st_mtime_ns


@dataclass
class ExportResult:
    """What :func:`export_run` wrote and how well ONNX Runtime agrees with Keras."""

    path: Path
    format: str
    seconds: float
    size_bytes: int
    max_abs_difference: float | None
    probe_shape: tuple[int, ...]
    tidied: list[str] = field(default_factory=list)
    """What was done with folders left by an interrupted export (see :func:`tidy_interrupted`)."""


OWNER = ".owner"
"""In a staging folder: the process id of the export writing it (a dead one means it was killed)."""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def tidy_interrupted(out: Path) -> list[str]:
    """Clean up after an export to ``out`` that was killed; returns one line per folder handled.

    A staging folder ``.<name>-*`` whose export process is gone is removed. A previous export moved
    aside as ``.<name>-old-*`` is put back when ``out`` is missing (the kill came between the two
    renames), else removed. A staging folder without an owner file (or owned by a live process)
    is left alone and reported.
    """
    notes = []
    for folder in sorted(out.parent.glob(f".{out.name}-*")) if out.parent.is_dir() else []:
        if not folder.is_dir():
            continue
        if folder.name.startswith(f".{out.name}-old-"):
            if out.exists():
                shutil.rmtree(folder, ignore_errors=True)
                notes.append(f"removed {folder} (a replaced export an interrupted export left behind)")
            else:
                folder.rename(out)
                notes.append(f"restored {out} from {folder.name} (an interrupted export had moved it aside)")
            continue
        try:
            pid = int((folder / OWNER).read_text().strip())
        except (OSError, ValueError):
            notes.append(f"left {folder} alone: not made by a recognisable export; delete it if no export is running")
            continue
        if _alive(pid):
            notes.append(f"left {folder} alone: export process {pid} is still writing it")
        else:
            shutil.rmtree(folder, ignore_errors=True)
            notes.append(f"removed {folder} (staging of an export that was killed, process {pid})")
    return notes


def _manifest(run: RunDir, fmt: str, model: Any, multiple: int) -> dict:
    config = run.config()
    stat = run.model_path.stat()
    shape = [None if v is None else int(v) for v in tuple(model.input_shape)[1:]]
    return {
        "manifest_version": MANIFEST_VERSION,
        "format": fmt,
        "model_file": FORMATS[fmt],
        "input": {"shape": shape, "dynamic_size": shape[0] is None, "size_multiple": multiple, "dtype": "float32"},
        "output_channels": int(model.output_shape[-1]),
        "config": {
            "project": config.get("project"),
            "classes": config["classes"],
            "model": {k: config["model"][k] for k in ("name", "image_size", "options") if k in config["model"]},
            "data": {"stain_norm": config.get("data", {}).get("stain_norm")},
            "infer": config.get("infer", {}),
        },
        "training_scale": run.info().get("scale"),  # as recorded, not rounded again
        "flexplat_version": __version__,
        "source_run": str(run.path.resolve()),
        "source_model": {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns},
        "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }


def probe_input(model: Any, multiple: int, seed: int = 0) -> np.ndarray:
    """A random batch of 2 images the model accepts (dynamic sizes: a non-square multiple of ``multiple``)."""
    height, width, channels = tuple(model.input_shape)[1:]
    height = height or multiple * max(1, -(-48 // multiple))
    width = width or multiple * max(1, -(-80 // multiple))
    return np.random.default_rng(seed).uniform(0, 255, (2, height, width, channels)).astype(np.float32)


def onnx_difference(model_file: Path, model: Any, probe: np.ndarray) -> float:
    """Max |ONNX Runtime - Keras| over the probe batch's outputs."""
    ort = require("onnxruntime", "checking the ONNX export")
    session = ort.InferenceSession(str(model_file), providers=["CPUExecutionProvider"])
    got = session.run(None, {session.get_inputs()[0].name: probe})[0]
    expected = np.asarray(model(probe, training=False))
    if got.shape != expected.shape:
        raise FlexplatError(f"{model_file}: ONNX output shape {got.shape} differs from Keras {expected.shape}")
    return float(np.max(np.abs(got - expected)))


def weight_bytes(model: Any) -> int:
    return int(sum(np.prod(w.shape) * np.dtype(w.dtype).itemsize for w in model.weights))


def _write_model(model: Any, fmt: str, target: Path, probe: np.ndarray, large: bool) -> str:
    """Write the model file; returns the route taken (recorded in the manifest)."""
    import tensorflow as tf

    signature = [tf.TensorSpec((None, *tuple(model.input_shape)[1:]), tf.float32)]
    model(probe[:1], training=False)  # builds every layer's call graph once (tf2onnx needs it)
    if fmt == "saved_model":
        model.export(str(target), format="tf_saved_model", input_signature=signature, verbose=False)
        return "keras tf_saved_model"
    if large:
        _write_onnx_large(model, target, signature)
        return f"SavedModel -> tf2onnx --large_model (opset {ONNX_OPSET}), weights in {target.name}.data"
    model.export(str(target), format="onnx", input_signature=signature, verbose=False)
    return "keras model.export (tf2onnx in memory)"


def _write_onnx_large(model: Any, target: Path, signature: list) -> None:
    """ONNX for models too large for the in-memory route: a SavedModel converted by tf2onnx in a child
    process with ``--large_model``, the weights then gathered into one external file ``<target>.data``."""
    onnx = require("onnx", "exporting to ONNX")
    work = target.parent / "_large_model"
    saved, zipped, unpacked = work / "saved_model", work / "model.zip", work / "unpacked"
    model.export(str(saved), format="tf_saved_model", input_signature=signature, verbose=False)
    command = [sys.executable, "-c", _TF2ONNX, "--saved-model", str(saved), "--signature_def", "serve"]
    command += ["--output", str(zipped), "--large_model", "--opset", str(ONNX_OPSET)]
    proc = subprocess.run(command, capture_output=True, text=True)
    if proc.returncode != 0:
        tail = "\n".join(proc.stderr.strip().splitlines()[-5:])
        raise FlexplatError(f"{target}: tf2onnx could not convert the model (exit {proc.returncode}):\n{tail}")
    with zipfile.ZipFile(zipped) as archive:
        archive.extractall(unpacked)
    proto = onnx.load(str(unpacked / "__MODEL_PROTO.onnx"))  # reads the external tensors next to it
    onnx.save_model(proto, str(target), save_as_external_data=True, location=f"{target.name}.data")
    shutil.rmtree(work)


def export_run(
    run: RunDir, fmt: str, out: Path | None = None, overwrite: bool = False, large_model: bool | None = None
) -> ExportResult:
    """Export ``run``'s model as ``fmt`` with a manifest into ``out`` (default ``RUN/export/<fmt>``).

    ONNX: ``large_model`` (default: weights over :data:`LARGE_MODEL_BYTES`) converts through a
    SavedModel and keeps the weights in an external ``model.onnx.data`` file.
    """
    from flexplat.engine.model_file import load_model, size_multiple

    if fmt not in FORMATS:
        raise FlexplatError(f"--format: {fmt!r} is not supported; choose one of {', '.join(FORMATS)}")
    if fmt == "onnx":  # before the slow model load: a missing extra is reported at once
        for module in ("tf2onnx", "onnx", "onnxruntime"):
            require(module, "exporting to ONNX")
    out = Path(out) if out is not None else default_export_dir(run.path, fmt)
    started = time.perf_counter()
    tidied = tidy_interrupted(out)
    if out.exists() and not overwrite:
        restored = "".join(f" ({note})" for note in tidied if note.startswith("restored"))
        raise FlexplatError(f"{out}: already exists{restored}; pass --overwrite to replace it, or choose another --out")
    model = load_model(run)
    multiple = size_multiple(run.config())
    probe = probe_input(model, multiple)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}-", dir=out.parent))
    try:
        (staging / OWNER).write_text(str(os.getpid()))
        large = weight_bytes(model) > LARGE_MODEL_BYTES if large_model is None else large_model
        route = _write_model(model, fmt, staging / FORMATS[fmt], probe, large)
        difference = onnx_difference(staging / FORMATS[fmt], model, probe) if fmt == "onnx" else None
        manifest = _manifest(run, fmt, model, multiple)
        manifest["route"] = route
        check = {"probe": list(probe.shape), "max_abs_difference": difference}
        manifest["check"] = None if difference is None else check
        atomic_write_text(staging / MANIFEST, json.dumps(manifest, indent=2) + "\n")
        (staging / OWNER).unlink()
        _replace(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    return ExportResult(out, fmt, time.perf_counter() - started, size, difference, tuple(probe.shape), tidied)


def _replace(staging: Path, out: Path) -> None:
    """Move the finished ``staging`` folder to ``out``, replacing an old export only at the end."""
    old = None
    if out.exists():
        old = out.with_name(f".{out.name}-old-{time.time_ns()}")
        out.rename(old)
    staging.rename(out)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
