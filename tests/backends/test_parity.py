"""JAX and PyTorch against TensorFlow: the same files give the same numbers, without TensorFlow.

Every expected value comes from the reference directory TensorFlow wrote
(`python -m tests.backends.make_reference DIR`, see README.md here): outputs
of zoo models loaded through every form of `weights=`, `.keras` files saved
on TensorFlow, gradients and the weights after a `fit` step, the attention
read-out and the scale experiment, parameter and multiply-add counts (the
latter from TensorFlow's traced graph). On TensorFlow itself these tests are
skipped: `test_tensorflow_side.py` writes the reference and runs them in a
JAX and a PyTorch subprocess.
"""

import os
import sys

import keras
import numpy as np
import pytest

from keras_sknet import applications, weights
from keras_sknet.analysis import attention_weights, scale_experiment
from keras_sknet.applications import decode_predictions, preprocess_input
from keras_sknet.layers import SKConv
from keras_sknet.utils import count_flops, count_params
from tests.backends import common
from tests.backends.make_reference import ATTENTION_MODELS, SCALES

BACKEND = keras.backend.backend()

pytestmark = [
    pytest.mark.skipif(
        BACKEND == "tensorflow",
        reason="compares JAX/PyTorch with TensorFlow's reference (on TensorFlow: test_tensorflow_side.py)",
    ),
    # Every test here compares numbers with TensorFlow's: rerun with the instruction sets capped.
    pytest.mark.numerics,
]


@pytest.fixture(scope="module")
def loaded(reference):
    """`name -> model` built by its model function with `weights=` the reference's file (once per name)."""
    models = {}

    def get(name):
        if name not in models:
            build, _ = common.MODELS[name]
            models[name] = build(weights=reference.path(common.weights_file(name)))
        elif name == "sknet_tiny":  # the training tests change it: back to the saved weights
            models[name].load_weights(reference.path(common.weights_file(name)))
        return models[name]

    return get


def predict(model, x):
    return model.predict(x, batch_size=len(x), verbose=0)


@pytest.mark.parametrize("name", list(common.MODELS))
def test_forward_matches_tensorflow(reference, loaded, measured, name):
    """`weights=` a .weights.h5, a .keras or a timm .safetensors file saved on TensorFlow."""
    diff = common.max_abs_diff(
        predict(loaded(name), reference[f"{name}.inputs"]), reference[f"{name}.outputs"]
    )
    measured[f"forward/{name}"] = diff
    assert diff <= common.TOLERANCE


@pytest.mark.parametrize("name", common.KERAS_FILE_MODELS)
def test_keras_file_saved_on_tensorflow(reference, measured, name):
    model = keras.models.load_model(reference.path(f"{name}.keras"))
    assert any(isinstance(layer, SKConv) for layer in model._flatten_layers())
    diff = common.max_abs_diff(predict(model, reference[f"{name}.inputs"]), reference[f"{name}.outputs"])
    measured[f"keras_file/{name}"] = diff
    assert diff <= common.TOLERANCE


def test_timm_checkpoint_as_pytorch_file(reference, tmp_path):
    """`weights=` a PyTorch state dict (read with torch.load(weights_only=True))."""
    torch = pytest.importorskip("torch")
    state = weights.read_checkpoint(reference.path("sknet_timm.safetensors"))
    path = str(tmp_path / "sknet_timm.pth")
    torch.save({key: torch.from_numpy(value) for key, value in state.items()}, path)
    model = common.sknet_timm(weights=path)
    diff = common.max_abs_diff(
        predict(model, reference["sknet_timm.inputs"]), reference["sknet_timm.outputs"]
    )
    assert diff <= common.TOLERANCE


def test_imagenet_weights_preprocessing_and_decoding(reference, measured, tmp_path):
    """`weights="imagenet"` from a local Hub mirror, preprocess_input, decode_predictions with a local index."""
    expected = reference.manifest["imagenet"]
    state = common.synthetic_checkpoint(expected["shapes"])
    endpoint, digest = common.serve_checkpoint(str(tmp_path / "hub"), expected["model"], state)
    assert digest == expected["checkpoint_sha256"]  # the very bytes TensorFlow loaded
    with common.environment(HF_ENDPOINT=endpoint, KERAS_HOME=str(tmp_path / "keras_home")):
        model = getattr(applications, expected["model"])(
            weights="imagenet", input_shape=common.IMAGENET_INPUT
        )

    images = reference["imagenet.images"].astype("float32")
    x = preprocess_input(images)
    assert isinstance(x, np.ndarray)
    assert common.max_abs_diff(x, reference["imagenet.inputs"]) <= 1e-6
    on_backend = preprocess_input(keras.ops.convert_to_tensor(images))
    assert common.max_abs_diff(keras.ops.convert_to_numpy(on_backend), reference["imagenet.inputs"]) <= 1e-6

    probabilities = predict(model, x)
    diff = common.max_abs_diff(probabilities, reference["imagenet.outputs"])
    measured["forward/SKResNet18_imagenet"] = diff
    assert diff <= common.TOLERANCE
    decoded = decode_predictions(
        probabilities, top=5, class_index_path=reference.path("imagenet_class_index.json")
    )
    assert [[list(entry[:2]) for entry in row] for row in decoded] == expected["top5"]
    assert count_params(model) == expected["params"]


