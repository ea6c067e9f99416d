"""``flexplat config import``: turn an original experiment's ``train_eval_infer.config`` into a flexplat YAML.

Every key of the file ends in one of three places: a flexplat config key (``mapped``), a command-line
option it becomes (``command``), or the ``unmapped`` table with the reason it has no flexplat meaning.
Nothing is dropped silently. The model section is mapped by the installed model plugin that claims the
original model name (``ModelSpec.import_names`` / ``import_options``), so the core names no model.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from flexplat.atomic import atomic_write_text
from flexplat.errors import ConfigError
from flexplat.migrate_ini import Entry, IniFile, read_ini

SECTIONS = (
    "model", "dataset", "train", "valid", "test", "eval", "infer", "tiledinfer", "infer3d", "segmentation",
    "image", "mask", "debug", "generator", "augmentor", "deformation", "distortion", "barrdistortion",
    "pincdistortion", "sharpening", "brightening",
)  # fmt: skip
"""Sections the original code reads; any other section is an error (a typo would lose settings)."""

NO_MEANING: dict[str, str] = {
    "model.generator": "flexplat always streams batches from disk (tf.data); there is no in-RAM mode",
    "model.metrics": "flexplat reports per-class Dice/IoU and the original's dice_coef_multiclass as seed_dice",
    "model.show_summary": "use `flexplat info MODEL` for the layout and parameter count",
    "model.num_classes": "checked against rgb_map; the class list defines the count",
    "model.hybrid_alpha": "weights of the original's focal+Dice hybrid loss; flexplat's ce_dice has dice_weight",
    "model.hybrid_beta": "weights of the original's focal+Dice hybrid loss; flexplat's ce_dice has dice_weight",
    "dataset.class_name": "the dataset format is the codec (rgb-mask for colour masks)",
    "train.metrics": "flexplat records loss and every metric, train and valid, in metrics.csv and plots/",
    "train.model_dir": "the run folder (runs/<project>/<time>/model.keras, or --out)",
    "train.eval_dir": "the run folder (metrics.csv, plots/)",
    "train.create_backup": "runs are never overwritten: each training run gets a new folder",
    "train.save_weights_only": "flexplat saves the whole model (model.keras) of the best epoch",
    "train.epoch_change_infer_dir": "written to RUN/epoch_infer/",
    "train.epoch_change_tiled_infer": "epoch-change inference runs on whole images (tiling is automatic in infer)",
    "train.epoch_change_tiled_infer_dir": "written to RUN/epoch_infer/",
    "train.validation_steps": "validation always covers the whole valid split",
    "infer.output_dir": "`flexplat infer --output DIR` (default RUN/predictions/<images folder name>)",
    "tiledinfer.output_dir": "`flexplat infer --output DIR`",
    "tiledinfer.split_size": "`flexplat infer --tile-size PX` (default: the model input)",
    "image.color_order": "flexplat reads images as RGB; convert BGR images to RGB first",
    "image.file_format": "flexplat reads image files (PNG, JPEG, TIFF, BMP); NPY volumes are not read",
    "mask.mask_datatype": "masks are categorised by colour through rgb_map (classes)",
    "mask.mask_datatyoe": "masks are categorised by colour through rgb_map (classes)",
    "mask.mask_file_format": "the codec reads image files; convert .npz masks to colour PNG masks first",
    "debug.verbose": "flexplat prints a progress bar and a line per epoch",
}
"""Original keys with no flexplat config meaning -> what replaces them (shown in the unmapped table)."""

COMMANDS = {
    "infer.images_dir": "flexplat infer --images {value}",
    "tiledinfer.images_dir": "flexplat infer --images {value} --tile",
}
"""Original keys that become a command-line option rather than a config key."""

_OPTIMIZERS = {"adam": "adam", "adamw": "adamw", "sgd": "sgd", "rmsprop": "rmsprop"}
_LOSSES = {"categorical_crossentropy": "categorical_crossentropy", "categorical_focal_dice_loss": "ce_dice"}
_SPLITS = ("train", "valid", "test")


@dataclass
class OriginalImport:
    """The flexplat config built from an original file, and where each original key went."""

    source: Path
    config: dict
    mapped: list[tuple[str, int, str]] = field(default_factory=list)
    """(original ``section.key``, line, flexplat key or command)"""
    unmapped: list[tuple[str, int, str]] = field(default_factory=list)
    """(original ``section.key``, line, why it has no flexplat meaning)"""
    notes: list[str] = field(default_factory=list)

    def to_yaml(self, name: str | None = None) -> str:
        """The config as commented YAML, the unmapped keys listed in its header."""
        return to_yaml(self, name)


class _Importer:
    """The mapping of one file; each ``_map_*`` method consumes the keys it understands."""

    def __init__(self, ini: IniFile, name: str | None) -> None:
        self.ini = ini
        self.result = OriginalImport(ini.path, {})
        self.used: set[tuple[str, str]] = set()
        self.name = name

    # -- helpers ---------------------------------------------------------------------------
    def entry(self, section: str, key: str) -> Entry | None:
        return self.ini.get(section, key)

    def value(self, section: str, key: str, default: Any = None) -> Any:
        entry = self.entry(section, key)
        return default if entry is None else self.ini.value(entry)

    def put(self, section: str, key: str, target: str, value: Any) -> None:
        """Set ``target`` (dotted) to ``value`` and record where ``section.key`` went."""
        node = self.result.config
        *parents, last = target.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[last] = value
        self.use(section, key, target)

    def use(self, section: str, key: str, target: str) -> None:
        entry = self.entry(section, key)
        if entry is not None and (section, key) not in self.used:
            self.used.add((section, key))
            self.result.mapped.append((f"{section}.{key}", entry.line, target))

    def error(self, section: str, key: str, message: str) -> ConfigError:
        entry = self.entry(section, key)
        where = f"{self.ini.path}:{entry.line}" if entry else str(self.ini.path)
        return ConfigError(f"{where}: [{section}] {key}: {message}")

    def run(self) -> OriginalImport:
        self._check_sections()
        self._map_classes()
        self._map_model()
        self._map_train()
        self._map_callbacks()
        self._map_data()
        self._map_infer()
        self._map_augmentor()
        self._collect_rest()
        return self.result

    def _check_sections(self) -> None:
        for section, line in self.ini.section_lines.items():
            if section not in SECTIONS:
                raise ConfigError(
                    f"{self.ini.path}:{line}: unknown section [{section}]; the original configs use "
                    f"{', '.join(f'[{s}]' for s in SECTIONS)}"
                )
        if "model" not in self.ini.sections:
            raise ConfigError(f"{self.ini.path}: no [model] section: is this a train_eval_infer.config?")

    # -- classes ---------------------------------------------------------------------------
    def _map_classes(self) -> None:
        entry = self.entry("mask", "rgb_map")
        if entry is None:
            raise ConfigError(
                f"{self.ini.path}: [mask] rgb_map is missing: flexplat needs the mask colour of every class, e.g. "
                "rgb_map = {(0,0,0):0, (255,0,0):1}"
            )
        self.result.config["classes"] = classes_from_rgb_map(self.ini, entry)
        self.use("mask", "rgb_map", "classes")
        declared = self.value("model", "num_classes")
        count = len(self.result.config["classes"])
        if declared is not None and declared != count:
            raise self.error("model", "num_classes", f"{declared} classes, but rgb_map lists {count}")
        self.use("model", "num_classes", "classes (the count is checked)")
        if str(self.value("mask", "mask_file_format", ".png")).lower() in (".png", ".jpg", ".bmp", ".tif", ".tiff"):
            self.use("mask", "mask_file_format", "data.codec (rgb-mask reads colour or grey image masks)")
        if self.value("image", "color_order", "RGB") == "RGB":
            self.use("image", "color_order", "(flexplat reads images as RGB)")
        self.result.config["data"] = {"codec": "rgb-mask"}
        if self.value("dataset", "class_name", "ImageCategorizedMaskDataset") == "ImageCategorizedMaskDataset":
            self.use("dataset", "class_name", "data.codec (rgb-mask)")

    # -- model -----------------------------------------------------------------------------
    def _map_model(self) -> None:
        original = self.value("model", "model")
        if not isinstance(original, str):
            raise self.error("model", "model", "missing or not a quoted model name")
        specs = [s for s in _models() if original in s.import_names]
        if not specs:
            raise self.error(
                "model", "model", f"{original!r} is not available as a flexplat model yet (installed models that "
                "read original configs: " + (", ".join(_importers()) or "none") + ")"
            )  # fmt: skip
        spec = specs[0]
        self.put("model", "model", "model.name", spec.name)
        section = {e.key: self.ini.value(e) for e in self.ini.sections["model"].values()}
        try:
            options, used = spec.import_options(section) if spec.import_options else ({}, [])
        except ConfigError as exc:
            key = str(exc).split(":", 1)[0]
            raise self.error("model", key, str(exc).split(":", 1)[-1].strip()) from None
        self.result.config["model"]["options"] = options
        for key in used:
            self.use("model", key, f"model.options.{key}")
        self._map_input()

    def _map_input(self) -> None:
        height, width = self.value("model", "image_height"), self.value("model", "image_width")
        for key, value in (("image_height", height), ("image_width", width)):
            if not isinstance(value, int) or value < 1:
                raise self.error("model", key, f"must be a positive integer, got {value!r}")
        self.put("model", "image_height", "model.image_size", [height, width])
        self.use("model", "image_width", "model.image_size")
        channels = self.value("model", "image_channels", 3)
        if not isinstance(channels, int) or channels < 1:
            raise self.error("model", "image_channels", f"must be a positive integer, got {channels!r}")
        self.put("model", "image_channels", "model.channels", channels)

    # -- training --------------------------------------------------------------------------
    def _map_train(self) -> None:
        self.result.config.setdefault("train", {})
        optimizer = self.value("model", "optimizer")
        if optimizer is not None:
            key = str(optimizer).lower()
            if key not in _OPTIMIZERS:
                raise self.error("model", "optimizer", f"{optimizer!r} has no flexplat equivalent; use one of "
                                 f"{', '.join(_OPTIMIZERS)}")  # fmt: skip
            self.put("model", "optimizer", "train.optimizer", _OPTIMIZERS[key])
        for key, kind in (("learning_rate", float), ("clipvalue", float)):
            value = self.value("model", key)
            if value is not None and value != "None":
                if not isinstance(value, int | float) or isinstance(value, bool):
                    raise self.error("model", key, f"must be a number, got {value!r}")
                self.put("model", key, f"train.{key}", kind(value))
            elif self.entry("model", key):
                self.use("model", key, f"train.{key} (none)")
        self._map_loss()
        for key in ("epochs", "batch_size", "steps_per_epoch"):
            value = self.value("train", key)
            if value is not None and value != "None":
                if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                    raise self.error("train", key, f"must be a positive integer, got {value!r}")
                self.put("train", key, f"train.{key}", value)

    def _map_loss(self) -> None:
        loss = self.value("model", "loss")
        if loss is None:
            return
        if loss not in _LOSSES:
            raise self.error("model", "loss", f"{loss!r} has no flexplat equivalent; flexplat losses: "
                             "categorical_crossentropy, dice, ce_dice, focal")  # fmt: skip
        self.put("model", "loss", "train.loss", _LOSSES[loss])
        if _LOSSES[loss] != loss:
            self.result.notes.append(
                f"loss {loss!r} (focal + Dice) became 'ce_dice' (cross-entropy + Dice), the nearest flexplat loss; "
                "use 'focal' for the focal part alone"
            )

    def _map_callbacks(self) -> None:
        callbacks: dict[str, Any] = {"checkpoint": {}, "csv_plots": {}, "progress": {}}
        patience = self.value("train", "patience")
        if patience is not None:
            callbacks["early_stopping"] = {"patience": self._positive("train", "patience", patience)}
            self.use("train", "patience", "train.callbacks.early_stopping.patience")
        reducer = self.value("train", "learning_rate_reducer", False)
        if reducer:
            options = {}
            for key, target, default in (("reducer_factor", "factor", 0.5), ("reducer_patience", "patience", 4)):
                value = self.value("train", key, default)
                options[target] = float(value) if target == "factor" else self._positive("train", key, value)
                self.use("train", key, f"train.callbacks.reduce_lr.{target}")
            callbacks["reduce_lr"] = options
        else:
            for key in ("reducer_factor", "reducer_patience"):
                self._unmapped_entry("train", key, "learning_rate_reducer is off (reduce_lr not enabled)")
        self.use("train", "learning_rate_reducer", "train.callbacks.reduce_lr")
        if self.value("train", "epoch_change_infer", False):
            count = self._positive("train", "num_infer_images", self.value("train", "num_infer_images", 6))
            callbacks["epoch_change_infer"] = {"num_images": count}
            self.use("train", "num_infer_images", "train.callbacks.epoch_change_infer.num_images")
        else:
            self._unmapped_entry("train", "num_infer_images", "epoch_change_infer is off")
        self.use("train", "epoch_change_infer", "train.callbacks.epoch_change_infer")
        self.result.config["train"]["callbacks"] = callbacks

    def _positive(self, section: str, key: str, value: Any) -> int:
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise self.error(section, key, f"must be a positive integer, got {value!r}")
        return value

    # -- data ------------------------------------------------------------------------------
    def _map_data(self) -> None:
        folders: dict[tuple[str, str], str] = {}
        for split in _SPLITS:
            for key in ("images_dir", "masks_dir"):
                value = self.value(split, key)
                if value is not None:
                    if not isinstance(value, str) or not value.strip():
                        raise self.error(split, key, f"must be a quoted folder path, got {value!r}")
                    folders[(split, key)] = os.path.normpath(value.strip())
        if not folders:
            self.result.notes.append("no [train] images_dir/masks_dir: give the dataset folder with --data")
            return
        base = os.path.commonpath([_before_glob(p) for p in folders.values()])
        data = self.result.config["data"]
        data["root"] = str((self.ini.path.parent / base).resolve()) if base not in ("", ".") else None
        for (split, key), path in folders.items():
            relative = os.path.relpath(path, base) if base else path
            self.put(split, key, f"data.{split}.{key.split('_')[0]}", relative.replace(os.sep, "/"))
        for split in _SPLITS:
            pair = data.get(split, {})
            if len(pair) == 1:
                raise self.error(split, "images_dir" if "masks" in pair else "masks_dir",
                                 "images_dir and masks_dir come in pairs; this split gives only one")  # fmt: skip

    # -- inference -------------------------------------------------------------------------
    def _map_infer(self) -> None:
        for name, template in COMMANDS.items():
            section, key = name.split(".")
            entry = self.entry(section, key)
            if entry is not None:
                value = self.value(section, key)
                if isinstance(value, str):
                    value = (self.ini.path.parent / value).resolve()
                self.used.add((section, key))
                self.result.mapped.append((name, entry.line, template.format(value=value)))
        overlap = self.value("tiledinfer", "overlapping")
        if overlap is not None:
            side = min(self.result.config["model"]["image_size"])
            if not isinstance(overlap, int | float) or not 0 <= overlap < side:
                raise self.error("tiledinfer", "overlapping", f"must be pixels between 0 and {side}, got {overlap!r}")
            self.put("tiledinfer", "overlapping", "infer.tile_overlap", round(min(0.75, overlap / side), 4))

    def _map_augmentor(self) -> None:
        if "augmentor" not in self.ini.sections:
            return
        augment: dict[str, Any] = {}
        if self.value("augmentor", "hflip", False) or self.value("augmentor", "vflip", False):
            augment["flip"] = True
            for key in ("hflip", "vflip"):
                self.use("augmentor", key, "train.augment.flip")
        angles = self.value("augmentor", "angles", []) if self.value("augmentor", "rotation", False) else []
        if angles and all(int(a) % 90 == 0 for a in angles):
            augment["rot90"] = True
        elif angles:
            augment["rotate_degrees"] = float(max(min(abs(float(a)), 360 - abs(float(a))) for a in angles))
        if angles:
            self.use("augmentor", "rotation", "train.augment.rot90/rotate_degrees")
            self.use("augmentor", "angles", "train.augment.rot90/rotate_degrees")
        if augment:
            self.result.config["train"]["augment"] = augment

    # -- everything else -------------------------------------------------------------------
    def _unmapped_entry(self, section: str, key: str, reason: str) -> None:
        entry = self.entry(section, key)
        if entry is not None and (section, key) not in self.used:
            self.used.add((section, key))
            self.result.unmapped.append((f"{section}.{key}", entry.line, reason))

    def _collect_rest(self) -> None:
        for section, entries in self.ini.sections.items():
            for key, entry in entries.items():
                if (section, key) in self.used:
                    continue
                reason = NO_MEANING.get(f"{section}.{key}") or _section_reason(section)
                try:
                    self.ini.value(entry)
                except ConfigError as exc:
                    reason = f"{reason}; its value is not a literal ({str(exc).rsplit(': ', 1)[-1]})"
                self._unmapped_entry(section, key, reason)


def _section_reason(section: str) -> str:
    return {
        "infer3d": "3D (NIfTI/NPY volume) inference has no flexplat equivalent yet",
        "infer": "flexplat infer takes its settings as options",
        "generator": "offline dataset generation is a project's `flexplat generate` command",
        "augmentor": "no flexplat augmentation equivalent (see train.augment)",
        "segmentation": "no flexplat equivalent",
        "eval": "`flexplat evaluate RUN` writes evaluation.json in the run folder",
    }.get(section, "not a key flexplat knows")


def _before_glob(path: str) -> str:
    """The folder part of ``path`` before its first wildcard component."""
    parts = Path(path).parts
    for i, part in enumerate(parts):
        if any(c in part for c in "*?["):
            return str(Path(*parts[:i])) if i else ""
    return path


def _models() -> list[Any]:
    from flexplat.plugins import get_registry

    return [entry.item for entry in get_registry().entries("model")]


def _importers() -> list[str]:
    return [f"{s.name} ({', '.join(s.import_names)})" for s in _models() if s.import_names]


# -- classes from rgb_map -----------------------------------------------------------------
_PAIR = re.compile(r"([A-Za-z][\w\-/.]*(?: [A-Za-z][\w\-/.]*)*)\s*[:;]\s*([A-Za-z_]+)")
_QUOTED = re.compile(r"[\"']([^\"']+)[\"']\s*:\s*\(\s*(\d+)\s*,\s*(\d+)\s*,\s*(\d+)\s*,?\s*\)")


def classes_from_rgb_map(ini: IniFile, entry: Entry) -> list[dict]:
    """``rgb_map`` -> flexplat classes in index order; names from the comments above it, else ``class_N``."""
    rgb_map = ini.value(entry)
    where = f"{ini.path}:{entry.line}: [mask] rgb_map"
    if not isinstance(rgb_map, dict) or not rgb_map:
        raise ConfigError(f"{where}: must be a dict of colour -> class index, e.g. {{(0,0,0):0, (255,0,0):1}}")
    by_index: dict[int, list[int]] = {}
    for colour, index in rgb_map.items():
        rgb = _colour(colour)
        if rgb is None or not isinstance(index, int) or isinstance(index, bool):
            raise ConfigError(f"{where}: {colour!r}: {index!r} is not an (r, g, b) colour (or grey level) -> index")
        if index in by_index:
            raise ConfigError(f"{where}: class index {index} is given twice ({by_index[index]} and {rgb})")
        by_index[index] = rgb
    if sorted(by_index) != list(range(len(by_index))):
        raise ConfigError(f"{where}: class indices must be 0..{len(by_index) - 1}, got {sorted(by_index)}")
    colours = [by_index[i] for i in range(len(by_index))]
    names = class_names(entry.comments, colours)
    return [{"name": name, "color": colour} for name, colour in zip(names, colours, strict=True)]


def _colour(value: Any) -> list[int] | None:
    """``(r, g, b)`` or a grey level ``g`` as ``[r, g, b]``; None when it is neither."""
    if isinstance(value, int) and not isinstance(value, bool):
        value = (value, value, value)
    if isinstance(value, tuple | list) and len(value) == 1:
        value = tuple(value) * 3
    if isinstance(value, tuple | list) and len(value) == 3:
        if all(isinstance(c, int) and not isinstance(c, bool) and 0 <= c <= 255 for c in value):
            return [int(c) for c in value]
    return None


def class_names(comments: list[str], colours: list[list[int]]) -> list[str]:
    """Class names said by the comment lines above ``rgb_map`` (closest first), else ``class_N``.

    Understands ``name:colour`` lists (``baso:blue, eosi:green``), with or without the background,
    and ``{"Glioma":(255,255,0), ...}`` maps matched by colour. Names must come out unique.
    """
    fallback = ["background"] + [f"class_{i}" for i in range(1, len(colours))]
    for line in reversed(comments):
        quoted = {tuple(int(c) for c in m.groups()[1:]): m.group(1) for m in _QUOTED.finditer(line)}
        if quoted:
            names = [fallback[i] if i == 0 else quoted.get(tuple(c), fallback[i]) for i, c in enumerate(colours)]
            if names != fallback:
                return _unique(names, fallback)
            continue
        found = [_clean(m.group(1)) for m in _PAIR.finditer(line)]
        found = [n for n in found if n]
        if len(found) == len(colours):
            return _unique(["background", *found[1:]], fallback)
        if len(found) == len(colours) - 1 and found:
            return _unique(["background", *found], fallback)
    return fallback


def _clean(name: str) -> str:
    name = re.sub(r"^\d+[.\s]*", "", name.strip())
    return re.sub(r"\s+", "_", name.strip(" ,.;"))


def _unique(names: list[str], fallback: list[str]) -> list[str]:
    lowered = [n.lower() for n in names]
    return names if len(set(lowered)) == len(names) and all(names) else fallback


# -- entry points -------------------------------------------------------------------------
def import_original_config(path: str | Path, name: str | None = None) -> OriginalImport:
    """Map the original config at ``path``; ``name`` labels the result (default: the file's folder)."""
    ini = read_ini(path)
    result = _Importer(ini, name).run()
    result.config = _ordered(result.config)
    return result


def _ordered(config: dict) -> dict:
    order = ("classes", "data", "model", "train", "infer")
    return {key: config[key] for key in order if key in config}


def to_yaml(result: OriginalImport, name: str | None = None) -> str:
    """The imported config as commented YAML (the unmapped keys listed in the header)."""
    label = name or result.source.parent.name or result.source.stem
    lines = [f"# {label}: imported by `flexplat config import` from {result.source}"]
    lines += [f"# note: {note}" for note in result.notes]
    if result.unmapped:
        lines.append("# original keys with no flexplat meaning (not imported):")
        lines += [f"#   {key} (line {line}): {reason}" for key, line, reason in result.unmapped]
    commands = [target for key, _, target in result.mapped if target.startswith("flexplat ")]
    lines += [f"# run: {command}" for command in commands]
    body = yaml.safe_dump(result.config, sort_keys=False, default_flow_style=None)
    return "\n".join(lines) + "\n" + body


def write_config(result: OriginalImport, out: str | Path, overwrite: bool = False, name: str | None = None) -> Path:
    """Write the YAML atomically; an existing file is kept unless ``overwrite``."""
    out = Path(out)
    if out.exists() and not overwrite:
        raise ConfigError(f"{out}: already exists; pass --overwrite to replace it")
    atomic_write_text(out, to_yaml(result, name))
    return out


def render_import(result: OriginalImport, target: Path, console: Any) -> None:
    """Print where the YAML went, the notes, the unmapped keys as a table and the commands to run next."""
    from rich.table import Table

    console.print(f"Imported {result.source} -> [bold]{target}[/] ({len(result.mapped)} keys mapped)")
    for note in result.notes:
        console.print(f"[yellow]note:[/] {note}")
    if result.unmapped:
        table = Table(title="Original keys with no flexplat meaning (not imported)", title_justify="left")
        for column in ("key", "line", "why / what replaces it"):
            table.add_column(column, overflow="fold")
        for key, line, reason in result.unmapped:
            table.add_row(key, str(line), reason)
        console.print(table)
    commands = [t for _, _, t in result.mapped if t.startswith("flexplat ")]
    console.print(f"Next: flexplat config show --config {target}")
    console.print(f"      flexplat train --config {target} [--data DATASET_DIR]")
    for command in commands:
        console.print(f"      {command}  (after training; add --run RUN_DIR)")
