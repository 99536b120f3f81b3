"""count_flops against hand-computed multiply-adds of small models."""

import keras
import numpy as np
import pytest

from keras_sknet.layers import GroupConv2D, SKConv, SqueezeExcite
from keras_sknet.utils import count_flops, count_params


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
    assert count_flops(model_of(layer, (8, 8, 4))) == expected


def test_sk_conv_counts_paths_fuse_and_select():
    c, d, hw = 8, 4, 8 * 8
    paths = 2 * hw * c * 9 * (c // 2)
    # Two paths: the select fc computes the logit difference (d x C), and the selection
    # U2 + a * (U1 - U2) multiplies once per element (a * U1 + b * U2 would be twice).
    fuse_select = c * d + d * c
    reweighting = hw * c
    model = model_of(SKConv(c, groups=2, reduction=2, min_dim=d), (8, 8, c))
    assert count_flops(model) == paths + fuse_select + reweighting


def test_unknown_input_size_needs_an_input_shape():
    model = model_of(GroupConv2D(4, 3), (None, None, 4))
    with pytest.raises(ValueError, match="input_shape"):
        count_flops(model)
    assert count_flops(model, input_shape=(4, 4, 4)) == 4 * 4 * 4 * 9 * 4


def test_count_params_excludes_batch_norm_statistics():
    model = model_of(keras.layers.BatchNormalization(), (8,))
    assert count_params(model) == 16
    assert model.count_params() == 32
    assert np.isfinite(count_params(model))
