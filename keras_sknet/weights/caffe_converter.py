"""The official Caffe SKNet weights -> keras_sknet's SKNet50 / SKNet101.

The release's prototxts (github.com/implus/SKNet, `models/sknet50.prototxt`,
`models/sknet101.prototxt`) name every unit `conv{S}_{B}/` and its layers as
below; our units are `conv{S}_block{B}`:

| keras_sknet                         | Caffe layer (blobs)                              |
|-------------------------------------|--------------------------------------------------|
| conv1_conv, conv1_bn                | conv1/7x7_s2, conv1/7x7_s2/bn                    |
| conv1, bn1                          | 1x1_reduce, 1x1_reduce/bn                        |
| sk/path0_conv, path0_bn             | 3x3g32, 3x3g32/bn (pad 1)                        |
| sk/path1_conv, path1_bn             | 3x3g32d2, 3x3g32d2/bn (pad 2, dilation 2)        |
| sk/attention/fc_reduce, bn          | B_fc1 (1x1 conv, no bias), B_fc1/bn              |
| sk/attention/fc_select              | B_fc2 (1x1 conv to 2C, path-major, no bias)      |
| conv3, bn3                          | 1x1_increase, 1x1_increase/bn                    |
| shortcut_conv, shortcut_bn          | 1x1_proj, 1x1_proj/bn (first unit of a stage)    |
| predictions                         | classifier (InnerProduct: (1000, 2048), bias)    |

Caffe convolutions are (O, I/G, H, W) like PyTorch's; `CuDNNBatchNorm` is
one layer with four blobs of shape (1, C, 1, 1): gamma, beta, running mean,
running variance (eps 1e-5, no scale factor blob). Files from Caffe's V1
format store legacy 4D shapes (e.g. (1, 1, 1000, 2048) for the classifier);
those are accepted where only leading 1s differ.
"""

import re

import numpy as np

from keras_sknet.layers.bottleneck import SKBlock
from keras_sknet.weights.timm_converter import (
    CONV,
    CONV_AS_DENSE,
    LINEAR,
    VECTOR,
    mismatch_error,
    to_keras_array,
    to_timm_shape,
)

BN = "bn"  # (1, C, 1, 1) -> (C,)
BN_BLOBS = ("gamma", "beta", "moving_mean", "moving_variance")
CLASSIFIER = "classifier"
_BLOCK_NAME = re.compile(r"^conv(\d+)_block(\d+)$")


def caffe_shape(shape, kind):
    """The blob shape Caffe stores for a Keras variable of `shape`."""
    if kind == BN:
        return (1, shape[0], 1, 1)
    return to_timm_shape(shape, kind)


def _strip_ones(shape):
    shape = tuple(shape)
    while len(shape) > 1 and shape[0] == 1:
        shape = shape[1:]
    return shape


def _conv(layer, caffe_layer):
    return {layer.kernel.path: (layer.kernel, (caffe_layer, 0), CONV)}


def _bn(layer, caffe_layer):
    return {
        getattr(layer, attr).path: (getattr(layer, attr), (caffe_layer, i), BN)
        for i, attr in enumerate(BN_BLOBS)
    }


def _sk_block(block, prefix):
    sk = block.sk
    if (
        sk.kernel_sizes != (3, 5)
        or not sk.dilate_large_kernels
        or sk.attention_layer is None
        or sk.split_input
        or len(set(sk.groups)) != 1
        or block.se is not None
    ):
        raise ValueError(
            f"{block.name} is not an SK unit of the Caffe release (K3 + dilated K5, one group "
            "count, attention, no SE); the release's weights fit SKNet50 and SKNet101."
        )
    paths = (f"3x3g{sk.groups[0]}", f"3x3g{sk.groups[0]}d2")
    entries = {}
    entries.update(_conv(block.conv1, f"{prefix}/1x1_reduce"))
    entries.update(_bn(block.bn1, f"{prefix}/1x1_reduce/bn"))
    for conv, bn, path in zip(sk.path_convs, sk.path_bns, paths):
        entries.update(_conv(conv, f"{prefix}/{path}"))
        entries.update(_bn(bn, f"{prefix}/{path}/bn"))
    attention = sk.attention_layer
    entries[attention.fc_reduce.kernel.path] = (
        attention.fc_reduce.kernel,
        (f"{prefix}/B_fc1", 0),
        CONV_AS_DENSE,
    )
    entries.update(_bn(attention.bn, f"{prefix}/B_fc1/bn"))
    entries[attention.fc_select.kernel.path] = (
        attention.fc_select.kernel,
        (f"{prefix}/B_fc2", 0),
        CONV_AS_DENSE,
    )
    entries.update(_conv(block.conv3, f"{prefix}/1x1_increase"))
    entries.update(_bn(block.bn3, f"{prefix}/1x1_increase/bn"))
    if block.shortcut_conv is not None:
        entries.update(_conv(block.shortcut_conv, f"{prefix}/1x1_proj"))
        entries.update(_bn(block.shortcut_bn, f"{prefix}/1x1_proj/bn"))
    return entries


