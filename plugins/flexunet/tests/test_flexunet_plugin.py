"""The plugin registers its presets through the model hook, without importing TensorFlow."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import flexplat_flexunet

from flexplat import ModelSpec, resolve_config
from flexplat.testing import invoke, plugin_system

REPO = Path(__file__).resolve().parents[3]


def test_presets_are_registered():
    with plugin_system(flexplat_flexunet) as system:
        registry = system.registry()
        assert {"flexunet", "flexunet-small"} <= set(registry.names("model"))
        spec = registry.get("model", "flexunet")
        assert isinstance(spec, ModelSpec)
        assert spec.options["activation"].choices == ("relu", "elu", "gelu", "swish", "mish")
        assert spec.options["normalization"].choices == ("none", "batch", "group")
        assert not system.failures


def test_info_prints_parameters_and_gflops():
    with plugin_system(flexplat_flexunet):
        result = invoke(["info", "flexunet"], terminal_width=200)
        assert result.exit_code == 0, result.output
        assert "124,996,934 parameters" in result.output
        assert "115.7 GFLOP" in result.output
        assert "multiples of 128" in result.output
        small = invoke(["info", "flexunet-small"], terminal_width=200)
        assert small.exit_code == 0, small.output
        assert "At 256x256x3 with 6 classes" in small.output


def test_registration_and_describe_do_not_import_tensorflow():
    code = (
        "import sys\n"
        "from flexplat.testing import plugin_system\n"
        "import flexplat_flexunet\n"
        "with plugin_system(flexplat_flexunet) as system:\n"
        "    spec = system.registry().get('model', 'flexunet')\n"
        "    assert spec.describe((512, 512), 3, 6)['parameters'] == 124996934\n"
        "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules, 'TF imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_readme_own_dataset_example_validates_with_its_preset(tmp_path):
    """The repository README's own-dataset example names flexunet-small: valid as written."""
    block = re.search(r"```yaml\n# krd.yaml\n(.*?)```", (REPO / "README.md").read_text(encoding="utf-8"), re.S)
    assert block, "README lost its KRD example"
    config_file = tmp_path / "krd.yaml"
    config_file.write_text(block.group(1))
    with plugin_system(flexplat_flexunet):
        config = resolve_config(config_file=config_file)
    model = config["model"]
    assert (model["name"], model["image_size"]) == ("flexunet-small", [256, 256])
    assert model["options"]["num_layers"] == 6  # the preset's defaults filled in
