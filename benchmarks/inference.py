"""Inference benchmark: `flexplat infer` against an original-style loop, the pure forward pass and
the machine's FLOP/s ceiling, plus tiled scaling. All figures come from ONE run of this script.

    python benchmarks/inference.py            # leukocyte FlexUNet (512x512, 125M params), 20 images
    python benchmarks/inference.py --smoke    # tiny model and images (seconds; for tests)

Every measurement runs in its own subprocess, so start-up times include interpreter and
TensorFlow start-up and peak RSS is per measurement:

- flexplat: `flexplat infer` (the CLI, default options: overlays on, batch from the run's config);
  start-up = process launch -> first prediction returned; per image = first prediction -> last file
  written, over the remaining images (as for the original; the figure with the first batch and the
  graph tracing is reported too).
- original: the original experiment's inference loop: model built from the config, weights loaded
  from an .h5 file, then per image cv2.imread, resize, `model.predict` on a batch of one, argmax,
  colour PNG via a loop over classes, cv2.imwrite.
- forward: the same model on the same images already in memory (decoded and resized), batches as
  flexplat uses them, timed after a warm-up call: the floor that I/O overlap should reach.
- count: `flexplat infer` on 50, 100, 200 images at the 256-px model's size: seconds per ADDED image
  between consecutive counts must not grow (linear in the number of images).
- ceiling: a large float32 matmul in TensorFlow and NumPy (the faster one counts), in the same
  process as the forward pass, as the achievable FLOP/s; fraction = model FLOPs / time / ceiling.
- tiled: `flexplat infer` on one square image of 1024, 2048, 4096 px with a 256-px model
  (flexunet-small, random weights): seconds per megapixel and peak RSS.

The machine is shared and noisy: compare ratios within a run. Results: benchmarks/results/*.json.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from itertools import pairwise
from pathlib import Path

import _common
from _common import emit, machine, write_json

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"

FULL = {
    "name": "full",
    "model": "flexunet",  # leukocyte options are the defaults of this preset
    "project": "leukocyte",
    "size": 512,
    "images": 20,
    # the run folders are written by `flexplat train` on generated smears (synthetic leukocyte data)
    "train_images": 8,  # 70/15/15 split by original -> 5 train, 1-2 valid, 1-2 test
    "train_epochs": 1,  # the 125M model: one epoch (about 2 min here); enough for a real run folder
    "tiled_model": "flexunet-small",
    "tiled_model_size": 256,
    "tiled_train_images": 40,
    "tiled_train_epochs": 3,
    "tiled_sizes": [1024, 2048, 4096],
    "counts": [50, 100, 200],  # images at the tiled model's own size: time must grow linearly
    "matmul": 4096,
    "export_min_available_gb": 20,  # the 125M model's ONNX export peaks at about 18 GB (large-model route)
}
SMOKE = {
    "name": "smoke",
    "model": "flexunet",
    "model_options": {"base_filters": 4, "base_kernels": 3, "num_layers": 3},
    "project": "leukocyte",
    "size": 64,
    "images": 4,
    "train_images": 8,
    "train_epochs": 1,
    "tiled_model": "flexunet-small",
    "tiled_model_options": {"base_filters": 4, "num_layers": 3},
    "tiled_model_size": 64,
    "tiled_train_images": 8,
    "tiled_train_epochs": 1,
    "tiled_sizes": [128, 256],
    "counts": [2, 4, 6],
    "matmul": 512,
    "export_min_available_gb": 0,
}


# The original code measured on this 2-core machine (issue 8; for orientation only, not this run)
REFERENCE_STARTUP_S = 22.0
REFERENCE_PER_IMAGE_S = (2.2, 2.4)
REFERENCE_RSS_MB = 2400.0


def quiet_tf() -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


# -- children -------------------------------------------------------------------------------


def cell_image(rng, height: int, width: int):
    """A smear-like picture: pink background, a few dark round 'cells', mild noise."""
    import cv2
    import numpy as np

    image = np.empty((height, width, 3), np.uint8)
    image[:] = (225, 190, 205)
    for _ in range(max(1, height * width // 60000)):
        centre = (int(rng.integers(0, width)), int(rng.integers(0, height)))
        radius = int(rng.integers(max(4, min(height, width) // 20), max(5, min(height, width) // 8)))
        cv2.circle(image, centre, radius, (120, 60, 150), -1)
    noise = rng.normal(0, 6, image.shape)
    return np.clip(image + noise, 0, 255).astype(np.uint8)


def child_images(work: Path, setup: dict) -> None:
    """The images to segment: the main set, the small model's set, the tiled sizes, the count pool."""
    import numpy as np

    from flexplat.data.io import write_png

    rng = np.random.default_rng(0)
    for i in range(setup["images"]):
        write_png(work / "images" / f"img_{i:03d}.png", cell_image(rng, setup["size"], setup["size"]))
    side = setup["tiled_model_size"]
    for i in range(setup["images"]):
        write_png(work / "images_small" / f"img_{i:03d}.png", cell_image(rng, side, side))
    for big in setup["tiled_sizes"]:
        write_png(work / f"tiled_{big}" / f"big_{big}.png", cell_image(rng, big, big))
    for i in range(max(setup["counts"])):
        write_png(work / "count_images" / f"c_{i:03d}.png", cell_image(rng, side, side))
    emit({})


