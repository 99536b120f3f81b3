"""ShuffleNetV2, plain and with SE or SK, as re-implemented in the paper (Table 4).

Supplementary B: the stages have {4, 6, 6} units instead of ShuffleNetV2's
{4, 8, 4}; "+SE" adds SE after each shuffle, "+SK" replaces every 3x3
depthwise conv with an SK unit (M=2: K3 and K5, r=4, G = channels, no ReLU in
the paths). Layout: 3x3/2 conv (24) + 3x3/2 max pool, three stages whose first
unit has stride 2, a 1x1 conv to 1024 (2048 at 2.0x) channels, global pool, fc.
"""

import keras

from keras_sknet.applications.model_builder import build_model, documented, named_model
from keras_sknet.layers.batch_norm import BN_EPSILON, BN_MOMENTUM, FusedBatchNorm
from keras_sknet.layers.conv import HE_NORMAL_FAN_OUT
from keras_sknet.layers.shufflenet import ShuffleNetV2Unit
from keras_sknet.utils.validation import check_positive_int

# alpha -> output channels of the three stages and of the last 1x1 conv (Ma et al., Table 5).
STAGE_CHANNELS = {
    0.5: (48, 96, 192, 1024),
    1.0: (116, 232, 464, 1024),
    1.5: (176, 352, 704, 1024),
    2.0: (244, 488, 976, 2048),
}
STEM_CHANNELS = 24
DEFAULT_SIZE = 224
MIN_SIZE = 32


