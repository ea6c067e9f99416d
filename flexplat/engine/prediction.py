"""The model a folder is segmented with, shared by ``flexplat infer`` and ``flexplat evaluate``.

- :func:`choose_model`: a run folder, an export folder, or the latest completed run; its ONNX export
  when there is one that matches (``--backend auto``).
- :func:`build_segmenter`: the model wrapped as a :class:`~flexplat.engine.segment.Segmenter` with the
  run's ``infer`` settings (tiling, batches, speck size) or the command's.
- :func:`plan_folder_scale`: the scale a folder's images are brought to (see :mod:`flexplat.engine.scale`),
  from ``--diameter`` or estimated with the model.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from flexplat.data.io import read_image
from flexplat.engine.export import ExportDir, default_export_dir, onnxruntime_available, require
from flexplat.engine.model_file import load_model, size_multiple
from flexplat.engine.rundir import RUNS_ROOT, RunDir, latest_completed
from flexplat.engine.scale import ScalePlan, estimate_diameter, plan_scale
from flexplat.engine.segment import BatchPredictor, OnnxPredictor, Predictor, SavedModelPredictor, Segmenter
from flexplat.errors import DataError, FlexplatError
from flexplat.schema import SCHEMA

TILE_MODES = ("auto", "always", "never")
BACKENDS = ("auto", "tensorflow", "onnx")
DEFAULT_MAX_SIDE = SCHEMA["infer"]["max_side"].default
"""Scaled images up to this side are predicted whole (fully convolutional models); larger ones tiled."""
DEFAULT_MIN_OBJECT = SCHEMA["infer"]["min_object"].default  # for runs written before these keys existed
DEFAULT_PIXELS = SCHEMA["infer"]["max_batch_pixels"].default


def resolve_run(run: RunDir | str | Path | None, runs_root: Path = RUNS_ROOT) -> tuple[RunDir, bool]:
    """The run to use and whether it was picked automatically (latest completed under runs_root)."""
    if run is None:
        return latest_completed(runs_root), True
    if isinstance(run, RunDir):
        return run, False
    return RunDir.open(run), False


@dataclass(frozen=True)
class InferSettings:
    """How a folder is segmented; ``None`` fields fall back to the run's ``infer`` config."""

    overlay: bool = True
    index_masks: bool = False
    tile: str | None = None
    tile_size: int | None = None
    batch_size: int | None = None
    overwrite: bool = False
    diameter: float | None = None
    per_image_scale: bool = False
    rescale: bool = True
    tta: bool = False


Source = RunDir | ExportDir
"""Where a model and its config come from: a run folder or an export folder."""


def choose_model(
    run: RunDir | ExportDir | str | Path | None, backend: str, runs_root: Path, console: Console
) -> tuple[Source, Source, str]:
    """(folder for default outputs, folder the model comes from, backend ``tensorflow`` or ``onnx``).

    ``auto``: an export folder's own format; for a run folder its ONNX export (``RUN/export/onnx``)
    when it exists, matches the run's model.keras and onnxruntime is installed, else TensorFlow.
    """
    if backend not in BACKENDS:
        raise FlexplatError(f"--backend: {backend!r} is not allowed; choose one of {', '.join(BACKENDS)}")
    if isinstance(run, ExportDir) or (isinstance(run, str | Path) and ExportDir.is_export(run)):
        export = run if isinstance(run, ExportDir) else ExportDir.open(run)
        return export, export, _export_backend(export, backend)
    run, automatic = resolve_run(run, runs_root)
    if automatic:
        console.print(f"Using run [bold]{run.path}[/] (the latest completed run under {runs_root}/; --run to choose)")
    if backend == "tensorflow":
        return run, run, backend
    candidate = default_export_dir(run.path, "onnx")
    if not ExportDir.is_export(candidate):
        if backend == "onnx":
            raise FlexplatError(
                f"{run.path}: no ONNX export in this run; create it with `flexplat export {run.path} --format onnx` "
                f"or use --backend tensorflow"
            )
        return run, run, "tensorflow"
    export = ExportDir.open(candidate)
    if not export.matches(run):
        if backend == "onnx":
            raise FlexplatError(
                f"{candidate}: made from an older model.keras of this run; export again "
                f"(`flexplat export {run.path} --format onnx --overwrite`)"
            )
        console.print(f"[yellow]{candidate} is older than the run's model.keras; using TensorFlow (export again)[/]")
        return run, run, "tensorflow"
    if backend == "auto" and not onnxruntime_available():
        return run, run, "tensorflow"
    console.print(f"Using the ONNX export [bold]{candidate}[/] (--backend tensorflow for model.keras)")
    return run, export, "onnx"


