"""What this machine's TensorFlow runs on: oneDNN or Eigen kernels, and the CPU's vector units.

TensorFlow's CPU convolutions come from one of two kernel libraries, fixed once
per process when TensorFlow is imported:

- **oneDNN**, on by default on Linux x86 CPUs with neural-network features
  (AVX-512 VNNI or BF16, AVX-VNNI, AMX: Cascade Lake, Zen 4, Alder Lake and
  newer), on Windows x86 and on Arm Neoverse V1, or wherever
  `TF_ENABLE_ONEDNN_OPTS=1` is set before the import. It runs every grouped
  and dilated convolution of the SK models, forwards and backwards, fast.
- **Eigen**, everywhere else (x86 with AVX2 only, such as AMD Zen 1-3 and
  Skylake; most Arm CPUs, Apple silicon; or `TF_ENABLE_ONEDNN_OPTS=0`). Its
  grouped convolution is unoptimised, and it refuses the gradients of grouped
  and of dilated convolutions, and a grouped convolution fused with the
  BatchNorm after it. `keras_sknet.layers` then computes those with other ops
  (see `keras_sknet.layers.tf_conv`): the same numbers, slower.

Importing `keras_sknet` before TensorFlow sets `TF_ENABLE_ONEDNN_OPTS=1`
unless it is already set, on x86 CPUs with AVX2 or AVX-512 (`prefer_onednn`),
where TensorFlow alone turns oneDNN on only with VNNI, BF16 or AMX: there
oneDNN trains and infers the SK models faster than Eigen at every batch size
(once the convolution + BatchNorm fusion that oneDNN runs slowly at batch 1 on
AVX2 is avoided, `tf_conv.affine_inference_batch_norm`). The measurements per
CPU are in docs/platforms.md and BENCHMARKS.md ("Kernels"). Arm keeps
TensorFlow's own choice (not measured). Set
`TF_ENABLE_ONEDNN_OPTS` yourself to decide.

This module imports nothing heavy at import time, so `keras_sknet` can call
`prefer_onednn()` before Keras imports TensorFlow.
"""

import os
import platform
import sys

ONEDNN_VARIABLE = "TF_ENABLE_ONEDNN_OPTS"

# The CPU features that decide which kernels run fast, as /proc/cpuinfo names them.
_X86_FEATURES = (
    "avx2",
    "fma",
    "avx_vnni",
    "avx512f",
    "avx512_vnni",
    "avx512_bf16",
    "amx_tile",
    "amx_bf16",
    "amx_int8",
)
# TensorFlow's own rule (tensorflow/core/util/util.cc): on Linux x86 it turns
# oneDNN on by itself when the CPU has one of these.
_TF_ONEDNN_DEFAULT_FEATURES = ("avx512_vnni", "avx512_bf16", "avx_vnni", "amx_tile", "amx_int8", "amx_bf16")
_ARM_FEATURES = ("asimd", "sve", "sve2", "bf16", "i8mm")


def prefer_onednn(features=None):
    """Turns TensorFlow's oneDNN kernels on where they pay and nobody has decided yet.

    Sets `TF_ENABLE_ONEDNN_OPTS=1` when the variable is unset, TensorFlow is
    not imported yet (the setting is read once, at TensorFlow's import) and the
    CPU is x86-64 with AVX2 or AVX-512: TensorFlow would otherwise run Eigen
    on CPUs without VNNI/BF16/AMX (AMD Zen 1-3, Intel Haswell to Skylake),
    where oneDNN trains the SK models faster and infers as fast or faster at
    every batch size (docs/platforms.md). Arm and x86 CPUs without AVX2 keep
    TensorFlow's own default (not measured).

    Args:
        features: as returned by `cpu_features()` (read from the machine if None).

    Returns:
        True if this call set the variable.

    Example:
        >>> import keras_sknet          # before tensorflow or keras, on an AVX2 or AVX-512 CPU
        >>> os.environ["TF_ENABLE_ONEDNN_OPTS"]
        '1'
    """
    if ONEDNN_VARIABLE in os.environ or "tensorflow" in sys.modules:
        return False
    if platform.machine().lower() not in ("x86_64", "amd64"):
        return False
    features = cpu_features() if features is None else features
    if "avx2" not in features and "avx512f" not in features:
        return False
    os.environ[ONEDNN_VARIABLE] = "1"
    return True


def onednn_enabled():
    """Whether this process's TensorFlow runs its oneDNN kernels (imports TensorFlow).

    Only meaningful where Keras runs on TensorFlow: on JAX or PyTorch no
    TensorFlow kernel runs, and asking would import TensorFlow for nothing.

    Returns:
        True for oneDNN, False for Eigen; the answer is fixed for the process.

    Raises:
        RuntimeError: Keras runs on another backend.
    """
    from keras_sknet.utils.backend import require_tensorflow_backend

    require_tensorflow_backend("keras_sknet.platform.onednn_enabled() (which TensorFlow kernels run)")
    try:
        from tensorflow.python.util import _pywrap_util_port

        return bool(_pywrap_util_port.IsMklEnabled())
    except (ImportError, AttributeError):  # a TensorFlow without the query: read the setting
        value = os.environ.get(ONEDNN_VARIABLE, "").strip().lower()
        if value in ("1", "true"):
            return True
        if value in ("0", "false"):
            return False
        return tensorflow_default_onednn()


def tensorflow_default_onednn(features=None):
    """Whether TensorFlow turns oneDNN on by itself on this Linux x86 CPU (no variable set).

    Args:
        features: as returned by `cpu_features()` (read from the machine if None).
    """
    features = set(cpu_features() if features is None else features)
    return bool(features.intersection(_TF_ONEDNN_DEFAULT_FEATURES))


