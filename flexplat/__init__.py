"""flexplat: a plugin-based image segmentation platform on TensorFlow/Keras 3.

This module is the public API for plugins: the names in ``__all__``, each documented in
docs/writing-plugins.md ("The public API"). Light names are imported eagerly; names that need
NumPy/OpenCV/TensorFlow, and the ``flexplat.testing`` helpers, load on first access, so that
``import flexplat`` stays fast.
"""

from __future__ import annotations

import importlib
from typing import Any

from flexplat.config import load_yaml
from flexplat.config import merge as merge_configs
from flexplat.config import resolve as resolve_config
from flexplat.errors import ConfigError, DataError, FlexplatError, RegistryError
from flexplat.hookspecs import hookimpl
from flexplat.options import Option
from flexplat.options import validate as validate_options
from flexplat.specs import BackgroundSpec, CallbackSpec, ClassInfo, CodecSpec, ModelSpec, ProjectSpec
from flexplat.version import __version__

# name -> module that defines it (imported on first attribute access); a name that is its own
# module's last part (``testing``) is that module
_LAZY = {
    "get_registry": "flexplat.plugins",
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
    "import_original_config": "flexplat.migrate",
    "OriginalImport": "flexplat.migrate",
    "testing": "flexplat.testing",
}

__all__ = [
    "__version__",
    "hookimpl",
    "load_yaml",
    "merge_configs",
    "resolve_config",
    "Option",
    "validate_options",
    "ModelSpec",
    "CodecSpec",
    "CallbackSpec",
    "BackgroundSpec",
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
    imported = importlib.import_module(module)
    value = imported if module == f"{__name__}.{name}" else getattr(imported, name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    """The module's names including the lazy ones (``dir(flexplat)``, tab completion)."""
    return sorted({*globals(), *_LAZY})
