"""The installed `flexplat` command in real subprocesses: speed-critical paths and broken plugins."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

NO_TF_PROBE = """
import sys
from flexplat.cli import cli
try:
    cli({args!r}, standalone_mode=False)
finally:
    heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras'))
    print('HEAVY=' + ','.join(heavy), file=sys.stderr)
"""


def run(args, env=None, **kwargs):
    full_env = {**os.environ, **(env or {})}
    return subprocess.run(args, capture_output=True, text=True, env=full_env, timeout=120, **kwargs)


@pytest.mark.parametrize("args", [["--help"], ["list"], ["list", "--json"], ["generate", "--help"]])
def test_cli_start_up_does_not_import_tensorflow(args):
    result = run([sys.executable, "-c", NO_TF_PROBE.format(args=args)])
    assert result.returncode == 0, result.stderr
    assert "HEAVY=\n" in result.stderr, result.stderr


def test_list_json_shows_installed_plugins():
    result = run([sys.executable, "-m", "flexplat", "list", "--json"])
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["schema"] == 1
    assert set(data) == {"schema", "flexplat", "items", "plugins", "failures"}
    items = {(i["kind"], i["name"]): i for i in data["items"]}
    assert items[("model", "flexunet")]["distribution"] == "flexplat-flexunet"
    assert items[("project", "leukocyte")]["distribution"] == "flexplat-leukocyte"
    assert items[("codec", "rgb-mask")]["distribution"] == "flexplat"
    assert data["failures"] == []
    for item in data["items"]:
        assert set(item) == {"kind", "name", "plugin", "distribution", "version", "description"}
        assert item["description"]


@pytest.fixture
def broken_plugin_path(tmp_path: Path) -> Path:
    """A distribution whose `flexplat` entry point raises at import, found through PYTHONPATH."""
    (tmp_path / "flexplat_broken.py").write_text("raise ImportError('this plugin is broken on purpose')\n")
    dist = tmp_path / "flexplat_broken-0.0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: flexplat-broken\nVersion: 0.0.1\n")
    (dist / "entry_points.txt").write_text("[flexplat]\nbroken = flexplat_broken\n")
    return tmp_path


def _env_with(path: Path, **extra: str) -> dict:
    pythonpath = os.pathsep.join(filter(None, [str(path), os.environ.get("PYTHONPATH", "")]))
    return {"PYTHONPATH": pythonpath, **extra}


def test_broken_plugin_does_not_break_list_or_help(broken_plugin_path):
    env = _env_with(broken_plugin_path)
    listing = run([sys.executable, "-m", "flexplat", "list"], env=env)
    assert listing.returncode == 0, listing.stderr
    assert "broken (flexplat-broken)" in listing.stdout
    assert "this plugin is broken on purpose" in listing.stdout
    assert "flexunet" in listing.stdout
    data = json.loads(run([sys.executable, "-m", "flexplat", "list", "--json"], env=env).stdout)
    (failure,) = data["failures"]
    assert failure["name"] == "broken" and failure["distribution"] == "flexplat-broken"
    assert failure["stage"] == "import"
    assert run([sys.executable, "-m", "flexplat", "--help"], env=env).returncode == 0


def test_strict_mode_turns_a_broken_plugin_into_an_error(broken_plugin_path):
    env = _env_with(broken_plugin_path, FLEXPLAT_STRICT_PLUGINS="1")
    result = run([sys.executable, "-m", "flexplat", "list"], env=env)
    assert result.returncode != 0
    assert "plugin 'broken' (flexplat-broken) failed at import" in result.stderr
    assert "Traceback" not in result.stderr


def test_disable_autoload_skips_entry_points(broken_plugin_path):
    env = _env_with(broken_plugin_path, FLEXPLAT_DISABLE_PLUGIN_AUTOLOAD="1")
    data = json.loads(run([sys.executable, "-m", "flexplat", "list", "--json"], env=env).stdout)
    assert data["failures"] == []
    assert {i["distribution"] for i in data["items"]} == {"flexplat"}


def test_version():
    from flexplat import __version__

    result = run([sys.executable, "-m", "flexplat", "--version"])
    assert result.stdout.strip() == f"flexplat, version {__version__}"


def test_unknown_item_is_a_clear_error():
    result = run([sys.executable, "-m", "flexplat", "info", "flexunett"])
    assert result.returncode == 1
    assert "Did you mean: flexunet" in result.stderr
    assert "Traceback" not in result.stderr
