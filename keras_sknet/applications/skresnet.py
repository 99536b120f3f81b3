"""SK-ResNet-18/34: ResNet basic blocks whose first 3x3 conv is an SK convolution.

Not a network of the paper (its SK units sit in ResNeXt bottlenecks, Table 1)
but timm's `skresnet18` / `skresnet34`, the SK nets with public ImageNet
weights that are small enough for quick experiments. Layout: the ImageNet stem
(7x7/2 conv + 3x3/2 max pool), four stages of `SKBasicBlock`s with 64, 128,
256, 512 channels (stride 2 in the first unit of stages 2-4), global average
pool, fc. SK[M=2 (K3, K5), G=1, r=8], L=16, each path reading half of the
input channels, as timm builds them, so that timm's checkpoints load and the
parameter counts are timm's (11,958,056 and 22,282,376).
"""

from keras_sknet.applications.model_builder import build_model, documented, min_input_size, named_model
from keras_sknet.applications.sknet import build_stem, check_output_stride, unit_strides
from keras_sknet.layers.basic_block import SKBasicBlock
from keras_sknet.utils.validation import check_positive_int
from keras_sknet.weights.records import MODELS

# Architecture of each named model of this family (a view of keras_sknet.weights.records.MODELS).
MODEL_CONFIGS = {r.config_name: r.config for r in MODELS.values() if r.builder == "SKResNet"}
DEFAULT_SIZE = 224


def SKResNet(
    stage_depths,
    kernel_sizes=(3, 5),
    reduction=8,
    min_dim=16,
    split_input=True,
    output_stride=32,
    include_top=True,
    weights=None,
    input_tensor=None,
    input_shape=None,
    pooling=None,
    classes=1000,
    classifier_activation="softmax",
    name="skresnet",
):
    """Builds an SK-ResNet: ResNet basic blocks with an SK first convolution.

    Reference: Li et al., Selective Kernel Networks, CVPR 2019, Section 3.1
    (the SK convolution); He et al., Deep Residual Learning, CVPR 2016 (the
    basic-block ResNet); the configuration of timm's `skresnet18/34`.

    Args:
        stage_depths: units per stage, e.g. `(2, 2, 2, 2)` for SK-ResNet-18.
        kernel_sizes: SK paths (M = len); default K3 + K5 (3x3, dilation 2).
        reduction: r of the SK fuse operator.
        min_dim: L of the SK fuse operator.
        split_input: each SK path reads 1/M of the input channels (timm).
        output_stride: 32 (default), 16 or 8: the stages past this stride
            keep their resolution and dilate instead (as timm's
            `output_stride`; see `keras_sknet.applications.sknet.unit_strides`).
        include_top, weights, input_tensor, input_shape, pooling, classes,
        classifier_activation, name: as in `keras.applications`.

    Returns:
        A `keras.Model`.

    Example:
        >>> SKResNet((2, 2, 2, 2), name="skresnet18").output_shape
        (None, 1000)
    """
    if not isinstance(stage_depths, (list, tuple)) or not stage_depths:
        raise ValueError(
            f"`stage_depths` must be a non-empty list of positive integers. "
            f"Received: stage_depths={stage_depths!r}"
        )
    for depth in stage_depths:
        check_positive_int("stage_depths", depth)
    plan = unit_strides(stage_depths, check_output_stride(output_stride))

    def features(x):
        x = build_stem(x, "imagenet")
        for stage, units in enumerate(plan):
            for unit, (strides, first_dilation, dilation) in enumerate(units):
                x = SKBasicBlock(
                    64 * 2**stage,
                    strides=strides,
                    dilation=dilation,
                    first_dilation=first_dilation,
                    kernel_sizes=kernel_sizes,
                    reduction=reduction,
                    min_dim=min_dim,
                    split_input=split_input,
                    name=f"conv{stage + 2}_block{unit + 1}",
                )(x)
        return x

    return build_model(
        features,
        default_size=DEFAULT_SIZE,
        min_size=min_input_size("imagenet", len(stage_depths)),
        include_top=include_top,
        weights=weights,
        input_tensor=input_tensor,
        input_shape=input_shape,
        pooling=pooling,
        classes=classes,
        classifier_activation=classifier_activation,
        name=name,
    )


@documented("SKResNet18")
def SKResNet18(
    include_top=True,
    weights=None,
    input_tensor=None,
    input_shape=None,
    pooling=None,
    classes=1000,
    classifier_activation="softmax",
    name="skresnet18",
    output_stride=32,
):
    """Instantiates the SK-ResNet-18 (timm's skresnet18: basic SK blocks {2,2,2,2}).

    Reference: Li et al., Selective Kernel Networks, CVPR 2019, Section 3.1; timm's skresnet18

    Example:
        >>> model = SKResNet18()
        >>> model.output_shape
        (None, 1000)
    """
    return named_model(
        SKResNet,
        "SKResNet18",
        include_top=include_top,
        weights=weights,
        input_tensor=input_tensor,
        input_shape=input_shape,
        pooling=pooling,
        classes=classes,
        classifier_activation=classifier_activation,
        name=name,
        output_stride=output_stride,
    )


@documented("SKResNet34")
def SKResNet34(
    include_top=True,
    weights=None,
    input_tensor=None,
    input_shape=None,
    pooling=None,
    classes=1000,
    classifier_activation="softmax",
    name="skresnet34",
    output_stride=32,
):
    """Instantiates the SK-ResNet-34 (timm's skresnet34: basic SK blocks {3,4,6,3}).

    Reference: Li et al., Selective Kernel Networks, CVPR 2019, Section 3.1; timm's skresnet34

    Example:
        >>> model = SKResNet34()
        >>> model.output_shape
        (None, 1000)
    """
    return named_model(
        SKResNet,
        "SKResNet34",
        include_top=include_top,
        weights=weights,
        input_tensor=input_tensor,
        input_shape=input_shape,
        pooling=pooling,
        classes=classes,
        classifier_activation=classifier_activation,
        name=name,
        output_stride=output_stride,
    )
