"""Benchmark: peak memory of the tf.data input pipeline must not grow with the dataset size.

Generates N_large random 512x512 image/mask pairs in a temporary folder, then, for N_small and
N_large pairs, iterates the pipeline (shuffle, flip/rot90 augmentation, batch 2, one-hot targets)
for one full epoch in a fresh SUBPROCESS and measures that process's peak RSS
(``resource.getrusage``). Target: peak(N_large) / peak(N_small) < 1.10 (the original experiment
held every image in memory: ~7 GB for 3,047 images).

    python benchmarks/data_pipeline_memory.py            # 200 vs 2,000 pairs (a few minutes)
    python benchmarks/data_pipeline_memory.py --smoke    # 10 vs 40 pairs of 64x64, seconds

Writes benchmarks/results/data_pipeline_memory.json (git-ignored).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from _common import RESULTS as RESULTS_DIR
from _common import emit, machine, run_child, write_json

RESULTS = RESULTS_DIR / "data_pipeline_memory.json"
TARGET_RATIO = 1.10


def _write_chunk(args: tuple[str, int, int, int]) -> None:
    from flexplat.data.codecs import RgbMaskCodec
    from flexplat.testing import make_pair, sample_classes

    root, start, stop, size = args
    classes = sample_classes(6)
    codec = RgbMaskCodec(classes, {})
    for i in range(start, stop):
        image, mask = make_pair(classes, (size, size), seed=i)
        name = f"pair_{i:05d}.png"
        codec.write(Path(root) / "images" / name, Path(root) / "masks" / name, image, mask)


def generate(root: Path, count: int, size: int, workers: int) -> None:
    """Write ``count`` random pairs (``root/images|masks/pair_NNNNN.png``, 6 classes) in parallel."""
    step = max(1, count // (workers * 8))
    chunks = [(str(root), s, min(count, s + step), size) for s in range(0, count, step)]
    with ProcessPoolExecutor(max_workers=workers) as pool:
        list(pool.map(_write_chunk, chunks))


def child(root: str, count: int, size: int, batch_size: int) -> None:
    """Run one epoch over the first ``count`` pairs and emit the measurements."""
    import resource

    import tensorflow as tf

    from flexplat.data.codecs import RgbMaskCodec
    from flexplat.data.pipeline import make_dataset
    from flexplat.testing import sample_classes

    classes = sample_classes(6)
    codec = RgbMaskCodec(classes, {})
    pairs = codec.scan("images", "masks", Path(root)).pairs[:count]
    assert len(pairs) == count, f"only {len(pairs)} pairs generated"
    ds = make_dataset(
        pairs, codec, (size, size), len(classes), batch_size,
        shuffle=True, augment={"flip": True, "rot90": True}, seed=0,
    )  # fmt: skip
    tf.constant(0)  # initialise the runtime before the baseline
    baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.perf_counter()
    seen = 0
    for images, _targets in ds:
        seen += int(images.shape[0])
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    emit({"pairs": count, "seen": seen, "peak_kib": peak, "baseline_kib": baseline, "seconds": seconds})


def measure(root: Path, count: int, size: int, batch_size: int) -> dict:
    return run_child(__file__, [str(root), str(count), str(size), str(batch_size)], env={"TF_CPP_MIN_LOG_LEVEL": "3"})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--smoke", action="store_true", help="tiny run (10 vs 40 pairs of 64x64)")
    parser.add_argument("--child", nargs=4, metavar=("ROOT", "COUNT", "SIZE", "BATCH"), help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, default=RESULTS, help="JSON results file")
    parser.add_argument("--data", type=Path, help="keep the generated pairs in this folder (reused when complete)")
    args = parser.parse_args()
    if args.child:
        root, count, size, batch = args.child
        child(root, int(count), int(size), int(batch))
        return

    from rich.console import Console
    from rich.table import Table

    small, large, size, batch = (10, 40, 64, 2) if args.smoke else (200, 2000, 512, 2)
    console = Console()
    with tempfile.TemporaryDirectory(prefix="flexplat-bench-") as tmp:
        root = args.data or Path(tmp)
        existing = len(list((root / "images").glob("*.png"))) if (root / "images").is_dir() else 0
        if existing < large:
            start = time.perf_counter()
            with console.status(f"generating {large} random {size}x{size} pairs in {root} ..."):
                generate(root, large, size, workers=os.cpu_count() or 1)
            console.print(f"generated {large} pairs in {time.perf_counter() - start:.0f} s")
        runs = []
        for count in (small, large):
            with console.status(f"one epoch over {count} pairs (subprocess) ..."):
                runs.append(measure(root, count, size, batch))
    ratio = runs[1]["peak_kib"] / runs[0]["peak_kib"]
    table = Table(title=f"Input pipeline peak RSS, {size}x{size} pairs, batch {batch}, one epoch")
    for column in ("pairs", "peak RSS MiB", "RSS before epoch MiB", "epoch s", "pairs/s", "in-memory equiv. MiB"):
        table.add_column(column, justify="right")
    for run in runs:
        naive = run["pairs"] * size * size * (3 + 6) * 4 / 2**20  # float32 images + one-hot masks held in RAM
        table.add_row(
            str(run["pairs"]),
            f"{run['peak_kib'] / 1024:.0f}",
            f"{run['baseline_kib'] / 1024:.0f}",
            f"{run['seconds']:.1f}",
            f"{run['pairs'] / run['seconds']:.0f}",
            f"{naive:.0f}",
        )
    console.print(table)
    verdict = "[green]PASS[/]" if ratio < TARGET_RATIO else "[red]FAIL[/]"
    console.print(f"peak RSS ratio {large}/{small} pairs: {ratio:.3f} (target < {TARGET_RATIO}) {verdict}")
    result = {
        "benchmark": "data_pipeline_memory",
        "smoke": args.smoke,
        "image_size": size,
        "batch_size": batch,
        "runs": runs,
        "ratio": ratio,
        "target_ratio": TARGET_RATIO,
        "passed": ratio < TARGET_RATIO,
        "machine": machine(),
    }
    write_json(args.out, result)
    console.print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
