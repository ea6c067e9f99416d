"""Accuracy benchmark of the `zheng-wbc` project on the real Zheng et al. 2018 WBC images (not a test).

    python benchmarks/zheng_accuracy.py                    # one stratified split, flexunet-small, 15 min budget
    python benchmarks/zheng_accuracy.py --folds 5          # 5-fold cross-validation: mean +/- sd
    python benchmarks/zheng_accuracy.py --compare --image-size 128   # flexunet-small vs the full flexunet
    python benchmarks/zheng_accuracy.py --smoke            # tiny model, few images (about a minute)

The split is by IMAGE (each of the 300 images is its own original), stratified by cell type and seeded:
one held-out test fold (15 %, or 1/K with --folds K), and 15 % of the rest for validation (best
model, early stopping). Each fold is a folder of symbolic links to the dataset, so the engine reads
explicit train/valid/test folders and no file is copied.

Training uses the project's own config (`flexplat.config.resolve("zheng-wbc", ...)`) through the
engine's public functions (`flexplat.engine.train.train`, `flexplat.engine.evaluate.evaluate_run`),
with one addition: a callback that stops before an epoch would end past the training budget
(``--budget-minutes``, default 15). The best model on val_loss is evaluated on the test fold:
whole-cell Dice and IoU, per-type Dice, their mean, cell-type accuracy with its confusion matrix,
the seed-style metric (the original's dice_coef_multiclass, labelled), train time and inference
time per image (decode + resize + predict, batches of 4). Results: benchmarks/results/*.json.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from _common import RESULTS, machine, write_json

import flexplat

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
DEFAULT_DATA = REPO / ".." / "shared" / "datasets" / "zheng-wbc-ds1"
TYPES = ["basophil", "eosinophil", "lymphocyte", "monocyte", "neutrophil"]
TARGETS = {"object_dice": 0.93, "class_accuracy": 0.85}

# training settings per model, on top of the project config (same input size for both)
MODELS: dict[str, dict[str, Any]] = {
    "flexunet-small": {},
    # the original's network (125M parameters, raw 0..255 input, no batch norm): its own LR and clipping
    "flexunet": {"train": {"learning_rate": 1.0e-4, "clipvalue": 0.4, "batch_size": 4}},
}
SMOKE = {
    "images": 40,
    "model": {"image_size": [32, 32], "options": {"base_filters": 4, "num_layers": 3, "normalization": "none"}},
    "train": {"epochs": 2, "batch_size": 8},
}


# -- machine -----------------------------------------------------------------------------------------


# -- splits ------------------------------------------------------------------------------------------


def stratified_folds(stems: list[str], label: dict[str, str], k: int, seed: int) -> list[list[str]]:
    """``k`` disjoint test folds, each type dealt round-robin after a seeded shuffle."""
    rng = random.Random(seed)
    folds: list[list[str]] = [[] for _ in range(k)]
    offset = 0
    for name in sorted(set(label.values())):
        members = sorted(s for s in stems if label[s] == name)
        rng.shuffle(members)
        for i, stem in enumerate(members):
            folds[(offset + i) % k].append(stem)
        offset += len(members)  # so the folds holding one extra image rotate between types
    return [sorted(f) for f in folds]


def make_splits(stems: list[str], label: dict[str, str], folds: int, seed: int) -> list[dict[str, list[str]]]:
    """Per fold: train / valid / test stems (test = one fold, or 15 % when ``folds`` is 1)."""
    from flexplat import split_by_original

    if folds == 1:
        parts = split_by_original(stems, str, {"valid": 0.15, "test": 0.15}, seed, label.__getitem__)
        return [parts]
    result = []
    for test in stratified_folds(stems, label, folds, seed):
        rest = [s for s in stems if s not in set(test)]
        parts = split_by_original(rest, str, {"valid": 0.15}, seed, label.__getitem__)
        result.append({"train": parts["train"], "valid": parts["valid"], "test": test})
    return result


def link_fold(work: Path, pairs: dict[str, Any], split: dict[str, list[str]]) -> Path:
    """A dataset folder of symbolic links: ``<split>/images|masks/<file>``."""
    for name, stems in split.items():
        for kind in ("images", "masks"):
            folder = work / name / kind
            folder.mkdir(parents=True, exist_ok=True)
            for stale in folder.iterdir():
                stale.unlink()
        for stem in stems:
            pair = pairs[stem]
            (work / name / "images" / pair.image.name).symlink_to(pair.image.resolve())
            (work / name / "masks" / pair.mask.name).symlink_to(pair.mask.resolve())
    return work


# -- the time budget ---------------------------------------------------------------------------------


class BudgetPlugin:
    """Registers the callback ``time_budget``: stop before the next epoch would end past the budget."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.__name__ = "zheng-benchmark"

    def _factory(self, context: Any, options: Any) -> Any:
        import keras

        budget = self.seconds

        class TimeBudget(keras.callbacks.Callback):
            def on_train_begin(self, logs=None) -> None:
                self.started, self.epochs = time.monotonic(), 0

            def on_epoch_end(self, epoch: int, logs=None) -> None:
                self.epochs += 1
                elapsed = time.monotonic() - self.started
                if elapsed + elapsed / self.epochs > budget:
                    context.console.print(f"time budget: stopping after epoch {epoch + 1} ({elapsed:.0f} s)")
                    self.model.stop_training = True

        return TimeBudget()

    @flexplat.hookimpl
    def register_callbacks(self, register) -> None:
        register(flexplat.CallbackSpec("time_budget", "stop before the training budget runs out", self._factory))


