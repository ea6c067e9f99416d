"""Evaluation of a run: honest per-class figures, whole-object figures, object class accuracy, the seed metric.

Reports name objects and their classes with the project's labels (e.g. "cell", "cell type").
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
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
    return evaluate_pairs(zip(truths, probabilities, strict=True), class_names)


def evaluate_pairs(pairs: Iterable[tuple[np.ndarray, np.ndarray]], class_names: Sequence[str]) -> dict[str, Any]:
    """All figures for ``(label map, softmax output)`` pairs, consumed one at a time (bounded memory)."""
    from flexplat.engine.metrics import confusion_matrix

    num_classes = len(class_names)
    cm = np.zeros((num_classes, num_classes), np.int64)
    types = np.zeros((num_classes - 1, num_classes), np.int64)  # rows: true class 1.., cols: 0=missed, 1..
    seed_scores = []
    for truth, probs in pairs:
        pred = probs.argmax(axis=-1).astype(truth.dtype)
        cm += confusion_matrix(truth, pred, num_classes)
        for true_type, pred_type in object_classes(truth, pred, num_classes):
            types[true_type - 1, pred_type] += 1
        # soft pixel accuracy: mean over pixels of the probability given to the true class
        seed_scores.append(float(np.take_along_axis(probs, truth[..., None].astype(np.int64), -1).mean()))
    return _figures(cm, types, seed_scores, class_names)


def _figures(cm: np.ndarray, types: np.ndarray, seed_scores: list[float], class_names: Sequence[str]) -> dict:
    from flexplat.engine.metrics import scores_from_confusion

    num_classes = len(class_names)
    scores = {k: _none_if_nan(v) for k, v in scores_from_confusion(cm).items()}
    regions = int(types.sum())
    correct = int(sum(types[i, i + 1] for i in range(num_classes - 1)))
    per_class = {
        name: {"dice": scores["dice"][i], "iou": scores["iou"][i], "pixels": scores["support"][i]}
        for i, name in enumerate(class_names)
        if i > 0
    }
    return {
        "images": len(seed_scores),
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
    config_file: str | Path | None = None,
    sets: Sequence[str] = (),
    console: Console | None = None,
    required: bool = False,
    settings: Mapping[str, Any] | None = None,
    backend: str = "auto",
) -> dict[str, Any] | None:
    """Evaluate the run's model; writes evaluation.json and a confusion-matrix PNG into the run.

    Without ``data``: the run's own ``split``. With ``data``: EVERY labelled image of that folder
    (images + masks, or any codec's layout; ``config_file``/``sets`` describe it, e.g. its class
    colours - classes are matched to the run's by name), under the key ``folder:<name>``.
    Images are predicted as ``flexplat infer`` predicts them (the run's scale, ``settings`` such
    as ``diameter``/``tta``) and scored at their own size. Returns None (after saying so) when the
    split is empty and ``required`` is False. ``backend`` chooses the model as for ``flexplat
    infer`` (``auto``: the run's up-to-date ONNX export when onnxruntime is installed).
    """
    from flexplat.engine.data import folder_pairs, load_splits

    console = console or Console()
    if not run.model_path.is_file():
        raise DataError(f"{run.path}: no model.keras; the run has not finished an epoch yet")
    if data is not None:
        codec, pairs, remap, infer_cfg = folder_pairs(run, Path(data), config_file, sets, console)
        key = f"folder:{Path(data).resolve().name}"
    else:
        codec, splits = load_splits(run.config(), console)
        pairs, remap, key, infer_cfg = splits.get(split) or [], None, split, None
    if not pairs:
        if required:
            raise DataError(f"{run.config()['data']['root']}: the {split} split has no image/mask pairs")
        console.print(f"No {split} split to evaluate.")
        return None
    return _score(run, codec, pairs, remap, key, dict(settings or {}), infer_cfg, console, backend)


def _score(run: RunDir, codec: Any, pairs: Sequence[Any], remap: np.ndarray | None, key: str,
           settings: dict[str, Any], infer_cfg: Mapping | None, console: Console,
           backend: str) -> dict[str, Any]:  # fmt: skip
    from flexplat.data.io import write_png
    from flexplat.engine.data import report_labels
    from flexplat.engine.figures import confusion_image
    from flexplat.engine.prediction import InferSettings, build_segmenter, choose_model, plan_folder_scale

    options = InferSettings(**settings)
    _, source, backend = choose_model(run, backend, run.path.parent, console)
    segmenter = build_segmenter(
        source, options.tile, options.tile_size, options.batch_size, options.tta, infer_cfg, backend=backend
    )
    started = time.perf_counter()
    plan = plan_folder_scale(run, segmenter, [p.image for p in pairs], options, console, progress=True)
    console.print(plan.describe())
    names = [c.name for c in classes_from_config(run.config()["classes"])]

    def truths_and_probabilities():
        for index, pair in enumerate(pairs):
            image = codec.read_image(pair)
            truth = codec.read_mask(pair).mask
            factor = plan.factor_for(index, image.shape[0], image.shape[1], segmenter.model_hw)
            probs = segmenter.probabilities(segmenter.network_view(image), factor)
            yield (truth if remap is None else remap[truth]), probs

    figures = evaluate_pairs(truths_and_probabilities(), names)
    figures.update(split=key, seconds=round(time.perf_counter() - started, 2), scale=plan.to_dict(), tta=options.tta)
    figures.update(backend=backend, model=str(source.model_path))
    figures["labels"] = report_labels(run.config())
    figures["data"] = str(Path(pairs[0].image).parent)
    run.write_evaluation(key, figures)
    confusion = figures["class_confusion"]
    title = f"{figures['labels']['class']}s ({key})"
    picture = confusion_image(np.array(confusion["matrix"]), confusion["rows"], confusion["columns"], title)
    write_png(run.path / f"confusion_matrix_{key.replace(':', '_')}.png", picture)
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
