"""YAML configs: the core schema, layering and validation.

Layers, lowest first: core defaults < project default (from its plugin) < user file
(``--config``) < ``--set key.path=value`` < explicit CLI options. Every layer is validated:
an unknown key or a wrong type is a :class:`ConfigError` naming the key path.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

from flexplat.errors import ConfigError
from flexplat.options import Option, check_value, unknown_key_error, validate
from flexplat.schema import AUGMENT_SCHEMA, SCHEMA, check_stain_norm, loss_options_schema
from flexplat.specs import nearest_multiples


def load_yaml(path: str | Path) -> dict:
    """Read a YAML mapping with ``yaml.safe_load``; errors name the file (and line)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config file: {exc.strerror}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"{path}:{where}: invalid YAML: {problem}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a config file must hold a mapping of keys, got {type(data).__name__}")
    return data


def merge(base: Mapping, override: Mapping) -> dict:
    """Deep-merge ``override`` into a copy of ``base`` (mappings merge, other values replace)."""
    result = copy.deepcopy(dict(base))
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(result.get(key), Mapping):
            result[key] = merge(result[key], value)
        else:
            result[key] = copy.deepcopy(value)
    return result


def parse_set(expr: str) -> dict:
    """Turn ``train.epochs=5`` into ``{"train": {"epochs": 5}}`` (the value is read as YAML)."""
    key, sep, raw = expr.partition("=")
    key = key.strip()
    if not sep or not key or any(not part for part in key.split(".")):
        raise ConfigError(f"--set {expr!r}: expected KEY.PATH=VALUE, e.g. --set train.epochs=5")
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError:
        raise ConfigError(f"--set {expr!r}: the value is not valid YAML") from None
    for part in reversed(key.split(".")):
        value = {part: value}
    return value


def _check_layer(layer: Mapping, name: str) -> None:
    """Reject unknown top-level sections early, naming the layer they came from."""
    try:
        for key, value in layer.items():
            if key not in SCHEMA:
                raise unknown_key_error(str(key), list(SCHEMA), "")
            spec = SCHEMA[key]
            if not isinstance(spec, Option):
                if not isinstance(value, Mapping):
                    raise ConfigError(f"{key}: must be a mapping, got {value!r}")
                for sub in value:
                    if sub not in spec:
                        raise unknown_key_error(str(sub), list(spec), key)
    except ConfigError as exc:
        raise ConfigError(f"{name}: {exc}") from None


# options that belong to the item a name selects: a layer that names another item drops them
_OWNED_OPTIONS = (("model", "name", "options"), ("data", "codec", "codec_options"))


def layer(layers: Iterable[tuple[str, Mapping]]) -> dict:
    """Merge named layers (lowest first) after checking each for unknown sections.

    Options belong to the item they configure: when a layer switches ``model.name`` (or
    ``data.codec``), the options lower layers gave the previous one are dropped, not merged.
    """
    result: dict = {}
    for name, values in layers:
        _check_layer(values, name)
        for section, key, options in _OWNED_OPTIONS:
            new = values.get(section, {}).get(key)
            if new is not None and new != result.get(section, {}).get(key):
                result.get(section, {}).pop(options, None)
        result = merge(result, values)
    return result


def validate_config(raw: Mapping) -> dict:
    """Validate a merged config: the core schema, then the options of the named plugins."""
    from flexplat.plugins import get_registry

    config = validate(SCHEMA, raw)
    registry = get_registry()
    _validate_classes(config["classes"])

    size = config["model"]["image_size"]
    if len(size) != 2 or min(size) < 1:
        raise ConfigError(f"model.image_size: must be [height, width] of positive integers, got {size}")

    if config["model"]["name"]:
        _validate_model(registry, config["model"])
    elif config["model"]["options"]:
        raise ConfigError("model.options: given, but no model.name says which model they are for")
    codec = _lookup(registry, "codec", config["data"]["codec"], "data.codec")
    config["data"]["codec_options"] = validate(codec.options, config["data"]["codec_options"], "data.codec_options")

    callbacks = {}
    for name, options in config["train"]["callbacks"].items():
        spec = _lookup(registry, "callback", name, f"train.callbacks.{name}")
        if options is False or options is None:
            callbacks[name] = False
            continue
        if options is True:
            options = {}
        callbacks[name] = validate(spec.options, options, f"train.callbacks.{name}")
    config["train"]["callbacks"] = callbacks

    config["data"]["stain_norm"] = check_stain_norm(config["data"]["stain_norm"])
    config["train"]["augment"] = validate(AUGMENT_SCHEMA, config["train"]["augment"], "train.augment")
    _validate_paste(registry, config["train"]["augment"])
    schema = loss_options_schema(config["train"]["loss"])
    config["train"]["loss_options"] = validate(schema, config["train"]["loss_options"], "train.loss_options")
    return config


