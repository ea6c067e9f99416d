"""Stain normalisation: map an RGB image's colours onto fixed target statistics (NumPy/OpenCV).

One entry point, used identically when training, evaluating and inferring::

    from flexplat.data.stain import normalize
    cfg = config["data"]["stain_norm"]              # {method: ..., target: {...}}
    image = normalize(image, cfg["method"], cfg["target"])   # uint8 RGB in, uint8 RGB out

Methods:

- ``none``: the image unchanged.
- ``white-balance``: each channel is scaled so the image's background - its
  ``BACKGROUND_PERCENTILE`` brightness per channel, the unstained glass lit by the lamp - becomes
  ``target.background``. It removes what the illumination and camera add (a yellow lamp, a green
  cast) and keeps the stains' own contrast; the image needs some background (a field, or a crop
  around a cell). Measured on ds1 -> KRD, see benchmarks/RESULTS.md ("Cross-domain").
- ``reinhard`` (Reinhard et al. 2001): each CIELAB channel of the image (L* 0..100, a*, b*) is
  shifted and scaled so its mean and standard deviation over the whole image become
  ``target.lab_mean`` / ``target.lab_std``.
- ``macenko`` (Macenko et al. 2009): the image's two stain vectors are estimated in optical
  density (OD = -ln(I / I0), I0 = each channel's 99th-percentile brightness, i.e. the image's own
  background, so a tinted illumination counts as white) from the angular extremes of its stained
  pixels; the concentrations of each stain are rescaled so their 99th percentiles become
  ``target.max_concentrations``, and the image is rebuilt on a white background with the target
  stain vectors ``target.hematoxylin_od`` / ``target.eosin_od``. An image with too few stained
  pixels to estimate its own vectors (e.g. a blank field) is deconvolved with the target vectors.
  Macenko assumes two stains and a bright background: on Romanowsky-stained smears whose
  reference has faint red cells, red cells can take the nuclear stain's colour (seen mapping the
  KRD sample onto a Zheng ds1 target). Reinhard is the safer choice for blood smears.

:func:`fit_target` measures a target from a folder of reference images. The target lives in the
config (``data.stain_norm.target``), so a run folder records exactly what its images were mapped to.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from flexplat.errors import ConfigError, DataError
from flexplat.schema import STAIN_METHODS, STAIN_TARGET_SCHEMA, check_stain_target

OD_BETA = 0.15  # a pixel is "stained" when its OD exceeds this in every channel (Macenko's beta)
ANGLE_PERCENTILE = 1.0  # Macenko's alpha: robust extremes of the stain angle, in percent
CONCENTRATION_PERCENTILE = 99.0
BACKGROUND_PERCENTILE = 99.0  # per-channel brightness taken as the illumination (unstained background)
MIN_STAINED_PIXELS = 100
_EPS = 1e-6
_OD_TABLE = -np.log((np.arange(256, dtype=np.float64) + 1.0) / 256.0).astype(np.float32)  # OD of each level


def normalize(image: np.ndarray, method: str, params: Mapping[str, Any] | None = None) -> np.ndarray:
    """Return ``image`` (uint8 H x W x 3 RGB) stain-normalised by ``method`` towards ``params``.

    ``method``: ``"none"``, ``"white-balance"``, ``"reinhard"`` or ``"macenko"``. ``params``: the target
    mapping (``data.stain_norm.target``; key ``background`` for white-balance, ``lab_mean``, ``lab_std`` for
    Reinhard, ``hematoxylin_od``, ``eosin_od``, ``max_concentrations`` for Macenko; ``None`` = the schema's
    defaults). The result is uint8 RGB of the same shape; ``"none"`` returns ``image`` itself.
    """
    if method not in STAIN_METHODS:
        raise ConfigError(
            f"data.stain_norm.method: unknown method {method!r}; choose one of {', '.join(STAIN_METHODS)}"
        )
    _check_image(image)
    if method == "none":
        return image
    target = check_stain_target(params)
    if method == "white-balance":
        return _white_balance(image, np.asarray(target["background"], np.float32))
    if method == "reinhard":
        return _reinhard(image, np.asarray(target["lab_mean"]), np.asarray(target["lab_std"]))
    stains = np.stack([_unit(target["hematoxylin_od"]), _unit(target["eosin_od"])], axis=1)
    return _macenko(image, stains, np.asarray(target["max_concentrations"], np.float64))


def lab_stats(image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean and standard deviation of ``image`` (uint8 RGB) in CIELAB (L* 0..100)."""
    lab = _to_lab(image).reshape(-1, 3)
    return lab.mean(0), lab.std(0)


