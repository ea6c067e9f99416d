"""The `flexplat` command line: parse, call one function, print."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import click
from rich.console import Console

from flexplat.errors import FlexplatError
from flexplat.plugins import get_system
from flexplat.registry import KINDS
from flexplat.runtime import VERBOSE_ENV, configure_logging, quiet_training, require_tensorflow, verbose
from flexplat.version import __version__

F = TypeVar("F", bound=Callable[..., Any])


class FlexplatGroup(click.Group):
    """A click group that shows flexplat errors as one clear message, not a traceback."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except FlexplatError as exc:
            raise click.ClickException(str(exc)) from None
        except (click.exceptions.ClickException, click.exceptions.Exit, click.exceptions.Abort):
            raise
        except Exception as exc:  # a plugin's code failed while a command ran: name the plugin, not a traceback
            blamed = None if verbose() else get_system().blame(exc)
            if blamed is None:
                raise
            plugin, where = blamed
            raise click.ClickException(
                f"plugin '{plugin.name}' ({plugin.distribution} {plugin.version}) failed: {type(exc).__name__}: "
                f"{exc} (at {where}); report it to the plugin's authors, or run without what it provides "
                f"(`flexplat --verbose ...` shows the traceback)"
            ) from None


def console(stderr: bool = False) -> Console:
    return Console(stderr=stderr, highlight=False)


class RootGroup(FlexplatGroup):
    """The root group: adds the commands that plugins register, once per plugin system."""

    _system = None
    _core: frozenset[str] = frozenset()

    def _load_plugin_commands(self) -> None:
        system = get_system()
        if self._system is system:
            return
        if self._system is None:
            self._core = frozenset(self.commands)
        self.commands = {name: cmd for name, cmd in self.commands.items() if name in self._core}
        self._system = system
        system.add_commands(self)

    def list_commands(self, ctx: click.Context) -> list[str]:
        self._load_plugin_commands()
        return super().list_commands(ctx)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        self._load_plugin_commands()
        return super().get_command(ctx, name)


def config_layer_options(command: F) -> F:
    """Add the config layers a command reads: ``--config FILE`` and repeatable ``--set KEY=VALUE``."""
    command = click.option(
        "--set", "sets", multiple=True, metavar="KEY=VALUE", help="Override one key, e.g. train.epochs=5 (repeatable)."
    )(command)
    return click.option(
        "--config", "config_file", type=click.Path(dir_okay=False), help="User YAML layered on the project's defaults."
    )(command)


@click.group(cls=RootGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="flexplat")
@click.option(
    "--verbose", is_flag=True,
    help=f"Show the libraries' own logs (TensorFlow, OpenCV) and plugin tracebacks; or set {VERBOSE_ENV}=1.",
)  # fmt: skip
def cli(verbose: bool) -> None:
    """flexplat: train, evaluate and run segmentation models from plugins.

    \b
    Quick start (no download needed):
      flexplat train leukocyte --demo
      flexplat infer --images projects/leukocyte/mini_test/images
    """
    configure_logging(verbose)


@cli.command(name="list")
@click.option("--kind", type=click.Choice(KINDS), help="Only items of this kind.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable JSON (stable schema).")
def list_command(kind: str | None, as_json: bool) -> None:
    """List installed models, codecs, callbacks and projects, and failed plugins."""
    from flexplat.listing import collect, render_list

    data = collect(get_system(), kind)
    if as_json:
        click.echo(json.dumps(data, indent=2))
    else:
        render_list(data, console())


@cli.command()
@click.argument("name")
@click.option("--kind", type=click.Choice(KINDS), help="Disambiguate when several kinds share NAME.")
def info(name: str, kind: str | None) -> None:
    """Describe one item: what it is, its options and defaults."""
    from flexplat.listing import render_entry
    from flexplat.registry import unknown_name_error

    registry = get_system().registry()
    if kind:
        entries = [registry.entry(kind, name)]
    else:
        entries = registry.find(name)
        if not entries:
            known = sorted({e.name for e in registry.entries()})
            raise unknown_name_error(None, name, known)
    for entry in entries:
        render_entry(entry, console())


