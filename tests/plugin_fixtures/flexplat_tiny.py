"""A throwaway plugin for the core's own tests: one tiny model, codec and project.

It uses only the public API, like any third-party plugin. tests/conftest.py registers it for
every test in tests/ (in-process) and installs it as the distribution ``flexplat-tiny`` for tests
that start ``flexplat`` in a subprocess, so the core's tests never need a shipped plugin.
"""

from __future__ import annotations

from pathlib import Path

import click

import flexplat

MODEL = "tiny-unet"
CODEC = "tiny-grey"
PROJECT = "tiny"
BACKGROUND = "tiny-stripes"


def build_model(image_size, channels, num_classes, filters=4, depth=1):
    """A U-Net with ``depth`` poolings of ``filters * 2**level`` channels (a few hundred weights)."""
    import keras

    x = inputs = keras.Input((*image_size, channels))
    x = keras.layers.Rescaling(1 / 255)(x)
    skips = []
    for level in range(depth):
        x = keras.layers.Conv2D(filters * 2**level, 3, padding="same", activation="relu")(x)
        skips.append(x)
        x = keras.layers.MaxPooling2D()(x)
    x = keras.layers.Conv2D(filters * 2**depth, 3, padding="same", activation="relu")(x)
    for level, skip in reversed(list(enumerate(skips))):
        x = keras.layers.UpSampling2D()(x)
        x = keras.layers.Concatenate()([x, skip])
        x = keras.layers.Conv2D(filters * 2**level, 3, padding="same", activation="relu")(x)
    outputs = keras.layers.Conv2D(num_classes, 1, activation="softmax")(x)
    return keras.Model(inputs, outputs, name="tiny_unet")


MODEL_OPTIONS = {
    "filters": flexplat.Option(4, "filters of the first level", min=1),
    "depth": flexplat.Option(1, "poolings: image sides must be multiples of 2**depth", min=0, max=5),
}


def _grey_codec(classes, options):
    import numpy as np

    # defined on first use: flexplat.Codec loads NumPy, which `flexplat list` must not import
    class GreyCodec(flexplat.Codec):
        """Images + grey masks that paint class ``i`` with the grey level ``i * step``."""

        name = CODEC

        def read_mask(self, pair):
            grey = flexplat.read_gray(pair.mask)
            step = self.options["step"]
            bad = (grey % step != 0) | (grey >= step * self.num_classes)
            if bad.any():
                raise flexplat.DataError(f"{pair.mask}: grey level {int(grey[bad][0])} is no class (step {step})")
            return flexplat.MaskRead((grey // step).astype(np.uint8))

        def write(self, image_path, mask_path, image, mask):
            flexplat.write_png(image_path, image)
            flexplat.write_png(mask_path, (np.asarray(mask) * self.options["step"]).astype(np.uint8))

    return GreyCodec(classes, options)


CODEC_OPTIONS = {"step": flexplat.Option(100, "grey-level step between classes", min=1)}

CONFIG = {
    "classes": [
        {"name": "background", "color": [0, 0, 0]},
        {"name": "class1", "color": [255, 0, 0]},
        {"name": "class2", "color": [0, 255, 0]},
    ],
    "data": {"codec": CODEC, "train": {"images": "train/images", "masks": "train/masks"}},
    "model": {"name": MODEL, "image_size": [32, 32], "options": {"depth": 2}},
    "train": {"epochs": 2, "batch_size": 4},
}
DATA_HINT = "Tiny data: make some with `flexplat generate tiny --out DIR`."


@click.command(name=PROJECT)
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Dataset folder to write.")
@click.option("--count", default=6, show_default=True, help="Pairs to write.")
def generate(out: str, count: int) -> None:
    """Write a tiny synthetic dataset in the tiny-grey format."""
    from flexplat.testing import write_dataset

    write_dataset(Path(out), CONFIG["classes"], n=count, codec=CODEC)
    click.echo(f"wrote {count} pairs to {out}")


@flexplat.hookimpl
def register_models(register):
    register(
        flexplat.ModelSpec(MODEL, "A tiny U-Net for tests.", build_model, MODEL_OPTIONS, lambda o: 2 ** o["depth"])
    )
    register(
        flexplat.ModelSpec(
            f"{MODEL}-any-size",
            "The tiny U-Net, declared fully convolutional: inference may feed it any multiple of its size.",
            build_model,
            MODEL_OPTIONS,
            lambda o: 2 ** o["depth"],
            fully_convolutional=True,
        )
    )


@flexplat.hookimpl
def register_codecs(register):
    register(
        flexplat.CodecSpec(CODEC, "Images + grey masks, class i painted as grey i*step.", _grey_codec, CODEC_OPTIONS)
    )


def render_stripes(rng, size, object_diameter):
    """Dark stripes as wide as half an object on light glass: distractors for copy-paste tests."""
    import numpy as np

    height, width = size
    period = max(2, int(object_diameter))
    columns = (np.arange(width) + int(rng.integers(period))) % period < period // 2
    field = np.full((height, width, 3), 230, np.uint8)
    field[:, columns] = 90
    return field


@flexplat.hookimpl
def register_backgrounds(register):
    register(flexplat.BackgroundSpec(BACKGROUND, "Dark stripes on light glass, for tests.", render_stripes))


@flexplat.hookimpl
def register_projects(register):
    spec = flexplat.ProjectSpec(
        PROJECT, "Three classes on tiny images.", CONFIG, generate=generate, data_hint=DATA_HINT
    )
    register(spec)
