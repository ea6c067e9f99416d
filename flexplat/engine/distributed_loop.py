"""Multi-worker training: what Keras ``fit`` does, as a distributed train step under ``strategy.run``.

Keras 3 ``fit`` fails under ``MultiWorkerMirroredStrategy`` (keras-team/keras#20585), while a train
step run with ``strategy.run`` works (checked on TF 2.21 / Keras 3.15: two workers on 127.0.0.1 end
with the weights and losses of one process given the same global batch). Per epoch:

- every worker takes ``steps`` batches of ``batch_size`` from its own shard of the training pairs; the
  per-replica loss is divided by the number of replicas, and the optimizer all-reduces (sums) the
  gradients, so each step follows the gradient of the mean loss over the global batch;
- train loss and metrics are accumulated locally and their counters summed over the workers at the
  end of the epoch (every flexplat metric is a ratio of sums), so they are the global figures;
- every worker validates on the whole validation split with the same weights (no exchange needed);
- the chief runs the callbacks (checkpoint, CSV, plots, early stopping, reduce-LR, resume state...)
  and every worker then takes the chief's ``stop_training`` and learning rate, so they stay in step.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from flexplat.engine.distribute import Placement, all_sum, from_chief


@dataclass
class LoopResult:
    """Epochs run and the sha256 of the last epoch's weights (equal on every worker when in sync)."""

    epochs: list[int]
    weights_sha256: str


def weights_digest(model: Any) -> str:
    """sha256 over every weight of ``model`` (bytes, in order)."""
    digest = hashlib.sha256()
    for weight in model.get_weights():
        digest.update(np.ascontiguousarray(weight).tobytes())
    return digest.hexdigest()


def _metric_state(metrics: Sequence[Any]) -> np.ndarray:
    return np.concatenate([np.ravel(np.asarray(v.numpy(), np.float64)) for m in metrics for v in m.variables])


def _set_metric_state(metrics: Sequence[Any], flat: np.ndarray) -> None:
    offset = 0
    for metric in metrics:
        for variable in metric.variables:
            size = int(np.prod(variable.shape)) if variable.shape else 1
            value = flat[offset : offset + size].reshape(variable.shape)
            variable.assign(value.astype(variable.dtype))
            offset += size


class _Steps:
    """The compiled train and validation steps, with their own (not distributed) metric objects."""

    def __init__(self, model: Any, strategy: Any, loss: Any, make_metrics: Callable[[], list]) -> None:
        import keras

        self.model, self.strategy, self.loss = model, strategy, loss
        self.train_metrics = [keras.metrics.Mean(name="loss"), *make_metrics()]
        self.val_metrics = [keras.metrics.Mean(name="loss"), *make_metrics()]
        self.train_step = self._train_step()
        self.val_step = self._val_step()

    def _replica_loss(self, y, pred):
        """The mean loss over this replica's batch, NOT divided by the replicas (``Loss.__call__`` would
        divide it inside ``strategy.run``; the train step scales explicitly instead)."""
        import tensorflow as tf

        value = tf.reduce_mean(self.loss.call(y, pred))
        if self.model.losses:
            value = value + tf.add_n(self.model.losses)
        return value

    def _train_step(self):
        import tensorflow as tf

        model, strategy, metrics = self.model, self.strategy, self.train_metrics
        replicas = strategy.num_replicas_in_sync

        def replica(x, y):
            with tf.GradientTape() as tape:
                pred = model(x, training=True)
                value = self._replica_loss(y, pred)
                scaled = value / replicas  # the optimizer sums the replicas' gradients: their mean
            grads = tape.gradient(scaled, model.trainable_variables)
            model.optimizer.apply(grads, model.trainable_variables)
            return value, y, pred

        @tf.function
        def step(iterator):
            value, y, pred = strategy.run(replica, args=next(iterator))
            losses = strategy.experimental_local_results(value)
            ys, preds = strategy.experimental_local_results(y), strategy.experimental_local_results(pred)
            for i in range(len(losses)):  # one per local replica (not autograph's zip)
                metrics[0].update_state(losses[i], sample_weight=tf.shape(ys[i])[0])
                for metric in metrics[1:]:
                    metric.update_state(ys[i], preds[i])
            return tf.reduce_mean(tf.stack(losses))

        return step

    def _val_step(self):
        import tensorflow as tf

        model, metrics = self.model, self.val_metrics

        @tf.function
        def step(x, y):
            pred = model(x, training=False)
            metrics[0].update_state(self._replica_loss(y, pred), sample_weight=tf.shape(y)[0])
            for metric in metrics[1:]:
                metric.update_state(y, pred)

        return step

    def epoch_logs(self, valid_ds: Any) -> dict[str, float]:
        """Global train figures (counters summed over workers) and this worker's full validation."""
        _set_metric_state(self.train_metrics, all_sum(self.strategy, _metric_state(self.train_metrics)))
        logs = {m.name: float(m.result()) for m in self.train_metrics}
        for x, y in valid_ds:
            self.val_step(x, y)
        logs.update({f"val_{m.name}": float(m.result()) for m in self.val_metrics})
        for metric in (*self.train_metrics, *self.val_metrics):
            metric.reset_state()
        return logs


