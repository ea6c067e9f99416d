"""The plugin manager: built-in plugins and entry points, loaded once, failures recorded.

Built-in plugins register through the same hooks as third-party ones. Entry points of the
group ``flexplat`` are loaded lazily, each in isolation: a plugin that fails to import or to
register is recorded (and shown by ``flexplat list``) instead of breaking other commands.

Environment:
  FLEXPLAT_DISABLE_PLUGIN_AUTOLOAD=1  skip entry points (only built-ins load)
  FLEXPLAT_STRICT_PLUGINS=1           a plugin failure is an error (for plugin authors)
"""

from __future__ import annotations

import importlib
import os
import traceback
import types
from collections.abc import Iterable
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Any

import pluggy

from flexplat import hookspecs
from flexplat.errors import PluginLoadError, RegistryError
from flexplat.registry import Entry, Registry
from flexplat.specs import SPEC_TYPES
from flexplat.version import __version__

ENTRY_POINT_GROUP = "flexplat"
DEFAULT_PLUGINS = ("flexplat.default_plugins.codecs", "flexplat.default_plugins.callbacks")
HOOK_KINDS = {
    "register_models": "model",
    "register_codecs": "codec",
    "register_callbacks": "callback",
    "register_backgrounds": "background",
    "register_projects": "project",
}


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in {"1", "true", "yes", "on"}


@dataclass(frozen=True)
class PluginInfo:
    """A loaded plugin: its name, distribution, version and the hooks it implements."""

    name: str
    distribution: str
    version: str
    hooks: tuple[str, ...]
    builtin: bool


@dataclass(frozen=True)
class PluginFailure:
    """A plugin that failed to load or register, and why."""

    name: str
    distribution: str
    stage: str
    error: str
    details: str = field(default="", repr=False)


