"""The prediction core shared by ``infer`` and ``evaluate``: a model as a NumPy function, brought
to the run's pixel scale, optionally with test-time augmentation, whole or tiled.

:class:`Predictor` (Keras) and :class:`OnnxPredictor` (ONNX Runtime) are the batched forward
pass, behind one small interface (:class:`BatchPredictor`). :class:`Segmenter` turns one image (network input,
original size) and a scale factor into class probabilities at the image's own size:

1. resize the image by ``factor`` (the run's pixel scale, see :mod:`flexplat.engine.scale`);
2. predict it whole - mirror-padded up to a size the model accepts - or, when it is larger than
   ``max_side`` (or the model takes one fixed input size and the image is larger), in overlapping
   tiles (:mod:`flexplat.engine.tiling`);
3. resize the probabilities back to the original size (bilinear, before any argmax).

With ``tta`` every prediction is the mean of the model's probabilities over the flips and
right-angle turns of the input (8 views of a square input, 4 of a rectangular one).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import cv2
import numpy as np

from flexplat.engine.tiling import pad_to, predict_tiled
from flexplat.errors import FlexplatError


class BatchPredictor(Protocol):
    """What :class:`Segmenter` needs of a backend: a timed, batched forward pass as a NumPy function.

    ``__call__`` takes a float32 NHWC batch and returns class probabilities (N, H, W, classes).
    ``input_hw`` holds ``None`` for a side of any size. Implemented by :class:`Predictor`
    (Keras/TensorFlow) and :class:`OnnxPredictor` (ONNX Runtime, no TensorFlow).
    """

    input_hw: tuple[int | None, int | None]
    channels: int
    seconds: float
    calls: int

    @property
    def fixed_input(self) -> bool: ...

    def __call__(self, batch: np.ndarray) -> np.ndarray: ...


class _Timed:
    """Shared by the backends: output checks, sigmoid to two classes, timing."""

    backend = "?"

    def _setup(self, input_shape: tuple, outputs: int, num_classes: int, source: str) -> None:
        self.num_classes = num_classes
        self.input_hw: tuple[int | None, int | None] = _side(input_shape[1]), _side(input_shape[2])
        self.channels = int(input_shape[3])
        if outputs != num_classes and not (outputs == 1 and num_classes == 2):
            raise FlexplatError(
                f"{source}: the model outputs {outputs} classes but the config lists {num_classes}; "
                f"the folder is inconsistent (retrain, export again or fix the config)"
            )
        self._sigmoid = outputs == 1 and num_classes == 2
        self.seconds = 0.0
        self.calls = 0

    @property
    def fixed_input(self) -> bool:
        return self.input_hw[0] is not None or self.input_hw[1] is not None

    def _forward(self, batch: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        started = time.perf_counter()
        probs = self._forward(np.ascontiguousarray(batch, dtype=np.float32))
        if self._sigmoid:
            probs = np.concatenate([1.0 - probs, probs], axis=-1)
        self.seconds += time.perf_counter() - started
        self.calls += 1
        return probs


def _side(value: Any) -> int | None:
    """A static side length, or None for a dynamic one (ONNX names dynamic dims with strings)."""
    return int(value) if isinstance(value, int | np.integer) and value > 0 else None


class Predictor(_Timed):
    """Batched forward pass of a Keras model as a NumPy function, timed.

    One ``tf.function`` per input shape (batch dimension left open, so a short last batch does not
    retrace). A single-channel sigmoid output is turned into two-class probabilities.
    """

    backend = "tensorflow"

    def __init__(self, model: Any, num_classes: int, source: str = "the run") -> None:
        self.model = model
        self._setup(tuple(model.input_shape), model.output_shape[-1], num_classes, source)
        self._functions: dict[tuple[int, ...], Callable] = {}

    def _function(self, shape: tuple[int, ...]) -> Callable:
        fn = self._functions.get(shape)
        if fn is None:
            import tensorflow as tf

            model = self.model

            def forward(x):
                return model(x, training=False)

            fn = tf.function(forward, input_signature=[tf.TensorSpec((None, *shape), tf.float32)])
            self._functions[shape] = fn
        return fn

    def _forward(self, batch: np.ndarray) -> np.ndarray:
        return self._function(tuple(batch.shape[1:]))(batch).numpy()


class OnnxPredictor(_Timed):
    """Batched forward pass of an ONNX model with ONNX Runtime (CPU); never imports TensorFlow."""

    backend = "onnx"

    def __init__(self, path: Path, num_classes: int, threads: int | None = None) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.log_severity_level = 3  # warnings about unused initialisers are noise for users
        # Idle ONNX Runtime threads spin by default; beside infer's decoding and writing threads, or
        # on a busy machine, that took 2x longer per image here (benchmarks/onnx_backend.py).
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.add_session_config_entry("session.inter_op.allow_spinning", "0")
        if threads:
            options.intra_op_num_threads = threads
        try:
            self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own exception types
            raise FlexplatError(f"{path}: ONNX Runtime cannot load the model ({exc}); export it again") from exc
        inputs, outputs = self.session.get_inputs(), self.session.get_outputs()
        if len(inputs) != 1 or len(inputs[0].shape) != 4:
            raise FlexplatError(f"{path}: expected one NHWC image input, found {[i.shape for i in inputs]}")
        self._input = inputs[0].name
        out = outputs[0].shape[-1]
        self._setup(tuple(inputs[0].shape), int(out) if isinstance(out, int) else num_classes, num_classes, str(path))

    def _forward(self, batch: np.ndarray) -> np.ndarray:
        return self.session.run(None, {self._input: batch})[0]


class SavedModelPredictor(_Timed):
    """Batched forward pass of an exported TensorFlow SavedModel (its ``serve`` endpoint)."""

    backend = "tensorflow"

    def __init__(self, path: Path, input_shape: tuple, num_classes: int, outputs: int) -> None:
        import tensorflow as tf

        self._loaded = tf.saved_model.load(str(path))  # kept: the endpoint only holds weak references
        self._serve = self._loaded.serve
        self._setup(input_shape, outputs, num_classes, str(path))

    def _forward(self, batch: np.ndarray) -> np.ndarray:
        return np.asarray(self._serve(batch))


# -- test-time augmentation -----------------------------------------------------------------


def _views(square: bool) -> list[tuple[int, bool]]:
    """(quarter turns, horizontal flip) of the dihedral views used for TTA."""
    turns = (0, 1, 2, 3) if square else (0, 2)
    return [(k, flip) for k in turns for flip in (False, True)]


def _forward_view(batch: np.ndarray, turns: int, flip: bool) -> np.ndarray:
    out = np.rot90(batch, turns, axes=(1, 2))
    return out[:, :, ::-1] if flip else out


def _inverse_view(probs: np.ndarray, turns: int, flip: bool) -> np.ndarray:
    out = probs[:, :, ::-1] if flip else probs
    return np.rot90(out, -turns, axes=(1, 2))


def with_tta(predict: Callable[[np.ndarray], np.ndarray]) -> Callable[[np.ndarray], np.ndarray]:
    """``predict`` averaged over flips and right-angle turns of its input batch."""

    def averaged(batch: np.ndarray) -> np.ndarray:
        views = _views(batch.shape[1] == batch.shape[2])
        total = None
        for turns, flip in views:
            probs = _inverse_view(predict(np.ascontiguousarray(_forward_view(batch, turns, flip))), turns, flip)
            total = probs.astype(np.float32) if total is None else total + probs
        return total / len(views)

    return averaged


# -- resizing -------------------------------------------------------------------------------


def resize(array: np.ndarray, height: int, width: int) -> np.ndarray:
    """Bilinear resize of an H x W x C array (any C), keeping the channel axis."""
    if array.shape[:2] == (height, width):
        return array
    parts = []
    for first in range(0, array.shape[2], 256):  # OpenCV handles at most 512 channels per call
        part = cv2.resize(array[:, :, first : first + 256], (width, height), interpolation=cv2.INTER_LINEAR)
        parts.append(part.reshape(height, width, -1))
    return parts[0] if len(parts) == 1 else np.concatenate(parts, axis=2)


def pad_to_multiple(image: np.ndarray, multiple: int, minimum: tuple[int, int] = (1, 1)) -> np.ndarray:
    """Mirror-pad bottom/right so both sides are multiples of ``multiple`` and at least ``minimum``."""
    height, width = image.shape[:2]
    return pad_to(
        image, max(minimum[0], -(-height // multiple) * multiple), max(minimum[1], -(-width // multiple) * multiple)
    )


# -- one image ------------------------------------------------------------------------------


@dataclass
class Prepared:
    """An image ready for the network: resized by the scale factor, padded, or marked for tiling."""

    height: int  # original size
    width: int
    scaled_hw: tuple[int, int]
    tiled: bool
    array: np.ndarray  # padded float32 network input (whole) or the scaled image (tiled)

    def scaled(self, probs: np.ndarray) -> np.ndarray:
        """``probs`` of ``array`` without the padding: the scaled image's own pixels."""
        return probs[: self.scaled_hw[0], : self.scaled_hw[1]]


