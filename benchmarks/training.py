"""Training benchmark (issue 8, targets 3 and 4): flexplat against the original-style trainer.

    python benchmarks/training.py                # memory 200 vs 2,000 images, speed at 256 px (~25 min)
    python benchmarks/training.py --leukocyte    # also the original leukocyte FlexUNet (512 px, batch 2)
    python benchmarks/training.py --smoke        # tiny model and images (under a minute; tested)

All figures come from ONE run of this script; every measurement runs in its own subprocess.

Memory (target 3): peak RSS of a real ``flexplat.engine.train.train`` run (2 epochs, flexunet-small at
128 px, batch 8, callbacks: csv_plots without plots) on 200 and on 2,000 generated images; flexplat's
peak must grow < 10 %. Beside it, the original-style trainer on the same images, model and epochs:
the whole dataset decoded into NumPy arrays (images uint8, one-hot masks float32) and passed to
``model.fit(x, y)``.

Speed (target 4): steady-state training images/s (the first steps, which trace the graph, are
skipped) at equal model, batch and image size. The variants run in interleaved rounds; a ratio is
the median of the per-round ratios (neighbours in time share the machine's load):

- flexplat: the streaming tf.data pipeline (``make_dataset``) feeding ``model.fit``;
- original: ``model.fit`` on in-memory NumPy arrays, same thread settings (target: flexplat >= 1x);
- original-1thread: the same pinned to ONE TensorFlow thread as the original trainer was (>= 2x);
- flexplat-xla: flexplat with ``jit_compile=True`` (reported: does XLA help on this CPU?);
- flexplat-aug: flexplat with online flips and right-angle turns (the demo's setting; reported);
- flexplat-input / original-input: each input path alone, no model: the batches/s it can deliver
  (headroom over what training consumes) and the CPU it costs per batch.

The CPU seconds per step (all threads of the process) are reported beside the wall-clock figures.

Both sides compile the same model the same way (flexplat's optimizer, loss and metrics), so the
input path is the only difference. Thread settings are the user's (env) except in the pinned
baseline. Generated datasets are cached with ``--data DIR``. Results: benchmarks/results/training.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import Any

from _common import RESULTS, emit, load_average, machine, run_child_all, write_json
from data_pipeline_memory import generate

SCRIPT = Path(__file__).resolve()
NUM_CLASSES = 6  # generate() writes pairs with flexplat.testing.sample_classes(6)
MEMORY_TARGET = 1.10  # flexplat peak RSS(large) / peak RSS(small) must stay below
SPEED_VARIANTS = ("flexplat", "original", "original-1thread", "flexplat-xla", "flexplat-aug")
INPUT_VARIANTS = ("flexplat-input", "original-input")  # the input path alone, no model
LEUKOCYTE_VARIANTS = ("flexplat", "original", "original-1thread")
# (variant, baseline, least images/s ratio or None = reported); ratios are medians of per-round ratios
COMPARISONS = (
    ("flexplat", "original", 1.0),
    ("flexplat", "original-1thread", 2.0),
    ("flexplat-xla", "original-1thread", 2.0),
    ("flexplat-xla", "flexplat", None),
    ("flexplat-aug", "flexplat", None),
)

FULL: dict[str, dict[str, Any]] = {
    "memory": {"model": "flexunet-small", "options": {}, "size": 128, "batch": 8, "epochs": 2},
    "memory_counts": {"small": 200, "large": 2000, "valid": 16},
    "speed": {"model": "flexunet-small", "options": {}, "size": 256, "batch": 8, "warmup": 3, "steps": 10},
    "speed_repeats": {"repeats": 3},
    # the original leukocyte network (125M parameters, 115.7 GFLOP per image): a few steps only
    "leukocyte": {"model": "flexunet", "options": {}, "size": 512, "batch": 2, "warmup": 1, "steps": 2},
    "leukocyte_repeats": {"repeats": 1},
}
# --smoke checks that every path runs, not speed: tiny models run eagerly (tracing a training step
# costs ~10 s even for a tiny model) and the children share processes (see run_tasks)
TINY = {"base_filters": 4, "num_layers": 2}
SMOKE_SPEED = {"size": 32, "batch": 2, "warmup": 1, "steps": 1, "eager": True}
SMOKE: dict[str, dict[str, Any]] = {
    "memory": {"model": "flexunet-small", "options": TINY, "size": 32, "batch": 4, "epochs": 2, "eager": True},
    "memory_counts": {"small": 4, "large": 8, "valid": 2},
    "speed": {"model": "flexunet-small", "options": TINY, **SMOKE_SPEED},
    "speed_repeats": {"repeats": 1},
    "leukocyte": {"model": "flexunet", "options": {**TINY, "base_kernels": 3}, **SMOKE_SPEED},
    "leukocyte_repeats": {"repeats": 1},
}


# -- children (each in its own process) ----------------------------------------------------------


def bench_config(setup: dict, root: str, train_dir: str, valid_dir: str | None, **train: Any) -> dict:
    """A validated flexplat config for the generated pairs in ``root/train_dir`` (and ``valid_dir``)."""
    from flexplat.config import resolve
    from flexplat.testing import sample_classes

    data: dict[str, Any] = {
        "codec": "rgb-mask",
        "root": root,
        "train": {"images": f"{train_dir}/images", "masks": f"{train_dir}/masks"},
        "split": {"valid": 0.0, "test": 0.0},
    }
    if valid_dir:
        data["valid"] = {"images": f"{valid_dir}/images", "masks": f"{valid_dir}/masks"}
    layer = {
        "classes": [{"name": c.name, "color": list(c.color)} for c in sample_classes(NUM_CLASSES)],
        "data": data,
        "model": {"name": setup["model"], "image_size": [setup["size"]] * 2, "options": dict(setup["options"])},
        "train": {"batch_size": setup["batch"], "learning_rate": 1e-3, "seed": 0, **train},
    }
    return resolve(options=layer)


def make_probe() -> Any:
    """A Keras callback noting RSS when fit starts and the end time of every training step."""
    import keras
    from _common import peak_rss_mib

    class Probe(keras.callbacks.Callback):
        def __init__(self) -> None:
            super().__init__()
            self.fit_start_rss_mib = 0.0
            self.started = 0.0
            self.ends: list[float] = []
            self.cpu: list[float] = []  # process CPU time (all threads) at each step end

        def on_train_begin(self, logs=None) -> None:
            self.fit_start_rss_mib = round(peak_rss_mib(), 1)
            self.started = time.perf_counter()

        def on_train_batch_end(self, batch, logs=None) -> None:
            self.ends.append(time.perf_counter())
            self.cpu.append(time.process_time())

    return Probe()


def load_arrays(pairs: Sequence[Any], codec: Any, size: int) -> tuple[Any, Any]:
    """The original trainer's input: every pair decoded into RAM (uint8 images, one-hot float32 masks)."""
    import numpy as np

    from flexplat.data.pipeline import load_pair_resized

    x = np.empty((len(pairs), size, size, 3), np.uint8)
    y = np.empty((len(pairs), size, size, NUM_CLASSES), np.float32)
    eye = np.eye(NUM_CLASSES, dtype=np.float32)
    for i, pair in enumerate(pairs):
        image, mask = load_pair_resized(pair, codec, (size, size))
        x[i] = image
        y[i] = eye[mask]
    return x, y


