"""Selective Kernel convolution: Split, Fuse and Select (Section 3.1, Figure 1).

`SKConv` runs M convolution paths with different receptive fields over the same
input (Split), sums them and squeezes the sum into a compact descriptor (Fuse),
and mixes the paths with a per-channel softmax over the M paths (Select):

    U = sum_m U_m                               (1)
    s = global_average_pool(U)                  (2)
    z = ReLU(BN(W s)),  W: d x C, no bias       (3)
    d = max(C / r, L)                           (4)
    a_m = softmax_m(A_m z),  A: (M*C) x d       (5)
    V = sum_m a_m * U_m                         (6)

`record_attention()` exposes the attention `a` of every SK convolution a model
runs, for the analysis of Section 4.4, without rebuilding the model.
"""

import contextlib
import threading

import keras
from keras import ops

from keras_sknet.layers.batch_norm import BN_EPSILON, BN_MOMENTUM, FusedBatchNorm
from keras_sknet.layers.block import Block
from keras_sknet.layers.conv import HE_NORMAL_FAN_OUT, GroupConv2D
from keras_sknet.utils.validation import (
    check_kernel_sizes,
    check_positive_int,
    check_positive_number,
    per_path,
)

_recording = threading.local()


@contextlib.contextmanager
def record_attention():
    """Collects the selection weights of every `SKConv` called inside the block.

    Works in eager mode and inside a `tf.function` (the recorded values are then
    graph tensors that the function can return), for any model that contains
    `SKConv` layers at any depth, in the single forward pass the model runs
    anyway.

    Yields:
        A dict filled during the block: `{layer.path: attention}`, with
        `attention` of shape `(batch, M, channels)`; each entry sums to 1 over
        the M paths. Layers called with `attention=False` record nothing.

    Example:
        >>> with record_attention() as attention:
        ...     model(images, training=False)
        >>> attention["conv3_block4/sk"].shape
        (8, 2, 256)
    """
    stack = getattr(_recording, "stack", None)
    if stack is None:
        stack = _recording.stack = []
    records = {}
    stack.append(records)
    try:
        yield records
    finally:
        stack.pop()


def _record(layer, attention):
    stack = getattr(_recording, "stack", None)
    if stack and not isinstance(attention, keras.KerasTensor):  # not the symbolic call of a build
        stack[-1][layer.path] = attention


