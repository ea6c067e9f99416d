"""Read the original experiments' ``train_eval_infer.config``: INI whose values are Python literals.

A small line-based reader (configparser keeps no line numbers): ``[section]`` headers (trailing
spaces allowed), full-line ``;``/``#`` comments, ``key = value``, indented continuation lines and
Python ``\\`` line joins (a stray space after the backslash is tolerated). Values are parsed with
:func:`ast.literal_eval` only, never ``eval``, and only when asked, so a broken value in a key
flexplat does not need is reported, not fatal. Errors name ``file:line``.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flexplat.errors import ConfigError

_SECTION = re.compile(r"^\[([^\]]+)\]\s*$")
_KEY = re.compile(r"^([A-Za-z_][\w.-]*)\s*=(.*)$")


@dataclass
class Entry:
    """One ``key = value`` of the file: raw value text, its first line and the comments just above it."""

    section: str
    key: str
    raw: str
    line: int
    comments: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        return f"[{self.section}] {self.key}"


@dataclass
class IniFile:
    """The parsed file: entries by section and key, in file order."""

    path: Path
    sections: dict[str, dict[str, Entry]]
    section_lines: dict[str, int]

    def get(self, section: str, key: str) -> Entry | None:
        return self.sections.get(section, {}).get(key)

    def value(self, entry: Entry) -> Any:
        """The entry's value as a Python literal; ConfigError with file:line and the reason otherwise."""
        try:
            return literal(entry.raw)
        except ValueError as exc:
            raise ConfigError(f"{self.path}:{entry.line}: {entry.name} = {entry.raw.strip()!r}: {exc}") from None


def literal(raw: str) -> Any:
    """``raw`` parsed with :func:`ast.literal_eval`; ValueError saying why it is not a literal."""
    text = raw.strip()
    if not text:
        raise ValueError("empty value")
    try:
        return ast.literal_eval(text)
    except SyntaxError as exc:
        raise ValueError(f"not a Python literal ({exc.msg})") from None
    except (ValueError, TypeError, MemoryError, RecursionError):
        raise ValueError(
            "not a Python literal (expressions, names and calls are refused: write a quoted string, number, "
            "tuple, list, dict, True/False or None)"
        ) from None


def read_ini(path: str | Path) -> IniFile:
    """Parse ``path``; duplicate keys or sections and lines that are not ``key = value`` are errors."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the config: {exc.strerror or exc}") from None
    sections: dict[str, dict[str, Entry]] = {}
    section_lines: dict[str, int] = {}
    current: dict[str, Entry] | None = None
    section = ""
    last: Entry | None = None
    joined = False  # the previous value line ended with a backslash
    comments: list[str] = []
    for number, text in enumerate(lines, start=1):
        stripped = text.strip()
        if last is not None and (joined or (text[:1].isspace() and stripped and not stripped.startswith((";", "#")))):
            joined = _continue(last, stripped)
            continue
        joined = False
        if not stripped:
            comments = []
            last = None
            continue
        if stripped.startswith((";", "#")):
            comments.append(stripped.lstrip(";#").strip())
            continue
        match = _SECTION.match(stripped)
        if match:
            section = match.group(1).strip()
            if section in sections:
                raise ConfigError(f"{path}:{number}: section [{section}] appears twice")
            current = sections[section] = {}
            section_lines[section] = number
            comments, last = [], None
            continue
        match = _KEY.match(stripped)
        if match is None or current is None:
            where = "before any [section]" if current is None else "not a `key = value` line"
            raise ConfigError(f"{path}:{number}: {where}: {stripped!r}")
        key = match.group(1)
        if key in current:
            raise ConfigError(
                f"{path}:{number}: duplicate key {key!r} in [{section}] (first at line {current[key].line})"
            )
        last = current[key] = Entry(section, key, "", number, comments)
        joined = _continue(last, match.group(2).strip())
        comments = []
    return IniFile(path, sections, section_lines)


def _continue(entry: Entry, text: str) -> bool:
    """Append ``text`` to the entry's value; True when it ends with a ``\\`` line join."""
    joined = text.endswith("\\")
    entry.raw = f"{entry.raw} {text[:-1] if joined else text}".strip()
    return joined