def start_tensorflow(setup: dict, one_thread: bool = False) -> None:
    """Thread pinning (the original's baseline only) and eager mode (smoke runs) before any TF op."""
    import tensorflow as tf

    if one_thread:
        tf.config.threading.set_intra_op_parallelism_threads(1)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    if setup.get("eager"):
        tf.config.run_functions_eagerly(True)


def thread_settings() -> dict:
    import tensorflow as tf

    return {
        "intra_op": tf.config.threading.get_intra_op_parallelism_threads(),  # 0 = TensorFlow's default (all)
        "inter_op": tf.config.threading.get_inter_op_parallelism_threads(),
    }


def child_memory_flexplat(job: dict) -> None:
    """A real flexplat training run (``train()``), probed through a callback plugin."""
    from rich.console import Console

    from flexplat import CallbackSpec, hookimpl
    from flexplat.engine.train import train
    from flexplat.testing import plugin_system

    probe = make_probe()

    class ProbePlugin:
        @hookimpl
        def register_callbacks(self, register) -> None:
            register(CallbackSpec("bench_probe", "benchmark probe", lambda context, options: probe))

    setup = job["setup"]
    start_tensorflow(setup)
    with plugin_system(ProbePlugin(), autoload=True), tempfile.TemporaryDirectory(dir=job["root"]) as out:
        callbacks = {"csv_plots": {"plots": False}, "bench_probe": {}}
        config = bench_config(
            setup, job["root"], job["train"], job["valid"], epochs=setup["epochs"], callbacks=callbacks
        )
        start = time.perf_counter()
        train(config, out=Path(out) / "run", console=Console(stderr=True))
        seconds = time.perf_counter() - start
    emit(
        {
            "kind": "memory-flexplat",
            "images": job["images"],
            "fit_start_rss_mib": probe.fit_start_rss_mib,
            "seconds": seconds,
            "steps": len(probe.ends),
            "threads": thread_settings(),
        }
    )


