"""A differentiable TensorFlow reference convolution, written as its definition.

Sums over taps and groups of plain matrix products (slices, einsum, pad): every
TensorFlow kernel library differentiates these, so gradients of the package's
convolutions can be checked against it on oneDNN and on Eigen alike.
"""

import tensorflow as tf


def conv2d(x, kernel, strides=1, dilation=1, pad=0):
    """Grouped conv, NHWC, symmetric zero padding, any stride with any dilation.

    kernel: (k, k, C_in / groups, C_out); groups = C_in / kernel.shape[2].
    """
    x = tf.pad(x, [[0, 0], [pad, pad], [pad, pad], [0, 0]])
    k, _, in_per_group, filters = kernel.shape
    groups = x.shape[-1] // in_per_group
    out_per_group = filters // groups
    span = dilation * (k - 1)
    rows = (x.shape[1] - span - 1) // strides + 1
    cols = (x.shape[2] - span - 1) // strides + 1
    outputs = []
    for g in range(groups):
        total = 0
        for a in range(k):
            for b in range(k):
                window = x[
                    :,
                    a * dilation : a * dilation + strides * (rows - 1) + 1 : strides,
                    b * dilation : b * dilation + strides * (cols - 1) + 1 : strides,
                    g * in_per_group : (g + 1) * in_per_group,
                ]
                taps = kernel[a, b, :, g * out_per_group : (g + 1) * out_per_group]
                total += tf.einsum("nhwc,co->nhwo", window, taps)
        outputs.append(total)
    return tf.concat(outputs, axis=-1)
