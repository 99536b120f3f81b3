"""Writes TensorFlow's side of the backend parity tests into a directory.

    python -m tests.backends.make_reference DIR        # on Keras' TensorFlow backend

The JAX and PyTorch tests (`KERAS_BACKEND=jax KERAS_SKNET_BACKEND_REFERENCE=DIR
python -m pytest tests/backends`) compare against these files and need no
TensorFlow. DIR receives (about 7 MB):

- `manifest.json`: versions, parameter and multiply-add counts (TensorFlow's
  traced graph), variable paths, the timm keys and shapes of the
  `weights="imagenet"` case with its checkpoint's sha256, decoded top-5;
- `arrays.npz`: inputs and outputs of every model, gradients and the weights
  after one `fit` step, attention and scale-experiment read-outs,
  `preprocess_input` of raw images, the feature pyramid of a dilated SKNet;
- `sknet_tiny.weights.h5`, `sknet_tiny.keras`, `shufflenet_sk.keras` (saved
  here, on TensorFlow), `sknet_timm.safetensors` (a timm-layout checkpoint of
  a narrow SKNet);
- `imagenet_class_index.json` (made-up names, for `decode_predictions`).
"""

import argparse
import json
import os
import sys
import tempfile

import keras
import numpy as np

from keras_sknet import applications, weights
from keras_sknet.analysis import attention_weights, scale_experiment
from keras_sknet.applications import decode_predictions, preprocess_input
from keras_sknet.utils import count_flops, count_params
from keras_sknet.version import __version__
from tests.backends import common

ATTENTION_MODELS = ("sknet_tiny", "shufflenet_sk")
SCALES = (1.0, 1.5)


def _model_reference(name, index, directory, manifest, arrays):
    build, suffix = common.MODELS[name]
    keras.utils.set_random_seed(index)
    model = build()
    common.randomize_batch_norms(model, seed=index)
    x = common.inputs(model.input_shape[1:], seed=100 + index)
    arrays[f"{name}.inputs"] = x
    arrays[f"{name}.outputs"] = model.predict(x, verbose=0)
    path = os.path.join(directory, common.weights_file(name))
    if suffix == ".safetensors":
        weights.save_safetensors(path, weights.timm_state_dict(model))
    else:
        model.save(os.path.join(directory, f"{name}.keras"))
        if suffix == ".weights.h5":
            model.save_weights(path)
    manifest["models"][name] = {
        "input_shape": list(model.input_shape[1:]),
        "params": count_params(model),
        "flops": count_flops(model, method="graph"),
    }
    if name in ATTENTION_MODELS:
        for unit, values in attention_weights(model, x).items():
            arrays[f"{name}.attention.{unit}"] = values
        report = scale_experiment(model, x, scales=SCALES)
        for unit in report.units:
            arrays[f"{name}.scales.{unit}"] = report.differences[unit]
    return model, path


def _training_reference(model, weights_path, manifest, arrays):
    """Gradients (inference mode) and one fit step (training mode) of sknet_tiny, from the saved weights."""
    x = common.inputs(model.input_shape[1:], seed=200, batch=common.TRAIN_BATCH)
    y = np.random.RandomState(201).normal(size=(common.TRAIN_BATCH, 10)).astype("float32")
    arrays["train.inputs"], arrays["train.targets"] = x, y
    model.load_weights(weights_path)
    loss, gradients = common.loss_and_gradients(model, x, y)
    for i, gradient in enumerate(gradients):
        arrays[f"train.gradient.{i}"] = gradient
    model.load_weights(weights_path)
    before = [keras.ops.convert_to_numpy(v) for v in model.weights]
    fit_loss = common.fit_one_step(model, x, y)
    after = [keras.ops.convert_to_numpy(v) for v in model.weights]
    for i, value in enumerate(after):
        arrays[f"train.after_fit.{i}"] = value
    after_float64 = _fit_step_in_float64(model, weights_path, x, y)
    trainable = {v.path for v in model.trainable_variables}
    errors = []
    for i, variable in enumerate(model.weights):
        if variable.path in trainable:
            arrays[f"train.after_fit_float64.{i}"] = after_float64[i]
            errors.append(common.update_error(before[i], after[i], after_float64[i]))
    manifest["train"] = {
        "loss": loss,
        "fit_loss": fit_loss,
        "trainable": [v.path for v in model.trainable_variables],
        "weights": [v.path for v in model.weights],
        # How far TensorFlow's own float32 step is from the float64 one, on this machine's kernels:
        # the yardstick for the other backends' float32 steps (common.update_error).
        "fit_float32_update_error": max(errors),
    }