def child_memory_original(job: dict) -> None:
    """The original-style trainer: whole dataset in NumPy arrays, then ``model.fit(x, y)``."""
    import keras
    from rich.console import Console

    from flexplat.engine.data import load_splits
    from flexplat.engine.train import _build_model

    setup = job["setup"]
    start_tensorflow(setup)
    config = bench_config(setup, job["root"], job["train"], job["valid"], epochs=setup["epochs"])
    keras.utils.set_random_seed(0)
    start = time.perf_counter()
    codec, splits = load_splits(config, Console(stderr=True))
    x, y = load_arrays(splits["train"], codec, setup["size"])
    valid = load_arrays(splits["valid"], codec, setup["size"])
    model = _build_model(config, NUM_CLASSES)
    probe = make_probe()
    with tempfile.TemporaryDirectory(dir=job["root"]) as out:
        csv_log = keras.callbacks.CSVLogger(str(Path(out) / "metrics.csv"))
        model.fit(
            x,
            y,
            batch_size=setup["batch"],
            epochs=setup["epochs"],
            validation_data=valid,
            shuffle=True,
            callbacks=[probe, csv_log],
            verbose=2,
        )
    seconds = time.perf_counter() - start
    emit(
        {
            "kind": "memory-original",
            "images": job["images"],
            "fit_start_rss_mib": probe.fit_start_rss_mib,
            "seconds": seconds,
            "steps": len(probe.ends),
            "arrays_mib": round((x.nbytes + y.nbytes) / 2**20, 1),
            "threads": thread_settings(),
        }
    )


def child_speed(job: dict) -> None:
    """Steady-state training throughput of one variant (see the module docstring)."""
    variant, setup = job["variant"], job["setup"]
    start_tensorflow(setup, one_thread=variant == "original-1thread")  # as the original trainer did
    import keras
    from rich.console import Console

    from flexplat.data.pipeline import make_dataset
    from flexplat.engine.data import load_splits
    from flexplat.engine.train import _build_model

    augment = {"flip": True, "rot90": True} if variant == "flexplat-aug" else {}
    config = bench_config(
        setup, job["root"], job["train"], None, jit_compile=variant == "flexplat-xla", augment=augment
    )
    keras.utils.set_random_seed(0)
    codec, splits = load_splits(config, Console(stderr=True))
    pairs = splits["train"][: (setup["warmup"] + setup["steps"]) * setup["batch"]]
    size, batch = (setup["size"],) * 2, setup["batch"]
    if variant.endswith("-input"):
        child_input(variant, pairs, codec, setup)
        return
    model = _build_model(config, NUM_CLASSES)
    probe = make_probe()
    if variant.startswith("flexplat"):
        ds = make_dataset(pairs, codec, size, NUM_CLASSES, batch, shuffle=True, augment=augment, seed=0)
        model.fit(ds, epochs=1, callbacks=[probe], verbose=0, shuffle=False)
    else:
        x, y = load_arrays(pairs, codec, setup["size"])
        model.fit(x, y, batch_size=batch, epochs=1, shuffle=True, callbacks=[probe], verbose=0)
    ends, warmup = probe.ends, setup["warmup"]
    intervals = [b - a for a, b in zip(ends[warmup - 1 :], ends[warmup:], strict=False)]
    seconds = ends[-1] - ends[warmup - 1]
    cpu_seconds = probe.cpu[-1] - probe.cpu[warmup - 1]
    emit(
        {
            "variant": variant,
            "steps_timed": len(intervals),
            "seconds_timed": seconds,
            "images_per_s": len(intervals) * setup["batch"] / seconds,
            "median_step_s": statistics.median(intervals),
            "first_step_s": ends[0] - probe.started,
            # CPU seconds the whole process used per timed step: the work, whatever the load
            "cpu_s_per_step": cpu_seconds / len(intervals),
            "threads": thread_settings(),
        }
    )


