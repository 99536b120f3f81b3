"""keras-hub backbones: `SKNetBackbone` (the bottleneck family) and `SKResNetBackbone` (basic blocks).

Reference: Li et al., Selective Kernel Networks, CVPR 2019, Section 3.2 and
Table 1; timm's `skresnet18/34`; keras-hub's `FeaturePyramidBackbone` contract.
"""

import contextlib

import keras
from keras_hub.models import FeaturePyramidBackbone

from keras_sknet.applications.features import pyramid_layer_names
from keras_sknet.applications.sknet import SKNet
from keras_sknet.applications.skresnet import SKResNet


@contextlib.contextmanager
def _global_dtype_policy(dtype):
    """Builds the zoo's layers (which take Keras' global policy) under `dtype`."""
    if dtype is None:
        yield
        return
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(keras.dtype_policies.get(dtype))
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


def _check_image_shape(image_shape):
    image_shape = tuple(image_shape)
    if len(image_shape) != 3 or image_shape[-1] != 3:
        raise ValueError(
            "`image_shape` must be (height, width, 3), channels last (None sides take any size). "
            f"Received: image_shape={image_shape!r}"
        )
    return image_shape


def _headless_net(builder, image_shape, dtype, **arguments):
    """`builder(include_top=False, **arguments)` on a new `images` input, and its pyramid outputs."""
    with _global_dtype_policy(dtype):
        image_input = keras.Input(shape=image_shape, name="images")
        net = builder(include_top=False, input_tensor=image_input, **arguments)
    pyramid_outputs = {level: net.get_layer(name).output for level, name in pyramid_layer_names(net).items()}
    return image_input, net, pyramid_outputs


@keras.saving.register_keras_serializable(package="keras_sknet")
class SKNetBackbone(FeaturePyramidBackbone):
    """An SKNet, ResNeXt or SENet (bottleneck units) for keras-hub.

    The network of `keras_sknet.applications.SKNet(include_top=False)`, with
    its layers (and so its weights) named as there, and keras-hub's
    `pyramid_outputs`: with the ImageNet stem P1 (stem) to P5 (last stage),
    with the CIFAR stem P0 to P2 (the three stages), level n at stride `2**n`
    (see `keras_sknet.applications.feature_extractor`). Inputs are
    `preprocess_input` images (`SKNetImageConverter` makes them).

    Args:
        stage_depths: units per stage, e.g. `(3, 4, 6, 3)` (50 layers).
        block: `"sk"` (SKNet) or `"resnext"` (ResNeXt; SENet with
            `se_reduction`).
        cardinality: groups of the middle convolution.
        bottleneck_width: channels per group in the first stage.
        kernel_sizes: the SK paths, e.g. `(3, 5)`.
        min_dim: L of the SK fuse operator, an int or one per stage (the
            official Caffe SKNet-101: `(32, 16, 32, 32)`).
        reduction: r of the SK fuse operator (16 ImageNet, 32 CIFAR).
        se_reduction: SE reduction of every unit (SENet), or None.
        stem: `"imagenet"` (7x7/2 conv + max pool) or `"cifar"` (3x3 conv).
        stem_pool: the ImageNet stem's max pool, `"pytorch"` (timm's weights)
            or `"caffe"` (the official Caffe weights).
        output_stride: 32, 16 or 8 (the later stages dilate instead; 32 only
            with the CIFAR stem).
        image_shape: the input shape, channels last; `(None, None, 3)` takes
            any size.
        dtype: a dtype policy (or a `keras.dtype_policies.DTypePolicyMap`)
            for every layer.

    Example:
        >>> backbone = SKNetBackbone(stage_depths=(3, 4, 6, 3))
        >>> features = keras.Model(backbone.inputs, backbone.pyramid_outputs)
        >>> sorted(features(np.zeros((1, 64, 64, 3))))
        ['P1', 'P2', 'P3', 'P4', 'P5']
    """

    def __init__(
        self,
        stage_depths,
        block="sk",
        cardinality=32,
        bottleneck_width=4,
        kernel_sizes=(3, 5),
        min_dim=32,
        reduction=16,
        se_reduction=None,
        stem="imagenet",
        stem_pool="pytorch",
        output_stride=32,
        image_shape=(None, None, 3),
        dtype=None,
        **kwargs,
    ):
        image_shape = _check_image_shape(image_shape)
        min_dim = tuple(min_dim) if isinstance(min_dim, (list, tuple)) else min_dim
        # === Layers ===
        image_input, net, pyramid_outputs = _headless_net(
            SKNet,
            image_shape,
            dtype,
            stage_depths=tuple(stage_depths),
            block=block,
            stem=stem,
            cardinality=cardinality,
            bottleneck_width=bottleneck_width,
            kernel_sizes=tuple(kernel_sizes),
            min_dim=min_dim,
            reduction=reduction,
            se_reduction=se_reduction,
            stem_pool=stem_pool,
            output_stride=output_stride,
        )

        # === Functional model ===
        kwargs.setdefault("name", "sk_net_backbone")
        super().__init__(inputs=image_input, outputs=net.output, dtype=dtype, **kwargs)

        # === Config ===
        self.stage_depths = tuple(stage_depths)
        self.block = block
        self.cardinality = cardinality
        self.bottleneck_width = bottleneck_width
        self.kernel_sizes = tuple(kernel_sizes)
        self.min_dim = min_dim
        self.reduction = reduction
        self.se_reduction = se_reduction
        self.stem = stem
        self.stem_pool = stem_pool
        self.output_stride = output_stride
        self.image_shape = image_shape
        self.pyramid_outputs = pyramid_outputs

    def get_config(self):
        config = super().get_config()
        config.update(
            stage_depths=list(self.stage_depths),
            block=self.block,
            cardinality=self.cardinality,
            bottleneck_width=self.bottleneck_width,
            kernel_sizes=list(self.kernel_sizes),
            min_dim=list(self.min_dim) if isinstance(self.min_dim, tuple) else self.min_dim,
            reduction=self.reduction,
            se_reduction=self.se_reduction,
            stem=self.stem,
            stem_pool=self.stem_pool,
            output_stride=self.output_stride,
            image_shape=list(self.image_shape),
        )
        return config