# -- one training run --------------------------------------------------------------------------------


def run_fold(
    root: Path, labels_csv: Path, model: str, args: argparse.Namespace, fold: int, out_root: Path
) -> dict[str, Any]:
    from rich.console import Console

    from flexplat.config import resolve
    from flexplat.engine.evaluate import evaluate_run
    from flexplat.engine.train import train

    console = Console(highlight=False)
    layer: dict[str, Any] = {
        "data": {
            "root": str(root),
            "train": {"images": "train/images", "masks": "train/masks"},
            "valid": {"images": "valid/images", "masks": "valid/masks"},
            "test": {"images": "test/images", "masks": "test/masks"},
            "codec_options": {"labels": str(labels_csv)},
        },
        "model": {"name": model, "image_size": [args.image_size, args.image_size]},
        "train": {"epochs": args.epochs, "seed": args.seed, "callbacks": {"time_budget": {}}},
    }
    overrides = SMOKE if args.smoke else MODELS[model]
    for section in ("model", "train"):
        for key, value in overrides.get(section, {}).items():
            layer[section][key] = value
    config = resolve("zheng-wbc", options=layer)
    out = out_root / f"{model}-fold{fold}"
    if out.exists():
        import shutil

        shutil.rmtree(out)  # our own run folder from an earlier attempt (benchmarks/results/...)
    run = train(config, out=out, console=console)
    info = json.loads((run.path / "run.json").read_text())
    figures = evaluate_run(run, "test", console=console, required=True)
    return {
        "model": model,
        "fold": fold,
        "parameters": info["model"]["parameters"],
        "pairs": info["dataset"]["pairs"],
        "epochs": info["epochs_completed"],
        "train_seconds": info["train_seconds"],
        "best": info.get("best", {}),
        "infer_ms_per_image": round(1000 * figures["seconds"] / max(1, figures["images"]), 1),
        "figures": {k: v for k, v in figures.items() if k not in ("pixel_confusion", "seed_dice_note")},
        "run": str(run.path),
    }


# -- summary -----------------------------------------------------------------------------------------


def _mean_present(per_class: dict[str, Any]) -> float | None:
    """Mean Dice over the types that occur in the test truth (a type absent there but predicted on a few
    pixels scores 0 in the core's foreground mean, e.g. the single basophil, which is always in train)."""
    values = [row["dice"] for row in per_class.values() if row["pixels"] and row["dice"] is not None]
    return statistics.fmean(values) if values else None


