"""FusedBatchNorm gives keras.layers.BatchNormalization's results and statistics."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_sknet.layers.batch_norm import FusedBatchNorm

pytestmark = pytest.mark.kernels


def pair(shape, rng, **kwargs):
    ours, theirs = FusedBatchNorm(**kwargs), keras.layers.BatchNormalization(**kwargs)
    ours.build(shape)
    theirs.build(shape)
    channels = shape[-1]
    weights = [
        rng.uniform(0.5, 1.5, channels),  # gamma
        rng.normal(size=channels),  # beta
        rng.normal(size=channels),  # moving mean
        rng.uniform(0.5, 2.0, channels),  # moving variance
    ]
    ours.set_weights(weights)
    theirs.set_weights(weights)
    return ours, theirs


@pytest.mark.parametrize("shape", [(4, 5, 6, 8), (6, 8), (1, 1, 1, 8)])
@pytest.mark.parametrize("training", [False, True])
def test_same_outputs_and_moving_statistics(shape, training, rng):
    ours, theirs = pair(shape, rng, epsilon=1e-5, momentum=0.9)
    x = rng.normal(2.0, 3.0, size=shape).astype("float32")
    np.testing.assert_allclose(ours(x, training=training), theirs(x, training=training), atol=1e-4)
    np.testing.assert_allclose(ours.moving_mean, theirs.moving_mean, atol=1e-5)
    np.testing.assert_allclose(ours.moving_variance, theirs.moving_variance, atol=1e-4)


def test_gradients_match(rng):
    ours, theirs = pair((4, 3, 3, 6), rng)
    x = tf.constant(rng.normal(size=(4, 3, 3, 6)).astype("float32"))
    grads = []
    for layer in (ours, theirs):
        with tf.GradientTape() as tape:
            tape.watch(x)
            loss = tf.reduce_sum(tf.sin(layer(x, training=True)))
        grads.append(tape.gradient(loss, [x, layer.gamma, layer.beta]))
    for a, b in zip(*grads):
        np.testing.assert_allclose(a, b, atol=1e-4)


def test_frozen_layer_uses_moving_statistics(rng):
    ours, theirs = pair((2, 4, 4, 3), rng)
    ours.trainable = theirs.trainable = False
    x = rng.normal(size=(2, 4, 4, 3)).astype("float32")
    np.testing.assert_allclose(ours(x, training=True), theirs(x, training=True), atol=1e-5)


def test_without_scale_and_center_and_in_bfloat16(rng):
    ours, theirs = (
        FusedBatchNorm(scale=False, center=False),
        keras.layers.BatchNormalization(scale=False, center=False),
    )
    x = rng.normal(size=(2, 3, 3, 4)).astype("float32")
    np.testing.assert_allclose(ours(x, training=True), theirs(x, training=True), atol=1e-4)
    keras.config.set_dtype_policy("mixed_bfloat16")
    y = FusedBatchNorm()(x, training=True)
    assert y.dtype == "bfloat16"


def test_falls_back_for_other_layouts(rng):
    ours, theirs = pair((2, 3, 5), rng)  # 3-D: the Keras implementation runs
    x = rng.normal(size=(2, 3, 5)).astype("float32")
    np.testing.assert_allclose(ours(x, training=True), theirs(x, training=True), atol=1e-5)


def test_synchronized_default_comes_from_the_context():
    from keras_sknet.layers.batch_norm import synchronized_batch_norm

    assert not FusedBatchNorm().synchronized
    with synchronized_batch_norm():
        layer = FusedBatchNorm()
    assert layer.synchronized and FusedBatchNorm.from_config(layer.get_config()).synchronized
    assert not FusedBatchNorm().synchronized


@pytest.mark.parametrize("affine", [False, True])
def test_inference_as_multiply_and_bias_add_gives_the_fused_results(affine, rng, monkeypatch):
    """The inference form used on oneDNN without AVX-512 (and the fused op elsewhere), forced either way.

    Also inside a tf.function with a convolution before it, where grappler would fuse the
    fused op into the convolution.
    """
    from keras_sknet.layers import tf_conv

    monkeypatch.setattr(tf_conv, "_onednn_without_avx512", lambda: affine)
    ours, theirs = pair((2, 6, 6, 8), rng, epsilon=1e-3)
    x = rng.normal(2.0, 3.0, size=(2, 6, 6, 8)).astype("float32")
    kernel = tf.constant(rng.normal(size=(1, 1, 8, 8)).astype("float32"))

    @tf.function
    def conv_bn(layer, x):
        return tf.nn.relu(layer(tf.nn.conv2d(x, kernel, 1, "SAME"), training=False))

    assert tf_conv.affine_inference_batch_norm(tf.constant(x)) is affine
    np.testing.assert_allclose(ours(x, training=False), theirs(x, training=False), atol=1e-5)
    np.testing.assert_allclose(conv_bn(ours, x), conv_bn(theirs, x), atol=1e-4)
    with tf_conv.convolution_path("portable", gradients=False):  # exports keep the fused op
        assert tf_conv.affine_inference_batch_norm(tf.constant(x)) is False


@pytest.mark.parametrize(
    "cap,below",
    [
        ("AVX2", True),
        ("avx2_vnni", True),
        ("AVX", True),
        ("SSE41", True),
        ("AVX512_CORE", False),
        ("AVX512_CORE_BF16", False),
        ("ALL", False),
        ("", False),
    ],
)
def test_onednn_cap_below_avx512_counts_as_an_avx2_cpu(cap, below, monkeypatch):
    """ONEDNN_MAX_CPU_ISA=AVX2 on an AVX-512 CPU (the stand-in for AVX2 machines) gets the AVX2 BatchNorm."""
    from keras_sknet.layers import tf_conv

    assert tf_conv.onednn_capped_below_avx512(cap) is below
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", cap)
    assert tf_conv.onednn_capped_below_avx512() is below
