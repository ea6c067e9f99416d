"""Inference: segment a folder of images with a trained run (``flexplat infer``).

For every image file in the folder (png, jpg, jpeg, bmp, tif, tiff; not recursive) the output
folder receives, at the ORIGINAL image size:

    <stem>_mask.png      colour mask (class colours from the run's config)
    <stem>_overlay.png   the image tinted with the mask on the objects, plus their outlines (optional)
    <stem>_index.png     class-index mask, uint8 (optional)
    summary.csv/.json    per image: size, tiled or not, predicted object class, pixel fractions

Two paths, chosen per image:

- **Resize** (image not larger than the model input, or tiling off): the image is resized to the
  model input (bilinear), predicted in batches with other images (the very first batch holds a
  single image, so the first result arrives early), and the class PROBABILITIES are
  resized back to the original size (bilinear) before the argmax, so class borders are smooth
  instead of blocky nearest-neighbour steps.
- **Tiled** (``tile="always"``, or ``"auto"`` and the image is larger than the model input on either
  side): see :mod:`flexplat.engine.tiling` (overlapping tiles, Hann-weighted blending of the softmax,
  bounded memory).

Decoding (and the resize to the model input) runs in a small thread pool a few images ahead,
and post-processing (resize back, argmax, colouring, overlays, PNG encoding, atomic writes) runs in
a background thread, while the model predicts in the calling thread; TensorFlow, OpenCV and PNG
encoding release the GIL, so all three overlap. Queues are bounded, so memory stays bounded.

Nothing is overwritten without ``overwrite=True``: every target file is checked before any work
starts. Unreadable inputs are reported and skipped; inputs are only read.
"""

from __future__ import annotations

import csv
import io
import json
import os
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from rich.console import Console
from rich.table import Table

from flexplat.atomic import atomic_write_text
from flexplat.data.io import IMAGE_EXTENSIONS, read_image, write_png
from flexplat.engine.infer_shards import (
    check_complete,
    find_shard_summaries,
    merged_values,
    parse_shard,
    shard_indices,
    shard_of,
    summary_names,
)
from flexplat.engine.outputs import (
    MARKER,
    begin_job,
    check_output_folder,
    end_job,
    interrupted_here,
    printable,
    remove_stale_temps,
    unreadable_entries,
)
from flexplat.engine.overlay import colorize
from flexplat.engine.overlay import overlay as overlay_image
from flexplat.engine.prediction import (
    InferSettings,
    Source,
    build_segmenter,
    choose_model,
    plan_folder_scale,
    progress_bar,
)
from flexplat.engine.rundir import RUNS_ROOT, RunDir
from flexplat.engine.scale import ScalePlan
from flexplat.engine.segment import Prepared, Segmenter
from flexplat.errors import DataError, FlexplatError
from flexplat.runtime import require_tensorflow
from flexplat.specs import ClassInfo

SUMMARY_CSV, SUMMARY_JSON = summary_names(None)


@dataclass
class InferSummary:
    """What :func:`run_inference` did: counts, where, per-image rows and timings."""

    run: Path
    images_dir: Path
    output_dir: Path
    found: int
    processed: int
    tiled: int
    skipped: list[tuple[str, str]]
    rows: list[dict[str, Any]]
    load_seconds: float
    model_seconds: float
    total_seconds: float
    model_batches: int = 0  # forward passes (prediction batches)
    classes: list[str] = field(default_factory=list)
    scale: dict[str, Any] = field(default_factory=dict)
    tta: bool = False
    backend: str = "tensorflow"
    model: Path | None = None
    shard: tuple[int, int] | None = None

    @property
    def processing_seconds(self) -> float:
        """Seconds from the loaded model to the last file written."""
        return self.total_seconds - self.load_seconds

    @property
    def seconds_per_image(self) -> float:
        return self.processing_seconds / self.processed if self.processed else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "run": str(self.run),
            "images_dir": str(self.images_dir),
            "output_dir": str(self.output_dir),
            "classes": self.classes,
            "scale": self.scale,
            "tta": self.tta,
            "backend": self.backend,
            "model": str(self.model) if self.model is not None else None,
            "counts": {
                "found": self.found,
                "processed": self.processed,
                "tiled": self.tiled,
                "skipped": len(self.skipped),
            },
            "timings": {
                "load_seconds": round(self.load_seconds, 4),
                "model_seconds": round(self.model_seconds, 4),
                "model_batches": self.model_batches,
                "processing_seconds": round(self.processing_seconds, 4),
                "total_seconds": round(self.total_seconds, 4),
                "seconds_per_image": round(self.seconds_per_image, 4),
            },
            "images": self.rows,
            "skipped": [{"file": name, "reason": reason} for name, reason in self.skipped],
            **({"shard": {"index": self.shard[0], "count": self.shard[1]}} if self.shard else {}),
        }


