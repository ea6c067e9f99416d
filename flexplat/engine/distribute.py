"""Where training runs: one process, several local GPUs, or several worker processes (tf.distribute).

``train.strategy`` (``--strategy``) picks one of :data:`STRATEGIES`:

- ``one``: this process, no tf.distribute strategy (single-process behaviour, unchanged).
- ``mirrored``: ``tf.distribute.MirroredStrategy`` over every local GPU; Keras ``fit`` runs under it.
- ``multi-worker``: ``tf.distribute.MultiWorkerMirroredStrategy`` over the processes that ``TF_CONFIG``
  names, or a Slurm job step (``SlurmClusterResolver``: ``SLURM_PROCID``, ``SLURM_STEP_NUM_TASKS``,
  ``SLURM_STEP_NODELIST``; ports from ``FLEXPLAT_SLURM_PORT``, default 8888). Keras 3 ``fit`` fails
  under this strategy ("unsupported type PerReplica", keras-team/keras#20585), so
  :mod:`flexplat.engine.distributed_loop` runs a distributed train step instead.
- ``auto``: multi-worker when TF_CONFIG or Slurm names more than one task, mirrored with several
  GPUs, else one.

``train.batch_size`` is per replica: the global batch is ``batch_size x replicas``. Worker 0 (or the
``chief`` task of TF_CONFIG) is the chief: only it writes the run folder.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from flexplat.errors import ConfigError, FlexplatError

STRATEGIES = ("auto", "one", "mirrored", "multi-worker")
SLURM_PORT_ENV = "FLEXPLAT_SLURM_PORT"
DEFAULT_SLURM_PORT = 8888


@dataclass(frozen=True)
class Placement:
    """The resolved strategy and this process's place in it (``index`` 0 is the chief)."""

    strategy: str
    workers: int = 1
    index: int = 0
    source: str = "this process"

    @property
    def chief(self) -> bool:
        return self.index == 0

    @property
    def distributed(self) -> bool:
        return self.strategy != "one"


def _tf_config_placement(text: str) -> Placement:
    """The placement TF_CONFIG describes; errors name the variable and what is wrong."""
    try:
        spec = json.loads(text)
        cluster, task = spec["cluster"], spec["task"]
        kind, index = task["type"], int(task["index"])
    except (ValueError, KeyError, TypeError) as exc:
        raise ConfigError(
            f"TF_CONFIG: not a valid cluster description ({type(exc).__name__}: {exc}); expected JSON like "
            '{"cluster": {"worker": ["host1:port", "host2:port"]}, "task": {"type": "worker", "index": 0}}'
        ) from None
    unknown = sorted(set(cluster) - {"chief", "worker"})
    if unknown or kind not in ("chief", "worker"):
        raise ConfigError(
            f"TF_CONFIG: task types {unknown or [kind]} are not supported; flexplat trains with 'chief' and "
            "'worker' tasks only (no parameter servers or evaluators)"
        )
    chiefs, workers = list(cluster.get("chief", [])), list(cluster.get("worker", []))
    if len(chiefs) > 1 or not 0 <= index < len(cluster.get(kind, [])):
        raise ConfigError(f"TF_CONFIG: task {kind}:{index} is not in the cluster {cluster}")
    position = index if kind == "chief" else index + len(chiefs)
    return Placement("multi-worker", len(chiefs) + len(workers), position, "TF_CONFIG")


def _slurm_placement(environ: Mapping[str, str]) -> Placement:
    tasks = int(environ.get("SLURM_STEP_NUM_TASKS") or environ.get("SLURM_NTASKS") or 1)
    return Placement("multi-worker", tasks, int(environ["SLURM_PROCID"]), "Slurm")


def _slurm_tasks(environ: Mapping[str, str]) -> int:
    if "SLURM_PROCID" not in environ or "SLURM_STEP_NODELIST" not in environ:
        return 0
    return int(environ.get("SLURM_STEP_NUM_TASKS") or environ.get("SLURM_NTASKS") or 1)


def local_gpus() -> int:
    """GPUs TensorFlow sees here (imports TensorFlow)."""
    import tensorflow as tf

    return len(tf.config.list_physical_devices("GPU"))


def resolve_placement(requested: str, environ: Mapping[str, str] | None = None) -> Placement:
    """The strategy ``requested`` (one of :data:`STRATEGIES`) resolved against this process's environment."""
    environ = os.environ if environ is None else environ
    if requested not in STRATEGIES:
        raise ConfigError(f"train.strategy: {requested!r} is not allowed; choose one of {', '.join(STRATEGIES)}")
    if requested == "one":
        return Placement("one")
    if requested == "mirrored":
        return Placement("mirrored", source="local devices")
    cluster = _tf_config_placement(environ["TF_CONFIG"]) if environ.get("TF_CONFIG") else None
    if cluster is None and _slurm_tasks(environ):
        cluster = _slurm_placement(environ)
    if requested == "multi-worker":
        if cluster is None:
            raise ConfigError(
                "--strategy multi-worker: no cluster found; set TF_CONFIG on every worker (see README "
                "'Running on a cluster') or start the workers with srun inside a Slurm allocation"
            )
        return cluster
    if cluster is not None and cluster.workers > 1:
        return cluster
    return Placement("mirrored", source="local devices") if local_gpus() > 1 else Placement("one")


