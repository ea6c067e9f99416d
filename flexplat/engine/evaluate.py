"""Evaluation of a run: honest per-class figures, whole-object figures, object class accuracy, the seed metric.

Reports name objects and their classes with the project's labels (e.g. "cell", "cell type").
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table

from flexplat.engine.rundir import RunDir
from flexplat.errors import DataError
from flexplat.specs import classes_from_config

SEED_NOTE = (
    "seed_dice is the original experiment's dice_coef_multiclass (all classes incl. background over 2*H*W, "
    "per image): soft pixel accuracy, dominated by background. Shown for comparison only."
)
MIN_REGION_PIXELS = 20


def object_classes(truth: np.ndarray, pred: np.ndarray, num_classes: int) -> list[tuple[int, int]]:
    """(true class, predicted class) for each connected ground-truth object region.

    Each region's true class is its majority class; its predicted class is the majority predicted
    foreground class inside it, or 0 ("missed") when the model predicts background there.
    """
    import cv2

    count, labels = cv2.connectedComponents((truth > 0).astype(np.uint8), connectivity=8)
    pairs = []
    for region in range(1, count):
        inside = labels == region
        if inside.sum() < MIN_REGION_PIXELS:
            continue
        true_type = int(np.bincount(truth[inside], minlength=num_classes)[1:].argmax() + 1)
        votes = np.bincount(pred[inside], minlength=num_classes)[1:]
        pairs.append((true_type, int(votes.argmax() + 1) if votes.sum() else 0))
    return pairs


def _none_if_nan(value: Any) -> Any:
    """JSON has no NaN: absent classes become null."""
    if isinstance(value, list):
        return [_none_if_nan(v) for v in value]
    return None if isinstance(value, float) and np.isnan(value) else value


def evaluate_arrays(
    truths: Sequence[np.ndarray], probabilities: Sequence[np.ndarray], class_names: Sequence[str]
) -> dict[str, Any]:
    """All figures for label maps and the model's softmax outputs of the same images."""
    from flexplat.engine.metrics import confusion_matrix, scores_from_confusion

    num_classes = len(class_names)
    cm = np.zeros((num_classes, num_classes), np.int64)
    types = np.zeros((num_classes - 1, num_classes), np.int64)  # rows: true type 1.., cols: 0=missed, 1..
    seed_scores = []
    for truth, probs in zip(truths, probabilities, strict=True):
        pred = probs.argmax(axis=-1).astype(truth.dtype)
        cm += confusion_matrix(truth, pred, num_classes)
        for true_type, pred_type in object_classes(truth, pred, num_classes):
            types[true_type - 1, pred_type] += 1
        # soft pixel accuracy: mean over pixels of the probability given to the true class
        seed_scores.append(float(np.take_along_axis(probs, truth[..., None].astype(np.int64), -1).mean()))
    scores = {k: _none_if_nan(v) for k, v in scores_from_confusion(cm).items()}
    regions = int(types.sum())
    correct = int(sum(types[i, i + 1] for i in range(num_classes - 1)))
    per_class = {
        name: {"dice": scores["dice"][i], "iou": scores["iou"][i], "pixels": scores["support"][i]}
        for i, name in enumerate(class_names)
        if i > 0
    }
    return {
        "images": len(truths),
        "classes": list(class_names),
        "per_class": per_class,
        "dice_mean": scores["dice_mean"],
        "iou_mean": scores["iou_mean"],
        "object_dice": scores["object_dice"],
        "object_iou": scores["object_iou"],
        "pixel_accuracy": scores["pixel_accuracy"],
        "class_accuracy": correct / regions if regions else None,
        "objects": regions,
        "class_confusion": {
            "rows": list(class_names[1:]),
            "columns": ["missed", *class_names[1:]],
            "matrix": types.tolist(),
        },
        "pixel_confusion": cm.tolist(),
        "seed_dice": float(np.mean(seed_scores)) if seed_scores else None,
        "seed_dice_note": SEED_NOTE,
    }


