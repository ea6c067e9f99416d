"""Pixel scale: the object size a model learnt at, and bringing new images to it.

A model learns objects at one apparent size. Training resizes every image to the model input, so
the size it learnt is measured from the training masks after that resize: the median
equivalent diameter (``2 * sqrt(area / pi)``) of the mask's connected foreground objects, in model
pixels. The run records it (``run.json`` key ``scale``).

A new folder of images is brought to that size before any tiling: every image is resized by
``factor = training diameter / object diameter in the new images``. The object diameter comes
from the user (``--diameter PX``), else it is estimated with the model itself, the way Cellpose
sizes its inputs: each image is segmented at the training framing (resized to the model input, as
training did), the predicted objects' diameter is measured and converted back to the image's
pixels, and again at up to 4x that framing (:data:`SWEEP`); the pass whose objects come out nearest
the learnt diameter wins, as a model sees objects near its own scale best and may take other
things for objects at the wrong scale. Up to three refinement passes at the implied scale follow,
until the scale moves by less than 10 %. The folder's median diameter then sets one factor for
every image, so the relative sizes of objects (a cue for their class) are kept; ``per_image=True``
scales each image alone.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

MIN_OBJECT_FRACTION = 0.15
"""Objects with a diameter under this fraction of the expected one are ignored (specks, noise)."""
MAX_MEASURED_PAIRS = 400
"""At most this many training masks are measured (evenly spaced); the median is stable long before."""
SWEEP = (1.0, 2**0.5, 2.0, 2**1.5, 4.0)
"""Factors (times the training framing) the size estimate first segments an image at."""
FACTOR_LIMITS = (0.05, 20.0)
"""Scale factors outside these bounds are refused as implausible estimates."""


@dataclass(frozen=True)
class TrainingScale:
    """What a run learnt at: median object diameter in model pixels, from its training masks."""

    object_diameter: float
    diameter_p10: float
    diameter_p90: float
    objects: int
    images: int
    resize: str = "stretch to model input"

    def to_dict(self) -> dict[str, Any]:
        return {
            "object_diameter": round(self.object_diameter, 2),
            "diameter_p10": round(self.diameter_p10, 2),
            "diameter_p90": round(self.diameter_p90, 2),
            "objects": self.objects,
            "images": self.images,
            "resize": self.resize,
            "unit": "model pixels (equivalent diameter 2*sqrt(area/pi) of connected foreground objects)",
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainingScale:
        keys = ("object_diameter", "diameter_p10", "diameter_p90", "objects", "images", "resize")
        return cls(**{k: data[k] for k in keys if k in data})


def object_diameters(labels: np.ndarray, min_diameter: float = 0.0) -> np.ndarray:
    """Equivalent diameters of the connected foreground (label > 0) objects of a label map."""
    foreground = (labels > 0).astype(np.uint8)
    count, _, stats, _ = cv2.connectedComponentsWithStats(foreground, connectivity=8)
    areas = stats[1:count, cv2.CC_STAT_AREA].astype(np.float64)
    diameters = 2.0 * np.sqrt(areas / math.pi)
    return diameters[diameters >= min_diameter]


def measure_training_scale(
    masks: Iterable[np.ndarray], image_size: Sequence[int], min_diameter: float = 3.0
) -> TrainingScale | None:
    """The training scale from label masks at their stored size, as training resizes them.

    Each mask is resized (nearest) to ``image_size`` exactly as the input pipeline does; objects
    smaller than ``min_diameter`` model pixels are ignored. None when no mask holds an object.
    """
    height, width = int(image_size[0]), int(image_size[1])
    found: list[np.ndarray] = []
    images = 0
    for mask in masks:
        images += 1
        resized = cv2.resize(mask, (width, height), interpolation=cv2.INTER_NEAREST)
        found.append(object_diameters(resized, min_diameter))
    diameters = np.concatenate(found) if found else np.zeros(0)
    if diameters.size == 0:
        return None
    p10, median, p90 = np.percentile(diameters, [10, 50, 90])
    return TrainingScale(float(median), float(p10), float(p90), int(diameters.size), images)


def evenly_spaced(items: Sequence[Any], limit: int = MAX_MEASURED_PAIRS) -> list[Any]:
    """At most ``limit`` items spread evenly over ``items`` (all of them when fewer)."""
    if len(items) <= limit:
        return list(items)
    step = len(items) / limit
    return [items[int(i * step)] for i in range(limit)]


def predicted_diameter(labels: np.ndarray, expected: float) -> float | None:
    """The area-weighted median diameter of the predicted objects of a label map, or None if none.

    Area weighting lets the one large object of a crop count more than specks around it.
    """
    diameters = object_diameters(labels, MIN_OBJECT_FRACTION * expected)
    if diameters.size == 0:
        return None
    order = np.argsort(diameters)
    weights = diameters[order] ** 2
    cumulative = np.cumsum(weights)
    return float(diameters[order][np.searchsorted(cumulative, cumulative[-1] / 2.0)])


def estimate_diameter(
    segment: Callable[[np.ndarray, float], np.ndarray],
    image: np.ndarray,
    start_factor: float,
    training_diameter: float,
    refine: int = 3,
    sweep: Sequence[float] = SWEEP,
) -> float | None:
    """The object diameter in ``image``'s pixels, estimated with the model.

    ``segment(image, factor)`` returns the predicted label map of ``image`` resized by ``factor``
    (at the resized size). A sweep segments at ``start_factor`` times each of ``sweep`` and keeps
    the factor whose objects came out nearest the training diameter (a model segments objects near
    its own scale best; at the wrong scale it may take other things for objects); each refinement
    re-segments at the factor the previous estimate implies. None when the model finds no object.
    """
    found = [(f, predicted_diameter(segment(image, f), training_diameter)) for f in _sweep(start_factor, sweep)]
    found = [(f, measured) for f, measured in found if measured is not None]
    if not found:
        return None
    factor, measured = min(found, key=lambda fm: abs(math.log(fm[1] / training_diameter)))
    diameter = measured / factor
    for _ in range(refine):
        implied = training_diameter / diameter
        if not FACTOR_LIMITS[0] <= implied <= FACTOR_LIMITS[1] or abs(implied / factor - 1.0) < 0.1:
            break
        factor = implied
        measured = predicted_diameter(segment(image, factor), training_diameter)
        if measured is None:
            break
        diameter = measured / factor
    return diameter


def _sweep(start_factor: float, multipliers: Sequence[float]) -> list[float]:
    factors = [start_factor * m for m in multipliers]
    return [f for f in factors if FACTOR_LIMITS[0] <= f <= FACTOR_LIMITS[1]] or [start_factor]


def folder_factor(diameters: Sequence[float | None], training_diameter: float) -> tuple[float | None, float | None]:
    """(median diameter, factor) over the images where an estimate exists; (None, None) if none."""
    known = [d for d in diameters if d]
    if not known:
        return None, None
    median = float(np.median(known))
    return median, clamp_factor(training_diameter / median)


def clamp_factor(factor: float) -> float:
    """``factor`` limited to :data:`FACTOR_LIMITS`."""
    return float(min(max(factor, FACTOR_LIMITS[0]), FACTOR_LIMITS[1]))


@dataclass
class ScalePlan:
    """The scale factors a folder of images is segmented at, and how they were chosen.

    ``method``: ``given`` (``--diameter``), ``estimated`` (folder median of the model's estimates),
    ``estimated per image``, or ``training framing`` (each image resized to the model input, as
    training did: the fallback when the run records no scale, nothing could be estimated, or
    rescaling is off).
    """

    method: str
    training_diameter: float | None = None
    diameter: float | None = None
    factor: float | None = None
    estimates: list[float | None] | None = None

    def factor_for(self, index: int, height: int, width: int, model_hw: Sequence[int]) -> float | tuple[float, float]:
        """The factor (one, or per axis for the training framing) for image ``index``."""
        if self.method == "estimated per image" and self.estimates and self.estimates[index]:
            return clamp_factor(self.training_diameter / self.estimates[index])
        if self.factor is not None:
            return self.factor
        return model_hw[0] / height, model_hw[1] / width

    def to_dict(self) -> dict[str, Any]:
        def rounded(value: float | None) -> float | None:
            return None if value is None else round(value, 4)

        return {
            "method": self.method,
            "training_object_diameter": rounded(self.training_diameter),
            "object_diameter": rounded(self.diameter),
            "factor": rounded(self.factor),
        }

    def describe(self) -> str:
        """One line for the terminal."""
        if self.factor is None and self.method != "estimated per image":
            return f"scale: {self.method} (each image resized to the model input)"
        size = f"object diameter {self.diameter:.1f} px" if self.diameter else "object diameter per image"
        learnt = f"{self.training_diameter:.1f} px" if self.training_diameter else "?"
        factor = f", factor {self.factor:.3f}" if self.factor is not None else ""
        return f"scale: {self.method} {size} -> {learnt} learnt by the model{factor}"


def plan_scale(
    training: TrainingScale | None,
    *,
    diameter: float | None,
    per_image: bool,
    rescale: bool,
    estimate: Callable[[], list[float | None]],
) -> ScalePlan:
    """Choose the scale of a folder (see :class:`ScalePlan`); ``estimate()`` runs only when needed."""
    if not rescale or training is None:
        return ScalePlan("training framing")
    if diameter is not None:
        return ScalePlan("given", training.object_diameter, diameter, clamp_factor(training.object_diameter / diameter))
    estimates = estimate()
    median, factor = folder_factor(estimates, training.object_diameter)
    if factor is None:
        return ScalePlan("training framing", training.object_diameter, estimates=estimates)
    method = "estimated per image" if per_image else "estimated"
    return ScalePlan(method, training.object_diameter, median, None if per_image else factor, estimates)
