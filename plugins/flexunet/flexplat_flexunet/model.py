"""The FlexUNet as a Keras 3 functional model (Keras is imported inside :func:`build_model`).

Only built-in Keras layers and activations are used (Rescaling for /255, GroupNormalization,
the "mish" activation), so a saved ``.keras`` file loads with ``safe_mode=True`` in any process
without custom objects.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flexplat_flexunet.architecture import ACTIVATIONS, check_input, group_count, plan


def build_model(image_size: tuple[int, int], channels: int, num_classes: int, options: Mapping[str, Any]) -> Any:
    """Build the uncompiled FlexUNet for already resolved ``options`` (see ``architecture.resolve_options``)."""
    import keras
    from keras import layers

    check_input(image_size, channels, num_classes, options["num_layers"])
    levels = plan(options)
    activation = ACTIVATIONS[options["activation"]]

    def norm(x: Any, name: str) -> Any:
        kind = options["normalization"]
        if kind == "batch":
            return layers.BatchNormalization(name=name)(x)
        if kind == "group":
            groups = group_count(x.shape[-1], options["norm_groups"])
            return layers.GroupNormalization(groups=groups, name=name)(x)
        return x

    def conv(x: Any, filters: int, kernel: int, dilation: int, name: str) -> Any:
        x = layers.Conv2D(
            filters,
            kernel,
            padding="same",
            dilation_rate=dilation,
            activation=activation,
            kernel_initializer="he_normal",
            name=name,
        )(x)
        return norm(x, f"{name}_norm")

    def block(x: Any, level: Any, prefix: str) -> Any:
        x = conv(x, level.filters, level.kernel, level.dilation, f"{prefix}_conv1")
        if level.dropout > 0:
            x = layers.Dropout(level.dropout, name=f"{prefix}_dropout")(x)
        return conv(x, level.filters, level.kernel, level.dilation, f"{prefix}_conv2")

    inputs = keras.Input(shape=(int(image_size[0]), int(image_size[1]), int(channels)), name="image")
    x = layers.Rescaling(1.0 / 255.0, name="scale_255")(inputs) if options["input_normalize"] else inputs
    skips = []
    for i, level in enumerate(levels):
        x = block(x, level, f"enc{i}")
        if i < len(levels) - 1:
            skips.append(x)
            x = layers.MaxPooling2D(2, name=f"enc{i}_pool")(x)
    for i in range(len(levels) - 2, -1, -1):
        level = levels[i]
        x = layers.Conv2DTranspose(
            level.filters, 2, strides=2, padding="same", kernel_initializer="he_normal", name=f"dec{i}_up"
        )(x)
        x = layers.Concatenate(name=f"dec{i}_concat")([x, skips[i]])
        x = block(x, level, f"dec{i}")
    x = layers.Conv2D(num_classes, 1, name="head")(x)
    outputs = layers.Activation("softmax" if num_classes > 1 else "sigmoid", dtype="float32", name="probabilities")(x)
    return keras.Model(inputs, outputs, name="flexunet")
