"""Runs every model family through every public path, in a process of its own.

    python -m tests.platform_worker WEIGHTS_DIR OUTPUT.npz [--saved-model-in DIR] [--saved-model-out DIR]
    python -m tests.platform_worker WEIGHTS_DIR OUTPUT.npz --mixed-only

`tests/test_platforms.py` starts it with `TF_ENABLE_ONEDNN_OPTS` set the other
way from its own process: TensorFlow fixes its kernel library at import, so the
two libraries can only be compared across processes. TensorFlow is imported
before `keras_sknet`, as a user who imports it first would: the package must
work whatever TensorFlow decided.

For each family (small widths, 32-64 px), with the weights the parent saved:
eager call, `predict`, two `fit` steps (the loss after each step and how far the steps moved
the weights),
`frozen_function`, and for SK families the attention read-out; and the SKNet
family's prediction and training under mixed bfloat16 and float16. The arrays go
to OUTPUT.npz with the kernel library that ran. With --saved-model-in it also
runs a SavedModel another process wrote; with --saved-model-out it writes one.

With --mixed-only it runs only the mixed-precision training, for the parent's own
kernel library: 16-bit training is where kernel libraries have crashed (oneDNN's
bfloat16 kernel gradient, `keras_sknet.layers.tf_conv`), and a crash here fails
one test instead of killing a pytest worker.
"""

import argparse
import os
import sys

# TensorFlow (Keras imports it) before keras_sknet, as a user may: the package must cope.
import keras
import numpy as np
import tensorflow as tf

from keras_sknet import applications, platform
from keras_sknet.analysis import attention_weights
from keras_sknet.export import frozen_function, to_saved_model

BATCH = 4


SK_FAMILIES = ("sknet", "sknet_m3", "skresnet", "shufflenet_sk")


def families():
    """`{name: (builder, input size)}`: one small model of every family the package ships."""
    cifar = dict(stem="cifar", cardinality=4, bottleneck_width=4, input_shape=(32, 32, 3), classes=5)
    return {
        "sknet": (lambda: applications.SKNet((1, 1), min_dim=4, **cifar), 32),
        "sknet_m3": (lambda: applications.SKNet((1, 1), kernel_sizes=(3, 5, 7), min_dim=4, **cifar), 32),
        "resnext": (lambda: applications.SKNet((1, 1), block="resnext", **cifar), 32),
        "seresnext": (lambda: applications.SKNet((1, 1), block="resnext", se_reduction=4, **cifar), 32),
        "skresnet": (
            lambda: applications.SKResNet((1, 1, 1, 1), input_shape=(64, 64, 3), classes=5),
            64,
        ),
        "shufflenet_sk": (
            lambda: applications.ShuffleNetV2(
                0.5, attention="sk", stage_depths=(1, 1, 1), input_shape=(64, 64, 3), classes=5
            ),
            64,
        ),
        "shufflenet": (
            lambda: applications.ShuffleNetV2(
                0.5, stage_depths=(1, 1, 1), input_shape=(64, 64, 3), classes=5
            ),
            64,
        ),
    }


def data(size):
    rng = np.random.default_rng(size)
    x = rng.normal(size=(2 * BATCH, size, size, 3)).astype("float32")
    y = rng.integers(0, 5, 2 * BATCH)
    return x, y


def load(name, weights_dir):
    """The family's small model with the weights the parent saved."""
    build, _ = families()[name]
    keras.utils.set_random_seed(0)
    model = build()
    model.load_weights(os.path.join(weights_dir, f"{name}.weights.h5"))
    return model


def run_family(name, weights_dir):
    """`{"NAME/PATH": array}` for every public path of one family."""
    model = load(name, weights_dir)
    x, y = data(families()[name][1])
    out = {
        "eager": np.asarray(model(x[:BATCH], training=False)),
        "predict": model.predict(x, batch_size=BATCH, verbose=0),
        "frozen": frozen_function(model)(x[:BATCH]).numpy(),
    }
    if name in SK_FAMILIES:
        for unit, values in attention_weights(model, x[:BATCH]).items():
            out[f"attention/{unit}"] = values
    initial = _flat_weights(model)
    model.compile(keras.optimizers.SGD(0.01), "sparse_categorical_crossentropy")
    losses = StepLosses()
    model.fit(x, y, batch_size=BATCH, epochs=1, shuffle=False, verbose=0, callbacks=[losses])
    out["losses"] = np.asarray(losses.values)
    out["update"] = _flat_weights(model) - initial
    return {f"{name}/{key}": value for key, value in out.items()}


