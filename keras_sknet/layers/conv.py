"""`GroupConv2D`: the grouped / depthwise / dilated convolution every SK path uses.

Why not `keras.layers.Conv2D(groups=...)`: on the TensorFlow backend Keras routes
every grouped convolution through XLA (`jit_compile=True`), which trains hundreds
of times slower on CPU than TensorFlow's own grouped `Conv2D` op. Keras also
refuses `strides > 1` together with `dilation_rate > 1` (every downsampling SK
unit has exactly that) and pads "same" asymmetrically at stride 2, where Caffe
and PyTorch pad symmetrically (so converted weights would not match).

This layer calls the backend convolution directly (one op per call, no
per-group loop), pads symmetrically like PyTorch, and computes strided dilated
convolutions exactly through a phase decomposition (see `conv2d`).
"""

import math

import keras
from keras import ops

from keras_sknet.utils.validation import check_positive_int

# He initialisation of the paper's Section 4.1 ([8] = He et al. 2015), in the
# fan-out form timm and torchvision use for ResNe(X)ts.
HE_NORMAL_FAN_OUT = {
    "class_name": "VarianceScaling",
    "config": {"scale": 2.0, "mode": "fan_out", "distribution": "untruncated_normal"},
}
PADDING_MODES = ("symmetric", "valid")


def _backend_conv(x, kernel, strides, dilation, pad, depthwise):
    """One convolution with `pad` zeros on each side, NHWC.

    `strides` and `dilation` are never both > 1 here.
    """
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        from keras_sknet.layers import tf_conv

        # At stride 1 TF's "SAME" pads an odd kernel symmetrically. Explicit
        # padding lists are avoided: TF cannot differentiate grouped convs with them.
        padding = "VALID"
        if pad and strides == 1 and pad == dilation * (kernel.shape[0] - 1) // 2:
            padding = "SAME"
        elif pad:
            x = tf.pad(x, [[0, 0], [pad, pad], [pad, pad], [0, 0]])
        if depthwise:
            # Depthwise kernels are stored grouped, (k, k, 1, C); TF wants (k, k, C, 1).
            # The depthwise op (not a C-group conv) is what TFLite runs fast.
            kernel = tf.transpose(kernel, (0, 1, 3, 2))
        # A grouped conv is one TF op when the kernel's input depth divides the
        # input channels (oneDNN on CPU, cuDNN on GPU); tf_conv makes it and its
        # gradients work on TF's Eigen CPU kernels too.
        return tf_conv.conv2d(x, kernel, strides, dilation, padding, depthwise=depthwise)
    if dilation > 1 and x.shape[1] is not None and x.shape[2] is not None:
        if keras.backend.backend() == "jax":
            return _jax_dilated_conv(x, kernel, dilation, pad)
        return _dilated_over_phases(x, kernel, dilation, pad)
    return _dilated_conv(x, kernel, strides, dilation, pad)


def _dilated_conv(x, kernel, strides, dilation, pad):
    """The backend's own convolution (cuDNN's, XLA's, PyTorch's), dilated or not."""
    if pad:
        x = ops.pad(x, [[0, 0], [pad, pad], [pad, pad], [0, 0]])
    return ops.conv(x, kernel, strides=strides, padding="valid", dilation_rate=dilation)


def _jax_dilated_conv(x, kernel, dilation, pad):
    """JAX: the dilated convolution forwards, its gradients over pixel phases.

    Forwards, cuDNN's and XLA's own dilated convolution is the faster one; their
    gradients are the slow part, an order of magnitude slower than over phases
    (measured on a GPU: docs/backends.md).
    """
    import jax

    @jax.custom_vjp
    def convolve(x, kernel):
        return _dilated_conv(x, kernel, 1, dilation, pad)

    def forward(x, kernel):
        return convolve(x, kernel), (x, kernel)

    def backward(saved, grad):
        _, pullback = jax.vjp(lambda x, k: _dilated_over_phases(x, k, dilation, pad), *saved)
        return pullback(grad)

    convolve.defvjp(forward, backward)
    return convolve(x, kernel)


