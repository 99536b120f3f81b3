"""The mixed-precision policy of a run: what an experiment's `mixed_precision` setting means here.

    keras.config.set_dtype_policy(resolve_mixed_precision("auto"))

`auto` picks per backend and device (float16 or bfloat16 on accelerators,
float32 on CPUs); `warn_if_slow_on_cpu` says when a policy asked for explicitly
will train slower than float32 on this CPU.
"""

import warnings

import keras


def _auto_policy(devices=None):
    """The mixed-precision policy `auto` stands for on this backend and these devices."""
    if keras.backend.backend() != "jax":
        import tensorflow as tf

        return "mixed_float16" if tf.config.list_logical_devices("GPU") else "float32"
    import jax

    device = (list(devices) if devices is not None else jax.local_devices())[0]
    if device.platform == "tpu":
        return "mixed_bfloat16"
    if device.platform == "gpu":
        # bfloat16 needs no loss scaling; GPUs before Ampere (compute capability 8) lack it.
        capability = getattr(device, "compute_capability", None)
        try:
            ampere = capability is not None and float(capability) >= 8.0
        except ValueError:
            ampere = False
        return "mixed_bfloat16" if ampere else "mixed_float16"
    return "float32"


def resolve_mixed_precision(setting, devices=None):
    """The Keras dtype policy name for an experiment's `mixed_precision` setting.

    `auto` means: on TensorFlow, float16 on a GPU; on JAX, bfloat16 on TPUs and on
    GPUs of compute capability 8 or more (Ampere on), float16 on older GPUs; float32
    on CPUs (their mixed precision is slower than float32).

    Args:
        setting: None, "none", "float32", "auto", "float16" or "bfloat16".
        devices: JAX only: the devices of the run, for `auto` (default: the local ones).

    Returns:
        "float32", "mixed_float16" or "mixed_bfloat16".

    Example:
        >>> resolve_mixed_precision("bfloat16")
        'mixed_bfloat16'
    """
    if setting in (None, "none", "float32"):
        return "float32"
    if setting == "auto":
        return _auto_policy(devices)
    if setting in ("float16", "bfloat16"):
        return f"mixed_{setting}"
    raise ValueError(
        f"`mixed_precision` must be one of None, 'auto', 'float16', 'bfloat16'. Received: {setting!r}"
    )


def warn_if_slow_on_cpu(policy):
    """Warns when a mixed-precision `policy` will train slower than float32 on this CPU.

    TensorFlow only, and only without GPUs: mixed precision works on every CPU,
    but some CPU kernels compute 16-bit floats far slower than float32
    (`keras_sknet.platform.slow_mixed_precision_reason` says which, and by how much).

    Args:
        policy: a Keras dtype policy name, e.g. "mixed_bfloat16".

    Returns:
        The warning's text, or None when there is nothing to warn about.

    Example:
        >>> warn_if_slow_on_cpu("float32") is None
        True
    """
    if keras.backend.backend() != "tensorflow" or policy == "float32":
        return None
    import tensorflow as tf

    from keras_sknet.platform import slow_mixed_precision_reason

    if tf.config.list_logical_devices("GPU"):
        return None
    reason = slow_mixed_precision_reason(policy)
    if reason:
        warnings.warn(reason, stacklevel=2)
    return reason
