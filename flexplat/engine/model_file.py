"""Loading a run's ``model.keras`` quickly, for inference and evaluation (:func:`load_model`).

``keras.models.load_model`` on the 125M-parameter leukocyte FlexUNet spends most of its time on
memory it throws away: every layer is first built with its random initializers, the weights file
is extracted from the archive, read into NumPy, and copied into the variables. On the 2-core
development machine every fresh 500 MB costs about a second in page faults alone.

:func:`load_saved_model` instead

1. starts a thread that finds every weight array in the archive (the weights file is stored
   uncompressed inside the ``.keras`` zip and Keras writes contiguous HDF5 datasets, so each array
   is one ``pread`` at a known offset; only ``h5py`` metadata is needed, no TensorFlow) and reads
   the file through once, so the page cache holds it;
2. meanwhile imports Keras/TensorFlow in the calling thread (see :func:`import_keras`) - the two
   overlap on two cores, and the reads release the GIL;
3. rebuilds the architecture from the archive's ``config.json`` with every initializer set to
   Zeros (no random draws) and fills each layer through its public ``load_own_variables``, reading
   that layer's arrays just then (only one layer's arrays are in memory beside the variables).

Every variable must be filled exactly once from an array of its shape, else the standard
``keras.models.load_model`` runs instead, so an unusual archive still loads, only slower.
"""

from __future__ import annotations

import importlib.abc
import json
import os
import re
import sys
import threading
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from flexplat.atomic import atomic_write_with
from flexplat.engine.rundir import RunDir
from flexplat.errors import FlexplatError

WEIGHTS_MEMBER = "model.weights.h5"
_ZEROS = {"module": "keras.initializers", "class_name": "Zeros", "config": {}, "registered_name": None}


class _HideMatplotlib(importlib.abc.MetaPathFinder):
    def find_spec(self, name: str, path: Any = None, target: Any = None) -> None:
        if name == "matplotlib" or name.startswith("matplotlib."):
            raise ImportError(f"{name} is hidden while Keras is imported")
        return None


def import_keras() -> Any:
    """Import Keras (and TensorFlow) about a second faster than a plain ``import keras``.

    Keras imports ``matplotlib.pyplot`` at start-up for its image-gallery helpers whenever
    matplotlib is installed (flexplat does not need it, but most scientific environments have it).
    flexplat never uses those helpers, so matplotlib is hidden during the import; later imports of
    matplotlib work as usual. Without matplotlib installed this changes nothing.
    """
    if "keras" in sys.modules or "matplotlib" in sys.modules:
        import keras

        return keras
    finder = _HideMatplotlib()
    sys.meta_path.insert(0, finder)
    try:
        import keras
    finally:
        sys.meta_path.remove(finder)
    return keras


class _MemberFile:
    """A read-only file object over one uncompressed member of a zip archive (for h5py)."""

    def __init__(self, path: Path, start: int, size: int) -> None:
        self._file = open(path, "rb")  # noqa: SIM115 - closed by close()
        self.start, self.size, self._pos = start, size, 0

    def seek(self, offset: int, whence: int = 0) -> int:
        base = {0: 0, 1: self._pos, 2: self.size}[whence]
        self._pos = base + offset
        return self._pos

    def tell(self) -> int:
        return self._pos

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        count = max(0, min(len(view), self.size - self._pos))
        read = os.preadv(self._file.fileno(), [view[:count]], self.start + self._pos) if count else 0
        self._pos += read
        return read

    def read(self, size: int = -1) -> bytes:  # h5py recognises file objects by read + seek
        size = self.size - self._pos if size < 0 else size
        buffer = bytearray(max(0, min(size, self.size - self._pos)))
        return bytes(buffer[: self.readinto(buffer)])

    def close(self) -> None:
        self._file.close()


def _member_data_offset(path: Path, name: str) -> tuple[int, int]:
    """(byte offset of the member's data in the archive, size); ValueError if it is compressed."""
    with zipfile.ZipFile(path) as archive:
        info = archive.getinfo(name)
    if info.compress_type != zipfile.ZIP_STORED:
        raise ValueError(f"{path}: {name} is compressed")
    with open(path, "rb") as handle:
        handle.seek(info.header_offset)
        header = handle.read(30)
    if header[:4] != b"PK\x03\x04":
        raise ValueError(f"{path}: bad zip local header for {name}")
    name_length = int.from_bytes(header[26:28], "little")
    extra_length = int.from_bytes(header[28:30], "little")
    return info.header_offset + 30 + name_length + extra_length, info.file_size


SKIPPED_GROUPS = ("optimizer/",)
"""Saved state inference never needs: a run's model.keras written while training holds the optimizer's
slots too (for Adam twice the weights), which are neither read nor kept."""