def evaluate_run(
    run: RunDir,
    split: str = "test",
    *,
    data: str | Path | None = None,
    console: Console | None = None,
    required: bool = False,
    batch_size: int = 4,
) -> dict[str, Any] | None:
    """Evaluate the run's best model on ``split``; writes evaluation.json and a confusion-matrix PNG.

    Returns None (after saying so) when the split is empty and ``required`` is False.
    """
    from flexplat.data.io import write_png
    from flexplat.data.pipeline import load_pair_resized
    from flexplat.engine.data import load_splits, report_labels
    from flexplat.engine.figures import confusion_image
    from flexplat.engine.model_file import load_model

    console = console or Console()
    config = run.config()
    if data is not None:
        config["data"]["root"] = str(data)
    if not run.model_path.is_file():
        raise DataError(f"{run.path}: no model.keras; the run has not finished an epoch yet")
    codec, splits = load_splits(config, console)
    pairs = splits.get(split) or []
    if not pairs:
        if required:
            raise DataError(f"{config['data']['root']}: the {split} split has no image/mask pairs")
        console.print(f"No {split} split to evaluate.")
        return None
    model = load_model(run)
    size = tuple(config["model"]["image_size"])
    classes = classes_from_config(config["classes"])
    names = [c.name for c in classes]
    truths, probabilities = [], []
    started = time.perf_counter()
    for start in range(0, len(pairs), batch_size):
        loaded = [load_pair_resized(p, codec, size) for p in pairs[start : start + batch_size]]
        images = np.stack([image for image, _ in loaded]).astype("float32")
        probs = model.predict(images, verbose=0, batch_size=len(images))
        truths.extend(mask for _, mask in loaded)
        probabilities.extend(probs)
    figures = evaluate_arrays(truths, probabilities, names)
    figures["labels"] = report_labels(config)
    figures.update(split=split, seconds=round(time.perf_counter() - started, 2), data=str(config["data"]["root"]))
    run.write_evaluation(split, figures)
    confusion = figures["class_confusion"]
    title = f"{figures['labels']['class']}s ({split})"
    picture = confusion_image(np.array(confusion["matrix"]), confusion["rows"], confusion["columns"], title)
    write_png(run.path / f"confusion_matrix_{split}.png", picture)
    return figures


def _fmt(value: Any) -> str:
    return "-" if value is None or (isinstance(value, float) and np.isnan(value)) else f"{value:.4f}"


def render_evaluation(figures: Mapping[str, Any], console: Console) -> None:
    """Rich tables of an evaluation: per class, whole object, object class confusion (project labels)."""
    labels = figures.get("labels", {"object": "object", "class": "object class"})
    table = Table(title=f"{figures['split']} split: {figures['images']} images", title_justify="left")
    for column in ("class", "dice", "iou"):
        table.add_column(column)
    for name, row in figures["per_class"].items():
        table.add_row(name, _fmt(row["dice"]), _fmt(row["iou"]))
    table.add_row("[bold]mean (foreground)[/]", _fmt(figures["dice_mean"]), _fmt(figures["iou_mean"]))
    table.add_row(f"[bold]whole {labels['object']}[/]", _fmt(figures["object_dice"]), _fmt(figures["object_iou"]))
    console.print(table)
    accuracy = _fmt(figures["class_accuracy"])
    console.print(f"{labels['class']} accuracy: {accuracy} over {figures['objects']} {labels['object']}s")
    confusion = figures["class_confusion"]
    matrix = Table(title=f"{labels['class']}s: truth (rows) x prediction (columns)", title_justify="left")
    matrix.add_column("")
    for column in confusion["columns"]:
        matrix.add_column(column[:10])
    for name, row in zip(confusion["rows"], confusion["matrix"], strict=True):
        matrix.add_row(name, *(str(v) for v in row))
    console.print(matrix)
    console.print(f"seed_dice (original metric, inflated by background): {_fmt(figures['seed_dice'])}")