def test_dilated_feature_pyramid_matches_tensorflow(reference, measured, tmp_path):
    """`feature_extractor` of an `output_stride=8` SKNet at an odd size, and its `.keras` round trip."""
    path = str(tmp_path / "pyramid.safetensors")
    state = common.synthetic_checkpoint(reference.manifest["pyramid"]["shapes"], seed=common.PYRAMID_SEED)
    weights.save_safetensors(path, state)
    pyramid = common.sknet_pyramid(weights=path)
    x = reference["pyramid.inputs"]
    outputs = pyramid.predict(x, verbose=0)
    assert sorted(outputs) == ["P1", "P2", "P3", "P4"]
    for level, value in outputs.items():
        expected = reference[f"pyramid.{level}"]
        # Relative to the level's largest value: the maps grow to ~20 (the logits' bound is for O(1)).
        diff = common.max_abs_diff(value, expected) / float(np.max(np.abs(expected)))
        measured[f"pyramid/{level}"] = diff
        assert diff <= common.TOLERANCE, level
    saved = str(tmp_path / "pyramid.keras")
    with common.tensorflow_hidden():  # Keras' serializer imports TensorFlow wherever it is installed
        pyramid.save(saved)
        loaded = keras.models.load_model(saved)
    for level, value in loaded.predict(x, verbose=0).items():
        assert common.max_abs_diff(value, outputs[level]) <= 1e-6, level


@pytest.mark.parametrize("name", list(common.MODELS))
def test_counts_match_tensorflow(reference, loaded, name):
    """count_params, and count_flops from the layers against TensorFlow's traced graph."""
    model = loaded(name)
    assert count_params(model) == reference.manifest["models"][name]["params"]
    assert count_flops(model) == reference.manifest["models"][name]["flops"]


def test_gradients_match_tensorflow(reference, loaded, measured):
    """Gradients of every weight through every layer (BatchNorm with its moving statistics)."""
    model = loaded("sknet_tiny")
    expected = reference.manifest["train"]
    assert [v.path for v in model.trainable_variables] == expected["trainable"]
    loss, gradients = common.loss_and_gradients(model, reference["train.inputs"], reference["train.targets"])
    assert abs(loss - expected["loss"]) <= common.TOLERANCE * max(1.0, abs(expected["loss"]))
    diffs = [common.max_abs_diff(g, reference[f"train.gradient.{i}"]) for i, g in enumerate(gradients)]
    measured["gradients/sknet_tiny"] = max(diffs)
    assert max(diffs) <= common.GRADIENT_TOLERANCE
    assert all(np.abs(g).max() > 0 for g in gradients)  # every variable is reached


def test_fit_step_matches_tensorflow(reference, loaded, measured):
    """One step of this backend's `fit` (jitted on JAX, eager on PyTorch), BatchNorm in training mode.

    The update is ill-conditioned in float32, so it is held to the float64 step, as
    closely as TensorFlow's own float32 step is (see common.UPDATE_ERROR_FACTOR).
    """
    model = loaded("sknet_tiny")
    expected = reference.manifest["train"]
    assert [v.path for v in model.weights] == expected["weights"]
    before = [keras.ops.convert_to_numpy(v) for v in model.weights]
    loss = common.fit_one_step(model, reference["train.inputs"], reference["train.targets"])
    assert abs(loss - expected["fit_loss"]) <= common.TOLERANCE * max(1.0, abs(expected["fit_loss"]))
    trainable = {v.path for v in model.trainable_variables}
    statistics, errors = [], []
    for i, (variable, start) in enumerate(zip(model.weights, before)):
        after = keras.ops.convert_to_numpy(variable)
        if variable.path in trainable:
            errors.append(common.update_error(start, after, reference[f"train.after_fit_float64.{i}"]))
        else:  # moving mean and variance: from the batch statistics of the forward pass
            statistics.append(common.max_abs_diff(after, reference[f"train.after_fit.{i}"]))
    bound = common.UPDATE_ERROR_FACTOR * max(expected["fit_float32_update_error"], common.UPDATE_ERROR_FLOOR)
    measured["fit_step/moving_statistics"] = max(statistics)
    measured["fit_step/update_error_vs_float64"] = max(errors)
    measured["fit_step/tensorflow_update_error_vs_float64"] = expected["fit_float32_update_error"]
    assert max(statistics) <= common.TOLERANCE
    assert max(errors) <= bound, (
        f"{BACKEND}'s float32 update is {max(errors):.2e} from float64 (relative); TensorFlow's is "
        f"{expected['fit_float32_update_error']:.2e}, bound {bound:.2e}"
    )


