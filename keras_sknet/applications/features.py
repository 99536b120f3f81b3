"""Multi-scale feature maps of any zoo model, for detection and segmentation heads.

`feature_extractor(model)` returns a view of the graph the model already has:
a `keras.Model` with the same inputs and weights whose output is a dict of
feature maps keyed `"P<n>"`, level n having stride `2**n` (keras-hub's
`pyramid_outputs` convention). Each level is the deepest map the network
computes at that stride:

| family | levels |
|---|---|
| ImageNet SKNet / ResNeXt / SENet / SK-ResNet | P1 stem after its ReLU (before the max pool), P2..P5 the four stages (timm's `features_only` maps, same channels) |
| CIFAR SKNet-29 / ResNeXt-29 / SENet-29 | P0 stage 1 (the stem keeps the resolution), P1 stage 2, P2 stage 3 |
| ShuffleNetV2 (+SE / SK) | P1 stem conv, P2 max pool, P3, P4 stages 2 and 3, P5 the final 1x1 conv |

With `output_stride=16` or `8` the levels keep their names, and the dilated
ones keep the resolution of `output_stride` (P5 of an `output_stride=16` net
is 1/16 of the input), as timm's `features_only` maps do.
"""

import re

import keras

_UNIT = re.compile(r"^(conv|stage)(\d+)_(block|unit)(\d+)$")


def pyramid_layer_names(model):
    """Which layer of a zoo model gives each pyramid level.

    Args:
        model: a model of `keras_sknet.applications` (any input shape, with or
            without its top), or one loaded back from a `.keras` file.

    Returns:
        `{"P<n>": layer name}`, ordered from the finest level to the coarsest.

    Raises:
        ValueError: the model is not laid out like a zoo model (no stem named
            `conv1_relu`, or no stages named `conv<n>_block<m>` /
            `stage<n>_unit<m>`).

    Example:
        >>> pyramid_layer_names(SKResNet18(include_top=False))
        {'P1': 'conv1_relu', 'P2': 'conv2_block2', 'P3': 'conv3_block2', 'P4': 'conv4_block2', 'P5': 'conv5_block2'}
    """
    names = [layer.name for layer in model.layers]
    last_unit = {}  # (kind, stage) -> name of its last unit
    for name in names:
        match = _UNIT.match(name)
        if match:
            last_unit[(match.group(1), int(match.group(2)))] = name
    kinds = {kind for kind, _ in last_unit}
    if "conv1_relu" not in names or len(kinds) != 1:
        raise ValueError(
            "`feature_extractor` takes a model of keras_sknet.applications: a stem ending in a "
            "layer named 'conv1_relu' and stages of units named 'conv<n>_block<m>' (SKNet, "
            "ResNeXt, SENet, SKResNet) or 'stage<n>_unit<m>' (ShuffleNetV2). "
            f"Received: model {model.name!r} with layers {names[:6]}{' ...' if len(names) > 6 else ''}"
        )
    has_pool = "pool1_pool" in names
    levels = {}
    if has_pool:  # ImageNet stems: a stride-2 conv, then a stride-2 max pool
        levels[1] = "conv1_relu"
    if (kinds == {"stage"}) and has_pool:
        levels[2] = "pool1_pool"
    for (kind, stage), name in sorted(last_unit.items()):
        if kind == "conv":  # stage n of a ResNet sits at stride 2^n, or 2^(n-2) without the pooled stem
            levels[stage if has_pool else stage - 2] = name
        else:  # ShuffleNetV2: every stage starts with a stride-2 unit after the stride-4 stem
            levels[stage + 1] = name
    if kinds == {"stage"} and "conv5_relu" in names:
        levels[max(levels)] = "conv5_relu"  # the last 1x1 conv runs at the last stage's stride
    return {f"P{level}": levels[level] for level in sorted(levels)}


def feature_extractor(model, levels=None, name=None):
    """A model that returns the feature pyramid of a zoo model.

    Reference: Lin et al., Feature Pyramid Networks for Object Detection,
    CVPR 2017 (the C2..C5 maps an FPN reads); timm's `features_only`;
    keras-hub's `FeaturePyramidBackbone.pyramid_outputs`.

    Args:
        model: a model of `keras_sknet.applications`, best built with
            `include_top=False` and `input_shape=(None, None, 3)` so that it
            takes any image size (any `output_stride`, any weights).
        levels: `None` (every level the model has) or a list of level names
            such as `["P3", "P4", "P5"]`.
        name: the new model's name; default `"<model name>_features"`.

    Returns:
        A `keras.Model` with the model's inputs and weights (shared, not
        copied) whose output is a dict `{"P<n>": feature map}`, n being the
        level of stride `2**n` (see the module docstring for each family).

    Raises:
        ValueError: `model` is not a zoo model, or `levels` names a level it
            does not have.

    Example:
        >>> backbone = SKNet50(include_top=False, weights="imagenet", input_shape=(None, None, 3))
        >>> pyramid = feature_extractor(backbone, levels=["P3", "P4", "P5"])
        >>> {k: v.shape[-1] for k, v in pyramid(images).items()}
        {'P3': 512, 'P4': 1024, 'P5': 2048}
    """
    available = pyramid_layer_names(model)
    if levels is None:
        levels = list(available)
    elif isinstance(levels, str) or not isinstance(levels, (list, tuple)) or not levels:
        raise ValueError(
            f"`levels` must be None or a non-empty list of level names out of {list(available)}. "
            f"Received: levels={levels!r}"
        )
    unknown = [level for level in levels if level not in available]
    if unknown or len(set(levels)) != len(levels):
        raise ValueError(
            f"`levels` must name distinct levels of model {model.name!r}, out of {list(available)}. "
            f"Received: levels={list(levels)!r}"
        )
    outputs = {level: model.get_layer(available[level]).output for level in levels}
    return keras.Model(model.input, outputs, name=name or f"{model.name}_features")
