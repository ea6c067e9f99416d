"""Writing a generated leukocyte dataset: split by original, augment train, manifest, atomic output.

Layout (what the ``rgb-mask`` codec reads)::

    OUT/train/images/<cls>_<n>[_<aug>].png   OUT/train/masks/<same name>.png
    OUT/valid/...                            OUT/test/...
    OUT/dataset.yaml                         (manifest, written last)

The dataset is built in a hidden sibling folder and renamed to ``OUT`` only when complete, so
a crash never leaves a half dataset at ``OUT``; with ``overwrite`` the previous dataset is
replaced only after the new one is complete.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import uuid
import zlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import yaml

from flexplat import DataError, FlexplatError, split_by_original
from flexplat_leukocyte import warp
from flexplat_leukocyte.classes import (
    GENERATOR_NAME,
    GENERATOR_VERSION,
    TYPE_NAMES,
    class_table,
)

SPLITS = ("train", "valid", "test")
MANIFEST = "dataset.yaml"
_REPLACEABLE = {*SPLITS, MANIFEST}


class SkipSample(Exception):
    """Raised by a sample loader for an original that cannot be used (reason in the message)."""


@dataclass(frozen=True)
class Original:
    """One original image: its id (``neut_12``) and class name (``neutrophil``)."""

    id: str
    cls: str


@dataclass(frozen=True)
class GenerateOptions:
    """What every generator run records in its manifest."""

    size: int
    seed: int = 0
    split: tuple[float, float, float] = (0.70, 0.15, 0.15)
    augment: tuple[str, ...] = ()
    parts: bool = False
    warp: warp.WarpOptions = field(default_factory=warp.WarpOptions)


# A loader turns an original into (BGR uint8 image size x size x 3, part labels 0/1/2 size x size).
Loader = Callable[[Original], tuple[np.ndarray, np.ndarray]]


def parse_split(text: str) -> tuple[float, float, float]:
    """``"70/15/15"`` -> ``(0.7, 0.15, 0.15)`` (any positive total; train must be > 0)."""
    parts = text.replace(",", "/").split("/")
    try:
        values = [float(p) for p in parts]
    except ValueError:
        values = []
    if len(values) != 3 or any(v < 0 for v in values) or values[0] <= 0:
        raise ValueError(f"{text!r}: expected TRAIN/VALID/TEST percentages such as 70/15/15 (train > 0)")
    total = sum(values)
    return (values[0] / total, values[1] / total, values[2] / total)


def split_originals(
    originals: Sequence[Original], fractions: tuple[float, float, float], seed: int
) -> dict[str, list[str]]:
    """Assign ORIGINAL ids to train/valid/test with :func:`flexplat.split_by_original`.

    Stratified by class (each class follows the train/valid/test fractions as closely as its
    size allows), reproducible under ``seed`` and independent of the input order: the same
    split flexplat carves from a plain training folder. Ids are listed in natural order.
    """
    parts = split_by_original(
        sorted(originals, key=lambda o: _natural_key(o.id)),
        lambda o: o.id,
        {"valid": fractions[1], "test": fractions[2]},
        seed,
        label=lambda o: o.cls,
    )
    return {s: [o.id for o in parts[s]] for s in SPLITS}


def _natural_key(text: str) -> tuple:
    prefix, _, number = text.rpartition("_")
    return (prefix, int(number)) if number.isdigit() else (text, -1)


def palette(parts: bool) -> np.ndarray:
    """Lookup table class index -> BGR colour (uint8, shape (N, 3))."""
    return np.array([entry["color"][::-1] for entry in class_table(parts)], dtype=np.uint8)


def paint(labels: np.ndarray, cls: str, parts: bool) -> np.ndarray:
    """Part labels (0 background, 1 cytoplasm, 2 nucleus) of a cell of class ``cls`` -> BGR mask."""
    t = TYPE_NAMES.index(cls) + 1
    if parts:
        lut = np.array([0, 2 * t - 1, 2 * t], dtype=np.uint8)
    else:
        lut = np.array([0, t, t], dtype=np.uint8)
    return palette(parts)[lut[labels]]


def encode_png(image: np.ndarray) -> bytes:
    ok, buffer = cv2.imencode(".png", image, [cv2.IMWRITE_PNG_COMPRESSION, 3])
    if not ok:
        raise DataError("OpenCV could not encode a PNG image")
    return buffer.tobytes()


def check_output(out: Path, overwrite: bool) -> None:
    """Refuse an output that would lose data: a file, or a non-empty folder without ``overwrite``.

    Even with ``overwrite``, only a folder that looks like a generated dataset (nothing but
    train/, valid/, test/ and dataset.yaml) is replaced.
    """
    if not out.exists():
        return
    if not out.is_dir():
        raise DataError(f"--out {out}: exists and is not a folder; choose another --out")
    entries = sorted(p.name for p in out.iterdir())
    if not entries:
        return
    if not overwrite:
        raise DataError(
            f"--out {out}: the folder is not empty; pass --overwrite to replace it (the old dataset "
            "is replaced only once the new one is complete) or choose another --out"
        )
    foreign = [name for name in entries if name not in _REPLACEABLE]
    if foreign:
        raise DataError(
            f"--out {out}: holds {', '.join(foreign[:5])}, which a generated dataset never contains; "
            "refusing to replace it even with --overwrite. Remove it yourself or choose another --out"
        )


@contextlib.contextmanager
def staged_output(out: Path, overwrite: bool) -> Iterator[Path]:
    """Yield a hidden sibling folder to build the dataset in; on success it becomes ``out``.

    On any error the partial folder is removed and ``out`` is untouched.
    """
    out = Path(out)
    check_output(out, overwrite)
    out.parent.mkdir(parents=True, exist_ok=True)
    tag = uuid.uuid4().hex[:8]
    staging = out.parent / f".{out.name}.partial-{tag}"
    staging.mkdir()
    try:
        yield staging
    except OSError as exc:  # e.g. the disk filled up: one message, the previous dataset (if any) untouched
        shutil.rmtree(staging, ignore_errors=True)
        kept = f"{out} was left as it was" if out.exists() else f"nothing was written to {out}"
        raise FlexplatError(
            f"{out}: cannot write the dataset ({exc.strerror or exc}: {exc.filename or 'a file'}); {kept}. "
            "Free some space (or choose another --out) and run the command again"
        ) from None
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    check_output(out, overwrite)  # the folder may have changed while we worked
    if out.exists():
        old = out.parent / f".{out.name}.old-{tag}"
        os.replace(out, old)
        os.replace(staging, out)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(staging, out)


def _progress(enabled: bool, total: int, description: str):
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    progress = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        disable=not enabled,
    )
    return progress, progress.add_task(description, total=total)


def write_dataset(
    out: Path,
    originals: Sequence[Original],
    load: Loader,
    options: GenerateOptions,
    *,
    kind: str,
    source: str,
    overwrite: bool = False,
    progress: bool = True,
    extra: Callable[[], Mapping[str, Any]] | None = None,
    skipped: Mapping[str, Any] | None = None,
    workers: int | None = None,
) -> dict:
    """Split ``originals``, write them (plus augmented copies of TRAIN originals) and the manifest.

    ``load`` may raise :class:`SkipSample`; such originals are left out and listed in the
    manifest under ``skipped.unusable``. ``extra()`` is called after all samples are written and
    its keys are added to the manifest. ``workers`` threads load and write originals (default:
    the CPU count, at most 4); the output does not depend on it. Returns the manifest.
    """
    out = Path(out)
    workers = workers or min(4, os.cpu_count() or 1)
    membership = split_originals(originals, options.split, options.seed)
    split_of = {oid: split for split, ids in membership.items() for oid in ids}
    counts = {
        s: {"originals": 0, "files": 0, "per_class": {c: {"originals": 0, "files": 0} for c in TYPE_NAMES}}
        for s in SPLITS
    }
    unusable: dict[str, str] = {}
    with staged_output(out, overwrite) as staging:
        for split in SPLITS:
            for sub in ("images", "masks"):
                (staging / split / sub).mkdir(parents=True)

        def write_one(original: Original) -> int | str:
            """Write one original (and its augmented copies): the number of files, or why it was skipped."""
            split = split_of[original.id]
            try:
                image, labels = load(original)
            except SkipSample as exc:
                return str(exc)
            variants = [(original.id, image, labels)]
            if split == "train" and options.augment:
                rng = np.random.default_rng([options.seed, zlib.crc32(original.id.encode())])
                for name in options.augment:
                    aug_image, aug_labels = warp.apply(name, image, labels, rng, options.warp)
                    variants.append((f"{original.id}_{name}", aug_image, aug_labels))
            for stem, img, lab in variants:
                (staging / split / "images" / f"{stem}.png").write_bytes(encode_png(img))
                mask = paint(lab, original.cls, options.parts)
                (staging / split / "masks" / f"{stem}.png").write_bytes(encode_png(mask))
            return len(variants)

        bar, task = _progress(progress, len(originals), f"writing {out.name}")
        # OpenCV and NumPy release the GIL while drawing, warping and encoding: threads overlap them.
        pool = ThreadPoolExecutor(max(1, workers))
        try:
            with bar:
                for original, result in zip(originals, pool.map(write_one, originals), strict=True):
                    bar.advance(task)
                    if isinstance(result, str):
                        unusable[original.id] = result
                        continue
                    entry = counts[split_of[original.id]]
                    entry["originals"] += 1
                    entry["files"] += result
                    entry["per_class"][original.cls]["originals"] += 1
                    entry["per_class"][original.cls]["files"] += result
        finally:  # on an error or Ctrl-C, do not keep working through the queue
            pool.shutdown(wait=True, cancel_futures=True)
        for split in SPLITS:
            membership[split] = [oid for oid in membership[split] if oid not in unusable]
        manifest = build_manifest(kind, source, options, counts, membership, {**(skipped or {}), "unusable": unusable})
        if extra is not None:
            manifest.update(extra())
        text = yaml.safe_dump(manifest, sort_keys=False, default_flow_style=None, width=120)
        (staging / MANIFEST).write_text(text, encoding="utf-8")
    return manifest


def build_manifest(
    kind: str,
    source: str,
    options: GenerateOptions,
    counts: Mapping[str, Any],
    membership: Mapping[str, list[str]],
    skipped: Mapping[str, Any],
) -> dict:
    """The ``dataset.yaml`` document (plain YAML types only)."""
    opts = asdict(options)
    opts["split"] = [round(f, 6) for f in options.split]
    opts["augment"] = list(options.augment)
    opts["single_level_cells"] = "nucleus" if options.parts else "cell"
    del opts["warp"]
    opts.update({k: float(v) for k, v in asdict(options.warp).items()})
    return {
        "generator": {
            "name": GENERATOR_NAME,
            "version": GENERATOR_VERSION,
            "kind": kind,
            "plugin_version": _plugin_version(),
        },
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "source": source,
        "options": opts,
        "classes": class_table(options.parts),
        "layout": {s: {"images": f"{s}/images", "masks": f"{s}/masks"} for s in SPLITS},
        "naming": "<prefix>_<n>[_<augmentation>].png; the original of a file is <prefix>_<n>",
        "counts": dict(counts),
        "splits": {s: list(ids) for s, ids in membership.items()},
        "skipped": dict(skipped),
    }


def _plugin_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("flexplat-leukocyte")
    except PackageNotFoundError:
        return "unknown"
