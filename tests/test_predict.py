"""ZooModel: `predict` of one in-memory batch and eager inference calls take compiled shortcuts.

Each shortcut must give what Keras' own `predict` / `__call__` give: the same
outputs for every input form, the same callbacks in the same order with the same
logs, the same progress bar; the rest falls back to Keras.
"""

import os
import re
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_sknet import applications
from keras_sknet.applications.zoo_model import ZooModel
from tests.helpers import missing_backends, subprocess_environment

SIZE = 32


def tiny(**kwargs):
    return applications.SKNet((1, 1), input_shape=(SIZE, SIZE, 3), classes=5, **kwargs)


@pytest.fixture(scope="module")
def model():
    return tiny()


def images(batch, dtype="float32"):
    return np.random.default_rng(batch).normal(size=(batch, SIZE, SIZE, 3)).astype(dtype)


def keras_predict(model, x, **kwargs):
    return keras.Model.predict(model, x, **kwargs)


def test_zoo_functions_return_zoo_models(model):
    assert isinstance(model, ZooModel) and isinstance(model, keras.Model)
    assert isinstance(applications.SKNet26(weights=None, input_shape=(64, 64, 3), classes=3), ZooModel)


@pytest.mark.parametrize(
    "form",
    ["numpy", "numpy float64", "numpy uint8", "tensor", "list"],
)
@pytest.mark.parametrize("batch", [1, 3])
def test_one_batch_predict_is_keras_predict(model, form, batch):
    x = images(batch, "float64" if form == "numpy float64" else "float32")
    if form == "numpy uint8":
        x = (np.abs(x) * 60).astype("uint8")
    inputs = {
        "tensor": lambda: tf.constant(x),
        "list": lambda: [x],
    }.get(form, lambda: x)()
    assert model._one_batch(inputs, None, None) is not None  # the shortcut is taken
    ours = model.predict(inputs, verbose=0)
    assert isinstance(ours, np.ndarray) and ours.dtype == np.float32
    np.testing.assert_allclose(ours, keras_predict(model, inputs, verbose=0), rtol=1e-5, atol=1e-6)


def test_inputs_keras_refuses_are_refused(model):
    """A dict for a single-input functional model: Keras' traced call refuses it, and so does ours."""
    x = {model.layers[0].name: images(1)}
    with pytest.raises(ValueError, match="structure of `inputs`"):
        keras_predict(model, x, verbose=0)
    with pytest.raises(ValueError, match="structure of `inputs`"):
        model.predict(x, verbose=0)


@pytest.mark.parametrize(
    "x,kwargs",
    [
        (images(5), dict(batch_size=2)),  # more than one batch
        (images(40), {}),  # more than the default batch_size (32)
        (images(4), dict(steps=1)),
        (tf.data.Dataset.from_tensor_slices(images(3)).batch(2), {}),
    ],
    ids=["batch_size", "default batch_size", "steps", "dataset"],
)
def test_other_inputs_go_through_keras(model, x, kwargs):
    assert model._one_batch(x, kwargs.get("batch_size"), kwargs.get("steps")) is None
    np.testing.assert_allclose(
        model.predict(x, verbose=0, **kwargs), keras_predict(model, x, verbose=0, **kwargs), atol=1e-6
    )


class Recorder(keras.callbacks.Callback):
    """Every predict callback with its arguments, outputs as arrays."""

    def __init__(self):
        super().__init__()
        self.calls = []

    def _record(self, name, *args):
        self.calls.append((name, *[keras.tree.map_structure(np.asarray, arg) for arg in args]))

    def on_predict_begin(self, logs=None):
        self._record("begin", logs)

    def on_predict_batch_begin(self, batch, logs=None):
        self._record("batch_begin", batch, logs)

    def on_predict_batch_end(self, batch, logs=None):
        self._record("batch_end", batch, logs)

    def on_predict_end(self, logs=None):
        self._record("end", logs)


def test_callbacks_and_progress_bar_as_keras(model, capsys):
    x = images(2)
    ours, theirs = Recorder(), Recorder()
    model.predict(x, callbacks=[ours], verbose=1)
    our_bar = capsys.readouterr().out
    keras_predict(model, x, callbacks=[theirs], verbose=1)
    their_bar = capsys.readouterr().out
    assert [c[:2] for c in ours.calls] == [c[:2] for c in theirs.calls]
    assert [c[0] for c in ours.calls] == ["begin", "batch_begin", "batch_end", "end"]
    for our_call, their_call in zip(ours.calls, theirs.calls):
        keras.tree.map_structure(
            lambda a, b: np.testing.assert_allclose(a, b, atol=1e-6), our_call[1:], their_call[1:]
        )
    assert ours.model is model and ours.params == theirs.params

    def final_line(text):
        # Keras redraws the bar only when 50 ms have passed since the last draw, so how many
        # times it is drawn depends on the machine's speed; what the user is left with is the
        # last redraw after the final carriage return.
        last = text.replace("\b", "").split("\r")[-1]
        return re.sub(r"\d+(\.\d+)?(ms|s|us)", "T", last)

    assert "1/1" in final_line(our_bar) and final_line(our_bar) == final_line(their_bar)


