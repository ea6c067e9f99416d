"""House rules that keep the core in order: the shared config options of the CLI."""

from __future__ import annotations

from flexplat.cli import cli

CONFIG_COMMANDS = (("config", "show"), ("train",), ("data", "check"))


def _command(path: tuple[str, ...]):
    command = cli
    for name in path:
        command = command.commands[name]
    return command


def test_config_reading_commands_share_one_config_and_set_option_pair():
    seen = set()
    for path in CONFIG_COMMANDS:
        options = {p.name: p for p in _command(path).params}
        config, sets = options["config_file"], options["sets"]
        assert config.opts == ["--config"] and sets.opts == ["--set"] and sets.multiple, path
        seen.add((config.help, sets.help, sets.metavar))
    assert len(seen) == 1, seen
