"""What a config may say: the core schema, augmentation and loss options (declarations only).

The config layer validates against these; the data and engine layers that implement augmentation
and losses import their option declarations from here, so the dependency points one way
(config < data < engine). Nothing here imports NumPy or TensorFlow.
"""

from __future__ import annotations

from typing import Any

from flexplat.errors import ConfigError
from flexplat.options import Option, validate

AUGMENT_SCHEMA: dict[str, Option] = {
    "flip": Option(False, "random horizontal and vertical flips (each with probability 0.5)"),
    "rot90": Option(False, "random rotation by 0/90/180/270 degrees (0/180 only when height != width)"),
    "rotate_degrees": Option(0.0, "random rotation of up to +/- this many degrees (0 = off)", min=0.0, max=180.0),
    "scale": Option(
        0.0,
        "scale jitter: random zoom by a factor drawn from 1 +/- this, in and out, image and mask alike, e.g. 0.2 "
        "= 0.8..1.2x (0 = off)",
        min=0.0,
        max=0.9,
    ),
    "translate": Option(0.0, "random shift of up to this fraction of each side (0 = off)", min=0.0, max=0.5),
    "elastic": Option(
        0.0,
        "elastic deformation strength alpha in pixels, Simard-style: displacement = alpha * Gaussian-smoothed "
        "uniform(-1, 1) noise (the original used 1300 with sigma 8-10 on 512 px images); 0 = off",
        min=0.0,
    ),
    "elastic_sigma": Option(8.0, "smoothness of the elastic field: Gaussian sigma in pixels", min=1.0, max=64.0),
    "brightness": Option(
        0.0, "random brightness shift of up to +/- this fraction of full scale (image only)", min=0.0, max=1.0
    ),
    "contrast": Option(0.0, "random contrast factor 1 +/- this (image only)", min=0.0, max=1.0),
    "saturation": Option(0.0, "random saturation factor 1 +/- this (image only)", min=0.0, max=1.0),
    "hue": Option(
        0.0, "random hue rotation of up to +/- this fraction of the colour circle (image only)", min=0.0, max=0.5
    ),
    "hed_scale": Option(
        0.0,
        "stain jitter (Tellez et al. 2018): each of the haematoxylin, eosin and DAB concentrations from "
        "Ruifrok-Johnston colour deconvolution is multiplied by a factor drawn from 1 +/- this (image only; "
        "Tellez: 0.05 light, 0.2 strong)",
        min=0.0,
        max=1.0,
    ),
    "hed_shift": Option(
        0.0,
        "stain jitter: each H, E, D concentration is shifted by up to +/- this, in natural-log optical density "
        "-ln(I/I0) (0.05 changes a white pixel's light by at most 5 %; Tellez: 0.05 light, 0.2 strong; image only)",
        min=0.0,
        max=1.0,
    ),
    "gamma": Option(
        0.0,
        "random gamma: the 0..1 image is raised to a power drawn log-uniformly from [1/(1+g), 1+g], e.g. 0.3 "
        "gives 0.77..1.3 (image only)",
        min=0.0,
        max=2.0,
    ),
    "blur_sigma": Option(
        0.0,
        "random Gaussian blur (defocus): sigma drawn uniformly from 0..this, in pixels (image only)",
        min=0.0,
        max=5.0,
    ),
    "noise_std": Option(
        0.0,
        "random additive Gaussian noise: per-image standard deviation drawn uniformly from 0..this, as a "
        "fraction of full scale (0.02 = 5 grey levels of 255; image only)",
        min=0.0,
        max=0.5,
    ),
    "jpeg_quality": Option(
        0,
        "random JPEG compression: quality drawn uniformly from [this, 100] (1..100; lower is harsher, e.g. 50); "
        "0 = off (image only)",
        min=0,
        max=100,
    ),
    "paste": Option(
        0.0,
        "copy-paste: chance that an image's objects are moved onto a background drawn by paste_background, at a "
        "random position (composited in optical density); shows the model what surrounds objects in other "
        "labs' images as background (0 = off)",
        min=0.0,
        max=1.0,
    ),
    "paste_background": Option(
        "",
        "the registered background that paste draws (`flexplat list --kind background`); required when paste > 0",
    ),
    "paste_empty": Option(
        0.0, "share of pasted images that show the background alone (no object, all-background mask)", min=0.0, max=1.0
    ),
    "object_fade": Option(
        0.0,
        "chance that the lighter part of each labelled object (below its Otsu threshold in optical density: a "
        "stained cell's cytoplasm) keeps only a random 10-100 % of its stain, as in labs whose stain leaves it "
        "pale (mask unchanged; runs before copy-paste; 0 = off)",
        min=0.0,
        max=1.0,
    ),
    "probability": Option(
        1.0,
        "chance that each enabled transform (rotation/scale/shift, elastic, each colour, stain, gamma, blur, "
        "noise and JPEG transform) is applied to an image; flips and rot90 are uniformly random anyway",
        min=0.0,
        max=1.0,
    ),
    "fill_mode": Option(
        "reflect",
        "how borders uncovered by rotation/zoom-out/shift are filled (the same for image and mask): reflect, "
        "nearest, or constant (black image, background mask)",
        choices=("reflect", "nearest", "constant"),
    ),
}

