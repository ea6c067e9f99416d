"""The built-in codecs: ``rgb-mask`` (colour masks) and ``index-mask`` (class-index masks)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from flexplat.data import io
from flexplat.data.codec import Codec, MaskRead, Pair
from flexplat.errors import DataError
from flexplat.specs import ClassInfo

DEFAULT_TOLERANCE = 60.0


def _pack(rgb: np.ndarray) -> np.ndarray:
    """(..., 3) uint8 colours -> (...) uint32 codes r<<16 | g<<8 | b."""
    rgb = rgb.astype(np.uint32)
    return (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]


def _unpack(codes: np.ndarray) -> np.ndarray:
    return np.stack([(codes >> 16) & 255, (codes >> 8) & 255, codes & 255], axis=-1).astype(np.int64)


class RgbMaskCodec(Codec):
    """Images + RGB colour masks; each class colour comes from the class list.

    A mask colour that is not exactly a class colour is SNAPPED (and counted) when it lies
    within ``tolerance`` (Euclidean RGB distance) of a class colour - it takes that class - or,
    with ``blends`` on, of the straight mix of two class colours, as anti-aliased edges are -
    it takes the nearer of the two. Anything else is an error naming file, colour and count.
    """

    name = "rgb-mask"

    def __init__(self, classes: Sequence[ClassInfo], options: Mapping[str, Any]) -> None:
        super().__init__(classes, options)
        self.tolerance = float(self.options.get("tolerance", DEFAULT_TOLERANCE))
        self.blends = bool(self.options.get("blends", True))
        if not 1 <= len(self.classes) <= 256:
            raise DataError(f"rgb-mask codec: needs 1 to 256 classes, got {len(self.classes)}")
        self.palette = np.array([c.color for c in self.classes], dtype=np.int64)
        codes = _pack(self.palette)
        if len(set(codes.tolist())) != len(codes):
            raise DataError("rgb-mask codec: two classes share a colour; every class needs its own colour")
        self._order = np.argsort(codes)
        self._sorted_codes = codes[self._order]
        self._class_of_sorted = self._order.astype(np.uint8)

    def _snap(self, colors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """For K off-palette colours: the class each snaps to (-1 = too far) and its distance."""
        c = colors.astype(np.float64)[:, None, :]
        palette = self.palette.astype(np.float64)
        dist = np.sqrt(((c - palette[None]) ** 2).sum(-1))  # K x C
        target = dist.argmin(1)
        best = dist.min(1)
        if self.blends and len(palette) > 1:
            i, j = np.triu_indices(len(palette), k=1)
            a, v = palette[i], palette[j] - palette[i]  # P x 3
            t = np.clip(((c - a[None]) * v[None]).sum(-1) / (v * v).sum(-1)[None], 0.0, 1.0)  # K x P
            seg_dist = np.sqrt(((c - (a[None] + t[..., None] * v[None])) ** 2).sum(-1))
            k = seg_dist.argmin(1)
            rows = np.arange(len(colors))
            use = (best > self.tolerance) & (seg_dist[rows, k] <= self.tolerance)
            endpoint = np.where(t[rows, k] < 0.5, i[k], j[k])
            target = np.where(use, endpoint, target)
            best = np.where(use, seg_dist[rows, k], best)
        return np.where(best <= self.tolerance, target, -1), best

    def read_mask(self, pair: Pair) -> MaskRead:
        rgb, notes = io.to_rgb(io.decode_raw(pair.mask), pair.mask)
        h, w = rgb.shape[:2]
        codes = _pack(rgb).reshape(-1)
        pos = np.minimum(np.searchsorted(self._sorted_codes, codes), len(self._sorted_codes) - 1)
        exact = self._sorted_codes[pos] == codes
        mask = self._class_of_sorted[pos]
        snapped = 0
        if not exact.all():
            off = codes[~exact]
            uniq, inverse, counts = np.unique(off, return_inverse=True, return_counts=True)
            target, dist = self._snap(_unpack(uniq))
            bad = target < 0
            if bad.any():
                order = np.argsort(-counts[bad])
                colours = _unpack(uniq[bad])[order]
                top = zip(colours[:5].tolist(), counts[bad][order][:5].tolist(), strict=True)
                shown = ", ".join(f"({r}, {g}, {b}) x {n} px" for (r, g, b), n in top)
                more = f" and {int(bad.sum()) - 5} more colours" if bad.sum() > 5 else ""
                raise DataError(
                    f"{pair.mask}: {int(counts[bad].sum())} pixel(s) have colours matching no class (farther than "
                    f"tolerance {self.tolerance:g} from every class colour"
                    f"{' and every mix of two' if self.blends else ''}): {shown}{more}. Fix the mask, add the "
                    f"colour to `classes`, or raise data.codec_options.tolerance"
                )
            mask[~exact] = target[inverse].astype(np.uint8)
            snapped = int(off.size)
        return MaskRead(mask.reshape(h, w), snapped, tuple(notes))

    def write(self, image_path: Path, mask_path: Path, image: np.ndarray, mask: np.ndarray) -> None:
        io.write_png(image_path, image)
        io.write_png(mask_path, io.colorize(mask, [c.color for c in self.classes]))


class IndexMaskCodec(Codec):
    """Images + single-channel masks whose pixel values are class indices (0 = background)."""

    name = "index-mask"

    def __init__(self, classes: Sequence[ClassInfo], options: Mapping[str, Any]) -> None:
        super().__init__(classes, options)
        if not 1 <= len(self.classes) <= 256:
            raise DataError(f"index-mask codec: needs 1 to 256 classes, got {len(self.classes)}")

    def read_mask(self, pair: Pair) -> MaskRead:
        mask = io.read_gray(pair.mask)
        top = int(mask.max()) if mask.size else 0
        if top >= self.num_classes:
            values, counts = np.unique(mask[mask >= self.num_classes], return_counts=True)
            shown = ", ".join(f"{v} x {n} px" for v, n in zip(values[:5].tolist(), counts[:5].tolist(), strict=True))
            raise DataError(
                f"{pair.mask}: mask value {top} is not a class index (only {self.num_classes} classes, "
                f"0..{self.num_classes - 1}); out-of-range values: {shown}"
            )
        return MaskRead(mask.astype(np.uint8, copy=False))

    def write(self, image_path: Path, mask_path: Path, image: np.ndarray, mask: np.ndarray) -> None:
        io.write_png(image_path, image)
        io.write_png(mask_path, np.asarray(mask, dtype=np.uint8))