# -- inputs and targets ---------------------------------------------------------------------


def list_images(folder: Path) -> list[Path]:
    """Image files directly in ``folder`` (extension case-insensitive), sorted by name."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FlexplatError(f"{folder}: no such image folder (--images must be a folder of images)")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file())
    if not files:
        kinds = "/".join(e.lstrip(".") for e in IMAGE_EXTENSIONS)
        raise FlexplatError(f"{folder}: no images ({kinds}) in this folder")
    return files


def output_stems(files: Sequence[Path]) -> list[str]:
    """Output name stems: the file stem, or ``<stem>_<ext>`` when two inputs share a stem."""
    counts: dict[str, int] = {}
    for path in files:
        counts[path.stem] = counts.get(path.stem, 0) + 1
    return [p.stem if counts[p.stem] == 1 else f"{p.stem}_{p.suffix[1:].lower()}" for p in files]


def _targets(stem: str, output: Path, overlay_on: bool, index_masks: bool) -> dict[str, Path]:
    names = {"mask": f"{stem}_mask.png"}
    if overlay_on:
        names["overlay"] = f"{stem}_overlay.png"
    if index_masks:
        names["index"] = f"{stem}_index.png"
    return {kind: output / name for kind, name in names.items()}


def _check_targets(files: Sequence[Path], targets: Sequence[Path], output: Path, overwrite: bool) -> None:
    if output.exists() and not output.is_dir():
        raise FlexplatError(f"{output}: --output must be a folder, but this is a file")
    inputs = {p.resolve() for p in files}
    for target in targets:
        if target.resolve() in inputs:
            raise FlexplatError(f"{target}: this output would replace an input image; choose another --output folder")
    existing = [t for t in targets if t.exists()]
    if existing and not overwrite:
        shown = ", ".join(t.name for t in existing[:3]) + (", ..." if len(existing) > 3 else "")
        raise FlexplatError(
            f"{output}: {len(existing)} of the {len(targets)} output files already exist ({shown}); "
            f"pass --overwrite to replace them, or choose another --output folder"
        )


# -- per image work -------------------------------------------------------------------------


@dataclass
class _Item:
    index: int
    path: Path
    rgb: np.ndarray  # original image, uint8 RGB (for the overlay)
    prepared: Prepared  # network input at the chosen scale
    factor: float | tuple[float, float]


@dataclass
class _Skip:
    index: int
    path: Path
    reason: str


@dataclass
class _Job:
    item: _Item
    probs: np.ndarray  # probabilities at the prepared (scaled, padded) size


def _reason(exc: Exception, path: Path) -> str:
    text = str(exc)
    for prefix in (f"{path}: ", f"{path.name}: "):
        if text.startswith(prefix):
            return text[len(prefix) :]
    return text


def _row(name: str, labels: np.ndarray, tiled: bool, class_names: Sequence[str]) -> dict[str, Any]:
    height, width = labels.shape
    counts = np.bincount(labels.ravel(), minlength=len(class_names)).astype(np.float64)
    total = float(labels.size)
    foreground = counts[1:].sum()
    predicted = class_names[1 + int(np.argmax(counts[1:]))] if foreground > 0 else "none"
    row: dict[str, Any] = {
        "file": name,
        "width": int(width),
        "height": int(height),
        "tiled": bool(tiled),
        "predicted_class": predicted,
        "foreground_fraction": round(foreground / total, 6),
    }
    for cls, count in zip(class_names, counts, strict=True):
        row[f"fraction_{cls}"] = round(count / total, 6)
    return row


class _Writer(threading.Thread):
    """Background post-processing and writing; the first error is kept and re-raised by the caller."""

    def __init__(self, finish: Callable[[_Job], dict], on_done: Callable[[], None], depth: int) -> None:
        super().__init__(name="flexplat-infer-writer", daemon=True)
        self.jobs: queue.Queue[_Job | None] = queue.Queue(maxsize=depth)
        self.finish = finish
        self.on_done = on_done
        self.rows: dict[int, dict] = {}
        self.error: BaseException | None = None

    def run(self) -> None:
        while True:
            job = self.jobs.get()
            if job is None:
                return
            if self.error is not None:
                continue  # drain without work so the producer never blocks forever
            try:
                self.rows[job.item.index] = self.finish(job)
            except BaseException as exc:  # re-raised in the calling thread
                self.error = exc
            finally:
                job.item = None  # type: ignore[assignment]  # free the arrays early
                job.probs = None  # type: ignore[assignment]
            self.on_done()

    def put(self, job: _Job) -> None:
        self.check()
        self.jobs.put(job)

    def check(self) -> None:
        if self.error is not None:
            if isinstance(self.error, FlexplatError):
                raise self.error
            raise FlexplatError(f"writing outputs failed: {type(self.error).__name__}: {self.error}") from self.error

    def close(self) -> None:
        self.jobs.put(None)
        self.join()
        self.check()


# -- the command ----------------------------------------------------------------------------


def run_inference(
    run: RunDir | str | Path | None,
    images: Path,
    output: Path | None = None,
    *,
    console: Console | None = None,
    runs_root: Path = RUNS_ROOT,
    progress: bool = True,
    backend: str = "auto",
    shard: str | tuple[int, int] | None = None,
    **settings: Any,
) -> InferSummary:
    """Segment every image in ``images`` with ``run``'s model; see the module docstring.

    ``run=None`` uses the latest completed run under ``runs_root`` (and says so). ``settings`` are
    the fields of :class:`InferSettings` (tile mode, tile size, batch size, scale, TTA, outputs).
    ``run`` may be an export folder (``flexplat export``); ``backend`` is ``auto``, ``tensorflow`` or ``onnx``
    (see :func:`choose_model`). ``shard`` (``"I/N"``) segments only shard I of N of the images
    (:mod:`flexplat.engine.infer_shards`) and names its summary after the shard.
    """
    started = time.perf_counter()
    console = console or Console()
    options = InferSettings(**settings)
    shard = parse_shard(shard) if isinstance(shard, str) else shard
    folder, run, backend = choose_model(run, backend, runs_root, console)
    if backend == "tensorflow":
        require_tensorflow("`flexplat infer` on a Keras model (or an ONNX export: --backend onnx)")
    files, broken = list_images(Path(images)), _shard_entries(unreadable_entries(Path(images), IMAGE_EXTENSIONS), shard)
    chosen = shard_indices(files, Path(images), shard)
    output = Path(output) if output is not None else folder.path / "predictions" / Path(images).resolve().name
    marker = job_marker(shard)
    targets = _prepare_output(files, Path(images), output, options, console, chosen, shard)
    segmenter = build_segmenter(run, options.tile, options.tile_size, options.batch_size, options.tta, backend=backend)
    load_seconds = time.perf_counter() - started
    if shard is not None:
        console.print(f"shard {shard[0]}/{shard[1]}: {len(chosen)} of the {len(files)} images")
    plan = plan_folder_scale(run, segmenter, files, options, console, progress)  # the whole folder: as a full run
    console.print(plan.describe())
    for name, reason in broken:
        console.print(f"[yellow]Skipped[/] {name}: {reason}")
    begin_job(output, Path(images), marker)
    rows, skipped = _segment_folder(run, segmenter, plan, [(i, files[i]) for i in chosen], targets, console, progress)
    summary = InferSummary(
        run=folder.path,
        images_dir=Path(images),
        output_dir=output,
        found=len(chosen) + len(broken),
        processed=len(rows),
        tiled=sum(1 for r in rows if r["tiled"]),
        skipped=broken + skipped,
        rows=rows,
        load_seconds=load_seconds,
        model_seconds=segmenter.predictor.seconds,
        model_batches=segmenter.predictor.calls,
        total_seconds=time.perf_counter() - started,
        classes=[c.name for c in run.classes()],
        scale=plan.to_dict(),
        tta=options.tta,
        backend=backend,
        model=run.model_path,
        shard=shard,
    )
    _write_summary(summary, output)
    end_job(output, marker)
    return summary


def merge_shards(folders: Sequence[Path], out: Path | None = None, overwrite: bool = False) -> InferSummary:
    """One full run's summary from the shard summaries in ``folders`` (see :mod:`~flexplat.engine.infer_shards`).

    ``out`` defaults to the one folder given; the shards' masks and overlays stay where they were written.
    """
    folders = [Path(f) for f in folders]
    if out is None and len(set(folders)) != 1:
        raise FlexplatError("the shards are in several folders; pass --out DIR for the merged summary")
    out = Path(out) if out is not None else folders[0]
    found = find_shard_summaries(folders)
    check_complete(found)
    existing = [out / name for name in (SUMMARY_CSV, SUMMARY_JSON) if (out / name).exists()]
    if existing and not overwrite:
        raise FlexplatError(f"{existing[0]} already exists; pass --overwrite to replace it, or choose another --out")
    summary = InferSummary(output_dir=out, **merged_values(found))
    out.mkdir(parents=True, exist_ok=True)
    _write_summary(summary, out)
    return summary


def _prepare_output(
    files: Sequence[Path],
    images: Path,
    output: Path,
    options: InferSettings,
    console: Console,
    chosen: Sequence[int],
    shard: tuple[int, int] | None,
) -> list[dict[str, Path]]:
    """Check the output folder and plan its files; an interrupted run of the same job (or shard) is finished.

    A shard leaves the folder's temp files alone: the other shards may be writing beside it.
    """
    check_output_folder(images, output)
    resumed = interrupted_here(output, images, job_marker(shard))
    if resumed:
        if shard is None:
            remove_stale_temps(output)
        console.print(f"{output}: finishing an interrupted `flexplat infer` of {images} (its files are replaced)")
    return _plan_targets(files, output, replace(options, overwrite=options.overwrite or resumed), chosen, shard)


def job_marker(shard: tuple[int, int] | None) -> str:
    """The unfinished-job marker's file name: one per shard, so shards writing to one folder keep their own."""
    return MARKER if shard is None else MARKER.replace(".json", f".shard-{shard[0]}-of-{shard[1]}.json")


