"""Grouped and dilated convolutions that run on every TensorFlow CPU kernel library.

With oneDNN (see `keras_sknet.platform`), and on GPUs, TensorFlow's own
`Conv2D` and its gradients handle every convolution of the SK models. Its Eigen
CPU kernels, which run wherever oneDNN is off (CPUs without AVX-512, Apple
silicon, `TF_ENABLE_ONEDNN_OPTS=0`) or lacks a data type (bfloat16 without
AVX-512), compute grouped and dilated convolutions forwards but refuse:

1. their gradients (`Conv2DBackpropInput` / `Conv2DBackpropFilter`: "Gradients
   for grouped convolutions are not supported", "dilation rates larger than 1");
2. a grouped convolution fused with the BatchNorm, bias or ReLU after it, which
   TensorFlow's graph optimiser (grappler's remapper) builds in every float32
   graph ("Fused conv implementation does not support grouped convolutions").

`conv2d` asks TensorFlow once per data type whether its kernels do both
(`native_kernels`). Where they do not, the convolution is
`portable_conv2d`: the same forward op behind a `Snapshot` that the remapper
does not fuse across, and gradients written as forward convolutions, which every
kernel library runs:

- input gradient: the convolution of the output gradient (zero-stuffed for
  stride > 1, padded) with the flipped kernel, each group's input and output
  channels swapped;
- kernel gradient: the convolution of the input, with batch and channels
  swapped, by the output gradient as the kernel; a grouped convolution with
  the same groups, its stride the original dilation and its dilation the
  original stride.

Both are exact: the same sums in another order (within float rounding of
TensorFlow's own gradients), and, being `portable_conv2d` again, they are
differentiable too (second-order gradients work).

One native op is wrong: oneDNN's bfloat16 kernel gradient of a grouped, dilated
convolution (`Conv2DBackpropFilter`, TensorFlow 2.21, oneDNN 3.7.3) reads past
the end of its buffer from about 29 pixels wide with fewer than 16 channels per
group (SKNet-50's first stage: 56 px, 4 per group): its gradients are NaN or
garbage, and where the buffer ends a page, the process segfaults. There
`conv2d` keeps the forward op and the input gradient, and computes the kernel
gradient over pixel phases, undilated (`_phase_kernel_gradient_conv`).

Where TensorFlow runs Eigen, grouped convolutions with few channels per group
are also rewritten over 2x2 pixel blocks (`tf_blocked_conv`), which Eigen runs
faster. Exported graphs (`convolution_path("portable")`) keep the plain
convolution, which TFLite and oneDNN run best.
"""

import contextlib
import functools
import os
import threading

import tensorflow as tf

from keras_sknet.layers import phases, tf_blocked_conv


@functools.cache
def native_kernels(dtype, device_type="CPU"):
    """Whether TensorFlow's own kernels run grouped and dilated convolutions fully.

    Asks TensorFlow once per data type and device type, on a tiny grouped,
    dilated convolution, eagerly (also when called while tracing): its two
    gradient ops, and a graph in which grappler fuses a grouped convolution
    with the BatchNorm and ReLU after it. oneDNN and cuDNN run all three;
    Eigen none (each check stands alone, so that a kernel library that lacks
    only one, say on an Arm build, is also caught).

    Args:
        dtype: a `tf.DType` or its name.
        device_type: `"CPU"` or `"GPU"`.

    Returns:
        True where `tf.nn.conv2d` can be used as it is.
    """
    if device_type != "CPU":
        return True  # cuDNN and ROCm compute them all
    dtype = tf.as_dtype(dtype)
    with tf.init_scope(), tf.device("/CPU:0"):
        x = tf.ones((1, 6, 6, 4), dtype)
        kernel = tf.ones((3, 3, 2, 4), dtype)
        dy = tf.ones((1, 2, 2, 4), dtype)
        attrs = dict(strides=[1, 1, 1, 1], padding="VALID", dilations=[1, 2, 2, 1])

        @tf.function
        def fused(x):
            y = tf.nn.conv2d(x, kernel, 1, "SAME")
            ones = tf.ones((4,), tf.float32)
            y, _, _ = tf.compat.v1.nn.fused_batch_norm(
                y, ones, ones, mean=ones, variance=ones, is_training=False
            )
            return tf.nn.relu(y)

        try:
            tf.raw_ops.Conv2DBackpropInput(input_sizes=x.shape, filter=kernel, out_backprop=dy, **attrs)
            tf.raw_ops.Conv2DBackpropFilter(input=x, filter_sizes=kernel.shape, out_backprop=dy, **attrs)
            fused(x)
        except tf.errors.OpError:
            # Eigen refuses them (InvalidArgument, Unimplemented, NotFound); oneDNN
            # without the instructions a data type needs (bfloat16 with its ISA capped
            # below AVX-512) aborts instead of falling back.
            return False
    return True


