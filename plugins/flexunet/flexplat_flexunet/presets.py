"""The FlexUNet presets registered with flexplat (no TensorFlow import here)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flexplat import ModelSpec, Option
from flexplat_flexunet.architecture import check_input, describe_resolved, make_options, resolve_options
from flexplat_flexunet.architecture import size_multiple as _size_multiple


class _Preset:
    """``build``/``describe``/``size_multiple`` bound to one preset's option defaults."""

    def __init__(self, options: Mapping[str, Option]) -> None:
        self.options = options

    def build(self, image_size: tuple[int, int], channels: int, num_classes: int, **options: Any) -> Any:
        """An uncompiled Keras model named "flexunet" (imports Keras)."""
        from flexplat_flexunet.model import build_model

        return build_model(image_size, channels, num_classes, resolve_options(self.options, options))

    def describe(self, image_size: tuple[int, int], channels: int, num_classes: int, **options: Any) -> dict:
        """``{"parameters": int, "flops": float}`` computed analytically, without TensorFlow."""
        values = resolve_options(self.options, options)
        check_input(image_size, channels, num_classes, values["num_layers"])
        return describe_resolved(tuple(image_size), channels, num_classes, values)

    def size_multiple(self, options: Mapping[str, Any]) -> int:
        return _size_multiple({**{k: o.default for k, o in self.options.items()}, **options})

    def spec(
        self, name: str, description: str, image_size: tuple[int, int], num_classes: int, original: bool = False
    ) -> ModelSpec:
        """The ModelSpec; ``original``: it also reads the original experiments' configs and weight files."""
        migration: dict[str, Any] = {}
        if original:
            from flexplat_flexunet.original import ORIGINAL_NAMES, import_options, load_original_weights

            migration = {
                "import_names": ORIGINAL_NAMES,
                "import_options": import_options,
                "load_weights": load_original_weights,
            }
        return ModelSpec(
            name=name,
            description=description,
            build=self.build,
            options=self.options,
            size_multiple=self.size_multiple,
            describe=self.describe,
            image_size=image_size,
            num_classes=num_classes,
            fully_convolutional=True,
            **migration,
        )


LEUKOCYTE = make_options(
    base_filters=16,
    base_kernels=9,
    num_layers=8,
    dropout_rate=0.05,
    dilation=1,
    activation="relu",
    input_normalize=False,
    normalization="none",
)
"""Defaults of ``flexunet``: the configuration of the original leukocyte run (124,996,934 parameters)."""

SMALL = make_options(
    base_filters=8,
    base_kernels=3,
    num_layers=6,
    dropout_rate=0.05,
    dilation=1,
    activation="relu",
    input_normalize=True,
    normalization="batch",
)
"""Defaults of ``flexunet-small``: 3x3 kernels, 6 levels, batch norm, /255 inside; for CPU training."""

MODELS = [
    _Preset(LEUKOCYTE).spec(
        "flexunet",
        "FlexUNet, the configurable U-Net of the TensorFlow-FlexUNet experiments (defaults: leukocyte config)",
        (512, 512),
        6,
        original=True,
    ),
    _Preset(SMALL).spec(
        "flexunet-small",
        "Compact FlexUNet for CPU training: 3x3 kernels, 6 levels, batch norm, input scaled inside",
        (256, 256),
        6,
    ),
]
