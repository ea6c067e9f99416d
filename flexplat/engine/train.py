"""Training: config -> data -> model -> Keras fit with registry callbacks -> run folder."""

from __future__ import annotations

import contextlib
import json
import platform
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from rich.console import Console

from flexplat.atomic import atomic_write_text, atomic_write_with
from flexplat.config import require_model
from flexplat.engine.adopt import foreign_loader, load_foreign_weights
from flexplat.engine.context import RunContext
from flexplat.engine.data import dataset_fingerprint, ensure_demo_data, load_splits
from flexplat.engine.distribute import (
    Placement,
    broadcast_variables,
    make_strategy,
    replicas,
    resolve_placement,
    worker_lost,
)
from flexplat.engine.guards import NonFiniteLoss, non_finite_guard, non_finite_message
from flexplat.engine.model_file import save_for_inference
from flexplat.engine.rundir import RunDir
from flexplat.engine.scale import TrainingScale, evenly_spaced, measure_training_scale
from flexplat.errors import DataError, FlexplatError
from flexplat.plugins import get_registry, get_system
from flexplat.specs import classes_from_config
from flexplat.version import __version__

NONDETERMINISM = (
    "seeded: Python, NumPy, TensorFlow, shuffling and augmentation. Not bit-exact: multi-threaded "
    "CPU reductions in TensorFlow kernels may sum in a different order from run to run."
)


def versions() -> dict[str, str]:
    import keras
    import numpy
    import tensorflow as tf

    found = {"flexplat": __version__, "tensorflow": tf.__version__, "keras": keras.__version__}
    found.update({"numpy": numpy.__version__, "python": platform.python_version()})
    for plugin in get_system().plugins():
        if not plugin.builtin and plugin.version:
            found[plugin.distribution] = plugin.version
    return found


def _build_model(config: dict, num_classes: int):
    import keras

    from flexplat.engine.losses import get_loss
    from flexplat.engine.metrics import build_metrics

    spec = get_registry().get("model", config["model"]["name"])
    height, width = config["model"]["image_size"]
    model = spec.build((height, width), config["model"]["channels"], num_classes, **config["model"]["options"])
    train = config["train"]
    optimizers = {
        "adam": keras.optimizers.Adam,
        "adamw": keras.optimizers.AdamW,
        "sgd": keras.optimizers.SGD,
        "rmsprop": keras.optimizers.RMSprop,
    }
    kwargs = {"learning_rate": train["learning_rate"]}
    if train["clipvalue"] is not None:
        kwargs["clipvalue"] = train["clipvalue"]
    names = [c["name"] for c in config["classes"]]
    model.compile(
        optimizer=optimizers[train["optimizer"]](**kwargs),
        loss=get_loss(train["loss"], num_classes, **train["loss_options"]),
        metrics=build_metrics(names),
        jit_compile=train["jit_compile"],
    )
    return model


class ResumeState:
    """Last completed epoch: weights + optimizer state and the callbacks' counters, in run/resume/."""

    def __init__(self, run: RunDir) -> None:
        self.dir = run.resume_dir
        self.weights = self.dir / "last.weights.h5"
        self.state = self.dir / "state.json"

    def load(self) -> dict:
        if not self.state.is_file() or not self.weights.is_file():
            return {"epoch": 0, "callbacks": {}}
        return json.loads(self.state.read_text(encoding="utf-8"))

    def callback(self, named: Mapping[str, Any], restore: Mapping[str, Any]):
        import keras

        outer = self

        class SaveState(keras.callbacks.Callback):
            """Runs last: restores callback counters at train begin, saves everything at epoch end."""

            def on_train_begin(self, logs=None) -> None:
                for name, state in restore.items():
                    if name in named and hasattr(named[name], "flexplat_restore"):
                        named[name].flexplat_restore(state)

            def on_epoch_end(self, epoch: int, logs=None) -> None:
                atomic_write_with(outer.weights, self.model.save_weights, keep_suffix=True)
                states = {n: cb.flexplat_state() for n, cb in named.items() if hasattr(cb, "flexplat_state")}
                text = json.dumps({"epoch": epoch + 1, "callbacks": states}, indent=2)
                atomic_write_text(outer.state, text + "\n")

        return SaveState()


