"""FlexUNet: the reference parameter count, describe() vs the built graph, schedules, errors."""

from __future__ import annotations

import numpy as np
import pytest
from flexplat_flexunet.presets import MODELS

from flexplat import ConfigError

SPECS = {spec.name: spec for spec in MODELS}
FLEXUNET = SPECS["flexunet"]
SMALL = SPECS["flexunet-small"]
TINY = {"base_filters": 4, "base_kernels": 5, "num_layers": 3}


@pytest.fixture(scope="module")
def reference_model():
    """The leukocyte configuration (all defaults), built at 128x128 to save memory."""
    return FLEXUNET.build((128, 128), 3, 6)


def graph_flops(model) -> float:
    """2 x multiply-adds of every (transposed) convolution, read from the built layers."""
    import keras

    macs = 0
    for layer in model.layers:
        if isinstance(layer, keras.layers.Conv2DTranspose):
            _, h, w, cin = layer.input.shape
            kh, kw = layer.kernel_size
            macs += h * w * kh * kw * cin * layer.filters
        elif isinstance(layer, keras.layers.Conv2D):
            _, h, w, _ = layer.output.shape
            kh, kw = layer.kernel_size
            macs += h * w * kh * kw * layer.input.shape[-1] * layer.filters
    return 2.0 * macs


def test_leukocyte_reference_parameter_count(reference_model):
    assert reference_model.count_params() == 124_996_934
    assert reference_model.name == "flexunet"
    assert reference_model.output_shape == (None, 128, 128, 6)


def test_leukocyte_reference_describe():
    figures = FLEXUNET.describe((512, 512), 3, 6)
    assert figures["parameters"] == 124_996_934
    assert figures["flops"] == pytest.approx(115.7e9, rel=0.01)
    assert FLEXUNET.size_multiple({}) == 128


def test_reference_schedules(reference_model):
    convs = {layer.name: layer for layer in reference_model.layers}
    assert [convs[f"enc{i}_conv1"].kernel_size[0] for i in range(8)] == [9, 7, 5, 3, 3, 3, 3, 3]
    assert [convs[f"enc{i}_conv2"].filters for i in range(8)] == [16 * 2**i for i in range(8)]
    assert [convs[f"dec{i}_conv1"].kernel_size[0] for i in range(7)] == [9, 7, 5, 3, 3, 3, 3]
    assert convs["enc7_conv2"].output.shape[1:] == (1, 1, 2048)  # the bridge: 4x4 at 512, 1x1 at 128
    assert [convs[f"enc{i}_dropout"].rate for i in range(1, 8)] == pytest.approx([0.05 * i for i in range(1, 8)])
    assert "enc0_dropout" not in convs  # rate 0 at level 0
    assert not any("norm" in name for name in convs)
    assert convs["enc0_conv1"].input.name == "image"  # no /255 in the leukocyte config


def test_describe_flops_match_the_built_graph(reference_model):
    assert FLEXUNET.describe((128, 128), 3, 6)["flops"] == graph_flops(reference_model)


CONFIGS = [
    ("flexunet-small", (64, 64), 3, 6, {}),
    ("flexunet-small", (64, 96), 1, 1, {"normalization": "group", "activation": "mish"}),
    ("flexunet", (32, 32), 3, 4, {**TINY, "base_filters": 6, "normalization": "group", "norm_groups": 4}),
    ("flexunet", (32, 64), 1, 2, {**TINY, "normalization": "batch", "dilation": 3, "activation": "gelu"}),
    ("flexunet", (16, 16), 4, 1, {**TINY, "num_layers": 2, "base_kernels": 1, "activation": "elu"}),
    ("flexunet", (32, 32), 3, 3, {**TINY, "activation": "swish", "input_normalize": True, "dropout_rate": 0.2}),
]


@pytest.mark.parametrize(("name", "size", "channels", "classes", "options"), CONFIGS)
def test_describe_matches_built_model(name, size, channels, classes, options):
    spec = SPECS[name]
    model = spec.build(size, channels, classes, **options)
    figures = spec.describe(size, channels, classes, **options)
    assert figures["parameters"] == model.count_params()
    assert figures["flops"] == graph_flops(model)
    assert model.output_shape == (None, *size, classes)


