"""Training guards: stop cleanly when the loss stops being a number.

The guard runs first among the callbacks after every training step. A NaN or infinite loss
raises :class:`NonFiniteLoss` before the epoch ends, so no callback saves the broken weights:
``model.keras`` keeps the best epoch so far and ``resume/`` the last completed one.
"""

from __future__ import annotations

import math
from typing import Any

from flexplat.errors import FlexplatError


class NonFiniteLoss(FlexplatError):
    """The training loss became NaN or infinite."""

    def __init__(self, epoch: int, step: int, value: float) -> None:
        self.epoch, self.step, self.value = epoch, step, value
        super().__init__(f"epoch {epoch}, step {step}: the training loss became {value}")


def non_finite_guard() -> Any:
    """A Keras callback raising :class:`NonFiniteLoss` at the first non-finite training loss."""
    import keras

    class StopOnNonFiniteLoss(keras.callbacks.Callback):
        epoch = 0

        def on_epoch_begin(self, epoch: int, logs=None) -> None:
            self.epoch = epoch + 1

        def on_train_batch_end(self, batch: int, logs=None) -> None:
            loss = (logs or {}).get("loss")
            if loss is not None and not math.isfinite(float(loss)):
                raise NonFiniteLoss(self.epoch, batch + 1, float(loss))

    return StopOnNonFiniteLoss()


def non_finite_message(exc: NonFiniteLoss, run_path: Any, kept_epoch: int | None, config: dict) -> str:
    """What stopped, what is kept, and what to change."""
    kept = (
        f"model.keras keeps the best weights of the epochs before (up to epoch {kept_epoch})"
        if kept_epoch
        else "no epoch completed, so no model was kept"
    )
    return (
        f"{run_path}: training stopped at {exc} (train.learning_rate is {config['train']['learning_rate']}); "
        f"{kept}. Lower train.learning_rate (or set train.clipvalue) and train again"
    )