def child_weights(run_dir: Path, h5: Path) -> None:
    """The trained run's weights as the original code keeps them (an .h5 for ``model.load_weights``),
    and the model's size (parameters, FLOPs per image)."""
    quiet_tf()
    from flexplat.engine.model_file import load_model
    from flexplat.engine.rundir import RunDir
    from flexplat.plugins import get_registry

    run = RunDir.open(run_dir)
    config = run.config()
    h5.parent.mkdir(parents=True, exist_ok=True)
    load_model(run).save_weights(h5)
    spec = get_registry().get("model", config["model"]["name"])
    model = config["model"]
    described = spec.describe(tuple(model["image_size"]), model["channels"], len(config["classes"]), **model["options"])
    emit({"parameters": int(described["parameters"]), "flops": float(described["flops"])})


def child_cli(args: list[str], launch: float) -> None:
    """Any `flexplat` command through its CLI; peak RSS covers the child processes it starts too."""
    import resource

    quiet_tf()
    from flexplat.cli import cli

    cli.main(args, standalone_mode=False)
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024.0
    emit({"seconds": time.time() - launch, "children_peak_rss_mib": round(children, 1)})


def child_flexplat(args: list[str], launch: float) -> None:
    """`flexplat infer` through its CLI (any backend), with the time of the first prediction recorded."""
    quiet_tf()
    from flexplat.cli import cli
    from flexplat.engine import segment

    first: list[float] = []
    original_call = segment._Timed.__call__  # both backends' forward pass

    def timed_call(self, batch):
        result = original_call(self, batch)
        if not first:
            first.append(time.time())
        return result

    segment._Timed.__call__ = timed_call
    cli.main(["infer", *args], standalone_mode=False)
    end = time.time()
    output = Path(args[args.index("--output") + 1])
    summary = json.loads((output / "summary.json").read_text())
    heavy = sorted({m.split(".")[0] for m in sys.modules} & {"tensorflow", "keras"})
    emit({"first_prediction_s": first[0] - launch, "total_s": end - launch, "summary": summary, "imported": heavy})


def child_agree(run_dir: Path, images: Path) -> None:
    """Both backends on the same prepared inputs in one process: max |p difference|, same argmax."""
    quiet_tf()
    import numpy as np

    from flexplat.data.io import read_image
    from flexplat.engine.export import ExportDir, default_export_dir
    from flexplat.engine.prediction import build_segmenter
    from flexplat.engine.rundir import RunDir

    run = RunDir.open(run_dir)
    keras_seg = build_segmenter(run, None, None, 1, False, backend="tensorflow")
    export = ExportDir.open(default_export_dir(run.path, "onnx"))
    onnx_seg = build_segmenter(export, None, None, 1, False, backend="onnx")
    worst, same, total = 0.0, 0, 0
    for path in sorted(images.iterdir()):
        net = keras_seg.network_view(read_image(path))
        batch = keras_seg.prepare(net, keras_seg.framing_factor(*net.shape[:2])).array[None]
        ours, theirs = keras_seg.predict_whole(batch), onnx_seg.predict_whole(batch)
        worst = max(worst, float(np.max(np.abs(ours - theirs))))
        same += int(np.sum(np.argmax(ours, -1) == np.argmax(theirs, -1)))
        total += int(np.prod(ours.shape[:3]))
    emit({"max_abs_difference": worst, "argmax_agreement": same / total, "pixels": total})


