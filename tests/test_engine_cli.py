"""The train/evaluate commands as a user meets them: clear errors, the README's own-dataset example."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from flexplat.cli import cli
from flexplat.testing import dataset_config, sample_classes, write_rgb_dataset

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT / ".." / "shared"


def test_train_without_a_dataset_says_how_to_get_one(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(cli, ["train", "tiny"])
    assert result.exit_code == 1
    assert "Pass --data DIR" in result.output
    assert "flexplat generate tiny --out DIR" in result.output  # the project's data hint
    assert not (tmp_path / "runs").exists(), "a failed start must not leave a run folder"


def test_train_without_a_model_name_says_how_to_name_one(tmp_path, monkeypatch):
    classes = sample_classes(3)
    layer = dataset_config(write_rgb_dataset(tmp_path / "data", classes, n=4), classes)
    config_file = tmp_path / "no-model.yaml"
    config_file.write_text(yaml.safe_dump(layer))  # no model section: the core names no default model
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(cli, ["train", "--config", str(config_file)])
    assert result.exit_code == 1
    message = " ".join(result.output.split())
    assert "model.name: no model named" in message and "`model: {name: MODEL}`" in message
    assert "installed models: tiny-unet" in message
    assert not (tmp_path / "runs").exists(), "a failed start must not leave a run folder"


def test_a_plugin_generator_and_codec_feed_data_check(tmp_path):
    generated = CliRunner().invoke(cli, ["generate", "tiny", "--out", str(tmp_path / "d"), "--count", "5"])
    assert generated.exit_code == 0, generated.output
    checked = CliRunner().invoke(cli, ["data", "check", "tiny", "--data", str(tmp_path / "d"), "--json"])
    assert checked.exit_code == 0, checked.output
    report = json.loads(checked.output)
    assert report["ok"] and report["total_pairs"] == 5
    assert report["totals"]["class_images"] == [5, 3, 2]  # every image has background; class 1, 2, 1, 2, 1


def test_train_needs_a_project_or_config():
    result = CliRunner().invoke(cli, ["train"])
    assert result.exit_code == 2
    assert "give a PROJECT" in result.output


def test_resume_refuses_other_config_options(tmp_path):
    result = CliRunner().invoke(cli, ["train", "--resume", str(tmp_path), "--epochs", "3"])
    assert result.exit_code == 2
    assert "--resume continues a run with its own config" in result.output


def test_evaluate_names_a_missing_run_folder(tmp_path):
    result = CliRunner().invoke(cli, ["evaluate", str(tmp_path / "nope")])
    assert result.exit_code == 1
    assert "no such run folder" in result.output


def readme_krd_config() -> dict:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    block = re.search(r"```yaml\n# krd.yaml\n(.*?)```", text, re.S)
    assert block, "README lost its KRD example"
    return yaml.safe_load(block.group(1))


def readme_krd_config_with_tiny_model() -> dict:
    """The README's example with its model (a flexplat-flexunet preset) replaced by the tiny one."""
    layer = readme_krd_config()
    layer["model"] = {"name": "tiny-unet", "image_size": layer["model"]["image_size"]}
    return layer


def test_readme_own_dataset_example_is_a_valid_config(tmp_path):
    from flexplat.config import resolve

    config_file = tmp_path / "krd.yaml"
    config_file.write_text(yaml.safe_dump(readme_krd_config_with_tiny_model()))
    config = resolve(config_file=config_file)
    assert [c["name"] for c in config["classes"]][:3] == ["background", "neutrophil", "lymphocyte"]
    assert config["data"]["codec"] == "rgb-mask"


@pytest.mark.skipif(not (SHARED / "datasets" / "krd-wbc-sample").is_dir(), reason="../shared is not present")
def test_readme_own_dataset_example_checks_the_real_krd_sample(tmp_path):
    layer = readme_krd_config_with_tiny_model()
    layer["data"]["root"] = str(SHARED / "datasets" / "krd-wbc-sample")
    config_file = tmp_path / "krd.yaml"
    config_file.write_text(yaml.safe_dump(layer))
    result = CliRunner().invoke(cli, ["data", "check", "--config", str(config_file)], terminal_width=200)
    assert result.exit_code == 0, result.output
    assert "26" in result.output
