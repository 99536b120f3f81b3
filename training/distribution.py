"""Where a run computes: the `tf.distribute` strategy (TensorFlow) or the `DataParallel` devices (JAX).

    strategy = make_strategy()             # TensorFlow: Mirrored / MultiWorker / default
    distribution = make_distribution()     # JAX: DataParallel over the local devices, or None

Several machines run on TensorFlow's `MultiWorkerMirroredStrategy` (`TF_CONFIG`
naming several workers) or as several JAX processes (`training.processes`), whose
`DataParallel` spans the devices of every process.
"""

import json
import os

import keras


class MultiWorkerModel(keras.Model):
    """The same functional model, with its step logs shaped for multi-worker reduction.

    Keras 3.15 reduces each step's logs across workers with
    `strategy.reduce("MEAN", value, axis=0)`, which fails on the scalar losses and
    metrics of a MultiWorkerMirroredStrategy run ("Invalid reduction dimension 0 for
    input with 0 dimensions", tensorflow#72388). One-element vectors reduce to the
    cross-worker mean.

    Example:
        >>> fit_model = MultiWorkerModel(model.inputs, model.outputs, name=model.name)  # doctest: +SKIP
    """

    def train_step(self, data):
        return {k: keras.ops.reshape(v, (1,)) for k, v in super().train_step(data).items()}

    def test_step(self, data):
        return {k: keras.ops.reshape(v, (1,)) for k, v in super().test_step(data).items()}


def cluster_workers():
    """The worker addresses named by TF_CONFIG (empty without TF_CONFIG)."""
    config = json.loads(os.environ.get("TF_CONFIG") or "{}")
    return config.get("cluster", {}).get("worker", [])


def make_strategy(devices=None):
    """The distribution strategy for this process.

    - `TF_CONFIG` naming several workers: `MultiWorkerMirroredStrategy` (several machines);
    - several local GPUs, or `devices` given: `MirroredStrategy` over them;
    - otherwise TensorFlow's default strategy (one device).

    Args:
        devices: optional device names for MirroredStrategy, e.g. ["/cpu:0", "/cpu:1"]
            (logical CPU devices, to test multi-device code on a CPU); one name gives
            OneDeviceStrategy.

    Returns:
        A `tf.distribute.Strategy`.

    Example:
        >>> strategy = make_strategy(["/cpu:0", "/cpu:1"])  # doctest: +SKIP
        >>> strategy.num_replicas_in_sync
        2
    """
    import tensorflow as tf

    if len(cluster_workers()) > 1:
        return tf.distribute.MultiWorkerMirroredStrategy()
    if devices and len(devices) == 1:
        return tf.distribute.OneDeviceStrategy(devices[0])
    if devices:
        if all("cpu" in d.lower() for d in devices):
            # Collective all-reduces between logical CPU devices can be issued in different
            # orders by the replicas (mismatched collectives with synchronised BatchNorm);
            # reducing on one device has no such ordering.
            return tf.distribute.MirroredStrategy(
                devices, cross_device_ops=tf.distribute.ReductionToOneDevice()
            )
        return tf.distribute.MirroredStrategy(devices)
    gpus = tf.config.list_logical_devices("GPU")
    if len(gpus) > 1:
        return tf.distribute.MirroredStrategy()
    return tf.distribute.get_strategy()


def is_chief(strategy):
    """True on the process that writes the run directory (worker 0, or the only one)."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.cluster_spec().as_dict():
        return True
    return resolver.task_type in (None, "chief") or (resolver.task_type == "worker" and resolver.task_id == 0)


def make_distribution(devices=None):
    """JAX's counterpart of `make_strategy`: Keras' `DataParallel` over several devices.

    Every device holds a copy of the variables and computes its slice of the
    global batch; XLA adds the gradients (and the BatchNorm statistics) over the
    devices. One device needs no distribution.

    Args:
        devices: JAX devices, e.g. `jax.devices("cpu")`; default every local
            device of JAX's default backend (all GPUs, or the CPU devices that
            `XLA_FLAGS=--xla_force_host_platform_device_count=N` makes). With
            several processes, every process's devices (`jax.devices()`): each
            process then feeds its own rows of each batch (no automatic sharding).

    Returns:
        A `keras.distribution.DataParallel`, or None for a single device.

    Example:
        >>> with make_distribution(jax.devices()).scope():  # doctest: +SKIP
        ...     model = SKNet50()
    """
    import jax

    devices = list(jax.local_devices() if devices is None else devices)
    if not devices:
        raise ValueError("`devices` is empty: name at least one JAX device.")
    if len(devices) == 1:
        return None
    # Several processes: the trainer gives each its rows of a batch (`training.inputs`).
    return keras.distribution.DataParallel(devices=devices, auto_shard_dataset=jax.process_count() == 1)


def check_batch_divides(batch_size, devices):
    """Raises ValueError unless the global batch splits evenly over `devices` (a count or a list)."""
    count = devices if isinstance(devices, int) else len(devices)
    if batch_size % count:
        raise ValueError(
            f"The global batch size must be divisible by the number of devices it is split over. "
            f"Received: batch_size={batch_size} with {count} devices; use a multiple of {count} "
            "(--batch-size) or other devices."
        )