def test_dilation_schedule_and_group_divisor():
    model = FLEXUNET.build((32, 32), 3, 2, **{**TINY, "base_filters": 6, "dilation": 3, "normalization": "group"})
    layers = {layer.name: layer for layer in model.layers}
    assert [layers[f"enc{i}_conv1"].dilation_rate[0] for i in range(3)] == [3, 2, 1]
    assert [layers[f"dec{i}_conv2"].dilation_rate[0] for i in range(2)] == [3, 2]
    # 6 channels cannot take 8 groups: the largest divisor below 8 is used
    assert layers["enc0_conv1_norm"].groups == 6
    assert layers["enc1_conv1_norm"].groups == 6  # 12 channels
    assert layers["enc2_conv1_norm"].groups == 8  # 24 channels


def test_output_activation_and_scaling():
    import keras

    x = np.random.default_rng(0).uniform(0, 255, size=(2, 32, 32, 3)).astype("float32")
    softmax = FLEXUNET.build((32, 32), 3, 4, **TINY, input_normalize=True)
    probs = np.asarray(softmax(x, training=False))
    assert np.allclose(probs.sum(-1), 1.0, atol=1e-5)
    scale = softmax.get_layer("scale_255")
    assert isinstance(scale, keras.layers.Rescaling) and scale.scale == pytest.approx(1 / 255)
    sigmoid = FLEXUNET.build((32, 32), 1, 1, **TINY)
    out = np.asarray(sigmoid(x[..., :1], training=False))
    assert out.shape == (2, 32, 32, 1) and out.min() >= 0 and out.max() <= 1
    assert sigmoid.get_layer("probabilities").get_config()["activation"] == "sigmoid"
    assert not any(isinstance(layer, keras.layers.Lambda) for layer in softmax.layers + sigmoid.layers)


def test_small_preset_is_much_cheaper():
    for size in ((256, 256), (512, 512)):
        big = FLEXUNET.describe(size, 3, 6)["flops"]
        small = SMALL.describe(size, 3, 6)["flops"]
        assert small * 10 <= big, size
    assert SMALL.size_multiple({}) == 32
    assert SMALL.size_multiple({"num_layers": 4}) == 8
    assert SMALL.image_size == (256, 256) and SMALL.num_classes == 6
    assert FLEXUNET.image_size == (512, 512) and FLEXUNET.num_classes == 6


def test_side_not_divisible_names_the_numbers_and_nearest_sizes():
    for call in (FLEXUNET.describe, FLEXUNET.build):
        with pytest.raises(ConfigError, match=r"height 500 is not divisible by 128.*nearest valid sizes: 384 or 512"):
            call((500, 512), 3, 6)
    with pytest.raises(ConfigError, match=r"width 100 is not divisible by 128.*nearest valid sizes: 128"):
        FLEXUNET.describe((128, 100), 3, 6)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"num_layers": 1}, r"num_layers: 1 is below the minimum 2"),
        ({"base_kernels": [3, 5]}, r"base_kernels: kernels and dilations are square: give one integer"),
        ({"dilation": (2, 1)}, r"dilation: kernels and dilations are square: give one integer"),
        ({"activation": "tanh"}, r"activation: 'tanh' is not allowed; choose one of 'relu', 'elu'"),
        ({"normalization": "layer"}, r"normalization: 'layer' is not allowed"),
        ({"dropout_rate": 0.2}, r"dropout_rate: 0.2 x 7 .* must stay below 1"),
        ({"base_filters": 0}, r"base_filters: 0 is below the minimum 1"),
        ({"input_normalize": 1}, r"input_normalize: must be boolean, got int 1"),
        ({"filters": 8}, r"model.options.filters: unknown key. Did you mean base_filters\?"),
    ],
)
def test_option_errors(options, message):
    with pytest.raises(ConfigError, match=message):
        FLEXUNET.describe((512, 512), 3, 6, **options)


def test_other_input_errors():
    with pytest.raises(ConfigError, match="num_classes"):
        FLEXUNET.describe((512, 512), 3, 0)
    with pytest.raises(ConfigError, match="channels"):
        FLEXUNET.describe((512, 512), 0, 6)