@cli.group(cls=FlexplatGroup)
def config() -> None:
    """Show effective configs."""


@config.command(name="show")
@click.argument("project", required=False)
@config_layer_options
@click.option("--demo", is_flag=True, help="Include the project's demo layer.")
def config_show(project: str | None, config_file: str | None, sets: tuple[str, ...], demo: bool) -> None:
    """Print the effective, validated config of PROJECT (and/or --config FILE) as YAML."""
    from flexplat.config import dump_yaml, resolve

    if not project and not config_file:
        raise click.UsageError("give a PROJECT or --config FILE")
    click.echo(dump_yaml(resolve(project, config_file, sets, demo=demo)), nl=False)


@config.command(name="import")
@click.argument("path", type=click.Path(dir_okay=False))
@click.option("--out", type=click.Path(dir_okay=False), help="YAML to write (default: <NAME>.yaml here).")
@click.option("--name", help="Label of the imported config (default: the original file's folder name).")
@click.option("--overwrite", is_flag=True, help="Replace an existing --out file.")
@click.option("--weights", type=click.Path(dir_okay=False), help="The original's trained best_model.h5 to adopt.")
@click.option("--run-out", type=click.Path(file_okay=False), help="With --weights: the run folder to make for infer.")
def config_import(path: str, out: str | None, name: str | None, overwrite: bool, weights, run_out) -> None:
    """Import an original experiment's train_eval_infer.config (and its trained weights) as flexplat YAML."""
    from pathlib import Path

    from flexplat.migrate import import_original_config, render_import, write_config

    if bool(weights) != bool(run_out):
        raise click.UsageError("--weights and --run-out go together: the run folder holds the adopted model")
    if run_out and Path(run_out).is_dir() and any(Path(run_out).iterdir()):
        raise click.UsageError(f"--run-out {run_out}: the folder already holds files; choose a new one")
    result = import_original_config(path, name)
    label = name or Path(path).resolve().parent.name
    target = write_config(result, out or f"{label}.yaml", overwrite=overwrite, name=label)
    render_import(result, target, console())
    if weights:
        from flexplat.engine.adopt import adopt_weights

        run = adopt_weights(target, Path(weights), Path(run_out), console=console())
        console().print(f"Run folder: [bold]{run.path}[/]  (`flexplat infer --run {run.path} --images DIR`)")


class GenerateGroup(FlexplatGroup):
    """`flexplat generate PROJECT`: one subcommand per project that ships a generator."""

    def _generators(self) -> dict[str, click.Command]:
        registry = get_system().registry()
        return {e.name: e.item.generate for e in registry.entries("project") if e.item.generate is not None}

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(self._generators())

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        return self._generators().get(name)


@cli.group(cls=GenerateGroup)
def generate() -> None:
    """Generate a project's dataset (from raw downloads or synthetic)."""


def _explicit_options(data: str | None, epochs: int | None, batch_size: int | None, seed: int | None) -> dict:
    """The explicit-option layer of the config (the highest one)."""
    options: dict = {}
    if data is not None:
        options.setdefault("data", {})["root"] = data
    for key, value in (("epochs", epochs), ("batch_size", batch_size), ("seed", seed)):
        if value is not None:
            options.setdefault("train", {})[key] = value
    return options


