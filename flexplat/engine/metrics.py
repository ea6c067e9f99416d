"""Segmentation metrics: streaming Keras metrics for training logs, NumPy scores for evaluation.

All metrics take ``y_true`` one-hot ``(B, H, W, C)`` and ``y_pred`` softmax probabilities
``(B, H, W, C)`` (a single sigmoid channel is read as ``[background, foreground]``). Class 0 is
the background.

Dice and IoU use HARD predictions: each pixel gets the class of its largest probability
(argmax), exactly as the evaluation on label maps does. They are streaming: per class, the
intersection, true and predicted pixel counts are summed over the whole epoch (as exact integers
in float64 variables) and the ratio is taken at the end, so a batch with few object pixels does not
weigh as much as a batch with many (no mean of per-batch ratios). ``object_dice``/``object_iou``
score foreground-vs-background (whole objects): any foreground class counts, whatever the class.

A foreground class absent from both truth and prediction over the whole epoch has no defined
Dice/IoU: its per-class value is NaN and it is LEFT OUT of ``dice_mean``/``iou_mean`` (NaN when
no foreground class occurs at all). A class present in only one of them scores 0 and counts.

``seed_dice`` reproduces the original experiment's "dice_coef_multiclass", for comparison only;
see :class:`SeedDice` for why it is inflated and must not be read as a segmentation Dice.

This module imports Keras at top level (it is used by training and evaluation, not CLI start-up).
"""

from __future__ import annotations

import re
from typing import Any

import keras
import numpy as np
from keras import ops

__all__ = [
    "OverlapMetric",
    "ForegroundDice",
    "ForegroundIoU",
    "ObjectDice",
    "ObjectIoU",
    "SeedDice",
    "build_metrics",
    "metric_name",
    "confusion_matrix",
    "scores_from_confusion",
]


def _as_classes(y_true: Any, y_pred: Any, num_classes: int) -> tuple[Any, Any]:
    y_true = ops.convert_to_tensor(y_true)
    y_pred = ops.convert_to_tensor(y_pred)
    if y_pred.shape[-1] == 1 and num_classes == 2:
        y_pred = ops.concatenate([1.0 - y_pred, y_pred], axis=-1)
    if y_true.shape[-1] == 1 and num_classes == 2:
        y_true = ops.concatenate([1.0 - ops.cast(y_true, y_pred.dtype), ops.cast(y_true, y_pred.dtype)], axis=-1)
    if y_pred.shape[-1] != num_classes or y_true.shape[-1] != num_classes:
        raise ValueError(
            f"metric expects {num_classes} class channels, got y_true {tuple(y_true.shape)}, "
            f"y_pred {tuple(y_pred.shape)}"
        )
    return y_true, y_pred


class OverlapMetric(keras.metrics.Metric):
    """Base of the hard Dice/IoU metrics: accumulates per-class counts over the epoch.

    Variables: ``intersection[c]`` (pixels of class c in both truth and argmax prediction),
    ``true_count[c]``, ``pred_count[c]`` and ``pixels`` (all pixels seen). ``sample_weight``
    is not supported (weight classes in the loss instead).
    """

    def __init__(self, num_classes: int, class_id: int | None = None, name: str | None = None, **kwargs: Any):
        super().__init__(name=name, **kwargs)
        if num_classes < 2:
            raise ValueError(f"num_classes must be >= 2 (background first), got {num_classes}")
        if class_id is not None and not 1 <= class_id < num_classes:
            raise ValueError(f"class_id must be a foreground class 1..{num_classes - 1}, got {class_id}")
        self.num_classes = int(num_classes)
        self.class_id = class_id
        shape = (self.num_classes,)
        self.intersection = self.add_variable(shape, "zeros", dtype="float64", name="intersection")
        self.true_count = self.add_variable(shape, "zeros", dtype="float64", name="true_count")
        self.pred_count = self.add_variable(shape, "zeros", dtype="float64", name="pred_count")
        self.pixels = self.add_variable((), "zeros", dtype="float64", name="pixels")

    def update_state(self, y_true: Any, y_pred: Any, sample_weight: Any = None) -> None:
        if sample_weight is not None:
            raise ValueError(f"{self.name}: sample_weight is not supported")
        y_true, y_pred = _as_classes(y_true, y_pred, self.num_classes)
        true = ops.one_hot(ops.argmax(y_true, axis=-1), self.num_classes, dtype="int32")
        pred = ops.one_hot(ops.argmax(y_pred, axis=-1), self.num_classes, dtype="int32")
        true = ops.reshape(true, (-1, self.num_classes))
        pred = ops.reshape(pred, (-1, self.num_classes))
        self.intersection.assign_add(ops.cast(ops.sum(true * pred, axis=0), "float64"))
        self.true_count.assign_add(ops.cast(ops.sum(true, axis=0), "float64"))
        self.pred_count.assign_add(ops.cast(ops.sum(pred, axis=0), "float64"))
        self.pixels.assign_add(ops.cast(ops.shape(true)[0], "float64"))

    # -- derived counts ------------------------------------------------------------------------
    def _object_counts(self) -> tuple[Any, Any, Any]:
        """Intersection, true and predicted counts of foreground (any class but 0)."""
        true_fg = self.pixels - self.true_count[0]
        pred_fg = self.pixels - self.pred_count[0]
        # pixels background in neither = all - |true bg OR pred bg|
        inter_fg = self.pixels - self.true_count[0] - self.pred_count[0] + self.intersection[0]
        return inter_fg, true_fg, pred_fg

    @staticmethod
    def _ratio(kind: str, inter: Any, true: Any, pred: Any) -> Any:
        """Dice ``2I/(T+P)`` or IoU ``I/(T+P-I)``; NaN where T+P == 0."""
        total = true + pred
        num, den = (2.0 * inter, total) if kind == "dice" else (inter, total - inter)
        return ops.where(total > 0, num / ops.maximum(den, 1.0), float("nan"))

    def _score(self, kind: str) -> Any:
        if self.class_id is not None:
            c = self.class_id
            value = self._ratio(kind, self.intersection[c], self.true_count[c], self.pred_count[c])
        else:
            scores = self._ratio(kind, self.intersection[1:], self.true_count[1:], self.pred_count[1:])
            present = (self.true_count[1:] + self.pred_count[1:]) > 0
            count = ops.sum(ops.cast(present, "float64"))
            total = ops.sum(ops.where(present, scores, 0.0))
            value = ops.where(count > 0, total / ops.maximum(count, 1.0), float("nan"))
        return ops.cast(value, self.dtype)

    def get_config(self) -> dict:
        return {**super().get_config(), "num_classes": self.num_classes, "class_id": self.class_id}


