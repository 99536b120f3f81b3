"""ShuffleNetV2 units, plain and with SE or SK (Section 4.1, Table 4, supplementary B).

Stride 1: split the channels in halves; one half passes, the other goes through
1x1 conv-BN-ReLU -> 3x3 depthwise conv-BN -> 1x1 conv-BN-ReLU; concatenate and
shuffle. Stride 2: both branches see the whole input: 3x3 depthwise (stride 2)
-> 1x1, and 1x1 -> 3x3 depthwise (stride 2) -> 1x1; concatenate and shuffle.

"+SE" puts a Squeeze-and-Excitation after each unit's shuffle; "+SK" replaces
every 3x3 depthwise conv with an SK convolution: M=2 depthwise paths (K3, K5),
r=4, no activation in the paths (Table S1).
"""

import keras
from keras import ops

from keras_sknet.layers.batch_norm import BN_EPSILON, BN_MOMENTUM, FusedBatchNorm
from keras_sknet.layers.block import Block
from keras_sknet.layers.conv import HE_NORMAL_FAN_OUT, GroupConv2D
from keras_sknet.layers.selective_kernel import SKConv
from keras_sknet.layers.squeeze_excite import SqueezeExcite
from keras_sknet.utils.validation import check_positive_int

ATTENTION_TYPES = (None, "se", "sk")


def channel_shuffle(left, right):
    """Concatenates two equal-width tensors and shuffles them with 2 groups.

    The result interleaves the channels, `[l0, r0, l1, r1, ...]`: the same as
    ShuffleNetV2's concat -> reshape (2, C/2) -> transpose -> reshape, in one
    concatenation and reshape. (Concatenating on a new last axis is what
    `ops.stack` does, but stack becomes TFLite's PACK, which XNNPACK does not
    run; reshapes and concatenation it runs.)
    """
    shape = ops.shape(left)
    stacked = ops.concatenate([ops.expand_dims(left, -1), ops.expand_dims(right, -1)], axis=-1)
    return ops.reshape(stacked, (-1, shape[1], shape[2], 2 * left.shape[-1]))


