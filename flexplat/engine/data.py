"""Where a run's data comes from: the dataset folder, its pairs per split, its fingerprint."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from rich.console import Console

from flexplat.errors import ConfigError, DataError
from flexplat.plugins import get_registry


def ensure_demo_data(config: dict, console: Console) -> None:
    """For --demo: generate the project's demo dataset into data.root unless it is already there."""
    project = get_registry().get("project", config["project"])
    root = Path(config["data"]["root"] or "")
    if not config["data"]["root"]:
        raise ConfigError(f"project '{project.name}': its demo config sets no data.root")
    if (root / "dataset.yaml").is_file():
        console.print(f"Reusing the demo dataset in {root}")
        return
    if project.make_demo_data is None:
        raise ConfigError(f"project '{project.name}' has no demo data generator")
    if root.exists() and any(root.iterdir()):
        raise DataError(f"{root}: the demo dataset folder holds files but no dataset.yaml; move them or pass --data")
    console.print(f"Generating the demo dataset in {root} ...")
    project.make_demo_data(root, config["data"]["split"]["seed"])


def report_labels(config: Mapping[str, Any]) -> dict[str, str]:
    """What reports call an object and its class: the project's labels, else "object" / "object class"."""
    name = config.get("project")
    registry = get_registry()
    if name and name in registry.names("project"):
        spec = registry.get("project", name)
        return {"object": spec.object_label, "class": spec.class_label}
    return {"object": "object", "class": "object class"}


def dataset_fingerprint(root: str | Path, pairs: Mapping[str, list[Any]]) -> str:
    """sha256 of the dataset manifest if there is one, else of every pair's names and sizes."""
    manifest = Path(root) / "dataset.yaml"
    digest = hashlib.sha256()
    if manifest.is_file():
        digest.update(manifest.read_bytes())
    else:
        for split in sorted(pairs):
            for pair in pairs[split]:
                for path in (pair.image, pair.mask):
                    digest.update(f"{split}:{path.name}:{path.stat().st_size}\n".encode())
    return digest.hexdigest()


def load_splits(config: dict, console: Console) -> tuple[Any, dict[str, list[Any]]]:
    """The codec and the checked pairs of each split (train, valid, test) of a resolved config.

    Runs the data layer's quick check first, so a run never dies an hour in on a bad file; in
    lenient mode the unusable pairs are skipped and counted.
    """
    from flexplat.data.check import quick_check
    from flexplat.data.layout import get_codec, resolve_split_scans

    codec = get_codec(config)
    project = get_registry().get("project", config["project"]) if config.get("project") else None
    scans = resolve_split_scans(config, codec, project.original_id if project else None)
    checked = quick_check(config, scans, codec=codec, seed=config["train"]["seed"])
    if checked.skipped:
        problems = len(checked.problems)
        console.print(f"[yellow]lenient:[/] skipping {checked.skipped} unusable pairs ({problems} problems)")
    splits = {name: scan.pairs for name, scan in checked.apply(scans).items()}
    if not splits["train"]:
        raise DataError(f"{config['data']['root']}: no training pairs found")
    return codec, splits


# -- building the config of `flexplat data check TARGET` -----------------------------------------


