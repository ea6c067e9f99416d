"""Leak-free splits: every file derived from one original image lands in the same split."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from typing import TypeVar

from flexplat.errors import ConfigError

T = TypeVar("T")


def split_by_original(
    items: Sequence[T],
    original_id: Callable[[T], str],
    fractions: Mapping[str, float],
    seed: int,
    label: Callable[[T], str] | None = None,
) -> dict[str, list[T]]:
    """Split ``items`` into ``"train"`` plus one split per ``fractions`` key, by original image.

    Items are grouped by ``original_id(item)``; a group never spans two splits. With ``label``,
    groups (labelled by their most common item label) are split per label, so each split gets
    about the same class mix. Fractions are of ITEMS (not groups); what remains goes to
    ``"train"``. When there are enough groups, every split with a positive fraction gets at
    least one. The result depends only on the items, ids, labels and ``seed`` - not on the
    input order; items keep their input order within a split.
    """
    if "train" in fractions:
        raise ValueError("fractions: 'train' takes the remainder and must not be given")
    for name, value in fractions.items():
        if not 0.0 <= value <= 1.0:
            raise ConfigError(f"data.split.{name}: must be between 0 and 1, got {value}")
    if sum(fractions.values()) >= 1.0:
        raise ConfigError(f"data.split: fractions {dict(fractions)} leave nothing for training; keep their sum < 1")

    names = ["train", *fractions]
    weight = {"train": 1.0 - sum(fractions.values()), **fractions}
    groups: dict[str, list[int]] = {}
    for index, item in enumerate(items):
        groups.setdefault(str(original_id(item)), []).append(index)

    strata: dict[str, list[str]] = {}
    for gid, members in groups.items():
        key = ""
        if label is not None:
            counts = Counter(str(label(items[i])) for i in members)
            key = min(counts, key=lambda lab: (-counts[lab], lab))
        strata.setdefault(key, []).append(gid)

    rng = random.Random(seed)
    assigned: dict[str, str] = {}
    total_count = {n: 0 for n in names}
    total_target = {n: weight[n] * len(items) for n in names}
    for key in sorted(strata):
        gids = sorted(strata[key])
        rng.shuffle(gids)
        size = sum(len(groups[g]) for g in gids)
        count = {n: 0 for n in names}
        for gid in gids:
            # the split furthest below its share of this stratum, ties broken by the overall shortfall
            best = max(
                names,
                key=lambda n: (
                    round(weight[n] * size - count[n], 9),
                    round(total_target[n] - total_count[n], 9),
                    -names.index(n),
                ),
            )
            assigned[gid] = best
            count[best] += len(groups[gid])
            total_count[best] += len(groups[gid])

    _ensure_nonempty(assigned, groups, names, weight)
    indices: dict[str, list[int]] = {n: [] for n in names}
    for gid, members in groups.items():
        indices[assigned[gid]].extend(members)
    return {n: [items[i] for i in sorted(idx)] for n, idx in indices.items()}


def _ensure_nonempty(assigned: dict[str, str], groups: dict[str, list[int]], names: list[str], weight) -> None:
    """Move the smallest group of the biggest split into any empty split that should have one."""
    for name in names:
        if weight[name] <= 0 or name in assigned.values():
            continue
        per_split: dict[str, list[str]] = {}
        for gid, split in assigned.items():
            per_split.setdefault(split, []).append(gid)
        donor = max(per_split, key=lambda s: (len(per_split[s]), -names.index(s)), default=None)
        if donor is None or len(per_split[donor]) < 2:
            return
        smallest = min(sorted(per_split[donor]), key=lambda g: len(groups[g]))
        assigned[smallest] = name