def _device_type(x):
    """`"GPU"` or `"CPU"`: where an op on `x` runs (the default device inside a graph)."""
    device = (getattr(x, "device", "") or "").upper()
    if "GPU" in device:
        return "GPU"
    if "CPU" in device:
        return "CPU"
    return "GPU" if tf.config.list_logical_devices("GPU") else "CPU"


_settings = threading.local()
PATHS = (None, "native", "portable", "blocked")


@contextlib.contextmanager
def convolution_path(path=None, gradients=True):
    """Sets how convolutions traced inside the block are built.

    Args:
        path: `"native"` (TensorFlow's ops as they are), `"portable"` (the
            fusion barrier and, with `gradients`, the portable gradients, for
            every grouped or dilated convolution), `"blocked"` (portable, and
            small groups over pixel blocks: what Eigen runs fastest) or None
            (decide per data type and device, the default: native where
            TensorFlow's kernels have the gradients, else blocked).
        gradients: False builds inference graphs: the portable convolutions
            get no gradient functions (frozen graphs and exports cannot store
            them).

    Example:
        >>> with convolution_path("portable", gradients=False):   # a graph for any CPU
        ...     concrete = tf.function(model).get_concrete_function(spec)
    """
    if path not in PATHS:
        raise ValueError(f"`path` must be one of {PATHS}. Received: path={path!r}")
    previous = getattr(_settings, "value", (None, True))
    _settings.value = (path, bool(gradients))
    try:
        yield
    finally:
        _settings.value = previous


def _current_settings():
    return getattr(_settings, "value", (None, True))


@contextlib.contextmanager
def _switched_on(name):
    """Sets the trace setting `name` (a flag of this thread's `_settings`) inside the block."""
    previous = getattr(_settings, name, False)
    setattr(_settings, name, True)
    try:
        yield
    finally:
        setattr(_settings, name, previous)


@contextlib.contextmanager
def explicit_same_padding():
    """Dilated "same" convolutions traced inside the block get their padding as numbers.

    A "same" convolution at stride 1 pads `dilation * (k - 1) / 2` on every side,
    whatever the input's size. Written as `"SAME"`, an input of unknown size reaches
    ONNX as `auto_pad=SAME_UPPER`, which ONNX Runtime refuses on dilated
    convolutions ("Dilation not supported for AutoPadType::SAME_UPPER"); written as
    explicit pads it runs. Used by the ONNX exporter (TFLite and SavedModels keep
    `"SAME"`, which their runtimes handle).

    Example:
        >>> with convolution_path("native", gradients=False), explicit_same_padding():
        ...     concrete = tf.function(model).get_concrete_function(spec)
    """
    with _switched_on("explicit_same"):
        yield


def _padding_for_trace(padding, kernel, dilation):
    """`padding`, or the explicit pads of a stride-1 dilated "same" convolution inside `explicit_same_padding`."""
    if padding != "SAME" or dilation == 1 or not getattr(_settings, "explicit_same", False):
        return padding
    pad = dilation * (kernel.shape[0] - 1) // 2
    return [[0, 0], [pad, pad], [pad, pad], [0, 0]]