@keras.saving.register_keras_serializable(package="keras_sknet")
class SKAttention(Block):
    """The fc layers of the Fuse operator and the Select softmax (Eqs. 3-5).

    Maps the channel statistics `s` (Eq. 2: the global average pool of the
    sum of the paths) to per-channel attention over the paths: fc to
    `attention_dim` without bias -> BatchNorm -> ReLU -> fc to
    `num_paths * channels` without bias, laid out path-major -> softmax over
    the paths.

    Args:
        num_paths: M, the number of paths to select between.
        attention_dim: d, the width of the compact descriptor `z`.
        epsilon, momentum: of the BatchNorm on `z`.

    Input: `s`, of shape `(batch, channels)`.

    Returns:
        Attention of shape `(batch, num_paths, channels)`, summing to 1 over
        the paths (axis 1). With `return_paths=True` in the call,
        `(attention, per_path)`: `per_path` lists each path's attention,
        `(batch, channels)`, as tensors of their own (what `SKConv` weights
        the paths with: an exported graph then needs neither `attention` nor
        slices of it).

    Example:
        >>> SKAttention(num_paths=2, attention_dim=32)(keras.ops.ones((1, 64))).shape
        (1, 2, 64)
    """

    def __init__(self, num_paths, attention_dim, epsilon=BN_EPSILON, momentum=BN_MOMENTUM, **kwargs):
        super().__init__(**kwargs)
        self.num_paths = check_positive_int("num_paths", num_paths)
        self.attention_dim = check_positive_int("attention_dim", attention_dim)
        self.epsilon = epsilon
        self.momentum = momentum
        self.fc_reduce = keras.layers.Dense(
            self.attention_dim, use_bias=False, dtype=self.dtype_policy, name="fc_reduce"
        )
        self.bn = FusedBatchNorm(epsilon=epsilon, momentum=momentum, dtype=self.dtype_policy, name="bn")
        self.fc_select = None  # its width depends on the channels, known in build()

    def build(self, input_shape):
        # Built by hand, not by running call: with two paths call reads fc_select's kernel
        # without calling it, with one it uses no fc_select at all (which the weights still hold).
        batch, self.channels = input_shape[0], input_shape[-1]
        self.fc_reduce.build((batch, self.channels))
        self.bn.build((batch, self.attention_dim))
        self.fc_select = keras.layers.Dense(
            self.num_paths * self.channels, use_bias=False, dtype=self.dtype_policy, name="fc_select"
        )
        self.fc_select.build((batch, self.attention_dim))

    def call(self, squeezed, training=None, return_paths=False):
        z = self._descriptor(squeezed, training)
        channels = self.channels
        if self.num_paths == 1:  # a softmax over one path is constantly 1
            per_path = [ops.ones((ops.shape(z)[0], channels), "float32")]
        elif self.num_paths == 2:
            # The softmax of two logits is the sigmoid of their difference. Same
            # values; and TFLite's XNNPACK runs an int8 LOGISTIC but not an int8
            # SOFTMAX, which would split every SK unit out of the delegate. The
            # difference is one matmul with the difference of the two halves of
            # `fc_select`'s kernel (the same gradients): an export folds that
            # into one FULLY_CONNECTED, with no slicing or subtraction after it.
            if self._plain_fc_select():
                kernel = ops.cast(self.fc_select.kernel, self.compute_dtype)
                difference = ops.matmul(z, kernel[:, :channels] - kernel[:, channels:])
            else:  # Keras-quantized or LoRA kernels: let the layer compute the logits
                logits = self.fc_select(z)
                difference = logits[:, :channels] - logits[:, channels:]
            # The sigmoid in float32 so that mixed precision does not coarsen the weights.
            first = ops.sigmoid(ops.cast(difference, "float32"))
            per_path = [first, 1.0 - first]
        else:
            # Softmax in float32 so that mixed precision does not coarsen the weights.
            logits = ops.cast(self.fc_select(z), "float32")  # (batch, M * C), path-major
            weights = ops.softmax(ops.reshape(logits, (-1, self.num_paths, channels)), axis=1)
            # Unit-stride slices of the path-major (batch, M * C) view, which
            # XNNPACK runs (it leaves indexing weights[:, m] out of the delegate).
            weights = ops.reshape(weights, (-1, self.num_paths * channels))
            per_path = [weights[:, m * channels : (m + 1) * channels] for m in range(self.num_paths)]
        per_path = [ops.cast(w, self.compute_dtype) for w in per_path]
        attention = per_path[0] if self.num_paths == 1 else ops.concatenate(per_path, axis=-1)
        attention = ops.reshape(attention, (-1, self.num_paths, channels))
        return (attention, per_path) if return_paths else attention

    def _descriptor(self, squeezed, training):
        """z = ReLU(BN(W s)), Eq. (3).

        In inference the BatchNorm is the affine map `(x - mean) * scale + beta`
        of its moving statistics, which is folded into the fc: `s (W * scale) +
        (beta - mean * scale)`, the same values up to float rounding. The fold
        touches only the weights, which the graph computes apart from the
        input; what the input waits for is one matmul with its bias and ReLU
        (one fused op on TensorFlow) instead of a matmul, a BatchNorm (an op
        and two reshapes on TensorFlow) and a ReLU.
        """
        bn = self.bn
        if (training and bn.trainable) or not _plain_kernel(self.fc_reduce):
            return ops.relu(bn(self.fc_reduce(squeezed), training=training))
        scale = ops.rsqrt(ops.cast(bn.moving_variance, "float32") + bn.epsilon)
        if bn.scale:
            scale = scale * ops.cast(bn.gamma, "float32")
        offset = ops.cast(bn.moving_mean, "float32") * scale
        offset = (ops.cast(bn.beta, "float32") if bn.center else 0.0) - offset
        kernel = ops.cast(ops.cast(self.fc_reduce.kernel, "float32") * scale, self.compute_dtype)
        offset = ops.cast(offset, self.compute_dtype)
        z = ops.matmul(squeezed, kernel)
        if keras.backend.backend() == "tensorflow":
            import tensorflow as tf

            z = tf.nn.bias_add(z, offset)  # grappler fuses MatMul + BiasAdd + Relu, not + AddV2
        else:
            z = z + offset
        return ops.relu(z)

    def _plain_fc_select(self):
        """Whether `fc_select.kernel` is the float kernel the layer multiplies by."""
        return _plain_kernel(self.fc_select)

    # By hand, not by running call symbolically: call makes its one-path attention with ops.ones
    # of the batch size, which a symbolic batch does not have.
    def compute_output_spec(self, squeezed, training=None, return_paths=False):
        attention = keras.KerasTensor(self.compute_output_shape(squeezed.shape), dtype=self.compute_dtype)
        if not return_paths:
            return attention
        path_shape = (squeezed.shape[0], squeezed.shape[-1])
        return attention, [keras.KerasTensor(path_shape, dtype=self.compute_dtype)] * self.num_paths

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.num_paths, input_shape[-1])