def _fit_step_in_float64(model, weights_path, x, y):
    """The same fit step computed in float64 (the ground truth the float32 steps approximate)."""
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("float64")
    try:
        model64 = common.MODELS["sknet_tiny"][0]()
        model64.load_weights(weights_path)
        assert [v.path for v in model64.weights] == [v.path for v in model.weights]
        common.fit_one_step(model64, x.astype("float64"), y.astype("float64"))
        return [keras.ops.convert_to_numpy(v) for v in model64.weights]
    finally:
        keras.config.set_dtype_policy(previous)


def _imagenet_reference(directory, manifest, arrays):
    """`weights="imagenet"` end to end from a local Hub mirror serving a synthetic checkpoint."""
    name = common.IMAGENET_MODEL
    shapes = {
        key: list(value.shape) for key, value in weights.timm_state_dict(applications.SKResNet18()).items()
    }
    state = common.synthetic_checkpoint(shapes)
    class_index = os.path.join(directory, "imagenet_class_index.json")
    common.write_class_index(class_index)
    images = np.random.RandomState(300).randint(0, 256, size=(common.BATCH,) + common.IMAGENET_INPUT)
    images = images.astype("uint8")
    x = preprocess_input(images.astype("float32"))
    with tempfile.TemporaryDirectory() as tmp:
        endpoint, digest = common.serve_checkpoint(os.path.join(tmp, "hub"), name, state)
        with common.environment(HF_ENDPOINT=endpoint, KERAS_HOME=os.path.join(tmp, "keras_home")):
            model = getattr(applications, name)(weights="imagenet", input_shape=common.IMAGENET_INPUT)
            probabilities = model.predict(x, verbose=0)
    arrays["imagenet.images"], arrays["imagenet.inputs"] = images, x
    arrays["imagenet.outputs"] = probabilities
    manifest["imagenet"] = {
        "model": name,
        "shapes": shapes,
        "checkpoint_sha256": digest,
        "params": count_params(model),
        "top5": [
            [list(entry[:2]) for entry in row] for row in decode_predictions(probabilities, 5, class_index)
        ],
    }


def _pyramid_reference(manifest, arrays):
    """The feature pyramid of a dilated (output_stride=8) SKNet, from a synthetic timm checkpoint."""
    shapes = {
        key: list(value.shape) for key, value in weights.timm_state_dict(common.sknet_pyramid()).items()
    }
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "pyramid.safetensors")
        weights.save_safetensors(path, common.synthetic_checkpoint(shapes, seed=common.PYRAMID_SEED))
        pyramid = common.sknet_pyramid(weights=path)
    x = common.inputs(common.PYRAMID_INPUT, seed=400, batch=1)
    arrays["pyramid.inputs"] = x
    for level, value in pyramid.predict(x, verbose=0).items():
        arrays[f"pyramid.{level}"] = value
    manifest["pyramid"] = {"shapes": shapes}


def make_reference(directory):
    """Writes the reference files into `directory` (created if needed); returns its manifest.

    Args:
        directory: where to write; existing files of the same names are replaced.

    Returns:
        The manifest, as written to `manifest.json`.
    """
    if keras.backend.backend() != "tensorflow":
        raise RuntimeError(
            "The reference is TensorFlow's side of the comparison: run "
            "`KERAS_BACKEND=tensorflow python -m tests.backends.make_reference DIR`. "
            f"Received: Keras backend {keras.backend.backend()!r}"
        )
    import tensorflow as tf

    os.makedirs(directory, exist_ok=True)
    manifest = {
        "format": common.FORMAT,
        "keras": keras.__version__,
        "tensorflow": tf.__version__,
        "keras_sknet": __version__,
        "models": {},
    }
    arrays = {}
    for index, name in enumerate(common.MODELS):
        model, path = _model_reference(name, index, directory, manifest, arrays)
        if name == "sknet_tiny":
            _training_reference(model, path, manifest, arrays)
    _imagenet_reference(directory, manifest, arrays)
    _pyramid_reference(manifest, arrays)
    np.savez_compressed(os.path.join(directory, "arrays.npz"), **arrays)
    with open(os.path.join(directory, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1)
    return manifest


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m tests.backends.make_reference", description=__doc__)
    parser.add_argument("directory", help="where to write the reference files")
    args = parser.parse_args(argv)
    make_reference(args.directory)
    size = sum(os.path.getsize(os.path.join(args.directory, f)) for f in os.listdir(args.directory))
    print(f"Wrote the TensorFlow reference to {args.directory} ({size / 1e6:.1f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
