"""The items plugins register: models, codecs, callbacks and projects.

These dataclasses are the contract between the core and its plugins. Everything a plugin
hands to a ``register`` callback is one of them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flexplat.options import Option


@dataclass(frozen=True)
class ClassInfo:
    """One segmentation class: its name and the RGB colour it is drawn with."""

    name: str
    color: tuple[int, int, int]


@dataclass(frozen=True)
class ModelSpec:
    """A model architecture.

    ``build(image_size, channels, num_classes, **options)`` returns an uncompiled Keras model;
    ``image_size`` is ``(height, width)``. ``size_multiple(options)`` tells which multiple
    input sides must be. ``describe(image_size, channels, num_classes, **options)`` returns
    ``{"parameters": int, "flops": float}`` WITHOUT importing TensorFlow (used by ``flexplat info``).
    ``image_size`` and ``num_classes`` are the reference input ``flexplat info`` describes.
    ``fully_convolutional``: the trained weights work at any input size that is a multiple of
    ``size_multiple``, so inference may feed whole images of other sizes (a saved fixed input size
    is then lifted when the model is loaded for inference).

    Migration from the original experiments (``flexplat config import``, ``--init-weights``):
    ``import_names`` are the original configs' ``[model] model`` values this model stands for;
    ``import_options(values)`` turns that ``[model]`` section (key -> Python literal) into
    ``(options, used_keys)`` and raises ConfigError starting with the offending key;
    ``load_weights(model, path)`` loads a trained weights file of the original code (e.g. its
    ``best_model.h5``) into a model this spec built, matching layers by name and shape, and returns
    a one-line summary (FlexplatError on any mismatch).
    """

    name: str
    description: str
    build: Callable[..., Any]
    options: Mapping[str, Option] = field(default_factory=dict)
    size_multiple: Callable[[Mapping[str, Any]], int] = lambda options: 1
    describe: Callable[..., Mapping[str, Any]] | None = None
    image_size: tuple[int, int] = (256, 256)
    num_classes: int = 2
    fully_convolutional: bool = False
    import_names: tuple[str, ...] = ()
    import_options: Callable[[Mapping[str, Any]], tuple[dict[str, Any], list[str]]] | None = None
    load_weights: Callable[[Any, Path], str] | None = None
    kind = "model"


@dataclass(frozen=True)
class CodecSpec:
    """A dataset format: ``factory(classes, options)`` returns a :class:`flexplat.Codec`."""

    name: str
    description: str
    factory: Callable[..., Any]
    options: Mapping[str, Option] = field(default_factory=dict)
    kind = "codec"


@dataclass(frozen=True)
class CallbackSpec:
    """A training callback: ``factory(context, options)`` returns a ``keras.callbacks.Callback``.

    ``context`` is a :class:`flexplat.RunContext` (run folder, config, classes, data).
    """

    name: str
    description: str
    factory: Callable[..., Any]
    options: Mapping[str, Option] = field(default_factory=dict)
    kind = "callback"


@dataclass(frozen=True)
class BackgroundSpec:
    """An object-free background that copy-paste augmentation moves training objects onto.

    ``render(rng, (height, width), object_diameter)`` returns an RGB uint8 image of that size: a
    field as the target images show it around their objects (e.g. red cells around a leukocyte),
    drawn for objects ``object_diameter`` pixels across, with its own random look from ``rng`` (a
    ``numpy.random.Generator``). Users pick it with ``train.augment.paste_background``.
    """

    name: str
    description: str
    render: Callable[..., Any]
    kind = "background"


@dataclass(frozen=True)
class ProjectSpec:
    """A project: its classes, default config and where its data comes from.

    ``config`` is the full default config (usually YAML package data read with
    :func:`flexplat.load_yaml`). ``demo_config`` is layered on top for ``--demo``, and
    ``make_demo_data(out_dir, seed)`` writes the demo dataset. ``original_id(stem)`` maps a
    file stem to the id of the original image it derives from (for leak-free splits).
    ``generate`` is a click command shown as ``flexplat generate <name>``. ``object_label`` and
    ``class_label`` name what reports call "object" and "object class" (e.g. "cell", "cell type").
    """

    name: str
    description: str
    config: Mapping[str, Any]
    demo_config: Mapping[str, Any] | None = None
    make_demo_data: Callable[[Path, int], Any] | None = None
    original_id: Callable[[str], str] | None = None
    generate: Any = None
    data_hint: str = ""
    object_label: str = "object"
    class_label: str = "object class"
    kind = "project"

    @property
    def classes(self) -> list[ClassInfo]:
        return classes_from_config(self.config.get("classes", []))


def classes_from_config(entries: Sequence[Mapping[str, Any]]) -> list[ClassInfo]:
    """Turn the config's ``classes`` list into :class:`ClassInfo` items (index = position)."""
    return [ClassInfo(str(e["name"]), tuple(int(c) for c in e["color"])) for e in entries]


def nearest_multiples(value: int, multiple: int) -> tuple[int, int]:
    """The valid sides around ``value`` for a model whose sides must be multiples of ``multiple``.

    The multiple at or below ``value`` (never less than ``multiple``) and the next one up,
    e.g. ``(384, 512)`` for 500 and 128: what errors suggest instead of an invalid size.
    """
    lower = max(multiple, value // multiple * multiple)
    return lower, lower + multiple


SPEC_TYPES = {
    "model": ModelSpec,
    "codec": CodecSpec,
    "callback": CallbackSpec,
    "background": BackgroundSpec,
    "project": ProjectSpec,
}