@keras.saving.register_keras_serializable(package="flexplat")
class ForegroundDice(OverlapMetric):
    """Hard Dice of foreground class ``class_id``, or (``class_id=None``) the mean over present classes 1.."""

    def result(self) -> Any:
        return self._score("dice")


@keras.saving.register_keras_serializable(package="flexplat")
class ForegroundIoU(OverlapMetric):
    """Hard IoU (Jaccard) of foreground class ``class_id``, or the mean over present classes 1.."""

    def result(self) -> Any:
        return self._score("iou")


@keras.saving.register_keras_serializable(package="flexplat")
class ObjectDice(OverlapMetric):
    """Hard Dice of "any foreground class" vs background (class ignored); NaN when no foreground at all."""

    def result(self) -> Any:
        return ops.cast(self._ratio("dice", *self._object_counts()), self.dtype)


@keras.saving.register_keras_serializable(package="flexplat")
class ObjectIoU(OverlapMetric):
    """Hard IoU of "any foreground class" vs background."""

    def result(self) -> Any:
        return ops.cast(self._ratio("iou", *self._object_counts()), self.dtype)


@keras.saving.register_keras_serializable(package="flexplat")
class SeedDice(keras.metrics.Metric):
    """The original experiment's "dice_coef_multiclass" - FOR COMPARISON ONLY, not a segmentation Dice.

    Per image: ``2 * sum(y_true * y_pred) / (sum(y_true) + sum(y_pred))`` with the sums over ALL
    pixels and ALL classes, background included, and soft (probability) predictions; averaged
    over the images of the epoch. With one-hot truth and softmax output both sums equal H*W, so
    this is ``sum(y_true * y_pred) / (H*W)``: the mean probability given to the true class, i.e.
    soft pixel accuracy. Background dominates it: with objects on ~2% of the pixels, a model that
    predicts "all background" already scores ~0.98, and misclassifying every object's class costs at
    most those 2%. Report the foreground ``dice_mean``/``object_dice`` instead; this number exists so
    results can be set beside figures the original experiments published.
    """

    def __init__(self, num_classes: int, name: str = "seed_dice", **kwargs: Any):
        super().__init__(name=name, **kwargs)
        self.num_classes = int(num_classes)
        self.total = self.add_variable((), "zeros", dtype="float64", name="total")
        self.images = self.add_variable((), "zeros", dtype="float64", name="images")

    def update_state(self, y_true: Any, y_pred: Any, sample_weight: Any = None) -> None:
        if sample_weight is not None:
            raise ValueError(f"{self.name}: sample_weight is not supported")
        y_true, y_pred = _as_classes(y_true, y_pred, self.num_classes)
        y_true = ops.cast(y_true, "float32")
        y_pred = ops.cast(y_pred, "float32")
        axes = tuple(range(1, len(y_pred.shape)))
        num = 2.0 * ops.sum(y_true * y_pred, axis=axes)
        den = ops.sum(y_true, axis=axes) + ops.sum(y_pred, axis=axes)
        per_image = num / ops.maximum(den, 1e-7)
        self.total.assign_add(ops.cast(ops.sum(per_image), "float64"))
        self.images.assign_add(ops.cast(ops.shape(per_image)[0], "float64"))

    def result(self) -> Any:
        value = ops.where(self.images > 0, self.total / ops.maximum(self.images, 1.0), float("nan"))
        return ops.cast(value, self.dtype)

    def get_config(self) -> dict:
        return {**super().get_config(), "num_classes": self.num_classes}