def _flat_weights(model):
    return np.concatenate([np.ravel(w) for w in model.get_weights()])


class StepLosses(keras.callbacks.Callback):
    """The epoch's running mean loss after each step: the first value is the first step's loss."""

    def __init__(self):
        super().__init__()
        self.values = []

    def on_train_batch_end(self, batch, logs=None):
        self.values.append(float(logs["loss"]))


def _onednn_capped_below_bfloat16():
    """Whether ONEDNN_MAX_CPU_ISA caps oneDNN below the instructions its bfloat16 kernels need.

    TensorFlow registers oneDNN's bfloat16 kernels from the CPU's own features, so on an
    AVX-512 host with oneDNN capped at AVX2 (scripts/test.sh's capped pass) every bfloat16
    convolution aborts ("could not create a primitive descriptor"). A real AVX2 CPU never
    gets those kernels (TensorFlow runs bfloat16 on Eigen there), so this is the emulation's
    limit, not a user's: the capped pass leaves bfloat16 out.
    """
    from keras_sknet import platform

    cap = os.environ.get("ONEDNN_MAX_CPU_ISA", "").upper()
    capped = bool(cap) and cap != "ALL" and "BF16" not in cap and "AMX" not in cap
    return capped and "avx512f" in platform.cpu_features()


MIXED_POLICIES = (
    ("mixed_float16",) if _onednn_capped_below_bfloat16() else ("mixed_bfloat16", "mixed_float16")
)


def run_mixed(policy, weights_dir):
    """`{"POLICY/PATH": array}`: the "sknet" family's prediction and training under a mixed policy."""
    keras.config.set_dtype_policy(policy)
    try:
        model = load("sknet", weights_dir)
        x, y = data(families()["sknet"][1])
        out = {"predict": model.predict(x, batch_size=BATCH, verbose=0).astype("float32")}
        model.compile(keras.optimizers.SGD(0.01), "sparse_categorical_crossentropy")
        history = model.fit(x, y, batch_size=BATCH, epochs=1, shuffle=False, verbose=0)
        out["losses"] = np.asarray(history.history["loss"])
    finally:
        keras.config.set_dtype_policy("float32")
    return {f"{policy}/{key}": value for key, value in out.items()}


def run_saved_model(path):
    """The outputs of an SKNet-family SavedModel on the "sknet" family's first batch."""
    serving = tf.saved_model.load(path).signatures["serving_default"]
    x, _ = data(families()["sknet"][1])
    return serving(images=tf.constant(x[:BATCH]))["predictions"].numpy()


def main(argv=None):
    parser = argparse.ArgumentParser()
    parser.add_argument("weights_dir")
    parser.add_argument("output")
    parser.add_argument("--saved-model-in")
    parser.add_argument("--saved-model-out")
    parser.add_argument("--mixed-only", action="store_true")
    args = parser.parse_args(argv)
    if args.mixed_only:
        results = {}
        for policy in MIXED_POLICIES:
            results.update(run_mixed(policy, args.weights_dir))
        np.savez(args.output, **results)
        return 0

    from keras_sknet.layers import tf_conv

    results = {
        "onednn": np.asarray(platform.onednn_enabled()),
        "portable_float32": np.asarray(
            tf_conv.path_for(tf.zeros((1, 4, 4, 8)), groups=4, dilation=1) != "native"
        ),
    }
    for name in families():
        results.update(run_family(name, args.weights_dir))
    for policy in MIXED_POLICIES:
        results.update(run_mixed(policy, args.weights_dir))
    if args.saved_model_in:
        results["saved_model/outputs"] = run_saved_model(args.saved_model_in)
    if args.saved_model_out:
        to_saved_model(load("sknet", args.weights_dir), args.saved_model_out)
    np.savez(args.output, **results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