def child_input(variant: str, pairs: Sequence[Any], codec: Any, setup: dict) -> None:
    """The input path alone (no model): how fast it can deliver batches and what CPU it costs."""
    from flexplat.data.pipeline import make_dataset

    batch = setup["batch"]
    if variant == "flexplat-input":
        ds = make_dataset(pairs, codec, (setup["size"],) * 2, NUM_CLASSES, batch, shuffle=True, augment={}, seed=0)
    else:  # what Keras 3 builds from NumPy arrays in model.fit(x, y) (a private Keras class)
        from keras.src.trainers.data_adapters.array_data_adapter import ArrayDataAdapter

        x, y = load_arrays(pairs, codec, setup["size"])
        ds = ArrayDataAdapter(x, y, batch_size=batch, shuffle=True).get_tf_dataset()
    iterator = iter(ds)
    next(iterator)  # warm-up: pipeline start, first decode
    wall, cpu, batches = time.perf_counter(), time.process_time(), 0
    for _ in iterator:
        batches += 1
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    emit(
        {
            "variant": variant,
            "batches": batches,
            "images_per_s": batches * batch / wall,
            "cpu_ms_per_batch": 1000 * cpu / batches,
            "threads": thread_settings(),
        }
    )


def child_batch(tasks: list) -> None:
    """Smoke runs: several ``[kind, job]`` tasks in one process (TensorFlow start-up is most of a tiny run)."""
    for kind, job in tasks:
        CHILDREN[kind](job)


CHILDREN = {
    "memory-flexplat": child_memory_flexplat,
    "memory-original": child_memory_original,
    "speed": child_speed,
    "batch": child_batch,
}


# -- parent -------------------------------------------------------------------------------------


def ensure_pairs(root: Path, count: int, size: int) -> None:
    """``root/images|masks`` with exactly ``count`` generated pairs of ``size`` px (reused when present)."""
    images = root / "images"
    if images.is_dir() and len(list(images.glob("*.png"))) == count and (root / "masks").is_dir():
        return
    if root.exists():
        shutil.rmtree(root)  # an incomplete folder of our own cache
    generate(root, count, size, workers=os.cpu_count() or 1)


def link_subset(source: Path, target: Path, count: int) -> None:
    """``target`` holding the first ``count`` pairs of ``source`` as hard links (no copies)."""
    if target.exists():
        shutil.rmtree(target)
    for sub in ("images", "masks"):
        (target / sub).mkdir(parents=True)
        for path in sorted((source / sub).glob("*.png"))[:count]:
            os.link(path, target / sub / path.name)


