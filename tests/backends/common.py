"""What the reference writer and the backend tests share; imports no TensorFlow.

The models are built by the same functions on every backend; their weights
come from files written on TensorFlow (`make_reference`), or, for the
full-size `weights="imagenet"` case, from a checkpoint drawn from NumPy's
frozen legacy generator, so that both sides serve the same bytes without a
50 MB file in the reference.
"""

import contextlib
import hashlib
import json
import math
import os
import sys

import keras
import numpy as np

from keras_sknet import applications
from keras_sknet.weights import registry
from keras_sknet.weights.safetensors_io import save_safetensors

REFERENCE_VARIABLE = "KERAS_SKNET_BACKEND_REFERENCE"  # the directory make_reference wrote
OUTPUT_VARIABLE = "KERAS_SKNET_BACKEND_OUTPUT"  # where a backend leaves .keras files for TensorFlow
REQUIRE_VARIABLE = "KERAS_SKNET_REQUIRE_REFERENCE"  # "1": a missing reference fails instead of skipping
FORMAT = 3  # of the reference directory; make_reference and the tests must agree

TOLERANCE = 1e-5  # float32 forward parity with TensorFlow (issue 14)
GRADIENT_TOLERANCE = 1e-5  # absolute, on gradients of a mean squared error (values ~1e-2..1)
# A fit step's update, BatchNorm in training mode, is ill-conditioned in float32 (the batch
# statistics of 4 images; the SK attention's BatchNorm sees 4 numbers per channel), so two float32
# implementations cannot be held to each other by a fixed bound: each is held to the float64 step
# that make_reference computes. A backend's float32 update may sit at most UPDATE_ERROR_FACTOR
# times as far from float64 as TensorFlow's own float32 update does on the same machine (measured
# in the reference), and never has to beat UPDATE_ERROR_FLOOR (a few float32 roundings
# amplified by the BatchNorm of 4 samples). Measured on a Zen 3 (AVX2): TensorFlow oneDNN 1.2e-3,
# Eigen 1.2e-4, PyTorch 1.0e-4, JAX 1.0e-4 (before the two-pass variance of FusedBatchNorm,
# PyTorch was at 1.9e-2: Keras' E[x^2] - E[x]^2).
UPDATE_ERROR_FACTOR = 4.0
UPDATE_ERROR_FLOOR = 1e-4
ATTENTION_TOLERANCE = 1e-5
# mixed_bfloat16 against float32: bfloat16 keeps 8 bits of mantissa (relative step 2^-8 = 0.4%),
# and the error grows through the layers; bounded relative to the largest logit.
MIXED_PRECISION_TOLERANCE = 0.05

BATCH = 2
TRAIN_BATCH = 4
LEARNING_RATE = 0.1
IMAGENET_MODEL = "SKResNet18"
IMAGENET_INPUT = (64, 64, 3)
IMAGENET_SEED = 18


def sknet_tiny(**kwargs):
    """SK units on the CIFAR stem, 4 groups of 4 channels: the model for gradients, fit and analysis."""
    return applications.SKNet(
        (1, 1),
        stem="cifar",
        cardinality=4,
        bottleneck_width=4,
        min_dim=4,
        input_shape=(32, 32, 3),
        classes=10,
        classifier_activation=None,
        **kwargs,
    )


def shufflenet_sk(**kwargs):
    """The zoo's ShuffleNetV2SK 0.5x, at 64x64 and with 10 classes (0.4M parameters)."""
    return applications.ShuffleNetV2SK(
        0.5, input_shape=(64, 64, 3), classes=10, classifier_activation=None, **kwargs
    )


def sknet_timm(**kwargs):
    """A narrow SKNet on the ImageNet stem: small enough for a timm checkpoint in the reference."""
    return applications.SKNet(
        (1, 1),
        cardinality=4,
        bottleneck_width=4,
        min_dim=4,
        input_shape=(64, 64, 3),
        classes=10,
        classifier_activation=None,
        **kwargs,
    )


