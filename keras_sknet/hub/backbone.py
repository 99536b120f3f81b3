"""`SKNetBackbone`: the SKNet / ResNeXt / SENet bottleneck family as a keras-hub backbone.

Reference: Li et al., Selective Kernel Networks, CVPR 2019, Section 3.2 and
Table 1; keras-hub's `FeaturePyramidBackbone` contract.
"""

import contextlib

import keras
from keras_hub.models import FeaturePyramidBackbone

from keras_sknet.applications.features import pyramid_layer_names
from keras_sknet.applications.sknet import SKNet


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


@keras.saving.register_keras_serializable(package="keras_sknet")
class SKNetBackbone(FeaturePyramidBackbone):
    """An SKNet, ResNeXt or SENet (ImageNet stem, bottleneck units) for keras-hub.

    The network of `keras_sknet.applications.SKNet(include_top=False)`, with
    its layers (and so its weights) named as there, and keras-hub's
    `pyramid_outputs` P1 (stem) to P5 (last stage), level n at stride `2**n`
    (see `keras_sknet.applications.feature_extractor`). Inputs are
    `preprocess_input` images (`SKNetImageConverter` makes them).

    Args:
        stage_depths: units per stage, e.g. `(3, 4, 6, 3)` (50 layers).
        block: `"sk"` (SKNet) or `"resnext"` (ResNeXt; SENet with
            `se_reduction`).
        cardinality: groups of the middle convolution.
        bottleneck_width: channels per group in the first stage.
        kernel_sizes: the SK paths, e.g. `(3, 5)`.
        min_dim: L of the SK fuse operator, an int or one per stage.
        se_reduction: SE reduction of every unit (SENet), or None.
        output_stride: 32, 16 or 8 (the later stages dilate instead).
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
        se_reduction=None,
        output_stride=32,
        image_shape=(None, None, 3),
        dtype=None,
        **kwargs,
    ):
        image_shape = tuple(image_shape)
        if len(image_shape) != 3 or image_shape[-1] != 3:
            raise ValueError(
                "`image_shape` must be (height, width, 3), channels last (None sides take any size). "
                f"Received: image_shape={image_shape!r}"
            )
        # === Layers ===
        with _global_dtype_policy(dtype):
            image_input = keras.Input(shape=image_shape, name="images")
            net = SKNet(
                tuple(stage_depths),
                block=block,
                stem="imagenet",
                cardinality=cardinality,
                bottleneck_width=bottleneck_width,
                kernel_sizes=tuple(kernel_sizes),
                min_dim=tuple(min_dim) if isinstance(min_dim, (list, tuple)) else min_dim,
                se_reduction=se_reduction,
                output_stride=output_stride,
                include_top=False,
                input_tensor=image_input,
            )
        pyramid_outputs = {
            level: net.get_layer(name).output for level, name in pyramid_layer_names(net).items()
        }

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
        self.se_reduction = se_reduction
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
            min_dim=list(self.min_dim) if isinstance(self.min_dim, (list, tuple)) else self.min_dim,
            se_reduction=self.se_reduction,
            output_stride=self.output_stride,
            image_shape=list(self.image_shape),
        )
        return config
