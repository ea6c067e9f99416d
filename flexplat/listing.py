"""What `flexplat list` and `flexplat info` show: collected as data, rendered with rich."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table

from flexplat.options import Option
from flexplat.plugins import PluginSystem
from flexplat.registry import KINDS, Entry
from flexplat.version import __version__

LIST_SCHEMA_VERSION = 1


def collect(system: PluginSystem, kind: str | None = None) -> dict[str, Any]:
    """The stable JSON document of `flexplat list --json`."""
    registry = system.registry()
    return {
        "schema": LIST_SCHEMA_VERSION,
        "flexplat": __version__,
        "items": [
            {
                "kind": e.kind,
                "name": e.name,
                "plugin": e.plugin,
                "distribution": e.distribution,
                "version": e.version,
                "description": e.item.description,
            }
            for e in registry.entries(kind)
        ],
        "plugins": [
            {
                "name": p.name,
                "distribution": p.distribution,
                "version": p.version,
                "hooks": list(p.hooks),
                "builtin": p.builtin,
            }
            for p in system.plugins()
        ],
        "failures": [
            {"name": f.name, "distribution": f.distribution, "stage": f.stage, "error": f.error}
            for f in system.failures
        ],
    }


def render_list(data: dict[str, Any], console: Console) -> None:
    kinds = [k for k in KINDS if any(i["kind"] == k for i in data["items"])]
    for kind in kinds:
        table = Table(title=f"{kind}s", title_justify="left", expand=False)
        # at 80 columns five columns squeezed the description into one word per line: the plugin,
        # its distribution and version share one column, and the description keeps a readable width
        table.add_column("name", overflow="fold", max_width=20)
        table.add_column("plugin (distribution)", overflow="fold", max_width=24)
        table.add_column("description")
        for item in data["items"]:
            if item["kind"] == kind:
                origin = f"{item['plugin']}\n[dim]{item['distribution']} {item['version']}[/]"
                table.add_row(item["name"], origin, item["description"])
        console.print(table)
    if not kinds:
        console.print("No items registered.")
    for failure in data["failures"]:
        console.print(
            f"[bold red]plugin failed:[/] {failure['name']} ({failure['distribution']}) "
            f"at {failure['stage']}: {failure['error']}",
            highlight=False,
            soft_wrap=True,
        )


def options_table(options: dict[str, Option], title: str = "options") -> Table:
    """Options with their defaults, types and help; at 80 columns the help keeps a readable width.

    The other columns are capped (long defaults and choice lists fold within them), so the prose
    column takes the rest instead of wrapping one word per line.
    """
    table = Table(title=title, title_justify="left")
    table.add_column("option", overflow="fold", max_width=20)
    table.add_column("default", overflow="fold", max_width=12)
    table.add_column("type", overflow="fold", max_width=14)
    table.add_column("help")
    for name, option in options.items():
        table.add_row(name, repr(option.default), option.describe_type(), option.help)
    return table


def render_entry(entry: Entry, console: Console) -> None:
    """Print everything known about one registered item."""
    item = entry.item
    console.print(
        f"[bold]{item.name}[/] ({entry.kind}) from plugin {entry.plugin} ({entry.distribution} {entry.version})",
        highlight=False,
    )
    console.print(item.description)
    if entry.kind == "project":
        _render_project(item, console)
        return
    if entry.kind == "background":
        console.print("Used by copy-paste augmentation: train.augment.paste > 0 with train.augment.paste_background: "
                      f"{item.name}")  # fmt: skip
        return
    if item.options:
        console.print(options_table(dict(item.options)))
    if entry.kind == "model" and item.describe is not None:
        defaults = {k: o.default for k, o in item.options.items()}
        figures = item.describe(item.image_size, 3, item.num_classes, **defaults)
        h, w = item.image_size
        console.print(
            f"At {h}x{w}x3 with {item.num_classes} classes and the defaults above: "
            f"{figures['parameters']:,} parameters, {figures['flops'] / 1e9:.1f} GFLOP per image "
            f"(multiply-adds x 2), input sides must be multiples of {item.size_multiple(defaults)}.",
            highlight=False,
        )


def _render_project(project: Any, console: Console) -> None:
    from flexplat.config import dump_yaml

    table = Table(title="classes", title_justify="left")
    for column in ("index", "name", "colour (R,G,B)", ""):
        table.add_column(column)
    for index, cls in enumerate(project.classes):
        r, g, b = cls.color
        table.add_row(str(index), cls.name, f"({r},{g},{b})", f"[on rgb({r},{g},{b})]      [/]")
    console.print(table)
    data = project.config.get("data", {})
    console.print(f"Data expected in: [bold]{data.get('root') or '(set with --data)'}[/]", highlight=False)
    if project.data_hint:
        console.print(project.data_hint)
    console.print(f"Default config ([dim]`flexplat config show {project.name}` for the effective one[/]):")
    console.print(dump_yaml(project.config), highlight=False, markup=False)
