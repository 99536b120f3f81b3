"""`GroupConv2D`: the grouped / depthwise / dilated convolution every SK path uses.

Why not `keras.layers.Conv2D(groups=...)`: on the TensorFlow backend Keras routes
every grouped convolution through XLA (`jit_compile=True`), which trains hundreds
of times slower on CPU than TensorFlow's own grouped `Conv2D` op. Keras also
refuses `strides > 1` together with `dilation_rate > 1` (every downsampling SK
unit has exactly that) and pads "same" asymmetrically at stride 2, where Caffe
and PyTorch pad symmetrically (so converted weights would not match).

This layer calls the backend convolution directly (one op per call, no
per-group loop) and pads symmetrically like PyTorch. Every platform trick
behind it has one home:

- `conv2d` (here): the one door. Stride with dilation goes through
  `phases.strided_dilated_conv`; everything else straight to the backend.
- `phases`: the pixel-phase algebra (space to batch, the strided-dilated
  split, subsampling by reshapes), written once with `keras.ops`.
- `backend_conv`: which convolution each backend runs, and JAX's gradient of
  dilated convolutions.
- `tf_conv`: TensorFlow's kernel workarounds (Eigen's missing gradients and
  fusions, the export paths); `tf_blocked_conv`: small groups over pixel
  blocks for Eigen.
"""

import keras
from keras import ops

from keras_sknet.layers import phases
from keras_sknet.layers.backend_conv import backend_conv
from keras_sknet.utils.validation import check_positive_int

# He initialisation of the paper's Section 4.1 ([8] = He et al. 2015), in the
# fan-out form timm and torchvision use for ResNe(X)ts.
HE_NORMAL_FAN_OUT = {
    "class_name": "VarianceScaling",
    "config": {"scale": 2.0, "mode": "fan_out", "distribution": "untruncated_normal"},
}
PADDING_MODES = ("symmetric", "valid")


def own_initializer(initializer):
    """A copy of `initializer` for one layer alone.

    Keras draws an unseeded initializer's seed when the initializer is made, and
    the same seed gives the same draws on every call: one instance shared by a
    block's convolutions started SKConv's two paths (and a bottleneck's `conv3`
    and shortcut) from identical kernels. A copy made from the config draws its
    own seed; an explicitly seeded initializer keeps its seed.

    Args:
        initializer: anything `keras.initializers.get` accepts.

    Returns:
        A new initializer instance.
    """
    initializer = keras.initializers.get(initializer)
    return initializer.__class__.from_config(initializer.get_config())


# oneDNN's kernel gradient of a strided 1x1 convolution with few input channels writes past its
# scratchpad on one thread (glibc then aborts, or a later op crashes or hangs): in TensorFlow
# (1 to 5 channels) and in PyTorch on channels-last tensors, as Keras passes them (1 to 7).
# Measured on a Zen 3 (AVX2), TensorFlow 2.21, PyTorch 2.14. 8 is one AVX2 register of float32.
FEW_CHANNELS = 8


def conv2d(x, kernel, strides=1, dilation=1, pad=0, depthwise=False):
    """NHWC convolution with symmetric zero padding and any stride with any dilation.

    Backends refuse `strides > 1` together with `dilation > 1` (TensorFlow's CPU
    kernels compute it only with oneDNN and cannot differentiate it without);
    it is computed exactly, with the nominal multiply-adds, over pixel phases
    (`phases.strided_dilated_conv`).

    Args:
        x: input, `(N, H, W, C)`.
        kernel: `(k, k, C / groups, filters)` (depthwise: `(k, k, 1, C)`).
        strides: int >= 1.
        dilation: int >= 1.
        pad: zeros added on every side of H and W.
        depthwise: whether `kernel` is depthwise (groups == channels == filters).

    Returns:
        `(N, (H + 2*pad - d*(k-1) - 1) // s + 1, ..., filters)`.

    Example:
        >>> conv2d(keras.ops.ones((1, 9, 9, 8)), keras.ops.ones((3, 3, 2, 8)), 2, 2, 2).shape
        (1, 5, 5, 8)
    """
    if strides > 1 and pad == 0 and _pointwise_on_few_channels(kernel, depthwise):
        # A 1x1 window at stride s reads every s-th pixel: subsampling first is the same
        # convolution (values and gradients), and keeps oneDNN away from its bug above.
        x, strides = x[:, ::strides, ::strides, :], 1
    if strides == 1 or dilation == 1:
        return backend_conv(x, kernel, strides, dilation, pad, depthwise)
    return phases.strided_dilated_conv(
        x,
        kernel,
        strides,
        dilation,
        pad,
        lambda x, kernel, dilation, pad: backend_conv(x, kernel, 1, dilation, pad, depthwise),
    )


def _pointwise_on_few_channels(kernel, depthwise):
    """Whether `kernel` is a 1x1 (not depthwise) kernel over fewer than `FEW_CHANNELS` channels."""
    rows, cols, channels = kernel.shape[:3]
    return not depthwise and rows == 1 and cols == 1 and channels is not None and channels < FEW_CHANNELS


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
        self.kernel_initializer = own_initializer(kernel_initializer)
        self.bias_initializer = own_initializer(bias_initializer)
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
