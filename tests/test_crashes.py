"""Crashes a user can hit, each run where it would crash: in subprocesses, many times.

oneDNN's bfloat16 kernel gradient of a grouped, dilated convolution
(`Conv2DBackpropFilter`, TensorFlow 2.21, oneDNN 3.7.3) reads past the end of
its buffer: NaN or garbage gradients, and a segfault whenever the buffer ends a
page (`keras_sknet.layers.tf_conv`). A small CIFAR SKNet trained under
mixed_bfloat16 crashed in half the runs on an AMD Zen 4; a segfault in the test
process would take a pytest worker with it, so these run in subprocesses.
"""

import concurrent.futures
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from keras_sknet import platform
from keras_sknet.layers import tf_conv
from tests import tf_reference
from tests.helpers import subprocess_environment

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Without the workaround every run failed (NaN weights when it did not segfault), so 6 runs
# (3 of them at Zen 4's ISA) catch its loss for certain and a segfault-only regression 98% of the time.
RUNS = int(os.environ.get("KERAS_SKNET_CRASH_RUNS", "6"))
# What a Sapphire Rapids runs to stand in for a Zen 4: oneDNN's AVX-512 BF16 kernels, no AMX.
ZEN4_CAP = {"ONEDNN_MAX_CPU_ISA": "AVX512_CORE_BF16"}

onednn_bfloat16 = pytest.mark.skipif(
    not tf_conv.native_kernels("bfloat16"),
    reason="TensorFlow runs bfloat16 convolutions on Eigen here: oneDNN's broken gradient never runs",
)


def _python(code, *args, timeout=180, **variables):
    """Runs `python -c code args...` from the repository root (a crash is a negative return code)."""
    env = subprocess_environment(TF_CPP_MIN_LOG_LEVEL="3", **variables)
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _crashed(result):
    if result.returncode < 0:
        return f"killed by signal {-result.returncode}"
    return f"exit {result.returncode}: {result.stderr[-2000:]}"


