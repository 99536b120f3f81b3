"""Pixel phases: the index algebra behind every dilated and strided convolution trick.

A dilated or strided convolution reads its input in a regular lattice. Row `i`
of a stride-1 convolution of dilation `d` reads rows `i + d*t`: all of one
phase `i mod d`. Row `i` of a stride-`s` convolution reads rows `s*i + d*t`,
whose phases modulo `s` repeat with the taps. Splitting the input into its
pixel phases turns either one into ordinary (undilated, unstrided)
convolutions with exactly the same multiply-adds, which every backend and
kernel library runs fast and differentiates:

- `to_phases` / `from_phases`: the `d x d` phases of a stride-1 dilated
  convolution folded into the batch and back (space to batch). Used by
  PyTorch's dilated convolutions, JAX's gradients of them, and the blocked
  convolutions TensorFlow's Eigen kernels run (`tf_blocked_conv`).
- `strided_dilated_conv`: stride and dilation together, which no backend
  accepts, as a sum over phase pairs of stride-1 convolutions.
- `subsample`: `x[:, ::s, ::s]` as reshapes, which TFLite's XNNPACK runs.

Written once, with `keras.ops`, for every backend; shapes may be dynamic on
TensorFlow (`ops.shape` gives tensors for the unknown dimensions).
"""

import math

from keras import ops