def _shard_entries(entries: list[tuple[str, str]], shard: tuple[int, int] | None) -> list[tuple[str, str]]:
    """The unreadable entries this shard reports (each in exactly one shard, like the images)."""
    if shard is None:
        return entries
    return [(name, reason) for name, reason in entries if shard_of(name, shard[1]) == shard[0]]


def _plan_targets(
    files: Sequence[Path], output: Path, options: InferSettings, chosen: Sequence[int], shard: tuple[int, int] | None
) -> list[dict[str, Path]]:
    """The output files of every input (names from the whole folder); refuses to overwrite unless asked.

    Only the files of the ``chosen`` inputs and the (shard's) summary are checked, before any work.
    """
    targets = [_targets(stem, output, options.overlay, options.index_masks) for stem in output_stems(files)]
    everything = [p for i in chosen for p in targets[i].values()] + [output / n for n in summary_names(shard)]
    _check_targets(files, everything, output, options.overwrite)
    return targets


def _segment_folder(
    run: Source,
    segmenter: Segmenter,
    plan: ScalePlan,
    items: Sequence[tuple[int, Path]],
    targets: Sequence[dict[str, Path]],
    console: Console,
    progress: bool,
) -> tuple[list[dict], list[tuple[str, str]]]:
    """Decode ahead in threads, predict in batches here, post-process and write in the background."""
    classes = run.classes()
    alpha = float(run.config().get("infer", {}).get("overlay_alpha", 0.45))
    finish = _finisher(segmenter, classes, targets, alpha, plan)
    skipped: list[tuple[int, str, str]] = []
    with progress_bar(console, progress) as bar:
        task = bar.add_task("Segmenting", total=len(items))
        writer = _Writer(finish, lambda: bar.advance(task), depth=max(2, segmenter.batch_size))
        writer.start()
        batcher = _Batcher(segmenter, writer)
        try:
            for result in _prefetched(_decoder(segmenter, plan), items, ahead=segmenter.batch_size + 2):
                if isinstance(result, _Skip):
                    name = printable(result.path.name)
                    skipped.append((result.index, name, result.reason))
                    console.print(f"[yellow]Skipped[/] {name}: {result.reason}")
                    bar.advance(task)
                else:
                    batcher.add(result)
            batcher.flush()
        finally:
            writer.close()
    rows = [writer.rows[i] for i in sorted(writer.rows)]
    return rows, [(name, reason) for _, name, reason in sorted(skipped)]


