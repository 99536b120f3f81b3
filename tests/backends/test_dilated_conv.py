"""Dilated convolutions on every backend: outputs and gradients against the definition.

Each backend computes a stride-1 dilated convolution its own way (TensorFlow: its op,
or `tf_conv` on Eigen; PyTorch: one undilated convolution over the pixel phases; JAX:
its own dilated convolution forwards, gradients over the pixel phases), so each is
checked here against NumPy: the output, and the kernel's gradient of a squared error,
which, the convolution being linear in its kernel, is a sum of reference convolutions.
"""

import keras
import numpy as np
import pytest

from keras_sknet.layers import GroupConv2D
from tests import reference
from tests.backends import common

# Both kernel libraries (scripts/test.sh), and again with the instruction sets capped.
pytestmark = [pytest.mark.kernels, pytest.mark.numerics]


def reference_kernel_gradient(x, kernel, target, dilation, pad):
    """d mean((conv(x, W) - target)^2) / dW, one basis kernel at a time."""
    residual = reference.conv2d(x, kernel, 1, dilation, pad) - target
    gradient = np.zeros_like(kernel, dtype="float64")
    for index in np.ndindex(*kernel.shape):
        basis = np.zeros_like(kernel)
        basis[index] = 1.0
        gradient[index] = (
            2.0 * np.sum(residual * reference.conv2d(x, basis, 1, dilation, pad)) / residual.size
        )
    return gradient


@pytest.mark.parametrize("dilation", [2, 3])
@pytest.mark.parametrize("groups", [1, 2, 4])
def test_dilated_conv_and_its_gradient(dilation, groups):
    rng = np.random.default_rng(10 * dilation + groups)
    x = rng.normal(size=(2, 11, 9, 4)).astype("float32")
    model = keras.Sequential(
        [keras.Input((11, 9, 4)), GroupConv2D(4, 3, dilation_rate=dilation, groups=groups)]
    )
    kernel = keras.ops.convert_to_numpy(model.layers[0].kernel)
    expected = reference.conv2d(x, kernel, 1, dilation, dilation)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(model(x)), expected, atol=1e-4)

    target = rng.normal(size=expected.shape).astype("float32")
    _, (gradient,) = common.loss_and_gradients(model, x, target)
    np.testing.assert_allclose(
        gradient, reference_kernel_gradient(x, kernel, target, dilation, dilation), rtol=1e-4, atol=1e-5
    )
