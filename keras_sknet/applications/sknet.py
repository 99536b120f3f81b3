"""SKNet and its ResNeXt / SENet baselines, for ImageNet (224) and CIFAR (32).

One family builder, `SKNet()`, makes every bottleneck network of the paper;
the public functions only pick their record (`keras_sknet.weights.records`). The ablations of
Tables 6 and 7 are arguments of `SKNet()`, for example:

    SKNet(stage_depths=(3, 4, 6, 3), kernel_sizes=(3, 5, 7))       # K3+K5+K7, SK
    SKNet(stage_depths=(3, 4, 6, 3), kernel_sizes=(3, 5), attention=False)  # naive sum
    SKNet(stage_depths=(3, 4, 6, 3), kernel_sizes=(3, 5),
          dilate_large_kernels=False, sk_groups=(32, 64))           # true 5x5, G=64

ImageNet layout (Table 1): 7x7/2 conv + 3x3/2 max pool, then four stages of
bottleneck units with 256, 512, 1024, 2048 output channels; cardinality 32 and
bottleneck width 4 give the 128...1024-channel middle convolutions.
CIFAR layout (Section 4.2, supplementary D, ResNeXt-29 16x32d): a 3x3 conv and
three stages of three units with 256, 512, 1024 output channels and
512, 1024, 2048-channel middle convolutions of 16 groups.
"""

import keras

from keras_sknet.applications.model_builder import STEMS, build_model, documented, min_input_size, named_model
from keras_sknet.layers.batch_norm import BN_EPSILON, BN_MOMENTUM, FusedBatchNorm
from keras_sknet.layers.bottleneck import ResNeXtBlock, SKBlock
from keras_sknet.layers.conv import HE_NORMAL_FAN_OUT
from keras_sknet.utils.validation import check_positive_int
from keras_sknet.weights.checkpoint import is_caffemodel_path
from keras_sknet.weights.records import MODELS
from keras_sknet.weights.sources import Source

BLOCK_TYPES = ("sk", "resnext")
# How the ImageNet stem's 3x3/2 max pool meets the edges: "pytorch" pads 1 and rounds down
# (torchvision, timm), "caffe" pads nothing and rounds up (Caffe's ceil mode, the official
# SKNet release).
STEM_POOLS = ("pytorch", "caffe")


OUTPUT_STRIDES = (8, 16, 32)


def check_output_stride(output_stride, stem="imagenet"):
    """Checks `output_stride` (32, 16 or 8; only 32 with the CIFAR stem); returns it."""
    accepted = OUTPUT_STRIDES if stem == "imagenet" else (32,)
    if isinstance(output_stride, bool) or output_stride not in accepted:
        raise ValueError(
            f"`output_stride` must be one of {accepted} with stem={stem!r}. "
            f"Received: output_stride={output_stride!r}"
        )
    return output_stride


def unit_strides(stage_depths, output_stride, stem_stride=4):
    """Stride and dilations of every unit, for a network of total stride `output_stride`.

    Stage 1 keeps the stem's resolution and every later stage halves it, until
    the network reaches `output_stride`; from there a stage keeps the
    resolution and doubles the dilation instead (DeepLab, Chen et al. 2017;
    timm's `make_blocks`). The first unit of a stage still runs its first
    convolution at the previous stage's dilation (timm's `first_dilation`), so
    that converted timm weights give timm's maps at every output stride.

    Args:
        stage_depths: units per stage.
        output_stride: 8, 16 or 32 (32: no dilation).
        stem_stride: the stride of the stem (4 for the ImageNet stem).

    Returns:
        One list per stage of `(strides, first_dilation, dilation)` per unit.

    Example:
        >>> unit_strides((1, 1, 1, 2), 16)[3]
        [(1, 1, 2), (1, 2, 2)]
    """
    plan, net_stride, dilation = [], stem_stride, 1
    for stage, depth in enumerate(stage_depths):
        previous, stride = dilation, 1 if stage == 0 else 2
        if net_stride >= output_stride:
            dilation, stride = dilation * stride, 1
        else:
            net_stride *= stride
        units = [(stride, previous, dilation)]
        units += [(1, dilation, dilation)] * (depth - 1)
        plan.append(units)
    return plan


