"""Config layering and validation: errors name the key path."""

from __future__ import annotations

import pytest

from flexplat.config import layer, load_yaml, parse_set, resolve
from flexplat.errors import ConfigError
from flexplat.options import Option, validate


def test_validate_fills_defaults_and_widens_ints():
    schema = {"a": Option(1), "b": Option(0.5), "sub": {"c": Option("x", choices=("x", "y"))}}
    assert validate(schema, {"b": 2}) == {"a": 1, "b": 2.0, "sub": {"c": "x"}}


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"aa": 1}, r"aa: unknown key. Did you mean a\? Allowed keys: a, b, sub"),
        ({"a": "1"}, r"a: must be integer, got str '1'"),
        ({"a": True}, r"a: must be integer, got bool True"),
        ({"sub": {"c": "z"}}, r"sub.c: 'z' is not allowed; choose one of 'x', 'y'"),
        ({"b": -1}, r"b: -1.0 is below the minimum 0"),
        ({"sub": 3}, r"sub: must be a mapping"),
    ],
)
def test_validate_errors_name_the_key(values, message):
    schema = {"a": Option(1), "b": Option(0.5, min=0), "sub": {"c": Option("x", choices=("x", "y"))}}
    with pytest.raises(ConfigError, match=message):
        validate(schema, values)


def test_parse_set_reads_yaml_values():
    assert parse_set("train.epochs=5") == {"train": {"epochs": 5}}
    assert parse_set("model.image_size=[64, 32]") == {"model": {"image_size": [64, 32]}}
    assert parse_set("data.root=") == {"data": {"root": None}}
    with pytest.raises(ConfigError, match="expected KEY.PATH=VALUE"):
        parse_set("train.epochs")


def test_layers_merge_in_order_and_switching_model_drops_its_options():
    merged = layer(
        [
            ("project", {"model": {"name": "big", "options": {"depth": 8, "width": 16}}, "train": {"epochs": 100}}),
            ("file", {"model": {"name": "small", "options": {"width": 4}}}),
            ("--set", {"train": {"epochs": 3}}),
        ]
    )
    assert merged == {"model": {"name": "small", "options": {"width": 4}}, "train": {"epochs": 3}}
    same = layer([("a", {"model": {"name": "m", "options": {"x": 1}}}), ("b", {"model": {"options": {"y": 2}}})])
    assert same["model"]["options"] == {"x": 1, "y": 2}


def test_unknown_section_names_the_layer(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("trian:\n  epochs: 3\n")
    with pytest.raises(ConfigError, match=r"c.yaml: trian: unknown key. Did you mean train\?"):
        resolve(config_file=path)


def test_yaml_errors_name_file_and_line(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("train:\n  epochs: [1, 2\n")
    with pytest.raises(ConfigError, match=r"bad.yaml: line \d+, column \d+: invalid YAML"):
        load_yaml(path)
    with pytest.raises(ConfigError, match="config file not found"):
        load_yaml(tmp_path / "missing.yaml")


def test_python_literals_are_never_evaluated(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("train:\n  epochs: __import__('os').getpid()\n")
    with pytest.raises(ConfigError, match=r"train.epochs: must be integer, got str"):
        resolve("tiny", config_file=path)


def test_project_defaults_validate_and_model_errors_name_sizes():
    config = resolve("tiny", sets=["data.root=/nowhere"])
    assert config["project"] == "tiny" and config["data"]["codec"] == "tiny-grey"
    assert config["model"]["options"] == {"filters": 4, "depth": 2}  # the model's defaults filled in
    assert config["data"]["codec_options"] == {"step": 100}  # and the codec's
    with pytest.raises(ConfigError, match=r"height 50 is not a multiple of 8.*nearest valid sizes: 48 or 56"):
        resolve("tiny", sets=["model.image_size=[50, 48]", "model.options.depth=3"])
    with pytest.raises(ConfigError, match=r"train.callbacks.early_stopping.patiense: unknown key"):
        resolve("tiny", sets=["train.callbacks.early_stopping.patiense=3"])
    with pytest.raises(ConfigError, match=r"data.codec_options.stepp: unknown key. Did you mean step\?"):
        resolve("tiny", sets=["data.codec_options.stepp=3"])
    with pytest.raises(ConfigError, match=r"model.name: Unknown model 'tiny-unett'. Did you mean: tiny-unet"):
        resolve("tiny", sets=["model.name=tiny-unett"])


@pytest.mark.parametrize(
    ("value", "multiple", "expected"), [(500, 128, (384, 512)), (100, 128, (128, 256)), (33, 16, (32, 48))]
)
def test_nearest_multiples_suggest_the_valid_sides_around_an_invalid_one(value, multiple, expected):
    from flexplat.specs import nearest_multiples

    assert nearest_multiples(value, multiple) == expected
