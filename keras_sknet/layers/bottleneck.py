"""Bottleneck units of the ResNeXt family: ResNeXt, SENet and SKNet (Table 1).

    x -> 1x1 conv, BN, ReLU -> middle -> 1x1 conv, BN [-> SE] -> + shortcut -> ReLU

The middle is a grouped 3x3 conv, BN, ReLU in `ResNeXtBlock` and an SK
convolution in `SKBlock`. The stride sits in the middle convolution (as in the
ResNeXt and timm implementations); the shortcut is a 1x1 conv + BN projection
whenever the stride or the channel count changes, the identity otherwise.
"""

import keras

from keras_sknet.layers.batch_norm import BN_EPSILON, BN_MOMENTUM, FusedBatchNorm
from keras_sknet.layers.block import Block
from keras_sknet.layers.conv import HE_NORMAL_FAN_OUT, GroupConv2D
from keras_sknet.layers.selective_kernel import SKConv
from keras_sknet.layers.squeeze_excite import SqueezeExcite
from keras_sknet.utils.validation import check_positive_int


@keras.saving.register_keras_serializable(package="keras_sknet")
class ResNeXtBlock(Block):
    """ResNeXt bottleneck unit, with optional Squeeze-and-Excitation (SENet).

    Args:
        filters: output channels of the unit (256 in the first stage of
            ResNeXt-50).
        width: channels of the grouped middle convolution; default
            `filters // 2` (the 32x4d template: 128 for 256).
        strides: stride of the unit (in the middle convolution and the
            projection shortcut).
        groups: G, the cardinality of the middle convolution.
        dilation: dilation of the middle convolution (the dilated stages of
            `output_stride=16/8`; timm's `first_dilation` in a stage's first
            unit, its `dilation` in the others).
        se_reduction: if set, a `SqueezeExcite` with this reduction before the
            addition (the SENet column of Table 1 uses 16).
        epsilon, momentum: of every BatchNorm.
        kernel_initializer: of every convolution (He, fan-out, by default).

    Returns:
        A `(batch, H / strides, W / strides, filters)` tensor.

    Example:
        >>> ResNeXtBlock(256, groups=32)(keras.ops.ones((1, 56, 56, 64))).shape
        (1, 56, 56, 256)
    """

    def __init__(
        self,
        filters,
        width=None,
        strides=1,
        groups=32,
        se_reduction=None,
        epsilon=BN_EPSILON,
        momentum=BN_MOMENTUM,
        kernel_initializer=HE_NORMAL_FAN_OUT,
        dilation=1,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.filters = check_positive_int("filters", filters)
        self.width = check_positive_int("width", width if width is not None else filters // 2)
        self.strides = check_positive_int("strides", strides)
        self.dilation = check_positive_int("dilation", dilation)
        self.groups = check_positive_int("groups", groups)
        if self.width % self.groups:
            raise ValueError(f"`groups` must divide `width`. Received: groups={groups}, width={self.width}")
        self.se_reduction = se_reduction
        self.epsilon = epsilon
        self.momentum = momentum
        self.kernel_initializer = keras.initializers.get(kernel_initializer)

        self.conv1 = self._conv(self.width, "conv1")
        self.bn1 = self._bn("bn1")
        self._make_middle()
        self.conv3 = self._conv(self.filters, "conv3")
        self.bn3 = self._bn("bn3")
        self.se = None
        if se_reduction is not None:
            self.se = SqueezeExcite(se_reduction, dtype=self.dtype_policy, name="se")
        self.shortcut_conv = None
        self.shortcut_bn = None

    def _conv(self, filters, name, strides=1):
        return GroupConv2D(
            filters,
            1,
            strides=strides,
            kernel_initializer=self.kernel_initializer,
            dtype=self.dtype_policy,
            name=name,
        )

    def _bn(self, name):
        return FusedBatchNorm(
            epsilon=self.epsilon, momentum=self.momentum, dtype=self.dtype_policy, name=name
        )

    def _make_middle(self):
        """Creates the middle transformation: grouped 3x3 conv -> BN -> ReLU."""
        self.conv2 = GroupConv2D(
            self.width,
            3,
            strides=self.strides,
            dilation_rate=self.dilation,
            groups=self.groups,
            kernel_initializer=self.kernel_initializer,
            dtype=self.dtype_policy,
            name="conv2",
        )
        self.bn2 = self._bn("bn2")

    def _call_middle(self, x, training):
        return keras.ops.relu(self.bn2(self.conv2(x), training=training))

    def build(self, input_shape):
        if self.strides != 1 or input_shape[-1] != self.filters:
            self.shortcut_conv = self._conv(self.filters, "shortcut_conv", strides=self.strides)
            self.shortcut_bn = self._bn("shortcut_bn")
        super().build(input_shape)

    def call(self, inputs, training=None):
        x = keras.ops.relu(self.bn1(self.conv1(inputs), training=training))
        x = self._call_middle(x, training)
        x = self.bn3(self.conv3(x), training=training)
        if self.se is not None:
            x = self.se(x)
        shortcut = inputs
        if self.shortcut_conv is not None:
            shortcut = self.shortcut_bn(self.shortcut_conv(inputs), training=training)
        return keras.ops.relu(x + shortcut)


@keras.saving.register_keras_serializable(package="keras_sknet")
class SKBlock(ResNeXtBlock):
    """The SK unit of Table 1: 1x1 conv -> SK convolution -> 1x1 conv, + shortcut.

    SKNet-50 stacks {3, 4, 6, 3} of these with SK[M=2, G=32, r=16] and L=32.

    Args:
        filters: output channels of the unit.
        width: channels of the SK convolution; default `filters // 2`.
        strides: stride of the unit (in the SK convolution and the shortcut).
        groups: G of the SK convolution's paths (an int, or one per path).
        dilation: of the SK convolution; multiplies each path's dilation.
        kernel_sizes, reduction, min_dim, dilate_large_kernels, attention:
            as in `SKConv` (M = len(kernel_sizes), r, L).
        se_reduction: optional SE before the addition (not in the paper's
            SKNets; for experiments).
        epsilon, momentum, kernel_initializer: as in `ResNeXtBlock`.

    Returns:
        A `(batch, H / strides, W / strides, filters)` tensor.

    Example:
        >>> block = SKBlock(256, width=128, groups=32, kernel_sizes=(3, 5), reduction=16)
        >>> block(keras.ops.ones((1, 56, 56, 64))).shape
        (1, 56, 56, 256)
    """

    def __init__(
        self,
        filters,
        width=None,
        strides=1,
        groups=32,
        kernel_sizes=(3, 5),
        reduction=16,
        min_dim=32,
        dilate_large_kernels=True,
        attention=True,
        se_reduction=None,
        epsilon=BN_EPSILON,
        momentum=BN_MOMENTUM,
        kernel_initializer=HE_NORMAL_FAN_OUT,
        dilation=1,
        **kwargs,
    ):
        # Read by _make_middle() during ResNeXtBlock.__init__.
        self._sk_args = dict(
            kernel_sizes=kernel_sizes,
            groups=groups,
            reduction=reduction,
            min_dim=min_dim,
            dilate_large_kernels=dilate_large_kernels,
            attention=attention,
        )
        first_groups = groups[0] if isinstance(groups, (list, tuple)) and groups else groups
        super().__init__(
            filters,
            width=width,
            strides=strides,
            groups=first_groups,
            se_reduction=se_reduction,
            epsilon=epsilon,
            momentum=momentum,
            kernel_initializer=kernel_initializer,
            dilation=dilation,
            **kwargs,
        )

    def _make_middle(self):
        self.sk = SKConv(
            self.width,
            strides=self.strides,
            dilation=self.dilation,
            epsilon=self.epsilon,
            momentum=self.momentum,
            kernel_initializer=self.kernel_initializer,
            dtype=self.dtype_policy,
            name="sk",
            **self._sk_args,
        )

    def _call_middle(self, x, training):
        return self.sk(x, training=training)
