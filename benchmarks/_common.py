"""Helpers shared by the benchmark scripts: child processes, peak RSS, machine description, JSON.

Every measurement runs in a fresh child process (``python SCRIPT --child ...``) so peak RSS and
start-up are per measurement. The child prints one ``RESULT {json}`` line (:func:`emit`); the
parent reads it back (:func:`run_child`). Imports nothing heavy: TensorFlow is only named.
"""

from __future__ import annotations

import json
import os
import platform
import resource
import subprocess
import sys
from collections.abc import Mapping, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"
THREAD_ENV = ("OMP_NUM_THREADS", "TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS")
_PREFIX = "RESULT "


def peak_rss_mib() -> float:
    """This process's peak resident set size so far, in MiB (``ru_maxrss`` is KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def emit(result: Mapping[str, Any]) -> None:
    """Child side: print ``result`` plus this process's peak RSS as the ``RESULT`` line."""
    print(_PREFIX + json.dumps({**result, "peak_rss_mib": round(peak_rss_mib(), 1)}), flush=True)


def run_child(
    script: str | Path, args: Sequence[str], *, env: Mapping[str, str] | None = None, timeout: float | None = None
) -> dict:
    """Run ``python script --child *args`` and return the dict its last ``RESULT`` line holds.

    TensorFlow's C++ logging is quietened unless the user set ``TF_CPP_MIN_LOG_LEVEL``; the
    user's other variables (thread settings included) pass through unchanged.
    """
    return run_child_all(script, args, env=env, timeout=timeout)[-1]


def run_child_all(
    script: str | Path, args: Sequence[str], *, env: Mapping[str, str] | None = None, timeout: float | None = None
) -> list[dict]:
    """As :func:`run_child`, for a child that emits several results: all of them, in order."""
    command = [sys.executable, str(script), "--child", *args]
    full_env = {"TF_CPP_MIN_LOG_LEVEL": "2", **os.environ, **(env or {})}
    proc = subprocess.run(command, capture_output=True, text=True, env=full_env, timeout=timeout)
    lines = [line for line in proc.stdout.splitlines() if line.startswith(_PREFIX)]
    if proc.returncode != 0 or not lines:
        raise SystemExit(
            f"benchmark child {' '.join(args[:1])} failed (exit {proc.returncode}):\n"
            f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
        )
    return [json.loads(line[len(_PREFIX) :]) for line in lines]


def _version(*names: str) -> str | None:
    for name in names:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return None


def machine() -> dict:
    """CPU model, cores, memory, library versions, the user's thread settings and the load now."""
    cpu = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        mem_kib = int(Path("/proc/meminfo").read_text().split()[1])
    except (OSError, ValueError, IndexError):
        mem_kib = 0
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gib": round(mem_kib / 2**20, 1),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "tensorflow": _version("tensorflow", "tensorflow-cpu"),
        "keras": _version("keras"),
        "thread_env": {k: os.environ[k] for k in THREAD_ENV if k in os.environ},
        "load_average": load_average(),
    }


def load_average() -> list[float]:
    """1, 5 and 15-minute load averages (the machine is shared: note them beside timings)."""
    return [round(x, 2) for x in os.getloadavg()]


def write_json(path: Path, data: Any) -> None:
    """Write ``data`` as indented JSON atomically (temp file in the same folder, then replace)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, path)
