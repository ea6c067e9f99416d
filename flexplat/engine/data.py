"""Where a run's data comes from: the dataset folder, its pairs per split, its fingerprint."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
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