@keras.saving.register_keras_serializable(package="keras_sknet")
class ShuffleNetV2Unit(Block):
    """A ShuffleNetV2 unit (Ma et al. 2018), optionally with SE or SK.

    Args:
        filters: output channels (even). A stride-1 unit needs as many input
            channels.
        strides: 1 or 2.
        attention: None (plain), `"se"` (SE after the shuffle) or `"sk"`
            (every 3x3 depthwise conv becomes an SK convolution).
        se_reduction, se_min_dim: the SE squeeze width is
            max(channels / se_reduction, se_min_dim).
        sk_kernel_sizes, sk_reduction, sk_min_dim: M paths, r and L of the SK
            convolutions (defaults: K3 + K5, r = 4, L = 16).
        epsilon, momentum: of every BatchNorm.
        kernel_initializer: of every convolution.

    Returns:
        A `(batch, H / strides, W / strides, filters)` tensor.

    Example:
        >>> ShuffleNetV2Unit(96, strides=2, attention="sk")(keras.ops.ones((1, 28, 28, 48))).shape
        (1, 14, 14, 96)
    """

    def __init__(
        self,
        filters,
        strides=1,
        attention=None,
        se_reduction=16,
        se_min_dim=32,
        sk_kernel_sizes=(3, 5),
        sk_reduction=4,
        sk_min_dim=16,
        epsilon=BN_EPSILON,
        momentum=BN_MOMENTUM,
        kernel_initializer=HE_NORMAL_FAN_OUT,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.filters = check_positive_int("filters", filters)
        if self.filters % 2:
            raise ValueError(f"`filters` must be even. Received: filters={filters}")
        if strides not in (1, 2):
            raise ValueError(f"`strides` must be 1 or 2. Received: strides={strides!r}")
        self.strides = strides
        if attention not in ATTENTION_TYPES:
            raise ValueError(
                f"`attention` must be one of {ATTENTION_TYPES}. Received: attention={attention!r}"
            )
        self.attention = attention
        self.se_reduction = se_reduction
        self.se_min_dim = se_min_dim
        self.sk_kernel_sizes = tuple(sk_kernel_sizes)
        self.sk_reduction = sk_reduction
        self.sk_min_dim = sk_min_dim
        self.epsilon = epsilon
        self.momentum = momentum
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.branch_channels = self.filters // 2

        self.right_conv1 = self._pointwise("right_conv1")
        self.right_bn1 = self._bn("right_bn1")
        self.right_conv3 = self._pointwise("right_conv3")
        self.right_bn3 = self._bn("right_bn3")
        self.se = None
        if attention == "se":
            self.se = SqueezeExcite(se_reduction, min_dim=se_min_dim, dtype=self.dtype_policy, name="se")
        # Depthwise layers depend on the input channels (stride 2): made in build().
        self.right_depthwise = None
        self.right_bn2 = None
        self.left_depthwise = None
        self.left_bn1 = None
        self.left_conv2 = None
        self.left_bn2 = None

    def _pointwise(self, name):
        return GroupConv2D(
            self.branch_channels,
            1,
            kernel_initializer=self.kernel_initializer,
            dtype=self.dtype_policy,
            name=name,
        )

    def _bn(self, name):
        return FusedBatchNorm(
            epsilon=self.epsilon, momentum=self.momentum, dtype=self.dtype_policy, name=name
        )

    def _depthwise(self, channels, name):
        """A 3x3 depthwise conv (followed by BN), or an SK convolution (with its own BNs)."""
        if self.attention == "sk":
            return SKConv(
                channels,
                kernel_sizes=self.sk_kernel_sizes,
                strides=self.strides,
                groups=channels,
                reduction=self.sk_reduction,
                min_dim=self.sk_min_dim,
                activation=None,
                epsilon=self.epsilon,
                momentum=self.momentum,
                kernel_initializer=self.kernel_initializer,
                dtype=self.dtype_policy,
                name=name.replace("depthwise", "sk"),
            )
        return GroupConv2D(
            channels,
            3,
            strides=self.strides,
            groups=channels,
            kernel_initializer=self.kernel_initializer,
            dtype=self.dtype_policy,
            name=name,
        )

    def build(self, input_shape):
        channels = input_shape[-1]
        if self.strides == 1 and channels != self.filters:
            raise ValueError(
                f"A stride-1 ShuffleNetV2 unit needs as many input channels as filters. "
                f"Received: input channels={channels}, filters={self.filters}"
            )
        sk = self.attention == "sk"
        if self.strides == 2:
            self.left_depthwise = self._depthwise(channels, "left_depthwise")
            self.left_bn1 = None if sk else self._bn("left_bn1")
            self.left_conv2 = self._pointwise("left_conv2")
            self.left_bn2 = self._bn("left_bn2")
            # Built before the right branch's depthwise layer is made: an SKConv draws initializer
            # seeds when made (its attention's fc_reduce) and when built (fc_select), and seeded
            # models keep the weights they had (tests/test_initial_weights.py).
            self.left_depthwise.build(input_shape)
        self.right_depthwise = self._depthwise(self.branch_channels, "right_depthwise")
        self.right_bn2 = None if sk else self._bn("right_bn2")
        super().build(input_shape)

    def _depthwise_bn(self, layer, bn, x, training):
        if bn is None:  # an SKConv, with its own BatchNorms
            return layer(x, training=training)
        return bn(layer(x), training=training)

    def call(self, inputs, training=None):
        if self.strides == 1:
            left = inputs[..., : self.branch_channels]
            right = inputs[..., self.branch_channels :]
        else:
            left = self._depthwise_bn(self.left_depthwise, self.left_bn1, inputs, training)
            left = ops.relu(self.left_bn2(self.left_conv2(left), training=training))
            right = inputs
        right = ops.relu(self.right_bn1(self.right_conv1(right), training=training))
        right = self._depthwise_bn(self.right_depthwise, self.right_bn2, right, training)
        right = ops.relu(self.right_bn3(self.right_conv3(right), training=training))
        outputs = channel_shuffle(left, right)
        if self.se is not None:
            outputs = self.se(outputs)
        return outputs