def _row(result: dict[str, Any]) -> dict[str, Any]:
    f = result["figures"]
    row = {
        "object_dice": f["object_dice"],
        "object_iou": f["object_iou"],
        **{f"dice_{t}": (f["per_class"].get(t) or {}).get("dice") for t in TYPES},
        "dice_mean": f["dice_mean"],
        "dice_mean_present": _mean_present(f["per_class"]),
        "class_accuracy": f["class_accuracy"],
        "seed_dice": f["seed_dice"],
        "train_seconds": result["train_seconds"],
        "epochs": result["epochs"],
        "infer_ms_per_image": result["infer_ms_per_image"],
    }
    return row


def summarise(results: list[dict[str, Any]]) -> dict[str, Any]:
    """Mean and sd over folds of each figure (None where a class is absent), summed confusion."""
    rows = [_row(r) for r in results]
    summary: dict[str, Any] = {}
    for key in rows[0]:
        values = [r[key] for r in rows if r[key] is not None]
        summary[key] = {
            "mean": statistics.fmean(values) if values else None,
            "sd": statistics.stdev(values) if len(values) > 1 else None,
            "n": len(values),
        }
    matrix = [[0] * 6 for _ in TYPES]
    for r in results:
        for i, row in enumerate(r["figures"]["class_confusion"]["matrix"]):
            matrix[i] = [a + b for a, b in zip(matrix[i], row, strict=True)]
    cells = sum(map(sum, matrix))
    correct = sum(matrix[i][i + 1] for i in range(len(TYPES)))
    summary["class_confusion"] = {"rows": TYPES, "columns": ["missed", *TYPES], "matrix": matrix}
    summary["class_accuracy_pooled"] = correct / cells if cells else None
    summary["cells"] = cells
    return summary


def _fmt(stat: dict[str, Any], digits: int = 4) -> str:
    if stat["mean"] is None:
        return "-"
    text = f"{stat['mean']:.{digits}f}"
    return text + (f" ± {stat['sd']:.{digits}f}" if stat["sd"] is not None else "")


