"""The plugin manager and registry, with throwaway plugins (one test per hook: test_hook_<name>)."""

from __future__ import annotations

import types

import click
import pytest
from click.testing import CliRunner

import flexplat
from flexplat.cli import cli
from flexplat.errors import PluginLoadError, RegistryError
from flexplat.plugins import get_registry
from flexplat.testing import plugin_system


def _plugin(name: str, **hooks) -> types.SimpleNamespace:
    """A plugin object whose attributes are hook implementations."""
    ns = types.SimpleNamespace(__name__=name)
    for hook_name, fn in hooks.items():
        setattr(ns, hook_name, flexplat.hookimpl(fn))
    return ns


def _model(name: str) -> flexplat.ModelSpec:
    return flexplat.ModelSpec(name=name, description=f"model {name}", build=lambda *a, **k: None)


def test_hook_register_models():
    plugin = _plugin("p-models", register_models=lambda register: register(_model("tiny-net")))
    with plugin_system(plugin):
        entry = get_registry().entry("model", "tiny-net")
        assert entry.plugin == "p-models"
        assert entry.item.description == "model tiny-net"


def test_hook_register_codecs():
    spec = flexplat.CodecSpec(name="fake-codec", description="d", factory=lambda classes, options: None)
    with plugin_system(_plugin("p-codecs", register_codecs=lambda register: register(spec))):
        assert get_registry().get("codec", "fake-codec") is spec


def test_hook_register_callbacks():
    spec = flexplat.CallbackSpec(name="beep", description="d", factory=lambda context, options: None)
    with plugin_system(_plugin("p-callbacks", register_callbacks=lambda register: register(spec))):
        assert get_registry().get("callback", "beep") is spec


def test_hook_register_backgrounds():
    spec = flexplat.BackgroundSpec(name="glass", description="d", render=lambda rng, size, diameter: None)
    with plugin_system(_plugin("p-backgrounds", register_backgrounds=lambda register: register(spec))):
        assert get_registry().get("background", "glass") is spec
        assert get_registry().entry("background", "glass").plugin == "p-backgrounds"


def test_hook_register_projects():
    config = {"classes": [{"name": "background", "color": [0, 0, 0]}, {"name": "cell", "color": [255, 0, 0]}]}
    spec = flexplat.ProjectSpec(name="cells", description="d", config=config)
    with plugin_system(_plugin("p-projects", register_projects=lambda register: register(spec))):
        project = get_registry().get("project", "cells")
        assert [c.name for c in project.classes] == ["background", "cell"]
        assert project.classes[1].color == (255, 0, 0)


def test_hook_register_commands():
    @click.command(name="hello")
    def hello():
        click.echo("hello from a plugin")

    with plugin_system(_plugin("p-cmd", register_commands=lambda cli: cli.add_command(hello))):
        runner = CliRunner()
        assert "hello" in runner.invoke(cli, ["--help"]).output
        result = runner.invoke(cli, ["hello"])
        assert result.exit_code == 0
        assert result.output == "hello from a plugin\n"
    # the command is gone once the plugin is
    assert "hello" not in CliRunner().invoke(cli, ["--help"]).output


def test_register_rejects_wrong_item_type():
    plugin = _plugin("p-wrong", register_models=lambda register: register("not a spec"))
    with plugin_system(plugin) as system:
        assert get_registry().names("model") == []
        (failure,) = system.failures
        assert failure.name == "p-wrong"
        assert "expects flexplat.ModelSpec" in failure.error


def test_duplicate_name_names_both_plugins():
    first = _plugin("first-plugin", register_models=lambda register: register(_model("same")))
    second = _plugin("second-plugin", register_models=lambda register: register(_model("same")))
    with plugin_system(first, second) as system:
        registry = get_registry()
        assert registry.entry("model", "same").plugin == "first-plugin"
        (failure,) = system.failures
        assert "first-plugin" in failure.error and "second-plugin" in failure.error


def test_duplicate_is_an_error_in_strict_mode():
    first = _plugin("first-plugin", register_models=lambda register: register(_model("same")))
    second = _plugin("second-plugin", register_models=lambda register: register(_model("same")))
    with plugin_system(first, second, strict=True):
        with pytest.raises(PluginLoadError, match="registered twice"):
            get_registry()


def test_unknown_name_suggests_close_matches():
    plugin = _plugin("p", register_models=lambda register: [register(_model(n)) for n in ("flexnet", "unet")])
    with plugin_system(plugin):
        with pytest.raises(RegistryError) as info:
            get_registry().get("model", "flexnt")
    message = str(info.value)
    assert "Did you mean: flexnet" in message
    assert "flexplat list --kind model" in message


def test_failing_hook_does_not_hide_other_plugins():
    def explode(register):
        raise RuntimeError("boom")

    good = _plugin("good", register_models=lambda register: register(_model("ok-model")))
    bad = _plugin("bad", register_models=explode)
    with plugin_system(bad, good) as system:
        assert get_registry().names("model") == ["ok-model"]
        assert [(f.name, f.stage) for f in system.failures] == [("bad", "register_models")]
        result = CliRunner().invoke(cli, ["list"])
        assert result.exit_code == 0
        assert "ok-model" in result.output
        assert "boom" in result.output


def test_plugin_may_take_fewer_arguments():
    calls = []
    plugin = _plugin("lazy", register_commands=lambda: calls.append(1))
    with plugin_system(plugin):
        CliRunner().invoke(cli, ["--help"])
    assert calls == [1]