def _plain_kernel(dense):
    """Whether `dense.kernel` is the float kernel the `Dense` layer multiplies by (not quantized, no LoRA)."""
    return not dense.quantization_mode and not getattr(dense, "lora_enabled", False)


def path_settings(kernel_sizes, dilate_large_kernels):
    """The (kernel size, dilation) of each path.

    A kernel size k > 3 becomes a 3x3 with dilation (k - 1) / 2 (Section 3.1:
    "K5" = 3x3 dilation 2, "K7" = 3x3 dilation 3) unless `dilate_large_kernels`
    is False (the true 5x5 and 7x7 kernels of Table 6).
    """
    return tuple((3, (k - 1) // 2) if dilate_large_kernels and k > 3 else (k, 1) for k in kernel_sizes)


@keras.saving.register_keras_serializable(package="keras_sknet")
class SKConv(Block):
    """Selective Kernel convolution, SK[M, G, r] (Section 3.1, Figure 1).

    Each of the M paths is a grouped convolution -> BatchNorm -> activation
    over the same input; the paths are fused by sum, global average pooling
    and a reduced fc, and selected by a per-channel softmax over the paths.

    Args:
        filters: C, the output channels.
        kernel_sizes: one odd kernel size per path, M = len(kernel_sizes) >= 1.
            Default `(3, 5)`: the paper's K3 + K5. A 1 gives a 1x1 path
            (SKNet-29 on CIFAR, supplementary D).
        strides: stride of every path.
        dilation: dilation of the whole convolution; it multiplies each
            path's own dilation (as timm's `SelectiveKernel`): with 2, K3
            becomes 3x3 dilation 2 and K5 3x3 dilation 4. The dilated stages
            of `output_stride=16/8` (DeepLab, Chen et al. 2017) use it.
        groups: G, the groups of every path's convolution, or one value per
            path (Table 6 pairs a 3x3 with G=32 and a 5x5 with G=64).
            `groups == filters == input channels` makes the paths depthwise.
        reduction: r of Eq. (4).
        min_dim: L of Eq. (4); the compact descriptor has
            d = max(filters / r, L) channels.
        dilate_large_kernels: realise a kernel size k > 3 as a 3x3 with
            dilation (k - 1) / 2 (default, as the paper); False uses a true
            k x k kernel.
        activation: after each path's BatchNorm; `"relu"` (default) or None
            (the ShuffleNetV2 variant, Table S1).
        attention: if False, return the plain sum of the paths (the naive
            baseline of Table 7) and create no fuse/select weights.
        split_input: if True, path m convolves only the m-th of M equal
            slices of the input channels (timm's `split_input`, used by its
            SK-ResNet-18/34 to keep the parameter count down; not in the
            paper). The input channels must be divisible by M.
        epsilon, momentum: of every BatchNorm.
        kernel_initializer: of the path convolutions (He, fan-out, by default).

    Returns:
        `V`, of shape `(batch, H_out, W_out, filters)`; with
        `return_attention=True` in the call, `(V, attention)` where attention
        has shape `(batch, M, filters)` (None when `attention=False`).

    Example:
        >>> sk = SKConv(128, kernel_sizes=(3, 5), strides=2, groups=32, reduction=16)
        >>> v, a = sk(keras.ops.ones((2, 56, 56, 128)), return_attention=True)
        >>> v.shape, a.shape
        ((2, 28, 28, 128), (2, 2, 128))
    """

    def __init__(
        self,
        filters,
        kernel_sizes=(3, 5),
        strides=1,
        groups=32,
        reduction=16,
        min_dim=32,
        dilate_large_kernels=True,
        activation="relu",
        dilation=1,
        attention=True,
        split_input=False,
        epsilon=BN_EPSILON,
        momentum=BN_MOMENTUM,
        kernel_initializer=HE_NORMAL_FAN_OUT,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.filters = check_positive_int("filters", filters)
        self.kernel_sizes = check_kernel_sizes(kernel_sizes)
        self.num_paths = len(self.kernel_sizes)
        self.strides = check_positive_int("strides", strides)
        self.dilation = check_positive_int("dilation", dilation)
        self.groups = per_path("groups", groups, self.num_paths)
        for g in self.groups:
            if self.filters % g:
                raise ValueError(
                    f"`groups` must divide `filters`. Received: groups={groups!r}, filters={filters}"
                )
        check_positive_number("reduction", reduction)
        self.reduction = reduction
        self.min_dim = check_positive_int("min_dim", min_dim)
        self.dilate_large_kernels = bool(dilate_large_kernels)
        # keras.activations.get raises ValueError naming an unknown activation.
        self.activation = None if activation is None else keras.activations.get(activation)
        self.attention = bool(attention)
        self.split_input = bool(split_input)
        self.epsilon = epsilon
        self.momentum = momentum
        self.kernel_initializer = keras.initializers.get(kernel_initializer)

        self.path_convs = []
        self.path_bns = []
        for i, ((size, dilation), g) in enumerate(
            zip(path_settings(self.kernel_sizes, self.dilate_large_kernels), self.groups)
        ):
            self.path_convs.append(
                GroupConv2D(
                    self.filters,
                    size,
                    strides=self.strides,
                    dilation_rate=dilation * self.dilation,
                    groups=g,
                    kernel_initializer=self.kernel_initializer,
                    dtype=self.dtype_policy,
                    name=f"path{i}_conv",
                )
            )
            self.path_bns.append(
                FusedBatchNorm(
                    epsilon=epsilon, momentum=momentum, dtype=self.dtype_policy, name=f"path{i}_bn"
                )
            )
        self.attention_layer = None
        if self.attention:
            self.attention_layer = SKAttention(
                self.num_paths,
                self.attention_dim,
                epsilon=epsilon,
                momentum=momentum,
                dtype=self.dtype_policy,
                name="attention",
            )

    @property
    def attention_dim(self):
        """d = max(C / r, L), Eq. (4)."""
        return max(int(self.filters / self.reduction), self.min_dim)

    def build(self, input_shape):
        channels = input_shape[-1]
        if self.split_input and (channels is None or channels % self.num_paths):
            raise ValueError(
                f"With `split_input=True` the input channels of {self.name} must be divisible by "
                f"the number of paths ({self.num_paths}). Received: input_shape={tuple(input_shape)}"
            )
        super().build(input_shape)

    def _run_path(self, conv, bn, inputs, training):
        u = bn(conv(inputs), training=training)
        return u if self.activation is None else self.activation(u)

    def _path_inputs(self, inputs):
        if not self.split_input:
            return [inputs] * self.num_paths
        width = inputs.shape[-1] // self.num_paths
        return [inputs[..., m * width : (m + 1) * width] for m in range(self.num_paths)]

    def call(self, inputs, training=None, return_attention=False):
        paths = [
            self._run_path(conv, bn, x, training)
            for conv, bn, x in zip(self.path_convs, self.path_bns, self._path_inputs(inputs))
        ]
        if not self.attention:
            outputs = paths[0]
            for u in paths[1:]:
                outputs = outputs + u
            return (outputs, None) if return_attention else outputs

        # Eq. (1)-(2): the average pool of the sum is the sum of the pools,
        # which reads each path once and never materialises U.
        squeezed = ops.mean(paths[0], axis=(1, 2))
        for u in paths[1:]:
            squeezed = squeezed + ops.mean(u, axis=(1, 2))
        attention, per_path = self.attention_layer(squeezed, training=training, return_paths=True)
        _record(self, attention)
        if len(paths) == 2:
            # a * U1 + (1 - a) * U2 as U2 + a * (U1 - U2): the same full-map
            # passes, and the second path's weight is never needed.
            first, second = paths
            outputs = second + (first - second) * _per_channel(per_path[0])
            return (outputs, attention) if return_attention else outputs
        outputs = None
        for u, weight in zip(paths, per_path):
            weighted = u * _per_channel(weight)
            outputs = weighted if outputs is None else outputs + weighted
        return (outputs, attention) if return_attention else outputs


def _per_channel(weight):
    """`(batch, C)` weights as `(batch, 1, 1, C)`, to scale feature maps: one reshape."""
    return ops.reshape(weight, (-1, 1, 1, weight.shape[-1]))
