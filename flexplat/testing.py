"""Helpers for testing flexplat and its plugins (public, documented in docs/writing-plugins.md)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from flexplat.plugins import DEFAULT_PLUGINS, PluginSystem, set_system


@contextlib.contextmanager
def plugin_system(
    *plugins: Any, autoload: bool = False, builtins: tuple[str, ...] = DEFAULT_PLUGINS, strict: bool = False
) -> Iterator[PluginSystem]:
    """Swap in a fresh plugin system holding the built-ins plus ``plugins`` for the block.

    ``autoload=True`` also loads installed entry points. The previous system is restored on
    exit, so a throwaway plugin never leaks into other tests.
    """
    system = PluginSystem(builtins=builtins, autoload=autoload, strict=strict)
    for i, plugin in enumerate(plugins):
        name = getattr(plugin, "__name__", None) or f"test-plugin-{i}"
        system.add(plugin, name, "(test)", "")
    previous = set_system(system)
    try:
        yield system
    finally:
        set_system(previous)