@pytest.mark.parametrize("name", ATTENTION_MODELS)
def test_attention_read_out_matches_tensorflow(reference, loaded, measured, name):
    model = loaded(name)
    x = reference[f"{name}.inputs"]
    attention = attention_weights(model, x)
    units = sorted(key.split(".", 2)[2] for key in reference.arrays if key.startswith(f"{name}.attention."))
    assert sorted(attention) == units and units
    diff = max(common.max_abs_diff(attention[u], reference[f"{name}.attention.{u}"]) for u in units)
    measured[f"attention/{name}"] = diff
    assert diff <= common.ATTENTION_TOLERANCE
    report = scale_experiment(model, x, scales=SCALES)
    for unit in report.units:
        assert common.max_abs_diff(report.differences[unit], reference[f"{name}.scales.{unit}"]) <= 1e-5


def test_mixed_bfloat16_forward_and_fit_step(reference, measured):
    """mixed_bfloat16: bfloat16 compute, float32 variables and logits, close to float32; fit takes a step."""
    keras.config.set_dtype_policy("mixed_bfloat16")  # the suite's fixture restores float32
    model = common.sknet_tiny(weights=reference.path("sknet_tiny.weights.h5"))
    assert model.get_layer("conv2_block1").compute_dtype == "bfloat16"
    assert all(v.dtype == "float32" for v in model.weights)
    x, expected = reference["sknet_tiny.inputs"], reference["sknet_tiny.outputs"]
    logits = predict(model, x)
    assert logits.dtype == np.float32
    error = common.max_abs_diff(logits, expected) / float(np.abs(expected).max())
    measured["mixed_bfloat16/relative"] = error
    assert error <= common.MIXED_PRECISION_TOLERANCE
    before = [keras.ops.convert_to_numpy(v) for v in model.trainable_variables]
    loss = common.fit_one_step(model, reference["train.inputs"], reference["train.targets"])
    assert np.isfinite(loss)
    assert (
        abs(loss - reference.manifest["train"]["fit_loss"]) <= 0.1 * reference.manifest["train"]["fit_loss"]
    )
    after = [keras.ops.convert_to_numpy(v) for v in model.trainable_variables]
    assert all(np.isfinite(a).all() for a in after)
    assert sum(not np.array_equal(a, b) for a, b in zip(after, before)) == len(before)


def test_keras_file_saved_here_loads_back(reference, tmp_path):
    """A .keras file saved on this backend; with $KERAS_SKNET_BACKEND_OUTPUT set, TensorFlow loads it next.

    The model is not compiled: Keras saves a model compiled on PyTorch with its
    optimizer as `keras.src.backend.torch.optimizers...`, which imports torch
    wherever the file is loaded.
    """
    model = common.sknet_tiny(weights=reference.path("sknet_tiny.weights.h5"))
    common.randomize_batch_norms(model, seed=7)  # weights of its own, not those of TensorFlow's file
    out = os.environ.get(common.OUTPUT_VARIABLE) or str(tmp_path)
    os.makedirs(out, exist_ok=True)
    path = os.path.join(out, f"sknet_tiny-{BACKEND}.keras")
    with common.tensorflow_hidden():  # Keras' serializer imports TensorFlow wherever it is installed
        model.save(path)
    x = reference["sknet_tiny.inputs"]
    outputs = predict(model, x)
    np.savez(os.path.join(out, f"sknet_tiny-{BACKEND}.npz"), inputs=x, outputs=outputs)
    assert common.max_abs_diff(outputs, reference["sknet_tiny.outputs"]) > common.TOLERANCE  # not TF's file
    assert common.max_abs_diff(predict(keras.models.load_model(path), x), outputs) <= 1e-6


def test_what_needs_tensorflow_says_so():
    """The exporters, oneDNN's query and the graph count name the backend and the fix; nothing imports TF."""
    from keras_sknet import platform

    with pytest.raises(ImportError, match=f"runs Keras on '{BACKEND}'.*KERAS_BACKEND=tensorflow"):
        import keras_sknet.export  # noqa: F401
    with pytest.raises(RuntimeError, match=f"runs Keras on '{BACKEND}'.*KERAS_BACKEND=tensorflow"):
        platform.onednn_enabled()
    with pytest.raises(RuntimeError, match=f"runs Keras on '{BACKEND}'.*KERAS_BACKEND=tensorflow"):
        count_flops(common.sknet_tiny(), method="graph")
    assert f"Keras backend: {BACKEND}" in platform.describe()
    assert "tensorflow" not in sys.modules
