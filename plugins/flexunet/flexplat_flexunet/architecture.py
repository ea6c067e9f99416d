"""The FlexUNet layout in pure Python: options, checks, per-level schedules, parameters and FLOPs.

Nothing here imports TensorFlow, so ``flexplat info`` and config validation stay fast. The
Keras builder (:mod:`flexplat_flexunet.model`) follows the same :func:`plan`, and the tests check
that :func:`describe` agrees with ``model.count_params()`` and with the built graph.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from flexplat import ConfigError, Option, validate_options

ACTIVATIONS = {"relu": "relu", "elu": "elu", "gelu": "gelu", "swish": "silu", "mish": "mish"}
"""Option value -> built-in Keras activation name (looked up, never evaluated)."""

NORMALIZATIONS = ("none", "batch", "group")


def make_options(**defaults: Any) -> dict[str, Option]:
    """The FlexUNet option schema with the given defaults (each preset has its own)."""
    return {
        "base_filters": Option(defaults["base_filters"], "filters of level 0; level i has base_filters*2^i", min=1),
        "base_kernels": Option(
            defaults["base_kernels"], "square kernel of level 0; level i uses max(3, base_kernels - 2i)", min=1
        ),
        "num_layers": Option(
            defaults["num_layers"], "levels including the bridge (num_layers-1 poolings)", min=2, max=12
        ),
        "dropout_rate": Option(
            defaults["dropout_rate"], "dropout step: level i drops dropout_rate*i between its convs", min=0.0, max=0.9
        ),
        "dilation": Option(defaults["dilation"], "square dilation of level 0, minus 1 per level, floor 1", min=1),
        "activation": Option(defaults["activation"], "activation of the convolutions", choices=tuple(ACTIVATIONS)),
        "input_normalize": Option(defaults["input_normalize"], "divide the input by 255 inside the model"),
        "normalization": Option(
            defaults["normalization"], "normalisation after each convolution", choices=NORMALIZATIONS
        ),
        "norm_groups": Option(
            defaults.get("norm_groups", 8),
            "groups of group normalisation (lowered to the largest divisor of the channel count)",
            min=1,
        ),
    }


def resolve_options(schema: Mapping[str, Option], options: Mapping[str, Any]) -> dict[str, Any]:
    """Fill defaults from ``schema`` and check every value; raise ConfigError naming the key."""
    for key in ("base_kernels", "dilation"):
        if isinstance(options.get(key), (list, tuple)):
            raise ConfigError(
                f"model.options.{key}: kernels and dilations are square: give one integer, got {options[key]!r}"
            )
    values = validate_options(schema, options, "model.options")
    top = values["dropout_rate"] * (values["num_layers"] - 1)
    if top >= 1.0:
        raise ConfigError(
            f"model.options.dropout_rate: {values['dropout_rate']} x {values['num_layers'] - 1} (deepest level) "
            f"= {top:g} must stay below 1; lower dropout_rate or num_layers"
        )
    return values


def size_multiple(options: Mapping[str, Any]) -> int:
    """Input sides must be multiples of 2^(num_layers-1) (one halving per pooling)."""
    return 2 ** (int(options["num_layers"]) - 1)


def check_input(image_size: tuple[int, int] | list[int], channels: int, num_classes: int, num_layers: int) -> None:
    """Raise ConfigError when the input shape or class count cannot work with ``num_layers`` levels."""
    if len(image_size) != 2:
        raise ConfigError(f"model.image_size: must be [height, width], got {list(image_size)}")
    multiple = 2 ** (num_layers - 1)
    for side, value in zip(("height", "width"), image_size, strict=True):
        if value < 1 or value % multiple:
            lower = value // multiple * multiple
            nearest = f"{lower} or {lower + multiple}" if lower > 0 else str(multiple)
            raise ConfigError(
                f"model.image_size: {side} {value} is not divisible by {multiple} = 2^(num_layers-1) "
                f"with num_layers {num_layers}; nearest valid sizes: {nearest}"
            )
    if channels < 1:
        raise ConfigError(f"model.channels: must be at least 1, got {channels}")
    if num_classes < 1:
        raise ConfigError(f"num_classes: must be at least 1, got {num_classes}")


@dataclass(frozen=True)
class Level:
    """One encoder level (and the matching decoder step): filters, kernel, dilation, dropout."""

    filters: int
    kernel: int
    dilation: int
    dropout: float


def plan(options: Mapping[str, Any]) -> list[Level]:
    """Per-level schedule: filters F*2^i, kernel max(3, K-2i), dilation max(1, d-i), dropout D*i."""
    f, k, d, rate = options["base_filters"], options["base_kernels"], options["dilation"], options["dropout_rate"]
    return [Level(f * 2**i, max(3, k - 2 * i), max(1, d - i), rate * i) for i in range(int(options["num_layers"]))]


def group_count(channels: int, groups: int) -> int:
    """The largest divisor of ``channels`` not above ``groups`` (GroupNormalization needs a divisor)."""
    return max(g for g in range(1, min(groups, channels) + 1) if channels % g == 0)


def describe_resolved(image_size: tuple[int, int], channels: int, num_classes: int, options: Mapping) -> dict:
    """Parameters and FLOPs (2 x multiply-adds of convolutions and transposed convolutions)."""
    levels = plan(options)
    norm = {"none": 0, "batch": 4, "group": 2}[options["normalization"]]  # parameters per channel
    h, w = image_size
    params = 0
    macs = 0

    def conv(cin: int, cout: int, k: int, pixels: int) -> None:
        nonlocal params, macs
        params += k * k * cin * cout + cout + norm * cout
        macs += pixels * k * k * cin * cout

    cin = channels
    for i, level in enumerate(levels):
        pixels = (h >> i) * (w >> i)
        conv(cin, level.filters, level.kernel, pixels)
        conv(level.filters, level.filters, level.kernel, pixels)
        cin = level.filters
    for i in range(len(levels) - 2, -1, -1):
        level = levels[i]
        pixels = (h >> i) * (w >> i)
        # transposed 2x2 stride 2: every output pixel receives one tap per input channel
        params += 4 * cin * level.filters + level.filters
        macs += pixels * cin * level.filters
        conv(2 * level.filters, level.filters, level.kernel, pixels)
        conv(level.filters, level.filters, level.kernel, pixels)
        cin = level.filters
    params += cin * num_classes + num_classes
    macs += h * w * cin * num_classes
    return {"parameters": int(params), "flops": float(2 * macs)}
