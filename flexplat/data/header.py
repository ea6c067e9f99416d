"""Image sizes read from file headers, so an absurd image is refused before it is decoded.

A PNG whose header claims 100000 x 100000 pixels would need 30 GB to decode; :func:`check_size`
refuses any image above :func:`max_pixels` (``FLEXPLAT_MAX_IMAGE_PIXELS``, default 64 megapixels:
decoding, probabilities and overlays of such an image stay within a few GB). PNG, JPEG, BMP and
TIFF headers are read; other files fall back to OpenCV's own limit.
"""

from __future__ import annotations

import os
import struct
from pathlib import Path

from flexplat.errors import DataError

MAX_PIXELS_ENV = "FLEXPLAT_MAX_IMAGE_PIXELS"
DEFAULT_MAX_PIXELS = 64_000_000
_JPEG_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


def max_pixels() -> int:
    """The largest image (width x height) flexplat decodes."""
    try:
        return int(os.environ.get(MAX_PIXELS_ENV, DEFAULT_MAX_PIXELS))
    except ValueError:
        return DEFAULT_MAX_PIXELS


def header_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) from a PNG, JPEG, BMP or TIFF header; None when it cannot be read."""
    try:
        if data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR":
            return struct.unpack(">II", data[16:24])
        if data[:2] == b"\xff\xd8":
            return _jpeg_size(data)
        if data[:2] == b"BM":
            width, height = struct.unpack("<ii", data[18:26])
            return abs(width), abs(height)
        if data[:4] in (b"II*\x00", b"MM\x00*"):
            return _tiff_size(data)
    except (struct.error, IndexError):
        return None
    return None


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    at = 2
    while at + 9 < len(data):
        if data[at] != 0xFF:
            return None
        marker = data[at + 1]
        if marker in _JPEG_SOF:
            height, width = struct.unpack(">HH", data[at + 5 : at + 9])
            return width, height
        at += 2 + struct.unpack(">H", data[at + 2 : at + 4])[0]
    return None


def _tiff_size(data: bytes) -> tuple[int, int] | None:
    order = "<" if data[:2] == b"II" else ">"
    ifd = struct.unpack(order + "I", data[4:8])[0]
    count = struct.unpack(order + "H", data[ifd : ifd + 2])[0]
    found: dict[int, int] = {}
    for i in range(count):
        entry = data[ifd + 2 + 12 * i : ifd + 14 + 12 * i]
        tag, kind = struct.unpack(order + "HH", entry[:4])
        if tag in (256, 257):
            found[tag] = struct.unpack(order + ("H" if kind == 3 else "I"), entry[8 : 10 if kind == 3 else 12])[0]
    return (found[256], found[257]) if len(found) == 2 else None


def check_size(path: str | Path, data: bytes) -> None:
    """Refuse, before decoding, an image whose header claims more than :func:`max_pixels` pixels."""
    size = header_size(data)
    limit = max_pixels()
    if size is not None and size[0] * size[1] > limit:
        width, height = size
        raise DataError(
            f"{path}: the header says {width} x {height} pixels ({width * height / 1e6:,.1f} megapixels), above "
            f"the limit of {limit / 1e6:,.1f} megapixels; not decoded. Downscale or split the image, or raise "
            f"{MAX_PIXELS_ENV} if the machine has the memory"
        )
