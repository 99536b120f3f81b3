"""Independent NumPy references for the layers, written from the paper's equations.

They share no code with the package: convolutions are explicit sums over taps
and groups in float64, BatchNorm is the textbook formula.
"""

import numpy as np


def conv2d(x, kernel, strides=1, dilation=1, pad=0):
    """Grouped conv, NHWC, symmetric zero padding, any stride with any dilation.

    kernel: (k, k, C_in / groups, C_out); groups = C_in / kernel.shape[2].
    """
    x = np.pad(np.asarray(x, np.float64), ((0, 0), (pad, pad), (pad, pad), (0, 0)))
    kernel = np.asarray(kernel, np.float64)
    n, h, w, c_in = x.shape
    k, _, c_in_group, c_out = kernel.shape
    groups = c_in // c_in_group
    c_out_group = c_out // groups
    span = dilation * (k - 1) + 1
    h_out = (h - span) // strides + 1
    w_out = (w - span) // strides + 1
    out = np.zeros((n, h_out, w_out, c_out))
    for g in range(groups):
        xg = x[..., g * c_in_group : (g + 1) * c_in_group]
        kg = kernel[..., g * c_out_group : (g + 1) * c_out_group]
        for i in range(k):
            for j in range(k):
                rows = slice(i * dilation, i * dilation + strides * (h_out - 1) + 1, strides)
                cols = slice(j * dilation, j * dilation + strides * (w_out - 1) + 1, strides)
                out[..., g * c_out_group : (g + 1) * c_out_group] += xg[:, rows, cols, :] @ kg[i, j]
    return out


def batch_norm(x, gamma, beta, mean, variance, epsilon):
    return (x - mean) / np.sqrt(variance + epsilon) * gamma + beta


def batch_norm_train(x, gamma, beta, epsilon):
    """Normalises with the statistics of the batch (over all axes but the last)."""
    axes = tuple(range(x.ndim - 1))
    return batch_norm(x, gamma, beta, x.mean(axes), x.var(axes), epsilon)


def softmax(logits, axis):
    e = np.exp(logits - logits.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def bn_weights(layer):
    """(gamma, beta, mean, variance, epsilon) of a Keras BatchNormalization."""
    return (
        np.asarray(layer.gamma),
        np.asarray(layer.beta),
        np.asarray(layer.moving_mean),
        np.asarray(layer.moving_variance),
        layer.epsilon,
    )


def sk_conv(
    x,
    paths,
    fc_reduce,
    attention_bn,
    fc_select,
    strides,
    relu=True,
    attention=True,
    training=False,
    split_input=False,
):
    """SK convolution, Eqs. (1)-(6) of Section 3.1, for any number of paths.

    Args:
        paths: one (kernel, dilation, bn_weights) per path.
        fc_reduce: W, (C, d). attention_bn: bn_weights of z. fc_select: (d, M*C).
        training: BatchNorms use batch statistics (as in training mode).
        split_input: path m reads the m-th of M equal slices of the input channels (timm).

    Returns:
        (V, attention (N, M, C) or None).
    """
    outputs = []
    width = x.shape[-1] // len(paths)
    for m, (kernel, dilation, (gamma, beta, mean, var, eps)) in enumerate(paths):
        k = kernel.shape[0]
        path_input = x[..., m * width : (m + 1) * width] if split_input else x
        u = conv2d(path_input, kernel, strides, dilation, pad=dilation * (k - 1) // 2)
        u = batch_norm_train(u, gamma, beta, eps) if training else batch_norm(u, gamma, beta, mean, var, eps)
        outputs.append(np.maximum(u, 0) if relu else u)
    fused = sum(outputs)  # Eq. (1)
    if not attention:
        return fused, None
    s = fused.mean(axis=(1, 2))  # Eq. (2)
    gamma, beta, mean, var, eps = attention_bn
    z = s @ fc_reduce
    z = batch_norm_train(z, gamma, beta, eps) if training else batch_norm(z, gamma, beta, mean, var, eps)
    z = np.maximum(z, 0)  # Eq. (3)
    m, c = len(paths), fused.shape[-1]
    a = softmax((z @ fc_select).reshape(-1, m, c), axis=1)  # Eq. (5), path-major
    v = sum(a[:, i, None, None, :] * outputs[i] for i in range(m))  # Eq. (6)
    return v, a
