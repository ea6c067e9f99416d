"""Helpers for testing flexplat and its plugins: public (``flexplat.testing``), each name in
``__all__`` documented in docs/writing-plugins.md."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from flexplat.plugins import DEFAULT_PLUGINS, PluginSystem, get_registry, set_system

if TYPE_CHECKING:
    from click.testing import Result

__all__ = [
    "plugin_system",
    "invoke",
    "sample_classes",
    "make_pair",
    "write_dataset",
    "write_rgb_dataset",
    "write_index_dataset",
    "dataset_config",
    "write_run",
    "free_ports",
]


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


def invoke(args: Sequence[str], **kwargs: Any) -> Result:
    """Run ``flexplat ARGS`` in this process with click's ``CliRunner``; returns its ``Result``.

    The command sees the current plugin system (use it inside :func:`plugin_system`). ``kwargs``
    go to ``CliRunner.invoke``, e.g. ``input=``, ``env=``, ``catch_exceptions=``, ``terminal_width=``.
    """
    from click.testing import CliRunner

    from flexplat.cli import cli

    return CliRunner().invoke(cli, list(args), **kwargs)


# -- tiny generated datasets ----------------------------------------------------------------------

SAMPLE_COLORS = ((0, 0, 0), (255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0), (0, 255, 255), (255, 0, 255))


def sample_classes(n: int = 3) -> list:
    """``n`` (<= 7) :class:`flexplat.ClassInfo` items: background (black), then class1, class2, ..."""
    from flexplat.specs import ClassInfo

    if not 1 <= n <= len(SAMPLE_COLORS):
        raise ValueError(f"sample_classes: n must be 1..{len(SAMPLE_COLORS)}")
    return [ClassInfo("background" if i == 0 else f"class{i}", SAMPLE_COLORS[i]) for i in range(n)]


def _class_infos(classes) -> list:
    from flexplat.specs import ClassInfo, classes_from_config

    return [c if isinstance(c, ClassInfo) else classes_from_config([c])[0] for c in classes]


def make_pair(classes, size: tuple[int, int] = (32, 32), seed: int = 0, class_index: int | None = None):
    """One synthetic ``(image uint8 HxWx3 RGB, mask uint8 HxW)``: a noisy light background and one
    elliptical "cell" of class ``class_index`` (random foreground class if None) whose colour
    depends on its class, so a model can learn it. ``size`` is (height, width)."""
    import cv2
    import numpy as np

    classes = _class_infos(classes)
    rng = np.random.default_rng(seed)
    h, w = size
    if class_index is None:
        class_index = int(rng.integers(1, len(classes))) if len(classes) > 1 else 0
    image = np.clip(rng.normal((225, 205, 215), 6, (h, w, 3)), 0, 255).astype(np.uint8)
    mask = np.zeros((h, w), np.uint8)
    if class_index:
        centre = (int(rng.integers(w // 3, w - w // 3 + 1)), int(rng.integers(h // 3, h - h // 3 + 1)))
        axes = (max(2, int(w * rng.uniform(0.15, 0.3))), max(2, int(h * rng.uniform(0.15, 0.3))))
        cv2.ellipse(mask, centre, axes, float(rng.uniform(0, 180)), 0, 360, int(class_index), -1)
        stain = 0.45 * np.asarray(classes[class_index].color) + 0.55 * np.array((90, 40, 130))
        cell = np.clip(rng.normal(stain, 6, (h, w, 3)), 0, 255).astype(np.uint8)
        image[mask == class_index] = cell[mask == class_index]
    return image, mask


def write_dataset(
    root,
    classes,
    n: int = 8,
    size: tuple[int, int] = (32, 32),
    seed: int = 0,
    splits: tuple[str, ...] = ("train",),
    codec: str = "rgb-mask",
    codec_options: Mapping[str, Any] | None = None,
):
    """Write ``n`` synthetic pairs per split to ``root/<split>/images|masks/<split>_<i>.png``.

    ``codec`` names a registered codec that can write: ``"rgb-mask"`` (colour masks),
    ``"index-mask"`` or a plugin's, built with ``codec_options``. Foreground classes cycle
    1, 2, ... so every class appears when ``n >= len(classes) - 1``. Returns ``root`` (a Path).
    """
    from pathlib import Path

    from flexplat.options import validate

    root = Path(root)
    infos = _class_infos(classes)
    spec = get_registry().get("codec", codec)
    writer = spec.factory(infos, validate(spec.options, dict(codec_options or {}), "codec_options"))
    for s, split in enumerate(splits):
        for i in range(n):
            cls = 1 + i % (len(infos) - 1) if len(infos) > 1 else 0
            image, mask = make_pair(infos, size, seed * 100_003 + s * 10_007 + i, cls)
            name = f"{split}_{i:03d}.png"
            writer.write(root / split / "images" / name, root / split / "masks" / name, image, mask)
    return root


def write_rgb_dataset(root, classes, n: int = 8, size=(32, 32), seed: int = 0, splits=("train",)):
    """:func:`write_dataset` with colour masks (codec ``rgb-mask``)."""
    return write_dataset(root, classes, n, size, seed, splits, "rgb-mask")


def write_index_dataset(root, classes, n: int = 8, size=(32, 32), seed: int = 0, splits=("train",)):
    """:func:`write_dataset` with class-index masks (codec ``index-mask``)."""
    return write_dataset(root, classes, n, size, seed, splits, "index-mask")


def dataset_config(root, classes, splits=("train",), codec: str = "rgb-mask") -> dict:
    """A config layer (``classes`` + ``data``) for a dataset written by :func:`write_dataset`."""
    infos = _class_infos(classes)
    data: dict[str, Any] = {"codec": codec, "root": str(root)}
    for split in splits:
        data[split] = {"images": f"{split}/images", "masks": f"{split}/masks"}
    return {"classes": [{"name": c.name, "color": list(c.color)} for c in infos], "data": data}


def write_run(path, model, classes, config: Mapping[str, Any] | None = None, **info: Any) -> Any:
    """A completed run folder at ``path`` holding ``model`` (a Keras model), without training: for tests
    of infer, evaluate and export. Its config is the schema's defaults with project ``test``,
    ``classes`` (``ClassInfo``s or config dicts) and a 32x32 ``model.image_size``, ``config`` merged on
    top; ``run.json`` says ``status: completed`` and holds ``info`` (e.g. ``scale``, ``finished``)."""
    from pathlib import Path

    from flexplat.config import merge
    from flexplat.engine.rundir import RunDir
    from flexplat.options import defaults
    from flexplat.schema import SCHEMA

    full = defaults(SCHEMA)
    full.update(project="test", classes=[{"name": c.name, "color": list(c.color)} for c in _class_infos(classes)])
    full["model"]["image_size"] = [32, 32]
    run = RunDir(Path(path))
    run.path.mkdir(parents=True)
    run.write_config(merge(full, dict(config or {})))
    model.save(run.model_path)
    run.update_info(**{"status": "completed", **info})
    return run


def free_ports(count: int, attempts: int = 20) -> list[int]:
    """``count`` distinct free TCP ports on 127.0.0.1 (bound to port 0, then released), for tests that start
    workers; RuntimeError after ``attempts`` tries without ``count`` distinct ones."""
    import socket

    for _ in range(attempts):
        sockets = []
        try:
            for _ in range(count):
                sock = socket.socket()
                sock.bind(("127.0.0.1", 0))
                sockets.append(sock)
            ports = [s.getsockname()[1] for s in sockets]
        finally:
            for sock in sockets:
                sock.close()
        if len(set(ports)) == count:
            return ports
    raise RuntimeError("no free ports on 127.0.0.1")