# Architecture of each named model of this family (a view of keras_sknet.weights.records.MODELS).
MODEL_CONFIGS = {r.config_name: r.config for r in MODELS.values() if r.builder == "SKNet"}


def build_stem(x, kind, pool="pytorch"):
    """The stem: "imagenet" (7x7/2 conv, BN, ReLU, 3x3/2 max pool) or "cifar" (3x3 conv, BN, ReLU).

    `pool` (one of `STEM_POOLS`) places the max pool's windows of the ImageNet stem.
    """
    conv = dict(use_bias=False, kernel_initializer=HE_NORMAL_FAN_OUT)
    bn = dict(epsilon=BN_EPSILON, momentum=BN_MOMENTUM)
    if kind == "imagenet":
        x = keras.layers.ZeroPadding2D(3, name="conv1_pad")(x)
        x = keras.layers.Conv2D(64, 7, strides=2, name="conv1_conv", **conv)(x)
    else:
        x = keras.layers.ZeroPadding2D(1, name="conv1_pad")(x)
        x = keras.layers.Conv2D(64, 3, name="conv1_conv", **conv)(x)
    x = FusedBatchNorm(name="conv1_bn", **bn)(x)
    x = keras.layers.ReLU(name="conv1_relu")(x)
    if kind == "imagenet":
        # Zero padding equals PyTorch's -inf padding here: the input is >= 0 after ReLU.
        # Caffe's ceil mode, out = ceil((n - 3) / 2) + 1, is one zero row and column at the
        # bottom and right, whether n is odd or even; its windows start at 0, PyTorch's at -1.
        padding = 1 if pool == "pytorch" else ((0, 1), (0, 1))
        x = keras.layers.ZeroPadding2D(padding, name="pool1_pad")(x)
        x = keras.layers.MaxPooling2D(3, strides=2, name="pool1_pool")(x)
    return x