@functools.cache
def _onednn_without_avx512():
    from keras_sknet import platform

    return platform.onednn_enabled() and (
        "avx512f" not in platform.cpu_features() or onednn_capped_below_avx512()
    )


def onednn_capped_below_avx512(cap=None):
    """Whether `ONEDNN_MAX_CPU_ISA` (or `cap`) limits oneDNN to instructions below AVX-512.

    The cap makes oneDNN run an AVX-512 CPU as an AVX2 one (the stand-in for
    AVX2 machines), and then it takes the same slow road at batch 1: SKNet-50
    with the fused BatchNorms takes 2.7 s an image on a Zen 4 capped at AVX2,
    0.16 s with them as a multiply and a bias add (measured, TensorFlow 2.21).

    Args:
        cap: an ISA name as oneDNN spells it (`AVX2`, `AVX2_VNNI`, `AVX512_CORE`,
            `ALL`, ...); by default the environment's.
    """
    if cap is None:
        cap = os.environ.get("ONEDNN_MAX_CPU_ISA", "")
    cap = cap.upper()
    return cap.startswith(("SSE", "AVX2")) or cap == "AVX"


@contextlib.contextmanager
def affine_batch_norm():
    """Inference BatchNorms traced inside the block are a multiply and a bias add, on any machine.

    For graphs that TensorFlow runs as they are, somewhere else (SavedModels): the
    serving process may run oneDNN on an AVX2 CPU, where the fused op is ten times
    slower at batch 1 (`affine_inference_batch_norm`). TFLite and ONNX exports do not
    use it: their converters fold the fused op into the convolution.

    Example:
        >>> with convolution_path("portable", gradients=False), affine_batch_norm():
        ...     concrete = tf.function(model).get_concrete_function(spec)
    """
    with _switched_on("affine_batch_norm"):
        yield


def affine_inference_batch_norm(x):
    """Whether an inference BatchNorm of `x` should be a multiply and a bias add, not the fused op.

    On oneDNN without AVX-512 (AVX2 CPUs), grappler fuses a convolution with the
    fused BatchNorm after it, and oneDNN runs the fused 1x1 convolutions at batch 1
    through its gemm kernel with four per-channel post-ops: SKNet-50 at batch 1
    then takes ten times as long as unfused. The same scale and offset as a
    multiply and `bias_add` are not fused that way and cost nothing at larger
    batches. In the default path on such a machine, and inside `affine_batch_norm`
    (SavedModels, which may be served on one); other exported graphs keep the fused
    op, which converters fold into the convolution.

    Args:
        x: the BatchNorm's input.
    """
    if getattr(_settings, "affine_batch_norm", False):
        return True
    path, _ = _current_settings()
    return path is None and _device_type(x) == "CPU" and _onednn_without_avx512()


def path_for(x, groups, dilation):
    """How `conv2d` computes a convolution of `x`: `"native"`, `"portable"` or `"blocked"`."""
    if groups == 1 and dilation == 1:
        return "native"  # a plain convolution: every kernel library differentiates it
    path, _ = _current_settings()
    if path is not None:
        return path
    return "native" if native_kernels(x.dtype, _device_type(x)) else "blocked"


