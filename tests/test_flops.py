"""count_flops against hand-computed multiply-adds of small models, and its two methods against each other.

`method="graph"` (the TensorFlow trace) and `method="layers"` (what the JAX and
PyTorch backends use) must agree on every model function of the zoo and on the
ablations of Tables 6 and 7; tests/backends checks the layer count on JAX and
PyTorch against TensorFlow's numbers.
"""

import math

import keras
import numpy as np
import pytest

from keras_sknet import applications
from keras_sknet.layers import GroupConv2D, SKConv, SqueezeExcite
from keras_sknet.utils import count_flops, count_params, register_macs


def model_of(layer, shape):
    inputs = keras.Input(shape)
    return keras.Model(inputs, layer(inputs))


@pytest.mark.parametrize(
    "layer,expected",
    [
        (GroupConv2D(6, 3), 8 * 8 * 6 * 9 * 4),
        (GroupConv2D(8, 3, groups=2), 8 * 8 * 8 * 9 * 2),
        (GroupConv2D(4, 3, groups=4), 8 * 8 * 4 * 9),  # depthwise
        (GroupConv2D(4, 3, strides=2, dilation_rate=2, groups=2), 4 * 4 * 4 * 9 * 2),
        (GroupConv2D(4, 3, strides=2, dilation_rate=3, groups=2), 4 * 4 * 4 * 9 * 2),  # 4 phases, no waste
        (GroupConv2D(4, 5, strides=3, dilation_rate=2), 3 * 3 * 4 * 25 * 4),
        (keras.layers.Conv2D(5, 1), 8 * 8 * 5 * 4),
        (keras.layers.Dense(3), 8 * 8 * 3 * 4),
        (SqueezeExcite(reduction=2), 4 * 2 + 2 * 4 + 8 * 8 * 4),  # two fc + the reweighting
    ],
    ids=lambda v: type(v).__name__ if not isinstance(v, int) else str(v),
)
def test_single_layers(layer, expected):
    model = model_of(layer, (8, 8, 4))
    assert count_flops(model) == expected
    assert count_flops(model, method="layers") == expected


def test_sk_conv_counts_paths_fuse_and_select():
    c, d, hw = 8, 4, 8 * 8
    paths = 2 * hw * c * 9 * (c // 2)
    # Two paths: the select fc computes the logit difference (d x C), and the selection
    # U2 + a * (U1 - U2) multiplies once per element (a * U1 + b * U2 would be twice).
    fuse_select = c * d + d * c
    reweighting = hw * c
    model = model_of(SKConv(c, groups=2, reduction=2, min_dim=d), (8, 8, c))
    assert count_flops(model) == paths + fuse_select + reweighting
    assert count_flops(model, method="layers") == paths + fuse_select + reweighting


def test_unknown_input_size_needs_an_input_shape():
    model = model_of(GroupConv2D(4, 3), (None, None, 4))
    with pytest.raises(ValueError, match="input_shape"):
        count_flops(model)
    assert count_flops(model, input_shape=(4, 4, 4)) == 4 * 4 * 4 * 9 * 4
    assert count_flops(model, input_shape=(4, 4, 4), method="layers") == 4 * 4 * 4 * 9 * 4


# One model function per family and block type, at a small input (the count of a layer does not
# depend on the size; the deeper variants, SKNet26/101, ResNeXt101, ..., repeat the same blocks),
# and the ablations of Tables 6-7 that exercise the other counting rules.
ZOO_INPUTS = {
    "SKNet50": (64, 64, 3),
    "ResNeXt50": (64, 64, 3),
    "SEResNeXt50": (64, 64, 3),
    "SKNet29": (32, 32, 3),
    "SEResNeXt29": (32, 32, 3),
    "ShuffleNetV2": (64, 64, 3),
    "ShuffleNetV2SE": (64, 64, 3),
    "ShuffleNetV2SK": (64, 64, 3),
    "SKResNet18": (64, 64, 3),
}
ABLATIONS = {
    "K3+K5+K7 SK": dict(kernel_sizes=(3, 5, 7)),  # three paths: softmax, a_m * U_m per path
    "K3 sum": dict(kernel_sizes=(3,), attention=False),
    "K1+K3 SK": dict(kernel_sizes=(1, 3)),
    "K3 SK": dict(kernel_sizes=(3,)),  # one path: the select weight is constant 1
    "7x7 G=128": dict(kernel_sizes=(3, 7), dilate_large_kernels=False, sk_groups=(32, 128)),
    "K3+K7 SK": dict(kernel_sizes=(3, 7)),  # dilation 3 at stride 2: four phases
}


@pytest.mark.kernels  # the traced graph is the model's on oneDNN and on Eigen alike
@pytest.mark.parametrize("name", sorted(ZOO_INPUTS))
def test_layer_count_equals_the_traced_graph_on_the_zoo(name):
    model = getattr(applications, name)(input_shape=ZOO_INPUTS[name])
    assert count_flops(model, method="layers") == count_flops(model, method="graph") > 0


@pytest.mark.kernels
@pytest.mark.parametrize("kwargs", ABLATIONS.values(), ids=ABLATIONS.keys())
def test_layer_count_equals_the_traced_graph_on_ablations(kwargs):
    model = applications.SKNet((1, 1, 1, 1), input_shape=(64, 64, 3), **kwargs)
    assert count_flops(model, method="layers") == count_flops(model, method="graph") > 0


def test_layer_count_refuses_layers_it_cannot_count():
    model = model_of(keras.layers.SeparableConv2D(4, 3), (8, 8, 4))
    assert count_flops(model, method="graph") > 0
    with pytest.raises(ValueError, match="SeparableConv2D.*KERAS_BACKEND=tensorflow"):
        count_flops(model, method="layers")
    with pytest.raises(ValueError, match="method"):
        count_flops(model, method="trace")


class _Scale(keras.layers.Layer):
    """A layer with a weight of its own that count_flops does not know."""

    def build(self, input_shape):
        self.scale = self.add_weight(shape=(input_shape[-1],), initializer="ones")

    def call(self, x):
        return x * self.scale


def test_register_macs_teaches_the_layer_count_a_layer(monkeypatch):
    from keras_sknet.utils import flops

    model = model_of(_Scale(), (8, 8, 4))
    with pytest.raises(ValueError, match="_Scale"):
        count_flops(model, method="layers")
    monkeypatch.setattr(flops, "_RULES", dict(flops._RULES))  # the registration ends with the test
    register_macs(_Scale, lambda layer, inputs, outputs: math.prod(outputs))
    assert count_flops(model, method="layers") == 8 * 8 * 4


def test_count_params_excludes_batch_norm_statistics():
    model = model_of(keras.layers.BatchNormalization(), (8,))
    assert count_params(model) == 16
    assert model.count_params() == 32
    assert np.isfinite(count_params(model))