class PluginSystem:
    """One pluggy manager plus the registry built from its hooks."""

    def __init__(
        self,
        *,
        builtins: Iterable[str] = DEFAULT_PLUGINS,
        autoload: bool | None = None,
        strict: bool | None = None,
    ) -> None:
        self.pm = pluggy.PluginManager("flexplat")
        self.pm.add_hookspecs(hookspecs)
        self.builtins = tuple(builtins)
        self.autoload = not _env_flag("FLEXPLAT_DISABLE_PLUGIN_AUTOLOAD") if autoload is None else autoload
        self.strict = _env_flag("FLEXPLAT_STRICT_PLUGINS") if strict is None else strict
        self.failures: list[PluginFailure] = []
        self._origins: dict[str, tuple[str, str, bool]] = {}
        self._loaded = False
        self._registry: Registry | None = None

    # -- loading ---------------------------------------------------------------------------
    def _fail(self, name: str, distribution: str, stage: str, exc: BaseException) -> None:
        failure = PluginFailure(
            name=name,
            distribution=distribution,
            stage=stage,
            error=f"{type(exc).__name__}: {exc}",
            details="".join(traceback.format_exception(exc)),
        )
        if self.strict:
            raise PluginLoadError(f"plugin '{name}' ({distribution}) failed at {stage}: {failure.error}") from exc
        self.failures.append(failure)

    def add(self, plugin: Any, name: str, distribution: str = "(local)", version: str = "") -> None:
        """Register a plugin object (a module or any object with hookimpls)."""
        self.pm.register(plugin, name=name)
        self._origins[name] = (distribution, version, distribution == "flexplat")
        self._registry = None

    def load(self) -> PluginSystem:
        """Load built-in plugins and (unless disabled) entry points, once."""
        if self._loaded:
            return self
        self._loaded = True
        for module_name in self.builtins:
            try:
                module = importlib.import_module(module_name)
                self.add(module, module_name.rsplit(".", 1)[-1], "flexplat", __version__)
            except Exception as exc:  # a broken built-in must not hide the others
                self._fail(module_name, "flexplat", "import", exc)
        if self.autoload:
            for ep in entry_points(group=ENTRY_POINT_GROUP):
                dist = ep.dist.name if ep.dist else "(unknown)"
                version = ep.dist.version if ep.dist else ""
                try:
                    plugin = ep.load()
                except Exception as exc:
                    self._fail(ep.name, dist, "import", exc)
                    continue
                if self.pm.is_registered(plugin) or self.pm.has_plugin(ep.name):
                    continue
                try:
                    self.add(plugin, ep.name, dist, version)
                except Exception as exc:
                    self._fail(ep.name, dist, "register", exc)
        return self

    # -- hooks -----------------------------------------------------------------------------
    def _call_each(self, hook_name: str, **kwargs: Any) -> None:
        """Call every implementation of ``hook_name`` separately, recording failures."""
        for impl in getattr(self.pm.hook, hook_name).get_hookimpls():
            name = self.pm.get_name(impl.plugin) or repr(impl.plugin)
            dist = self._origins.get(name, ("(local)", "", False))[0]
            try:
                impl.function(**{k: v for k, v in kwargs.items() if k in impl.argnames})
            except Exception as exc:
                self._fail(name, dist, hook_name, exc)

    def registry(self) -> Registry:
        """The registry of all items, built on first use."""
        if self._registry is not None:
            return self._registry
        self.load()
        registry = Registry()
        for hook_name, kind in HOOK_KINDS.items():
            for impl in getattr(self.pm.hook, hook_name).get_hookimpls():
                name = self.pm.get_name(impl.plugin) or repr(impl.plugin)
                dist, version, _ = self._origins.get(name, ("(local)", "", False))
                collected: list[Entry] = []
                register = _collector(collected, kind, hook_name, name, dist, version)
                try:
                    impl.function(**({"register": register} if "register" in impl.argnames else {}))
                except Exception as exc:
                    self._fail(name, dist, hook_name, exc)
                    continue
                for entry in collected:
                    try:
                        registry.add(entry)
                    except RegistryError as exc:
                        self._fail(name, dist, hook_name, exc)
        self._registry = registry
        return registry

    def add_commands(self, cli: Any) -> None:
        """Let plugins add their click commands to ``cli``."""
        self.load()
        self._call_each("register_commands", cli=cli)

    def blame(self, exc: BaseException) -> tuple[PluginInfo, str] | None:
        """The non-built-in plugin whose code raised ``exc`` (innermost frame first) and where, else None."""
        packages = {}
        for name, plugin in self.pm.list_name_plugin():
            dist, version, builtin = self._origins.get(name, ("(local)", "", False))
            module = plugin.__name__ if isinstance(plugin, types.ModuleType) else type(plugin).__module__
            if not builtin and module:
                packages[module.split(".")[0]] = PluginInfo(name, dist, version, (), builtin)
        for frame, line in reversed(list(traceback.walk_tb(exc.__traceback__))):
            package = str(frame.f_globals.get("__name__", "")).split(".")[0]
            if package in packages:
                return packages[package], f"{frame.f_code.co_filename}:{line}"
        return None

    def plugins(self) -> list[PluginInfo]:
        self.load()
        infos = []
        for name, plugin in self.pm.list_name_plugin():
            dist, version, builtin = self._origins.get(name, ("(local)", "", False))
            hooks = tuple(sorted(h.name for h in self.pm.get_hookcallers(plugin) or []))
            infos.append(PluginInfo(name, dist, version, hooks, builtin))
        return sorted(infos, key=lambda p: (p.builtin, p.name))


def _collector(collected: list[Entry], kind: str, hook_name: str, plugin: str, dist: str, version: str):
    """The ``register`` callback handed to one hook implementation."""
    expected = SPEC_TYPES[kind]

    def register(item: Any) -> None:
        if not isinstance(item, expected):
            raise TypeError(f"{hook_name} expects flexplat.{expected.__name__} items, got {type(item).__name__}")
        collected.append(Entry(item, plugin, dist, version))

    return register


_system: PluginSystem | None = None


def get_system() -> PluginSystem:
    """The process-wide plugin system, created on first use."""
    global _system
    if _system is None:
        _system = PluginSystem()
    return _system


def set_system(system: PluginSystem | None) -> PluginSystem | None:
    """Swap the process-wide plugin system (tests); returns the previous one."""
    global _system
    previous, _system = _system, system
    return previous


def get_registry() -> Registry:
    """The registry of the process-wide plugin system."""
    return get_system().registry()