def _validate_paste(registry: Any, augment: Mapping[str, Any]) -> None:
    """Copy-paste needs a registered background to paste onto."""
    name = augment["paste_background"]
    if augment["paste"] > 0 and not name:
        raise ConfigError(
            "train.augment.paste_background: required when train.augment.paste > 0; "
            "name a background from `flexplat list --kind background`"
        )
    if name:
        _lookup(registry, "background", name, "train.augment.paste_background")


def _validate_model(registry: Any, model_config: dict) -> None:
    """The model's options, and image sides that are a multiple the model accepts."""
    model = _lookup(registry, "model", model_config["name"], "model.name")
    model_config["options"] = validate(model.options, model_config["options"], "model.options")
    multiple = model.size_multiple(model_config["options"])
    size = model_config["image_size"]
    for side, value in zip(("height", "width"), size, strict=True):
        if value % multiple:
            lower, upper = nearest_multiples(value, multiple)
            raise ConfigError(
                f"model.image_size: {side} {value} is not a multiple of {multiple} "
                f"(required by model '{model.name}' with these options); nearest valid sizes: {lower} or {upper}"
            )


def require_model(config: Mapping) -> str:
    """The config's model name; a config without one gets an error saying how to name it."""
    from flexplat.plugins import get_registry

    name = config.get("model", {}).get("name")
    if not name:
        known = ", ".join(get_registry().names("model")) or "none installed"
        raise ConfigError(
            f"model.name: no model named; a project names its model, or set it in your config, e.g. "
            f"`model: {{name: MODEL}}` (installed models: {known})"
        )
    return name


def _lookup(registry: Any, kind: str, name: str, path: str) -> Any:
    """A registry item named by the config; an unknown name is a ConfigError naming the key."""
    from flexplat.errors import RegistryError

    try:
        return registry.get(kind, name)
    except RegistryError as exc:
        raise ConfigError(f"{path}: {exc}") from None


def _validate_classes(classes: list) -> None:
    if not classes:
        raise ConfigError(
            "classes: no classes defined; list them in index order, background first, e.g. "
            "classes: [{name: background, color: [0, 0, 0]}, {name: cell, color: [255, 0, 0]}]"
        )
    name_opt = Option("", type=str)
    color_opt = Option([0, 0, 0], item_type=int)
    seen_names: set[str] = set()
    seen_colors: dict[tuple, str] = {}
    for i, entry in enumerate(classes):
        where = f"classes[{i}]"
        if set(entry) - {"name", "color"} or "name" not in entry or "color" not in entry:
            raise ConfigError(f"{where}: must be a mapping with exactly 'name' and 'color', got {entry!r}")
        name = check_value(name_opt, entry["name"], f"{where}.name")
        color = check_value(color_opt, entry["color"], f"{where}.color")
        if len(color) != 3 or any(not 0 <= c <= 255 for c in color):
            raise ConfigError(f"{where}.color: must be [r, g, b] with values 0..255, got {color}")
        if name in seen_names:
            raise ConfigError(f"{where}.name: class '{name}' is listed twice")
        if tuple(color) in seen_colors:
            raise ConfigError(f"{where}.color: {color} is already used by class '{seen_colors[tuple(color)]}'")
        seen_names.add(name)
        seen_colors[tuple(color)] = name


def resolve(
    project: str | None = None,
    config_file: str | Path | None = None,
    sets: Iterable[str] = (),
    options: Mapping | None = None,
    demo: bool = False,
) -> dict:
    """Build the effective config from all layers and validate it."""
    from flexplat.plugins import get_registry

    layers: list[tuple[str, Mapping]] = []
    user = load_yaml(config_file) if config_file else {}
    project = project or user.get("project")
    if project:
        spec = get_registry().get("project", project)
        layers.append((f"project '{project}' defaults", {**spec.config, "project": project}))
        if demo:
            if spec.demo_config is None:
                raise ConfigError(f"project '{project}' has no demo configuration")
            layers.append((f"project '{project}' demo", spec.demo_config))
    elif demo:
        raise ConfigError("--demo needs a project, e.g. `flexplat train leukocyte --demo`")
    if config_file:
        layers.append((str(config_file), user))
    for expr in sets:
        layers.append((f"--set {expr}", parse_set(expr)))
    if options:
        layers.append(("command-line options", options))
    return validate_config(layer(layers))


def dump_yaml(config: Mapping) -> str:
    """The config as YAML text, keys in schema order."""
    return yaml.safe_dump(dict(config), sort_keys=False, default_flow_style=None)
