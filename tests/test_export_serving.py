"""Serving exports that take images: uint8 RGB in, probabilities out, preprocessing inside.

One tiny SKNet (one SK unit per stage, 32x32, random BatchNorm statistics)
returning logits, so that the softmax the serving graphs add is tested too. The
references are computed here from the Keras model: resize (bilinear, TensorFlow),
`preprocess_input` in NumPy, the model, a NumPy softmax.
"""

import io
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_sknet import export
from keras_sknet.applications import SKNet, preprocess_input
from keras_sknet.export import serving
from tests.helpers import randomize_batch_norms

SIZE = 32


@pytest.fixture(scope="module")
def logits_model():
    keras.utils.set_random_seed(0)
    model = SKNet((1, 1), input_shape=(SIZE, SIZE, 3), classes=10, classifier_activation=None)
    randomize_batch_norms(model, np.random.default_rng(0))
    return model


def expected(model, raw):
    """Probabilities for uint8 images at the model's size: softmax(model(preprocess_input(raw)))."""
    logits = model(preprocess_input(raw.astype("float64")), training=False).numpy().astype("float64")
    e = np.exp(logits - logits.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def resized(raw, size=(SIZE, SIZE)):
    return tf.image.resize(raw.astype("float32"), size, method="bilinear").numpy()


def uint8_images(count, height=SIZE, width=SIZE, seed=3):
    return np.random.default_rng(seed).integers(0, 256, (count, height, width, 3), dtype="uint8")


@pytest.mark.parametrize("freeze", [False, True])
def test_saved_model_takes_uint8_images_of_any_size_and_encoded_bytes(logits_model, tmp_path, freeze):
    path = tmp_path / "serving"
    result = export.to_saved_model(logits_model, path, input_type="uint8", freeze=freeze)
    assert result.passed and result.input_type == "uint8"
    assert result.signatures == ("serving_default", "serving_bytes") and len(result.checks) == 3
    signatures = tf.saved_model.load(str(path)).signatures
    default = signatures["serving_default"]
    assert default.structured_input_signature[1]["images"].dtype == tf.uint8

    raw = uint8_images(3)
    probabilities = default(images=tf.constant(raw))["predictions"].numpy()
    np.testing.assert_allclose(probabilities, expected(logits_model, raw), atol=1e-5)
    np.testing.assert_allclose(probabilities.sum(-1), 1.0, atol=1e-5)
    # Another size: resized to 32x32 inside.
    big = uint8_images(2, 48, 40, seed=4)
    got = default(images=tf.constant(big))["predictions"].numpy()
    want = expected(logits_model, resized(big))
    np.testing.assert_allclose(got, want, atol=1e-5)

    if freeze:
        return
    # Encoded images of different sizes in one request, as TF Serving clients send them.
    from PIL import Image

    def encode(image, fmt):
        buffer = io.BytesIO()
        Image.fromarray(image).save(buffer, format=fmt, quality=95)
        return buffer.getvalue()

    requests = np.array([encode(raw[0], "PNG"), encode(big[0], "PNG"), encode(raw[1], "JPEG")], dtype=object)
    got = signatures["serving_bytes"](image_bytes=tf.constant(requests))["predictions"].numpy()
    np.testing.assert_allclose(got[0], expected(logits_model, raw[:1])[0], atol=1e-5)
    np.testing.assert_allclose(got[1], want[0], atol=1e-4)  # resized, then rounded to uint8
    decoded = np.asarray(Image.open(io.BytesIO(requests[2])).convert("RGB"))
    np.testing.assert_allclose(
        got[2], expected(logits_model, decoded[None])[0], atol=2e-3
    )  # JPEG decoders differ


def test_tflite_uint8(logits_model):
    from ai_edge_litert.interpreter import Interpreter

    result = export.to_tflite(logits_model, input_type="uint8", batch_size=2)
    assert result.passed and result.input_shape == (2, SIZE, SIZE, 3)
    interpreter = Interpreter(model_content=result.content)
    interpreter.allocate_tensors()
    (detail,) = interpreter.get_input_details()
    assert detail["dtype"] == np.uint8
    raw = uint8_images(2)
    interpreter.set_tensor(detail["index"], raw)
    interpreter.invoke()
    got = interpreter.get_tensor(interpreter.get_output_details()[0]["index"])
    np.testing.assert_allclose(got, expected(logits_model, raw), atol=1e-5)


def test_onnx_uint8_any_size(logits_model, tmp_path):
    if os.environ.get("KERAS_SKNET_REQUIRE_ONNX") == "1":
        import onnxruntime
    else:
        onnxruntime = pytest.importorskip(
            "onnxruntime", reason="needs the onnx extra: pip install -e .[onnx]"
        )
    path = tmp_path / "serving.onnx"
    result = export.to_onnx(logits_model, path, input_type="uint8")
    assert result.passed and result.input_shape == (None, None, None, 3) and "Resize" in result.operators
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (graph_input,) = session.get_inputs()
    assert graph_input.type == "tensor(uint8)"
    for raw, want in (
        (uint8_images(3), None),
        (uint8_images(2, 48, 40, seed=4), expected(logits_model, resized(uint8_images(2, 48, 40, seed=4)))),
    ):
        want = expected(logits_model, raw) if want is None else want
        np.testing.assert_allclose(session.run(None, {"images": raw})[0], want, atol=1e-5)


def test_wrong_preprocessing_inside_fails_and_writes_nothing(logits_model, tmp_path, monkeypatch):
    """Negative control: a serving graph whose mean is off by half a standard deviation is refused."""
    original = serving.image_function
    monkeypatch.setattr(
        serving, "image_function", lambda call, model, size: original(lambda x: call(x + 0.5), model, size)
    )
    with pytest.raises(export.VerificationError, match="max abs diff"):
        export.to_saved_model(logits_model, tmp_path / "serving", input_type="uint8")
    assert os.listdir(tmp_path) == []


def test_bad_input_type(logits_model, tmp_path):
    with pytest.raises(ValueError, match=r"`input_type` must be one of \('float32', 'uint8'\).*'uint16'"):
        export.to_saved_model(logits_model, tmp_path / "m", input_type="uint16")
    with pytest.raises(ValueError, match="leave `preprocess='imagenet'`.*Received: preprocess=None"):
        export.to_tflite(logits_model, input_type="uint8", preprocess=None)
    assert os.listdir(tmp_path) == []


def _graph_ops(path):
    """Every op type in a SavedModel's graph and its functions."""
    from tensorflow.core.protobuf import saved_model_pb2

    saved = saved_model_pb2.SavedModel()
    with open(os.path.join(path, "saved_model.pb"), "rb") as f:
        saved.ParseFromString(f.read())
    graph = saved.meta_graphs[0].graph_def
    ops = {node.op for node in graph.node}
    for function in graph.library.function:
        ops.update(node.op for node in function.node_def)
    return ops


@pytest.mark.parametrize("freeze", [False, True])
def test_saved_models_hold_batch_norms_as_multiply_and_add(logits_model, tmp_path, freeze):
    """A SavedModel may be served by oneDNN on an AVX2 CPU, which runs a convolution fused with a
    BatchNorm ten times slower at batch 1: its BatchNorms are a multiply and a bias add, with the
    model's outputs. A TFLite export keeps the fused op, which its converter folds away."""
    path = str(tmp_path / "served")
    export.to_saved_model(logits_model, path, freeze=freeze)
    ops = _graph_ops(path)
    assert not {op for op in ops if op.startswith("FusedBatchNorm")}, sorted(ops)
    assert {"Mul", "BiasAdd"} <= ops
    x = np.random.default_rng(1).normal(size=(3, SIZE, SIZE, 3)).astype("float32")
    served = tf.saved_model.load(path).signatures["serving_default"]
    (output,) = served(images=tf.constant(x)).values()
    np.testing.assert_allclose(output.numpy(), logits_model(x, training=False).numpy(), atol=1e-4)