@cli.command()
@click.argument("project", required=False)
@config_layer_options
@click.option("--data", type=click.Path(file_okay=False), help="Dataset folder (data.root).")
@click.option("--epochs", type=click.IntRange(min=1), help="Maximum epochs (train.epochs).")
@click.option("--batch-size", type=click.IntRange(min=1), help="Images per step (train.batch_size).")
@click.option("--seed", type=int, help="Seed for Python, NumPy and TensorFlow (train.seed).")
@click.option("--out", type=click.Path(file_okay=False), help="Run folder (default runs/<project>/<time>).")
@click.option("--resume", "resume", type=click.Path(file_okay=False), help="Continue an interrupted run folder.")
@click.option(
    "--init", "init", type=click.Path(file_okay=False),
    help="Start from this trained run's weights (fine-tuning; same classes and model).",
)  # fmt: skip
@click.option(
    "--init-weights", type=click.Path(dir_okay=False),
    help="Start from another program's weight file, e.g. the original experiment's best_model.h5.",
)  # fmt: skip
@click.option("--demo", is_flag=True, help="Train the project's demo config on generated demo data.")
@click.option(
    "--strategy", type=click.Choice(["auto", "one", "mirrored", "multi-worker"]),
    help="tf.distribute strategy (train.strategy): multi-worker reads TF_CONFIG or Slurm; also with --resume.",
)  # fmt: skip
@click.option("--evaluate/--no-evaluate", default=True, help="Evaluate on the test split afterwards.")
def train(project, config_file, sets, data, epochs, batch_size, seed, out, resume, init, init_weights, demo,
          strategy, evaluate) -> None:  # fmt: skip
    """Train PROJECT (or the dataset a --config file describes) into a run folder."""
    from pathlib import Path

    from flexplat.config import resolve
    from flexplat.engine.evaluate import evaluate_run, render_evaluation
    from flexplat.engine.train import train as train_run

    require_tensorflow("`flexplat train`")
    out_console = console()
    if resume:
        given = (project, config_file, sets, data, epochs, batch_size, seed is not None, demo, init, init_weights)
        if any(given):
            raise click.UsageError("--resume continues a run with its own config: give no other config options")
        with quiet_training():
            run = train_run(resume=Path(resume), console=out_console, strategy=strategy)
    else:
        if not project and not config_file:
            raise click.UsageError("give a PROJECT (see `flexplat list --kind project`) or --config FILE")
        if init and init_weights:
            raise click.UsageError("give --init RUN_DIR or --init-weights FILE, not both")
        options = _explicit_options(data, epochs, batch_size, seed)
        config = resolve(project, config_file, sets, options, demo=demo)
        out_path, init_path = (Path(out) if out else None), (Path(init) if init else None)
        weights = Path(init_weights) if init_weights else None
        with quiet_training():
            run = train_run(config, out=out_path, init=init_path, demo=demo, console=out_console,
                            init_weights=weights, strategy=strategy)  # fmt: skip
    if run is None:
        out_console.print("Training finished on this worker (the chief wrote the run folder and evaluates it)")
        return
    out_console.print(f"Training finished: [bold]{run.path}[/]")
    if evaluate:
        figures = evaluate_run(run, "test", console=out_console)
        if figures is not None:
            render_evaluation(figures, out_console)