def _decoder(segmenter: Segmenter, plan: ScalePlan) -> Callable[[int, Path], _Item | _Skip]:

    def decode(index: int, path: Path) -> _Item | _Skip:
        try:
            rgb = read_image(path)
        except (DataError, OSError, cv2.error) as exc:
            return _Skip(index, path, _reason(exc, path))
        factor = plan.factor_for(index, rgb.shape[0], rgb.shape[1], segmenter.model_hw)
        if plan.factor is None and plan.method == "training framing" and segmenter.tile_mode == "always":
            factor = 1.0  # no scale to bring the image to: forced tiles cover it at its own pixels
        return _Item(index, path, rgb, segmenter.prepare(segmenter.network_view(rgb), factor), factor)

    return decode


class _Batcher:
    """Groups prepared whole images of one shape into prediction batches; tiled images go alone.

    The very first batch holds one image, so the first result (and any error) comes early.
    """

    def __init__(self, segmenter: Segmenter, writer: _Writer) -> None:
        self.segmenter = segmenter
        self.writer = writer
        self.pending: list[_Item] = []

    def add(self, item: _Item) -> None:
        if item.prepared.tiled:
            probs = self.segmenter.predict_tiled(item.prepared)
            item.prepared.array = None  # type: ignore[assignment]
            self.writer.put(_Job(item, probs))
            return
        if self.pending and self.pending[0].prepared.array.shape != item.prepared.array.shape:
            self.flush()
        self.pending.append(item)
        full = self.segmenter.batch_for(item.prepared.array.shape[:2]) if self.segmenter.predictor.calls else 1
        if len(self.pending) >= full:
            self.flush()

    def flush(self) -> None:
        if not self.pending:
            return
        probs = self.segmenter.predict_whole(np.stack([item.prepared.array for item in self.pending]))
        for item, item_probs in zip(self.pending, probs, strict=True):
            item.prepared.array = None  # type: ignore[assignment]
            self.writer.put(_Job(item, item_probs))
        self.pending.clear()