def train(
    config: dict | None = None,
    *,
    out: Path | None = None,
    resume: Path | None = None,
    init: Path | None = None,
    demo: bool = False,
    console: Console | None = None,
    init_weights: Path | None = None,
    strategy: str | None = None,
) -> RunDir | None:
    """Train a new run from ``config`` (or continue the run folder ``resume``); returns the run folder.

    ``init`` starts from a trained run's weights (fine-tuning); its classes must match by name.
    ``init_weights`` starts from a weights file of another program (the original's ``best_model.h5``),
    read by the model plugin (:func:`flexplat.engine.adopt.load_foreign_weights`).
    ``strategy`` overrides ``train.strategy`` (:mod:`flexplat.engine.distribute`); with several
    workers only the chief writes the run folder, and the other workers return None.
    The data is checked before a run folder is made or TensorFlow is imported, so a bad dataset
    fails fast and leaves nothing behind.
    """
    console = console or Console()
    config, run, state = _start(config, resume, demo, console)
    placement = resolve_placement(strategy or config["train"]["strategy"])
    config["train"]["strategy"] = strategy or config["train"]["strategy"]
    dist = make_strategy(placement, config["train"]["collective_timeout"])
    source = _init_source(init, config) if init is not None else None
    if init_weights is not None:
        foreign_loader(config, init_weights)
    codec, splits = load_splits(config, console)
    if not splits["valid"]:
        raise DataError(
            f"{config['data']['root']}: no validation pairs; add a valid folder (data.valid) "
            "or set data.split.valid > 0"
        )
    if source is not None:
        _match_init_scale(config, source, codec, splits["train"], console)
    if run is None and placement.chief:
        run = RunDir.create(out, config.get("project"))
        run.write_config(config)
    context = RunContext(run, config, classes_from_config(config["classes"]), codec, splits, console,
                         initial_epoch=state["epoch"])  # fmt: skip
    callbacks, named = _chief_callbacks(context, state, placement)
    multi = placement.strategy == "multi-worker"  # each worker builds its own shard's pipeline
    datasets = _datasets(config, codec, {**splits, "train": [] if multi else splits["train"]}, replicas(dist))
    with dist.scope() if dist is not None else contextlib.nullcontext():
        model = _build_model(config, len(config["classes"]))
        _load_start_weights(model, run, state, source, init_weights, config, console)
    broadcast_variables(dist, placement, [*model.weights, *model.optimizer.variables])
    if not placement.chief:
        return _train_worker(model, dist, placement, config, codec, splits, datasets[1], state, console)
    scale = _training_scale(run, config, codec, splits["train"])
    info = _record_start(run, config, splits, model, scale, source, placement, replicas(dist))
    console.print(
        f"Run folder: [bold]{run.path}[/]  model {config['model']['name']} "
        f"({model.count_params():,} parameters), {len(splits['train'])} train / {len(splits['valid'])} valid pairs"
        + (f", {placement.strategy} on {replicas(dist)} replicas" if placement.distributed else "")
    )
    started = time.time()
    if multi:
        epochs = _fit_multi_worker(run, model, dist, placement, config, codec, splits, datasets[1], state, callbacks,
                                   console)  # fmt: skip
    else:
        history = _fit(run, model, *datasets, config, state, callbacks, verbose=0 if "progress" in named else 2)
        epochs = len(history.epoch)
    _record_end(run, model, named, context, info, state["epoch"] + epochs, time.time() - started)
    return run


def _chief_callbacks(context: RunContext, state: dict, placement: Placement) -> tuple[list, dict[str, Any]]:
    """The run's callbacks and resume-state saver (the chief's only: other workers write nothing)."""
    if not placement.chief:
        return [], {}
    named = _callbacks(context, context.config)
    resume = ResumeState(context.run).callback(named, state["callbacks"])
    return [non_finite_guard(), *named.values(), resume], named