def ShuffleNetV2(
    alpha=1.0,
    include_top=True,
    weights=None,
    input_tensor=None,
    input_shape=None,
    pooling=None,
    classes=1000,
    classifier_activation="softmax",
    name=None,
    attention=None,
    stage_depths=(4, 6, 6),
    se_reduction=16,
    se_min_dim=32,
    sk_kernel_sizes=(3, 5),
    sk_reduction=4,
    sk_min_dim=16,
):
    """Instantiates ShuffleNetV2 (plain, or with SE / SK units).

    Reference: Ma et al., ShuffleNet V2, ECCV 2018; Li et al., Selective
    Kernel Networks, CVPR 2019, Section 4.1, Table 4 and supplementary B.

    Args:
        alpha: width multiplier, one of 0.5, 1.0, 1.5, 2.0.
        include_top, weights, input_tensor, input_shape, pooling, classes,
        classifier_activation: as in `keras.applications` (see `SKNet50`).
        name: the model's name; default `shufflenetv2_{alpha}x[_se|_sk]`.
        attention: None (plain), `"se"` or `"sk"`.
        stage_depths: units per stage; the paper's re-implementation uses
            (4, 6, 6), the original ShuffleNetV2 (4, 8, 4).
        se_reduction, se_min_dim: with `attention="se"`, the SE squeeze width
            is max(channels / se_reduction, se_min_dim).
        sk_kernel_sizes, sk_reduction, sk_min_dim: the SK paths, r and L with
            `attention="sk"`.

    The paper gives r = 4 for SK and leaves L and the SE widths open; L = 16
    and SE max(C/16, 32) reproduce Table 4's 0.5x sizes (see the README).

    Returns:
        A `keras.Model`.

    Example:
        >>> ShuffleNetV2(0.5, attention="sk").output_shape
        (None, 1000)
    """
    if alpha not in STAGE_CHANNELS:
        raise ValueError(f"`alpha` must be one of {tuple(STAGE_CHANNELS)}. Received: alpha={alpha!r}")
    if not isinstance(stage_depths, (list, tuple)) or len(stage_depths) != 3:
        raise ValueError(
            f"`stage_depths` must list the units of the 3 stages. Received: stage_depths={stage_depths!r}"
        )
    for depth in stage_depths:
        check_positive_int("stage_depths", depth)
    if name is None:
        name = f"shufflenetv2_{alpha}x" + (f"_{attention}" if attention else "")
    *stage_channels, last_channels = STAGE_CHANNELS[alpha]
    unit_args = dict(
        attention=attention,
        se_reduction=se_reduction,
        se_min_dim=se_min_dim,
        sk_kernel_sizes=sk_kernel_sizes,
        sk_reduction=sk_reduction,
        sk_min_dim=sk_min_dim,
    )

    def conv_bn_relu(x, filters, kernel_size, strides, prefix):
        if kernel_size > 1:
            x = keras.layers.ZeroPadding2D(kernel_size // 2, name=f"{prefix}_pad")(x)
        x = keras.layers.Conv2D(
            filters,
            kernel_size,
            strides=strides,
            use_bias=False,
            kernel_initializer=HE_NORMAL_FAN_OUT,
            name=f"{prefix}_conv",
        )(x)
        x = FusedBatchNorm(epsilon=BN_EPSILON, momentum=BN_MOMENTUM, name=f"{prefix}_bn")(x)
        return keras.layers.ReLU(name=f"{prefix}_relu")(x)

    def features(x):
        x = conv_bn_relu(x, STEM_CHANNELS, 3, 2, "conv1")
        x = keras.layers.ZeroPadding2D(1, name="pool1_pad")(x)
        x = keras.layers.MaxPooling2D(3, strides=2, name="pool1_pool")(x)
        for stage, (depth, filters) in enumerate(zip(stage_depths, stage_channels)):
            for unit in range(depth):
                x = ShuffleNetV2Unit(
                    filters,
                    strides=2 if unit == 0 else 1,
                    name=f"stage{stage + 2}_unit{unit + 1}",
                    **unit_args,
                )(x)
        return conv_bn_relu(x, last_channels, 1, 1, "conv5")

    return build_model(
        features,
        default_size=DEFAULT_SIZE,
        min_size=MIN_SIZE,
        include_top=include_top,
        weights=weights,
        input_tensor=input_tensor,
        input_shape=input_shape,
        pooling=pooling,
        classes=classes,
        classifier_activation=classifier_activation,
        name=name,
    )


@documented("ShuffleNetV2SE", sizes=(DEFAULT_SIZE, MIN_SIZE))
def ShuffleNetV2SE(
    alpha=1.0,
    include_top=True,
    weights=None,
    input_tensor=None,
    input_shape=None,
    pooling=None,
    classes=1000,
    classifier_activation="softmax",
    name=None,
):
    """Instantiates the ShuffleNetV2 + SE after each shuffle (`alpha`: width multiplier, 0.5, 1.0, 1.5 or 2.0).

    Reference: Li et al., Selective Kernel Networks, CVPR 2019, Table 4, supplementary B
    Example:
        >>> model = ShuffleNetV2SE(alpha=0.5)
        >>> model.output_shape
        (None, 1000)
    """
    return named_model(
        ShuffleNetV2,
        "ShuffleNetV2SE",
        alpha=alpha,
        include_top=include_top,
        weights=weights,
        input_tensor=input_tensor,
        input_shape=input_shape,
        pooling=pooling,
        classes=classes,
        classifier_activation=classifier_activation,
        name=name,
    )


@documented("ShuffleNetV2SK", sizes=(DEFAULT_SIZE, MIN_SIZE))
def ShuffleNetV2SK(
    alpha=1.0,
    include_top=True,
    weights=None,
    input_tensor=None,
    input_shape=None,
    pooling=None,
    classes=1000,
    classifier_activation="softmax",
    name=None,
):
    """Instantiates the ShuffleNetV2 + SK in place of every 3x3 depthwise conv (M=2, r=4) (`alpha`: width multiplier, 0.5, 1.0, 1.5 or 2.0).

    Reference: Li et al., Selective Kernel Networks, CVPR 2019, Table 4, supplementary B
    Example:
        >>> model = ShuffleNetV2SK(alpha=0.5)
        >>> model.output_shape
        (None, 1000)
    """
    return named_model(
        ShuffleNetV2,
        "ShuffleNetV2SK",
        alpha=alpha,
        include_top=include_top,
        weights=weights,
        input_tensor=input_tensor,
        input_shape=input_shape,
        pooling=pooling,
        classes=classes,
        classifier_activation=classifier_activation,
        name=name,
    )
