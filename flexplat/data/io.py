"""Image files in and out: decoding with clear rules and errors, atomic PNG writes, colouring.

Decoding rules of :func:`read_image` (images fed to models are always ``uint8`` RGB):

- grayscale (1 channel, or gray + alpha) is repeated into 3 channels;
- RGBA / BGRA: the alpha channel is DROPPED (colours are used as stored, not composited);
  microscopy and photo datasets carry an opaque alpha when they carry one at all;
- 16-bit: scaled to 8-bit with ``round(v / 257)`` (65535 -> 255, the full range maps to the
  full range; no per-image contrast stretch, so intensities stay comparable between files);
- any other sample type (float TIFF, 32-bit) and unreadable/corrupt files raise
  :class:`~flexplat.errors.DataError` naming the file.

Files are read with ``np.fromfile`` + ``cv2.imdecode`` so non-ASCII paths work everywhere.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from flexplat.atomic import atomic_write_bytes
from flexplat.data.header import check_size
from flexplat.errors import DataError
from flexplat.runtime import quiet_opencv

# A corrupt file is reported once as a DataError; OpenCV's own log lines would only add noise
quiet_opencv(cv2)

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")


def decode_raw(path: str | Path, flags: int = cv2.IMREAD_UNCHANGED) -> np.ndarray:
    """Decode ``path`` as stored (channel order BGR[A]); DataError names the file on failure."""
    try:
        data = np.fromfile(path, dtype=np.uint8)
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except OSError as exc:
        raise DataError(f"{path}: cannot read file: {exc.strerror or exc}") from None
    if data.size == 0:
        raise DataError(f"{path}: empty file (0 bytes); re-export or remove it")
    check_size(path, data[:65536].tobytes())
    try:
        array = cv2.imdecode(data, flags)
    except cv2.error:
        array = None
    if array is None:
        raise DataError(f"{path}: cannot decode image (corrupt, truncated or not an image); re-export or remove it")
    return array


def scale_to_uint8(array: np.ndarray, path: str | Path) -> np.ndarray:
    """``uint8`` unchanged, ``uint16`` scaled by ``round(v / 257)``; other types raise DataError."""
    if array.dtype == np.uint8:
        return array
    if array.dtype == np.uint16:
        return ((array.astype(np.uint32) + 128) // 257).astype(np.uint8)
    raise DataError(
        f"{path}: unsupported sample type {array.dtype} (expected 8- or 16-bit); convert the file to 8-bit PNG"
    )


def to_rgb(array: np.ndarray, path: str | Path) -> tuple[np.ndarray, list[str]]:
    """Turn a decoded (BGR-ordered) array into ``uint8`` RGB, with notes on what was converted."""
    notes: list[str] = []
    if array.dtype == np.uint16:
        notes.append("16-bit scaled to 8-bit (v/257)")
    array = scale_to_uint8(array, path)
    if array.ndim == 2:
        notes.append("grayscale repeated into 3 channels")
        return np.ascontiguousarray(np.repeat(array[:, :, None], 3, axis=2)), notes
    channels = array.shape[2]
    if channels == 1:
        notes.append("grayscale repeated into 3 channels")
        return np.ascontiguousarray(np.repeat(array, 3, axis=2)), notes
    if channels == 2:
        notes.append("grayscale+alpha: alpha dropped, gray repeated into 3 channels")
        return np.ascontiguousarray(np.repeat(array[:, :, :1], 3, axis=2)), notes
    if channels == 4:
        notes.append("RGBA: alpha channel dropped")
        array = array[:, :, :3]
    elif channels != 3:
        raise DataError(f"{path}: {channels} channels are not supported (expected gray, RGB or RGBA)")
    return np.ascontiguousarray(array[:, :, ::-1]), notes


def decode_image(path: str | Path) -> tuple[np.ndarray, list[str]]:
    """Like :func:`read_image`, also returning notes on conversions (gray, RGBA, 16-bit)."""
    return to_rgb(decode_raw(path), path)


def read_image(path: str | Path) -> np.ndarray:
    """Read an image as ``uint8`` H x W x 3 RGB (see the module docstring for the rules)."""
    return decode_image(path)[0]


def read_gray(path: str | Path) -> np.ndarray:
    """Read a single-channel image (e.g. an index mask) as stored: ``uint8`` or ``uint16`` H x W.

    A 3- or 4-channel file whose colour channels are all equal (a gray image saved as RGB) is
    accepted losslessly; a real colour image raises DataError.
    """
    array = decode_raw(path)
    if array.dtype not in (np.uint8, np.uint16):
        raise DataError(f"{path}: unsupported sample type {array.dtype}; expected 8- or 16-bit single-channel PNG")
    if array.ndim == 3:
        if array.shape[2] == 1:
            array = array[:, :, 0]
        elif (
            array.shape[2] >= 3
            and np.array_equal(array[:, :, 0], array[:, :, 1])
            and np.array_equal(array[:, :, 0], array[:, :, 2])
        ):
            array = array[:, :, 0]
        else:
            raise DataError(
                f"{path}: expected a single-channel mask, got a {array.shape[2]}-channel colour image "
                f"(for colour masks use the rgb-mask codec)"
            )
    return np.ascontiguousarray(array)


def write_png(path: str | Path, array: np.ndarray) -> None:
    """Write ``array`` (H x W x 3 RGB, H x W x 4 RGBA, or H x W gray; 8/16-bit) as PNG, atomically.

    The file is written to a temporary name in the same folder and moved into place with
    ``os.replace``, so a crash never leaves a half-written file. Parent folders are created.
    """
    path = Path(path)
    array = np.asarray(array)
    if array.dtype not in (np.uint8, np.uint16):
        raise ValueError(f"write_png({path}): expected uint8 or uint16, got {array.dtype}")
    if array.ndim == 3 and array.shape[2] == 3:
        array = array[:, :, ::-1]
    elif array.ndim == 3 and array.shape[2] == 4:
        array = array[:, :, [2, 1, 0, 3]]
    elif array.ndim != 2:
        raise ValueError(f"write_png({path}): expected H x W, H x W x 3 or H x W x 4, got shape {array.shape}")
    ok, encoded = cv2.imencode(".png", np.ascontiguousarray(array))
    if not ok:
        raise DataError(f"{path}: PNG encoding failed")
    atomic_write_bytes(path, encoded.tobytes())


def colorize(index_mask: np.ndarray, colors: Sequence[Sequence[int]]) -> np.ndarray:
    """Paint a class-index mask (H x W) with ``colors[i] = (r, g, b)``: H x W x 3 ``uint8``."""
    palette = np.asarray(colors, dtype=np.uint8).reshape(-1, 3)
    index_mask = np.asarray(index_mask)
    if index_mask.size and (int(index_mask.max()) >= len(palette) or int(index_mask.min()) < 0):
        bad = int(index_mask.max()) if int(index_mask.max()) >= len(palette) else int(index_mask.min())
        raise ValueError(f"colorize: mask holds index {bad} but only {len(palette)} colours are given")
    return palette[index_mask]
