"""Built-in callbacks, registered through the same hook as third-party ones.

Only the specs live here (this module is imported by `flexplat list`); the Keras classes are
in :mod:`flexplat.engine.callbacks` and imported when a run builds them.
"""

from __future__ import annotations

from flexplat.hookspecs import hookimpl
from flexplat.options import Option
from flexplat.specs import CallbackSpec

MONITOR = Option(None, "metric to watch (default: train.monitor)", type=str)
MODE = Option("auto", "min, max or auto (max for dice/iou/accuracy names)", choices=("auto", "min", "max"))


def _factory(name: str):
    def build(context, options):
        from flexplat.engine import callbacks

        return getattr(callbacks, name)(context, options)

    build.__name__ = f"build_{name}"
    return build


SPECS = [
    CallbackSpec(
        name="checkpoint",
        description="Save the best model (on the monitored metric) as model.keras in the run folder.",
        factory=_factory("best_checkpoint"),
        options={"monitor": MONITOR, "mode": MODE},
    ),
    CallbackSpec(
        name="early_stopping",
        description="Stop when the monitored metric stops improving; restore the best weights.",
        factory=_factory("early_stopping"),
        options={
            "monitor": MONITOR,
            "mode": MODE,
            "patience": Option(10, "epochs without improvement before stopping", min=1),
            "min_delta": Option(0.0, "smallest change that counts as improvement", min=0.0),
            "restore_best_weights": Option(True, "end with the best epoch's weights"),
        },
    ),
    CallbackSpec(
        name="reduce_lr",
        description="Multiply the learning rate by `factor` after `patience` epochs without improvement.",
        factory=_factory("reduce_lr"),
        options={
            "monitor": MONITOR,
            "mode": MODE,
            "factor": Option(0.5, "learning-rate multiplier", min=0.0, max=1.0),
            "patience": Option(4, "epochs without improvement before reducing", min=1),
            "min_lr": Option(1e-7, "lower bound of the learning rate", min=0.0),
            "cooldown": Option(0, "epochs to wait after a reduction", min=0),
        },
    ),
    CallbackSpec(
        name="csv_plots",
        description="metrics.csv (every metric, train and valid, per epoch) and PNG plots in plots/.",
        factory=_factory("csv_plots"),
        options={"plots": Option(True, "draw PNG plots after every epoch")},
    ),
    CallbackSpec(
        name="tensorboard",
        description="TensorBoard logs in tensorboard/ (view with `tensorboard --logdir RUN_DIR/tensorboard`).",
        factory=_factory("tensorboard"),
        options={"histogram_freq": Option(0, "epochs between weight histograms (0 = off)", min=0)},
    ),
    CallbackSpec(
        name="epoch_change_infer",
        description="After every epoch, write input | truth | prediction of a few images to epoch_infer/.",
        factory=_factory("epoch_change_infer"),
        options={
            "num_images": Option(6, "how many images", min=1),
            "images": Option(
                None, "folder of images (masks in its sibling masks/); default: spread over the valid split", type=str
            ),
        },
    ),
    CallbackSpec(
        name="progress",
        description="A rich progress bar per epoch and a line of metrics after it.",
        factory=_factory("progress"),
        options={},
    ),
]


@hookimpl
def register_callbacks(register):
    for spec in SPECS:
        register(spec)