class _Pending:
    """A contiguous weight array not read yet: :meth:`load` reads it with one ``pread``, so a layer's
    arrays exist only while that layer is filled (peak memory: the variables plus one layer)."""

    __slots__ = ("dtype", "offset", "path", "shape")

    def __init__(self, path: Path, offset: int, shape: tuple[int, ...], dtype: Any) -> None:
        self.path, self.offset, self.shape, self.dtype = path, offset, shape, dtype

    def load(self) -> np.ndarray:
        array = np.empty(self.shape, self.dtype)
        if array.nbytes:
            with open(self.path, "rb") as handle:
                if os.preadv(handle.fileno(), [memoryview(array).cast("B")], self.offset) != array.nbytes:
                    raise ValueError(f"{self.path}: {WEIGHTS_MEMBER} is truncated")
        return array


def read_weight_arrays(path: Path, lazy: bool = False) -> dict[str, Any]:
    """The model's datasets of the archive's weights file, keyed by HDF5 path (no TensorFlow needed).

    Optimizer state (:data:`SKIPPED_GROUPS`) is skipped without reading it. ``lazy``: contiguous
    datasets are returned as :class:`_Pending` (read when used) and the file is read through once
    so that those reads come from the page cache.
    """
    import h5py

    start, size = _member_data_offset(path, WEIGHTS_MEMBER)
    member = _MemberFile(path, start, size)
    arrays: dict[str, Any] = {}
    try:
        with h5py.File(member, "r") as store:
            datasets: list[tuple[str, Any]] = []
            store.visititems(lambda key, item: datasets.append((key, item)) if _wanted(key, item) else None)
            for key, dataset in datasets:
                offset = dataset.id.get_offset()
                plain = dataset.dtype.kind in "biuf" and dataset.dtype.isnative  # (isbuiltin is 0 for h5py's)
                if offset is None or dataset.compression or not plain:
                    arrays[key] = np.empty(dataset.shape, dataset.dtype)
                    dataset.read_direct(arrays[key])  # chunked or filtered: let HDF5 decode it
                elif lazy:
                    arrays[key] = _Pending(path, start + offset, dataset.shape, dataset.dtype)
                else:
                    arrays[key] = _Pending(path, start + offset, dataset.shape, dataset.dtype).load()
        if lazy:
            _read_through(member)
    finally:
        member.close()
    return arrays


def _read_through(member: _MemberFile, chunk: int = 8 * 2**20) -> None:
    """Read the whole member once into one reused buffer: the page cache then holds it."""
    buffer = bytearray(chunk)
    member.seek(0)
    while member.readinto(buffer) == chunk:
        pass


def loaded(value: Any) -> np.ndarray:
    """An array of :func:`read_weight_arrays`, read now if it was left pending."""
    return value.load() if isinstance(value, _Pending) else value


def _wanted(key: str, item: Any) -> bool:
    import h5py

    return isinstance(item, h5py.Dataset) and not key.startswith(SKIPPED_GROUPS)


def any_size_inputs(config: Any) -> Any:
    """A copy of a Keras model config whose input layers accept any height and width."""
    if isinstance(config, dict):
        if config.get("class_name") == "InputLayer" and len(config.get("config", {}).get("batch_shape") or ()) == 4:
            inner = {**config["config"], "batch_shape": [None, None, None, config["config"]["batch_shape"][-1]]}
            return {**config, "config": inner}
        return {key: any_size_inputs(value) for key, value in config.items()}
    if isinstance(config, list):
        return [any_size_inputs(value) for value in config]
    return config


class WeightPrefetch:
    """:func:`read_weight_arrays` in a background thread; :meth:`result` joins it."""

    def __init__(self, path: Path) -> None:
        self._result: dict[str, Any] | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(path,), name="flexplat-weights", daemon=True)
        self._thread.start()

    def _run(self, path: Path) -> None:
        try:
            self._result = read_weight_arrays(path, lazy=True)
        except BaseException as exc:  # re-raised in the caller's thread by result()
            self._error = exc

    def result(self) -> dict[str, Any]:
        """The arrays (some pending), handed over: the prefetch keeps no reference to them."""
        self._thread.join()
        if self._error is not None:
            raise self._error
        result, self._result = self._result, None
        if result is None:
            raise RuntimeError("WeightPrefetch.result() can be called once")
        return result


def zero_initializers(config: Any) -> Any:
    """A copy of a Keras config with every ``*_initializer`` replaced by Zeros."""
    if isinstance(config, dict):
        return {
            key: dict(_ZEROS) if key.endswith("_initializer") and isinstance(value, dict) else zero_initializers(value)
            for key, value in config.items()
        }
    if isinstance(config, list):
        return [zero_initializers(value) for value in config]
    return config


