"""Synthetic classes that make checks on random-weight models meaningful.

A randomly initialised network tells nothing apart, so a quantized copy that
"agrees" with it proves little. `class_images` draws images whose class sets
their colour and stripe direction, and `fit_classifier` fits the model's
classifier to them on its frozen features (ridge regression): the float model
then separates the classes, and an int8 export must agree with it on held-out
images. The export tests, the recipe readers (tests/users) and benchmarks/bench_export.py and
bench_peers.py use both.
"""

import keras
import numpy as np

from keras_sknet.utils.imagenet import preprocess_input

NUM_CLASSES = 10


def class_images(count, size, seed=0, num_classes=NUM_CLASSES):
    """Images of `num_classes` synthetic classes.

    Args:
        count: how many images.
        size: their height and width.
        seed: the seed of the labels and the noise (the class palette is fixed).
        num_classes: how many classes.

    Returns:
        `(images, labels)`: float32 RGB in [0, 255] of shape (count, size, size, 3), and ints.

    Example:
        >>> images, labels = class_images(4, size=32)
        >>> images.shape, labels.shape
        ((4, 32, 32, 3), (4,))
    """
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, num_classes, count)
    palette = np.random.default_rng(123).uniform(30, 225, (num_classes, 3))
    yy, xx = np.mgrid[:size, :size] / size
    angles = np.pi * labels / num_classes
    stripes = np.sin(6 * np.pi * (xx * np.cos(angles)[:, None, None] + yy * np.sin(angles)[:, None, None]))
    images = (
        palette[labels][:, None, None, :]
        + 40 * stripes[..., None]
        + rng.normal(0, 20, (count, size, size, 3))
    )
    return np.clip(images, 0, 255).astype("float32"), labels


def fit_classifier(model, images, labels, num_classes=NUM_CLASSES, batch_size=16):
    """Fits the first `num_classes` outputs of the model's `predictions` layer to `labels`.

    Ridge regression of centred one-hot targets on the features that feed the
    classifier (inputs passed through `preprocess_input`). Outputs beyond
    `num_classes` (e.g. the other 990 of an ImageNet head) get zero weights and
    a bias of -8, so they never win.

    Args:
        model: a classifier whose last dense layer is named "predictions".
        images: RGB in [0, 255], shaped as the model's input.
        labels: ints in [0, num_classes).
        num_classes: the synthetic classes.
        batch_size: for computing the features.
    """
    head = model.get_layer("predictions")
    features = keras.Model(model.inputs, head.input).predict(
        preprocess_input(images), batch_size=batch_size, verbose=0
    )
    features = np.concatenate([features, np.ones((len(features), 1))], axis=1).astype("float64")
    targets = 8.0 * (np.eye(num_classes)[labels] - 1.0 / num_classes)
    gram = features.T @ features + 1e-2 * np.eye(features.shape[1])
    weights = np.linalg.solve(gram, features.T @ targets)
    kernel = np.zeros(head.kernel.shape, "float32")
    bias = np.full(head.bias.shape, -8.0, "float32")
    kernel[:, :num_classes], bias[:num_classes] = weights[:-1], weights[-1]
    head.kernel.assign(kernel)
    head.bias.assign(bias)


def distinct_batch_norm_offsets(model, seed=0, scale=0.01):
    """Gives every BatchNorm small offsets of its own, as any trained model has.

    A new model's BatchNorms all have zero offsets, so every convolution they fold into has
    the same all-zero bias, which tf2onnx stores once and shares. ONNX Runtime's int8 graph then
    differs from a trained model's: the float grouped convolutions (`keras_sknet.export.onnx`)
    read that shared bias through a DequantizeLinear and lose ONNX Runtime's blocked layout
    (benchmarks/bench_onnx_int8.py's SKNet-50 on a Zen 4: int8 1.52x / 1.38x its float32 at
    batch 1 / 16 so, 1.58x / 1.78x with offsets of their own). The offsets are small, so the
    features (and `fit_classifier`) hardly move.

    Args:
        model: any Keras model.
        seed: the random offsets' seed.
        scale: their standard deviation.
    """
    rng = np.random.default_rng(seed)
    for weight in model.weights:
        if weight.path.rsplit("/", 1)[-1] == "beta":
            weight.assign(rng.normal(0.0, scale, weight.shape).astype(weight.dtype))