def child_original(run_dir: Path, h5: Path, images: Path, output: Path, launch: float) -> None:
    """The original experiment's inference loop (see the module docstring)."""
    quiet_tf()
    import cv2
    import numpy as np
    import yaml

    from flexplat.plugins import get_registry

    config = yaml.safe_load((run_dir / "config.yaml").read_text())
    spec = get_registry().get("model", config["model"]["name"])
    height, width = config["model"]["image_size"]
    colors = [tuple(c["color"]) for c in config["classes"]]
    model = spec.build((height, width), config["model"]["channels"], len(colors), **config["model"]["options"])
    model.load_weights(h5)
    output.mkdir(parents=True, exist_ok=True)
    first = None
    started = time.time()
    count = 0
    for path in sorted(images.iterdir()):
        image = cv2.imread(str(path))
        h0, w0 = image.shape[:2]
        image = cv2.cvtColor(cv2.resize(image, (width, height)), cv2.COLOR_BGR2RGB)
        prediction = model.predict(np.expand_dims(image.astype(np.float32), 0), verbose=0)
        if first is None:
            first = time.time()
            started = first
        labels = np.argmax(prediction[0], axis=-1)
        mask = np.zeros((height, width, 3), np.uint8)
        for index, color in enumerate(colors):
            mask[labels == index] = color
        if (h0, w0) != (height, width):
            mask = cv2.resize(mask, (w0, h0), interpolation=cv2.INTER_NEAREST)
        cv2.imwrite(str(output / path.name), cv2.cvtColor(mask, cv2.COLOR_RGB2BGR))
        count += 1
    end = time.time()
    emit(
        {
            "first_prediction_s": first - launch,
            "total_s": end - launch,
            "images": count,
            # the first image's prediction is part of start-up; the others are the steady loop
            "seconds_per_image": (end - started) / max(1, count - 1),
        }
    )


def child_forward(run_dir: Path, images: Path, matmul: int) -> None:
    """Pure forward pass on preloaded images, then the matmul FLOP/s ceiling."""
    quiet_tf()
    import numpy as np
    import tensorflow as tf

    from flexplat.data.io import read_image
    from flexplat.engine.model_file import load_model
    from flexplat.engine.rundir import RunDir
    from flexplat.engine.segment import Predictor
    from flexplat.engine.segment import resize as _resize

    run = RunDir(run_dir)
    config = run.config()
    height, width = config["model"]["image_size"]
    batch = int(config["infer"]["batch_size"])
    model = load_model(run)
    predictor = Predictor(model, len(config["classes"]))
    files = sorted(images.iterdir())
    x = np.stack([_resize(read_image(p), height, width).astype(np.float32) for p in files])

    def timed(size: int) -> float:
        predictor(x[:size])  # warm-up (trace, graph optimisation)
        started = time.perf_counter()
        for first in range(0, len(x), size):
            predictor(x[first : first + size])
        return time.perf_counter() - started

    forward = {str(batch): timed(batch)}

    def best(fn, repeats: int = 3) -> float:
        fn()
        return min(_time(fn) for _ in range(repeats))

    a = tf.random.normal((matmul, matmul))
    tf_s = best(lambda: tf.linalg.matmul(a, a).numpy())
    an = np.random.default_rng(0).random((matmul, matmul), dtype=np.float32)
    np_s = best(lambda: an @ an)
    flop = 2.0 * matmul**3
    emit(
        {
            "images": len(x),
            "batch": batch,
            "forward_s": forward,
            "ceiling": {"tensorflow_flops": flop / tf_s, "numpy_flops": flop / np_s, "matmul": matmul},
        }
    )


def _time(fn) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def child_tiled(args: list[str]) -> None:
    quiet_tf()
    from flexplat.cli import cli

    started = time.time()
    cli.main(["infer", *args], standalone_mode=False)
    output = Path(args[args.index("--output") + 1])
    summary = json.loads((output / "summary.json").read_text())
    emit({"wall_s": time.time() - started, "summary": summary})


# -- parent ---------------------------------------------------------------------------------


def run_child(role: str, *args: str, timeout: float = 3600) -> dict:
    """One measurement in its own process (see ``_common.run_child``); peak RSS as ``peak_rss_mb``."""
    result = _common.run_child(__file__, [role, "--launch", repr(time.time()), *args], timeout=timeout)
    result["peak_rss_mb"] = result.pop("peak_rss_mib")
    return result


def flexplat_cli(*args: str) -> dict:
    """One `flexplat` command in its own process: seconds, peak RSS (with its own child processes)."""
    result = run_child("cli", *args, timeout=7200)
    result["peak_rss_mb"] = max(result["peak_rss_mb"], result.pop("children_peak_rss_mib"))
    return result


CASES = {  # the two run folders: (run folder, prefix of the setup keys, images it segments)
    "main": ("run", "", "images"),
    "tiled": ("tiled_run", "tiled_", "images_small"),
}