def stain_vectors(image: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """Macenko's estimate for ``image``: (3 x 2 unit OD vectors [H, E], their 99th-percentile
    concentrations), or ``None`` when fewer than ``MIN_STAINED_PIXELS`` pixels are stained."""
    _check_image(image)
    od = optical_density(image).reshape(-1, 3)
    stains = _estimate_stains(od)
    if stains is None:
        return None
    return stains, _max_concentrations(od, stains)


def fit_target(source: str | Path | Iterable[np.ndarray]) -> dict[str, list[float]]:
    """Measure a ``data.stain_norm.target`` from reference images (a folder, or uint8 RGB arrays).

    White-balance: the mean over images of each image's background colour. Reinhard: the mean
    over images of each image's CIELAB mean and standard deviation (the statistics
    :func:`normalize` maps every image to). Macenko: the per-component median over images of the
    estimated stain vectors and maximum concentrations (images with too few stained pixels are
    skipped). Returns plain lists, ready for YAML.
    """
    images = _iter_images(source)
    means, stds, vectors, maxima, backgrounds, count = [], [], [], [], [], 0
    for image in images:
        count += 1
        backgrounds.append(background_colour(image))
        mean, std = lab_stats(image)
        means.append(mean)
        stds.append(std)
        estimate = stain_vectors(image)
        if estimate is not None:
            vectors.append(estimate[0])
            maxima.append(estimate[1])
    if not count:
        raise DataError(f"{source}: no images to fit a stain target from")
    target = {"background": np.mean(backgrounds, 0), "lab_mean": np.mean(means, 0), "lab_std": np.mean(stds, 0)}
    if vectors:
        median = np.median(np.stack(vectors), 0)
        target["hematoxylin_od"] = _unit(median[:, 0])
        target["eosin_od"] = _unit(median[:, 1])
        target["max_concentrations"] = np.median(np.stack(maxima), 0)
    else:
        for key in ("hematoxylin_od", "eosin_od", "max_concentrations"):
            target[key] = np.asarray(STAIN_TARGET_SCHEMA[key].default)
    return {key: [round(float(v), 4) for v in value] for key, value in target.items()}


def _check_image(image: np.ndarray) -> None:
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        kind = f"{image.dtype} {image.shape}" if isinstance(image, np.ndarray) else type(image).__name__
        raise ValueError(f"stain normalisation needs a uint8 H x W x 3 RGB image, got {kind}")


def _iter_images(source: str | Path | Iterable[np.ndarray]) -> Iterable[np.ndarray]:
    if not isinstance(source, (str, Path)):
        return source
    from flexplat.data.io import IMAGE_EXTENSIONS, read_image

    folder = Path(source)
    if not folder.is_dir():
        raise DataError(f"{folder}: not a folder of reference images")
    paths = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS)
    return (read_image(p) for p in paths)


