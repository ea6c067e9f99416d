"""`python benchmarks/distributed.py --smoke` runs `flexplat train` with 1 and 2 workers end to end."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "distributed.py"

pytest.importorskip("flexplat_flexunet", reason="benchmarks/distributed.py trains flexplat-flexunet's flexunet-small")


@pytest.mark.slow
def test_distributed_benchmark_smoke(tmp_path: Path) -> None:
    out = tmp_path / "distributed.json"
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--smoke", "--threads", "0", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    result = json.loads(out.read_text())
    cases = {c["case"]: c for c in result["cases"]}
    assert set(cases) == {"1 process (fit)", "1 worker (distributed loop)", "2 workers"}
    assert cases["2 workers"]["global_batch"] == 2 * cases["1 worker (distributed loop)"]["global_batch"]
    assert all(c["images_per_second"] > 0 for c in cases.values())
    assert result["allreduce_bytes_per_step"] == 4 * cases["2 workers"]["parameters"]
    small = [r for r in result["estimate_8_gpus"] if r["model"] == "flexunet-small"]
    assert small and all(r["bytes_per_step"] == 4 * 1_950_950 for r in small)
