"""ONNX Runtime against TensorFlow for `flexplat infer` on one run folder (issue 13, item 5).

    python benchmarks/inference_backends.py --run RUN_DIR [--images 20] [--rounds 2]

The run is exported to ONNX first (``RUN/export/onnx``, kept if it matches model.keras). Every
measurement runs in its own subprocess (start-up includes the interpreter and the imports, peak RSS
is per process):

- infer: `flexplat infer --backend tensorflow|onnx` on N generated images at the model's size;
  start-up = process launch -> first prediction returned; per image = the rest over N - 1 images.
- agree: both backends on the same prepared batches in one process: max |p difference| and the
  fraction of pixels with the same argmax.
- export: `flexplat export` time and peak RSS (only when the export is made).

The machine is shared and noisy: compare ratios within a run. Results: benchmarks/results/*.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import _common
from _common import emit, machine, write_json

RESULTS = Path(__file__).resolve().parent / "results"


def run_child(role: str, *args: str) -> dict:
    result = _common.run_child(__file__, [role, repr(time.time()), *args], timeout=3600)
    result["peak_rss_mb"] = result.pop("peak_rss_mib")
    return result


def child_export(launch: float, run: str) -> None:
    from flexplat.engine.export import export_run
    from flexplat.engine.rundir import RunDir

    result = export_run(RunDir.open(run), "onnx", overwrite=True)
    difference, megabytes = result.max_abs_difference, result.size_bytes / 1e6
    emit({"seconds": time.time() - launch, "max_abs_difference": difference, "mb": megabytes})


def child_infer(launch: float, run: str, images: str, output: str, backend: str) -> None:
    from flexplat.cli import cli
    from flexplat.engine import segment

    first: list[float] = []
    original = segment._Timed.__call__

    def timed(self, batch):
        result = original(self, batch)
        first.append(first[0] if first else time.time())
        return result

    segment._Timed.__call__ = timed
    args = ["infer", "--images", images, "--run", run, "--output", output, "--overwrite", "--backend", backend]
    cli.main(args, standalone_mode=False)
    end = time.time()
    summary = json.loads((Path(output) / "summary.json").read_text())
    count = summary["counts"]["processed"]
    heavy = sorted({m.split(".")[0] for m in sys.modules if m.split(".")[0] in ("tensorflow", "keras")})
    emit(
        {
            "backend": summary["backend"],
            "first_prediction_s": first[0] - launch,
            "per_image_s": (end - first[0]) / max(1, count - 1),
            "total_s": end - launch,
            "imported": heavy,
        }
    )


def child_agree(launch: float, run: str, images: str) -> None:
    import numpy as np

    from flexplat.data.io import read_image
    from flexplat.engine.export import ExportDir, default_export_dir
    from flexplat.engine.infer import build_segmenter
    from flexplat.engine.rundir import RunDir

    run_dir = RunDir.open(run)
    keras_seg = build_segmenter(run_dir, None, None, None, False, backend="tensorflow")
    onnx_seg = build_segmenter(ExportDir.open(default_export_dir(run_dir.path, "onnx")), None, None, None, False,
                               backend="onnx")  # fmt: skip
    worst, same, total = 0.0, 0, 0
    for path in sorted(Path(images).iterdir()):
        net = keras_seg.network_view(read_image(path))
        prepared = keras_seg.prepare(net, keras_seg.framing_factor(*net.shape[:2]))
        ours = keras_seg.predict_whole(prepared.array[None])
        theirs = onnx_seg.predict_whole(prepared.array[None])
        worst = max(worst, float(np.max(np.abs(ours - theirs))))
        same += int(np.sum(np.argmax(ours, -1) == np.argmax(theirs, -1)))
        total += int(np.prod(ours.shape[:3]))
    emit({"max_abs_difference": worst, "argmax_agreement": same / total})


def make_images(folder: Path, count: int, size: int) -> None:
    import numpy as np

    from flexplat.data.io import write_png

    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        image = np.full((size, size, 3), (225, 215, 225), np.uint8)
        for _ in range(12):
            y, x, r = rng.integers(0, size), rng.integers(0, size), rng.integers(size // 30, size // 10)
            yy, xx = np.ogrid[:size, :size]
            image[(yy - y) ** 2 + (xx - x) ** 2 < r * r] = rng.integers(60, 200, 3)
        write_png(folder / f"img_{i:03d}.png", image)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", type=Path, required=True, help="run folder written by `flexplat train`")
    parser.add_argument("--images", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=2, help="best (least disturbed) round counts")
    parser.add_argument("--out", type=Path, help="JSON result file (default benchmarks/results/)")
    args = parser.parse_args(argv)
    from flexplat.engine.export import ExportDir, default_export_dir
    from flexplat.engine.rundir import RunDir

    run = RunDir.open(args.run)
    work = RESULTS / f"work-backends-{run.path.name}"
    size = int(run.config()["model"]["image_size"][0])
    images = work / "images"
    if not images.is_dir():
        make_images(images, args.images, size)
    export_dir = default_export_dir(run.path, "onnx")
    report: dict = {"machine": machine(), "run": str(run.path), "images": args.images, "size": size}
    if not (ExportDir.is_export(export_dir) and ExportDir.open(export_dir).matches(run)):
        report["export"] = run_child("export", str(run.path))
    rounds = {"tensorflow": [], "onnx": []}
    for _ in range(args.rounds):
        for backend in rounds:
            rounds[backend].append(run_child("infer", str(run.path), str(images), str(work / backend), backend))
    best = {b: min(r, key=lambda x: x["total_s"]) for b, r in rounds.items()}
    report.update(best=best, rounds=rounds, agreement=run_child("agree", str(run.path), str(images)))
    report["ratios"] = {
        "start_up_onnx_over_tf": best["onnx"]["first_prediction_s"] / best["tensorflow"]["first_prediction_s"],
        "per_image_onnx_over_tf": best["onnx"]["per_image_s"] / best["tensorflow"]["per_image_s"],
        "peak_rss_onnx_over_tf": best["onnx"]["peak_rss_mb"] / best["tensorflow"]["peak_rss_mb"],
    }
    out = args.out or RESULTS / f"inference-backends-{run.path.name}-{time.strftime('%Y%m%d-%H%M%S')}.json"
    write_json(out, report)
    print(json.dumps({k: report[k] for k in ("best", "agreement", "ratios")}, indent=2))
    return report


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        role, launch, *rest = sys.argv[2:]
        {"export": child_export, "infer": child_infer, "agree": child_agree}[role](float(launch), *rest)
    else:
        main()
