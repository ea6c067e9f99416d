"""`flexplat config import`: the INI reader and the malformed-config errors (tiny inline fixtures).

The corpus of real configs and the FlexUNet mapping are tested in plugins/flexunet (the model plugin
that claims the original model name); here the core's own behaviour is checked with the tiny plugin.
"""

from __future__ import annotations

import pytest

from flexplat import ConfigError, import_original_config
from flexplat.migrate import class_names
from flexplat.migrate_ini import read_ini
from flexplat.testing import invoke

GOOD = """\
; a comment
[model]
model = "TensorFlowFlexUNet"
num_classes = 3

[mask]
; RGB colors   nucleus:red, cytoplasm: green
rgb_map = {(0,0,0):0,\\{SPACE}
           (255,0,0):1,
           (0,255,0,):2,}
""".replace("{SPACE}", " ")  # a stray space after the line join, as in the corpus


def write(tmp_path, text: str):
    path = tmp_path / "train_eval_infer.config"
    path.write_text(text, encoding="utf-8")
    return path


def test_reader_joins_continuations_and_keeps_lines_and_comments(tmp_path):
    ini = read_ini(write(tmp_path, GOOD))
    entry = ini.get("mask", "rgb_map")
    assert entry.line == 8
    assert entry.comments == ["RGB colors   nucleus:red, cytoplasm: green"]
    assert ini.value(entry) == {(0, 0, 0): 0, (255, 0, 0): 1, (0, 255, 0): 2}
    assert ini.value(ini.get("model", "num_classes")) == 3


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (GOOD.replace("num_classes = 3", "num_classes = __import__('os')"), ":4: [model] num_classes"),
        (GOOD + "\n[modle]\nx = 1\n", ":12: unknown section [modle]"),
        (GOOD.replace("rgb_map", "color_map"), "[mask] rgb_map is missing"),
        (GOOD.replace("num_classes = 3", "num_classes = 3\nnum_classes = 4"), ":5: duplicate key 'num_classes'"),
        (GOOD.replace("(0,255,0,):2,}", "(0,255,0);2,}"), ":8: [mask] rgb_map"),
        (GOOD.replace("num_classes = 3", "num_classes = 4"), ":4: [model] num_classes: 4 classes, but rgb_map lists 3"),
    ],
    ids=["non-literal", "unknown-section", "missing-rgb_map", "duplicate-key", "broken-rgb_map", "class-count"],
)
def test_malformed_configs_name_file_line_and_reason(tmp_path, text, expected):
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        import_original_config(path)
    assert str(path) in str(info.value)
    assert expected in str(info.value)


def test_non_literal_is_refused_with_the_reason_and_never_evaluated(tmp_path):
    marker = tmp_path / "evaluated"
    text = GOOD.replace("num_classes = 3", f"num_classes = open({str(marker)!r}, 'w')")
    with pytest.raises(ConfigError, match="not a Python literal"):
        import_original_config(write(tmp_path, text))
    assert not marker.exists()


def test_other_original_models_are_not_available_yet(tmp_path):
    path = write(tmp_path, GOOD.replace("TensorFlowFlexUNet", "TensorFlowSwinUNet"))
    result = invoke(["config", "import", str(path), "--out", str(tmp_path / "x.yaml")])
    assert result.exit_code == 1
    assert "'TensorFlowSwinUNet' is not available as a flexplat model yet" in result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "x.yaml").exists()


def test_class_names_from_comments_else_class_n():
    colours = [[0, 0, 0], [255, 255, 0], [0, 255, 0]]
    assert class_names(["Background;black, Glioma:yellow, Menin gioma:green"], colours) == [
        "background", "Glioma", "Menin_gioma"
    ]  # fmt: skip
    assert class_names(['category_color_map = {"A":(0,255,0), "B":(255,255,0)}'], colours) == [
        "background", "B", "A"
    ]  # fmt: skip
    assert class_names(["1+2 classes", "blue, green"], colours) == ["background", "class_1", "class_2"]
