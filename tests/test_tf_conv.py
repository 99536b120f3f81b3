"""The portable grouped/dilated convolution against the tap-sum definition, on either kernel library."""

import numpy as np
import pytest
import tensorflow as tf
from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

from keras_sknet import platform
from keras_sknet.layers import tf_blocked_conv, tf_conv
from tests import tf_reference

pytestmark = pytest.mark.kernels

CASES = [
    # strides, dilation, groups, padding
    (1, 1, 4, "SAME"),
    (1, 2, 4, "SAME"),
    (1, 3, 2, "VALID"),
    (1, 2, 1, "SAME"),
    (2, 1, 4, "VALID"),
    (3, 1, 2, "VALID"),
    (2, 1, 1, "VALID"),
]


def _pad(padding, dilation, size=3):
    return dilation * (size - 1) // 2 if padding == "SAME" else 0


def _loss_and_gradients(fn, x, kernel, weights):
    with tf.GradientTape() as tape:
        tape.watch([x, kernel])
        y = fn(x, kernel)
        loss = tf.reduce_sum(y * weights)
    return y, tape.gradient(loss, [x, kernel])


@pytest.mark.parametrize("strides,dilation,groups,padding", CASES)
@pytest.mark.parametrize("graph", [False, True])
@pytest.mark.parametrize("blocked", [False, True])
def test_values_and_gradients_match_the_definition(strides, dilation, groups, padding, graph, blocked, rng):
    x = tf.constant(rng.normal(size=(2, 11, 10, 8)))  # float64: tight bounds
    kernel = tf.constant(rng.normal(size=(3, 3, 8 // groups, 12)))
    pad = _pad(padding, dilation)
    expected = tf_reference.conv2d(x, kernel, strides, dilation, pad)
    weights = tf.constant(rng.normal(size=expected.shape))

    def ours(x, kernel):
        return tf_conv.portable_conv2d(x, kernel, strides, dilation, padding, blocked=blocked)

    def definition(x, kernel):
        return tf_reference.conv2d(x, kernel, strides, dilation, pad)

    run = tf.function(_loss_and_gradients) if graph else _loss_and_gradients
    y, (dx, dk) = run(ours, x, kernel, weights)
    y_ref, (dx_ref, dk_ref) = _loss_and_gradients(definition, x, kernel, weights)
    np.testing.assert_allclose(y, y_ref, atol=1e-10)
    np.testing.assert_allclose(dx, dx_ref, atol=1e-10)
    np.testing.assert_allclose(dk, dk_ref, atol=1e-10)


@pytest.mark.parametrize("size", [3, 5, 7])
@pytest.mark.parametrize("dilation", [1, 2, 3])
@pytest.mark.parametrize("shape", [(1, 9, 9, 8), (2, 6, 11, 8)])
def test_blocked_convolution_matches_the_definition(size, dilation, shape, rng):
    """Pixel blocks: odd and even sizes, every kernel size, dilated, with and without padding."""
    x = tf.constant(rng.normal(size=shape))
    kernel = tf.constant(rng.normal(size=(size, size, 2, 12)))  # 4 groups of 2 channels
    weights = None
    for padding, pad in (("SAME", dilation * (size - 1) // 2), ("VALID", 0)):
        if min(shape[1:3]) + 2 * pad - dilation * (size - 1) < 1:
            continue  # no output
        expected = tf_reference.conv2d(x, kernel, 1, dilation, pad)
        weights = tf.constant(rng.normal(size=expected.shape))
        assert tf_blocked_conv.applies(kernel, 1, 4)
        y, grads = _loss_and_gradients(
            lambda x, k, padding=padding: tf_conv.portable_conv2d(x, k, 1, dilation, padding, blocked=True),
            x,
            kernel,
            weights,
        )
        y_ref, grads_ref = _loss_and_gradients(
            lambda x, k, pad=pad: tf_reference.conv2d(x, k, 1, dilation, pad), x, kernel, weights
        )
        np.testing.assert_allclose(y, y_ref, atol=1e-10)
        for ours, theirs in zip(grads, grads_ref):
            np.testing.assert_allclose(ours, theirs, atol=1e-10)
    assert weights is not None


@pytest.mark.parametrize("size", [1, 2, 5])
@pytest.mark.parametrize("strides", [2, 3])
def test_strided_gradients_for_every_kernel_size(size, strides, rng):
    """The phase-wise input gradient: kernels shorter than, equal to and longer than the stride."""
    x = tf.constant(rng.normal(size=(2, 13, 10, 8)))
    kernel = tf.constant(rng.normal(size=(size, size, 4, 6)))  # 2 groups
    weights = tf.constant(rng.normal(size=tf_reference.conv2d(x, kernel, strides).shape))
    y, grads = _loss_and_gradients(
        lambda x, k: tf_conv.portable_conv2d(x, k, strides, 1, "VALID"), x, kernel, weights
    )
    y_ref, grads_ref = _loss_and_gradients(
        lambda x, k: tf_reference.conv2d(x, k, strides), x, kernel, weights
    )
    np.testing.assert_allclose(y, y_ref, atol=1e-10)
    for ours, theirs in zip(grads, grads_ref):
        np.testing.assert_allclose(ours, theirs, atol=1e-10)


def test_blocked_only_where_it_is_faster():
    kernel = tf.zeros((3, 3, 4, 128))
    assert tf_blocked_conv.applies(kernel, 1, 32)
    assert not tf_blocked_conv.applies(kernel, 2, 32)  # strided: measured no faster
    assert not tf_blocked_conv.applies(tf.zeros((3, 3, 16, 128)), 1, 8)  # wide groups: slower
    assert not tf_blocked_conv.applies(tf.zeros((3, 3, 4, 4)), 1, 1)  # dense
    assert not tf_blocked_conv.applies(tf.zeros((1, 1, 4, 128)), 1, 32)  # 4x the multiply-adds


def test_unknown_batch_and_size_in_a_graph(rng):
    kernel = tf.constant(rng.normal(size=(3, 3, 2, 8)))

    for strides, dilation, blocked in [(2, 1, False), (1, 2, True), (1, 1, True)]:

        @tf.function(input_signature=[tf.TensorSpec((None, None, None, 8), tf.float64)])
        def gradients(x, strides=strides, dilation=dilation, blocked=blocked):
            with tf.GradientTape() as tape:
                tape.watch([x, kernel])
                y = tf_conv.portable_conv2d(x, kernel, strides, dilation, "VALID", blocked=blocked)
                loss = tf.reduce_sum(tf.sin(y))
            return tape.gradient(loss, [x, kernel])

        for shape in [(1, 9, 9, 8), (3, 12, 7, 8)]:
            x = tf.constant(rng.normal(size=shape))
            with tf.GradientTape() as tape:
                tape.watch([x, kernel])
                loss = tf.reduce_sum(tf.sin(tf_reference.conv2d(x, kernel, strides, dilation, 0)))
            for ours, theirs in zip(gradients(x), tape.gradient(loss, [x, kernel])):
                np.testing.assert_allclose(ours, theirs, atol=1e-10)


def test_second_order_gradients(rng):
    """The gradients are convolutions again, so a gradient penalty differentiates too."""
    x = tf.constant(rng.normal(size=(2, 8, 8, 4)))
    kernel = tf.constant(rng.normal(size=(3, 3, 2, 4)))

    def penalty_gradient(conv):
        with tf.GradientTape() as outer:
            outer.watch(kernel)
            with tf.GradientTape() as inner:
                inner.watch(x)
                loss = tf.reduce_sum(tf.sin(conv(x, kernel)))
            penalty = tf.reduce_sum(inner.gradient(loss, x) ** 2)
        return outer.gradient(penalty, kernel)

    ours = penalty_gradient(lambda x, k: tf_conv.portable_conv2d(x, k, 1, 2, "SAME"))
    theirs = penalty_gradient(lambda x, k: tf_reference.conv2d(x, k, 1, 2, 2))
    np.testing.assert_allclose(ours, theirs, atol=1e-9)


@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
def test_low_precision_gradients(dtype, rng):
    """Mixed precision trains on Eigen too: the gradients in 16 bits, close to float32's."""
    x = rng.normal(size=(2, 10, 10, 8)).astype("float32")
    kernel = rng.normal(size=(3, 3, 2, 8)).astype("float32")
    weights = rng.normal(size=(2, 10, 10, 8)).astype("float32")
    low = [tf.constant(v, dtype) for v in (x, kernel, weights)]
    _, low_grads = _loss_and_gradients(
        lambda x, k: tf_conv.portable_conv2d(x, k, 1, 2, "SAME"), low[0], low[1], low[2]
    )
    _, grads = _loss_and_gradients(
        lambda x, k: tf_reference.conv2d(x, k, 1, 2, 2), tf.constant(x), tf.constant(kernel), weights
    )
    for ours, theirs in zip(low_grads, grads):
        assert ours.dtype == dtype
        scale = float(tf.reduce_max(tf.abs(theirs)))
        np.testing.assert_allclose(tf.cast(ours, "float32"), theirs, atol=0.05 * scale)


def _conv_bn_relu(kernel):
    """A grouped conv, inference BatchNorm and ReLU: what grappler fuses into one op."""
    channels = kernel.shape[-1]

    def fn(x):
        y = tf_conv.portable_conv2d(x, kernel, 1, 1, "SAME")
        y, _, _ = tf.compat.v1.nn.fused_batch_norm(
            y,
            tf.ones(channels),
            tf.zeros(channels),
            mean=tf.fill([channels], 0.5),
            variance=tf.fill([channels], 2.0),
            is_training=False,
        )
        return tf.nn.relu(y)

    return fn


def test_a_grouped_conv_before_batch_norm_runs_in_graphs_and_frozen_graphs(rng):
    """Eigen has no fused grouped conv: the portable conv must keep grappler from building one."""
    kernel = tf.Variable(rng.normal(size=(3, 3, 2, 8)).astype("float32"))
    x = tf.constant(rng.normal(size=(2, 9, 9, 8)).astype("float32"))
    fn = _conv_bn_relu(kernel)
    eager = fn(x)
    function = tf.function(fn)
    np.testing.assert_allclose(function(x), eager, atol=1e-5)
    frozen = convert_variables_to_constants_v2(function.get_concrete_function(tf.TensorSpec(x.shape)))
    assert "Snapshot" in {node.op for node in frozen.graph.as_graph_def().node}
    np.testing.assert_allclose(frozen(x)[0], eager, atol=1e-5)
    expected = np.maximum((tf_reference.conv2d(x, kernel, 1, 1, 1) - 0.5) / np.sqrt(2.0 + 1e-3), 0)
    np.testing.assert_allclose(eager, expected, atol=1e-4)


def test_tensorflow_kernels_are_probed_as_the_platform_says():
    """Gradients of grouped/dilated float32 convs are native exactly where oneDNN runs."""
    assert tf_conv.native_kernels("float32") == platform.onednn_enabled()
    assert tf_conv.native_kernels("float32", "GPU")


def test_which_convolutions_take_which_path():
    x = tf.zeros((1, 8, 8, 8))
    on_eigen = "native" if tf_conv.native_kernels("float32") else "blocked"
    assert tf_conv.path_for(x, groups=1, dilation=1) == "native"
    assert tf_conv.path_for(x, groups=4, dilation=1) == on_eigen
    assert tf_conv.path_for(x, groups=1, dilation=2) == on_eigen
    with tf_conv.convolution_path("portable"):
        assert tf_conv.path_for(x, groups=1, dilation=2) == "portable"
        assert tf_conv.path_for(x, groups=1, dilation=1) == "native"
        with tf_conv.convolution_path("native"):
            assert tf_conv.path_for(x, groups=4, dilation=2) == "native"
        assert tf_conv.path_for(x, groups=4, dilation=1) == "portable"
    assert tf_conv.path_for(x, groups=4, dilation=1) == on_eigen


def test_inference_graphs_carry_no_gradient_functions(rng):
    kernel = tf.constant(rng.normal(size=(3, 3, 2, 8)).astype("float32"))
    spec = tf.TensorSpec((1, 8, 8, 8))

    def op_types(gradients):
        with tf_conv.convolution_path("portable", gradients=gradients):
            function = tf.function(lambda x: tf_conv.conv2d(x, kernel, 1, 2, "SAME"))
            graph = function.get_concrete_function(spec).graph
        return {op.type for op in graph.get_operations()}

    assert "IdentityN" in op_types(gradients=True)
    inference = op_types(gradients=False)
    assert "IdentityN" not in inference and "Snapshot" in inference


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(strides=2, dilation=2, padding="VALID"), "strides=2, dilation=2"),
        (dict(strides=2, dilation=1, padding="SAME"), "strides=2"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        tf_conv.portable_conv2d(tf.zeros((1, 8, 8, 4)), tf.zeros((3, 3, 2, 4)), **kwargs)
    with pytest.raises(ValueError, match="path='eigen'"), tf_conv.convolution_path("eigen"):
        pass