def _dilated_over_phases(x, kernel, dilation, pad):
    """A stride-1 dilated convolution as one undilated convolution (PyTorch; JAX's gradients).

    Output row `i = d*a + r` reads padded rows `r + d*(a + t)`, taps `t`: the
    rows of phase `r` only, consecutively. So the d x d pixel phases become
    batch entries (space to batch), one undilated convolution runs over all of
    them, and the outputs interleave back. The same multiply-adds; cuDNN's
    gradients of dilated grouped convolutions are far slower than of undilated
    ones (SKNet-50's training step on a GPU: docs/backends.md).
    """
    d = dilation
    height, width, channels = x.shape[1], x.shape[2], x.shape[3]
    size = kernel.shape[0]
    out_h, out_w = height + 2 * pad - d * (size - 1), width + 2 * pad - d * (size - 1)
    # Pad up to multiples of d; the extra rows feed only outputs that are cut off.
    rows, cols = -(-(height + 2 * pad) // d), -(-(width + 2 * pad) // d)
    x = ops.pad(x, [[0, 0], [pad, d * rows - height - pad], [pad, d * cols - width - pad], [0, 0]])
    x = ops.reshape(x, (-1, rows, d, cols, d, channels))
    x = ops.transpose(x, (2, 4, 0, 1, 3, 5))  # (d, d, N, rows, cols, C)
    x = ops.reshape(x, (-1, rows, cols, channels))
    y = ops.conv(x, kernel, strides=1, padding="valid")
    filters = y.shape[-1]
    y_rows, y_cols = rows - size + 1, cols - size + 1
    y = ops.reshape(y, (d, d, -1, y_rows, y_cols, filters))
    y = ops.transpose(y, (2, 3, 0, 4, 1, 5))  # (N, y_rows, d, y_cols, d, F)
    y = ops.reshape(y, (-1, y_rows * d, y_cols * d, filters))
    return y[:, :out_h, :out_w, :]


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
        pad_h, pad_w = (-shape[1]) % strides, (-shape[2]) % strides
        x = ops.pad(x, [[0, 0], [0, pad_h], [0, pad_w], [0, 0]])
    shape = ops.shape(x)
    rows, cols = shape[1] // strides, shape[2] // strides
    # (N, rows, s, cols, s * C): row phase on axis 2, column phase inside the last axis.
    x = ops.reshape(x, (-1, rows, strides, cols, strides * channels))
    return ops.reshape(x[:, :, :1, :, :channels], (-1, rows, cols, channels))


def conv2d(x, kernel, strides=1, dilation=1, pad=0, depthwise=False):
    """NHWC convolution with symmetric zero padding and any stride with any dilation.

    Backends refuse `strides > 1` together with `dilation > 1` (TensorFlow's CPU
    kernels compute it only with oneDNN and cannot differentiate it without).
    Output position `i` reads padded rows `s*i + d*a` for taps `a = 0..k-1`.
    Tap `a` falls on row phase `(d*a) mod s`; the taps that share a phase are
    evenly spaced, `d / gcd(d, s)` apart, in the subsampled input `x[phase::s]`.
    So the strided dilated conv is the sum, over phase pairs, of stride-1
    dilated convs of phase-subsampled inputs with the matching sub-kernels.
    Every tap is computed once, for the outputs that need it: the
    multiply-adds are exactly those of the nominal convolution. When `s`
    divides `d` (3x3, dilation 2, stride 2: every downsampling SK path) there is
    a single phase and a single, undilated, convolution.

    Args:
        x: input, `(N, H, W, C)`.
        kernel: `(k, k, C / groups, filters)` (depthwise: `(k, k, 1, C)`).
        strides: int >= 1.
        dilation: int >= 1.
        pad: zeros added on every side of H and W.
        depthwise: whether `kernel` is depthwise (groups == channels == filters).

    Returns:
        `(N, (H + 2*pad - d*(k-1) - 1) // s + 1, ..., filters)`.
    """
    if strides == 1 or dilation == 1:
        return _backend_conv(x, kernel, strides, dilation, pad, depthwise)
    k = kernel.shape[0]
    if dilation % strides == 0 and pad == dilation * (k - 1) // 2:
        # One phase, and with "same" padding it lines up with x[::s]: a "same"
        # conv of dilation d/s on the subsampled input (no padded copy of x).
        step = dilation // strides
        return _backend_conv(subsample(x, strides), kernel, 1, step, step * (k - 1) // 2, depthwise)
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
            y = _backend_conv(sub_input, sub_kernel, 1, step, 0, depthwise)
            total = y if total is None else total + y
    return total


@keras.saving.register_keras_serializable(package="keras_sknet")
class GroupConv2D(keras.layers.Layer):
    """2D convolution with groups, symmetric padding and stride + dilation.

    Covers the convolutions of the paper's networks: grouped 3x3 (ResNeXt,
    Section 3.2), dilated 3x3 (the K5/K7 paths of Section 3.1, also at stride 2)
    and depthwise 3x3 (ShuffleNetV2, Section 4.1). Inputs are channels-last.

    Args:
        filters: number of output channels.
        kernel_size: odd int, the square kernel's size.
        strides: int, stride in both spatial dimensions.
        dilation_rate: int, dilation in both spatial dimensions; may be > 1
            together with `strides > 1`.
        groups: number of groups; must divide the input channels and `filters`.
            `groups == channels == filters` is a depthwise convolution.
        padding: `"symmetric"` pads `dilation_rate * (kernel_size - 1) // 2`
            zeros on every side (PyTorch/Caffe), `"valid"` pads nothing.
        use_bias: whether to add a bias.
        kernel_initializer, bias_initializer, kernel_regularizer,
        bias_regularizer: as in `keras.layers.Conv2D`.

    Returns:
        A `(N, H_out, W_out, filters)` tensor.

    Example:
        >>> conv = GroupConv2D(64, 3, strides=2, dilation_rate=2, groups=32)
        >>> conv(keras.ops.ones((1, 56, 56, 64))).shape
        (1, 28, 28, 64)
    """

    def __init__(
        self,
        filters,
        kernel_size,
        strides=1,
        dilation_rate=1,
        groups=1,
        padding="symmetric",
        use_bias=False,
        kernel_initializer=HE_NORMAL_FAN_OUT,
        bias_initializer="zeros",
        kernel_regularizer=None,
        bias_regularizer=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.filters = check_positive_int("filters", filters)
        self.kernel_size = check_positive_int("kernel_size", kernel_size)
        if self.kernel_size % 2 == 0:
            raise ValueError(
                f"`kernel_size` must be odd so that padding is symmetric. Received: kernel_size={kernel_size}"
            )
        self.strides = check_positive_int("strides", strides)
        self.dilation_rate = check_positive_int("dilation_rate", dilation_rate)
        self.groups = check_positive_int("groups", groups)
        if self.filters % self.groups:
            raise ValueError(f"`groups` must divide `filters`. Received: groups={groups}, filters={filters}")
        if padding not in PADDING_MODES:
            raise ValueError(f"`padding` must be one of {PADDING_MODES}. Received: padding={padding!r}")
        self.padding = padding
        self.use_bias = bool(use_bias)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)
        self.kernel_regularizer = keras.regularizers.get(kernel_regularizer)
        self.bias_regularizer = keras.regularizers.get(bias_regularizer)
        self.input_spec = keras.layers.InputSpec(ndim=4)

    @property
    def pad(self):
        if self.padding == "valid":
            return 0
        return self.dilation_rate * (self.kernel_size - 1) // 2

    def build(self, input_shape):
        input_shape = tuple(input_shape)  # a list when deserialised
        channels = input_shape[-1]
        if channels is None:
            raise ValueError(
                f"The channel dimension of the input to {self.name} must be known. "
                f"Received: input_shape={input_shape}"
            )
        if channels % self.groups:
            raise ValueError(
                f"`groups` must divide the input channels of {self.name}. "
                f"Received: groups={self.groups}, input channels={channels}"
            )
        self.depthwise = self.groups == channels == self.filters
        self.kernel = self.add_weight(
            name="kernel",
            shape=(self.kernel_size, self.kernel_size, channels // self.groups, self.filters),
            initializer=self.kernel_initializer,
            regularizer=self.kernel_regularizer,
        )
        self.bias = None
        if self.use_bias:
            self.bias = self.add_weight(
                name="bias",
                shape=(self.filters,),
                initializer=self.bias_initializer,
                regularizer=self.bias_regularizer,
            )
        self.input_spec = keras.layers.InputSpec(ndim=4, axes={-1: channels})

    def call(self, inputs):
        kernel = ops.cast(self.kernel, inputs.dtype)
        outputs = conv2d(inputs, kernel, self.strides, self.dilation_rate, self.pad, self.depthwise)
        if self.bias is not None:
            outputs = outputs + ops.cast(self.bias, outputs.dtype)
        return outputs

    def compute_output_shape(self, input_shape):
        span = self.dilation_rate * (self.kernel_size - 1) + 1

        def out(size):
            if size is None:
                return None
            return (size + 2 * self.pad - span) // self.strides + 1

        return (input_shape[0], out(input_shape[1]), out(input_shape[2]), self.filters)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "filters": self.filters,
                "kernel_size": self.kernel_size,
                "strides": self.strides,
                "dilation_rate": self.dilation_rate,
                "groups": self.groups,
                "padding": self.padding,
                "use_bias": self.use_bias,
                "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
                "bias_initializer": keras.initializers.serialize(self.bias_initializer),
                "kernel_regularizer": keras.regularizers.serialize(self.kernel_regularizer),
                "bias_regularizer": keras.regularizers.serialize(self.bias_regularizer),
            }
        )
        return config