def _to_lab(image: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(image.astype(np.float32) / 255.0, cv2.COLOR_RGB2LAB)


def _from_float_rgb(rgb: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(rgb), 0, 255).astype(np.uint8)


def _reinhard(image: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    lab = _to_lab(image)
    src_mean = lab.reshape(-1, 3).mean(0)
    src_std = lab.reshape(-1, 3).std(0)
    gain = np.where(src_std > 1e-3, std / np.maximum(src_std, 1e-3), 1.0)  # a flat channel is only shifted
    lab = ((lab - src_mean) * gain + mean).astype(np.float32)
    return _from_float_rgb(cv2.cvtColor(lab, cv2.COLOR_LAB2RGB) * 255.0)


def background_colour(image: np.ndarray) -> np.ndarray:
    """The brightness of ``image``'s background per channel (its ``BACKGROUND_PERCENTILE``), float R, G, B."""
    return np.percentile(image.reshape(-1, 3), BACKGROUND_PERCENTILE, axis=0).astype(np.float32)


def _white_balance(image: np.ndarray, background: np.ndarray) -> np.ndarray:
    gain = background / np.maximum(background_colour(image), 1.0)
    return _from_float_rgb(image.astype(np.float32) * gain)


def optical_density(image: np.ndarray, white: np.ndarray | None = None) -> np.ndarray:
    """-ln((I + 1) / white) per channel, at least 0 (float32); ``white`` defaults to the image's own
    background plus one (its BACKGROUND_PERCENTILE brightness + 1)."""
    if white is None:
        white = background_colour(image) + 1.0
    od = _OD_TABLE[image] + np.log(np.asarray(white, np.float64)).astype(np.float32) - np.float32(np.log(256.0))
    return np.maximum(od, 0.0, out=od)


def _unit(vector: Any) -> np.ndarray:
    vector = np.asarray(vector, np.float64)
    return vector / max(float(np.linalg.norm(vector)), _EPS)


def _estimate_stains(od: np.ndarray) -> np.ndarray | None:
    """3 x 2 unit stain vectors [H, E] from N x 3 optical densities, or None (too few stained)."""
    stained = od[(od > OD_BETA).all(axis=1)]
    if len(stained) < MIN_STAINED_PIXELS:
        return None
    _, eigvecs = np.linalg.eigh(np.cov(stained.T))
    plane = eigvecs[:, 1:3] * np.sign(eigvecs[:, 1:3].sum(0) + _EPS)  # the two main axes, pointing inward
    projected = _times(stained, plane)
    angle = np.arctan2(projected[:, 0], projected[:, 1])
    low, high = np.percentile(angle, [ANGLE_PERCENTILE, 100 - ANGLE_PERCENTILE])
    v1 = _positive(plane @ np.array([np.sin(low), np.cos(low)]))
    v2 = _positive(plane @ np.array([np.sin(high), np.cos(high)]))
    h, e = (v1, v2) if v1[0] >= v2[0] else (v2, v1)  # haematoxylin absorbs more red
    return np.stack([h, e], axis=1)


def _positive(vector: np.ndarray) -> np.ndarray:
    vector = vector if vector.sum() >= 0 else -vector
    return _unit(np.maximum(vector, 0.0) + _EPS)


def _times(rows: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """``rows @ matrix`` for many short rows (einsum: numpy's matmul is ~10x slower at these shapes)."""
    return np.einsum("nc,ck->nk", rows, matrix)


def _concentrations(od: np.ndarray, stains: np.ndarray) -> np.ndarray:
    """Least-squares stain concentrations: N x 3 OD, 3 x 2 stains -> N x 2."""
    return _times(od, np.linalg.pinv(stains).T.astype(np.float32))


def _max_concentrations(od: np.ndarray, stains: np.ndarray) -> np.ndarray:
    return np.percentile(_concentrations(od, stains), CONCENTRATION_PERCENTILE, axis=0)


def _macenko(image: np.ndarray, target_stains: np.ndarray, target_max: np.ndarray) -> np.ndarray:
    od = optical_density(image).reshape(-1, 3)
    stains = _estimate_stains(od)
    if stains is None:
        stains = target_stains
    conc = _concentrations(od, stains)
    source_max = np.percentile(conc, CONCENTRATION_PERCENTILE, axis=0)
    gain = np.where(source_max > _EPS, target_max / np.maximum(source_max, _EPS), 1.0)
    od = _times(conc, (gain[:, None] * target_stains.T).astype(np.float32))
    rgb = 256.0 * np.exp(-od) - 1.0
    return _from_float_rgb(rgb.reshape(image.shape))