def conv2d(x, kernel, strides, dilation, padding, depthwise=False, groups=None):
    """`tf.nn.conv2d` (or the depthwise op) that works on every kernel library.

    Args:
        x: `(N, H, W, C)`.
        kernel: `(k, k, C / groups, filters)`; depthwise: `(k, k, C, 1)`.
        strides, dilation: ints, not both > 1.
        padding: `"SAME"` (only at stride 1, odd kernels: symmetric) or `"VALID"`.
        depthwise: run `tf.nn.depthwise_conv2d`.
        groups: the number of groups; by default `C / kernel.shape[2]`.

    Returns:
        The convolution, as TensorFlow's op computes it.
    """
    if depthwise:
        # The depthwise kernels and their gradients exist on every kernel library.
        return tf.nn.depthwise_conv2d(
            x,
            kernel,
            (1, strides, strides, 1),
            _padding_for_trace(padding, kernel, dilation),
            dilations=(dilation, dilation),
        )
    if groups is None:
        groups = x.shape[-1] // kernel.shape[2]
    path = path_for(x, groups, dilation)
    if path == "native" and _bfloat16_kernel_gradient_is_broken(x, kernel, groups, dilation, padding):
        return _phase_kernel_gradient_conv(x, kernel, dilation, padding)
    if path == "native":
        return tf.nn.conv2d(
            x, kernel, strides, _padding_for_trace(padding, kernel, dilation), dilations=dilation
        )
    return portable_conv2d(x, kernel, strides, dilation, padding, groups, blocked=path == "blocked")


def _bfloat16_kernel_gradient_is_broken(x, kernel, groups, dilation, padding):
    """Whether the native op's kernel gradient would be oneDNN's broken bfloat16 one.

    The native path on CPU with bfloat16 means oneDNN's bfloat16 kernels
    (Eigen has no grouped gradients, so it never gets here). Every grouped,
    dilated convolution is routed around, not only the shapes seen failing:
    the over-read depends on sizes and on where the buffer lands. Inference
    graphs (`gradients=False`) keep the plain op.
    """
    odd_same = padding == "VALID" or kernel.shape[0] % 2 == 1
    return (
        x.dtype == tf.bfloat16
        and groups > 1
        and dilation > 1
        and odd_same
        and _current_settings()[1]
        and _device_type(x) == "CPU"
    )


def _phase_kernel_gradient_conv(x, kernel, dilation, padding):
    """A stride-1 dilated convolution whose kernel gradient is computed over pixel phases.

    Forwards, and for the input gradient, TensorFlow's own ops. The kernel
    gradient is TensorFlow's undilated one over the `d x d` pixel phases of the
    padded input (`phases.to_phases`) and of the output gradient: output pixel
    `(d*a + r, d*b + c)` reads only phase `(r, c)` of the input, consecutively,
    so these are the same multiply-adds (summed in another order).
    """
    pad = dilation * (kernel.shape[0] - 1) // 2 if padding == "SAME" else 0
    attrs = dict(strides=[1, 1, 1, 1], dilations=[1, dilation, dilation, 1])

    @tf.custom_gradient
    def convolve(x, kernel):
        def gradient(dy):
            dx = tf.raw_ops.Conv2DBackpropInput(
                input_sizes=tf.shape(x), filter=kernel, out_backprop=dy, padding=padding, **attrs
            )
            # to_phases pads dy with zeros up to a multiple of d: outputs the forward never had.
            dkernel = tf.raw_ops.Conv2DBackpropFilter(
                input=phases.to_phases(x, dilation, pad),
                filter_sizes=tf.shape(kernel),
                out_backprop=phases.to_phases(dy, dilation, 0),
                strides=[1, 1, 1, 1],
                padding="VALID",
            )
            return dx, dkernel

        return tf.nn.conv2d(x, kernel, 1, padding, dilations=dilation), gradient

    return convolve(x, kernel)