def _finisher(
    segmenter: Segmenter,
    classes: Sequence[ClassInfo],
    targets: Sequence[dict[str, Path]],
    alpha: float,
    plan: ScalePlan,
) -> Callable[[_Job], dict]:
    """Post-processing of one image: back to its size, argmax, colour, overlay, write, summary row."""
    colors = [c.color for c in classes]
    names = [c.name for c in classes]
    index_dtype = np.uint8 if len(classes) <= 256 else np.uint16

    def finish(job: _Job) -> dict:
        item = job.item
        labels = np.argmax(segmenter.restore(item.prepared, job.probs), axis=-1).astype(index_dtype)
        paths = targets[item.index]
        write_png(paths["mask"], colorize(labels, colors))
        if "overlay" in paths:
            write_png(paths["overlay"], overlay_image(item.rgb, labels, colors, alpha))
        if "index" in paths:
            write_png(paths["index"], labels)
        row = _row(printable(item.path.name), labels, item.prepared.tiled, names)
        row["scale"] = _scale_value(item.factor)
        estimates = plan.estimates
        row["estimated_diameter"] = (
            None if not estimates or not estimates[item.index] else round(estimates[item.index], 2)
        )
        return row

    return finish


def _scale_value(factor: float | tuple[float, float]) -> float | list[float]:
    if isinstance(factor, tuple):
        return [round(factor[0], 4), round(factor[1], 4)]
    return round(factor, 4)


