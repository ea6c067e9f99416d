"""The projects (classes, default configs that validate), entry-point registration and CLI wiring."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import flexplat_flexunet
import flexplat_leukocyte
import flexplat_zheng_wbc
from flexplat_leukocyte.project import PROJECT as LEUKOCYTE_PROJECT
from flexplat_zheng_wbc.project import PARTS_PROJECT, PROJECT

from flexplat import resolve_config
from flexplat.testing import invoke, plugin_system

# this plugin and the one its configs name a model of (its declared dependency flexplat-flexunet)
WITH_MODELS = (flexplat_zheng_wbc, flexplat_flexunet, flexplat_leukocyte)  # the plugin and its dependencies


def test_type_project_uses_the_leukocyte_classes_and_colours():
    assert PROJECT.name == "zheng-wbc"
    assert [(c.name, c.color) for c in PROJECT.classes] == [(c.name, c.color) for c in LEUKOCYTE_PROJECT.classes]
    assert [c.name for c in PROJECT.classes][1:] == ["basophil", "eosinophil", "lymphocyte", "monocyte", "neutrophil"]


def test_parts_project_differs_only_in_classes_and_task():
    assert [(c.name, c.color) for c in PARTS_PROJECT.classes] == [
        ("background", (0, 0, 0)),
        ("cytoplasm", (128, 128, 128)),
        ("nucleus", (255, 255, 255)),
    ]
    assert PARTS_PROJECT.config["data"]["codec_options"] == {"labels": "class_labels.csv", "task": "parts"}
    assert PROJECT.config["data"]["codec_options"]["task"] == "type"
    assert PROJECT.config["train"]["loss_options"]["class_weights"] == [1.0, 1.0, 2.8, 1.8, 1.9, 1.0]
    assert PARTS_PROJECT.config["train"]["loss_options"] == {"class_weights": None}
    same = {k: v for k, v in PARTS_PROJECT.config.items() if k not in ("classes", "data", "train")}
    assert same == {k: v for k, v in PROJECT.config.items() if k not in ("classes", "data", "train")}
    train = {k: v for k, v in PARTS_PROJECT.config["train"].items() if k != "loss_options"}
    assert train == {k: v for k, v in PROJECT.config["train"].items() if k != "loss_options"}


def test_default_config_carves_splits_by_image_and_names_no_data():
    data = PROJECT.config["data"]
    assert data["codec"] == "zheng-wbc" and data["root"] is None
    assert data["train"] == {"images": "images", "masks": "masks"}
    assert "valid" not in data and "test" not in data
    assert data["split"] == {"valid": 0.15, "test": 0.15, "seed": 0}
    for text in ("Micron 107", "Jiangxi Tecom", "GPL", "zxaoyou/segmentation_WBC", "zheng-wbc-parts"):
        assert text in PROJECT.data_hint


def test_configs_validate(tmp_path):
    with plugin_system(*WITH_MODELS):
        config = resolve_config("zheng-wbc", sets=[f"data.root={tmp_path}"])
        parts = resolve_config("zheng-wbc-parts", sets=[f"data.root={tmp_path}", "model.image_size=[64,64]"])
    assert config["data"]["root"] == str(tmp_path) and config["project"] == "zheng-wbc"
    assert config["model"]["name"] == "flexunet-small" and config["model"]["image_size"] == [96, 96]
    assert config["model"]["options"]["num_layers"] == 6  # the preset's defaults were filled in
    assert config["model"]["options"]["normalization"] == "group"
    assert config["train"]["loss"] == "ce_dice" and config["train"]["augment"]["rot90"] is True
    assert config["train"]["callbacks"]["tensorboard"] is False
    assert set(config["train"]["callbacks"]) >= {"checkpoint", "early_stopping", "reduce_lr", "csv_plots", "progress"}
    assert config["data"]["codec_options"] == {"labels": "class_labels.csv", "task": "type"}
    assert [c["name"] for c in parts["classes"]] == ["background", "cytoplasm", "nucleus"]
    assert parts["data"]["codec_options"]["task"] == "parts" and parts["model"]["image_size"] == [64, 64]


def test_registers_through_its_entry_point():
    env = {k: v for k, v in os.environ.items() if k != "FLEXPLAT_DISABLE_PLUGIN_AUTOLOAD"}
    result = subprocess.run(
        [sys.executable, "-m", "flexplat", "list", "--json"], capture_output=True, text=True, env=env, timeout=120
    )
    assert result.returncode == 0, result.stderr
    listing = json.loads(result.stdout)
    mine = {(i["kind"], i["name"]): i for i in listing["items"] if i["distribution"] == "flexplat-zheng-wbc"}
    assert set(mine) == {("codec", "zheng-wbc"), ("project", "zheng-wbc"), ("project", "zheng-wbc-parts")}
    assert {i["plugin"] for i in mine.values()} == {"zheng-wbc"}
    plugin = next(p for p in listing["plugins"] if p["distribution"] == "flexplat-zheng-wbc")
    assert plugin["hooks"] == ["register_codecs", "register_projects"] and not plugin["builtin"]
    assert not [f for f in listing.get("failures", []) if f.get("distribution") == "flexplat-zheng-wbc"]


def test_plugin_module_imports_no_heavy_libraries():
    code = (
        "import sys, flexplat_zheng_wbc, flexplat_zheng_wbc.project as p; p.PROJECT; "
        "from flexplat import get_registry\n"
        "from flexplat.testing import plugin_system\n"
        "with plugin_system(flexplat_zheng_wbc):\n"
        "    get_registry().get('codec', 'zheng-wbc')\n"
        "print(sorted(m for m in ('numpy', 'cv2', 'tensorflow', 'keras') if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def test_info_shows_the_codec_options():
    with plugin_system(flexplat_zheng_wbc):
        info = invoke(["info", "zheng-wbc", "--kind", "codec"])
    assert info.exit_code == 0, info.output
    for text in ("labels", "class_labels.csv", "task", "'type'", "'parts'"):
        assert text in info.output


def test_data_check_on_a_generated_dataset(zheng_small):
    root, fakes = zheng_small
    with plugin_system(*WITH_MODELS):
        result = invoke(["data", "check", "zheng-wbc", "--data", str(root), "--json"])
        wrong = invoke(["data", "check", "zheng-wbc", "--data", str(root), "--set", "data.codec_options.task=parts"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["total_pairs"] == 10 and report["ok"]
    names = [c["name"] for c in report["classes"]]
    per_type = dict(zip(names, report["totals"]["class_images"], strict=True))
    assert per_type == {"background": 10, "neutrophil": 2, "lymphocyte": 2, "monocyte": 2, "eosinophil": 2,
                        "basophil": 2}  # fmt: skip
    sizes = {(s["height"], s["width"]) for split in report["splits"].values() for s in split["sizes"]}
    assert sizes == {(40, 40), (36, 44), (44, 32)}
    assert wrong.exit_code != 0 and "zheng-wbc-parts" in wrong.output


def test_missing_label_is_a_counted_skip_in_lenient_mode(zheng_copy):
    root, _ = zheng_copy
    csv = root / "class_labels.csv"
    csv.write_text("\n".join(line for line in csv.read_text().splitlines() if not line.startswith("4,")) + "\n")
    with plugin_system(*WITH_MODELS):
        strict = invoke(["data", "check", "zheng-wbc", "--data", str(root), "--json"])
        lenient = invoke(["data", "check", "zheng-wbc", "--data", str(root), "--json", "--lenient"])
    report = json.loads(strict.output)
    assert strict.exit_code == 1 and len(report["errors"]) == 1 and "004.bmp" in report["errors"][0]
    report = json.loads(lenient.output)
    assert lenient.exit_code == 0 and report["skipped"] == [str(root / "images" / "004.bmp")]
    assert sum(s["usable"] for s in report["splits"].values()) == 9
