"""ONNX Runtime tuning and the agreement noise floor, on a run folder and its ONNX export (issue 13).

    python benchmarks/onnx_backend.py --run RUN [--images DIR] [--count 4]

The run must have been exported (`flexplat export RUN --format onnx`); benchmarks/inference.py
leaves its run folders, exports and images in its work folder for this. Every variant runs in
its own process, on the same images prepared as `flexplat infer` prepares them (batch of one):

- options: seconds per image of the forward pass (after one warm-up call, best of 3 passes, best
  of ``--repeats`` processes run round-robin over the variants, so each meets the load in turn) for
  TensorFlow (the run's model.keras) and ONNX Runtime under each session setting below, and the
  model's input/output transposes and opset as exported.
- agreement: the probabilities of every variant against a float64 Keras copy of the same weights
  (the reference), and ONNX Runtime against TensorFlow: max |p difference| and same-argmax share.
  TensorFlow with oneDNN off (``TF_ENABLE_ONEDNN_OPTS=0``) is a second float32 implementation;
  its distance from the default is the float32 noise floor any other runtime is held to.

The machine is shared and noisy: compare within a run. Results: benchmarks/results/onnx-backend-*.json.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import _common
from _common import emit, machine, write_json

RESULTS = Path(__file__).resolve().parent / "results"

ORT_VARIANTS = {  # name -> session settings (applied by child_onnx)
    "ort default (threads spin)": {},
    "ort 1 thread": {"intra": 1},
    "ort 2 threads": {"intra": 2},
    "ort 2 threads, no spinning": {"intra": 2, "spin": False},
    "ort no spinning (flexplat infer)": {"spin": False},
    "ort no spinning, sequential": {"spin": False, "sequential": True},
    "ort sequential, inter 1": {"sequential": True, "inter": 1},
    "ort no memory arena": {"arena": False},
    "ort basic graph optimisations": {"level": "basic"},
    "ort no graph optimisations": {"level": "disable"},
}


def prepared_inputs(run_dir: Path, images: Path, count: int):
    """The network inputs of the first ``count`` images, as `flexplat infer --no-rescale` makes them."""
    import numpy as np

    from flexplat.data.io import read_image
    from flexplat.engine.rundir import RunDir
    from flexplat.engine.segment import resize

    height, width = RunDir.open(run_dir).config()["model"]["image_size"]
    files = sorted(images.iterdir())[:count]
    return np.stack([resize(read_image(path), height, width).astype(np.float32) for path in files])


def _timed(forward, batch) -> tuple[float, list]:
    """Seconds per image (best of 3 passes after a warm-up) and the outputs of the last pass."""
    forward(batch[:1])
    best, outputs = float("inf"), []
    for _ in range(3):
        started = time.perf_counter()
        outputs = [forward(batch[i : i + 1]) for i in range(len(batch))]
        best = min(best, (time.perf_counter() - started) / len(batch))
    return best, outputs


def _save(out: Path, outputs: list) -> None:
    import numpy as np

    np.save(out, np.concatenate(outputs).astype(np.float32))


def child_tensorflow(run_dir: Path, images: Path, count: int, out: Path, dtype: str) -> None:
    """The run's Keras model (float32), or a float64 copy of the same weights (the reference)."""
    import numpy as np

    from flexplat.engine.model_file import load_model
    from flexplat.engine.rundir import RunDir
    from flexplat.engine.segment import Predictor

    run = RunDir.open(run_dir)
    model = load_model(run)
    if dtype == "float64":
        import keras

        copy = keras.Model.from_config(json.loads(json.dumps(model.get_config()).replace('"float32"', '"float64"')))
        copy.set_weights([w.astype(np.float64) for w in model.get_weights()])
        assert all(w.dtype == "float64" for w in copy.weights), "the reference must compute in float64"
        model = copy
    predictor = Predictor(model, len(run.config()["classes"]))
    batch = prepared_inputs(run_dir, images, count)
    seconds, outputs = _timed(lambda x: predictor(x.astype(np.float64) if dtype == "float64" else x), batch)
    _save(out, outputs)
    emit({"seconds_per_image": seconds, "onednn": os.environ.get("TF_ENABLE_ONEDNN_OPTS", "default")})


