"""Grouped convolutions with few channels per group, rewritten for TensorFlow's Eigen kernels.

Eigen's grouped convolution runs one small convolution per group, and with the
4 or 8 channels per group of SKNet's first stages it reaches about a tenth of
its speed on wide groups. A stride-1 convolution is
the same sum over 2x2 blocks of pixels (space-to-depth): each group sees 4x
the channels, and a 3x3 kernel becomes a 2x2 kernel over blocks that maps
each block of inputs to a block of outputs. That computes 16/9 of the
multiply-adds (the block kernel holds zeros), but in groups four times as
wide, which Eigen runs faster at 4 and 8 channels per group (measured in
docs/platforms.md, "What runs on Eigen").

A dilated convolution is first split into the dilation^2 interleaved sub-images
it never mixes (space-to-batch, `phases.dilated_over_phases`), each an
undilated convolution.

Everything here is exact (the same products, summed in another order) and
differentiable: the one convolution it runs is `convolve`, given by the
caller with whatever gradient it needs.
"""

import numpy as np
import tensorflow as tf

from keras_sknet.layers import phases

BLOCK = 2  # pixels per block side
# Blocked only up to this many input channels per group: at 16 the plain
# grouped convolution is faster than the 16/9 multiply-adds of the blocked one.
MAX_CHANNELS_PER_GROUP = 8


def applies(kernel, strides, groups):
    """Whether `blocked_conv2d` speeds up this convolution (on Eigen)."""
    size = kernel.shape[0]
    # Blocks cost (ceil((k - 1) / 2) + 1)^2 * 4 multiply-adds per pixel for k^2:
    # 16/9 at k = 3, but 4x at k = 1 and 2.
    return (
        strides == 1
        and groups > 1
        and size is not None
        and 3 <= size <= 7
        and kernel.shape[1] == size
        # Unknown in the kernel gradient, whose "channels" are the batch.
        and kernel.shape[2] is not None
        and kernel.shape[2] <= MAX_CHANNELS_PER_GROUP
    )


def blocked_conv2d(x, kernel, dilation, pad, groups, convolve):
    """A stride-1 grouped convolution computed over 2x2 pixel blocks.

    Args:
        x: `(N, H, W, C)`.
        kernel: `(k, k, C / groups, filters)`, k static.
        dilation: int >= 1.
        pad: zeros on every side of H and W.
        groups: the number of groups.
        convolve: `convolve(x, kernel)`, a stride-1, undilated, unpadded
            grouped convolution with `groups` groups (it carries the gradient).

    Returns:
        `(N, H + 2 pad - dilation (k - 1), W + ..., filters)`, the values of
        the plain convolution.
    """
    if dilation == 1:
        return _blocked(x, kernel, pad, groups, convolve)
    # Output row d*q + r reads only input rows of phase r: d^2 undilated convolutions.
    return phases.dilated_over_phases(
        x, kernel, dilation, pad, lambda x, kernel: _blocked(x, kernel, 0, groups, convolve)
    )


def _dims(x):
    return tuple(x.shape[i] if x.shape[i] is not None else tf.shape(x)[i] for i in range(4))


def _blocked(x, kernel, pad, groups, convolve):
    """Stride-1, undilated: space-to-depth, a convolution over blocks, depth-to-space."""
    size, _, in_per_group, filters = kernel.shape
    out_per_group = filters // groups
    n, height, width, _ = _dims(x)
    rows, cols = height + 2 * pad - size + 1, width + 2 * pad - size + 1
    block_rows, block_cols = -(-rows // BLOCK), -(-cols // BLOCK)
    taps = (size - 1 + BLOCK - 1) // BLOCK + 1
    # Inputs the blocks read, (blocks + taps - 1) * BLOCK: never fewer than H + 2 pad at stride 1.
    in_rows, in_cols = (block_rows + taps - 1) * BLOCK, (block_cols + taps - 1) * BLOCK
    x = tf.pad(x, [[0, 0], [pad, in_rows - height - pad], [pad, in_cols - width - pad], [0, 0]])
    # Channels (group, block row, block column, channel): each group's channels stay together.
    x = tf.reshape(x, (n, in_rows // BLOCK, BLOCK, in_cols // BLOCK, BLOCK, groups, in_per_group))
    x = tf.transpose(x, (0, 1, 3, 5, 2, 4, 6))
    x = tf.reshape(x, (n, in_rows // BLOCK, in_cols // BLOCK, groups * BLOCK * BLOCK * in_per_group))
    y = convolve(x, block_kernel(kernel, groups))
    y = tf.reshape(y, (n, block_rows, block_cols, groups, BLOCK, BLOCK, out_per_group))
    y = tf.transpose(y, (0, 1, 4, 2, 5, 3, 6))
    y = tf.reshape(y, (n, block_rows * BLOCK, block_cols * BLOCK, filters))
    return y[:, :rows, :cols, :]


def _tap_index(size):
    """`index[t, r, p]`: the kernel tap that block tap t applies from input phase r to
    output phase p (1-D, stride 1), or `size` (a zero) where none does."""
    taps = (size - 1 + BLOCK - 1) // BLOCK + 1
    index = np.full((taps, BLOCK, BLOCK), size, np.int32)
    for t in range(taps):
        for r in range(BLOCK):
            for p in range(BLOCK):
                tap = t * BLOCK + r - p  # output p + BLOCK*I reads input BLOCK*(I + t) + r
                if 0 <= tap < size:
                    index[t, r, p] = tap
    return index


def block_kernel(kernel, groups):
    """The kernel of the blocked convolution.

    `(k, k, C_g, G * O_g)` -> `(T, T, 4 C_g, G * 4 O_g)` with T = ceil((k - 1) / 2) + 1:
    input channels ordered (block row, block column, channel), outputs
    (group, block row, block column, output channel), zeros where no tap applies.
    """
    size, _, in_per_group, filters = kernel.shape
    out_per_group = filters // groups
    index = _tap_index(size)
    taps = index.shape[0]
    kernel = tf.reshape(kernel, (size, size, in_per_group, groups, out_per_group))
    kernel = tf.pad(kernel, [[0, 1], [0, 1], [0, 0], [0, 0], [0, 0]])  # tap `size`: zeros
    # Gather [t_h, t_w, r_h, r_w, p_h, p_w] -> kernel[index[t_h, r_h, p_h], index[t_w, r_w, p_w]].
    shape = (taps, taps, BLOCK, BLOCK, BLOCK, BLOCK)
    rows = np.broadcast_to(index[:, None, :, None, :, None], shape)
    cols = np.broadcast_to(index[None, :, None, :, None, :], shape)
    gathered = tf.gather_nd(kernel, np.stack([rows, cols], axis=-1))  # (..., C_g, G, O_g)
    # -> (t_h, t_w, r_h, r_w, C_g, G, p_h, p_w, O_g)
    gathered = tf.transpose(gathered, (0, 1, 2, 3, 6, 7, 4, 5, 8))
    return tf.reshape(
        gathered, (taps, taps, BLOCK * BLOCK * in_per_group, groups * BLOCK * BLOCK * out_per_group)
    )