def _export_backend(export: ExportDir, backend: str) -> str:
    wanted = "onnx" if export.format == "onnx" else "tensorflow"
    if backend not in ("auto", wanted):
        raise FlexplatError(
            f"{export.path}: this export holds a {export.format} model, which runs on --backend {wanted}; "
            f"use --backend {wanted} (or auto), or --run {export.manifest.get('source_run')} (the source run)"
        )
    return wanted


def make_predictor(source: Source, backend: str = "tensorflow") -> BatchPredictor:
    """The batched forward pass of ``source``'s model on ``backend``."""
    num_classes = len(source.config()["classes"])
    if isinstance(source, RunDir):
        return Predictor(load_model(source), num_classes, str(source.model_path))
    if source.format == "onnx":
        require("onnxruntime", f"inference with the ONNX model {source.model_path}")
        return OnnxPredictor(source.model_path, num_classes)
    outputs = int(source.manifest.get("output_channels", num_classes))
    return SavedModelPredictor(source.model_path, (None, *source.manifest["input"]["shape"]), num_classes, outputs)


def build_segmenter(
    run: Source,
    tile: str | None,
    tile_size: int | None,
    batch_size: int | None,
    tta: bool,
    infer_cfg: Mapping[str, Any] | None = None,
    backend: str = "tensorflow",
) -> Segmenter:
    """The model of a run or export wrapped for prediction at any scale, on ``backend``.

    ``infer_cfg`` defaults to the run's ``infer`` settings.
    """
    config = run.config()
    infer_cfg = config.get("infer", {}) if infer_cfg is None else infer_cfg
    mode = tile if tile is not None else infer_cfg.get("tile", "auto")
    if mode not in TILE_MODES:
        raise FlexplatError(f"tile: {mode!r} is not allowed; choose one of {', '.join(TILE_MODES)}")
    batch = int(batch_size if batch_size is not None else infer_cfg.get("batch_size", 4))
    if batch < 1:
        raise FlexplatError(f"--batch-size: must be at least 1, got {batch}")
    predictor = make_predictor(run, backend)
    multiple = run.size_multiple if isinstance(run, ExportDir) else size_multiple(config)
    if predictor.channels not in (1, 3):
        raise FlexplatError(f"{run.model_path}: models with {predictor.channels} input channels are not supported")
    model_hw = _model_size(predictor, config)
    return Segmenter(
        predictor=predictor,
        multiple=multiple,
        tile_hw=_tile_size(predictor, config, model_hw, tile_size, multiple),
        overlap=float(infer_cfg.get("tile_overlap", 0.25)),
        batch_size=batch,
        max_side=int(infer_cfg.get("max_side", DEFAULT_MAX_SIDE)),  # runs written before the key existed
        tile_mode=mode,
        tta=tta,
        model_hw=model_hw,
        stain_norm=config.get("data", {}).get("stain_norm"),
        min_object=_min_object(run, float(infer_cfg.get("min_object", DEFAULT_MIN_OBJECT))),
        max_batch_pixels=None if batch_size is not None else int(infer_cfg.get("max_batch_pixels", DEFAULT_PIXELS)),
    )


def _min_object(run: Source, fraction: float) -> float:
    """The smallest object diameter kept, in pixels at the run's scale (0 when the run records no scale)."""
    training = run.training_scale()
    return fraction * training.diameter_p10 if training is not None else 0.0