PYRAMID_INPUT = (41, 33, 3)  # odd sizes: the dilated stage's padding at borders that do not divide
PYRAMID_SEED = 19


def sknet_pyramid(**kwargs):
    """A narrow three-stage SKNet at `output_stride=8` (stage 3 dilated) as a feature pyramid, P1..P4."""
    backbone = applications.SKNet(
        (1, 1, 1),
        cardinality=4,
        bottleneck_width=4,
        min_dim=4,
        include_top=False,
        input_shape=(None, None, 3),
        output_stride=8,
        **kwargs,
    )
    return applications.feature_extractor(backbone)


# name -> (model function, the weights file the reference holds for `weights=`). Every model with
# Keras weights also has a whole-model `<name>.keras` file (ShuffleNetV2SK loads its weights from it).
MODELS = {
    "sknet_tiny": (sknet_tiny, ".weights.h5"),
    "shufflenet_sk": (shufflenet_sk, ".keras"),
    "sknet_timm": (sknet_timm, ".safetensors"),
}
KERAS_FILE_MODELS = tuple(name for name, (_, suffix) in MODELS.items() if suffix != ".safetensors")


def weights_file(name):
    return name + MODELS[name][1]


def randomize_batch_norms(model, seed):
    """Gives every BatchNorm non-trivial statistics and affine parameters, so that they are compared.

    The draws of `tests.conftest.randomize_batch_norms` from a `RandomState(seed)`:
    the same numbers on every backend, from a seed the reference files record.
    """
    from tests.helpers import randomize_batch_norms as randomize

    randomize(model, np.random.RandomState(seed))


def inputs(shape, seed, batch=BATCH):
    return np.random.RandomState(seed).normal(size=(batch,) + tuple(shape)).astype("float32")


def synthetic_checkpoint(shapes, seed=IMAGENET_SEED):
    """A timm-layout state dict drawn from NumPy's legacy generator, whose stream is frozen.

    Convolution weights are He-scaled normals, the classifier's are smaller
    (logits of order 1), BatchNorm statistics and affine parameters are
    non-trivial: the same bytes on every machine and backend.

    Args:
        shapes: `{timm key: shape}`.
        seed: of `np.random.RandomState`.

    Returns:
        `{timm key: float32 array}`.
    """
    rng = np.random.RandomState(seed)
    state = {}
    for key in sorted(shapes):
        shape = tuple(shapes[key])
        if key.endswith("running_var"):
            value = rng.uniform(0.5, 2.0, shape)
        elif key.endswith(("running_mean", "bias")):
            value = rng.normal(0.0, 0.1, shape)
        elif len(shape) == 1:  # a BatchNorm's weight
            value = rng.uniform(0.5, 1.5, shape)
        elif len(shape) == 2:  # the classifier, scaled so that logits are O(1) and softmax not saturated
            value = rng.normal(0.0, 0.15 / math.sqrt(shape[1]), shape)
        else:
            value = rng.normal(0.0, math.sqrt(2.0 / math.prod(shape[1:])), shape)
        state[key] = value.astype("float32")
    return state