def child_onnx(model_file: Path, run_dir: Path, images: Path, count: int, out: Path, settings: dict) -> None:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    if "intra" in settings:
        options.intra_op_num_threads = settings["intra"]
    if "inter" in settings:
        options.inter_op_num_threads = settings["inter"]
    if settings.get("sequential"):
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    spin = "1" if settings.get("spin", True) else "0"  # ONNX Runtime's default, or none (flexplat's choice)
    options.add_session_config_entry("session.intra_op.allow_spinning", spin)
    options.add_session_config_entry("session.inter_op.allow_spinning", spin)
    if settings.get("arena") is False:
        options.enable_cpu_mem_arena = False
    levels = {"basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
              "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL}  # fmt: skip
    if "level" in settings:
        options.graph_optimization_level = levels[settings["level"]]
    session = ort.InferenceSession(str(model_file), options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    batch = prepared_inputs(run_dir, images, count)
    seconds, outputs = _timed(lambda x: session.run(None, {name: x})[0], batch)
    _save(out, outputs)
    emit({"seconds_per_image": seconds})


def child_graph(model_file: Path) -> None:
    """Operator counts of the exported graph (layout transposes, opset)."""
    import collections

    import onnx

    model = onnx.load(str(model_file), load_external_data=False)
    ops = collections.Counter(node.op_type for node in model.graph.node)
    opset = {entry.domain or "ai.onnx": entry.version for entry in model.opset_import}
    emit({"ops": dict(ops.most_common()), "opset": opset})


def compare(a, b) -> dict:
    import numpy as np

    return {
        "max_abs_difference": float(np.max(np.abs(a - b))),
        "argmax_agreement": float(np.mean(np.argmax(a, -1) == np.argmax(b, -1))),
    }


def run_child(role: str, *args: str, env: dict | None = None) -> dict:
    result = _common.run_child(__file__, [role, *args], env=env, timeout=3600)
    result["peak_rss_mb"] = result.pop("peak_rss_mib")
    return result


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", type=Path, required=True, help="run folder with RUN/export/onnx")
    parser.add_argument("--images", type=Path, help="images (default: inference.py's beside the run)")
    parser.add_argument("--count", type=int, default=4, help="images per variant")
    parser.add_argument("--repeats", type=int, default=3, help="rounds over the variants; the fastest counts")
    parser.add_argument("--variants", help="semicolon-separated variant names to run (default: all)")
    parser.add_argument("--out", type=Path, help="JSON result file")
    args = parser.parse_args(argv)
    import numpy as np

    run = args.run.resolve()
    model_file = run / "export" / "onnx" / "model.onnx"
    images = args.images or run.parent / ("images" if run.name == "run" else "images_small")
    work = RESULTS / f"work-onnx-backend-{run.name}"
    work.mkdir(parents=True, exist_ok=True)
    common = [str(run), str(images), str(args.count)]
    keras_variants = {
        "tf float32": ("float32", None),
        "tf float32, oneDNN off": ("float32", {"TF_ENABLE_ONEDNN_OPTS": "0"}),
        "keras float64 (reference)": ("float64", None),
    }
    names = [*keras_variants, *ORT_VARIANTS]
    if args.variants:
        wanted = {name.strip() for name in args.variants.split(";")} | {"tf float32", "keras float64 (reference)"}
        names = [name for name in names if name in wanted]
    variants: dict[str, dict] = {}
    for repeat in range(args.repeats):  # round-robin: each variant sees the machine's load in turn
        for index, name in enumerate(names):
            if repeat and name == "keras float64 (reference)":
                continue  # the reference's outputs, not its speed, are what counts
            print(f"{repeat + 1}/{args.repeats} {name} ...", flush=True)
            out = str(work / f"{index}.npy")
            if name in keras_variants:
                dtype, env = keras_variants[name]
                result = run_child("tensorflow", *common, out, dtype, env=env)
            else:
                result = run_child("onnx", str(model_file), *common, out, json.dumps(ORT_VARIANTS[name]))
                result["settings"] = ORT_VARIANTS[name]
            seen = variants.setdefault(name, {**result, "all_seconds_per_image": []})
            seen["all_seconds_per_image"].append(result["seconds_per_image"])
            seen["seconds_per_image"] = min(seen["all_seconds_per_image"])
    outputs = {name: np.load(work / f"{i}.npy") for i, name in enumerate(names)}
    reference, tf = outputs["keras float64 (reference)"], outputs["tf float32"]
    for name, result in variants.items():
        result["vs_float64"] = compare(outputs[name], reference)
        result["vs_tf"] = compare(outputs[name], tf)
    report = {"machine": machine(), "run": str(run), "images": args.count, "graph": run_child("graph", str(model_file))}
    report["variants"] = variants
    print(f"{'variant':34} {'s/image':>8} {'RSS MB':>7} {'|p-p64|':>9} {'|p-tf|':>9} {'argmax=tf':>10}")
    for name, r in variants.items():
        p64, ptf = r["vs_float64"]["max_abs_difference"], r["vs_tf"]["max_abs_difference"]
        print(f"{name:34} {r['seconds_per_image']:8.3f} {r['peak_rss_mb']:7.0f} {p64:9.1e} {ptf:9.1e} "
              f"{r['vs_tf']['argmax_agreement']:10.6%}")  # fmt: skip
    print("graph:", json.dumps(report["graph"]["ops"]), "opset", report["graph"]["opset"])
    out = args.out or RESULTS / f"onnx-backend-{run.name}-{time.strftime('%Y%m%d-%H%M%S')}.json"
    write_json(out, report)
    print(f"JSON: {out}")
    return report


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        role, rest = sys.argv[2], sys.argv[3:]
        if role == "tensorflow":
            child_tensorflow(Path(rest[0]), Path(rest[1]), int(rest[2]), Path(rest[3]), rest[4])
        elif role == "onnx":
            child_onnx(Path(rest[0]), Path(rest[1]), Path(rest[2]), int(rest[3]), Path(rest[4]), json.loads(rest[5]))
        else:
            child_graph(Path(rest[0]))
    else:
        main()