def portable_conv2d(x, kernel, strides, dilation, padding, groups=None, blocked=False):
    """A grouped / dilated convolution whose graph and gradients need no special kernel.

    Args:
        As `conv2d` (not depthwise), and
        blocked: compute small groups over pixel blocks where that is faster
            on Eigen (`tf_blocked_conv.applies`).

    Returns:
        The same values as `tf.nn.conv2d(x, kernel, strides, padding, dilations=dilation)`.

    Example:
        >>> x = tf.random.normal((2, 9, 9, 8))
        >>> kernel = tf.random.normal((3, 3, 2, 8))   # 4 groups
        >>> portable_conv2d(x, kernel, 1, 2, "SAME").shape
        TensorShape([2, 9, 9, 8])
    """
    if strides > 1 and dilation > 1:
        raise ValueError(
            f"`strides` and `dilation` cannot both be > 1. Received: strides={strides}, dilation={dilation}"
        )
    if padding == "SAME" and (strides != 1 or kernel.shape[0] % 2 == 0):
        raise ValueError(
            "'SAME' padding is symmetric only at stride 1 with odd kernels. "
            f"Received: strides={strides}, kernel_size={kernel.shape[0]}"
        )
    x = tf.convert_to_tensor(x)
    kernel = tf.convert_to_tensor(kernel)
    if groups is None:
        groups = x.shape[-1] // kernel.shape[2]
    if blocked and tf_blocked_conv.applies(kernel, strides, groups):
        pad = dilation * (kernel.shape[0] - 1) // 2 if padding == "SAME" else 0
        return tf_blocked_conv.blocked_conv2d(
            x,
            kernel,
            dilation,
            pad,
            groups,
            lambda blocks, block_kernel: _barrier_conv(blocks, block_kernel, 1, 1, "VALID", groups),
        )
    return _barrier_conv(x, kernel, strides, dilation, padding, groups)


def _barrier_conv(x, kernel, strides, dilation, padding, groups):
    """`tf.nn.conv2d` behind the fusion barrier, with the portable gradients."""

    def forward(x, kernel):
        y = tf.nn.conv2d(x, kernel, strides, padding, dilations=dilation)
        # A barrier that grappler neither removes nor fuses across: without it
        # the remapper fuses a grouped conv with the BatchNorm/ReLU after it
        # into an op Eigen does not implement.
        return tf.raw_ops.Snapshot(input=y)

    if not _current_settings()[1]:
        return forward(x, kernel)

    @tf.custom_gradient
    def convolve(x, kernel):
        y = forward(x, kernel)

        def gradient(dy):
            return (
                _input_gradient(dy, kernel, tf.shape(x), strides, dilation, padding, groups),
                _kernel_gradient(x, dy, kernel, strides, dilation, padding, groups),
            )

        return y, gradient

    return convolve(x, kernel)


def _dim(tensor, axis):
    """`tensor`'s size along `axis`: a Python int where known, else a scalar tensor."""
    static = tensor.shape[axis]
    return static if static is not None else tf.shape(tensor)[axis]


def _transposed_kernel(kernel, groups):
    """The kernel of the input gradient: flipped, each group's in/out channels swapped.

    `(k, k, C_g, G * O_g)` -> `(k, k, O_g, G * C_g)`.
    """
    rows, cols, in_per_group, filters = (_dim(kernel, axis) for axis in range(4))
    out_per_group = filters // groups
    kernel = tf.reverse(kernel, (0, 1))
    kernel = tf.reshape(kernel, (rows, cols, in_per_group, groups, out_per_group))
    kernel = tf.transpose(kernel, (0, 1, 4, 3, 2))
    return tf.reshape(kernel, (rows, cols, out_per_group, groups * in_per_group))


def _input_gradient(dy, kernel, x_shape, strides, dilation, padding, groups):
    transposed = _transposed_kernel(kernel, groups)
    if padding == "SAME":  # stride 1, symmetric: the gradient is a "same" conv too
        return conv2d(dy, transposed, 1, dilation, "SAME", groups=groups)
    if strides > 1:
        return _strided_input_gradient(dy, kernel, x_shape, strides, groups)
    span_rows = dilation * (_dim(kernel, 0) - 1)
    span_cols = dilation * (_dim(kernel, 1) - 1)
    dy = tf.pad(dy, [[0, 0], [span_rows, span_rows], [span_cols, span_cols], [0, 0]])
    dx = conv2d(dy, transposed, 1, dilation, "VALID", groups=groups)
    # Input rows past the last window (when (H - span - 1) % strides != 0) get no gradient.
    dx_shape = tf.shape(dx)
    return tf.pad(dx, [[0, 0], [0, x_shape[1] - dx_shape[1]], [0, x_shape[2] - dx_shape[2]], [0, 0]])