def _prefetched(decode: Callable[[int, Path], Any], items: Sequence[tuple[int, Path]], ahead: int):
    """Yield ``decode(i, path)`` for ``items`` in order, decoding up to ``ahead`` files in advance in threads."""
    workers = max(1, min(4, os.cpu_count() or 1))
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="flexplat-decode") as pool:
        queued: deque[Future] = deque()
        todo = iter(items)
        try:
            for _ in range(ahead):
                i_path = next(todo, None)
                if i_path is None:
                    break
                queued.append(pool.submit(decode, *i_path))
            while queued:
                result = queued.popleft().result()
                i_path = next(todo, None)
                if i_path is not None:
                    queued.append(pool.submit(decode, *i_path))
                yield result
        finally:
            for future in queued:
                future.cancel()


# -- summary --------------------------------------------------------------------------------


def _write_summary(summary: InferSummary, output: Path) -> None:
    fields = ["file", "width", "height", "tiled", "scale", "estimated_diameter", "predicted_class"]
    fields += ["foreground_fraction"]
    fields += [f"fraction_{name}" for name in summary.classes]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=fields, lineterminator="\n")
    writer.writeheader()
    writer.writerows(summary.rows)
    csv_name, json_name = summary_names(summary.shard)
    atomic_write_text(output / csv_name, buffer.getvalue())
    atomic_write_text(output / json_name, json.dumps(summary.to_dict(), indent=2) + "\n")


def render_summary(summary: InferSummary, console: Console) -> None:
    """A short table: counts, skipped files with reasons, output folder, seconds per image."""
    table = Table(title="flexplat infer", show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column()
    table.add_row("run", str(summary.run))
    table.add_row("backend", f"{summary.backend} ({summary.model})" if summary.model else summary.backend)
    table.add_row("images", f"{summary.processed} of {summary.found} segmented ({summary.tiled} tiled)")
    table.add_row("skipped", str(len(summary.skipped)))
    for name, reason in summary.skipped[:10]:
        table.add_row("", f"{name}: {reason}")
    if len(summary.skipped) > 10:
        table.add_row("", f"... and {len(summary.skipped) - 10} more (see {SUMMARY_JSON})")
    table.add_row("output", str(summary.output_dir))
    table.add_row(
        "time",
        f"{summary.seconds_per_image:.3f} s per image (model {summary.model_seconds:.1f} s, "
        f"load {summary.load_seconds:.1f} s, total {summary.total_seconds:.1f} s)",
    )
    types: dict[str, int] = {}
    for row in summary.rows:
        types[row["predicted_class"]] = types.get(row["predicted_class"], 0) + 1
    if types:
        table.add_row("predicted classes", ", ".join(f"{name} {n}" for name, n in sorted(types.items())))
    console.print(table)
