"""The installed `flexplat` command in real subprocesses: speed-critical paths and broken plugins.

Plugins come from the ``site`` fixture (tests/conftest.py): the tiny plugin as ``flexplat-tiny``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

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


@pytest.mark.parametrize(
    ("args", "shown"),
    [
        (["--help"], "Commands:"),
        (["list"], "tiny-unet"),
        (["list", "--json"], "tiny-unet"),
        (["generate", "--help"], "tiny"),
    ],
)
def test_cli_start_up_does_not_import_tensorflow(args, shown, site):
    result = run([sys.executable, "-c", NO_TF_PROBE.format(args=args)], env=site.env())
    assert result.returncode == 0, result.stderr
    assert "HEAVY=\n" in result.stderr, result.stderr
    assert shown in result.stdout  # with the tiny plugin loaded


def test_list_json_shows_installed_plugins(site):
    result = run([sys.executable, "-m", "flexplat", "list", "--json"], env=site.env())
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["schema"] == 1
    assert set(data) == {"schema", "flexplat", "items", "plugins", "failures"}
    items = {(i["kind"], i["name"]): i for i in data["items"]}
    tiny = {key for key, item in items.items() if item["distribution"] == "flexplat-tiny"}
    models = {("model", "tiny-unet"), ("model", "tiny-unet-any-size")}
    assert tiny == models | {("codec", "tiny-grey"), ("background", "tiny-stripes"), ("project", "tiny")}
    assert {items[key]["plugin"] for key in tiny} == {"tiny"}
    assert items[("codec", "rgb-mask")]["distribution"] == "flexplat"
    assert data["failures"] == []
    for item in data["items"]:
        assert set(item) == {"kind", "name", "plugin", "distribution", "version", "description"}
        assert item["description"]


@pytest.fixture
def broken_site(site):
    """The ``site`` plus a distribution whose `flexplat` entry point raises at import."""
    site.add("flexplat_broken", "raise ImportError('this plugin is broken on purpose')\n", "flexplat-broken", "broken")
    return site


def test_broken_plugin_does_not_break_list_or_help(broken_site):
    env = broken_site.env()
    listing = run([sys.executable, "-m", "flexplat", "list"], env=env)
    assert listing.returncode == 0, listing.stderr
    assert "broken (flexplat-broken)" in listing.stdout
    assert "this plugin is broken on purpose" in listing.stdout
    assert "tiny-unet" in listing.stdout  # the other plugin still loaded
    data = json.loads(run([sys.executable, "-m", "flexplat", "list", "--json"], env=env).stdout)
    (failure,) = data["failures"]
    assert failure["name"] == "broken" and failure["distribution"] == "flexplat-broken"
    assert failure["stage"] == "import"
    assert run([sys.executable, "-m", "flexplat", "--help"], env=env).returncode == 0


def test_strict_mode_turns_a_broken_plugin_into_an_error(broken_site):
    env = broken_site.env(FLEXPLAT_STRICT_PLUGINS="1")
    result = run([sys.executable, "-m", "flexplat", "list"], env=env)
    assert result.returncode != 0
    assert "plugin 'broken' (flexplat-broken) failed at import" in result.stderr
    assert "Traceback" not in result.stderr


def test_disable_autoload_skips_entry_points(broken_site):
    env = broken_site.env(FLEXPLAT_DISABLE_PLUGIN_AUTOLOAD="1")
    data = json.loads(run([sys.executable, "-m", "flexplat", "list", "--json"], env=env).stdout)
    assert data["failures"] == []
    assert {i["distribution"] for i in data["items"]} == {"flexplat"}


def test_version():
    from flexplat import __version__

    result = run([sys.executable, "-m", "flexplat", "--version"])
    assert result.stdout.strip() == f"flexplat, version {__version__}"


def test_unknown_item_is_a_clear_error(site):
    result = run([sys.executable, "-m", "flexplat", "info", "tiny-unett"], env=site.env())
    assert result.returncode == 1
    assert "Did you mean: tiny-unet" in result.stderr
    assert "Traceback" not in result.stderr