def make_run(work: Path, setup: dict, case: str, console) -> dict:
    """Generate smears and train a run folder through the CLI, as a user does; the original's .h5 beside."""
    folder, prefix, _ = CASES[case]
    model, size = setup[f"{prefix}model"], setup[f"{prefix}model_size" if prefix else "size"]
    data, run = work / f"data_{case}", work / folder
    console.print(f"flexplat generate + train: {model} {size} px, {setup[f'{prefix}train_images']} smears ...")
    flexplat_cli("generate", setup["project"], "--synthetic", str(setup[f"{prefix}train_images"]),
                 "--size", str(size), "--out", str(data), "--quiet")  # fmt: skip
    sets = [f"model.name={model}", f"model.image_size=[{size}, {size}]", "train.callbacks.epoch_change_infer=false"]
    if setup.get(f"{prefix}model_options"):
        sets.append("model.options=" + json.dumps(setup[f"{prefix}model_options"]))
    sets_args = [a for s in sets for a in ("--set", s)]
    epochs = str(setup[f"{prefix}train_epochs"])
    train = flexplat_cli("train", setup["project"], "--data", str(data), "--out", str(run), "--no-evaluate",
                         "--epochs", epochs, *sets_args)  # fmt: skip
    described = run_child("weights", str(run), str(original_weights(run)))
    return {"model": model, "size": size, "parameters": described["parameters"], "flops": described["flops"],
            "train_s": train["seconds"], "train_peak_rss_mb": train["peak_rss_mb"]}  # fmt: skip


def original_weights(run: Path) -> Path:
    return run.parent / "original" / f"{run.name}.weights.h5"


def prepare(work: Path, setup: dict, console) -> dict:
    """Run folders, the original's weight files and the images, made once per setup (cached in ``work``)."""
    marker = work / "prepared.json"
    if marker.is_file():
        data = json.loads(marker.read_text())
        if data.get("setup") == setup:
            return data["models"]
    if work.exists():
        if not marker.is_file() and any(work.iterdir()):
            raise SystemExit(f"{work}: not empty and not a work folder of this script; choose another --work")
        import shutil

        shutil.rmtree(work)  # only our own cache folder (it holds prepared.json)
    work.mkdir(parents=True)
    models = {case: make_run(work, setup, case, console) for case in CASES}
    run_child("images", str(work), json.dumps(setup))
    write_json(marker, {"setup": setup, "models": models})
    return models


def available_gb() -> float:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) / 2**20
    return 0.0


def export_onnx(work: Path, case: str, setup: dict, models: dict, console) -> dict:
    """`flexplat export RUN --format onnx` through the CLI, once per run folder (the result is cached),
    or the reason it was not made (the 125M model's export needs about 18 GB)."""
    from flexplat.engine.export import LARGE_MODEL_BYTES, ExportDir, default_export_dir

    run = work / CASES[case][0]
    record, target = work / f"export_{case}.json", default_export_dir(run, "onnx")
    if record.is_file() and ExportDir.is_export(target):
        return json.loads(record.read_text())
    large = models[case]["parameters"] * 4 > LARGE_MODEL_BYTES
    if large and available_gb() < setup["export_min_available_gb"]:
        reason = (
            f"{available_gb():.1f} GB available; the export needs about 18 GB (>= {setup['export_min_available_gb']})"
        )
        console.print(f"[yellow]ONNX export of {run} skipped: {reason}[/]")
        return {"skipped": reason}
    console.print(f"flexplat export {run} --format onnx ...")
    result = flexplat_cli("export", str(run), "--format", "onnx", "--overwrite")
    manifest = ExportDir.open(target).manifest
    size = sum(p.stat().st_size for p in target.rglob("*") if p.is_file())
    info = {"seconds": result["seconds"], "peak_rss_mb": result["peak_rss_mb"], "mb": size / 1e6,
            "route": manifest.get("route"), "check": manifest.get("check")}  # fmt: skip
    write_json(record, info)
    return info


def fresh(path: Path) -> Path:
    """An empty output folder inside the work folder (previous outputs of this script removed)."""
    import shutil

    if path.exists():
        shutil.rmtree(path)
    return path


def infer(work: Path, case: str, backend: str) -> dict:
    """`flexplat infer --backend BACKEND` on the case's images; images at the model size, so
    ``--no-rescale`` resizes nothing - the same work as the original's loop."""
    folder, _, images = CASES[case]
    out = fresh(work / f"out_{case}_{backend}")
    args = ["--images", str(work / images), "--run", str(work / folder), "--output", str(out)]
    return run_child("flexplat", *args, "--backend", backend, "--no-rescale")


def measure_round(work: Path, setup: dict, exports: dict, console, label: str) -> dict:
    """One round: per run folder the original-style loop and `flexplat infer` on each backend."""
    result: dict = {}
    for case, (folder, _, images) in CASES.items():
        run = work / folder
        console.print(f"{label}: {case} run: original-style loop, flexplat infer tensorflow / onnx ...")
        out = str(fresh(work / f"out_{case}_original"))
        entry = {"original": run_child("original", str(run), str(original_weights(run)), str(work / images), out)}
        entry["tensorflow"] = infer(work, case, "tensorflow")
        if "skipped" not in exports[case]:
            entry["onnx"] = infer(work, case, "onnx")
        result[case] = entry
    console.print(f"{label}: pure forward pass and FLOP/s ceiling ...")
    result["forward"] = run_child("forward", str(work / "run"), str(work / "images"), str(setup["matmul"]))
    return result


