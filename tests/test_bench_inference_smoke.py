"""`python benchmarks/inference.py --smoke` runs end to end on run folders written by `flexplat train`."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "inference.py"

pytest.importorskip("flexplat_flexunet", reason="benchmarks/inference.py trains flexplat-flexunet's models")
pytest.importorskip("flexplat_leukocyte", reason="benchmarks/inference.py generates leukocyte smears")
pytest.importorskip("onnxruntime", reason="the benchmark compares ONNX Runtime with TensorFlow")
pytest.importorskip("tf2onnx", reason="the benchmark exports the runs to ONNX")


def test_inference_benchmark_smoke(tmp_path: Path) -> None:
    out, work = tmp_path / "inference.json", tmp_path / "work"
    command = [sys.executable, str(SCRIPT), "--smoke", "--rounds", "1", "--skip-tiled", "--work", str(work)]
    done = subprocess.run([*command, "--out", str(out)], capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    report = json.loads(out.read_text())
    for case, run in (("main", "run"), ("tiled", "tiled_run")):
        # a real run folder: trained by `flexplat train`, exported by `flexplat export`
        info = json.loads((work / run / "run.json").read_text())
        assert info["status"] == "completed" and info["epochs_completed"] >= 1, info
        assert (work / run / "export" / "onnx" / "manifest.json").is_file()
        backends = report["backends"][case]
        best = backends["best"]
        assert set(best) == {"original", "tensorflow", "onnx"}
        assert best["onnx"]["imported"] == [] and best["tensorflow"]["imported"] == ["keras", "tensorflow"]
        ratio = best["onnx"]["first_prediction_s"] / best["tensorflow"]["first_prediction_s"]
        assert backends["onnx_vs"]["start_up_tensorflow"] == pytest.approx(ratio)
        assert backends["agreement"]["argmax_agreement"] > 0.99
        assert (
            backends["agreement"]["pixels"]
            == report["setup"]["images"]
            * (report["setup"]["size"] if case == "main" else report["setup"]["tiled_model_size"]) ** 2
        )
    assert report["startup"]["flexplat_s"] == report["backends"]["main"]["best"]["tensorflow"]["first_prediction_s"]
    assert "Backends" in done.stdout
