"""What a callback factory receives: everything about the run being trained."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from rich.console import Console

from flexplat.engine.rundir import RunDir
from flexplat.specs import ClassInfo


@dataclass
class RunContext:
    """The run being trained: folder, resolved config, classes, codec and data pairs per split.

    ``splits`` maps "train"/"valid"/"test" to lists of :class:`flexplat.Pair`. ``initial_epoch`` is
    the number of epochs already completed (non-zero when resuming).
    """

    run: RunDir
    config: dict
    classes: list[ClassInfo]
    codec: Any
    splits: dict[str, list[Any]]
    console: Console = field(default_factory=Console)
    initial_epoch: int = 0

    @property
    def monitor(self) -> str:
        return self.config["train"]["monitor"]

    @property
    def image_size(self) -> tuple[int, int]:
        height, width = self.config["model"]["image_size"]
        return height, width
