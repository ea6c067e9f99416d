"""Trained weights from outside flexplat: the original experiments' ``best_model.h5``.

``flexplat train --init-weights FILE`` starts training from such a file, and ``flexplat config import
... --weights FILE --run-out DIR`` turns it into a completed run folder that ``infer`` and ``evaluate``
use directly. The model plugin reads the file (``ModelSpec.load_weights``); the core names no model.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from rich.console import Console

from flexplat.atomic import atomic_write_with
from flexplat.config import resolve
from flexplat.engine.rundir import RunDir
from flexplat.errors import FlexplatError
from flexplat.plugins import get_registry


def load_foreign_weights(model: Any, config: dict, path: Path) -> str:
    """Load ``path`` into ``model`` (built from ``config``) through its model plugin; returns a summary."""
    return foreign_loader(config, path)(model, Path(path))


def foreign_loader(config: dict, path: Path) -> Any:
    """The model plugin's ``load_weights`` for ``config``'s model, after checking ``path`` exists (fail fast)."""
    path = Path(path)
    if not path.is_file():
        raise FlexplatError(f"--init-weights {path}: no such file")
    spec = get_registry().get("model", config["model"]["name"])
    if spec.load_weights is None:
        raise FlexplatError(
            f"--init-weights {path}: model '{spec.name}' cannot read weight files of other programs; "
            "start from a flexplat run with --init RUN_DIR instead"
        )
    return spec.load_weights


def build_with_weights(config: dict, weights: Path) -> tuple[Any, str]:
    """The config's model (uncompiled) with the foreign ``weights`` loaded."""
    spec = get_registry().get("model", config["model"]["name"])
    height, width = config["model"]["image_size"]
    model = spec.build((height, width), config["model"]["channels"], len(config["classes"]),
                       **config["model"]["options"])  # fmt: skip
    return model, load_foreign_weights(model, config, weights)


def adopt_weights(config_file: Path, weights: Path, out: Path, console: Console | None = None) -> RunDir:
    """A completed run folder at ``out`` holding the model of ``config_file`` with ``weights`` loaded.

    It records no training scale: ``infer`` resizes images to the model input, as the original did.
    """
    console = console or Console()
    config = resolve(config_file=config_file)
    model, summary = build_with_weights(config, weights)
    run = RunDir.create(out, config.get("project"))
    run.write_config(config)
    atomic_write_with(run.model_path, model.save, keep_suffix=True)
    now = time.strftime("%Y-%m-%dT%H:%M:%S")
    run.update_info(
        status="completed", started=now, finished=now, project=config.get("project"), scale=None,
        model={"name": config["model"]["name"], "parameters": int(model.count_params())},
        adopted={"weights": str(Path(weights).resolve()), "config": str(config_file)},
    )  # fmt: skip
    console.print(summary)
    return run