def caffe_weight_map(model):
    """Which Caffe blob feeds each weight of an SKNet built as the release.

    Args:
        model: a built `SKNet50` / `SKNet101` (any `SKNet()` of SK units with
            the ImageNet stem), e.g. `SKNet((3, 4, 6, 3), stem_pool="caffe")`.

    Returns:
        `{keras_variable_path: (variable, (caffe_layer, blob_index), kind)}`.

    Raises:
        ValueError: the model has weights with no counterpart in the release.
    """
    entries, unmapped = {}, []
    for layer in model.layers:
        if not layer.weights:
            continue
        block = _BLOCK_NAME.match(layer.name)
        if layer.name == "conv1_conv" and tuple(getattr(layer, "kernel", np.zeros(0)).shape[:2]) == (7, 7):
            entries.update(_conv(layer, "conv1/7x7_s2"))
        elif layer.name == "conv1_bn":
            entries.update(_bn(layer, "conv1/7x7_s2/bn"))
        elif block and isinstance(layer, SKBlock):
            entries.update(_sk_block(layer, f"conv{block.group(1)}_{block.group(2)}"))
        elif layer.name == "predictions":
            entries[layer.kernel.path] = (layer.kernel, (CLASSIFIER, 0), LINEAR)
            if layer.bias is not None:
                entries[layer.bias.path] = (layer.bias, (CLASSIFIER, 1), VECTOR)
        else:
            unmapped.append(layer.name)
    if unmapped:
        raise ValueError(
            f"Model {model.name!r} has layers with no counterpart in the official Caffe SKNet "
            f"release: {unmapped[:8]}{' ...' if len(unmapped) > 8 else ''}. Its weights fit "
            "SKNet50 and SKNet101."
        )
    return entries


def _blob_name(key):
    return f"{key[0]}[{key[1]}]"


def match_caffe_blobs(model, blobs, source="the Caffe model"):
    """Checks the blobs of a caffemodel against a model and converts every one.

    Nothing is assigned here, so a mismatch leaves the model untouched.

    Args:
        model: see `caffe_weight_map`.
        blobs: `{caffe_layer: [array, ...]}`, as `read_caffemodel` returns.
        source: how to name the file in errors.

    Returns:
        `(variable, keras_array)` pairs covering every variable of the model.

    Raises:
        CheckpointMismatchError: missing, unexpected or misshapen blobs,
            listed as `layer[blob_index]`.
    """
    weight_map = caffe_weight_map(model)
    expected = {key: (variable, kind) for variable, key, kind in weight_map.values()}
    has_head = any(layer == CLASSIFIER for layer, _ in expected)
    available = {(layer, i) for layer, arrays in blobs.items() for i in range(len(arrays))}
    missing = sorted(_blob_name(key) for key in set(expected) - available)
    # A headless model ignores the release's classifier, as keras.applications does.
    unexpected = sorted(
        _blob_name(key) for key in available - set(expected) if has_head or key[0] != CLASSIFIER
    )
    mismatched, pairs = [], []
    for key, (variable, kind) in expected.items():
        if key not in available:
            continue
        blob = np.asarray(blobs[key[0]][key[1]])
        wanted = caffe_shape(tuple(variable.shape), kind)
        if _strip_ones(blob.shape) != _strip_ones(wanted):
            mismatched.append((_blob_name(key), tuple(blob.shape), wanted))
            continue
        blob = blob.reshape(wanted)
        pairs.append((variable, blob.reshape(-1) if kind == BN else to_keras_array(blob, kind)))
    if missing or unexpected or mismatched:
        raise mismatch_error(
            source,
            model,
            missing,
            unexpected,
            mismatched,
            "The official release has SKNet-50 and SKNet-101 files: load them with SKNet50(weights=...) "
            "or SKNet101(weights=...), which build the release's architecture.",
            entries="blobs",
            origin="file",
        )
    return pairs


def load_caffe_blobs(model, blobs, source="the Caffe model"):
    """Converts the blobs of a caffemodel into `model`'s weights, all or nothing.

    Args:
        model: a built SKNet of the release's architecture (see `caffe_weight_map`);
            with `include_top=False` the classifier's blobs are ignored.
        blobs: `{caffe_layer: [array, ...]}` from `read_caffemodel`.
        source: how to name the file in errors.

    Returns:
        The number of blobs loaded.

    Raises:
        CheckpointMismatchError: see `match_caffe_blobs`.

    Example:
        >>> model = SKNet((3, 4, 6, 3), stem_pool="caffe", weights=None)
        >>> load_caffe_blobs(model, read_caffemodel("SKNet-50.caffemodel"))
        443
    """
    pairs = match_caffe_blobs(model, blobs, source)
    for variable, value in pairs:
        variable.assign(value.astype(variable.dtype))
    return len(pairs)