def metric_name(prefix: str, class_name: str) -> str:
    """A log/CSV-friendly metric name, e.g. ``dice_lymphocyte``."""
    return f"{prefix}_{re.sub(r'[^0-9A-Za-z]+', '_', class_name).strip('_').lower() or 'class'}"


def build_metrics(class_names: list[str]) -> list[keras.metrics.Metric]:
    """The training metrics for these classes (background first).

    Names in the logs: ``dice_mean``, ``iou_mean`` (foreground classes), ``object_dice``,
    ``object_iou``, ``seed_dice`` (original metric, inflated, see :class:`SeedDice`) and one
    ``dice_<class>`` per foreground class.
    """
    n = len(class_names)
    if n < 2:
        raise ValueError(f"need at least 2 classes (background first), got {class_names}")
    metrics: list[keras.metrics.Metric] = [
        ForegroundDice(n, name="dice_mean"),
        ForegroundIoU(n, name="iou_mean"),
        ObjectDice(n, name="object_dice"),
        ObjectIoU(n, name="object_iou"),
        SeedDice(n, name="seed_dice"),
    ]
    names = [metric_name("dice", c) for c in class_names[1:]]
    if len(set(names)) != len(names):
        raise ValueError(f"class names {class_names[1:]} give clashing metric names {names}")
    metrics += [ForegroundDice(n, class_id=i, name=name) for i, name in enumerate(names, start=1)]
    return metrics


# -- NumPy, for evaluation over whole label maps --------------------------------------------------
def confusion_matrix(true_idx: np.ndarray, pred_idx: np.ndarray, num_classes: int) -> np.ndarray:
    """``cm[t, p]`` = number of pixels of true class t predicted as p (int64, num_classes x num_classes)."""
    true_idx = np.asarray(true_idx)
    pred_idx = np.asarray(pred_idx)
    if true_idx.shape != pred_idx.shape:
        raise ValueError(f"label maps differ in shape: true {true_idx.shape}, predicted {pred_idx.shape}")
    t = true_idx.ravel().astype(np.int64)
    p = pred_idx.ravel().astype(np.int64)
    for label, values in (("true", t), ("predicted", p)):
        if values.size and (values.min() < 0 or values.max() >= num_classes):
            raise ValueError(f"{label} labels must be in 0..{num_classes - 1}, got {values.min()}..{values.max()}")
    return np.bincount(t * num_classes + p, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def _nan_ratio(num: np.ndarray, den: np.ndarray, present: np.ndarray) -> np.ndarray:
    out = np.full(np.shape(num), np.nan)
    np.divide(num, den, out=out, where=present & (den > 0))
    return np.where(present, out, np.nan)


def scores_from_confusion(cm: np.ndarray) -> dict[str, Any]:
    """Dice/IoU scores from a confusion matrix, with the same definitions as the Keras metrics.

    Returns ``dice`` and ``iou`` (lists, one per class, index 0 = background shown for
    information; NaN for a class absent from truth and prediction), ``dice_mean``/``iou_mean``
    (over present foreground classes; NaN if none), ``object_dice``/``object_iou`` (any foreground
    class vs background), ``pixel_accuracy``, ``support`` (true pixels per class) and
    ``predicted`` (predicted pixels per class). Values are plain Python numbers.
    """
    cm = np.asarray(cm, dtype=np.float64)
    if cm.ndim != 2 or cm.shape[0] != cm.shape[1] or cm.shape[0] < 2:
        raise ValueError(f"confusion matrix must be square with >= 2 classes, got shape {cm.shape}")
    inter = np.diag(cm)
    true = cm.sum(axis=1)
    pred = cm.sum(axis=0)
    total = true + pred
    present = total > 0
    dice = _nan_ratio(2 * inter, total, present)
    iou = _nan_ratio(inter, total - inter, present)
    pixels = cm.sum()
    object_inter = cm[1:, 1:].sum()
    object_total = true[1:].sum() + pred[1:].sum()

    def mean(values: np.ndarray) -> float:
        fg = values[1:][present[1:]]
        return float(fg.mean()) if fg.size else float("nan")

    return {
        "dice": [float(v) for v in dice],
        "iou": [float(v) for v in iou],
        "dice_mean": mean(dice),
        "iou_mean": mean(iou),
        "object_dice": float(2 * object_inter / object_total) if object_total else float("nan"),
        "object_iou": float(object_inter / (object_total - object_inter)) if object_total else float("nan"),
        "pixel_accuracy": float(np.trace(cm) / pixels) if pixels else float("nan"),
        "support": [int(v) for v in true],
        "predicted": [int(v) for v in pred],
    }