def make_strategy(placement: Placement, timeout: float) -> Any:
    """The tf.distribute strategy of ``placement`` (None for ``one``); collectives time out after ``timeout`` s."""
    if placement.strategy == "one":
        return None
    import tensorflow as tf

    if placement.strategy == "mirrored":
        return tf.distribute.MirroredStrategy()
    options = tf.distribute.experimental.CommunicationOptions(timeout_seconds=float(timeout))
    resolver = _slurm_resolver() if placement.source == "Slurm" else None
    if resolver is not None:
        return tf.distribute.MultiWorkerMirroredStrategy(cluster_resolver=resolver, communication_options=options)
    return tf.distribute.MultiWorkerMirroredStrategy(communication_options=options)


def _slurm_resolver() -> Any:
    import tensorflow as tf

    try:
        port = int(os.environ.get(SLURM_PORT_ENV, DEFAULT_SLURM_PORT))
    except ValueError:
        raise ConfigError(f"{SLURM_PORT_ENV}: must be a port number, got {os.environ[SLURM_PORT_ENV]!r}") from None
    cuda = os.environ.get("CUDA_VISIBLE_DEVICES")
    gpus = bool(cuda) if cuda is not None else shutil.which("nvidia-smi") is not None
    # Without GPUs the resolver's GPU split (gpus_per_node // tasks_per_node = 0) would drop every task:
    # give each task a placeholder "GPU" and keep CUDA_VISIBLE_DEVICES untouched instead.
    cpu = {} if gpus else {"gpus_per_node": _slurm_tasks(os.environ), "gpus_per_task": 1, "auto_set_gpu": False}
    try:
        return tf.distribute.cluster_resolver.SlurmClusterResolver(port_base=port, **cpu)
    except RuntimeError as exc:
        raise ConfigError(f"Slurm: could not resolve the job step's workers ({exc})") from None


def replicas(strategy: Any) -> int:
    return 1 if strategy is None else int(strategy.num_replicas_in_sync)


# -- exchanging values between workers ------------------------------------------------------------


def all_sum(strategy: Any, values: np.ndarray) -> np.ndarray:
    """``values`` summed over every replica (float64 in, float64 out); a no-op without a strategy.

    Raises :class:`FlexplatError` when a worker does not answer within the collective timeout.
    """
    values = np.asarray(values, np.float64)
    if strategy is None or strategy.num_replicas_in_sync == 1:
        return values
    import tensorflow as tf

    try:
        result = _summer(strategy)(tf.constant(values))
    except tf.errors.OpError as exc:
        raise worker_lost(exc) from None
    return strategy.experimental_local_results(result)[0].numpy()


_SUMMERS: dict[int, tuple[Any, Any]] = {}


def _summer(strategy: Any) -> Any:
    """A compiled all-reduce (SUM) for ``strategy``, made once (collectives run eagerly are slow)."""
    known = _SUMMERS.get(id(strategy))
    if known is not None and known[0] is strategy:
        return known[1]
    import tensorflow as tf

    def replica(value):
        local = tf.identity(value)  # on this replica's device: the collective needs one
        return tf.distribute.get_replica_context().all_reduce(tf.distribute.ReduceOp.SUM, local)

    @tf.function
    def run(value):
        return strategy.run(replica, args=(value,))

    _SUMMERS[id(strategy)] = (strategy, run)
    return run


def from_chief(strategy: Any, placement: Placement, values: np.ndarray) -> np.ndarray:
    """The chief's ``values`` on every worker (every worker calls this with an array of the same shape)."""
    values = np.asarray(values, np.float64)
    return all_sum(strategy, values if placement.chief else np.zeros_like(values))


def broadcast_variables(strategy: Any, placement: Placement, variables: Sequence[Any]) -> None:
    """Give every worker the chief's values of ``variables`` (after the chief loaded resume/init weights)."""
    if strategy is None or placement.workers == 1 or not variables:
        return
    arrays = [np.asarray(v.numpy()) for v in variables]
    flat = from_chief(strategy, placement, np.concatenate([a.ravel().astype(np.float64) for a in arrays]))
    offset = 0
    for variable, array in zip(variables, arrays, strict=True):
        variable.assign(flat[offset : offset + array.size].reshape(array.shape).astype(array.dtype))
        offset += array.size


def worker_lost(exc: Exception) -> FlexplatError:
    """The error shown when a collective fails: a worker died, hung or cannot be reached."""
    first = (str(getattr(exc, "message", exc)).strip().splitlines() or [""])[0][:200]
    return FlexplatError(
        f"multi-worker training stopped: a worker did not answer within train.collective_timeout or failed "
        f"({type(exc).__name__}: {first}); check every worker's log, then restart all workers with "
        f"`flexplat train --resume RUN_DIR --strategy multi-worker`"
    )


def shard(items: Sequence[Any], index: int, count: int) -> list[Any]:
    """Worker ``index`` of ``count``'s share of ``items``: every count-th item (disjoint, together all)."""
    return list(items[index::count])