def run_tasks(tasks: list[tuple[str, dict]], jobs: int, console: Any, batch: bool = False) -> list[dict]:
    """Run child tasks ``(kind, job)``, ``jobs`` processes at a time (1 for every timed run); results in order.

    ``batch`` (smoke runs) shares one process per kind of task (memory-flexplat, ...) and gives each
    thread-pinned task its own (threads are fixed when TensorFlow starts); figures are then
    meaningless: only the code paths run.
    """
    if batch:
        pinned = [i for i, (_, job) in enumerate(tasks) if job.get("variant") == "original-1thread"]
        shared: dict[str, list[int]] = {}
        for i, (kind, _) in enumerate(tasks):
            if i not in pinned:
                shared.setdefault(kind, []).append(i)
        groups = [*shared.values(), *([i] for i in pinned)]
        commands = [["batch", json.dumps([tasks[i] for i in group])] for group in groups]
    else:
        groups = [[i] for i in range(len(tasks))]
        commands = [[kind, json.dumps(job)] for kind, job in tasks]

    def one(command: list[str]) -> list[dict]:
        started = time.perf_counter()
        results = run_child_all(SCRIPT, command)
        labels = ", ".join(r.get("variant") or f"{r['kind']} {r['images']}" for r in results)
        console.print(f"  {labels}: {time.perf_counter() - started:.0f} s  (load {load_average()[0]:.1f})")
        return results

    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        outputs = list(pool.map(one, commands))
    ordered: dict[int, dict] = {}
    for group, results in zip(groups, outputs, strict=True):
        ordered.update(zip(group, results, strict=True))
    return [ordered[i] for i in range(len(tasks))]


def memory_tasks(cfg: dict, data: Path, console: Any) -> list[tuple[str, dict]]:
    """Generate (or reuse) the pairs; one task per trainer and dataset size."""
    setup, counts = cfg["memory"], cfg["memory_counts"]
    size, small, large = setup["size"], counts["small"], counts["large"]
    console.print(f"[bold]Training memory[/]: {large} + {counts['valid']} generated pairs of {size} px in {data}")
    ensure_pairs(data / f"mem-{size}-{large}", large, size)
    ensure_pairs(data / f"mem-{size}-valid", counts["valid"], size)
    link_subset(data / f"mem-{size}-{large}", data / f"mem-{size}-{small}", small)
    return [
        (
            f"memory-{side}",
            {"setup": setup, "root": str(data), "train": f"mem-{size}-{n}", "valid": f"mem-{size}-valid", "images": n},
        )
        for side in ("flexplat", "original")
        for n in (small, large)
    ]


def memory_summary(cfg: dict, results: list[dict]) -> dict:
    setup, counts = cfg["memory"], cfg["memory_counts"]
    runs = {"flexplat": results[0:2], "original": results[2:4]}
    growth = {k: v[1]["peak_rss_mib"] / v[0]["peak_rss_mib"] for k, v in runs.items()}
    added = counts["large"] - counts["small"]
    per_image = {k: (v[1]["peak_rss_mib"] - v[0]["peak_rss_mib"]) / added for k, v in runs.items()}
    return {
        "setup": setup,
        "counts": counts,
        "runs": runs,
        "growth": growth,
        "mib_per_added_image": per_image,
        "target": MEMORY_TARGET,
        "passed": growth["flexplat"] < MEMORY_TARGET,
    }


def speed_tasks(setup: dict, repeats: int, variants: Sequence[str], data: Path, console: Any) -> list[tuple[str, dict]]:
    """Generate (or reuse) the pairs; the variants interleaved (a b c, a b c, ...) so that a slow
    phase of the shared machine hits every variant alike."""
    size, count = setup["size"], (setup["warmup"] + setup["steps"]) * setup["batch"]
    name = f"speed-{size}-{count}"
    console.print(f"[bold]Training speed[/] {setup['model']} {size} px, batch {setup['batch']}: {count} pairs")
    ensure_pairs(data / name, count, size)
    job = {"setup": setup, "root": str(data), "train": name}
    return [("speed", {**job, "variant": v}) for _ in range(repeats) for v in variants]


def paired(runs: dict[str, list[dict]], variant: str, baseline: str) -> list[float]:
    """images/s of ``variant`` over ``baseline`` in each round (neighbours in time, alike in load)."""
    return [a["images_per_s"] / b["images_per_s"] for a, b in zip(runs[variant], runs[baseline], strict=True)]


