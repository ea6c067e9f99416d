"""The project spec: classes, default/demo config, original ids, demo data, CLI wiring."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import flexplat_flexunet
import flexplat_leukocyte
import pytest
import yaml
from flexplat_leukocyte import project
from flexplat_leukocyte.classes import GENERATOR_VERSION, class_table, original_id, type_of
from flexplat_leukocyte.project import PROJECT

from flexplat import resolve_config
from flexplat.testing import invoke, plugin_system

CLASS_COLOURS = [(c["name"], tuple(c["color"])) for c in class_table()]  # the one table (classes.TYPES)


def test_project_classes_are_the_generator_table():
    """The YAML config and the generator paint with the same classes, colours and order."""
    assert PROJECT.name == "leukocyte"
    assert [(c.name, c.color) for c in PROJECT.classes] == CLASS_COLOURS
    assert len({color for _, color in CLASS_COLOURS}) == 6 and CLASS_COLOURS[0] == ("background", (0, 0, 0))


def test_default_config_matches_the_published_run():
    config = PROJECT.config
    assert config["data"]["codec"] == "rgb-mask" and config["data"]["root"] is None
    assert config["data"]["test"] == {"images": "test/images", "masks": "test/masks"}
    assert config["model"] == {
        "name": "flexunet",
        "image_size": [512, 512],
        "channels": 3,
        "options": {
            "base_filters": 16,
            "base_kernels": 9,
            "num_layers": 8,
            "dropout_rate": 0.05,
            "dilation": 1,
            "activation": "relu",
            "input_normalize": False,
            "normalization": "none",
        },
    }
    train = config["train"]
    assert (train["optimizer"], train["learning_rate"], train["clipvalue"]) == ("adam", 7e-5, 0.4)
    assert (train["epochs"], train["batch_size"], train["loss"]) == (100, 2, "categorical_crossentropy")
    assert train["callbacks"]["early_stopping"] == {"patience": 10}
    assert train["callbacks"]["reduce_lr"] == {"factor": 0.5, "patience": 4}
    assert train["callbacks"]["epoch_change_infer"] == {"num_images": 6}


def test_original_id_maps_augmented_files_back():
    assert original_id("neut_12_rot90") == "neut_12"
    assert original_id("neut_12") == "neut_12"
    assert original_id("baso_3_pincushion") == "baso_3"
    assert original_id("something-else") == "something-else"
    assert PROJECT.original_id is original_id
    assert type_of("mono_4") == "monocyte"


def test_data_hint_names_source_licence_and_commands():
    hint = PROJECT.data_hint
    for text in ("Rezatofighi", "35(4), 2011", "redistribution", "--source", "--synthetic", "--demo"):
        assert text in hint


def test_default_and_demo_configs_validate():
    with plugin_system(flexplat_leukocyte, flexplat_flexunet):  # its models: the declared dependency
        config = resolve_config("leukocyte")
        assert config["model"]["options"]["base_kernels"] == 9
        demo = resolve_config("leukocyte", demo=True)
    assert demo["model"]["name"] == "flexunet-small"
    assert demo["model"]["image_size"] == [128, 128]
    assert demo["model"]["options"]["base_kernels"] == 3 and demo["model"]["options"]["num_layers"] == 6
    assert demo["model"]["options"]["normalization"] == "batch" and demo["model"]["options"]["input_normalize"]
    assert demo["train"]["loss"] == "ce_dice" and demo["train"]["batch_size"] == 8
    assert demo["data"]["root"] == "data/leukocyte-demo"
    assert demo["train"]["augment"]["flip"] and demo["train"]["augment"]["rot90"]


def test_info_and_generate_are_wired_into_the_cli():
    with plugin_system(flexplat_leukocyte):
        info = invoke(["info", "leukocyte"])
        assert info.exit_code == 0, info.output
        for name, color in CLASS_COLOURS:
            assert name in info.output and f"({color[0]},{color[1]},{color[2]})" in info.output
        listed = invoke(["generate", "--help"])
        assert "leukocyte" in listed.output
        helped = invoke(["generate", "leukocyte", "--help"])
        assert helped.exit_code == 0
        for option in ("--source", "--synthetic", "--out", "--size", "--seed", "--split", "--augment", "--parts"):
            assert option in helped.output


def test_make_demo_data_is_idempotent_and_careful(tmp_path, monkeypatch):
    monkeypatch.setattr(project, "DEMO_COUNT", 10)
    out = tmp_path / "demo"
    assert project.make_demo_data(out, 0) == out
    manifest = yaml.safe_load((out / "dataset.yaml").read_text())
    assert manifest["options"]["size"] == project.DEMO_CONFIG["model"]["image_size"][0]
    assert manifest["synthetic"]["count"] == 10
    assert manifest["synthetic"]["randomization"]["palettes"] == ["wright", "yellowish", "grey"]  # domain-randomised
    stamp = (out / "dataset.yaml").stat().st_mtime_ns
    project.make_demo_data(out, 0)  # same settings: left alone
    assert (out / "dataset.yaml").stat().st_mtime_ns == stamp
    project.make_demo_data(out, 1)  # another seed: our own synthetic set, replaced
    assert yaml.safe_load((out / "dataset.yaml").read_text())["options"]["seed"] == 1
    old = yaml.safe_load((out / "dataset.yaml").read_text())
    old["generator"]["version"] = "0.9"
    (out / "dataset.yaml").write_text(yaml.safe_dump(old))
    project.make_demo_data(out, 1)  # written by an older generator (other splits): regenerated
    assert yaml.safe_load((out / "dataset.yaml").read_text())["generator"]["version"] == GENERATOR_VERSION

    other = tmp_path / "other"
    other.mkdir()
    (other / "dataset.yaml").write_text("generator: {name: someone-else, kind: lisc}\n")
    (other / "train").mkdir()
    with pytest.raises(Exception, match="--overwrite"):
        project.make_demo_data(other, 0)


def test_spec_module_imports_no_heavy_libraries():
    code = (
        "import sys, flexplat_leukocyte.project as p; p.PROJECT; "
        "print(sorted(m for m in ('numpy', 'cv2', 'tensorflow', 'keras') if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def test_mini_test_holds_six_valid_pairs():
    import cv2
    import numpy as np
    from flexplat_leukocyte.classes import TYPES

    root = Path(__file__).resolve().parents[3] / "projects" / "leukocyte" / "mini_test"
    images = sorted((root / "images").glob("*.png"))
    assert [p.stem.split("_")[0] for p in images] == ["baso", "eosi", "lymp", "mono", "neut", "neut"]
    colour = {prefix: color for prefix, _, color in TYPES}
    for path in images:
        image = cv2.imread(str(path))
        mask = cv2.imread(str(root / "masks" / path.name))[..., ::-1]
        assert image.shape == mask.shape == (256, 256, 3)
        found = {tuple(int(v) for v in c) for c in np.unique(mask.reshape(-1, 3), axis=0)}
        assert found == {(0, 0, 0), colour[path.stem.split("_")[0]]}, path.name