LOSSES: dict[str, str] = {
    "categorical_crossentropy": "pixel-wise categorical cross-entropy",
    "dice": "1 - soft Dice over foreground classes (background excluded), batch-wise",
    "ce_dice": "categorical cross-entropy + dice_weight x Dice loss",
    "focal": "multiclass focal loss -(1-p)^gamma log p",
}
"""Loss name -> one-line description."""

_CLASS_WEIGHTS = Option(None, "one weight per class, background first (null: all 1)", type=list, item_type=float)
_SMOOTH = Option(1.0, "added to the Dice numerator and denominator", min=0.0)


def loss_options_schema(name: str) -> dict[str, Option]:
    """The options ``train.loss_options`` accepts for loss ``name`` (no TensorFlow import)."""
    if name not in LOSSES:
        raise ConfigError(f"train.loss: unknown loss {name!r}; choose one of {', '.join(LOSSES)}")
    schema = {"class_weights": _CLASS_WEIGHTS}
    if name == "focal":
        schema["gamma"] = Option(2.0, "focusing exponent: higher ignores easy pixels more", min=0.0)
    if name in ("dice", "ce_dice"):
        schema["smooth"] = _SMOOTH
    if name == "ce_dice":
        schema["dice_weight"] = Option(1.0, "weight of the Dice term", min=0.0)
    return schema


STAIN_METHODS = ("none", "white-balance", "reinhard", "macenko")

STAIN_TARGET_SCHEMA: dict[str, Option] = {
    "background": Option(
        [235.0, 235.0, 235.0],
        "white-balance: the R, G, B (0..255) each image's background - its 99th-percentile brightness per "
        "channel - is mapped to (neutral grey-white by default)",
        item_type=float,
    ),
    "lab_mean": Option(
        [73.87, 3.56, 12.99], "Reinhard: target mean of CIELAB L* (0..100), a*, b* over an image", item_type=float
    ),
    "lab_std": Option(
        [19.16, 12.89, 13.18], "Reinhard: target standard deviation of L*, a*, b* (each > 0)", item_type=float
    ),
    "hematoxylin_od": Option(
        [0.647, 0.624, 0.439],
        "Macenko: haematoxylin stain vector, optical density of R, G, B (>= 0, normalised)",
        item_type=float,
    ),
    "eosin_od": Option(
        [0.348, 0.913, 0.213], "Macenko: eosin stain vector, optical density of R, G, B", item_type=float
    ),
    "max_concentrations": Option(
        [1.05, 2.344],
        "Macenko: target 99th-percentile concentration of haematoxylin and eosin (natural-log optical density)",
        item_type=float,
    ),
}
"""``data.stain_norm.target``. Defaults: white-balance to a neutral background; Reinhard and Macenko
fitted (flexplat.data.stain.fit_target) on the 300 Zheng ds1 and 26 KRD-WBC sample blood smears, each
dataset weighted equally; fit your own from your reference images."""

_STAIN_LENGTHS = {
    "background": 3,
    "lab_mean": 3,
    "lab_std": 3,
    "hematoxylin_od": 3,
    "eosin_od": 3,
    "max_concentrations": 2,
}


def check_stain_target(target: Any, path: str = "data.stain_norm.target") -> dict:
    """``target`` validated against :data:`STAIN_TARGET_SCHEMA`, defaults filled, lengths and signs checked."""
    values = validate(STAIN_TARGET_SCHEMA, target, path)
    for key, length in _STAIN_LENGTHS.items():
        value = values[key]
        if len(value) != length:
            raise ConfigError(f"{path}.{key}: must be a list of {length} numbers, got {value!r}")
        if key in ("background", "lab_std", "max_concentrations") and min(value) <= 0:
            raise ConfigError(f"{path}.{key}: every value must be positive, got {value!r}")
        if key.endswith("_od") and (min(value) < 0 or max(value) <= 0):
            raise ConfigError(f"{path}.{key}: must be non-negative and not all 0, got {value!r}")
    return values


def check_stain_norm(values: Any, path: str = "data.stain_norm") -> dict:
    """``data.stain_norm`` validated: ``{method, target}``, defaults filled, the target's lists checked."""
    checked = validate(SCHEMA["data"]["stain_norm"], values, path)
    checked["target"] = check_stain_target(checked["target"], f"{path}.target")
    return checked


_SPLIT = {
    "images": Option(None, "image folder or glob (e.g. train/*/images), relative to data.root", type=str),
    "masks": Option(None, "mask folder or glob, relative to data.root", type=str),
}

