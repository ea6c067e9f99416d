"""Migration from the original TensorFlow-FlexUNet experiments: their config keys and their weight files.

:func:`import_options` maps an original ``[model]`` section to ``flexunet`` options (no TensorFlow).
:func:`load_original_weights` loads the original's Keras 2 HDF5 files (a ``save_weights`` ``.h5``, or
the full-model ``best_model.h5`` with weights under ``/model_weights``) into a flexplat FlexUNet.
Both are registered on the ``flexunet`` ModelSpec (``import_options``, ``load_weights``).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from flexplat import ConfigError, FlexplatError

ORIGINAL_NAMES = ("TensorFlowFlexUNet",)
"""``[model] model`` values of the original configs that ``flexunet`` stands for."""

_KEYS = ("base_filters", "base_kernels", "num_layers", "dropout_rate", "dilation", "activation", "input_normalize",
         "normalization")  # fmt: skip


def _square(key: str, value: Any) -> int:
    """``(9, 9)`` or ``9`` -> 9; a non-square pair is refused (FlexUNet kernels and dilations are square)."""
    if isinstance(value, tuple | list):
        if len(value) != 2 or value[0] != value[1]:
            raise ConfigError(f"{key}: FlexUNet {key} are square: expected (n, n), got {value!r}")
        value = value[0]
    if not isinstance(value, int) or isinstance(value, bool):
        raise ConfigError(f"{key}: must be an integer or (n, n), got {value!r}")
    return value


def import_options(values: Mapping[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """The original ``[model]`` section -> (``flexunet`` options, the keys used); ConfigError names the key."""
    options: dict[str, Any] = {}
    for key in _KEYS:
        if key not in values:
            continue
        value = values[key]
        if key in ("base_kernels", "dilation"):
            value = _square(key, value)
        elif key == "normalization":
            if not isinstance(value, bool):
                raise ConfigError(f"{key}: must be True or False, got {value!r}")
            value = "batch" if value else "none"
        elif key == "activation":
            value = str(value).lower()
        options[key] = value
    return options, [k for k in _KEYS if k in values]


def _text(value: Any) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def read_original_weights(path: str | Path) -> list[tuple[str, list[Any]]]:
    """The weighted layers of an original ``.h5`` in model order: ``[(layer name, [arrays])]``."""
    import h5py

    path = Path(path)
    try:
        handle = h5py.File(path, "r")
    except OSError as exc:
        raise FlexplatError(f"{path}: not an HDF5 weights file ({exc})") from None
    with handle:
        group = handle["model_weights"] if "model_weights" in handle else handle
        if "layer_names" not in group.attrs:
            raise FlexplatError(
                f"{path}: no 'layer_names' attribute: not a Keras 2 .h5 weights or model file (a Keras 3 "
                "'.weights.h5' or '.keras' file loads with `flexplat train --init RUN_DIR` instead)"
            )
        layers = []
        for name in map(_text, group.attrs["layer_names"]):
            names = [_text(n) for n in group[name].attrs.get("weight_names", [])]
            if names:
                layers.append((name, [group[name][n][()] for n in names]))
    return layers


def _kind(name: str) -> str:
    """The original layer's type from its Keras 2 auto-generated name (``conv2d_transpose_1``)."""
    for kind in ("conv2d_transpose", "batch_normalization", "conv2d"):
        if name == kind or name.startswith(f"{kind}_"):
            return kind
    return name


_KINDS = {"Conv2DTranspose": "conv2d_transpose", "BatchNormalization": "batch_normalization", "Conv2D": "conv2d"}


def load_original_weights(model: Any, path: str | Path) -> str:
    """Load an original FlexUNet ``.h5`` into ``model``, layer by layer in model order, checking type and shapes."""
    path = Path(path)
    theirs = read_original_weights(path)
    ours = [layer for layer in model.layers if layer.weights]
    if len(theirs) != len(ours):
        raise FlexplatError(
            f"{path}: {len(theirs)} layers with weights, this {model.name} has {len(ours)}: the file was trained "
            "with other num_layers or normalization; import the config it was trained with"
        )
    for (name, arrays), layer in zip(theirs, ours, strict=True):
        kind = _KINDS.get(type(layer).__name__, type(layer).__name__)
        shapes = [tuple(a.shape) for a in arrays]
        wanted = [tuple(w.shape) for w in layer.weights]
        if _kind(name) != kind or shapes != wanted:
            raise FlexplatError(
                f"{path}: layer {name!r} {shapes} does not fit flexplat layer {layer.name!r} ({kind}) {wanted}: "
                "the model options (base_filters, base_kernels, num_layers, image_channels, classes) must be "
                "those the file was trained with"
            )
        layer.set_weights(arrays)
    count = sum(int(a.size) for _, arrays in theirs for a in arrays)
    return f"loaded {len(theirs)} layers ({count:,} weights) from the original model file {path}"