def _strided_input_gradient(dy, kernel, x_shape, strides, groups):
    """The input gradient of a strided (undilated, unpadded) conv, one phase per output channel block.

    Input row `s*q + r` gets `sum_t dy[q - t] * w[s*t + r]`: for every phase r a
    stride-1 convolution of dy. All s^2 phases are one convolution whose
    outputs are (group, row phase, column phase, channel), then interleaved:
    the multiply-adds of the phases' taps only, where zero-stuffing dy would
    multiply s^2 times as many zeros.
    """
    size, _, in_per_group, filters = kernel.shape
    out_per_group = filters // groups
    taps = -(-size // strides)  # T: taps per phase, at most
    reach = taps * strides
    # kernel[s*t + r] for t' = T-1-t (the correlation runs over dy[q - T + 1 + u]).
    kernel = tf.reshape(kernel, (size, size, in_per_group, groups, out_per_group))
    kernel = tf.pad(kernel, [[0, reach - size], [0, reach - size], [0, 0], [0, 0], [0, 0]])
    kernel = tf.reshape(kernel, (taps, strides, taps, strides, in_per_group, groups, out_per_group))
    kernel = tf.reverse(kernel, (0, 2))
    # -> (u_h, u_w, O_g, G, r_h, r_w, C_g)
    kernel = tf.transpose(kernel, (0, 2, 6, 5, 1, 3, 4))
    kernel = tf.reshape(kernel, (taps, taps, out_per_group, groups * strides * strides * in_per_group))
    dy = tf.pad(dy, [[0, 0], [taps - 1, taps - 1], [taps - 1, taps - 1], [0, 0]])
    phases = conv2d(dy, kernel, 1, 1, "VALID", groups=groups)
    n, rows, cols, _ = (_dim(phases, axis) for axis in range(4))
    dx = tf.reshape(phases, (n, rows, cols, groups, strides, strides, in_per_group))
    dx = tf.transpose(dx, (0, 1, 4, 2, 5, 3, 6))
    dx = tf.reshape(dx, (n, rows * strides, cols * strides, groups * in_per_group))
    # Cover exactly the input: rows past the last window get no gradient.
    dx = tf.pad(
        dx,
        [
            [0, 0],
            [0, tf.maximum(x_shape[1] - rows * strides, 0)],
            [0, tf.maximum(x_shape[2] - cols * strides, 0)],
            [0, 0],
        ],
    )
    return dx[:, : x_shape[1], : x_shape[2], :]


def _kernel_gradient(x, dy, kernel, strides, dilation, padding, groups):
    rows, cols, in_per_group = (_dim(kernel, axis) for axis in range(3))
    if padding == "SAME":
        pad_rows, pad_cols = dilation * (rows - 1) // 2, dilation * (cols - 1) // 2
        x = tf.pad(x, [[0, 0], [pad_rows, pad_rows], [pad_cols, pad_cols], [0, 0]])
    # dW[a, b, c, o] = sum_{n,i,j} x[n, s*i + d*a, s*j + d*b, c] dy[n, i, j, o] within a group:
    # a convolution of x, with its channels as the batch and (group, image) as the
    # channels, by dy as the kernel, at stride d and dilation s, with the same groups.
    n, height, width = (_dim(x, axis) for axis in range(3))
    x = tf.reshape(x, (n, height, width, groups, in_per_group))
    x = tf.transpose(x, (4, 1, 2, 3, 0))
    x = tf.reshape(x, (in_per_group, height, width, groups * n))
    dy = tf.transpose(dy, (1, 2, 0, 3))  # (H_out, W_out, N, filters): N input channels per group
    dw = conv2d(x, dy, dilation, strides, "VALID", groups=groups)  # (C_g, >= k, >= k, filters)
    return tf.transpose(dw[:, :rows, :cols, :], (1, 2, 0, 3))