def speed_summary(setup: dict, repeats: int, variants: Sequence[str], results: list[dict]) -> dict:
    runs = {v: [r for r in results if r["variant"] == v] for v in variants}
    comparisons = []
    for variant, baseline, target in COMPARISONS:
        if variant in runs and baseline in runs:
            rounds = paired(runs, variant, baseline)
            ratio = statistics.median(rounds)
            passed = None if target is None else ratio >= target
            comparisons.append(
                {
                    "variant": variant,
                    "baseline": baseline,
                    "ratio": ratio,
                    "rounds": rounds,
                    "target": target,
                    "passed": passed,
                }
            )
    return {
        "setup": setup,
        "repeats": repeats,
        "runs": runs,
        "images_per_s": {v: statistics.median(r["images_per_s"] for r in rs) for v, rs in runs.items()},
        "comparisons": comparisons,
        "passed": all(c["passed"] for c in comparisons if c["passed"] is not None and c["variant"] == "flexplat"),
    }


def print_memory(group: dict, console: Any) -> None:
    from rich.table import Table

    setup = group["setup"]
    table = Table(
        title=f"Training memory: {setup['model']} {setup['size']} px, batch {setup['batch']}, "
        f"{setup['epochs']} epochs (peak RSS per run)"
    )
    for column in (
        "trainer",
        "images",
        "peak RSS MiB",
        "RSS at fit start MiB",
        "run s",
        "growth",
        "MiB / added image",
        "target",
        "verdict",
    ):
        table.add_column(column, justify="right")
    for side, label in (("flexplat", "flexplat train()"), ("original", "original-style arrays + fit")):
        growth = group["growth"][side]
        verdict = ("[green]PASS[/]" if growth < MEMORY_TARGET else "[red]FAIL[/]") if side == "flexplat" else "-"
        target = f"< {MEMORY_TARGET:.2f}" if side == "flexplat" else "(reported)"
        for i, run in enumerate(group["runs"][side]):
            last = i == len(group["runs"][side]) - 1
            table.add_row(
                label if i == 0 else "",
                str(run["images"]),
                f"{run['peak_rss_mib']:.0f}",
                f"{run['fit_start_rss_mib']:.0f}",
                f"{run['seconds']:.0f}",
                f"{growth:.3f}" if last else "",
                f"{group['mib_per_added_image'][side]:.3f}" if last else "",
                target if last else "",
                verdict if last else "",
            )
    console.print(table)