def fit_distributed(
    model: Any,
    strategy: Any,
    placement: Placement,
    *,
    input_fn: Callable[[Any], Any],
    valid_ds: Any,
    make_metrics: Callable[[], list],
    epochs: int,
    initial_epoch: int,
    steps: int,
    callbacks: list,
) -> LoopResult:
    """Train ``model`` (built and compiled under ``strategy.scope()``) like ``fit``; see the module docstring.

    ``input_fn(input_context)`` returns this worker's repeated, batched training dataset. Only the
    chief passes ``callbacks``; the others pass none. A lost worker surfaces as a TensorFlow error
    (the collective timed out or was aborted); the caller turns it into a resumable failure.
    """
    import keras

    steps_ = _Steps(model, strategy, model.loss, make_metrics)
    hooks = keras.callbacks.CallbackList(callbacks, add_history=True, model=model, epochs=epochs, steps=steps)
    iterator = iter(strategy.distribute_datasets_from_function(input_fn))
    done: list[int] = []
    model.stop_training = False
    hooks.on_train_begin()
    for epoch in range(initial_epoch, epochs):
        hooks.on_epoch_begin(epoch)
        for batch in range(steps):
            hooks.on_train_batch_begin(batch)
            loss = steps_.train_step(iterator)  # a tensor: read (and waited for) only by a callback that wants it
            hooks.on_train_batch_end(batch, {"loss": loss})
        logs = steps_.epoch_logs(valid_ds)
        hooks.on_epoch_end(epoch, logs)
        done.append(epoch)
        _follow_chief(model, strategy, placement)
        if model.stop_training:
            break
    digest = weights_digest(model)
    hooks.on_train_end()
    return LoopResult(done, digest)


def _follow_chief(model: Any, strategy: Any, placement: Placement) -> None:
    """Every worker takes the chief's early-stopping decision and learning rate (set by its callbacks)."""
    import keras

    rate = float(keras.ops.convert_to_numpy(model.optimizer.learning_rate))
    state = np.array([float(model.stop_training), rate])
    stop, rate = from_chief(strategy, placement, state)
    model.stop_training = bool(stop)
    if not placement.chief:
        model.optimizer.learning_rate = float(rate)


def input_fn(config: dict, codec: Any, pairs: Sequence[Any]) -> Callable[[Any], Any]:
    """The ``distribute_datasets_from_function`` input: each worker its own shard, repeated, per-replica batches."""
    from flexplat.data.pipeline import make_dataset
    from flexplat.engine.distribute import shard
    from flexplat.errors import DataError

    train = config["train"]

    def build(context: Any) -> Any:
        mine = shard(pairs, context.input_pipeline_id, context.num_input_pipelines)
        if not mine:
            raise DataError(
                f"{config['data']['root']}: {len(pairs)} training pairs cannot be shared by "
                f"{context.num_input_pipelines} workers; use fewer workers"
            )
        return make_dataset(
            mine, codec, tuple(config["model"]["image_size"]), len(config["classes"]), train["batch_size"],
            shuffle=True, augment=train["augment"], seed=train["seed"], cache=config["data"]["cache"], repeat=True,
            stain_norm=config["data"].get("stain_norm"), channels=config["model"]["channels"],
        )  # fmt: skip

    return build


def steps_per_epoch(config: dict, pairs: int, replicas: int) -> int:
    """``train.steps_per_epoch``, else one pass over the training pairs at the global batch (rounded up)."""
    if config["train"]["steps_per_epoch"]:
        return int(config["train"]["steps_per_epoch"])
    return max(1, -(-pairs // (config["train"]["batch_size"] * replicas)))