def test_eager_call_is_compiled_and_the_same(model):
    for batch in (1, 2, 3, 2):
        x = images(batch)
        np.testing.assert_allclose(model(x), keras.Model.__call__(model, x), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(
            model(tf.constant(x), training=False), keras.Model.__call__(model, x), rtol=1e-5, atol=1e-6
        )
    # One trace for the first shape, one relaxed to any batch; not one per call.
    assert model.__dict__["_zoo_inference"].function.experimental_get_tracing_count() == 2


def test_training_calls_and_tapes_are_keras_own():
    model = tiny()
    x = tf.constant(images(2))
    assert model._inference_function((x,), {"training": True}) is None
    with tf.GradientTape() as tape:
        tape.watch(x)
        assert model._inference_function((x,), {}) is None
        y = model(x)
    assert tape.gradient(y, x) is not None
    # Inside a traced function (exports, fit, a user's tf.function) the model is traced as Keras does.
    traced = tf.function(lambda t: model(t)).get_concrete_function(tf.TensorSpec((None, SIZE, SIZE, 3)))
    assert "_zoo_inference" not in model.__dict__
    assert model._inference_function((x,), {}) is not None
    np.testing.assert_allclose(traced(x), keras.Model.__call__(model, x), rtol=1e-5, atol=1e-6)


def test_eager_call_follows_quantize_and_run_eagerly():
    model = tiny()
    x = images(2)
    model(x)  # traced with the float32 variables
    model.quantize("int8")
    np.testing.assert_allclose(model(x), keras.Model.__call__(model, x), rtol=1e-5, atol=1e-6)
    model.compile(run_eagerly=True)
    assert model._inference_function((x,), {}) is None


def test_fit_evaluate_then_predict():
    model = tiny()
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    x, y = images(4), np.arange(4) % 5
    model.fit(x, y, batch_size=2, epochs=1, verbose=0)
    model.evaluate(x, y, verbose=0)
    np.testing.assert_allclose(model.predict(x, verbose=0), keras_predict(model, x, verbose=0), atol=1e-6)
    np.testing.assert_allclose(model(x), model.predict(x, verbose=0), rtol=1e-5, atol=1e-6)


def test_mixed_precision():
    keras.config.set_dtype_policy("mixed_bfloat16")
    model = tiny()
    x = images(2)
    ours = model.predict(x, verbose=0)
    np.testing.assert_array_equal(ours, keras_predict(model, x, verbose=0))
    np.testing.assert_allclose(model(x), keras.Model.__call__(model, x), atol=1e-2)


def test_keras_file_round_trip_and_older_files(model, tmp_path):
    x = images(2)
    model.save(tmp_path / "zoo.keras")
    loaded = keras.saving.load_model(tmp_path / "zoo.keras")
    assert isinstance(loaded, ZooModel)
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-6)
    # A file saved before ZooModel: Keras' functional model, which loads as one.
    keras.Model(model.inputs, model.outputs, name=model.name).save(tmp_path / "older.keras")
    older = keras.saving.load_model(tmp_path / "older.keras")
    assert type(older).__name__ == "Functional"
    np.testing.assert_allclose(older.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-6)


def test_models_around_the_backbone():
    backbone = applications.SKNet((1, 1), input_shape=(SIZE, SIZE, 3), include_top=False, pooling="avg")
    head = keras.layers.Dense(3)
    sequential = keras.Sequential([backbone, head])
    x = images(2)
    expected = head(keras.Model.__call__(backbone, x))
    np.testing.assert_allclose(sequential.predict(x, verbose=0), expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(sequential(x), expected, rtol=1e-5, atol=1e-5)
    inputs = keras.Input((SIZE, SIZE, 3))
    functional = keras.Model(inputs, head(backbone(inputs)))  # a user's model: Keras' own predict
    np.testing.assert_allclose(functional.predict(x, verbose=0), expected, rtol=1e-5, atol=1e-5)


OTHER_BACKEND = """
import sys
import keras
import numpy as np
from keras_sknet import applications
model = applications.SKNet((1, 1), input_shape=(32, 32, 3), classes=5)
assert type(model).__name__ == "ZooModel"
x = np.random.default_rng(0).normal(size=(2, 32, 32, 3)).astype("float32")
expected = keras.ops.convert_to_numpy(keras.Model.__call__(model, x))
for ours in (model.predict(x, verbose=0), model.predict_on_batch(x), keras.ops.convert_to_numpy(model(x))):
    np.testing.assert_allclose(ours, expected, rtol=1e-5, atol=1e-6)
assert "tensorflow" not in sys.modules, "TensorFlow was imported"
print("ok")
"""


@pytest.mark.parametrize("backend", ["jax", "torch"])
def test_other_backends_run_keras_own_paths(backend):
    """On JAX and PyTorch ZooModel is Keras' functional model: same outputs, no TensorFlow import."""
    if missing_backends([backend]):
        pytest.skip(f"{backend} is not installed")
    result = subprocess.run(
        [sys.executable, "-c", OTHER_BACKEND],
        capture_output=True,
        text=True,
        env=subprocess_environment(KERAS_BACKEND=backend),
        cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
        timeout=300,
    )
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr[-3000:]