def check_target_config(
    target: str | None,
    data_dir: str | None = None,
    config_file: str | None = None,
    sets: Iterable[str] = (),
    lenient: bool = False,
) -> tuple[dict, Callable[[str], str] | None]:
    """The validated config (and the project's ``original_id``) for ``flexplat data check``.

    ``target`` is a project name or a dataset folder. For a folder: it becomes ``data.root``;
    classes come from ``--config``/``--set`` or the folder's ``dataset.yaml`` (key ``classes``);
    the split folders are detected (:func:`~flexplat.data.layout.detect_layout`) unless the
    config names them. ``--data`` overrides the root.
    """
    from flexplat.config import load_yaml, resolve
    from flexplat.data.layout import detect_layout

    sets = list(sets)
    project = None
    root = Path(data_dir).expanduser() if data_dir else None
    if target and Path(target).expanduser().is_dir():
        root = root or Path(target).expanduser()
    elif target:
        if target not in get_registry().names("project"):
            known = ", ".join(get_registry().names("project")) or "none installed"
            raise DataError(f"{target}: neither a dataset folder nor an installed project (projects: {known})")
        project = target
    if not target and not config_file:
        raise ConfigError("give a PROJECT, a dataset folder, or --config FILE")
    options: dict[str, Any] = {"data": {}}
    if root is not None:
        options["data"]["root"] = str(root)
    if lenient:
        options["data"]["lenient"] = True
    if project is None and root is not None:
        user = load_yaml(config_file) if config_file else {}
        given = "classes" in user or user.get("project") or any(s.split("=", 1)[0].strip() == "classes" for s in sets)
        if not given:
            manifest = root / "dataset.yaml"
            classes = load_yaml(manifest).get("classes") if manifest.is_file() else None
            if not classes:
                raise ConfigError(
                    f"{root}: no classes known for this dataset; pass --config FILE holding a `classes` list "
                    f"([{{name, color: [r, g, b]}}], index order, background first), or put `classes:` in "
                    f"{manifest}"
                )
            options["classes"] = classes
    config = resolve(project, config_file, sets, options)
    if root is not None and not config["data"]["train"]["images"]:
        options["data"].update(detect_layout(root))
        config = resolve(project, config_file, sets, options)
    original_id = None
    if config.get("project"):
        original_id = get_registry().get("project", config["project"]).original_id
    return config, original_id


def folder_pairs(
    run: Any, root: Path, config_file: str | Path | None, sets: Iterable[str], console: Console
) -> tuple[Any, list[Any], Any, dict]:
    """Every labelled pair of a plain dataset folder, read as the run's classes.

    The folder's config is the run's, with ``--config``/``--set`` layered on top (e.g. another
    codec, or the folder's own class colours), the split folders detected unless named, and no
    split carved off: every pair is scored. Returns ``(codec, pairs, remap, infer settings)``; ``remap``
    maps the folder's class indices to the run's by class name (None when they already agree).
    """
    import numpy as np

    from flexplat.config import layer, load_yaml, parse_set, validate_config
    from flexplat.data.layout import detect_layout, get_codec, resolve_split_scans

    if not root.is_dir():
        raise DataError(f"{root}: no such dataset folder (--data must be a folder of images and masks)")
    base = run.config()
    base["data"].update(root=str(root), train=None, valid=None, test=None, split={"valid": 0.0, "test": 0.0})
    layers: list[tuple[str, Mapping]] = [(f"{run.path} config", base)]
    if config_file:
        layers.append((str(config_file), load_yaml(config_file)))
    layers += [(f"--set {expr}", parse_set(expr)) for expr in sets]
    merged = layer(layers)
    if not (merged["data"].get("train") or {}).get("images"):
        merged["data"].update(detect_layout(root))
    config = validate_config(merged)
    remap = class_remap([c["name"] for c in config["classes"]], [c["name"] for c in base["classes"]], root)
    codec = get_codec(config)
    scans = resolve_split_scans(config, codec, None)
    pairs = [pair for scan in scans.values() for pair in scan.pairs]
    unmatched = sum(len(scan.images_without_mask) + len(scan.masks_without_image) for scan in scans.values())
    if unmatched:
        console.print(f"[yellow]{root}: {unmatched} images or masks without a partner are left out[/]")
    return codec, pairs, None if remap is None else np.asarray(remap, np.uint8), config["infer"]


def class_remap(folder: list[str], run: list[str], root: Path) -> list[int] | None:
    """Folder class index -> run class index, by name; None when identical; an error names strays."""
    if folder == run:
        return None
    unknown = [name for name in folder if name not in run]
    if unknown:
        raise DataError(
            f"{root}: classes {unknown} are not classes of the run ({run}); name the folder's classes as the run "
            f"does (--config FILE with `classes: [{{name, color}}]`)"
        )
    return [run.index(name) for name in folder]