def serve_checkpoint(root, model, state):
    """Lays `state` out as a Hugging Face Hub mirror at `root` (for HF_ENDPOINT=file://...).

    Returns:
        `(endpoint URI, sha256 of the served file)`.
    """
    config = registry.pretrained_config(model)
    path = os.path.join(root, config.hf_repo, "resolve", config.revision, config.filename)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    save_safetensors(path, state)
    with open(path, "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()
    return "file://" + os.path.abspath(root), digest


@contextlib.contextmanager
def environment(**variables):
    """Sets environment variables for the block and restores them after."""
    previous = {name: os.environ.get(name) for name in variables}
    os.environ.update(variables)
    try:
        yield
    finally:
        for name, value in previous.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


class _NoTensorFlow:
    """A meta-path finder under which `import tensorflow` fails, as where it is not installed."""

    def find_spec(self, name, path=None, target=None):
        if name == "tensorflow" or name.startswith("tensorflow."):
            raise ModuleNotFoundError(f"No module named {name!r} (hidden by the backend tests)", name=name)
        return None


@contextlib.contextmanager
def tensorflow_hidden():
    """On JAX and PyTorch, makes TensorFlow unimportable in the block, as on the GPU machines.

    For Keras' own optional uses: its serializer (`model.save()`, the layer
    test harness) probes `tf.available` to recognise `tf.TensorShape`, and so
    imports TensorFlow wherever it is installed; where it is not, Keras skips
    it. Does nothing on the TensorFlow backend.
    """
    if keras.backend.backend() == "tensorflow":
        yield
        return
    finder = _NoTensorFlow()
    sys.meta_path.insert(0, finder)
    try:
        yield
    finally:
        sys.meta_path.remove(finder)


def write_class_index(path):
    """A class index in keras.applications' format with made-up names (decode_predictions reads it)."""
    index = {str(i): [f"n{i:08d}", f"class_{i}"] for i in range(1000)}
    with open(path, "w") as f:
        json.dump(index, f)


def loss_and_gradients(model, x, y, training=False):
    """Mean squared error of `model(x, training=training)` against `y`, and its gradients.

    Returns:
        `(loss, [gradient of each trainable variable as NumPy])`.
    """
    backend = keras.backend.backend()
    y = keras.ops.convert_to_tensor(y)

    def loss_of(predictions):
        return keras.ops.mean(keras.ops.square(predictions - y))

    if backend == "tensorflow":
        import tensorflow as tf

        with tf.GradientTape() as tape:
            loss = loss_of(model(x, training=training))
        gradients = tape.gradient(loss, model.trainable_variables)
    elif backend == "jax":
        import jax

        trainable = [v.value for v in model.trainable_variables]
        non_trainable = [v.value for v in model.non_trainable_variables]

        def loss_fn(values):
            predictions, _ = model.stateless_call(values, non_trainable, x, training=training)
            return loss_of(predictions)

        loss, gradients = jax.jit(jax.value_and_grad(loss_fn))(trainable)
    elif backend == "torch":
        for variable in model.trainable_variables:
            variable.value.grad = None
        loss = loss_of(model(x, training=training))
        loss.backward()
        gradients = [variable.value.grad for variable in model.trainable_variables]
    else:
        raise ValueError(f"No gradient helper for Keras' {backend!r} backend")
    return float(keras.ops.convert_to_numpy(loss)), [keras.ops.convert_to_numpy(g) for g in gradients]


def fit_one_step(model, x, y):
    """One SGD step of `model.fit` (the backend's own train step); returns the loss."""
    model.compile(optimizer=keras.optimizers.SGD(LEARNING_RATE), loss="mse")
    history = model.fit(x, y, batch_size=len(x), epochs=1, shuffle=False, verbose=0)
    return history.history["loss"][0]


def update_error(before, after, after_float64):
    """How far a float32 step's update is from the float64 step's, relative to the largest change.

    Args:
        before: a variable's value before the step.
        after: its value after the float32 step.
        after_float64: its value after the same step in float64.

    Returns:
        `max |(after - before) - (after64 - before)| / max |after64 - before|`.
    """
    before, after, after_float64 = (np.asarray(v, "float64") for v in (before, after, after_float64))
    step = np.abs(after_float64 - before).max()
    assert step > 0, "the float64 step does not change this variable"
    return float(np.abs(after - after_float64).max() / step)


def max_abs_diff(a, b):
    a, b = np.asarray(a, "float64"), np.asarray(b, "float64")
    assert a.shape == b.shape, (a.shape, b.shape)
    return float(np.max(np.abs(a - b))) if a.size else 0.0