def to_phases(x, dilation, pad):
    """Pads `x` and folds its `dilation x dilation` pixel phases into the batch.

    Phase `(r, c)` holds the padded pixels `(d*a + r, d*b + c)`. The padding is
    `pad` zeros on every side, then up to a multiple of `dilation` at the
    bottom and right (those rows feed only outputs that `from_phases` cuts off).

    Args:
        x: `(N, H, W, C)`.
        dilation: int >= 1, `d`.
        pad: zeros on every side of H and W.

    Returns:
        `(d*d*N, ceil((H + 2 pad) / d), ceil((W + 2 pad) / d), C)`, phase-major.

    Example:
        >>> to_phases(keras.ops.ones((2, 9, 9, 8)), 2, 1).shape
        (8, 6, 6, 8)
    """
    d = dilation
    n, height, width, channels = ops.shape(x)
    rows, cols = -(-(height + 2 * pad) // d), -(-(width + 2 * pad) // d)
    x = ops.pad(x, [[0, 0], [pad, d * rows - height - pad], [pad, d * cols - width - pad], [0, 0]])
    x = ops.reshape(x, (n, rows, d, cols, d, channels))
    x = ops.transpose(x, (2, 4, 0, 1, 3, 5))  # (d, d, N, rows, cols, C)
    return ops.reshape(x, (d * d * n, rows, cols, channels))


def from_phases(y, dilation, rows, cols):
    """Interleaves what a convolution made of `to_phases`' output back into one image.

    Args:
        y: `(d*d*N, R, C', F)`, phase-major as `to_phases` gives it.
        dilation: int >= 1, `d`.
        rows, cols: the output's size (at most `d*R`, `d*C'`).

    Returns:
        `(N, rows, cols, F)`: output pixel `(d*a + r, d*b + c)` from phase `(r, c)`.
    """
    d = dilation
    total, phase_rows, phase_cols, filters = ops.shape(y)
    y = ops.reshape(y, (d, d, total // (d * d), phase_rows, phase_cols, filters))
    y = ops.transpose(y, (2, 3, 0, 4, 1, 5))  # (N, R, d, C', d, F)
    y = ops.reshape(y, (total // (d * d), phase_rows * d, phase_cols * d, filters))
    return y[:, :rows, :cols, :]


def dilated_over_phases(x, kernel, dilation, pad, convolve):
    """A stride-1 dilated convolution as one undilated convolution over the pixel phases.

    Output row `i = d*a + r` reads padded rows `r + d*(a + t)`, taps `t`: the
    rows of phase `r` only, consecutively. So one undilated convolution over
    all phases, interleaved back, is the dilated convolution, with the same
    multiply-adds.

    Args:
        x: `(N, H, W, C)`.
        kernel: `(k, k, C / groups, F)`, `k` static.
        dilation: int >= 1.
        pad: zeros on every side of H and W.
        convolve: `convolve(x, kernel)`, the stride-1, undilated, unpadded
            convolution to run (it carries the groups and the gradient).

    Returns:
        `(N, H + 2 pad - d (k - 1), W + 2 pad - d (k - 1), F)`.
    """
    size = kernel.shape[0]
    _, height, width, _ = ops.shape(x)
    span = dilation * (size - 1)
    y = convolve(to_phases(x, dilation, pad), kernel)
    return from_phases(y, dilation, height + 2 * pad - span, width + 2 * pad - span)


def subsample(x, strides):
    """`x[:, ::strides, ::strides, :]`, as a reshape and a unit-stride slice.

    The same values by another route: TFLite's XNNPACK delegate does not run
    strided slices, and each one would cut the exported graph into separate
    delegate partitions (ShuffleNetV2 + SK has six); reshapes and unit-stride
    slices it runs. Inputs whose height or width is not a multiple of
    `strides` are first padded up to one (the padding is never kept).
    """
    if strides == 1:
        return x
    channels = x.shape[-1]
    height, width = x.shape[1], x.shape[2]
    if height is None or width is None or height % strides or width % strides:
        shape = ops.shape(x)
        # (s - n % s) % s, not (-n) % s: ONNX converters turn a modulo of a negative
        # size into a truncated one (-1 instead of 1), which cropped odd-sized inputs.
        pad_h = (strides - shape[1] % strides) % strides
        pad_w = (strides - shape[2] % strides) % strides
        x = ops.pad(x, [[0, 0], [0, pad_h], [0, pad_w], [0, 0]])
    shape = ops.shape(x)
    rows, cols = shape[1] // strides, shape[2] // strides
    # (N, rows, s, cols, s * C): row phase on axis 2, column phase inside the last axis.
    x = ops.reshape(x, (-1, rows, strides, cols, strides * channels))
    return ops.reshape(x[:, :, :1, :, :channels], (-1, rows, cols, channels))


def strided_dilated_conv(x, kernel, strides, dilation, pad, convolve):
    """A convolution with `strides > 1` and `dilation > 1`, from stride-1 convolutions.

    Output position `i` reads padded rows `s*i + d*a` for taps `a = 0..k-1`.
    Tap `a` falls on row phase `(d*a) mod s`; the taps that share a phase are
    evenly spaced, `d / gcd(d, s)` apart, in the subsampled input `x[phase::s]`.
    So the strided dilated convolution is the sum, over phase pairs, of
    stride-1 dilated convolutions of phase-subsampled inputs with the matching
    sub-kernels. Every tap is computed once, for the outputs that need it: the
    multiply-adds are exactly those of the nominal convolution. When `s`
    divides `d` (3x3, dilation 2, stride 2: every downsampling SK path) there
    is a single phase, and with "same" padding it lines up with `x[::s]`: one
    "same" convolution of dilation `d / s` on the subsampled input.

    Args:
        x: `(N, H, W, C)`.
        kernel: `(k, k, C / groups, F)`, `k` static.
        strides, dilation: ints > 1.
        pad: zeros on every side of H and W.
        convolve: `convolve(x, kernel, dilation, pad)`, a stride-1 convolution.

    Returns:
        `(N, (H + 2 pad - d (k - 1) - 1) // s + 1, ..., F)`.
    """
    k = kernel.shape[0]
    if dilation % strides == 0 and pad == dilation * (k - 1) // 2:
        step = dilation // strides
        return convolve(subsample(x, strides), kernel, step, step * (k - 1) // 2)
    if pad:
        x = ops.pad(x, [[0, 0], [pad, pad], [pad, pad], [0, 0]])
    gcd = math.gcd(dilation, strides)
    step = dilation // gcd  # input spacing, in x[::s], of the taps of one phase
    tap_step = strides // gcd  # kernel spacing of the taps of one phase
    # Each phase's taps are a0, a0 + tap_step, ...: keep a0 and their count.
    phases = [(a0, len(range(a0, k, tap_step))) for a0 in range(tap_step)]

    span = dilation * (k - 1) + 1
    out_h = (ops.shape(x)[1] - span) // strides + 1
    out_w = (ops.shape(x)[2] - span) // strides + 1
    total = None
    for a_h, taps_h in phases:
        for a_w, taps_w in phases:
            # The first tap reads padded row `d * a0` for output 0; keep just the
            # rows the outputs need, so that no tap is computed in vain.
            rows = out_h + step * (taps_h - 1)
            cols = out_w + step * (taps_w - 1)
            top, left = dilation * a_h, dilation * a_w
            sub_input = x[
                :,
                top : top + strides * (rows - 1) + 1 : strides,
                left : left + strides * (cols - 1) + 1 : strides,
                :,
            ]
            sub_kernel = kernel[a_h::tap_step, a_w::tap_step]
            y = convolve(sub_input, sub_kernel, step, 0)
            total = y if total is None else total + y
    return total