def _saved_name(layer: Any, seen: dict[str, int]) -> str:
    """The name Keras's saver gives a layer: snake_case class name, numbered in ``model.layers`` order."""
    name = re.sub(r"\W+", "", type(layer).__name__)
    name = re.sub("([a-z])([A-Z])", r"\1_\2", re.sub("(.)([A-Z][a-z]+)", r"\1_\2", name)).lower()
    seen[name] = seen[name] + 1 if name in seen else 0
    return f"{name}_{seen[name]}" if seen[name] else name


def fill_layers(model: Any, arrays: dict[str, Any]) -> None:
    """Fill every layer of a flat functional model from the saved ``layers/<name>/vars/<i>`` arrays.

    Raises ValueError unless every variable of the model and every array is used exactly once.
    Arrays are removed from ``arrays`` as they are used (pending ones read just then), so only one
    layer's arrays are in memory beside the variables.
    """
    total, used, seen = len(arrays), 0, {}
    for layer in model.layers:
        prefix = f"layers/{_saved_name(layer, seen)}/vars/"
        own = {key[len(prefix) :]: loaded(arrays.pop(key)) for key in [k for k in arrays if k.startswith(prefix)]}
        if len(own) != len(layer.weights):  # nested layers or a different layout: not for this path
            raise ValueError(f"layer {layer.name}: {len(layer.weights)} variables, {len(own)} saved arrays")
        if own:
            layer.load_own_variables(own)
            used += len(own)
        del own
    if used != total or used != len(model.weights):
        raise ValueError(f"{used} arrays used of {total} saved, for {len(model.weights)} variables")


def load_fast(path: Path, any_size: bool = False) -> Any:
    """The fast path of :func:`load_saved_model`, without the fallback (ValueError if it does not apply)."""
    prefetch = WeightPrefetch(path)
    keras = import_keras()
    with zipfile.ZipFile(path) as archive:
        config = json.loads(archive.read("config.json"))
    config["compile_config"] = None
    config = any_size_inputs(config) if any_size else config
    model = keras.saving.deserialize_keras_object(zero_initializers(config), safe_mode=True)
    fill_layers(model, prefetch.result())
    return model


def load_saved_model(path: Path, any_size: bool = False) -> Any:
    """Load a ``.keras`` file for inference (uncompiled, ``safe_mode``); see the module docstring.

    ``any_size`` (fast path only) lifts the saved input height and width, for fully convolutional models.
    """
    try:
        return load_fast(Path(path), any_size)
    except Exception:  # the standard loader below reports real problems with the file
        keras = import_keras()
        return keras.models.load_model(path, compile=False, safe_mode=True)


def size_multiple(config: dict) -> int:
    """The multiple the model's input sides must be (the model plugin's ``size_multiple``; 1 if unknown)."""
    from flexplat.plugins import get_registry

    name = config["model"]["name"]
    registry = get_registry()
    if name not in registry.names("model"):
        return 1
    return int(registry.get("model", name).size_multiple(config["model"].get("options", {})))


def load_model(run: RunDir) -> Any:
    """The run's Keras model (plugins imported first so their custom objects are registered)."""
    from flexplat.plugins import get_registry

    if not run.model_path.is_file():
        raise FlexplatError(f"{run.path}: no {run.model_path.name}; the run has not finished an epoch yet")
    registry = get_registry()
    name = run.config().get("model", {}).get("name")
    any_size = bool(name in registry.names("model") and registry.get("model", name).fully_convolutional)
    try:
        return load_saved_model(run.model_path, any_size)
    except Exception as exc:  # Keras raises many types; the user needs the file and a hint
        raise FlexplatError(
            f"{run.model_path}: cannot load the model ({type(exc).__name__}: {exc}); is the plugin that "
            f"provides model '{run.config().get('model', {}).get('name')}' installed? (`flexplat list`)"
        ) from exc


def save_for_inference(model: Any, path: Path) -> None:
    """Write ``model`` to ``path`` (``.keras``) with its weights only, atomically.

    A compiled model saves its optimizer's slots too (for Adam, twice the weights); the run's
    ``resume/`` checkpoint keeps those, the model kept for inference does not. The weights are
    copied into an uncompiled clone of the architecture, which is what gets saved.
    """
    path = Path(path)
    clone = type(model).from_config(model.get_config())  # the architecture, uncompiled
    clone.set_weights(model.get_weights())
    atomic_write_with(path, clone.save, keep_suffix=True)