def prediction_options(command: Callable) -> Callable:
    """The scale and test-time-augmentation options shared by ``infer`` and ``evaluate``."""
    options = [
        click.option(
            "--diameter",
            type=click.FloatRange(min=0, min_open=True),
            help="Object diameter in the images' pixels (default: estimated with the model).",
        ),
        click.option(
            "--scale-per-image",
            is_flag=True,
            help="Scale each image by its own estimated object size (default: one scale for the folder).",
        ),
        click.option(
            "--rescale/--no-rescale",
            default=True,
            show_default=True,
            help="Bring images to the run's training scale (--no-rescale: resize each image to the model input).",
        ),
        click.option("--tta", is_flag=True, help="Average predictions over flips and right-angle turns."),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def _scale_settings(settings: dict) -> dict:
    """CLI option names -> :class:`flexplat.engine.prediction.InferSettings` field names."""
    settings = dict(settings)
    settings["per_image_scale"] = settings.pop("scale_per_image")
    return settings


def backend_option(command: Callable) -> Callable:
    """``--backend``, shared by ``infer`` and ``evaluate``."""
    return click.option(
        "--backend", type=click.Choice(["auto", "tensorflow", "onnx"]), default="auto", show_default=True,
        help="auto: the ONNX export (RUN/export/onnx or --run EXPORT) when onnxruntime is installed, else TensorFlow.",
    )(command)  # fmt: skip


@cli.command(name="evaluate")
@click.argument("run_dir", type=click.Path(file_okay=False))
@click.option("--split", type=click.Choice(["test", "valid", "train"]), default="test", show_default=True)
@click.option(
    "--data", type=click.Path(file_okay=False),
    help="Score EVERY labelled image of this folder instead (images + masks, or any codec's layout).",
)  # fmt: skip
@config_layer_options
@backend_option
@prediction_options
def evaluate_command(run_dir: str, split: str, data: str | None, config_file, sets, backend, **settings) -> None:
    """Per-class Dice/IoU, whole-object Dice/IoU and object class accuracy of a trained run."""
    from flexplat.engine.evaluate import evaluate_run, render_evaluation
    from flexplat.engine.rundir import RunDir

    if (config_file or sets) and data is None:
        raise click.UsageError("--config/--set describe a --data folder; give --data DIR too")
    require_tensorflow("`flexplat evaluate`")
    figures = evaluate_run(
        RunDir.open(run_dir), split, data=data, config_file=config_file, sets=sets, console=console(),
        required=True, settings=_scale_settings(settings), backend=backend,
    )  # fmt: skip
    render_evaluation(figures, console())


class InferGroup(FlexplatGroup):
    """``flexplat infer --images DIR ...`` segments a folder; ``flexplat infer merge`` joins shard summaries."""

    def format_usage(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        formatter.write_usage(ctx.command_path, "--images DIR [OPTIONS]  |  merge DIR... [--out DIR]")


@cli.group(name="infer", cls=InferGroup, invoke_without_command=True)
@click.option("--images", type=click.Path(file_okay=False), help="Folder of images to segment (required).")
@click.option(
    "--run", "run_dir", type=click.Path(file_okay=False),
    help="Run folder or export folder (`flexplat export`); default: the latest completed run.",
)  # fmt: skip
@click.option("--output", type=click.Path(file_okay=False), help="Output folder (default: RUN/predictions/NAME).")
@click.option("--overlay/--no-overlay", default=True, show_default=True, help="Also write image+mask overlays.")
@click.option("--index-masks", is_flag=True, help="Also write class-index masks (<stem>_index.png).")
@click.option(
    "--tile/--no-tile", default=None,
    help="Force tiled / whole-image inference after scaling (default: config infer.tile).",
)  # fmt: skip
@click.option("--tile-size", type=click.IntRange(min=1), help="Tile side in pixels (default: the model input).")
@click.option(
    "--batch-size",
    type=click.IntRange(min=1),
    help="Images or tiles per batch (default: config infer.batch_size within infer.max_batch_pixels).",
)
@click.option("--overwrite", is_flag=True, help="Replace existing output files.")
@backend_option
@click.option(
    "--shard", metavar="I/N",
    help="Only shard I of N (0 <= I < N) of the images, chosen by a hash of each file name; join with `infer merge`.",
)  # fmt: skip
@prediction_options
@click.pass_context
def infer_command(ctx: click.Context, images, run_dir, output, tile, backend, shard, **settings) -> None:
    """Segment a folder of images at the run's scale: colour masks, overlays and a summary at the original sizes."""
    if ctx.invoked_subcommand is not None:
        if images or shard:
            raise click.UsageError(f"`infer {ctx.invoked_subcommand}` takes its own options only")
        return
    if not images:
        raise click.UsageError("Missing option '--images' (the folder of images to segment)")
    from flexplat.engine.infer import render_summary, run_inference

    tile_mode = None if tile is None else ("always" if tile else "never")
    summary = run_inference(
        run_dir, images, output, tile=tile_mode, console=console(), backend=backend, shard=shard,
        **_scale_settings(settings),
    )  # fmt: skip
    render_summary(summary, console())


@infer_command.command(name="merge")
@click.argument("folders", nargs=-1, required=True, type=click.Path(file_okay=False))
@click.option("--out", type=click.Path(file_okay=False), help="Folder of the merged summary (default: the one FOLDER).")
@click.option("--overwrite", is_flag=True, help="Replace an existing summary.csv/summary.json in --out.")
def infer_merge(folders: tuple[str, ...], out: str | None, overwrite: bool) -> None:
    """Merge the summaries of `infer --shard I/N` runs into one summary.csv/.json equal to a full run's."""
    from pathlib import Path

    from flexplat.engine.infer import SUMMARY_CSV, merge_shards

    summary = merge_shards([Path(f) for f in folders], Path(out) if out else None, overwrite)
    console().print(
        f"Merged {summary.processed} segmented and {len(summary.skipped)} skipped images from the shards into "
        f"{summary.output_dir / SUMMARY_CSV}"
    )


@cli.command(name="export")
@click.argument("run_dir", type=click.Path(file_okay=False))
@click.option("--format", "fmt", type=click.Choice(["onnx", "saved_model"]), default="onnx", show_default=True)
@click.option("--out", type=click.Path(file_okay=False), help="Export folder (default: RUN_DIR/export/FORMAT).")
@click.option("--overwrite", is_flag=True, help="Replace an existing export folder.")
@click.option(
    "--large-model/--in-memory", "large_model", default=None,
    help="ONNX route: via a SavedModel with external weights (default for models over 256 MB of weights).",
)  # fmt: skip
def export_command(run_dir: str, fmt: str, out: str | None, overwrite: bool, large_model: bool | None) -> None:
    """Export a run's model (ONNX or SavedModel) with a manifest, for `flexplat infer --run EXPORT`."""
    from flexplat.engine.export import export_run
    from flexplat.engine.rundir import RunDir

    require_tensorflow("`flexplat export`")
    result = export_run(RunDir.open(run_dir), fmt, out, overwrite=overwrite, large_model=large_model)
    for note in result.tidied:
        click.echo(f"Interrupted export: {note}")
    click.echo(f"Exported {fmt} to {result.path} ({result.size_bytes / 1e6:.1f} MB, {result.seconds:.1f} s)")
    if result.max_abs_difference is not None:
        shape = "x".join(str(v) for v in result.probe_shape)
        click.echo(f"ONNX Runtime vs Keras on a {shape} probe: max |difference| {result.max_abs_difference:.2e}")


@cli.group(cls=FlexplatGroup)
def data() -> None:
    """Inspect and validate datasets."""


@data.command(name="check")
@click.argument("target", required=False)
@click.option("--data", "data_dir", type=click.Path(file_okay=False), help="Dataset folder (data.root).")
@config_layer_options
@click.option("--lenient", is_flag=True, help="Count unusable pairs as skipped instead of errors.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable JSON report instead of tables.")
def data_check(
    target: str | None, data_dir: str | None, config_file: str | None, sets, lenient: bool, as_json: bool
) -> None:
    """Check every pair of a dataset: TARGET is a project name or a dataset folder.

    Reports pairs per split, unpaired files, size mismatches, corrupt files, converted
    channels, class histograms and snapped mask colours; exits non-zero on errors.
    """
    from flexplat.data.check import check_dataset
    from flexplat.engine.data import check_target_config
    from flexplat.reports import render_check_report

    config, original_id = check_target_config(target, data_dir, config_file, sets, lenient)
    report = check_dataset(config, original_id=original_id, console=None if as_json else console())
    if as_json:
        click.echo(json.dumps(report.to_dict(), indent=2))
    else:
        render_check_report(report, console())
    if not report.ok:
        raise click.exceptions.Exit(1)


def main() -> None:
    configure_logging()  # before any library loads; `--verbose` may turn the logs back on
    for stream in (sys.stdout, sys.stderr):  # file names that are not UTF-8 print as their own bytes
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="surrogateescape")
    try:
        cli()
    except FlexplatError as exc:  # e.g. strict mode: a plugin failed while commands were loaded
        console(stderr=True).print(f"[bold red]Error:[/] {exc}")
        sys.exit(1)


if __name__ == "__main__":
    main()
