"""The mixed-precision policy of a run: what an experiment's `mixed_precision` setting means here.

    keras.config.set_dtype_policy(resolve_mixed_precision("auto"))

`auto` picks per backend, device, CPU and model family (float16 or bfloat16 on
accelerators; on CPUs bfloat16 only where it was measured to train faster than
float32); `warn_if_slow_on_cpu` says when a policy asked for explicitly will
train slower than float32 on this CPU.
"""

import warnings

import keras

# How much faster a training step runs under mixed_bfloat16 than float32 on a CPU whose
# TensorFlow kernels compute bfloat16 natively (oneDNN with AVX-512 BF16 or AMX), per family
# builder (`keras_sknet.weights.records.ModelRecord.builder`). AMD Zen 4, 2 threads, interleaved
# train_on_batch, 2026-12-06: SKNet-50 at batch 16, 224 px (2.06 s against 3.25 s); SKNet-29 at
# batch 64, 32 px (6.12 s against 9.92 s); ShuffleNetV2-SK 1.0x at batch 32, 224 px (0.99 s
# against 0.75 s: its depthwise convolutions and channel shuffles gain nothing and pay the
# casts). SKResNet (basic blocks) is not measured, so it trains in float32. docs/platforms.md,
# "Mixed precision", has the table.
CPU_BFLOAT16_TRAINING_SPEEDUP = {"SKNet": 1.58, "ShuffleNetV2": 0.76}
# Below this, bfloat16's rounding is not worth the speed.
WORTH_IT = 1.2


def _model_family(model):
    """The family builder of an experiment's model ("SKNet50" -> "SKNet"), or the name itself."""
    from keras_sknet.weights.records import MODELS

    return MODELS[model].builder if model in MODELS else model


def bfloat16_pays_on_this_cpu(model):
    """Whether `model` trains faster under mixed_bfloat16 than float32 on this CPU (TensorFlow).

    Args:
        model: the experiment's model: a function of `keras_sknet.applications`
            ("SKNet50") or a family builder ("SKNet").

    Returns:
        True where TensorFlow computes bfloat16 natively here and the family was measured
        at least `WORTH_IT` times faster (`CPU_BFLOAT16_TRAINING_SPEEDUP`).
    """
    from keras_sknet.platform import slow_mixed_precision_reason

    speedup = CPU_BFLOAT16_TRAINING_SPEEDUP.get(_model_family(model), 0.0)
    return speedup >= WORTH_IT and slow_mixed_precision_reason("mixed_bfloat16") is None


def _auto_policy(devices=None, model=None):
    """The mixed-precision policy `auto` stands for on this backend, these devices and this model."""
    if keras.backend.backend() != "jax":
        import tensorflow as tf

        if tf.config.list_logical_devices("GPU"):
            return "mixed_float16"
        return "mixed_bfloat16" if model and bfloat16_pays_on_this_cpu(model) else "float32"
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


def resolve_mixed_precision(setting, devices=None, model=None):
    """The Keras dtype policy name for an experiment's `mixed_precision` setting.

    `auto` means: on TensorFlow, float16 on a GPU, and on a CPU bfloat16 where it
    trains the model's family faster (`bfloat16_pays_on_this_cpu`: oneDNN with
    AVX-512 BF16 or AMX, bottleneck SK/ResNeXt/SE networks), float32 elsewhere; on
    JAX, bfloat16 on TPUs and on GPUs of compute capability 8 or more (Ampere on),
    float16 on older GPUs, float32 on CPUs (not measured in bfloat16: a
    CIFAR SKNet step did not finish compiling in 5 minutes on XLA's CPU).

    Args:
        setting: None, "none", "float32", "auto", "float16" or "bfloat16".
        devices: JAX only: the devices of the run, for `auto` (default: the local ones).
        model: the experiment's model, for `auto` on a CPU (None: float32 there).

    Returns:
        "float32", "mixed_float16" or "mixed_bfloat16".

    Example:
        >>> resolve_mixed_precision("bfloat16")
        'mixed_bfloat16'
    """
    if setting in (None, "none", "float32"):
        return "float32"
    if setting == "auto":
        return _auto_policy(devices, model)
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
