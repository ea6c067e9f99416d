"""The process around flexplat: is TensorFlow installed, and quiet library start-up.

TensorFlow is an extra (``flexplat[cpu]`` / ``flexplat[gpu]``): commands that need it call
:func:`require_tensorflow` before any work, which names the extra when it is missing. Library
start-up noise (TensorFlow's absl and oneDNN notices, OpenCV's decoder errors) is hidden so the
terminal shows flexplat's own messages only; ``flexplat --verbose`` or ``FLEXPLAT_VERBOSE=1``
brings it back. oneDNN itself stays as configured: only its notice is hidden, never the feature
(``TF_ENABLE_ONEDNN_OPTS`` is left alone, it changes numerics and speed).
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import logging
import os
import re
import sys
import tempfile
import threading
from collections.abc import Iterator
from typing import Any

from flexplat.errors import FlexplatError

VERBOSE_ENV = "FLEXPLAT_VERBOSE"
TF_EXTRA_HINT = 'install it with `pip install "flexplat[cpu]"` (or "flexplat[gpu]" for an NVIDIA GPU)'

# Lines TensorFlow writes to the stderr file descriptor while it loads, whatever TF_CPP_MIN_LOG_LEVEL says
_TF_NOISE = re.compile(
    rb"All log messages before absl::InitializeLog\(\)|oneDNN custom operations are on"
    rb"|oneDNN supports DT_\w+ only on platforms with|This TensorFlow binary is optimized to use"
    rb"|Unable to register cu(DNN|FFT|BLAS) factory|computation placer already registered"
    rb"|To enable the following instructions: |TF-TRT Warning|failed call to cuInit|cuda_(dnn|fft|blas|executor)\.cc"
)


def verbose() -> bool:
    """Whether library logs are wanted (``--verbose`` sets ``FLEXPLAT_VERBOSE=1`` for the process)."""
    return os.environ.get(VERBOSE_ENV, "").strip().lower() in {"1", "true", "yes", "on"}


_QUIET_DEFAULTS = {"TF_CPP_MIN_LOG_LEVEL": "2", "OPENCV_LOG_LEVEL": "SILENT"}  # TF: C++ INFO and WARNING
_set_here: set[str] = set()


def configure_logging(verbose_flag: bool = False) -> None:
    """Quiet the libraries' logs unless verbose; call before TensorFlow is imported (again with the flag).

    Sets defaults only: a ``TF_CPP_MIN_LOG_LEVEL`` or ``OPENCV_LOG_LEVEL`` the user set is kept;
    turning verbose on removes the defaults set here.
    """
    if verbose_flag:
        os.environ[VERBOSE_ENV] = "1"
    loud = verbose()
    for name, value in _QUIET_DEFAULTS.items():
        if loud and name in _set_here:
            os.environ.pop(name, None)
            _set_here.discard(name)
        elif not loud and name not in os.environ:
            os.environ[name] = value
            _set_here.add(name)
    if "cv2" in sys.modules:
        quiet_opencv(sys.modules["cv2"])


def quiet_opencv(cv2: Any) -> None:
    """Silence OpenCV's own log (e.g. a PNG decoder error next to flexplat's message) unless verbose."""
    with contextlib.suppress(AttributeError):  # older builds without the logging module
        logging = cv2.utils.logging
        logging.setLogLevel(logging.LOG_LEVEL_WARNING if verbose() else logging.LOG_LEVEL_SILENT)


def installed(module: str) -> bool:
    """Whether ``module`` can be imported (found without importing it)."""
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def require_tensorflow(purpose: str) -> None:
    """Import TensorFlow and Keras (quietly), or stop with one line naming the extra to install."""
    missing = [name for name in ("tensorflow", "keras") if name not in sys.modules and not installed(name)]
    if missing:
        names = ", ".join(missing)
        raise FlexplatError(f"{purpose} needs TensorFlow, which is not installed ({names}); {TF_EXTRA_HINT}")
    try:
        with filtered_stderr(None if verbose() else _TF_NOISE):
            importlib.import_module("tensorflow")
            importlib.import_module("keras")
    except ImportError as exc:
        raise FlexplatError(f"{purpose} needs TensorFlow, which failed to import ({exc}); {TF_EXTRA_HINT}") from None
    if not verbose():  # Python-side notices such as "WARNING:tensorflow:... triggered tf.function retracing"
        logging.getLogger("tensorflow").setLevel(logging.ERROR)


@contextlib.contextmanager
def filtered_stderr(noise: re.Pattern[bytes] | None) -> Iterator[None]:
    """Capture the stderr file descriptor (C++ libraries write to it) and replay all but ``noise`` lines."""
    if noise is None:
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            kept = [line for line in captured.read().splitlines(keepends=True) if not noise.search(line)]
            if kept:
                os.write(2, b"".join(kept))


@contextlib.contextmanager
def quiet_training() -> Iterator[None]:
    """Hide TensorFlow's C++ notices that appear after start-up (e.g. at the first training step) unless
    verbose; everything else written to stderr passes through as it comes (a pipe and a pump thread)."""
    if verbose():
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    read_end, write_end = os.pipe()
    os.dup2(write_end, 2)
    os.close(write_end)
    pump = threading.Thread(target=_pump, args=(read_end, saved, _TF_NOISE), daemon=True)
    pump.start()
    try:
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)  # the pipe's last write end closes: the pump reads to the end and stops
        pump.join(timeout=5)
        os.close(saved)


def _pump(read_end: int, target: int, noise: re.Pattern[bytes]) -> None:
    with os.fdopen(read_end, "rb") as pipe:
        for line in pipe:
            if not noise.search(line):
                os.write(target, line)