def cpu_features():
    """The vector-unit features of this CPU that matter to TensorFlow's kernels.

    Returns:
        A sorted tuple of names as Linux spells them (`avx2`, `avx512f`,
        `avx512_bf16`, `amx_bf16`, `asimd`, `sve`, ...); empty where the
        operating system does not say (macOS reports through `sysctl`, read
        for Apple silicon's `bf16`/`i8mm`).
    """
    flags = set()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() in ("flags", "Features"):
                    flags.update(value.split())
                    break
    except OSError:
        pass
    if sys.platform == "darwin":
        flags.update(_darwin_features())
    return tuple(sorted(flags.intersection(_X86_FEATURES + _ARM_FEATURES)))


def _darwin_features():
    import subprocess

    found = set()
    for name, flag in (("hw.optional.arm.FEAT_BF16", "bf16"), ("hw.optional.arm.FEAT_I8MM", "i8mm")):
        try:
            out = subprocess.run(["sysctl", "-n", name], capture_output=True, text=True, timeout=5)
        except (OSError, subprocess.SubprocessError):
            continue
        if out.stdout.strip() == "1":
            found.add(flag)
    if platform.machine() == "arm64":
        found.add("asimd")
    return found


def vector_isa(features=None):
    """The widest vector instruction set of this CPU, in words.

    Args:
        features: as returned by `cpu_features()` (read from the machine if None).

    Returns:
        e.g. `"AVX-512 (VNNI, BF16, AMX)"`, `"AVX2"`, `"Arm NEON (BF16)"`.
    """
    features = set(cpu_features() if features is None else features)
    extras = [
        label
        for flag, label in (
            ("avx512_vnni", "VNNI"),
            ("avx_vnni", "AVX-VNNI"),
            ("avx512_bf16", "BF16"),
            ("amx_tile", "AMX"),
            ("sve", "SVE"),
            ("bf16", "BF16"),
            ("i8mm", "I8MM"),
        )
        if flag in features
    ]
    suffix = f" ({', '.join(extras)})" if extras else ""
    if "avx512f" in features:
        return "AVX-512" + suffix
    if "avx2" in features:
        return "AVX2" + suffix
    if "asimd" in features:
        return "Arm NEON" + suffix
    return platform.machine() or "unknown"


def has_vnni(features=None):
    """Whether this x86 CPU has VNNI (AVX-512 VNNI or AVX-VNNI): the int8 dot product in one instruction.

    ONNX Runtime's int8 convolutions beat float32 only with it (docs/export.md).

    Args:
        features: as returned by `cpu_features()` (read from the machine if None).
    """
    features = set(cpu_features() if features is None else features)
    return bool(features & {"avx512_vnni", "avx_vnni"})


def describe():
    """One line for benchmark headers: CPU model, vector ISA, and TensorFlow's kernels.

    Returns:
        e.g. `"Intel(R) Xeon(R) Processor, AVX-512 (VNNI, BF16, AMX); TensorFlow kernels: oneDNN"`;
        where Keras runs on JAX or PyTorch, the backend instead of the kernels
        (`"...; Keras backend: jax"`).
    """
    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            model = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    import keras

    if keras.backend.backend() != "tensorflow":
        return f"{model}, {vector_isa()}; Keras backend: {keras.backend.backend()}"
    kernels = "oneDNN" if onednn_enabled() else "Eigen"
    return f"{model}, {vector_isa()}; TensorFlow kernels: {kernels}"


def slow_mixed_precision_reason(policy, onednn=None, features=None):
    """Why `policy` trains slower than float32 on this CPU under TensorFlow, or None.

    Mixed precision works on every CPU (`keras_sknet.layers` computes what
    TensorFlow's kernels refuse), but only some CPUs compute 16-bit floats
    natively: on Eigen both 16-bit policies train slower than float32; on
    oneDNN, mixed_bfloat16 is fast only with AVX-512 BF16 or AMX, and
    mixed_float16 is slow everywhere (oneDNN's float16 filter gradient of a
    grouped convolution). Measured in docs/platforms.md, "Mixed precision".

    Args:
        policy: a Keras dtype policy name.
        onednn: whether TensorFlow runs oneDNN (asked of TensorFlow if None).
        features: as returned by `cpu_features()` (read from the machine if None).

    Returns:
        A sentence naming the policy, the kernels and the CPU feature missing,
        with what to use instead; None for float32 policies and fast cases.

    Example:
        >>> slow_mixed_precision_reason("mixed_float16", onednn=True, features={"avx512f"}) is None
        False
    """
    if policy not in ("mixed_float16", "mixed_bfloat16"):
        return None
    features = set(cpu_features() if features is None else features)
    onednn = onednn_enabled() if onednn is None else onednn
    kernels = "oneDNN" if onednn else "Eigen"
    if policy == "mixed_float16":
        return (
            f"{policy} trains slower than float32 on TensorFlow's CPU kernels ({kernels}): they have "
            "no fast float16 convolution gradients (measured 2.3x slower on Eigen, up to 195x on "
            "oneDNN). Use float32 on a CPU (mixed_precision=None), or mixed_bfloat16 on a CPU with "
            "AVX-512 BF16 or AMX."
        )
    if onednn and features.intersection(("avx512_bf16", "amx_bf16")):
        return None
    missing = "its Eigen kernels" if not onednn else "a CPU without AVX-512 BF16 or AMX-BF16"
    return (
        f"{policy} trains slower than float32 on TensorFlow with {missing} (measured 6.4x slower "
        "on Eigen): bfloat16 is computed by conversion, not natively. Use float32 on this CPU "
        "(mixed_precision=None); mixed_bfloat16 is fast with oneDNN on CPUs with AVX-512 BF16 or "
        "AMX (Cooper Lake, Sapphire Rapids, Zen 4 and newer)."
    )
