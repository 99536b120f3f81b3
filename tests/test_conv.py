"""GroupConv2D against an independent NumPy convolution."""

import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_sknet.layers import GroupConv2D
from keras_sknet.layers import conv as conv_module
from keras_sknet.layers.conv import conv2d
from tests import reference, tf_reference

pytestmark = pytest.mark.kernels
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.parametrize("strides", [1, 2, 3])
@pytest.mark.parametrize("dilation", [1, 2, 3])
@pytest.mark.parametrize("groups", [1, 4])
@pytest.mark.parametrize("size", [(9, 9), (10, 7)])
def test_matches_reference(strides, dilation, groups, size, rng):
    x = rng.normal(size=(2, *size, 8)).astype("float32")
    conv = GroupConv2D(8, 3, strides=strides, dilation_rate=dilation, groups=groups)
    y = conv(x)
    expected = reference.conv2d(x, conv.kernel.numpy(), strides, dilation, pad=dilation)
    assert y.shape == expected.shape
    np.testing.assert_allclose(y, expected, atol=1e-4)


@pytest.mark.parametrize("kernel_size", [1, 5, 7])
@pytest.mark.parametrize("strides", [1, 2])
def test_kernel_sizes(kernel_size, strides, rng):
    x = rng.normal(size=(1, 11, 11, 4)).astype("float32")
    conv = GroupConv2D(6, kernel_size, strides=strides, groups=2, use_bias=True, bias_initializer="ones")
    y = conv(x)
    expected = reference.conv2d(x, conv.kernel.numpy(), strides, 1, kernel_size // 2) + 1
    np.testing.assert_allclose(y, expected, atol=1e-4)


@pytest.mark.parametrize("strides,dilation", [(1, 1), (2, 1), (1, 2), (2, 2), (2, 3)])
def test_depthwise(strides, dilation, rng):
    x = rng.normal(size=(2, 9, 8, 6)).astype("float32")
    conv = GroupConv2D(6, 3, strides=strides, dilation_rate=dilation, groups=6)
    y = conv(x)
    assert conv.depthwise and conv.kernel.shape == (3, 3, 1, 6)
    np.testing.assert_allclose(
        y, reference.conv2d(x, conv.kernel.numpy(), strides, dilation, dilation), atol=1e-4
    )


@pytest.mark.parametrize("strides,dilation", [(2, 2), (2, 3), (3, 2)])
def test_valid_padding(strides, dilation, rng):
    x = rng.normal(size=(1, 13, 12, 4)).astype("float32")
    conv = GroupConv2D(4, 3, strides=strides, dilation_rate=dilation, groups=2, padding="valid")
    np.testing.assert_allclose(
        conv(x), reference.conv2d(x, conv.kernel.numpy(), strides, dilation, 0), atol=1e-4
    )


@pytest.mark.parametrize("strides,dilation", [(1, 1), (1, 2), (2, 1), (2, 2), (2, 3)])
@pytest.mark.parametrize("graph", [False, True])
def test_gradients_match_the_definition(strides, dilation, graph, rng):
    """Grouped convs differentiate, eagerly and in graphs, like the tap-sum definition."""
    x = tf.constant(rng.normal(size=(2, 10, 9, 4)).astype("float32"))
    kernel = tf.constant(rng.normal(size=(3, 3, 2, 4)).astype("float32"))

    def ours(x, kernel):
        return conv2d(x, kernel, strides, dilation, pad=dilation)

    def definition(x, kernel):
        return tf_reference.conv2d(x, kernel, strides, dilation, pad=dilation)

    def gradients(fn):
        with tf.GradientTape() as tape:
            tape.watch([x, kernel])
            y = fn(x, kernel)
            loss = tf.reduce_sum(y * tf.sin(y))
        return tape.gradient(loss, [x, kernel])

    if graph:
        gradients = tf.function(gradients)
    grads = [gradients(ours), gradients(definition)]
    for a, b in zip(*grads):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)


def test_unknown_spatial_size_in_a_model(rng):
    inputs = keras.Input((None, None, 8))
    conv = GroupConv2D(8, 3, strides=2, dilation_rate=3, groups=4)
    model = keras.Model(inputs, conv(inputs))
    assert model.output_shape == (None, None, None, 8)
    for size in [(7, 7), (12, 9)]:
        x = rng.normal(size=(1, *size, 8)).astype("float32")
        np.testing.assert_allclose(
            model.predict(x, verbose=0), reference.conv2d(x, conv.kernel.numpy(), 2, 3, 3), atol=1e-4
        )


def test_compute_output_shape_matches_call(rng):
    for strides, dilation, k in [(2, 2, 3), (3, 1, 5), (2, 3, 3), (1, 1, 1)]:
        conv = GroupConv2D(4, k, strides=strides, dilation_rate=dilation)
        x = rng.normal(size=(1, 11, 10, 4)).astype("float32")
        assert tuple(conv(x).shape) == conv.compute_output_shape(x.shape)


