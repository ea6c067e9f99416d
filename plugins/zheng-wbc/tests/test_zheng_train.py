"""End to end on a tiny generated dataset: `flexplat train zheng-wbc` then `flexplat evaluate` (tiny model)."""

from __future__ import annotations

import json

import flexplat_flexunet
import flexplat_leukocyte
import flexplat_zheng_wbc
import pytest
from flexplat_zheng_wbc.testing import write_zheng_dataset

from flexplat.testing import invoke, plugin_system

TINY = [
    "--set", "model.image_size=[32,32]",
    "--set", "model.options={base_filters: 4, num_layers: 3, normalization: none}",
    "--set", "train.batch_size=4",
    "--set", "train.callbacks.progress=false",
    "--set", "data.split={valid: 0.2, test: 0.2, seed: 0}",
]  # fmt: skip


@pytest.mark.parametrize("project", ["zheng-wbc", "zheng-wbc-parts"])
def test_train_then_evaluate(tmp_path, project):
    root = tmp_path / "data"
    write_zheng_dataset(root, n=15)
    run = tmp_path / "run"
    with plugin_system(flexplat_zheng_wbc, flexplat_flexunet, flexplat_leukocyte):  # the plugin and its dependencies
        args = ["train", project, "--data", str(root), "--epochs", "1", "--out", str(run), "--no-evaluate", *TINY]
        trained = invoke(args)
        assert trained.exit_code == 0, trained.output
        evaluated = invoke(["evaluate", str(run)])
    assert evaluated.exit_code == 0, evaluated.output
    info = json.loads((run / "run.json").read_text())
    pairs = info["dataset"]["pairs"]
    assert info["status"] == "completed" and sum(pairs.values()) == 15 and min(pairs.values()) >= 2
    figures = json.loads((run / "evaluation.json").read_text())["test"]
    names = ["cytoplasm", "nucleus"] if project == "zheng-wbc-parts" else ["basophil", "eosinophil", "lymphocyte",
                                                                            "monocyte", "neutrophil"]  # fmt: skip
    assert list(figures["per_class"]) == names and figures["images"] == pairs["test"]
    assert f"test split: {pairs['test']} images" in evaluated.output and "whole cell" in evaluated.output
    for name in names:
        assert name in evaluated.output
    label = "cell part" if project == "zheng-wbc-parts" else "cell type"
    assert f"{label} accuracy" in evaluated.output  # the project's labels for objects and their classes
