"""Typed options: the schema language models, codecs, callbacks and the core config share."""

from __future__ import annotations

import copy
import difflib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from flexplat.errors import ConfigError

_TYPE_NAMES = {bool: "boolean", int: "integer", float: "number", str: "string", list: "list", dict: "mapping"}


@dataclass(frozen=True)
class Option:
    """One configurable value: its default, type, allowed choices/range and a help line.

    ``type`` defaults to the type of ``default``; a float option also accepts integers.
    A ``None`` default makes the option nullable and then needs an explicit ``type``.
    """

    default: Any
    help: str = ""
    type: type | None = None
    choices: tuple | None = None
    min: float | None = None
    max: float | None = None
    item_type: type | None = None

    @property
    def value_type(self) -> type:
        if self.type is not None:
            return self.type
        if self.default is None:
            raise TypeError("Option with default None needs an explicit type")
        return type(self.default)

    @property
    def nullable(self) -> bool:
        return self.default is None

    def describe_type(self) -> str:
        name = _TYPE_NAMES.get(self.value_type, self.value_type.__name__)
        if self.item_type is not None:
            name += f" of {_TYPE_NAMES.get(self.item_type, self.item_type.__name__)}"
        if self.choices:
            name = "one of " + ", ".join(repr(c) for c in self.choices)
        return name + (" or null" if self.nullable else "")


Schema = Mapping[str, "Option | Schema"]


def _type_ok(value: Any, wanted: type) -> bool:
    if wanted is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if wanted is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, wanted)


def check_value(option: Option, value: Any, path: str) -> Any:
    """Return ``value`` checked against ``option`` (ints widened to float), or raise ConfigError."""
    if value is None:
        if option.nullable:
            return None
        raise ConfigError(f"{path}: must be {option.describe_type()}, got null")
    wanted = option.value_type
    if not _type_ok(value, wanted):
        raise ConfigError(f"{path}: must be {option.describe_type()}, got {type(value).__name__} {value!r}")
    if wanted is float:
        value = float(value)
    if option.item_type is not None:
        for i, item in enumerate(value):
            if not _type_ok(item, option.item_type):
                raise ConfigError(f"{path}[{i}]: must be {_TYPE_NAMES.get(option.item_type)}, got {item!r}")
    if option.choices is not None and value not in option.choices:
        allowed = ", ".join(repr(c) for c in option.choices)
        raise ConfigError(f"{path}: {value!r} is not allowed; choose one of {allowed}")
    if option.min is not None and value < option.min:
        raise ConfigError(f"{path}: {value!r} is below the minimum {option.min}")
    if option.max is not None and value > option.max:
        raise ConfigError(f"{path}: {value!r} is above the maximum {option.max}")
    return value


def unknown_key_error(key: str, known: list[str], path: str) -> ConfigError:
    where = f"{path}.{key}" if path else key
    close = difflib.get_close_matches(key, known, n=3)
    hint = f" Did you mean {', '.join(close)}?" if close else ""
    allowed = ", ".join(sorted(known)) or "(none)"
    return ConfigError(f"{where}: unknown key.{hint} Allowed keys: {allowed}")


def validate(schema: Schema, values: Mapping | None, path: str = "") -> dict:
    """Check ``values`` against ``schema`` and return a new dict with defaults filled in.

    Unknown keys and wrong types raise :class:`ConfigError` naming the key path.
    """
    values = {} if values is None else values
    if not isinstance(values, Mapping):
        raise ConfigError(f"{path or 'config'}: must be a mapping, got {values!r}")
    for key in values:
        if key not in schema:
            raise unknown_key_error(str(key), list(schema), path)
    result: dict = {}
    for key, spec in schema.items():
        where = f"{path}.{key}" if path else key
        if isinstance(spec, Option):
            value = values[key] if key in values else copy.deepcopy(spec.default)
            result[key] = check_value(spec, value, where)
        else:
            result[key] = validate(spec, values.get(key), where)
    return result


def defaults(schema: Schema) -> dict:
    """The default values of ``schema`` as a plain nested dict."""
    return {
        key: (copy.deepcopy(spec.default) if isinstance(spec, Option) else defaults(spec))
        for key, spec in schema.items()
    }
