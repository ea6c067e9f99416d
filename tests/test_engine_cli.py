"""The train/evaluate commands as a user meets them: clear errors, the README's own-dataset example."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from flexplat.cli import cli

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT / ".." / "shared"


def test_train_without_a_dataset_says_how_to_get_one(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(cli, ["train", "leukocyte"])
    assert result.exit_code == 1
    assert "pass --data DIR" in result.output.lower() or "Pass --data DIR" in result.output
    assert "flexplat generate leukocyte --source" in result.output
    assert "--synthetic" in result.output and "--demo" in result.output
    assert not (tmp_path / "runs").exists(), "a failed start must not leave a run folder"


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


def test_readme_own_dataset_example_is_a_valid_config(tmp_path):
    from flexplat.config import resolve

    config_file = tmp_path / "krd.yaml"
    config_file.write_text(yaml.safe_dump(readme_krd_config()))
    config = resolve(config_file=config_file)
    assert [c["name"] for c in config["classes"]][:3] == ["background", "neutrophil", "lymphocyte"]
    assert config["model"]["name"] == "flexunet-small"


@pytest.mark.skipif(not (SHARED / "datasets" / "krd-wbc-sample").is_dir(), reason="../shared is not present")
def test_readme_own_dataset_example_checks_the_real_krd_sample(tmp_path):
    layer = readme_krd_config()
    layer["data"]["root"] = str(SHARED / "datasets" / "krd-wbc-sample")
    config_file = tmp_path / "krd.yaml"
    config_file.write_text(yaml.safe_dump(layer))
    result = CliRunner().invoke(cli, ["data", "check", "--config", str(config_file)], terminal_width=200)
    assert result.exit_code == 0, result.output
    assert "26" in result.output
