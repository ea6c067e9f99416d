"""From a validated config to the file pairs of each split (train / valid / test)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from flexplat.data.codec import Codec, Pair, PairScan, has_glob
from flexplat.data.splits import split_by_original
from flexplat.errors import DataError

SPLITS = ("train", "valid", "test")


def get_codec(config: Mapping[str, Any]) -> Codec:
    """Build the codec named by ``data.codec`` with the config's classes and ``data.codec_options``."""
    from flexplat.plugins import get_registry
    from flexplat.specs import classes_from_config

    spec = get_registry().get("codec", config["data"]["codec"])
    return spec.factory(classes_from_config(config["classes"]), dict(config["data"]["codec_options"]))


def _scan(codec: Codec, folders: Mapping[str, str], root: Path, hint: str, problems: list[str] | None) -> PairScan:
    """One split's scan; a missing folder raises, or is appended to ``problems`` (with its partner's)."""
    missing = [
        f"{path}: no such folder ({hint}"
        for path in (Path(root) / Path(folders[kind]).expanduser() for kind in ("images", "masks"))
        if not has_glob(folders["images"] + folders["masks"]) and not path.is_dir()
    ]
    if missing and problems is not None:
        problems.extend(missing)
        return PairScan([])
    try:
        return codec.scan(folders["images"], folders["masks"], root)
    except DataError as exc:
        if problems is None:
            raise DataError(f"{exc} ({hint}") from None
        problems.append(f"{exc} ({hint}")
        return PairScan([])


def data_hint(config: Mapping[str, Any]) -> str:
    """How the user gets data for this config (the project's hint when it has one)."""
    project = config.get("project")
    hint = "Pass --data DIR (the dataset folder) or set data.root in the config"
    if project:
        from flexplat.plugins import get_registry

        try:
            spec = get_registry().get("project", project)
        except Exception:  # the hint must never hide the real error
            spec = None
        if spec is not None and spec.data_hint:
            return f"{hint}. {spec.data_hint}"
        if spec is not None and spec.generate is not None:
            return f"{hint}, or create a dataset with `flexplat generate {project}`"
    return hint


def data_root(config: Mapping[str, Any]) -> Path:
    """``data.root`` as a Path; DataError when it is unset or missing."""
    root = config["data"]["root"]
    if not root:
        raise DataError(f"data.root is not set: no dataset folder given. {data_hint(config)}.")
    path = Path(root).expanduser()
    if not path.is_dir():
        raise DataError(f"{path}: dataset folder (data.root) not found. {data_hint(config)}.")
    return path


def folder_label(pattern: str, root: Path) -> Callable[[Pair], str] | None:
    """For a glob layout (``train/*/images``) label each pair by its image folder, else None.

    In such layouts the folder is usually the class (``train/basophil/images``), which makes it
    a cheap stratification label for carving valid/test out of train.
    """
    if not has_glob(pattern):
        return None

    def label(pair: Pair) -> str:
        parent = pair.image.parent
        try:
            return parent.relative_to(root).as_posix()
        except ValueError:
            return parent.as_posix()

    return label


def _default_label(codec: Codec, pattern: str, root: Path) -> Callable[[Pair], str]:
    """Stratify by the codec's own label of a pair when it has one, else by folder (glob layouts)."""
    folder = folder_label(pattern, root)

    def label(pair: Pair) -> str:
        own = codec.split_label(pair)
        if own is not None:
            return str(own)
        return folder(pair) if folder is not None else ""

    return label


def resolve_split_scans(
    config: Mapping[str, Any],
    codec: Codec,
    original_id: Callable[[str], str] | None = None,
    label_of: Callable[[Pair], str] | None = None,
    problems: list[str] | None = None,
) -> dict[str, PairScan]:
    """The pairs of ``train``, ``valid`` and ``test``.

    Split folders come from ``data.<split>.images/masks`` (relative to ``data.root``). A
    split without a folder is carved out of train by ORIGINAL image (``original_id(stem)``,
    default: the stem itself) with the ``data.split`` fractions and seed, stratified by
    ``label_of(pair)`` (default: the codec's :meth:`~flexplat.data.codec.Codec.split_label`, else the
    image folder in a glob layout, else no stratification).
    Files without a partner are reported in the scan of the split whose folder holds them.
    A missing split folder raises DataError; with a ``problems`` list (``data check``) every missing
    folder is appended to it instead and that split is empty, so one pass reports them all.
    """
    data = config["data"]
    root = data_root(config)
    for split in SPLITS:
        if bool(data[split]["images"]) != bool(data[split]["masks"]):
            missing = "masks" if data[split]["images"] else "images"
            raise DataError(f"data.{split}.{missing} is not set: give both images and masks folders for {split}")
    if not data["train"]["images"]:
        raise DataError(
            "data.train.images is not set: name the training images and masks folders, e.g. "
            "--set data.train.images=train/images --set data.train.masks=train/masks"
        )
    scans: dict[str, PairScan] = {}
    for split in SPLITS:
        if data[split]["images"]:
            hint = f"training data, data.train). {data_hint(config)}." if split == "train" else f"data.{split})"
            scans[split] = _scan(codec, data[split], root, hint, problems)

    carve = {s: float(data["split"][s]) for s in ("valid", "test") if s not in scans and data["split"][s] > 0}
    if carve:
        train = scans["train"]
        ids = (lambda p: str(original_id(p.stem))) if original_id else (lambda p: p.stem)
        label = label_of or _default_label(codec, data["train"]["images"], root)
        parts = split_by_original(train.pairs, ids, carve, int(data["split"]["seed"]), label)
        scans["train"] = PairScan(parts["train"], train.images_without_mask, train.masks_without_image)
        for split in carve:
            scans[split] = PairScan(parts[split])
    for split in SPLITS:
        scans.setdefault(split, PairScan([]))
    return {split: scans[split] for split in SPLITS}


def split_sources(config: Mapping[str, Any]) -> dict[str, str]:
    """Where each split comes from, for reports: a folder, 'carved from train' or 'none'."""
    data = config["data"]
    sources = {}
    for split in SPLITS:
        if data[split]["images"]:
            sources[split] = f"{data[split]['images']} + {data[split]['masks']}"
        elif split != "train" and data["split"][split] > 0:
            sources[split] = f"{data['split'][split]:.0%} of train"
        else:
            sources[split] = "none"
    return sources


def detect_layout(root: Path) -> dict[str, dict[str, str]]:
    """Guess ``data.<split>.images/masks`` for a dataset folder (for ``flexplat data check DIR``).

    Recognised: ``<split>/images`` + ``<split>/masks``, ``<split>/*/images`` + ``<split>/*/masks``
    (class sub-folders), or a single ``images`` + ``masks`` pair of folders (used as train).
    """
    layout: dict[str, dict[str, str]] = {}
    for split in SPLITS:
        if (root / split / "images").is_dir() and (root / split / "masks").is_dir():
            layout[split] = {"images": f"{split}/images", "masks": f"{split}/masks"}
        elif any(p.is_dir() for p in root.glob(f"{split}/*/images")):
            layout[split] = {"images": f"{split}/*/images", "masks": f"{split}/*/masks"}
    if not layout and (root / "images").is_dir() and (root / "masks").is_dir():
        layout["train"] = {"images": "images", "masks": "masks"}
    if "train" not in layout:
        raise DataError(
            f"{root}: no dataset layout recognised; expected train/images + train/masks, train/*/images + "
            f"train/*/masks, or images + masks folders - or give data.train.images/masks in --config"
        )
    return layout
