"""Segmentation losses selectable by name in ``train.loss`` (generic: any model, any class count).

``y_true`` is one-hot ``(B, H, W, C)``; ``y_pred`` holds softmax probabilities ``(B, H, W, C)``.
A single-channel sigmoid output with a single-channel (or two-channel) mask is treated as the
two classes ``[background, foreground]``, so ``num_classes`` is always the number of classes in the
config (background included).

- ``categorical_crossentropy``: mean over pixels of ``-sum_c w_c t_c log p_c``.
- ``dice``: ``1 -`` weighted mean over FOREGROUND classes (index >= 1) of the soft Dice
  ``(2 sum t_c p_c + smooth) / (sum t_c + sum p_c + smooth)``, sums over the whole batch and all
  pixels. A class absent from the batch and not predicted scores 1 (thanks to ``smooth``).
- ``ce_dice``: ``categorical_crossentropy + dice_weight * dice``.
- ``focal``: mean over pixels of ``-sum_c w_c t_c (1 - p_c)^gamma log p_c`` (gamma 0 = weighted CE).

``class_weights`` (one non-negative number per class, background first) weight the classes: per
pixel in the cross-entropy terms, per class in the Dice mean (the background weight is unused there).
Losses return one value per image (the batch Dice is shared by the images of the batch); weight
classes with ``class_weights`` rather than Keras ``sample_weight``. This module imports Keras only
inside :func:`get_loss`, so config validation stays light.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

from flexplat.errors import ConfigError
from flexplat.options import validate
from flexplat.schema import loss_options_schema

EPSILON = 1e-7
"""Probabilities are clipped to [EPSILON, 1 - EPSILON] before taking logarithms."""


def _class_weights(weights: list[float] | None, num_classes: int) -> list[float]:
    if weights is None:
        return [1.0] * num_classes
    if len(weights) != num_classes:
        raise ConfigError(
            f"train.loss_options.class_weights: has {len(weights)} values but there are {num_classes} classes; "
            "give one weight per class, background first"
        )
    if any(w < 0 for w in weights) or not any(w > 0 for w in weights):
        raise ConfigError(f"train.loss_options.class_weights: weights must be >= 0 and not all 0, got {weights}")
    return [float(w) for w in weights]


def get_loss(name: str, num_classes: int, **options: Any) -> Any:
    """A ``keras.losses.Loss`` for ``name`` with validated ``options`` (see :func:`loss_options_schema`)."""
    values = validate(loss_options_schema(name), options, "train.loss_options")
    if num_classes < 2:
        raise ConfigError(f"losses need at least 2 classes (background first), got num_classes={num_classes}")
    values["class_weights"] = _class_weights(values["class_weights"], num_classes)
    return _loss_class()(name, num_classes, values)


def _as_classes(y_true: Any, y_pred: Any, num_classes: int) -> tuple[Any, Any]:
    """Cast to float and turn single-channel binary tensors into [background, foreground]."""
    from keras import ops

    y_true = ops.cast(y_true, y_pred.dtype)
    if y_pred.shape[-1] == 1 and num_classes == 2:
        y_pred = ops.concatenate([1.0 - y_pred, y_pred], axis=-1)
    if y_true.shape[-1] == 1 and num_classes == 2:
        y_true = ops.concatenate([1.0 - y_true, y_true], axis=-1)
    if y_pred.shape[-1] != num_classes or y_true.shape[-1] != num_classes:
        raise ValueError(
            f"loss expects {num_classes} class channels, got y_true {tuple(y_true.shape)}, y_pred {tuple(y_pred.shape)}"
        )
    return y_true, y_pred


def cross_entropy_map(y_true: Any, y_pred: Any, weights: list[float], gamma: float = 0.0) -> Any:
    """Per-pixel ``-sum_c w_c t_c (1-p_c)^gamma log p_c``, shape ``(B, H, W)``."""
    from keras import ops

    p = ops.clip(y_pred, EPSILON, 1.0 - EPSILON)
    terms = -y_true * ops.log(p) * ops.convert_to_tensor(weights, dtype=p.dtype)
    if gamma:
        terms = terms * ops.power(1.0 - p, gamma)
    return ops.sum(terms, axis=-1)


def soft_dice_loss(y_true: Any, y_pred: Any, weights: list[float], smooth: float) -> Any:
    """``1 -`` weighted mean soft Dice over classes 1.. (sums over batch and pixels), a scalar."""
    from keras import ops

    axes = tuple(range(len(y_pred.shape) - 1))
    t, p = y_true[..., 1:], y_pred[..., 1:]
    dice = (2.0 * ops.sum(t * p, axis=axes) + smooth) / (ops.sum(t, axis=axes) + ops.sum(p, axis=axes) + smooth)
    w = ops.convert_to_tensor(weights[1:], dtype=y_pred.dtype)
    return 1.0 - ops.sum(w * dice) / ops.sum(w)


@functools.cache
def _loss_class() -> type:
    import keras
    from keras import ops

    class SegmentationLoss(keras.losses.Loss):
        """One of :data:`LOSSES`; returns one value per image."""

        def __init__(self, kind: str, num_classes: int, options: Mapping[str, Any], **kwargs: Any) -> None:
            super().__init__(name=kwargs.pop("name", kind), **kwargs)
            self.kind, self.num_classes, self.options = kind, num_classes, dict(options)

        def call(self, y_true: Any, y_pred: Any) -> Any:
            y_true, y_pred = _as_classes(y_true, y_pred, self.num_classes)
            weights = self.options["class_weights"]
            pixel_axes = tuple(range(1, len(y_pred.shape) - 1))
            batch = ops.shape(y_pred)[0]
            if self.kind == "dice":
                dice = soft_dice_loss(y_true, y_pred, weights, self.options["smooth"])
                return ops.broadcast_to(dice, (batch,))
            gamma = self.options.get("gamma", 0.0) if self.kind == "focal" else 0.0
            per_image = ops.mean(cross_entropy_map(y_true, y_pred, weights, gamma), axis=pixel_axes)
            if self.kind == "ce_dice":
                dice = soft_dice_loss(y_true, y_pred, weights, self.options["smooth"])
                per_image = per_image + self.options["dice_weight"] * dice
            return per_image

        def get_config(self) -> dict:
            return {"kind": self.kind, "num_classes": self.num_classes, "options": self.options, "name": self.name}

    return SegmentationLoss
