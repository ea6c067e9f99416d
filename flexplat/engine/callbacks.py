"""Keras implementations of the built-in callbacks (imported only when a run builds them).

Callbacks whose counters must survive ``--resume`` implement ``flexplat_state()`` and
``flexplat_restore(state)``; the engine saves and restores them with the weights.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import keras
import numpy as np

from flexplat.atomic import atomic_write_text
from flexplat.data.io import colorize, write_png
from flexplat.engine.context import RunContext
from flexplat.engine.figures import line_plot, side_by_side
from flexplat.engine.model_file import save_for_inference
from flexplat.engine.segment import to_network

_MAX_WORDS = ("dice", "iou", "acc", "auc", "precision", "recall")


def resolve_monitor(context: RunContext, options: Mapping[str, Any]) -> tuple[str, str]:
    """The (monitor, mode) a callback watches: options override train.monitor; auto picks by name."""
    monitor = options.get("monitor") or context.monitor
    mode = options.get("mode", "auto")
    if mode == "auto":
        mode = "max" if any(word in monitor for word in _MAX_WORDS) else "min"
    return monitor, mode


def _improved(value: float, best: float | None, mode: str, min_delta: float = 0.0) -> bool:
    if best is None or not math.isfinite(best):
        return math.isfinite(value)
    return value < best - min_delta if mode == "min" else value > best + min_delta


class BestCheckpoint(keras.callbacks.Callback):
    """Save the model to ``path`` (atomically) whenever the monitored metric improves."""

    def __init__(self, path: Path, monitor: str, mode: str) -> None:
        super().__init__()
        self.path, self.monitor, self.mode = Path(path), monitor, mode
        self.best: float | None = None
        self.best_epoch: int | None = None

    def on_epoch_end(self, epoch: int, logs: Mapping[str, float] | None = None) -> None:
        value = (logs or {}).get(self.monitor)
        if value is None:
            raise KeyError(f"checkpoint: metric '{self.monitor}' is not logged; logged: {sorted(logs or {})}")
        if _improved(float(value), self.best, self.mode):
            self.best, self.best_epoch = float(value), epoch + 1
            save_for_inference(self.model, self.path)

    def flexplat_state(self) -> dict:
        return {"best": self.best, "best_epoch": self.best_epoch}

    def flexplat_restore(self, state: Mapping[str, Any]) -> None:
        self.best, self.best_epoch = state.get("best"), state.get("best_epoch")


class EarlyStopping(keras.callbacks.EarlyStopping):
    """Keras early stopping whose counters survive a resume."""

    def __init__(self, best_model: Path, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.best_model = Path(best_model)

    def flexplat_state(self) -> dict:
        best = None if self.best is None else float(self.best)
        return {"wait": int(self.wait), "best": best, "best_epoch": int(self.best_epoch or 0)}

    def flexplat_restore(self, state: Mapping[str, Any]) -> None:
        self.wait = state["wait"]
        if state["best"] is not None:
            self.best = state["best"]
        self.best_epoch = state["best_epoch"]
        if self.restore_best_weights and self.best_model.is_file():
            best = keras.models.load_model(self.best_model, compile=False, safe_mode=True)
            self.best_weights = best.get_weights()


class ReduceLROnPlateau(keras.callbacks.ReduceLROnPlateau):
    """Keras LR reduction whose counters survive a resume (the LR itself is optimizer state)."""

    def flexplat_state(self) -> dict:
        return {"wait": int(self.wait), "best": float(self.best), "cooldown_counter": int(self.cooldown_counter)}

    def flexplat_restore(self, state: Mapping[str, Any]) -> None:
        self.wait, self.best, self.cooldown_counter = state["wait"], state["best"], state["cooldown_counter"]


class CsvAndPlots(keras.callbacks.Callback):
    """Append one row per epoch to metrics.csv (rewritten atomically) and redraw the plots."""

    def __init__(self, csv_path: Path, plots_dir: Path | None, initial_epoch: int) -> None:
        super().__init__()
        self.csv_path, self.plots_dir = Path(csv_path), plots_dir
        self.rows: list[dict[str, float]] = self._read_rows(initial_epoch)

    def _read_rows(self, initial_epoch: int) -> list[dict[str, float]]:
        """Rows of earlier epochs when resuming (later rows were not checkpointed: dropped)."""
        if not self.csv_path.is_file():
            return []
        with open(self.csv_path, newline="", encoding="utf-8") as handle:
            rows = [{k: float(v) for k, v in row.items() if v != ""} for row in csv.DictReader(handle)]
        return [row for row in rows if row["epoch"] <= initial_epoch]

    def on_epoch_end(self, epoch: int, logs: Mapping[str, float] | None = None) -> None:
        rate = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))  # also a distributed variable
        row = {"epoch": float(epoch + 1), "learning_rate": rate}
        row.update({k: float(v) for k, v in (logs or {}).items() if k != "learning_rate"})
        self.rows.append(row)
        columns = ["epoch", "learning_rate"] + sorted({k for r in self.rows for k in r} - {"epoch", "learning_rate"})
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        for r in self.rows:
            writer.writerow({k: (int(v) if k == "epoch" else f"{v:.6g}") for k, v in r.items()})
        atomic_write_text(self.csv_path, buffer.getvalue())
        if self.plots_dir is not None:
            self._plot(columns)

    def _plot(self, columns: list[str]) -> None:
        epochs = [r["epoch"] for r in self.rows]
        names = [c for c in columns if c not in ("epoch",) and not c.startswith("val_")]
        for name in names:
            series = {name: [r.get(name) for r in self.rows]}
            if f"val_{name}" in columns:
                series[f"val_{name}"] = [r.get(f"val_{name}") for r in self.rows]
            picture = line_plot(series, epochs, title=name)
            write_png(Path(self.plots_dir) / f"{name}.png", picture)


class EpochChangeInference(keras.callbacks.Callback):
    """Predict a few fixed images after each epoch: input | ground truth | prediction."""

    def __init__(self, context: RunContext, pairs: list[Any], out_dir: Path) -> None:
        super().__init__()
        from flexplat.data.pipeline import load_pair_resized

        self.out_dir, self.colors = Path(out_dir), [c.color for c in context.classes]
        stain = context.config["data"].get("stain_norm")
        loaded = [load_pair_resized(p, context.codec, context.image_size, stain) for p in pairs]
        self.images = np.stack([image for image, _ in loaded])
        channels = context.config["model"]["channels"]
        self.inputs = np.stack([to_network(image, channels) for image in self.images]).astype("float32")
        self.masks = [mask for _, mask in loaded]

    def on_epoch_end(self, epoch: int, logs: Mapping[str, float] | None = None) -> None:
        # a direct call, not predict(): under a multi-worker strategy only the chief runs this, and
        # predict() would wait for the other workers to gather its outputs
        probs = keras.ops.convert_to_numpy(self.model(self.inputs, training=False))
        predicted = probs.argmax(axis=-1)
        rows = []
        for image, truth, pred in zip(self.images, self.masks, predicted, strict=True):
            panels = [image, colorize(truth, self.colors), colorize(pred, self.colors)]
            rows.append(side_by_side(panels, ["input", "ground truth", "prediction"], f"epoch {epoch + 1}"))
        width = max(r.shape[1] for r in rows)
        sheet = np.concatenate(
            [np.pad(r, ((0, 0), (0, width - r.shape[1]), (0, 0)), constant_values=255) for r in rows]
        )
        write_png(self.out_dir / f"epoch_{epoch + 1:03d}.png", sheet)


class RichProgress(keras.callbacks.Callback):
    """One rich progress bar per epoch and a line of metrics after each epoch."""

    def __init__(self, context: RunContext) -> None:
        super().__init__()
        self.console = context.console
        self.progress = None
        self.task = None

    def on_train_begin(self, logs=None) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self.progress = Progress(
            TextColumn("epoch {task.fields[epoch]}/{task.fields[epochs]}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("loss {task.fields[loss]}"),
            TimeRemainingColumn(),
            console=self.console,
            transient=True,
        )
        self.progress.start()

    def on_epoch_begin(self, epoch: int, logs=None) -> None:
        self.task = self.progress.add_task(
            "train", total=self.params.get("steps"), epoch=epoch + 1, epochs=self.params.get("epochs"), loss="-"
        )

    def on_train_batch_end(self, batch: int, logs=None) -> None:
        loss = (logs or {}).get("loss")
        self.progress.update(self.task, advance=1, loss=f"{float(loss):.4f}" if loss is not None else "-")

    def on_epoch_end(self, epoch: int, logs=None) -> None:
        self.progress.remove_task(self.task)
        shown = {k: v for k, v in (logs or {}).items() if not k.startswith(("dice_", "val_dice_")) or "mean" in k}
        text = "  ".join(f"{k} {float(v):.4f}" for k, v in sorted(shown.items()))
        self.console.print(f"epoch {epoch + 1}/{self.params.get('epochs')}  {text}", highlight=False)

    def on_train_end(self, logs=None) -> None:
        if self.progress is not None:
            self.progress.stop()


# -- factories named in flexplat.default_plugins.callbacks ------------------------------------
def best_checkpoint(context: RunContext, options: Mapping[str, Any]) -> BestCheckpoint:
    monitor, mode = resolve_monitor(context, options)
    return BestCheckpoint(context.run.model_path, monitor, mode)


def early_stopping(context: RunContext, options: Mapping[str, Any]) -> EarlyStopping:
    monitor, mode = resolve_monitor(context, options)
    return EarlyStopping(
        context.run.model_path,
        monitor=monitor,
        mode=mode,
        patience=options["patience"],
        min_delta=options["min_delta"],
        restore_best_weights=options["restore_best_weights"],
    )


def reduce_lr(context: RunContext, options: Mapping[str, Any]) -> ReduceLROnPlateau:
    monitor, mode = resolve_monitor(context, options)
    return ReduceLROnPlateau(
        monitor=monitor,
        mode=mode,
        factor=options["factor"],
        patience=options["patience"],
        min_lr=options["min_lr"],
        cooldown=options["cooldown"],
        verbose=0,
    )


def csv_plots(context: RunContext, options: Mapping[str, Any]) -> CsvAndPlots:
    plots = context.run.plots_dir if options["plots"] else None
    return CsvAndPlots(context.run.metrics_csv, plots, context.initial_epoch)


def tensorboard(context: RunContext, options: Mapping[str, Any]) -> keras.callbacks.TensorBoard:
    import importlib.util

    if importlib.util.find_spec("tensorboard") is None:
        from flexplat.errors import ConfigError

        raise ConfigError(
            "train.callbacks.tensorboard: the tensorboard package is not installed; "
            "`pip install tensorboard`, or disable the callback with --set train.callbacks.tensorboard=false"
        )
    return keras.callbacks.TensorBoard(
        log_dir=str(context.run.tensorboard_dir), histogram_freq=options["histogram_freq"], write_graph=False
    )


def epoch_change_infer(context: RunContext, options: Mapping[str, Any]) -> EpochChangeInference:
    count = options["num_images"]
    if options["images"]:
        images = Path(options["images"])
        scan = context.codec.scan(str(images), str(images.parent / "masks"), None)
        pairs = scan.pairs[:count]
        if not pairs:
            from flexplat.errors import DataError

            raise DataError(
                f"train.callbacks.epoch_change_infer.images: no image/mask pairs in {images} "
                f"(masks are expected in {images.parent / 'masks'})"
            )
    else:  # evenly spread over the (name-sorted) valid split, so several classes show up
        pool = context.splits.get("valid") or context.splits["train"]
        step = max(1, len(pool) // count)
        pairs = pool[::step][:count]
    return EpochChangeInference(context, pairs, context.run.epoch_infer_dir)


def progress(context: RunContext, options: Mapping[str, Any]) -> RichProgress:
    return RichProgress(context)
