"""The core's tests run against the built-ins plus one tiny throwaway plugin, never a shipped one.

Every test gets a fresh plugin system holding the built-in codecs and callbacks and
tests/plugin_fixtures/flexplat_tiny.py (model ``tiny-unet``, codec ``tiny-grey``, project
``tiny``); the previous system is restored afterwards and installed entry points are not loaded,
so ``pytest tests`` behaves the same with only the core installed. Tests that start ``flexplat``
in a subprocess install the same plugin as the distribution ``flexplat-tiny`` (fixture ``site``).
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

import pytest

from flexplat.testing import plugin_system

if TYPE_CHECKING:
    from flexplat.engine.rundir import RunDir

TINY_FILE = Path(__file__).resolve().parent / "plugin_fixtures" / "flexplat_tiny.py"
TINY_VERSION = "0.0.1"


def _load_tiny() -> ModuleType:
    spec = importlib.util.spec_from_file_location("flexplat_tiny", TINY_FILE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


TINY = _load_tiny()


@pytest.fixture(autouse=True)
def tiny_plugin() -> Iterator[ModuleType]:
    """The tiny plugin (distribution ``flexplat-tiny``) and the built-ins, for one test."""
    with plugin_system() as system:
        system.add(TINY, "tiny", "flexplat-tiny", TINY_VERSION)
        yield TINY


@dataclass
class Site:
    """A folder for PYTHONPATH holding distributions with a ``flexplat`` entry point."""

    path: Path

    def add(self, module: str, source: str, distribution: str, entry: str, version: str = TINY_VERSION) -> None:
        """Install ``source`` as module ``module`` of ``distribution``, entry point ``entry``."""
        (self.path / f"{module}.py").write_text(source, encoding="utf-8")
        info = self.path / f"{module}-{version}.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {distribution}\nVersion: {version}\n")
        (info / "entry_points.txt").write_text(f"[flexplat]\n{entry} = {module}\n")

    def env(self, **extra: str) -> dict[str, str]:
        """The environment of a subprocess that finds these distributions."""
        pythonpath = os.pathsep.join(filter(None, [str(self.path), os.environ.get("PYTHONPATH")]))
        return {**os.environ, "PYTHONPATH": pythonpath, **extra}

    def env_without(self, *blocked: str, **extra: str) -> dict[str, str]:
        """:meth:`env` in which importing any of the top-level packages ``blocked`` raises ImportError
        (ModuleNotFoundError), as if they were not installed."""
        folder = self.path.parent / f"blocker-{'-'.join(sorted(blocked))}"
        folder.mkdir(exist_ok=True)
        (folder / "sitecustomize.py").write_text(BLOCKER.format(blocked=set(blocked)), encoding="utf-8")
        env = self.env(**extra)
        env["PYTHONPATH"] = os.pathsep.join([str(folder), env["PYTHONPATH"]])
        return env


BLOCKER = """
import importlib.abc, sys

class _Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {blocked!r}:
            raise ModuleNotFoundError(f"No module named {{name!r}} (blocked in this test)", name=name)
        return None

sys.meta_path.insert(0, _Block())
"""


@pytest.fixture
def site(tmp_path: Path) -> Site:
    """A :class:`Site` holding ``flexplat-tiny``, for tests that run ``flexplat`` in a subprocess."""
    site = Site(tmp_path / "site")
    site.path.mkdir()
    site.add("flexplat_tiny", TINY_FILE.read_text(encoding="utf-8"), "flexplat-tiny", "tiny")
    return site


@pytest.fixture(scope="module")
def keras_run(tmp_path_factory) -> RunDir:
    """A completed run folder holding a one-layer Keras model on 32x32 inputs (no training needed)."""
    keras = pytest.importorskip("keras")
    from flexplat.testing import sample_classes, write_run

    inputs = keras.Input((32, 32, 3))
    model = keras.Model(inputs, keras.layers.Conv2D(3, 1, activation="softmax")(inputs))
    return write_run(tmp_path_factory.mktemp("runs") / "run", model, sample_classes(3), finished="2026-01-01T10:00:00")
