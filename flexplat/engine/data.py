"""Where a run's data comes from: the dataset folder, its pairs per split, its fingerprint."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from rich.console import Console

from flexplat.errors import ConfigError, DataError
from flexplat.plugins import get_registry


def ensure_data(config: dict, demo: bool, console: Console) -> None:
    """Check a dataset folder is configured; for --demo, generate the project's demo data if missing."""
    project = get_registry().get("project", config["project"]) if config.get("project") else None
    root = config["data"]["root"]
    hint = f"\n{project.data_hint}" if project and project.data_hint else ""
    if root is None:
        raise DataError(f"no dataset given: pass --data DIR (or set data.root in your config).{hint}")
    root_path = Path(root)
    if demo and not (root_path / "dataset.yaml").is_file():
        if project is None or project.make_demo_data is None:
            raise ConfigError(f"project '{config.get('project')}' has no demo data generator")
        if root_path.exists() and any(root_path.iterdir()):
            raise DataError(
                f"{root_path}: the demo dataset folder holds files but no dataset.yaml; "
                f"move it away or pass --data to another folder"
            )
        console.print(f"Generating the demo dataset in {root_path} ...")
        project.make_demo_data(root_path, config["data"]["split"]["seed"])
    if not root_path.is_dir():
        raise DataError(f"{root_path}: dataset folder not found.{hint}")


def dataset_fingerprint(root: Path, pairs: Mapping[str, list[Any]]) -> str:
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
    """The codec and the checked pairs of each split (train, valid, test) of a resolved config."""
    from flexplat.data.check import quick_check
    from flexplat.data.layout import get_codec, resolve_split_scans

    codec = get_codec(config)
    project = get_registry().get("project", config["project"]) if config.get("project") else None
    original_id = project.original_id if project else None
    scans = resolve_split_scans(config, codec, original_id)
    splits = quick_check(config, scans, codec, console=console)
    if not splits.get("train"):
        raise DataError(f"{config['data']['root']}: no training pairs found")
    if not splits.get("valid"):
        raise DataError(
            f"{config['data']['root']}: no validation pairs; add a valid folder or set data.split.valid > 0"
        )
    return codec, splits