SCHEMA: dict[str, Any] = {
    "project": Option(None, "project this config belongs to (its defaults are the base layer)", type=str),
    "classes": Option(
        [], "classes in index order, first is background: [{name: str, color: [r, g, b]}]", item_type=dict
    ),
    "data": {
        "codec": Option("rgb-mask", "dataset codec name (see `flexplat list --kind codec`)"),
        "root": Option(None, "dataset folder; split paths are relative to it (--data)", type=str),
        "train": _SPLIT,
        "valid": _SPLIT,
        "test": _SPLIT,
        "split": {
            "valid": Option(0.15, "fraction of originals for validation (no valid folder)", min=0.0, max=0.9),
            "test": Option(0.15, "fraction of originals for test (no test folder)", min=0.0, max=0.9),
            "seed": Option(0, "seed of the split by original image"),
        },
        "codec_options": Option({}, "options of the codec (see `flexplat info CODEC`)"),
        "cache": Option(False, "keep decoded images in memory after the first epoch"),
        "lenient": Option(False, "skip (and count) unusable pairs instead of stopping"),
        "stain_norm": {
            "method": Option(
                "none",
                "stain normalisation of every image before augmentation (training) and before prediction "
                "(evaluate, infer): none, white-balance (each channel scaled so the image's background becomes "
                "target.background), reinhard (CIELAB mean/std) or macenko (stain vectors)",
                choices=STAIN_METHODS,
            ),
            "target": STAIN_TARGET_SCHEMA,
        },
    },
    "model": {
        "name": Option(
            None, "model name, named by the project or your config (see `flexplat list --kind model`)", type=str
        ),
        "image_size": Option([256, 256], "model input [height, width]", item_type=int),
        "channels": Option(3, "input channels", min=1),
        "options": Option({}, "options of the model (see `flexplat info MODEL`)"),
    },
    "train": {
        "epochs": Option(100, "maximum epochs", min=1),
        "batch_size": Option(2, "images per step (per replica: the global batch is this x replicas)", min=1),
        "steps_per_epoch": Option(None, "limit steps per epoch (default: one pass)", type=int),
        "optimizer": Option("adam", "optimizer", choices=("adam", "adamw", "sgd", "rmsprop")),
        "learning_rate": Option(7e-5, "initial learning rate", min=0.0),
        "clipvalue": Option(None, "clip each gradient element to +/- this value", type=float),
        "loss": Option("categorical_crossentropy", "loss name (see README: losses)"),
        "loss_options": Option({}, "options of the loss, e.g. class_weights"),
        "seed": Option(42, "seed for Python, NumPy and TensorFlow"),
        "augment": Option({}, "online augmentation options (see README: augmentation)"),
        "monitor": Option("val_loss", "metric that picks the best model"),
        "jit_compile": Option(False, "compile the model with XLA"),
        "strategy": Option(
            "auto",
            "tf.distribute strategy: one (this process, the default behaviour), mirrored (every local GPU), "
            "multi-worker (the processes named by TF_CONFIG or a Slurm job step), auto (multi-worker when "
            "TF_CONFIG or Slurm names several, mirrored with several GPUs, else one); batch_size is per replica",
            choices=("auto", "one", "mirrored", "multi-worker"),
        ),
        "collective_timeout": Option(
            300.0,
            "multi-worker: seconds a worker waits for the others in one exchange before the run fails "
            "(a dead or stuck worker), so a run never hangs",
            min=1.0,
        ),
        "callbacks": Option({}, "callbacks by name -> options, or false to disable"),
    },
    "infer": {
        "tile": Option(
            "auto",
            "tiled inference after scaling: auto (only images larger than max_side, or than a fixed-size "
            "model's input), always, never",
            choices=("auto", "always", "never"),
        ),
        "max_side": Option(
            1024,
            "images brought to the run's scale are predicted whole up to this side in pixels (fully "
            "convolutional models); larger ones in overlapping tiles",
            min=16,
        ),
        "tile_overlap": Option(0.25, "tile overlap as a fraction of the tile side", min=0.0, max=0.75),
        "min_object": Option(
            0.25,
            "predicted objects (connected non-background regions) narrower than this fraction of the run's "
            "small training objects (run.json scale.diameter_p10, equivalent diameter) become background: "
            "specks, not objects (0 = keep all)",
            min=0.0,
            max=1.0,
        ),
        "batch_size": Option(4, "images or tiles per prediction batch", min=1),
        "max_batch_pixels": Option(
            1048576,
            "a prediction batch holds at most this many input pixels, so large inputs go fewer at a time "
            "(1048576: four 512x512 images or one 1024x1024; a batch always holds at least one; 262144 sends "
            "512 px inputs one by one: 7 % less peak memory, 25 % more time per image for the full FlexUNet); "
            "an explicit --batch-size is kept",
            min=1,
        ),
        "overlay_alpha": Option(0.45, "mask opacity in overlays", min=0.0, max=1.0),
    },
}
