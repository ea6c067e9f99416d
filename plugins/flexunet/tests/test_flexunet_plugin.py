"""The plugin registers its presets through the model hook, without importing TensorFlow."""

from __future__ import annotations

import subprocess
import sys

import flexplat_flexunet
from click.testing import CliRunner

from flexplat import ModelSpec
from flexplat.cli import cli
from flexplat.testing import plugin_system


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
        result = CliRunner().invoke(cli, ["info", "flexunet"], terminal_width=200)
        assert result.exit_code == 0, result.output
        assert "124,996,934 parameters" in result.output
        assert "115.7 GFLOP" in result.output
        assert "multiples of 128" in result.output
        small = CliRunner().invoke(cli, ["info", "flexunet-small"], terminal_width=200)
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
