"""The basic (two-convolution) SK unit of timm's SK-ResNet-18/34.

    x -> SKConv (stride, split input) -> 3x3 conv, BN -> + shortcut -> ReLU

The paper builds SK units on the ResNeXt bottleneck (Table 1); timm's
`skresnet18` / `skresnet34` (`SelectiveKernelBasic`) put the SK convolution in
place of the first 3x3 convolution of a ResNet basic block instead, with
SK[M=2, G=1, r=8] whose paths each read half of the input channels. This layer
reproduces that unit so that timm's ImageNet checkpoints of those models load.
"""

import keras

from keras_sknet.layers.batch_norm import BN_EPSILON, BN_MOMENTUM, FusedBatchNorm
from keras_sknet.layers.block import Block
from keras_sknet.layers.conv import HE_NORMAL_FAN_OUT, GroupConv2D
from keras_sknet.layers.selective_kernel import SKConv
from keras_sknet.utils.validation import check_positive_int


@keras.saving.register_keras_serializable(package="keras_sknet")
class SKBasicBlock(Block):
    """Basic residual unit whose first convolution is an SK convolution.

    Reference: Li et al., Selective Kernel Networks, CVPR 2019, Section 3.1
    (the SK convolution); the block layout is timm's `SelectiveKernelBasic`.

    Args:
        filters: output channels of the unit (and of both convolutions).
        strides: stride of the unit (in the SK convolution and the shortcut).
        dilation: dilation of the second (3x3) convolution (the dilated
            stages of `output_stride=16/8`).
        first_dilation: dilation of the SK convolution, multiplying each
            path's; default `dilation`. timm's `first_dilation`: the first
            unit of a dilated stage keeps the previous stage's dilation.
        kernel_sizes: SK paths, as in `SKConv` (default K3 + K5).
        groups: G of the SK paths (1 in timm's SK-ResNets).
        reduction: r of the SK fuse operator (8 in timm's SK-ResNets).
        min_dim: L of the SK fuse operator; d = max(filters / r, L). With
            r=8 and L=16 this equals timm's `make_divisible(C / 8, 16)` at every
            width of SK-ResNet-18/34 (64, 128, 256, 512 -> 16, 16, 32, 64).
        split_input: each SK path reads 1/M of the input channels (timm's
            `split_input=True`); False gives every path the whole input.
        epsilon, momentum: of every BatchNorm.
        kernel_initializer: of every convolution (He, fan-out, by default).

    Returns:
        A `(batch, H / strides, W / strides, filters)` tensor.

    Example:
        >>> SKBasicBlock(128, strides=2)(keras.ops.ones((1, 56, 56, 64))).shape
        (1, 28, 28, 128)
    """

    def __init__(
        self,
        filters,
        strides=1,
        kernel_sizes=(3, 5),
        groups=1,
        reduction=8,
        min_dim=16,
        split_input=True,
        epsilon=BN_EPSILON,
        momentum=BN_MOMENTUM,
        kernel_initializer=HE_NORMAL_FAN_OUT,
        dilation=1,
        first_dilation=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.filters = check_positive_int("filters", filters)
        self.strides = check_positive_int("strides", strides)
        self.dilation = check_positive_int("dilation", dilation)
        self.first_dilation = check_positive_int(
            "first_dilation", dilation if first_dilation is None else first_dilation
        )
        self.epsilon = epsilon
        self.momentum = momentum
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.sk = SKConv(
            self.filters,
            kernel_sizes=kernel_sizes,
            strides=self.strides,
            dilation=self.first_dilation,
            groups=groups,
            reduction=reduction,
            min_dim=min_dim,
            split_input=split_input,
            epsilon=epsilon,
            momentum=momentum,
            kernel_initializer=self.kernel_initializer,
            dtype=self.dtype_policy,
            name="sk",
        )
        self.conv2 = GroupConv2D(
            self.filters,
            3,
            dilation_rate=self.dilation,
            kernel_initializer=self.kernel_initializer,
            dtype=self.dtype_policy,
            name="conv2",
        )
        self.bn2 = self._bn("bn2")
        self.shortcut_conv = None
        self.shortcut_bn = None

    def _bn(self, name):
        return FusedBatchNorm(
            epsilon=self.epsilon, momentum=self.momentum, dtype=self.dtype_policy, name=name
        )

    def build(self, input_shape):
        if self.strides != 1 or input_shape[-1] != self.filters:
            self.shortcut_conv = GroupConv2D(
                self.filters,
                1,
                strides=self.strides,
                kernel_initializer=self.kernel_initializer,
                dtype=self.dtype_policy,
                name="shortcut_conv",
            )
            self.shortcut_bn = self._bn("shortcut_bn")
        super().build(input_shape)

    def call(self, inputs, training=None):
        x = self.sk(inputs, training=training)
        x = self.bn2(self.conv2(x), training=training)
        shortcut = inputs
        if self.shortcut_conv is not None:
            shortcut = self.shortcut_bn(self.shortcut_conv(inputs), training=training)
        return keras.ops.relu(x + shortcut)