def plan_folder_scale(
    run: Source,
    segmenter: Segmenter,
    files: Sequence[Path],
    options: InferSettings,
    console: Console,
    progress: bool,
) -> ScalePlan:
    """The scale the folder is segmented at (see :mod:`flexplat.engine.scale`)."""
    training = run.training_scale()
    if training is None and options.diameter is not None:
        raise FlexplatError(
            f"{run.path}: this run records no training scale (it was trained before flexplat recorded one), "
            f"so --diameter cannot be converted; leave --diameter out (images are then resized to the model "
            f"input as in training) or retrain"
        )
    if options.diameter is not None and options.diameter <= 0:
        raise FlexplatError(f"--diameter: must be a positive number of pixels, got {options.diameter}")
    if training is None and options.rescale:
        console.print(f"[yellow]{run.path}: no training scale recorded; images are resized to the model input[/]")

    def estimate() -> list[float | None]:
        return estimate_folder(segmenter, files, training.object_diameter, console, progress)

    return plan_scale(
        training,
        diameter=options.diameter,
        per_image=options.per_image_scale,
        rescale=options.rescale,
        estimate=estimate,
    )


def estimate_folder(
    segmenter: Segmenter, files: Sequence[Path], training_diameter: float, console: Console, progress: bool
) -> list[float | None]:
    """Each image's object diameter (its own pixels) estimated with the model; None where none found."""
    found: list[float | None] = []
    with progress_bar(console, progress) as bar:
        task = bar.add_task("Estimating scale", total=len(files))
        for path in files:
            try:
                net = segmenter.network_view(read_image(path))
            except (DataError, OSError, cv2.error):
                found.append(None)  # reported by the segmenting pass
            else:
                start = segmenter.framing_factor(*net.shape[:2])
                found.append(estimate_diameter(segmenter.labels_at, net, start, training_diameter))
            bar.advance(task)
    return found


def progress_bar(console: Console, enabled: bool) -> Progress:
    """The progress bar of a pass over a folder (hidden when ``enabled`` is False)."""
    columns = (
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    return Progress(*columns, console=console, disable=not enabled)


def _model_size(predictor: BatchPredictor, config: dict) -> tuple[int, int]:
    """The size images are resized to: the model's fixed input, else the config's image_size."""
    configured = tuple(int(v) for v in config["model"]["image_size"])
    fixed = predictor.input_hw
    if fixed[0] is not None and fixed[1] is not None:
        if tuple(fixed) != configured:
            raise FlexplatError(
                f"the model takes {fixed[0]}x{fixed[1]} input but config.yaml says model.image_size "
                f"{list(configured)}; the run folder is inconsistent"
            )
        return int(fixed[0]), int(fixed[1])
    return configured  # type: ignore[return-value]


def _tile_size(
    predictor: BatchPredictor, config: dict, model_hw: tuple[int, int], tile_size: int | None, multiple: int
) -> tuple[int, int]:
    if tile_size is None:
        return model_hw
    if tile_size < 1:
        raise FlexplatError(f"--tile-size: must be positive, got {tile_size}")
    fixed = predictor.input_hw
    if fixed[0] is not None or fixed[1] is not None:
        if (fixed[0] not in (None, tile_size)) or (fixed[1] not in (None, tile_size)):
            raise FlexplatError(
                f"--tile-size {tile_size}: this model only accepts {fixed[0]}x{fixed[1]} input; "
                f"leave --tile-size out (tiles then match the model input)"
            )
        return tile_size, tile_size
    from flexplat.specs import nearest_multiples

    if tile_size % multiple:
        lower, upper = nearest_multiples(tile_size, multiple)
        raise FlexplatError(
            f"--tile-size {tile_size}: model '{config['model']['name']}' needs sides that are a multiple of "
            f"{multiple}; try {lower} or {upper}"
        )
    return tile_size, tile_size