def measure_tiled(work: Path, setup: dict, console) -> list[dict]:
    """`flexplat infer` (TensorFlow) on one big image per size with the small model's run, tiled."""
    tiled = []
    for side in setup["tiled_sizes"]:
        console.print(f"tiled {side}x{side} ...")
        out = fresh(work / f"out_tiled_{side}")
        args_tiled = ["--images", str(work / f"tiled_{side}"), "--run", str(work / "tiled_run")]
        result = run_child("tiled", *args_tiled, "--output", str(out), "--backend", "tensorflow", "--no-rescale")
        timings = result["summary"]["timings"]
        megapixels = side * side / 1e6
        tiled.append(
            {
                "side": side,
                "megapixels": megapixels,
                "seconds": timings["processing_seconds"],
                "seconds_per_megapixel": timings["processing_seconds"] / megapixels,
                "model_seconds_per_megapixel": timings["model_seconds"] / megapixels,
                "wall_s": result["wall_s"],
                "peak_rss_mb": result["peak_rss_mb"],
            }
        )
    return tiled


def measure_counts(work: Path, setup: dict, console) -> list[dict]:
    """`flexplat infer` (TensorFlow) on growing numbers of model-size images."""
    counts = []
    pool = sorted((work / "count_images").iterdir())
    for n in setup["counts"]:
        console.print(f"count scaling: {n} images ...")
        folder = fresh(work / f"count_{n}")
        folder.mkdir()
        for path in pool[:n]:
            (folder / path.name).symlink_to(path)
        out = fresh(work / f"out_count_{n}")
        args = ["--images", str(folder), "--run", str(work / "tiled_run"), "--output", str(out)]
        result = run_child("tiled", *args, "--backend", "tensorflow", "--no-rescale")
        timings = result["summary"]["timings"]
        counts.append(
            {
                "images": n,
                "seconds": timings["processing_seconds"],
                "seconds_per_image": timings["processing_seconds"] / n,
                "model_seconds_per_image": timings["model_seconds"] / n,
                "peak_rss_mb": result["peak_rss_mb"],
            }
        )
    return counts


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--smoke", action="store_true", help="tiny model and images (quick check)")
    parser.add_argument("--images", type=int, help="number of images (default 20; smoke 4)")
    parser.add_argument(
        "--work", type=Path, help="cache folder for runs, exports, images (default benchmarks/results/)"
    )
    parser.add_argument("--out", type=Path, help="JSON result file (default benchmarks/results/inference-*.json)")
    parser.add_argument("--skip-tiled", action="store_true", help="skip the scaling groups (tiled sizes, image counts)")
    parser.add_argument(
        "--rounds", type=int, default=2, help="repeat the main groups; the best (least disturbed) figure counts"
    )
    args = parser.parse_args(argv)

    setup = dict(SMOKE if args.smoke else FULL)
    if args.images:
        setup["images"] = args.images
    work = (args.work or RESULTS / f"work-{setup['name']}").resolve()
    from rich.console import Console

    console = Console()
    started = time.time()
    console.print(f"[bold]Inference benchmark[/] ({setup['name']}); work folder {work}")
    models = prepare(work, setup, console)
    exports = {case: export_onnx(work, case, setup, models, console) for case in CASES}
    rounds = [measure_round(work, setup, exports, console, f"round {i + 1}/{args.rounds}") for i in range(args.rounds)]
    main_rounds = [{"original": r["main"]["original"], "flexplat": r["main"]["tensorflow"], "forward": r["forward"]}
                   for r in rounds]  # fmt: skip
    original, flexplat, forward = best_of(main_rounds)
    tiled = [] if args.skip_tiled else measure_tiled(work, setup, console)
    counts = [] if args.skip_tiled else measure_counts(work, setup, console)

    report = summarise(setup, models, original, flexplat, forward, tiled, counts)
    report["backends"] = {
        case: backend_summary(
            models[case], exports[case], [r[case] for r in rounds], work / CASES[case][0], work / CASES[case][2]
        )
        for case in CASES
    }
    report["rounds"] = rounds
    report["machine"] = machine()
    report["benchmark_seconds"] = round(time.time() - started, 1)
    render(report, console)
    render_backends(report["backends"], console)
    out = args.out or RESULTS / f"inference-{setup['name']}-{time.strftime('%Y%m%d-%H%M%S')}.json"
    write_json(out, report)
    console.print(f"JSON: {out}")
    return report


def _steady(result: dict) -> float:
    """Seconds per image from the first prediction to the last file written, as for the original."""
    return (result["total_s"] - result["first_prediction_s"]) / max(1, result["summary"]["counts"]["processed"] - 1)


