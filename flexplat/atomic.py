"""Atomic file writes: a temp file in the same folder, then ``os.replace``.

A crash or a kill never leaves a half-written file under the final name; a failed write (disk
full, file too large, read-only folder) removes its temp file and raises :class:`WriteError`
naming the file, so files written before stay complete and the user sees one clear message.
"""

from __future__ import annotations

import errno
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

from flexplat.errors import FlexplatError

_FULL = {errno.ENOSPC, errno.EFBIG, errno.EDQUOT}


class WriteError(FlexplatError):
    """An output file could not be written; ``errno`` is the operating system's error number."""

    def __init__(self, path: str | Path, exc: OSError) -> None:
        self.errno = exc.errno
        reason = exc.strerror or str(exc)
        if exc.errno in _FULL:
            hint = "free some space (or write elsewhere) and run the command again; files written before are complete"
        else:
            hint = "check that the folder exists and is writable, or choose another output folder"
        super().__init__(f"{path}: cannot write ({reason}); {hint}")


def temp_path(path: Path, keep_suffix: bool = False) -> Path:
    """A fresh hidden temp file next to ``path``, created empty: ``.<name>.<random>.tmp``, or with
    ``keep_suffix`` ``.tmp-<random>-<name>`` (for writers that insist on ``.keras`` / ``.weights.h5``)."""
    if keep_suffix:
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=f"-{path.name}", dir=path.parent)
    else:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    return Path(tmp)


def atomic_write_with(path: str | Path, write: Callable[[Path], None], keep_suffix: bool = False) -> None:
    """Let ``write(tmp)`` fill a temp file next to ``path``, then move it into place atomically.

    For writers that need a file name (Keras, h5py: ``keep_suffix=True``). A temp file that
    failed is removed; an ``OSError`` becomes :class:`WriteError` naming ``path``.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = temp_path(path, keep_suffix)
    except OSError as exc:
        raise WriteError(path, exc) from None
    try:
        write(tmp)
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise WriteError(path, exc) from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically, creating parent folders."""

    def write(tmp: Path) -> None:
        fd = os.open(tmp, os.O_WRONLY | os.O_TRUNC)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
        finally:
            os.close(fd)

    atomic_write_with(path, write)


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically, creating parent folders."""
    atomic_write_bytes(path, text.encode("utf-8"))
