"""Keras' post-training `model.quantize("int8")` on every family of the zoo.

Keras quantizes its own `Dense` layers (weights to int8 with a per-channel
scale, activations to int8 per call): here the SK attention's `fc_reduce` and
`fc_select`, the SE layers' fcs and the classifier. `SKAttention` must then
let `fc_select` compute its logits instead of reading its float kernel; the
tests check that every Dense is quantized, that the outputs moved (the int8
weights are the ones used) but stay close to the float model's, and that a
quantized model survives a `.keras` file (`keras_sknet.layers.quantization`).
"""

import keras
import numpy as np
import pytest

from keras_sknet import applications

FAMILIES = {
    "sknet": lambda **k: applications.SKNet((1, 1, 1, 1), cardinality=4, **k),
    "seresnext": lambda **k: applications.SKNet(
        (1, 1, 1, 1), block="resnext", cardinality=4, se_reduction=16, **k
    ),
    "skresnet": lambda **k: applications.SKResNet((1, 1, 1, 1), **k),
    "sknet_cifar": lambda **k: applications.SKNet(
        (1, 1, 1), stem="cifar", cardinality=4, bottleneck_width=4, kernel_sizes=(3, 1), **k
    ),
    "shufflenetv2_sk": lambda **k: applications.ShuffleNetV2(
        0.5, attention="sk", stage_depths=(1, 1, 1), **k
    ),
}


def quantized_copy(build):
    model = build(input_shape=(32, 32, 3), classes=10, classifier_activation=None)
    x = np.random.default_rng(0).normal(size=(2, 32, 32, 3)).astype("float32")
    # The float reference called eagerly: a predict() would trace a function only for this.
    expected = model(x, training=False).numpy()
    model.quantize("int8")
    return model, x, expected


@pytest.mark.parametrize("family", list(FAMILIES))
def test_int8_quantize_works_on_every_family_and_survives_keras_file(family, tmp_path):
    model, x, expected = quantized_copy(FAMILIES[family])
    dense = [layer for layer in model._flatten_layers() if isinstance(layer, keras.layers.Dense)]
    assert dense and all(layer.quantization_mode == "int8" for layer in dense)
    outputs = model.predict(x, verbose=0)
    error = float(np.max(np.abs(outputs - expected)) / np.max(np.abs(expected)))
    assert 0 < error < 0.02, error
    path = str(tmp_path / f"{family}_int8.keras")
    model.save(path)
    loaded = keras.models.load_model(path)
    reloaded = [layer for layer in loaded._flatten_layers() if isinstance(layer, keras.layers.Dense)]
    assert len(reloaded) == len(dense) and all(layer.quantization_mode == "int8" for layer in reloaded)
    np.testing.assert_allclose(loaded.predict(x, verbose=0), outputs, rtol=0, atol=1e-6)