@dataclass
class Segmenter:
    """Class probabilities of images at their own size, at a given scale (see the module docstring)."""

    predictor: BatchPredictor
    multiple: int
    tile_hw: tuple[int, int]
    overlap: float
    batch_size: int
    max_side: int
    tile_mode: str = "auto"  # auto: tile only when too large; always; never
    tta: bool = False
    model_hw: tuple[int, int] = (256, 256)  # the training input size (the training framing)
    stain_norm: Mapping[str, Any] | None = None  # the run's data.stain_norm, applied as in training
    min_object: float = 0.0  # objects narrower than this (scaled pixels, equivalent diameter) become background
    max_batch_pixels: int | None = None  # input pixels per prediction batch at most (None: batch_size only)

    def __post_init__(self) -> None:
        self.forward = with_tta(self.predictor) if self.tta else self.predictor

    def network_view(self, rgb: np.ndarray) -> np.ndarray:
        """What the network sees of an RGB image: stain-normalised as in training, grey if 1-channel."""
        if self.stain_norm and self.stain_norm.get("method", "none") != "none":
            from flexplat.data.stain import normalize

            rgb = normalize(rgb, self.stain_norm["method"], self.stain_norm.get("target"))
        return to_network(rgb, self.predictor.channels)

    def framing_factor(self, height: int, width: int) -> float:
        """One factor close to the training framing (image resized to the model input)."""
        return float(np.sqrt(self.model_hw[0] / height * self.model_hw[1] / width))

    def prepare(self, net_image: np.ndarray, factor: float | tuple[float, float]) -> Prepared:
        """Resize ``net_image`` (H x W x channels) by ``factor`` (one, or per axis) and pad or tile it."""
        height, width = net_image.shape[:2]
        fy, fx = factor if isinstance(factor, tuple) else (factor, factor)
        scaled_hw = (max(1, round(height * fy)), max(1, round(width * fx)))
        scaled = resize(net_image, *scaled_hw).reshape(*scaled_hw, net_image.shape[2])
        if self._tiled(scaled_hw):
            return Prepared(height, width, scaled_hw, True, scaled)
        if self.predictor.fixed_input and (scaled_hw[0] > self.tile_hw[0] or scaled_hw[1] > self.tile_hw[1]):
            scaled_hw = self.tile_hw  # one fixed input size and no tiles: the image is resized to it
            scaled = resize(scaled, *scaled_hw).reshape(*scaled_hw, net_image.shape[2])
        minimum = self.tile_hw if self.predictor.fixed_input else (1, 1)
        padded = pad_to_multiple(scaled, self.multiple, minimum).astype(np.float32)
        return Prepared(height, width, scaled_hw, False, padded)

    def _tiled(self, scaled_hw: tuple[int, int]) -> bool:
        if self.tile_mode != "auto":
            return self.tile_mode == "always"
        limit = self.tile_hw if self.predictor.fixed_input else (self.max_side, self.max_side)
        return scaled_hw[0] > limit[0] or scaled_hw[1] > limit[1]

    def predict_whole(self, batch: np.ndarray) -> np.ndarray:
        """Probabilities for a batch of prepared whole (padded) inputs of one shape."""
        return self.forward(batch)

    def predict_tiled(self, prepared: Prepared) -> np.ndarray:
        return predict_tiled(self.forward, prepared.array, self.tile_hw, self.overlap, self.batch_for(self.tile_hw))

    def batch_for(self, hw: Sequence[int]) -> int:
        """Inputs of ``hw`` (height, width) per prediction batch: ``batch_size``, within ``max_batch_pixels``."""
        if self.max_batch_pixels is None:
            return self.batch_size
        return max(1, min(self.batch_size, self.max_batch_pixels // (int(hw[0]) * int(hw[1]))))

    def restore(self, prepared: Prepared, probs: np.ndarray) -> np.ndarray:
        """Probabilities of a prepared image (padded, scaled) back at its original size, specks dropped."""
        scaled = drop_specks(np.ascontiguousarray(prepared.scaled(probs)), self.min_object)
        return resize(scaled, prepared.height, prepared.width)

    def _predict(self, prepared: Prepared) -> np.ndarray:
        """Probabilities at the prepared (scaled, possibly padded) size."""
        return self.predict_tiled(prepared) if prepared.tiled else self.predict_whole(prepared.array[None])[0]

    def probabilities(self, net_image: np.ndarray, factor: float | tuple[float, float]) -> np.ndarray:
        """Class probabilities ``(H, W, C)`` of one image at its own size."""
        prepared = self.prepare(net_image, factor)
        return self.restore(prepared, self._predict(prepared))

    def labels_at(self, net_image: np.ndarray, factor: float) -> np.ndarray:
        """Predicted class indices at the SCALED size (for measuring object sizes)."""
        prepared = self.prepare(net_image, factor)
        return np.argmax(prepared.scaled(self._predict(prepared)), axis=-1)


def drop_specks(probs: np.ndarray, min_diameter: float) -> np.ndarray:
    """``probs`` (H x W x classes) where every predicted object - a connected region of non-background
    argmax - with an equivalent diameter below ``min_diameter`` pixels is made certain background."""
    if min_diameter <= 0:
        return probs
    foreground = (probs.argmax(axis=-1) > 0).astype(np.uint8)
    count, components, stats, _ = cv2.connectedComponentsWithStats(foreground, connectivity=8)
    small = np.zeros(count, bool)
    small[1:] = stats[1:, cv2.CC_STAT_AREA] < np.pi / 4.0 * min_diameter**2
    if not small.any():
        return probs
    specks = small[components]
    out = probs.copy()
    out[specks] = 0.0
    out[specks, 0] = 1.0
    return out


def to_network(rgb: np.ndarray, channels: int) -> np.ndarray:
    """The network's view of an RGB image: itself, or grey for 1-channel models."""
    if channels == 3:
        return rgb
    return cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)[:, :, None]