def backend_summary(model: dict, export: dict, rounds: list[dict], run: Path, images: Path) -> dict:
    """ONNX Runtime against TensorFlow and the original-style loop for one run folder (issue 13)."""
    best: dict = {}
    for name in ("original", "tensorflow", "onnx"):
        results = [r[name] for r in rounds if name in r]
        if not results:
            continue
        per_image = [r["seconds_per_image"] if name == "original" else _steady(r) for r in results]
        best[name] = {
            "first_prediction_s": min(r["first_prediction_s"] for r in results),
            "seconds_per_image": min(per_image),
            "peak_rss_mb": max(r["peak_rss_mb"] for r in results),
            "imported": results[0].get("imported"),
        }
    report = {"model": model, "export": export, "best": best}
    tf, orig = best["tensorflow"], best["original"]
    report["tensorflow_vs_original"] = {
        "start_up": tf["first_prediction_s"] / orig["first_prediction_s"],
        "peak_rss": tf["peak_rss_mb"] / orig["peak_rss_mb"],
    }
    if "onnx" in best:
        onnx = best["onnx"]
        report["onnx_vs"] = {
            "start_up_tensorflow": onnx["first_prediction_s"] / tf["first_prediction_s"],
            "start_up_original": onnx["first_prediction_s"] / orig["first_prediction_s"],
            "per_image_tensorflow": onnx["seconds_per_image"] / tf["seconds_per_image"],
            "peak_rss_tensorflow": onnx["peak_rss_mb"] / tf["peak_rss_mb"],
        }
        report["agreement"] = run_child("agree", str(run), str(images))
    return report


def render_backends(backends: dict, console) -> None:
    from rich.table import Table

    table = Table(title="Backends: flexplat infer on run folders written by flexplat train")
    for column in ("run", "measure", "original-style", "tensorflow", "onnx", "onnx / tf", "onnx / original"):
        table.add_column(column, justify="left" if column in ("run", "measure") else "right")
    for b in backends.values():
        best, name = b["best"], f"{b['model']['model']} {b['model']['size']} px"
        onnx, ratios = best.get("onnx"), b.get("onnx_vs", {})
        for measure, key, fmt, ratio_keys in (
            (
                "start-up to 1st prediction (s)",
                "first_prediction_s",
                "{:.2f}",
                ("start_up_tensorflow", "start_up_original"),
            ),
            ("per image (s)", "seconds_per_image", "{:.3f}", ("per_image_tensorflow", None)),
            ("peak RSS (MB)", "peak_rss_mb", "{:.0f}", ("peak_rss_tensorflow", None)),
        ):
            table.add_row(
                name, measure, fmt.format(best["original"][key]), fmt.format(best["tensorflow"][key]),
                fmt.format(onnx[key]) if onnx else "-",
                *(f"{ratios[k]:.2f}" if k and k in ratios else "" for k in ratio_keys),
            )  # fmt: skip
        agree = b.get("agreement")
        if agree:
            table.add_row(name, "max |p diff|, same argmax", "", "", f"{agree['max_abs_difference']:.1e}",
                          f"{agree['argmax_agreement']:.6%}", "")  # fmt: skip
        if "skipped" in b["export"]:
            table.add_row(name, "ONNX export skipped", "", "", b["export"]["skipped"], "", "")
    console.print(table)


def best_of(rounds: list[dict]) -> tuple[dict, dict, dict]:
    """Per figure, the best value over rounds: shortest times, highest ceiling, highest peak RSS."""
    originals = [r["original"] for r in rounds]
    flexplats = [r["flexplat"] for r in rounds]
    forwards = [r["forward"] for r in rounds]
    original = {
        "first_prediction_s": min(o["first_prediction_s"] for o in originals),
        "seconds_per_image": min(o["seconds_per_image"] for o in originals),
        "total_s": min(o["total_s"] for o in originals),
        "peak_rss_mb": max(o["peak_rss_mb"] for o in originals),
    }
    fastest = min(flexplats, key=lambda f: f["summary"]["timings"]["processing_seconds"])
    flexplat = {
        "first_prediction_s": min(f["first_prediction_s"] for f in flexplats),
        "total_s": min(f["total_s"] for f in flexplats),
        "peak_rss_mb": max(f["peak_rss_mb"] for f in flexplats),
        # as the original's seconds_per_image: from the first prediction to the last file written
        "seconds_per_image": min(
            (f["total_s"] - f["first_prediction_s"]) / max(1, f["summary"]["counts"]["processed"] - 1)
            for f in flexplats
        ),
        "summary": fastest["summary"],
    }
    batch = str(forwards[0]["batch"])
    forward = {
        "images": forwards[0]["images"],
        "batch": forwards[0]["batch"],
        "forward_s": {batch: min(f["forward_s"][batch] for f in forwards)},
        "ceiling": {
            "tensorflow_flops": max(f["ceiling"]["tensorflow_flops"] for f in forwards),
            "numpy_flops": max(f["ceiling"]["numpy_flops"] for f in forwards),
            "matmul": forwards[0]["ceiling"]["matmul"],
        },
    }
    return original, flexplat, forward


