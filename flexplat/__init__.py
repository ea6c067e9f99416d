"""flexplat: a plugin-based image segmentation platform on TensorFlow/Keras 3.

This module is the public API for plugins (see docs/writing-plugins.md). Light names are
imported eagerly; names that need NumPy/OpenCV/TensorFlow load on first access, so that
``import flexplat`` stays fast.
"""

from __future__ import annotations

import importlib
from typing import Any

from flexplat.config import load_yaml
from flexplat.config import merge as merge_configs
from flexplat.errors import ConfigError, DataError, FlexplatError, RegistryError
from flexplat.hookspecs import hookimpl
from flexplat.options import Option
from flexplat.options import validate as validate_options
from flexplat.specs import CallbackSpec, ClassInfo, CodecSpec, ModelSpec, ProjectSpec
from flexplat.version import __version__

# name -> module that defines it (imported on first attribute access)
_LAZY = {
    "Codec": "flexplat.data.codec",
    "Pair": "flexplat.data.codec",
    "PairScan": "flexplat.data.codec",
    "MaskRead": "flexplat.data.codec",
    "pair_by_stem": "flexplat.data.codec",
    "read_image": "flexplat.data.io",
    "read_gray": "flexplat.data.io",
    "write_png": "flexplat.data.io",
    "colorize": "flexplat.data.io",
    "split_by_original": "flexplat.data.splits",
    "RunContext": "flexplat.engine.context",
}

__all__ = [
    "__version__",
    "hookimpl",
    "load_yaml",
    "merge_configs",
    "Option",
    "validate_options",
    "ModelSpec",
    "CodecSpec",
    "CallbackSpec",
    "ProjectSpec",
    "ClassInfo",
    "FlexplatError",
    "ConfigError",
    "DataError",
    "RegistryError",
    *_LAZY,
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'flexplat' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
