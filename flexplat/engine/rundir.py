"""The run folder: the one module that writes and reads it.

A run folder is self-describing: ``evaluate`` and ``infer`` need nothing else.

    config.yaml          the resolved, validated config of the run
    run.json             status, versions, seed, dataset manifest hash, timings, epochs, best
    model.keras          the best model on the monitored metric
    resume/              last-epoch weights + optimizer state and callback state (for --resume)
    metrics.csv          loss and every metric, train and valid, one row per epoch
    plots/*.png          loss and metric curves
    tensorboard/         TensorBoard logs
    epoch_infer/*.png    input | ground truth | prediction for a few images, one file per epoch
    evaluation.json      figures of `flexplat evaluate` (one key per split)
    confusion_matrix_<split>.png
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from flexplat.atomic import atomic_write_text
from flexplat.config import dump_yaml, load_yaml
from flexplat.engine.scale import TrainingScale
from flexplat.errors import ConfigError, FlexplatError
from flexplat.options import validate
from flexplat.schema import SCHEMA
from flexplat.specs import ClassInfo, classes_from_config
from flexplat.version import __version__

RUNS_ROOT = Path("runs")
CONFIG = "config.yaml"
RUN_INFO = "run.json"
MODEL = "model.keras"


@dataclass(frozen=True)
class RunDir:
    """A run folder on disk."""

    path: Path

    # -- paths -----------------------------------------------------------------------------
    @property
    def model_path(self) -> Path:
        return self.path / MODEL

    @property
    def resume_dir(self) -> Path:
        return self.path / "resume"

    @property
    def metrics_csv(self) -> Path:
        return self.path / "metrics.csv"

    @property
    def plots_dir(self) -> Path:
        return self.path / "plots"

    @property
    def tensorboard_dir(self) -> Path:
        return self.path / "tensorboard"

    @property
    def epoch_infer_dir(self) -> Path:
        return self.path / "epoch_infer"

    @property
    def evaluation_path(self) -> Path:
        return self.path / "evaluation.json"

    # -- creation --------------------------------------------------------------------------
    @classmethod
    def create(cls, out: Path | None, project: str | None, runs_root: Path = RUNS_ROOT) -> RunDir:
        """A new, empty run folder: ``out`` if given (must not hold files) or a timestamped one."""
        if out is not None:
            out = Path(out)
            if out.exists() and any(out.iterdir()):
                raise FlexplatError(
                    f"{out}: the run folder already holds files; choose another --out, or continue "
                    f"that run with `flexplat train --resume {out}`"
                )
            out.mkdir(parents=True, exist_ok=True)
            return cls(out)
        base = Path(runs_root) / (project or "custom")
        stamp = time.strftime("%Y%m%d-%H%M%S")
        for n in range(1000):
            path = base / (stamp if n == 0 else f"{stamp}-{n}")
            try:
                path.mkdir(parents=True)
                return cls(path)
            except FileExistsError:
                continue
        raise FlexplatError(f"{base}: could not create a new run folder")

    @classmethod
    def open(cls, path: str | Path) -> RunDir:
        """An existing run folder; errors explain what is missing."""
        path = Path(path)
        if not path.is_dir():
            raise FlexplatError(f"{path}: no such run folder (runs are under {RUNS_ROOT}/<project>/)")
        if not (path / CONFIG).is_file():
            raise FlexplatError(f"{path}: not a flexplat run folder ({CONFIG} is missing)")
        run = cls(path)
        run.check_readable()
        return run

    def check_readable(self) -> None:
        """Errors naming the file when run.json or config.yaml is broken or from an incompatible flexplat."""
        try:
            info = self.info()
        except (ValueError, OSError) as exc:
            raise FlexplatError(f"{self.path / RUN_INFO}: unreadable ({exc}); the file is damaged") from None
        theirs = str((info.get("versions") or {}).get("flexplat", "unknown"))
        try:
            validate(SCHEMA, load_yaml(self.path / CONFIG))
        except ConfigError as exc:
            origin = f"written by flexplat {theirs}, this is {__version__}" if theirs != __version__ else "damaged"
            raise FlexplatError(
                f"{self.path / CONFIG}: this run folder cannot be read ({origin}): {exc}; "
                f"use flexplat {theirs} for this run, or train it again"
            ) from None

    # -- config and info -------------------------------------------------------------------
    def write_config(self, config: Mapping[str, Any]) -> None:
        atomic_write_text(self.path / CONFIG, dump_yaml(config))

    def config(self) -> dict:
        with open(self.path / CONFIG, encoding="utf-8") as handle:
            return yaml.safe_load(handle)

    def classes(self) -> list[ClassInfo]:
        return classes_from_config(self.config()["classes"])

    def info(self) -> dict:
        path = self.path / RUN_INFO
        if not path.is_file():
            return {}
        return json.loads(path.read_text(encoding="utf-8"))

    def update_info(self, **values: Any) -> dict:
        """Merge ``values`` into run.json (written atomically) and return the result."""
        info = {**self.info(), **values}
        atomic_write_text(self.path / RUN_INFO, json.dumps(info, indent=2, default=str) + "\n")
        return info

    def training_scale(self) -> TrainingScale | None:
        """The pixel scale the model learnt at (run.json ``scale``), or None for older runs."""
        recorded = self.info().get("scale")
        return TrainingScale.from_dict(recorded) if recorded else None

    @property
    def completed(self) -> bool:
        return self.info().get("status") == "completed" and self.model_path.is_file()

    # -- evaluation ------------------------------------------------------------------------
    def write_evaluation(self, split: str, figures: Mapping[str, Any]) -> None:
        data = {}
        if self.evaluation_path.is_file():
            data = json.loads(self.evaluation_path.read_text(encoding="utf-8"))
        data[split] = figures
        atomic_write_text(self.evaluation_path, json.dumps(data, indent=2) + "\n")

    def evaluation(self) -> dict:
        if not self.evaluation_path.is_file():
            return {}
        return json.loads(self.evaluation_path.read_text(encoding="utf-8"))


def latest_completed(runs_root: Path = RUNS_ROOT) -> RunDir:
    """The most recently finished run under ``runs_root`` (by run.json end time)."""
    candidates = []
    if Path(runs_root).is_dir():
        for config_file in Path(runs_root).glob(f"*/*/{CONFIG}"):
            run = RunDir(config_file.parent)
            if run.completed:
                candidates.append((run.info().get("finished", ""), str(run.path), run))
    if not candidates:
        raise FlexplatError(
            f"no completed training run found under {runs_root}/; train one first "
            f"(`flexplat train leukocyte --demo`) or pass --run RUN_DIR"
        )
    return max(candidates, key=lambda c: (c[0], c[1]))[2]