def summarise(
    setup: dict, models: dict, original: dict, flexplat: dict, forward: dict, tiled: list, counts: list
) -> dict:
    summary = flexplat["summary"]
    n = summary["counts"]["processed"]
    timings = summary["timings"]
    batch = str(forward["batch"])
    forward_s = forward["forward_s"][batch]
    flops = models["main"]["flops"]
    ceiling = max(forward["ceiling"]["tensorflow_flops"], forward["ceiling"]["numpy_flops"])
    flex_per_image = flexplat["seconds_per_image"]  # steady state, measured as the original's
    forward_per_image = forward_s / forward["images"]
    result = {
        "setup": setup,
        "models": models,
        "startup": {
            "flexplat_s": flexplat["first_prediction_s"],
            "original_s": original["first_prediction_s"],
            "ratio": flexplat["first_prediction_s"] / original["first_prediction_s"],
            "target": "<= 0.5",
        },
        "per_image": {
            "flexplat_s": flex_per_image,
            "flexplat_with_first_batch_s": timings["processing_seconds"] / n,  # incl. tracing the graph
            "flexplat_model_s": timings["model_seconds"] / n,
            "original_s": original["seconds_per_image"],
            "forward_s": forward_per_image,
            "batch": forward["batch"],
            "overhead_vs_forward": flex_per_image / forward_per_image - 1.0,
            # same process, same moment: the share of flexplat's time spent outside model calls (robust to noise)
            "outside_model_fraction": 1.0 - timings["model_seconds"] / timings["processing_seconds"],
            "speedup_vs_original": original["seconds_per_image"] / flex_per_image,
            "target": "overhead <= 0.10, speedup >= 1",
        },
        "flops": {
            "model_flops_per_image": flops,
            "ceiling_flops": ceiling,
            "ceiling_source": forward["ceiling"],
            "forward_fraction": flops / forward_per_image / ceiling,
            "flexplat_fraction": flops / flex_per_image / ceiling,
            "original_fraction": flops / original["seconds_per_image"] / ceiling,
            "target": ">= 0.6",
        },
        "memory": {"flexplat_peak_rss_mb": flexplat["peak_rss_mb"], "original_peak_rss_mb": original["peak_rss_mb"]},
        "totals": {"flexplat_s": flexplat["total_s"], "original_s": original["total_s"], "images": n},
        "tiled": tiled,
        # seconds per megapixel between consecutive sizes (the one-off first-call cost cancels out)
        "tiled_marginal_s_per_mp": [
            (b["seconds"] - a["seconds"]) / (b["megapixels"] - a["megapixels"]) for a, b in pairwise(tiled)
        ],
        "counts": counts,
        # seconds per ADDED image between the two largest counts / between the two smallest (the one-off
        # first call cancels out): 1.0 = linear, > 1.10 = time grows faster than the number of images
        "count_marginal_s_per_image": [
            (b["seconds"] - a["seconds"]) / (b["images"] - a["images"]) for a, b in pairwise(counts)
        ],
        "count_linearity": _linearity(counts),
        # measured once on this machine with the original code itself (seed facts); NOT from this run
        "reference_original": {
            "startup_s": REFERENCE_STARTUP_S,
            "per_image_s": REFERENCE_PER_IMAGE_S,
            "peak_rss_mb": REFERENCE_RSS_MB,
            "flexplat_startup_ratio": flexplat["first_prediction_s"] / REFERENCE_STARTUP_S,
        },
    }
    return result


def _linearity(counts: list) -> float | None:
    if len(counts) < 3:
        return None
    first = (counts[1]["seconds"] - counts[0]["seconds"]) / (counts[1]["images"] - counts[0]["images"])
    last = (counts[-1]["seconds"] - counts[-2]["seconds"]) / (counts[-1]["images"] - counts[-2]["images"])
    return last / first