@pytest.mark.kernels
@pytest.mark.skipif(not tf_conv.native_kernels("float32"), reason="needs TensorFlow's grouped gradients")
@pytest.mark.parametrize("dilation,padding,groups", [(2, "SAME", 4), (3, "SAME", 2), (2, "VALID", 4)])
def test_phase_kernel_gradient_matches_the_definition(dilation, padding, groups, rng):
    """The route around oneDNN's kernel gradient computes the convolution's own, in float32.

    (Float32, not float64: TensorFlow runs float64 convolutions on Eigen, which has no grouped gradients.)
    """
    x = tf.constant(rng.normal(size=(2, 11, 10, 8)), tf.float32)
    kernel = tf.constant(rng.normal(size=(3, 3, 8 // groups, 12)), tf.float32)
    pad = dilation if padding == "SAME" else 0
    weights = tf.constant(rng.normal(size=tf_reference.conv2d(x, kernel, 1, dilation, pad).shape), tf.float32)

    def loss_and_gradients(fn):
        with tf.GradientTape() as tape:
            tape.watch([x, kernel])
            y = fn(x, kernel)
            loss = tf.reduce_sum(y * weights)
        return [y, *tape.gradient(loss, [x, kernel])]

    ours = loss_and_gradients(lambda x, k: tf_conv._phase_kernel_gradient_conv(x, k, dilation, padding))
    theirs = loss_and_gradients(lambda x, k: tf_reference.conv2d(x, k, 1, dilation, pad))
    for name, a, b in zip(("outputs", "input gradient", "kernel gradient"), ours, theirs):
        np.testing.assert_allclose(a, b, atol=1e-5 * float(tf.reduce_max(tf.abs(b))), err_msg=name)


GRADIENTS = """
import json, sys
import numpy as np, tensorflow as tf
from keras_sknet.layers import tf_conv
from tests import tf_reference

tf.config.threading.set_intra_op_parallelism_threads(2)
n, size, channels, groups, dilation = json.loads(sys.argv[1])
rng = np.random.default_rng(0)
x = rng.normal(size=(n, size, size, channels))
kernel = rng.normal(size=(3, 3, channels // groups, channels)) * 0.2
weights = rng.normal(size=(n, size, size, channels))
bf16 = [tf.cast(tf.constant(v, tf.float32), tf.bfloat16) for v in (x, kernel, weights)]
exact = [tf.cast(v, tf.float64) for v in bf16]  # the same inputs, rounded to bfloat16

def gradients(conv, x, kernel, weights):
    with tf.GradientTape() as tape:
        tape.watch([x, kernel])
        loss = tf.reduce_sum(tf.cast(conv(x, kernel) * weights, tf.float32))
    return tape.gradient(loss, [x, kernel])

ours = tf.function(gradients)(lambda x, k: tf_conv.conv2d(x, k, 1, dilation, "SAME"), *bf16)
theirs = gradients(lambda x, k: tf_reference.conv2d(x, k, 1, dilation, dilation), *exact)
print(json.dumps([
    float(np.max(np.abs(np.float64(a) - b)) / np.max(np.abs(b))) if np.all(np.isfinite(np.float64(a)))
    else None for a, b in zip(ours, theirs)
]))
"""


@onednn_bfloat16
@pytest.mark.kernels
@pytest.mark.parametrize(
    "shape",
    [
        (4, 32, 16, 4, 2),  # the small CIFAR SKNet's first stage: NaN kernel gradients, often a segfault
        (2, 56, 128, 32, 2),  # SKNet-50's first stage at 224 px
        (2, 40, 16, 16, 3),
    ],
)
def test_bfloat16_gradients_of_grouped_dilated_convolutions(shape):
    result = _python(GRADIENTS, json.dumps(shape))
    assert result.returncode == 0, _crashed(result)
    input_error, kernel_error = json.loads(result.stdout.strip().splitlines()[-1])
    # bfloat16 keeps 8 bits: within a few percent of the largest gradient, and finite.
    assert input_error is not None and input_error < 0.03, input_error
    assert kernel_error is not None and kernel_error < 0.03, kernel_error


TRAIN = """
import os, sys
import keras_sknet
import keras, numpy as np, tensorflow as tf
from keras_sknet import applications

tf.config.threading.set_intra_op_parallelism_threads(2)
keras.config.set_dtype_policy("mixed_bfloat16")
model = applications.SKNet(
    (1, 1), min_dim=4, stem="cifar", cardinality=4, bottleneck_width=4, input_shape=(32, 32, 3), classes=5
)
rng = np.random.default_rng(int(sys.argv[1]))
x = rng.normal(size=(8, 32, 32, 3)).astype("float32")
y = rng.integers(0, 5, 8)
model.compile(keras.optimizers.SGD(0.01), "sparse_categorical_crossentropy")
history = model.fit(x, y, batch_size=4, epochs=2, verbose=0)
weights = np.concatenate([np.ravel(w) for w in model.get_weights()])
assert np.all(np.isfinite(history.history["loss"])), history.history["loss"]
assert np.all(np.isfinite(weights)), "the weights are not finite after training"
"""


@onednn_bfloat16
@pytest.mark.kernels
def test_mixed_bfloat16_training_never_crashes():
    """The configuration that segfaulted in half the runs, RUNS times (half with Zen 4's ISA on any CPU)."""
    capped = "avx512_bf16" in platform.cpu_features() or "amx_bf16" in platform.cpu_features()

    def train(run):
        return _python(TRAIN, str(run), **(ZEN4_CAP if capped and run % 2 else {}))

    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        results = list(pool.map(train, range(RUNS)))
    failures = [f"run {run}: {_crashed(result)}" for run, result in enumerate(results) if result.returncode]
    assert not failures, f"{len(failures)} of {RUNS} runs failed:\n" + "\n".join(failures)


TORCH_AFTER_TENSORFLOW = """
import os, sys
import keras_sknet
import tensorflow
from keras_sknet.weights import read_checkpoint
import torch

path = os.path.join(sys.argv[1], "model.pth")
torch.save({"conv1.weight": torch.ones(4, 3, 3, 3)}, path)
print(sorted(read_checkpoint(path)))
"""


def test_reading_a_pytorch_checkpoint_after_tensorflow_does_not_crash(tmp_path):
    """Our paths that import torch import only torch, which loads beside TensorFlow (docs/weights.md).

    (timm and torchvision load triton, whose LLVM crashes against TensorFlow's when imported after it;
    the package runs timm in a separate process.)
    """
    pytest.importorskip("torch")
    result = _python(TORCH_AFTER_TENSORFLOW, str(tmp_path))
    assert result.returncode == 0, _crashed(result)
    assert "conv1.weight" in result.stdout