def print_speed(group: dict, title: str, console: Any) -> None:
    from rich.table import Table

    setup, runs = group["setup"], group["runs"]
    table = Table(
        title=f"{title}: {setup['model']} {setup['size']} px, batch {setup['batch']}, "
        f"{setup['steps']} timed steps after {setup['warmup']} warm-up, {group['repeats']} interleaved rounds"
    )
    for column in ("variant", "threads", "images/s (median)", "s / step", "CPU s / step", "each round images/s"):
        table.add_column(column, justify="right")
    training = [v for v in runs if not v.endswith("-input")]
    for variant in training:
        rate = group["images_per_s"][variant]
        table.add_row(
            variant,
            "1" if runs[variant][0]["threads"]["intra_op"] == 1 else "default",
            f"{rate:.2f}",
            f"{setup['batch'] / rate:.2f}",
            f"{statistics.median(r['cpu_s_per_step'] for r in runs[variant]):.2f}",
            " ".join(f"{r['images_per_s']:.2f}" for r in runs[variant]),
        )
    console.print(table)

    table = Table(title=f"{title}: ratios (median of the per-round ratios)")
    for column in ("comparison", "ratio", "each round", "target", "verdict"):
        table.add_column(column, justify="right")
    for c in group["comparisons"]:
        if c["passed"] is None:
            verdict = "helps" if c["ratio"] > 1.0 else "does not help"
        else:
            verdict = "[green]PASS[/]" if c["passed"] else "[red]FAIL[/]"
        table.add_row(
            f"{c['variant']} / {c['baseline']}",
            f"{c['ratio']:.2f}",
            " ".join(f"{r:.2f}" for r in c["rounds"]),
            "(reported)" if c["target"] is None else f">= {c['target']:.1f}",
            verdict,
        )
    console.print(table)

    inputs = [v for v in runs if v.endswith("-input")]
    if inputs and "flexplat" in runs:
        table = Table(title=f"{title}: the input path alone (no model) against training's consumption")
        for column in ("input path", "images/s (median)", "CPU ms / batch", "headroom over flexplat training"):
            table.add_column(column, justify="right")
        for variant in inputs:
            rate = group["images_per_s"][variant]
            cpu = statistics.median(r["cpu_ms_per_batch"] for r in runs[variant])
            table.add_row(variant, f"{rate:.1f}", f"{cpu:.1f}", f"{rate / group['images_per_s']['flexplat']:.0f}x")
        console.print(table)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--smoke", action="store_true", help="tiny model and images (seconds)")
    parser.add_argument("--leukocyte", action="store_true", help="also time the 125M-parameter leukocyte FlexUNet")
    parser.add_argument("--only", choices=("memory", "speed"), help="run one group only")
    parser.add_argument("--repeats", type=int, help="speed repetitions per variant (median reported)")
    parser.add_argument("--data", type=Path, help="keep generated datasets in this folder (reused)")
    parser.add_argument("--jobs", type=int, help="children at a time (default 1; 4 with --smoke)")
    parser.add_argument("--out", type=Path, help="JSON results (default benchmarks/results/training[-smoke].json)")
    parser.add_argument("--child", nargs=2, metavar=("KIND", "JOB"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        CHILDREN[args.child[0]](json.loads(args.child[1]))
        return

    from rich.console import Console

    console = Console(width=None if sys.stdout.isatty() else 150)
    cfg = SMOKE if args.smoke else FULL
    jobs = args.jobs or (4 if args.smoke else 1)
    out = args.out or RESULTS / ("training-smoke.json" if args.smoke else "training.json")
    result: dict[str, Any] = {
        "benchmark": "training",
        "smoke": args.smoke,
        "started": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "machine": machine(),
        "jobs": jobs,
    }
    console.print(
        f"machine: {result['machine']['cpu']}, {result['machine']['cores']} cores, TensorFlow "
        f"{result['machine']['tensorflow']}, load average {result['machine']['load_average']}"
    )
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="flexplat-bench-train-") as tmp:
        data = args.data or Path(tmp)
        data.mkdir(parents=True, exist_ok=True)
        groups = []  # (name, tasks, summarise, show)
        if args.only in (None, "memory"):
            groups.append(
                (
                    "memory",
                    memory_tasks(cfg, data, console),
                    lambda r: memory_summary(cfg, r),
                    lambda g: print_memory(g, console),
                )
            )
        if args.only in (None, "speed"):
            for name, variants, title in (
                ("speed", SPEED_VARIANTS + INPUT_VARIANTS, "Training speed"),
                ("leukocyte", LEUKOCYTE_VARIANTS, "Training speed, original leukocyte FlexUNet"),
            ):
                if name == "leukocyte" and not args.leukocyte:
                    continue
                setup, repeats = cfg[name], args.repeats or cfg[f"{name}_repeats"]["repeats"]
                groups.append(
                    (
                        name,
                        speed_tasks(setup, repeats, variants, data, console),
                        partial(speed_summary, setup, repeats, variants),
                        partial(print_speed, title=title, console=console),
                    )
                )
        if args.smoke:  # every group at once, few processes (see run_tasks)
            results = run_tasks([t for g in groups for t in g[1]], jobs, console, batch=True)
            for name, tasks, summarise, show in groups:
                result[name] = summarise(results[: len(tasks)])
                results = results[len(tasks) :]
                show(result[name])
        else:  # one timed child at a time (unless --jobs), each group's table as soon as it is done
            for name, tasks, summarise, show in groups:
                result[name] = summarise(run_tasks(tasks, jobs, console))
                show(result[name])
    result["seconds"] = round(time.perf_counter() - started, 1)
    result["load_average_end"] = load_average()
    write_json(out, result)
    console.print(f"load average at end {result['load_average_end']}; {result['seconds']:.0f} s; wrote {out}")


if __name__ == "__main__":
    sys.exit(main())