@keras.saving.register_keras_serializable(package="keras_sknet")
class SKResNetBackbone(FeaturePyramidBackbone):
    """An SK-ResNet (ResNet basic blocks with an SK first convolution) for keras-hub.

    The network of `keras_sknet.applications.SKResNet(include_top=False)`
    (timm's `skresnet18/34`), with its layers (and so its weights) named as
    there, and keras-hub's `pyramid_outputs` P1 (stem, 64 channels) to P5
    (last stage, 512), level n at stride `2**n`. Inputs are
    `preprocess_input` images (`SKResNetImageConverter` makes them).

    Args:
        stage_depths: units per stage, `(2, 2, 2, 2)` (18 layers) or
            `(3, 4, 6, 3)` (34).
        kernel_sizes: the SK paths, e.g. `(3, 5)`.
        reduction: r of the SK fuse operator.
        min_dim: L of the SK fuse operator.
        split_input: each SK path reads 1/M of the input channels (timm).
        output_stride: 32, 16 or 8 (the later stages dilate instead).
        image_shape: the input shape, channels last; `(None, None, 3)` takes
            any size.
        dtype: a dtype policy (or a `keras.dtype_policies.DTypePolicyMap`)
            for every layer.

    Example:
        >>> backbone = SKResNetBackbone(stage_depths=(2, 2, 2, 2))
        >>> features = keras.Model(backbone.inputs, backbone.pyramid_outputs)
        >>> {k: v.shape[-1] for k, v in features(np.zeros((1, 64, 64, 3))).items()}
        {'P1': 64, 'P2': 64, 'P3': 128, 'P4': 256, 'P5': 512}
    """

    def __init__(
        self,
        stage_depths,
        kernel_sizes=(3, 5),
        reduction=8,
        min_dim=16,
        split_input=True,
        output_stride=32,
        image_shape=(None, None, 3),
        dtype=None,
        **kwargs,
    ):
        image_shape = _check_image_shape(image_shape)
        # === Layers ===
        image_input, net, pyramid_outputs = _headless_net(
            SKResNet,
            image_shape,
            dtype,
            stage_depths=tuple(stage_depths),
            kernel_sizes=tuple(kernel_sizes),
            reduction=reduction,
            min_dim=min_dim,
            split_input=split_input,
            output_stride=output_stride,
        )

        # === Functional model ===
        kwargs.setdefault("name", "sk_res_net_backbone")
        super().__init__(inputs=image_input, outputs=net.output, dtype=dtype, **kwargs)

        # === Config ===
        self.stage_depths = tuple(stage_depths)
        self.kernel_sizes = tuple(kernel_sizes)
        self.reduction = reduction
        self.min_dim = min_dim
        self.split_input = split_input
        self.output_stride = output_stride
        self.image_shape = image_shape
        self.pyramid_outputs = pyramid_outputs

    def get_config(self):
        config = super().get_config()
        config.update(
            stage_depths=list(self.stage_depths),
            kernel_sizes=list(self.kernel_sizes),
            reduction=self.reduction,
            min_dim=self.min_dim,
            split_input=self.split_input,
            output_stride=self.output_stride,
            image_shape=list(self.image_shape),
        )
        return config