def test_config_round_trip():
    conv = GroupConv2D(8, 3, strides=2, dilation_rate=2, groups=4, padding="valid", use_bias=True)
    clone = GroupConv2D.from_config(conv.get_config())
    assert clone.get_config() == conv.get_config()


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(filters=8, kernel_size=4), "kernel_size=4"),
        (dict(filters=8, kernel_size=0), "kernel_size=0"),
        (dict(filters=8, kernel_size=3, groups=3), "groups=3"),
        (dict(filters=0, kernel_size=3), "filters=0"),
        (dict(filters=8, kernel_size=3, strides=0), "strides=0"),
        (dict(filters=8, kernel_size=3, padding="same"), "padding='same'"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        GroupConv2D(**kwargs)


def test_groups_must_divide_input_channels():
    with pytest.raises(ValueError, match="input channels=6"):
        GroupConv2D(8, 3, groups=4)(np.zeros((1, 5, 5, 6), "float32"))


@pytest.mark.parametrize("dilation,pad", [(2, 2), (3, 3), (2, 0), (3, 1), (2, 4)])
@pytest.mark.parametrize("groups", [1, 4, 8])
def test_dilated_over_phases(dilation, pad, groups, rng):
    # The JAX and PyTorch route of stride-1 dilated convs (space to batch), and
    # Eigen's blocked one, in backend-neutral ops: checked on odd sizes against the
    # definition, with static shapes and with every dimension unknown (TensorFlow).
    import tensorflow as tf

    from keras_sknet.layers import phases

    def undilated(x, kernel):
        return tf.nn.conv2d(x, kernel, 1, "VALID")

    x = rng.normal(size=(2, 11, 8, 8)).astype("float32")
    kernel = rng.normal(size=(3, 3, 8 // groups, 8)).astype("float32")
    expected = reference.conv2d(x, kernel, 1, dilation, pad)
    y = keras.ops.convert_to_numpy(phases.dilated_over_phases(x, kernel, dilation, pad, undilated))
    np.testing.assert_allclose(y, expected, atol=1e-4)
    dynamic = tf.function(
        lambda t: phases.dilated_over_phases(t, kernel, dilation, pad, undilated),
        input_signature=[tf.TensorSpec((None, None, None, 8))],
    )
    np.testing.assert_allclose(dynamic(x).numpy(), expected, atol=1e-4)


@pytest.mark.parametrize("channels", [3, 4, 8])
@pytest.mark.parametrize("graph", [False, True])
def test_strided_pointwise_on_few_channels_matches_the_definition(channels, graph, rng):
    """The subsample-first form of a 1x1 stride-2 conv (under FEW_CHANNELS channels) is the same conv."""
    x = tf.constant(rng.normal(size=(2, 8, 9, channels)))  # float64: tight bounds
    kernel = tf.constant(rng.normal(size=(1, 1, channels, 6)))
    assert conv_module._pointwise_on_few_channels(kernel, depthwise=False) == (
        channels < conv_module.FEW_CHANNELS
    )

    def gradients(fn):
        with tf.GradientTape() as tape:
            tape.watch([x, kernel])
            y = fn(x, kernel)
            loss = tf.reduce_sum(y * tf.sin(y))
        return [y, *tape.gradient(loss, [x, kernel])]

    run = tf.function(gradients) if graph else gradients
    ours = run(lambda x, kernel: conv2d(x, kernel, 2))
    definition = gradients(lambda x, kernel: tf_reference.conv2d(x, kernel, 2, 1, pad=0))
    assert ours[0].shape == (2, 4, 5, 6)
    for a, b in zip(ours, definition):
        np.testing.assert_allclose(a, b, atol=1e-10)


ONE_THREAD_TRAINING = """
import keras, numpy as np
from keras_sknet.layers import GroupConv2D
model = keras.Sequential([keras.Input((64, 64, 3)), GroupConv2D(8, 1, strides=2, padding="valid")])
model.compile("sgd", "mse")
rng = np.random.default_rng(0)
model.fit(rng.normal(size=(4, 64, 64, 3)), rng.normal(size=(4, 32, 32, 8)), batch_size=2, epochs=2, verbose=0)
print("trained on", keras.backend.backend())
"""
MALLOC_DEBUG = "/usr/lib/x86_64-linux-gnu/libc_malloc_debug.so.0"


@pytest.mark.parametrize("backend", ["tensorflow", "torch", "jax"])
def test_strided_pointwise_on_rgb_trains_on_one_thread(backend):
    """A 1x1 stride-2 conv on RGB trains on one thread, where oneDNN's own kernel gradient corrupts the heap.

    Measured on a Zen 3 (AVX2): TensorFlow's `Conv2DBackpropFilter` (oneDNN) and PyTorch's
    channels-last convolution (its bundled oneDNN) write past their scratchpad there, on one
    thread; glibc's heap checks (libc_malloc_debug, where this machine has it) turn that into
    an immediate abort. In a subprocess per backend, with every library on one thread.
    """
    pytest.importorskip(backend)
    env = dict(
        os.environ,
        KERAS_BACKEND=backend,
        TF_NUM_INTRAOP_THREADS="1",
        OMP_NUM_THREADS="1",
        TF_CPP_MIN_LOG_LEVEL="3",
    )
    if os.path.exists(MALLOC_DEBUG):
        env.update(LD_PRELOAD=MALLOC_DEBUG, GLIBC_TUNABLES="glibc.malloc.check=3")
    result = subprocess.run(
        [sys.executable, "-c", ONE_THREAD_TRAINING],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, (result.returncode, result.stderr[-3000:])
    assert f"trained on {backend}" in result.stdout