def _load_start_weights(model: Any, run: RunDir | None, state: dict, source: RunDir | None, init_weights: Path | None,
                        config: dict, console: Console) -> None:  # fmt: skip
    """Resume, fine-tune or foreign weights into ``model`` (under the strategy's scope)."""
    model.optimizer.build(model.trainable_variables)  # its variables exist before any weights are shared
    if state["epoch"]:
        model.load_weights(ResumeState(run).weights)
        console.print(f"Resuming {run.path} after epoch {state['epoch']}")
    elif source is not None:
        _load_init_weights(model, source, console)
        _hint_class_weights(config, console)
    elif init_weights is not None:
        console.print(load_foreign_weights(model, config, init_weights))


def _fit_multi_worker(run: RunDir | None, model: Any, dist: Any, placement: Placement, config: dict, codec: Any,
                      splits: dict, valid_ds: Any, state: dict, callbacks: list, console: Console) -> int:  # fmt: skip
    """The distributed train loop; returns the epochs run. A lost worker fails the run (resumable)."""
    from flexplat.engine.distributed_loop import fit_distributed, input_fn, steps_per_epoch
    from flexplat.engine.metrics import build_metrics

    try:
        result = fit_distributed(
            model, dist, placement, input_fn=input_fn(config, codec, splits["train"]), valid_ds=valid_ds,
            make_metrics=lambda: build_metrics([c["name"] for c in config["classes"]]),
            epochs=config["train"]["epochs"], initial_epoch=state["epoch"],
            steps=steps_per_epoch(config, len(splits["train"]), replicas(dist)), callbacks=callbacks,
        )  # fmt: skip
    except (KeyboardInterrupt, Exception) as exc:
        raise _training_failure(run, exc, config, multi_worker=True) from None
    console.print(f"worker {placement.index} of {placement.workers}: final weights sha256 {result.weights_sha256}")
    if run is not None:
        run.update_info(strategy={**run.info()["strategy"], "final_weights_sha256": result.weights_sha256})
    return len(result.epochs)


def _train_worker(model: Any, dist: Any, placement: Placement, config: dict, codec: Any, splits: dict, valid_ds: Any,
                  state: dict, console: Console) -> None:  # fmt: skip
    """A non-chief worker: trains in step with the chief and writes nothing."""
    console.print(f"worker {placement.index} of {placement.workers} ({placement.source}): the chief writes the run")
    _fit_multi_worker(None, model, dist, placement, config, codec, splits, valid_ds, state, [], console)
    return None


def _start(config: dict | None, resume: Path | None, demo: bool, console: Console) -> tuple[dict, RunDir | None, dict]:
    """The config, the run folder when resuming (None for a new run) and the resume state."""
    if resume is not None:
        run = RunDir.open(resume)
        if run.completed:
            raise FlexplatError(f"{run.path}: this run already completed; start a new run instead")
        state = ResumeState(run).load()
        if state["epoch"] == 0:
            console.print(f"{run.path}: no completed epoch to resume from; starting at epoch 1")
        return run.config(), run, state
    if config is None:
        raise FlexplatError("train() needs a config or a run folder to resume")
    require_model(config)
    if demo:
        ensure_demo_data(config, console)
    return config, None, {"epoch": 0, "callbacks": {}}


def _init_source(init: Path, config: dict) -> RunDir:
    """The run whose weights start this one; its classes must be the config's, by name and order."""
    source = RunDir.open(init)
    if not source.model_path.is_file():
        raise FlexplatError(f"{source.path}: no {source.model_path.name} to start from; that run never saved a model")
    theirs = [c.name for c in source.classes()]
    ours = [c["name"] for c in config["classes"]]
    if theirs != ours:
        hint = (
            "the same classes in another order: list them in the run's order in your config"
            if sorted(theirs) == sorted(ours)
            else f"missing here: {sorted(set(theirs) - set(ours)) or 'none'}, "
            f"new here: {sorted(set(ours) - set(theirs)) or 'none'}"
        )
        raise FlexplatError(
            f"--init {source.path}: its classes {theirs} differ from this config's {ours} ({hint}); "
            f"a model can only be fine-tuned on the classes it predicts"
        )
    if source.config()["model"]["name"] != config["model"]["name"]:
        raise FlexplatError(
            f"--init {source.path}: that run trained model '{source.config()['model']['name']}', this config "
            f"names '{config['model']['name']}'; use the same model (and options) to start from its weights"
        )
    return source