def SKNet(
    stage_depths,
    block="sk",
    stem="imagenet",
    cardinality=32,
    bottleneck_width=4,
    kernel_sizes=(3, 5),
    sk_groups=None,
    reduction=16,
    min_dim=32,
    dilate_large_kernels=True,
    attention=True,
    se_reduction=None,
    output_stride=32,
    stem_pool="pytorch",
    include_top=True,
    weights=None,
    input_tensor=None,
    input_shape=None,
    pooling=None,
    classes=1000,
    classifier_activation="softmax",
    name="sknet",
):
    """Builds a bottleneck network of the SKNet / ResNeXt / SENet family.

    Reference: Li et al., Selective Kernel Networks, CVPR 2019, Section 3.2,
    Table 1 (ImageNet), Section 4.2 (CIFAR), Tables 6 and 7 (ablations).

    Args:
        stage_depths: units per stage, e.g. `(3, 4, 6, 3)` for the 50-layer
            ImageNet nets, `(3, 3, 3)` for the 29-layer CIFAR nets.
        block: `"sk"` (SK units) or `"resnext"` (grouped 3x3; SENet with
            `se_reduction`).
        stem: `"imagenet"` (7x7/2 conv + max pool, 224 input) or `"cifar"`
            (3x3 conv, 32 input).
        cardinality: groups of the middle convolution (32 ImageNet, 16 CIFAR).
        bottleneck_width: channels per group in the first stage (4 ImageNet,
            32 CIFAR): middle width = 64 * 2^stage * bottleneck_width / 64 *
            cardinality.
        kernel_sizes: SK paths (M = len), e.g. `(3, 5)`, `(3, 5, 7)`, `(5,)`.
        sk_groups: G of the SK paths, an int or one per path; default
            `cardinality`.
        reduction: r of the SK fuse operator.
        min_dim: L of the SK fuse operator, an int or one per stage (the
            official Caffe SKNet-101 has `(32, 16, 32, 32)`: d = 16 in its
            second stage where the paper's L = 32 gives 32).
        dilate_large_kernels: kernels > 3 as dilated 3x3 (default) or true kxk.
        attention: SK selection (True) or plain sum of the paths (False).
        se_reduction: adds SE with this reduction to every unit (SENet).
        output_stride: 32 (default), 16 or 8, ImageNet stem only: the
            stages past this stride keep their resolution and dilate instead
            (for segmentation heads; see `unit_strides`). Weights do not
            change, so any `weights=` loads at any output stride.
        stem_pool: `"pytorch"` (pad 1, round down: torchvision, timm) or
            `"caffe"` (no padding, round up: the official Caffe release,
            `weights="....caffemodel"`); the ImageNet stem's max pool.
        include_top, weights, input_tensor, input_shape, pooling, classes,
        classifier_activation, name: as in `keras.applications`.

    Returns:
        A `keras.Model`.

    Example:
        >>> model = SKNet((3, 4, 6, 3), kernel_sizes=(3, 5, 7), name="sknet50_k357")
        >>> model.output_shape
        (None, 1000)
    """
    if block not in BLOCK_TYPES:
        raise ValueError(f"`block` must be one of {BLOCK_TYPES}. Received: block={block!r}")
    if stem not in STEMS:
        raise ValueError(f"`stem` must be one of {tuple(STEMS)}. Received: stem={stem!r}")
    if not isinstance(stage_depths, (list, tuple)) or not stage_depths:
        raise ValueError(
            f"`stage_depths` must be a non-empty list of positive integers. "
            f"Received: stage_depths={stage_depths!r}"
        )
    for depth in stage_depths:
        check_positive_int("stage_depths", depth)
    if stem_pool not in STEM_POOLS:
        raise ValueError(f"`stem_pool` must be one of {STEM_POOLS}. Received: stem_pool={stem_pool!r}")
    # A model function has resolved `weights` (a Source); a direct call passes the value itself.
    if isinstance(weights, Source):
        weights_path, is_caffe = weights.path, weights.kind == "caffe"
    else:
        weights_path, is_caffe = weights, is_caffemodel_path(weights)
    if is_caffe and (stem != "imagenet" or stem_pool != "caffe"):
        raise ValueError(
            "The official Caffe weights need the ImageNet stem with Caffe's max pool: "
            "SKNet50(weights=...) and SKNet101(weights=...) build it, or pass "
            f"stem_pool='caffe'. Received: stem={stem!r}, stem_pool={stem_pool!r}, weights={str(weights_path)!r}"
        )
    if isinstance(min_dim, (list, tuple)):
        if len(min_dim) != len(stage_depths):
            raise ValueError(
                f"`min_dim` must be an int or one int per stage ({len(stage_depths)} stages). "
                f"Received: min_dim={min_dim!r}"
            )
        stage_min_dims = tuple(check_positive_int("min_dim", d) for d in min_dim)
    else:
        stage_min_dims = (check_positive_int("min_dim", min_dim),) * len(stage_depths)
    check_positive_int("cardinality", cardinality)
    check_positive_int("bottleneck_width", bottleneck_width)
    check_output_stride(output_stride, stem)
    plan = unit_strides(stage_depths, output_stride, STEMS[stem][1])
    default_size = STEMS[stem][0]
    min_size = min_input_size(stem, len(stage_depths))

    def features(x):
        x = build_stem(x, stem, stem_pool)
        for stage, units in enumerate(plan):
            planes = 64 * 2**stage
            width = (planes * bottleneck_width // 64) * cardinality
            for unit, (strides, first_dilation, _) in enumerate(units):
                common = dict(
                    filters=4 * planes,
                    width=width,
                    strides=strides,
                    dilation=first_dilation,  # a bottleneck's only 3x3 is its first
                    se_reduction=se_reduction,
                    name=f"conv{stage + 2}_block{unit + 1}",
                )
                if block == "sk":
                    x = SKBlock(
                        groups=sk_groups if sk_groups is not None else cardinality,
                        kernel_sizes=kernel_sizes,
                        reduction=reduction,
                        min_dim=stage_min_dims[stage],
                        dilate_large_kernels=dilate_large_kernels,
                        attention=attention,
                        **common,
                    )(x)
                else:
                    x = ResNeXtBlock(groups=cardinality, **common)(x)
        return x

    return build_model(
        features,
        default_size=default_size,
        min_size=min_size,
        include_top=include_top,
        weights=weights,
        input_tensor=input_tensor,
        input_shape=input_shape,
        pooling=pooling,
        classes=classes,
        classifier_activation=classifier_activation,
        name=name,
    )


@documented("SKNet26")
def SKNet26(
    include_top=True,
    weights=None,
    input_tensor=None,
    input_shape=None,
    pooling=None,
    classes=1000,
    classifier_activation="softmax",
    name="sknet26",
    output_stride=32,
):
    """Instantiates the SKNet-26: stages {2,2,2,2}, SK[2,32,16], L=32.

    Reference: Li et al., Selective Kernel Networks, CVPR 2019, Section 3.2, Table S2

    Example:
        >>> model = SKNet26()
        >>> model.output_shape
        (None, 1000)
    """
    return named_model(
        SKNet,
        "SKNet26",
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


@documented("SKNet50")
def SKNet50(
    include_top=True,
    weights=None,
    input_tensor=None,
    input_shape=None,
    pooling=None,
    classes=1000,
    classifier_activation="softmax",
    name="sknet50",
    output_stride=32,
):
    """Instantiates the SKNet-50: stages {3,4,6,3}, SK[2,32,16], L=32.

    Reference: Li et al., Selective Kernel Networks, CVPR 2019, Table 1

    Example:
        >>> model = SKNet50()
        >>> model.output_shape
        (None, 1000)
    """
    return named_model(
        SKNet,
        "SKNet50",
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


@documented("SKNet101")
def SKNet101(
    include_top=True,
    weights=None,
    input_tensor=None,
    input_shape=None,
    pooling=None,
    classes=1000,
    classifier_activation="softmax",
    name="sknet101",
    output_stride=32,
):
    """Instantiates the SKNet-101: stages {3,4,23,3}, SK[2,32,16], L=32.

    Reference: Li et al., Selective Kernel Networks, CVPR 2019, Table 2

    Example:
        >>> model = SKNet101()
        >>> model.output_shape
        (None, 1000)
    """
    return named_model(
        SKNet,
        "SKNet101",
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


@documented("ResNeXt50")
def ResNeXt50(
    include_top=True,
    weights=None,
    input_tensor=None,
    input_shape=None,
    pooling=None,
    classes=1000,
    classifier_activation="softmax",
    name="resnext50",
    output_stride=32,
):
    """Instantiates the ResNeXt-50 (32x4d) baseline.

    Reference: Xie et al., Aggregated Residual Transformations for Deep Neural Networks, CVPR 2017; Li et al., Selective Kernel Networks, CVPR 2019, Table 1

    Example:
        >>> model = ResNeXt50()
        >>> model.output_shape
        (None, 1000)
    """
    return named_model(
        SKNet,
        "ResNeXt50",
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


@documented("ResNeXt101")
def ResNeXt101(
    include_top=True,
    weights=None,
    input_tensor=None,
    input_shape=None,
    pooling=None,
    classes=1000,
    classifier_activation="softmax",
    name="resnext101",
    output_stride=32,
):
    """Instantiates the ResNeXt-101 (32x4d) baseline.

    Reference: Xie et al., Aggregated Residual Transformations for Deep Neural Networks, CVPR 2017; Li et al., Selective Kernel Networks, CVPR 2019, Table 2

    Example:
        >>> model = ResNeXt101()
        >>> model.output_shape
        (None, 1000)
    """
    return named_model(
        SKNet,
        "ResNeXt101",
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


@documented("SEResNeXt50")
def SEResNeXt50(
    include_top=True,
    weights=None,
    input_tensor=None,
    input_shape=None,
    pooling=None,
    classes=1000,
    classifier_activation="softmax",
    name="seresnext50",
    output_stride=32,
):
    """Instantiates the SENet-50 (SE-ResNeXt-50, 32x4d, SE r=16).

    Reference: Hu et al., Squeeze-and-Excitation Networks, CVPR 2018; Li et al., Selective Kernel Networks, CVPR 2019, Table 1

    Example:
        >>> model = SEResNeXt50()
        >>> model.output_shape
        (None, 1000)
    """
    return named_model(
        SKNet,
        "SEResNeXt50",
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


@documented("SEResNeXt101")
def SEResNeXt101(
    include_top=True,
    weights=None,
    input_tensor=None,
    input_shape=None,
    pooling=None,
    classes=1000,
    classifier_activation="softmax",
    name="seresnext101",
    output_stride=32,
):
    """Instantiates the SENet-101 (SE-ResNeXt-101, 32x4d, SE r=16).

    Reference: Hu et al., Squeeze-and-Excitation Networks, CVPR 2018; Li et al., Selective Kernel Networks, CVPR 2019, Table 2

    Example:
        >>> model = SEResNeXt101()
        >>> model.output_shape
        (None, 1000)
    """
    return named_model(
        SKNet,
        "SEResNeXt101",
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


@documented("SKNet29")
def SKNet29(
    include_top=True,
    weights=None,
    input_tensor=None,
    input_shape=None,
    pooling=None,
    classes=10,
    classifier_activation="softmax",
    name="sknet29",
    output_stride=32,
):
    """Instantiates the CIFAR SKNet-29 (ResNeXt-29 16x32d with SK[2,16,32], 1x1 second path).

    Reference: Li et al., Selective Kernel Networks, CVPR 2019, Section 4.2, supplementary D

    The CIFAR nets default to CIFAR-10's classes (Table 5 counts them with 10).

    Example:
        >>> model = SKNet29()
        >>> model.output_shape
        (None, 10)
    """
    return named_model(
        SKNet,
        "SKNet29",
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


@documented("ResNeXt29")
def ResNeXt29(
    include_top=True,
    weights=None,
    input_tensor=None,
    input_shape=None,
    pooling=None,
    classes=10,
    classifier_activation="softmax",
    name="resnext29",
    output_stride=32,
):
    """Instantiates the CIFAR ResNeXt-29, 16x32d.

    Reference: Xie et al., Aggregated Residual Transformations for Deep Neural Networks, CVPR 2017; Li et al., Selective Kernel Networks, CVPR 2019, Table 5

    The CIFAR nets default to CIFAR-10's classes (Table 5 counts them with 10).

    Example:
        >>> model = ResNeXt29()
        >>> model.output_shape
        (None, 10)
    """
    return named_model(
        SKNet,
        "ResNeXt29",
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


@documented("SEResNeXt29")
def SEResNeXt29(
    include_top=True,
    weights=None,
    input_tensor=None,
    input_shape=None,
    pooling=None,
    classes=10,
    classifier_activation="softmax",
    name="seresnext29",
    output_stride=32,
):
    """Instantiates the CIFAR SENet-29 (ResNeXt-29 16x32d with SE r=16 before each addition).

    Reference: Hu et al., Squeeze-and-Excitation Networks, CVPR 2018; Li et al., Selective Kernel Networks, CVPR 2019, Table 5

    The CIFAR nets default to CIFAR-10's classes (Table 5 counts them with 10).

    Example:
        >>> model = SEResNeXt29()
        >>> model.output_shape
        (None, 10)
    """
    return named_model(
        SKNet,
        "SEResNeXt29",
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