def render(report: dict, console) -> None:
    from rich.table import Table

    s, p, f = report["startup"], report["per_image"], report["flops"]
    rounds = len(report.get("rounds", [])) or 1
    title = f"Inference ({report['setup']['name']}: {report['totals']['images']} images, best of {rounds} rounds)"
    table = Table(title=title)
    for column in ("measure", "flexplat", "original-style", "ratio", "target"):
        table.add_column(column, justify="right" if column not in ("measure", "target") else "left")
    table.add_row(
        "start-up to 1st prediction",
        f"{s['flexplat_s']:.1f} s",
        f"{s['original_s']:.1f} s",
        f"{s['ratio']:.2f}",
        "<= 0.5",
    )
    table.add_row(
        "seconds per image (steady)",
        f"{p['flexplat_s']:.3f}",
        f"{p['original_s']:.3f}",
        f"{1 / p['speedup_vs_original']:.2f}",
        "<= 1",
    )
    table.add_row(
        f"pure forward (batch {p['batch']}) per image",
        f"{p['forward_s']:.3f}",
        "",
        f"{1 + p['overhead_vs_forward']:.2f}",
        "<= 1.10",
    )
    table.add_row("time outside model calls", f"{p['outside_model_fraction']:.1%}", "", "", "I/O hidden behind compute")
    table.add_row(
        "fraction of FLOP ceiling",
        f"{f['flexplat_fraction']:.2f}",
        f"{f['original_fraction']:.2f}",
        f"forward {f['forward_fraction']:.2f}",
        ">= 0.6",
    )
    table.add_row(
        "peak RSS",
        f"{report['memory']['flexplat_peak_rss_mb']:.0f} MB",
        f"{report['memory']['original_peak_rss_mb']:.0f} MB",
        "",
        "",
    )
    console.print(table)
    ref = report["reference_original"]
    if report["setup"]["name"] == "full":
        console.print(
            f"[dim]Original code itself (measured earlier, not in this run): start-up ~{ref['startup_s']:.0f} s "
            f"(flexplat/that = {ref['flexplat_startup_ratio']:.2f}), {ref['per_image_s'][0]}-{ref['per_image_s'][1]} "
            f"s per image, peak RSS {ref['peak_rss_mb'] / 1024:.1f} GB[/]"
        )
    source = f["ceiling_source"]
    console.print(
        f"model {f['model_flops_per_image'] / 1e9:.1f} GFLOP per image; ceiling {f['ceiling_flops'] / 1e9:.1f} "
        f"GFLOP/s (TF {source['tensorflow_flops'] / 1e9:.1f}, NumPy {source['numpy_flops'] / 1e9:.1f})"
    )
    if report["tiled"]:
        _print_table(
            console,
            f"Tiled inference ({report['setup']['tiled_model']} {report['setup']['tiled_model_size']} px)",
            ("image", "seconds", "s / megapixel", "model s / MP", "peak RSS"),
            [
                (f"{r['side']}x{r['side']}", r["seconds"], r["seconds_per_megapixel"], r["model_seconds_per_megapixel"])
                for r in report["tiled"]
            ],
            [r["peak_rss_mb"] for r in report["tiled"]],
        )
        marginal = ", ".join(f"{v:.2f}" for v in report["tiled_marginal_s_per_mp"])
        console.print(f"marginal seconds per megapixel between consecutive sizes: {marginal}")
    if report["counts"]:
        _print_table(
            console,
            f"Image count ({report['setup']['tiled_model']}, {report['setup']['tiled_model_size']} px)",
            ("images", "seconds", "s / image", "model s / image", "peak RSS"),
            [
                (str(r["images"]), r["seconds"], r["seconds_per_image"], r["model_seconds_per_image"])
                for r in report["counts"]
            ],
            [r["peak_rss_mb"] for r in report["counts"]],
        )
        marginal = ", ".join(f"{v:.3f}" for v in report["count_marginal_s_per_image"])
        console.print(f"seconds per added image between consecutive counts: {marginal}")
        if report["count_linearity"] is not None:
            console.print(f"last / first of those: {report['count_linearity']:.2f} (linear: <= 1.10)")


def _print_table(console, title: str, columns: tuple, rows: list[tuple], peak_rss_mb: list[float]) -> None:
    """A right-aligned table: a label, three timings (3 decimals), then the peak RSS."""
    from rich.table import Table

    table = Table(title=title)
    for column in columns:
        table.add_column(column, justify="right")
    for (label, *timings), rss in zip(rows, peak_rss_mb, strict=True):
        table.add_row(label, *(f"{v:.3f}" for v in timings), f"{rss:.0f} MB")
    console.print(table)


def child_main(argv: list[str]) -> None:
    role, launch, rest = argv[1], float(argv[3]), argv[4:]
    roles = {
        "images": lambda: child_images(Path(rest[0]), json.loads(rest[1])),
        "weights": lambda: child_weights(Path(rest[0]), Path(rest[1])),
        "cli": lambda: child_cli(rest, launch),
        "flexplat": lambda: child_flexplat(rest, launch),
        "agree": lambda: child_agree(Path(rest[0]), Path(rest[1])),
        "original": lambda: child_original(Path(rest[0]), Path(rest[1]), Path(rest[2]), Path(rest[3]), launch),
        "forward": lambda: child_forward(Path(rest[0]), Path(rest[1]), int(rest[2])),
        "tiled": lambda: child_tiled(rest),
    }
    if role not in roles:
        raise SystemExit(f"unknown child role {role}")
    roles[role]()


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child_main(sys.argv[1:])
    else:
        main()
