"""Registries of plugin items, one namespace per kind, with helpful errors."""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Any

from flexplat.errors import RegistryError

KINDS = ("model", "codec", "callback", "background", "project")


@dataclass(frozen=True)
class Entry:
    """A registered item and where it came from."""

    item: Any
    plugin: str
    distribution: str
    version: str

    @property
    def name(self) -> str:
        return self.item.name

    @property
    def kind(self) -> str:
        return self.item.kind


class Registry:
    """All registered items, by kind then name."""

    def __init__(self) -> None:
        self._items: dict[str, dict[str, Entry]] = {kind: {} for kind in KINDS}

    def add(self, entry: Entry) -> None:
        items = self._items[entry.kind]
        existing = items.get(entry.name)
        if existing is not None:
            raise RegistryError(
                f"{entry.kind} '{entry.name}' is registered twice: by plugin '{existing.plugin}' "
                f"({existing.distribution}) and by plugin '{entry.plugin}' ({entry.distribution}). "
                f"Uninstall one of them or ask its author to rename the {entry.kind}."
            )
        items[entry.name] = entry

    def entries(self, kind: str | None = None) -> list[Entry]:
        kinds = KINDS if kind is None else (kind,)
        return [e for k in kinds for e in sorted(self._items[k].values(), key=lambda e: e.name)]

    def names(self, kind: str) -> list[str]:
        return sorted(self._items[kind])

    def entry(self, kind: str, name: str) -> Entry:
        try:
            return self._items[kind][name]
        except KeyError:
            raise unknown_name_error(kind, name, self.names(kind)) from None

    def get(self, kind: str, name: str) -> Any:
        """The item ``name`` of ``kind``; an unknown name raises with close matches."""
        return self.entry(kind, name).item

    def find(self, name: str) -> list[Entry]:
        """Every entry called ``name``, whatever its kind."""
        return [items[name] for items in self._items.values() if name in items]


def unknown_name_error(kind: str | None, name: str, known: list[str]) -> RegistryError:
    """An error for an unknown ``name`` (of ``kind``, or of any kind when None) with close matches."""
    close = difflib.get_close_matches(name, known, n=3, cutoff=0.5)
    hint = f" Did you mean: {', '.join(close)}?" if close else ""
    available = ", ".join(known) if known else "none installed"
    what = kind or "item"
    command = f"flexplat list --kind {kind}" if kind else "flexplat list"
    return RegistryError(
        f"Unknown {what} '{name}'.{hint} Available: {available}. "
        f"Run `{command}` to see what is installed and which plugins provide it."
    )