def render(report: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(highlight=False)
    models = report["summary"]
    labels = {
        "object_dice": "whole-cell Dice",
        "object_iou": "whole-cell IoU",
        **{f"dice_{t}": f"Dice {t}" for t in TYPES},
        "dice_mean": "mean Dice (foreground types)",
        "dice_mean_present": "mean Dice (types in test)",
        "class_accuracy": "cell-type accuracy",
        "seed_dice": "seed_dice (original metric)",
        "epochs": "epochs trained",
        "train_seconds": "train time (s)",
        "infer_ms_per_image": "inference ms / image",
    }
    folds = report["folds"]
    title = f"zheng-wbc, task type, {report['image_size']} px, " + (
        f"{folds}-fold cross-validation (mean ± sd)" if folds > 1 else "held-out test split"
    )
    table = Table(title=title, title_justify="left")
    table.add_column("figure")
    for model in models:
        table.add_column(model, justify="right")
    for key, label in labels.items():
        digits = 1 if key in ("train_seconds", "infer_ms_per_image", "epochs") else 4
        table.add_row(label, *(_fmt(models[m][key], digits) for m in models))
    table.add_row("cells tested", *(str(models[m]["cells"]) for m in models))
    console.print(table)
    for model, summary in models.items():
        confusion = summary["class_confusion"]
        matrix = Table(title=f"{model}: cell types, truth (rows) x prediction (columns)", title_justify="left")
        matrix.add_column("")
        for column in confusion["columns"]:
            matrix.add_column(column[:10], justify="right")
        for name, row in zip(confusion["rows"], confusion["matrix"], strict=True):
            matrix.add_row(name, *map(str, row))
        console.print(matrix)
        pooled = summary["class_accuracy_pooled"]
        console.print(f"{model}: pooled cell-type accuracy {pooled:.4f} over {summary['cells']} cells")
    for key, target in TARGETS.items():
        for model, summary in models.items():
            value = summary[key]["mean"]
            verdict = "met" if value is not None and value >= target else "MISSED"
            console.print(f"target {key} >= {target}: {model} {value:.4f} {verdict}")


# -- main --------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="the Zheng 'Dataset 1' folder")
    parser.add_argument("--folds", type=int, default=1, help="K-fold cross-validation (1 = one 70/15/15 split)")
    parser.add_argument("--model", choices=sorted(MODELS), default="flexunet-small")
    parser.add_argument("--compare", action="store_true", help="train flexunet-small and flexunet, same input size")
    parser.add_argument("--smoke", action="store_true", help="tiny model, 40 images, 2 epochs (about a minute)")
    parser.add_argument("--image-size", type=int, help="model input side (default: the project config's)")
    parser.add_argument("--epochs", type=int, default=200, help="epoch cap (the time budget usually stops first)")
    parser.add_argument("--budget-minutes", type=float, default=15.0, help="training budget per run")
    parser.add_argument("--seed", type=int, default=0, help="seed of the split and of training")
    parser.add_argument("--out", type=Path, help="JSON result file (default benchmarks/results/zheng_accuracy-*.json)")
    args = parser.parse_args(argv)
    if args.smoke:
        args.image_size, args.budget_minutes = 32, min(args.budget_minutes, 2.0)

    import flexplat_zheng_wbc

    from flexplat.config import resolve
    from flexplat.data.layout import get_codec
    from flexplat.testing import plugin_system

    data = args.data.expanduser().resolve()
    if not (data / "class_labels.csv").is_file():
        if not args.smoke:
            sys.exit(f"{data}: no Zheng dataset there (class_labels.csv missing); pass --data")
        from flexplat_zheng_wbc.testing import write_zheng_dataset

        data = RESULTS / "work-zheng" / "fake"
        write_zheng_dataset(data, n=SMOKE["images"], sizes=((40, 40), (36, 44)))
    stamp = time.strftime("%Y%m%d-%H%M%S")
    mode = "smoke" if args.smoke else ("compare" if args.compare else args.model)
    out_root = RESULTS / "zheng-runs" / f"{mode}-{stamp}"
    models = ["flexunet-small", "flexunet"] if args.compare else [args.model]

    with plugin_system(flexplat_zheng_wbc, BudgetPlugin(60 * args.budget_minutes), autoload=True):
        base = resolve("zheng-wbc", sets=[f"data.root={data}"])
        if args.image_size is None:
            args.image_size = int(base["model"]["image_size"][0])
        if args.compare and not args.smoke and args.image_size % 128:
            sys.exit(
                f"--compare: flexunet (8 levels) needs sides that are multiples of 128, not {args.image_size}; "
                "pass --image-size 128"
            )
        codec = get_codec(base)
        pairs = {p.stem: p for p in codec.scan("images", "masks", data).pairs}
        if args.smoke:
            pairs = dict(sorted(pairs.items())[: SMOKE["images"]])
        label = {stem: codec.split_label(pair) or "unlabelled" for stem, pair in pairs.items()}
        splits = make_splits(sorted(pairs), label, args.folds, args.seed)
        report: dict[str, Any] = {
            "benchmark": "zheng_accuracy",
            "mode": mode,
            "data": str(data),
            "folds": args.folds,
            "image_size": args.image_size,
            "budget_minutes": args.budget_minutes,
            "seed": args.seed,
            "machine": machine(),
            "splits": [{k: len(v) for k, v in s.items()} for s in splits],
            "results": [],
        }
        for fold, split in enumerate(splits):
            root = link_fold(RESULTS / "work-zheng" / f"fold{fold}", pairs, split)
            for model in models:
                print(f"== fold {fold + 1}/{len(splits)}, model {model}", flush=True)
                report["results"].append(run_fold(root, data / "class_labels.csv", model, args, fold, out_root))
    report["summary"] = {m: summarise([r for r in report["results"] if r["model"] == m]) for m in models}
    out = args.out or RESULTS / f"zheng_accuracy-{mode}-{stamp}.json"
    write_json(out, report)
    render(report)
    print(f"results: {out}")
    return report


if __name__ == "__main__":
    main()