SCALE_TOLERANCE = 0.1
"""Fine-tuning data whose objects differ from the source run's scale by more than this is resized."""


def _match_init_scale(config: dict, source: RunDir, codec: Any, pairs: list[Any], console: Console) -> None:
    """Fine-tuning: bring the new images to the scale the source run learnt at (like infer does).

    Training resizes every image to ``model.image_size``; when the new lab's objects would then be
    smaller or larger than the ones the source model learnt, a fully convolutional model trains at
    the input size that gives them the learnt diameter instead (rounded to the model's size multiple).
    """
    learnt = source.training_scale()
    spec = get_registry().get("model", config["model"]["name"])
    if learnt is None or not spec.fully_convolutional:
        return
    size = config["model"]["image_size"]
    masks = (codec.read_mask(pair).mask for pair in evenly_spaced(pairs))
    here = measure_training_scale(masks, size)
    if here is None or abs(here.object_diameter / learnt.object_diameter - 1.0) <= SCALE_TOLERANCE:
        return
    multiple = spec.size_multiple(config["model"]["options"])
    ratio = learnt.object_diameter / here.object_diameter
    new_size = [max(multiple, int(round(side * ratio / multiple)) * multiple) for side in size]
    console.print(
        f"Objects in this data measure {here.object_diameter:.1f} px at model.image_size {size}, the source run "
        f"learnt {learnt.object_diameter:.1f} px: training at model.image_size {new_size} to match"
    )
    config["model"]["image_size"] = new_size


def _load_init_weights(model: Any, source: RunDir, console: Console) -> None:
    from flexplat.engine.model_file import load_model

    trained = load_model(source)
    try:
        model.set_weights(trained.get_weights())
    except ValueError as exc:
        raise FlexplatError(
            f"--init {source.path}: its weights do not fit this model ({exc}); model options must match the run's"
        ) from None
    console.print(f"Starting from the weights of {source.path}")


def _hint_class_weights(config: dict, console: Console) -> None:
    """Fine-tuning keeps the config's class weights; say so, since they were set for another data set."""
    from rich.markup import escape

    weights = config["train"]["loss_options"].get("class_weights")
    if weights:
        console.print(
            f"[yellow]Note:[/] train.loss_options.class_weights {escape(str(weights))} balance the classes of "
            f"the data they were chosen for; for your images set them to yours or drop them "
            f'(--set "train.loss_options={{class_weights: null}}")'
        )


def _training_scale(run: RunDir, config: dict, codec: Any, pairs: list[Any]) -> TrainingScale | None:
    """The scale the model learns at, measured once from the training masks (kept when resuming)."""
    recorded = run.training_scale()
    if recorded is not None:
        return recorded
    masks = (codec.read_mask(pair).mask for pair in evenly_spaced(pairs))
    return measure_training_scale(masks, config["model"]["image_size"])


def _datasets(config: dict, codec: Any, splits: dict[str, list[Any]], replicas: int = 1) -> tuple[Any, Any]:
    """Seeds Keras, then the training and validation datasets (batches of ``batch_size x replicas``)."""
    import keras

    keras.utils.set_random_seed(config["train"]["seed"])
    train_ds = _dataset(config, codec, splits["train"], True, replicas) if splits["train"] else None
    return train_ds, _dataset(config, codec, splits["valid"], False, replicas)


def _dataset(config: dict, codec: Any, pairs: list[Any], training: bool, replicas: int) -> Any:
    from flexplat.data.pipeline import make_dataset

    train_cfg = config["train"]
    return make_dataset(
        pairs, codec, tuple(config["model"]["image_size"]), len(config["classes"]), train_cfg["batch_size"] * replicas,
        shuffle=training, augment=train_cfg["augment"] if training else None, seed=train_cfg["seed"],
        cache=config["data"]["cache"], stain_norm=config["data"].get("stain_norm"),
        channels=config["model"]["channels"],
    )  # fmt: skip


def _callbacks(context: RunContext, config: dict) -> dict[str, Any]:
    registry = get_registry()
    return {
        name: registry.get("callback", name).factory(context, options)
        for name, options in config["train"]["callbacks"].items()
        if options is not False
    }


