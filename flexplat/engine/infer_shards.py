"""Sharded batch inference: ``flexplat infer --shard I/N`` and ``flexplat infer merge``.

Image ``name`` belongs to shard ``int(sha256(name)[:16], 16) % N``: a hash of its path relative to
the image folder, not its place in a sorted list, so adding files never moves an existing file to
another shard and shards never overlap. Shards are numbered from 0 (Slurm ``--array=0-N-1``,
Kubernetes Indexed Jobs' ``JOB_COMPLETION_INDEX``). A shard writes its images' outputs and
``summary.shard-I-of-N.csv/.json``; several shards may share one output folder. ``merge`` checks
that every shard 0..N-1 is there exactly once, from the same run, folder, scale and settings, and
writes ``summary.csv/.json`` equal to those of one full run (timings: the shards' sums).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from flexplat.errors import FlexplatError

SHARD_JSON = re.compile(r"^summary\.shard-(\d+)-of-(\d+)\.json$")
SAME_KEYS = ("run", "images_dir", "classes", "scale", "tta", "backend", "model")
"""Keys every shard summary of one merge must agree on."""


def parse_shard(text: str) -> tuple[int, int]:
    """``"I/N"`` -> ``(I, N)`` with ``0 <= I < N``; a clear error otherwise."""
    match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text or "")
    if not match or not 0 <= int(match[1]) < int(match[2]):
        raise FlexplatError(
            f"--shard {text!r}: expected I/N with 0 <= I < N, e.g. --shard 0/4 ... 3/4 "
            "(Slurm: --shard $SLURM_ARRAY_TASK_ID/N with --array=0-N-1)"
        )
    return int(match[1]), int(match[2])


def shard_of(relative: str, count: int) -> int:
    """The shard (0..count-1) of the image at ``relative`` path (posix, relative to the image folder)."""
    return int(hashlib.sha256(relative.encode("utf-8")).hexdigest()[:16], 16) % count


def shard_indices(files: Sequence[Path], folder: Path, shard: tuple[int, int] | None) -> list[int]:
    """Positions in ``files`` (all of ``folder``'s images) that shard ``(I, N)`` segments; all without a shard."""
    if shard is None:
        return list(range(len(files)))
    index, count = shard
    return [i for i, path in enumerate(files) if shard_of(path.relative_to(folder).as_posix(), count) == index]


def summary_names(shard: tuple[int, int] | None) -> tuple[str, str]:
    """(csv, json) summary file names of a full run or of one shard."""
    if shard is None:
        return "summary.csv", "summary.json"
    stem = f"summary.shard-{shard[0]}-of-{shard[1]}"
    return f"{stem}.csv", f"{stem}.json"


def find_shard_summaries(folders: Sequence[Path]) -> list[tuple[Path, dict]]:
    """Every shard summary in ``folders`` (not recursive), read."""
    found = []
    for folder in folders:
        if not Path(folder).is_dir():
            raise FlexplatError(f"{folder}: no such folder (give the --output folders of the shards)")
        for path in sorted(Path(folder).iterdir()):
            if SHARD_JSON.match(path.name):
                try:
                    found.append((path, json.loads(path.read_text(encoding="utf-8"))))
                except (OSError, ValueError) as exc:
                    raise FlexplatError(f"{path}: not a readable shard summary ({exc}); run that shard again") from None
    if not found:
        raise FlexplatError(
            f"no shard summaries (summary.shard-I-of-N.json) in {', '.join(map(str, folders))}; "
            "run `flexplat infer --shard I/N` first"
        )
    return found


def check_complete(found: Sequence[tuple[Path, dict]]) -> int:
    """The shard count N; errors name missing, repeated or mismatched shards and their files."""
    counts = {data["shard"]["count"] for _, data in found}
    if len(counts) > 1:
        raise FlexplatError(f"shard summaries of different splits (N = {sorted(counts)}); merge one split at a time")
    count = counts.pop()
    seen: dict[int, Path] = {}
    for path, data in found:
        index = data["shard"]["index"]
        if index in seen:
            raise FlexplatError(f"shard {index}/{count} appears twice: {seen[index]} and {path}; keep one")
        seen[index] = path
    missing = sorted(set(range(count)) - set(seen))
    if missing:
        shown = ", ".join(f"{i}/{count}" for i in missing)
        raise FlexplatError(f"shards {shown} are missing; run them (`flexplat infer --shard I/N ...`), then merge")
    first_path, first = found[0]
    for path, data in found[1:]:
        for key in SAME_KEYS:
            if data.get(key) != first.get(key):
                raise FlexplatError(
                    f"{path} and {first_path} differ in {key!r} ({data.get(key)!r} vs {first.get(key)!r}); "
                    "every shard must segment the same folder with the same run and settings"
                )
    return count


def merged_values(found: Sequence[tuple[Path, dict]]) -> dict[str, Any]:
    """The fields of one full run's summary from the shards' (rows and skipped files by name)."""
    first = found[0][1]
    rows = sorted((row for _, data in found for row in data["images"]), key=lambda row: row["file"])
    skipped = sorted((s["file"], s["reason"]) for _, data in found for s in data["skipped"])
    names = [row["file"] for row in rows] + [name for name, _ in skipped]
    if len(names) != len(set(names)):
        raise FlexplatError("an image appears in two shard summaries; the shards overlap - run them again")

    def total(group: str, key: str) -> float:
        return sum(data[group][key] for _, data in found)

    return {
        "run": Path(first["run"]),
        "images_dir": Path(first["images_dir"]),
        "found": int(total("counts", "found")),
        "processed": len(rows),
        "tiled": sum(1 for row in rows if row["tiled"]),
        "skipped": skipped,
        "rows": rows,
        "load_seconds": total("timings", "load_seconds"),
        "model_seconds": total("timings", "model_seconds"),
        "model_batches": int(sum(data["timings"].get("model_batches", 0) for _, data in found)),
        "total_seconds": total("timings", "total_seconds"),
        "classes": first["classes"],
        "scale": first["scale"],
        "tta": first["tta"],
        "backend": first["backend"],
        "model": Path(first["model"]) if first.get("model") else None,
    }