def _record_start(
    run: RunDir, config: dict, splits: dict, model: Any, scale: TrainingScale | None, source: RunDir | None,
    placement: Placement, replicas: int,
) -> dict:  # fmt: skip
    info = run.info()
    values: dict[str, Any] = {
        "status": "running",
        "project": config.get("project"),
        "seed": config["train"]["seed"],
        "determinism": NONDETERMINISM,
        "versions": versions(),
        "dataset": {
            "root": str(config["data"]["root"]),
            "sha256": dataset_fingerprint(config["data"]["root"], splits),
            "pairs": {k: len(v) for k, v in splits.items()},
        },
        "started": info.get("started", time.strftime("%Y-%m-%dT%H:%M:%S")),
        "model": {"name": config["model"]["name"], "parameters": int(model.count_params())},
        "scale": scale.to_dict() if scale else None,
        "strategy": {
            "name": placement.strategy,
            "requested": config["train"]["strategy"],
            "replicas": replicas,
            "workers": placement.workers,
            "cluster": placement.source,
            "global_batch": config["train"]["batch_size"] * replicas,
        },
    }
    if source is not None:
        values["init"] = {"run": str(source.path), "model": config["model"]["name"]}
    run.update_info(**values)
    return info


def _fit(run: RunDir, model: Any, train_ds: Any, valid_ds: Any, config: dict, state: dict, callbacks: list,
         verbose: int) -> Any:  # fmt: skip
    train_cfg = config["train"]
    try:
        return model.fit(
            train_ds,
            validation_data=valid_ds,
            epochs=train_cfg["epochs"],
            initial_epoch=state["epoch"],
            steps_per_epoch=train_cfg["steps_per_epoch"],
            callbacks=callbacks,
            verbose=verbose,
            shuffle=False,  # the tf.data pipeline shuffles (seeded)
        )
    except (KeyboardInterrupt, Exception) as exc:
        raise _training_failure(run, exc, config) from None


def _training_failure(
    run: RunDir | None, exc: BaseException, config: dict, multi_worker: bool = False
) -> BaseException:
    """What to raise when training stops: Ctrl-C, a non-finite loss and bad files as flexplat errors
    (resumable where that helps); ``run`` is marked interrupted or failed when run.json can still be written.

    A file that went bad after the quick check raises inside tf.data (a TensorFlow error naming the
    DataError); in multi-worker training any other TensorFlow error means a worker was lost. Anything
    else (e.g. a plugin's callback raised: the CLI names the plugin) is raised as it is.
    """
    where = run.path if run is not None else "RUN_DIR"
    error: BaseException = exc
    if isinstance(exc, KeyboardInterrupt):
        error = FlexplatError(f"interrupted; continue with `flexplat train --resume {where}`")
    elif isinstance(exc, NonFiniteLoss):
        kept = ResumeState(run).load()["epoch"] if run is not None and run.model_path.is_file() else None
        error = FlexplatError(non_finite_message(exc, where, kept, config))
    elif type(exc).__module__.startswith("tensorflow") and "DataError" in str(exc):
        message = str(exc).split("DataError:", 1)[-1].strip().splitlines()[0]
        error = DataError(f"{message} (fix the file, then `flexplat train --resume {where}`)")
    elif multi_worker and type(exc).__module__.startswith("tensorflow"):
        error = worker_lost(exc)
    if run is not None:
        with contextlib.suppress(FlexplatError):  # not when the disk is full
            run.update_info(status="interrupted" if isinstance(exc, KeyboardInterrupt) else "failed")
    return error


def _record_end(run: RunDir, model: Any, named: dict, context: RunContext, info: dict, epochs: int,
                seconds: float) -> None:  # fmt: skip
    if not run.model_path.is_file():
        save_for_inference(model, run.model_path)
    checkpoint = named.get("checkpoint")
    best = checkpoint.flexplat_state() if checkpoint is not None else {}
    run.update_info(
        status="completed",
        finished=time.strftime("%Y-%m-%dT%H:%M:%S"),
        epochs_completed=epochs,
        train_seconds=round(info.get("train_seconds", 0) + seconds, 1),
        best={"monitor": context.monitor, **best},
    )
