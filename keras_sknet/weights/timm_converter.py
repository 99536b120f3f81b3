"""timm state dict -> keras_sknet model, for the ResNet-family layouts timm shares.

timm names (`ResNet` with `Bottleneck`, `SelectiveKernelBottleneck` or
`SelectiveKernelBasic` blocks) map onto our predictable layer names:

| keras_sknet                          | timm                                   |
|--------------------------------------|----------------------------------------|
| conv1_conv, conv1_bn                 | conv1, bn1                             |
| conv{s+2}_block{b+1}                 | layer{s+1}.{b}                         |
| ResNeXtBlock conv1/bn1 .. conv3/bn3  | conv1/bn1 .. conv3/bn3                 |
| SKBlock conv1, bn1 / conv3, bn3      | conv1.conv, conv1.bn / conv3.conv, .bn |
| SKBlock sk / SKBasicBlock sk         | conv2 / conv1 (SelectiveKernel)        |
|   sk/path{m}_conv, path{m}_bn        |   paths.{m}.conv, paths.{m}.bn         |
|   sk/attention/fc_reduce, bn, fc_select |   attn.fc_reduce, attn.bn, attn.fc_select |
| SKBasicBlock conv2, bn2              | conv2.conv, conv2.bn                   |
| se/fc_reduce, se/fc_expand           | se.fc1, se.fc2                         |
| shortcut_conv, shortcut_bn           | downsample.0, downsample.1             |
| predictions                          | fc                                     |

Layouts: PyTorch convolutions are OIHW (grouped: O, I/G, H, W), Keras HWIO
(grouped: H, W, I/G, O); 1x1 convolutions used as fully connected layers and
`nn.Linear` weights are (out, in), Keras Dense kernels (in, out); BatchNorm
weight/bias/running_mean/running_var are gamma/beta/moving_mean/
moving_variance. The SK selection fc is laid out path-major in both.
"""

import re

import numpy as np

from keras_sknet.layers.basic_block import SKBasicBlock
from keras_sknet.layers.bottleneck import ResNeXtBlock, SKBlock

# How a timm tensor becomes a Keras variable.
CONV = "conv"  # (O, I, H, W) -> (H, W, I, O)
CONV_AS_DENSE = "conv_as_dense"  # (O, I, 1, 1) -> (I, O)
LINEAR = "linear"  # (O, I) -> (I, O)
VECTOR = "vector"  # unchanged
_BN_NAMES = {
    "gamma": "weight",
    "beta": "bias",
    "moving_mean": "running_mean",
    "moving_variance": "running_var",
}
_BLOCK_NAME = re.compile(r"^conv(\d+)_block(\d+)$")
IGNORED_SUFFIXES = ("num_batches_tracked",)
HEAD_KEYS = ("fc.weight", "fc.bias")


class CheckpointMismatchError(ValueError):
    """A checkpoint does not fit the model: lists missing, unexpected and mismatched keys.

    Attributes:
        missing: timm keys the model needs that the checkpoint lacks.
        unexpected: checkpoint keys the model has no place for.
        mismatched: `(key, checkpoint_shape, expected_shape)` triples.
    """

    def __init__(self, message, missing=(), unexpected=(), mismatched=()):
        super().__init__(message)
        self.missing = list(missing)
        self.unexpected = list(unexpected)
        self.mismatched = list(mismatched)


def to_timm_shape(shape, kind):
    """The shape timm stores for a Keras variable of `shape`."""
    if kind == CONV:
        h, w, i, o = shape
        return (o, i, h, w)
    if kind == CONV_AS_DENSE:
        i, o = shape
        return (o, i, 1, 1)
    if kind == LINEAR:
        i, o = shape
        return (o, i)
    return tuple(shape)


def to_timm_array(array, kind):
    """Converts a Keras variable's value to timm's layout (the inverse of `to_keras_array`)."""
    array = np.asarray(array, dtype=np.float32)
    if kind == CONV:
        return np.ascontiguousarray(np.transpose(array, (3, 2, 0, 1)))
    if kind == CONV_AS_DENSE:
        return np.ascontiguousarray(np.transpose(array)[:, :, None, None])
    if kind == LINEAR:
        return np.ascontiguousarray(np.transpose(array))
    return array


def to_keras_array(array, kind):
    """Converts a timm tensor (NumPy) to the Keras layout, as float32."""
    array = np.asarray(array, dtype=np.float32)
    if kind == CONV:
        return np.transpose(array, (2, 3, 1, 0))
    if kind == CONV_AS_DENSE:
        return np.transpose(array[:, :, 0, 0])
    if kind == LINEAR:
        return np.transpose(array)
    return array


def _conv(layer, key):
    entries = {layer.kernel.path: (layer.kernel, f"{key}.weight", CONV)}
    if getattr(layer, "bias", None) is not None:
        entries[layer.bias.path] = (layer.bias, f"{key}.bias", VECTOR)
    return entries


def _bn(layer, key):
    return {
        getattr(layer, attr).path: (getattr(layer, attr), f"{key}.{name}", VECTOR)
        for attr, name in _BN_NAMES.items()
        if getattr(layer, attr, None) is not None
    }


def _dense(layer, key, kind):
    entries = {layer.kernel.path: (layer.kernel, f"{key}.weight", kind)}
    if layer.bias is not None:
        entries[layer.bias.path] = (layer.bias, f"{key}.bias", VECTOR)
    return entries


def _sk(sk, key):
    entries = {}
    for m, (conv, bn) in enumerate(zip(sk.path_convs, sk.path_bns)):
        entries.update(_conv(conv, f"{key}.paths.{m}.conv"))
        entries.update(_bn(bn, f"{key}.paths.{m}.bn"))
    if sk.attention_layer is not None:
        attention = sk.attention_layer
        entries.update(_dense(attention.fc_reduce, f"{key}.attn.fc_reduce", CONV_AS_DENSE))
        entries.update(_bn(attention.bn, f"{key}.attn.bn"))
        entries.update(_dense(attention.fc_select, f"{key}.attn.fc_select", CONV_AS_DENSE))
    return entries


def _block(block, key):
    entries = {}
    if isinstance(block, SKBasicBlock):
        entries.update(_sk(block.sk, f"{key}.conv1"))
        entries.update(_conv(block.conv2, f"{key}.conv2.conv"))
        entries.update(_bn(block.bn2, f"{key}.conv2.bn"))
    elif isinstance(block, SKBlock):
        entries.update(_conv(block.conv1, f"{key}.conv1.conv"))
        entries.update(_bn(block.bn1, f"{key}.conv1.bn"))
        entries.update(_sk(block.sk, f"{key}.conv2"))
        entries.update(_conv(block.conv3, f"{key}.conv3.conv"))
        entries.update(_bn(block.bn3, f"{key}.conv3.bn"))
    else:  # ResNeXtBlock: timm's Bottleneck
        for i in (1, 2, 3):
            entries.update(_conv(getattr(block, f"conv{i}"), f"{key}.conv{i}"))
            entries.update(_bn(getattr(block, f"bn{i}"), f"{key}.bn{i}"))
    if getattr(block, "se", None) is not None:
        entries.update(_dense(block.se.fc_reduce, f"{key}.se.fc1", CONV_AS_DENSE))
        entries.update(_dense(block.se.fc_expand, f"{key}.se.fc2", CONV_AS_DENSE))
    if block.shortcut_conv is not None:
        entries.update(_conv(block.shortcut_conv, f"{key}.downsample.0"))
        entries.update(_bn(block.shortcut_bn, f"{key}.downsample.1"))
    return entries


def timm_weight_map(model):
    """Which timm tensor feeds each weight of a keras_sknet ResNet-family model.

    Args:
        model: a built model from `SKNet()` / `SKResNet()` with the ImageNet
            stem (e.g. `SKNet50`, `ResNeXt50`, `SEResNeXt50`, `SKResNet18`).

    Returns:
        `{keras_variable_path: (variable, timm_key, kind)}`.

    Raises:
        ValueError: the model has weights with no timm counterpart (e.g. a
            ShuffleNetV2 or a CIFAR stem).
    """
    entries, unmapped = {}, []
    for layer in model.layers:
        if not layer.weights:
            continue
        block = _BLOCK_NAME.match(layer.name)
        if layer.name == "conv1_conv" and getattr(layer, "kernel", None) is not None:
            if tuple(layer.kernel.shape[:2]) != (7, 7):
                unmapped.append(layer.name)
                continue
            entries.update(_conv(layer, "conv1"))
        elif layer.name == "conv1_bn":
            entries.update(_bn(layer, "bn1"))
        elif block and isinstance(layer, (ResNeXtBlock, SKBasicBlock)):
            stage, index = int(block.group(1)) - 1, int(block.group(2)) - 1
            entries.update(_block(layer, f"layer{stage}.{index}"))
        elif layer.name == "predictions":
            entries.update(_dense(layer, "fc", LINEAR))
        else:
            unmapped.append(layer.name)
    if unmapped:
        raise ValueError(
            f"Model {model.name!r} has layers with no counterpart in timm's ResNet family: "
            f"{unmapped[:8]}{' ...' if len(unmapped) > 8 else ''}. timm checkpoints convert to "
            "SKNet50 (skresnext50_32x4d), ResNeXt50 (resnext50_32x4d), SEResNeXt50 "
            "(seresnext50_32x4d), SKResNet18/34 (skresnet18/34) and other depths of these families."
        )
    return entries


def _listing(items, limit=10):
    items = list(items)
    shown = ", ".join(str(item) for item in items[:limit])
    return f"[{shown}{', ...' if len(items) > limit else ''}]"


def mismatch_error(source, model, missing, unexpected, mismatched, hint, entries="keys", origin="checkpoint"):
    """The `CheckpointMismatchError` of a weights file that does not fit `model`, every problem listed.

    Args:
        source: how the file is named in the message.
        model: the model it was checked against.
        missing, unexpected: names of the entries the model needs and the file lacks, and back.
        mismatched: `(name, file's shape, model's shape)` triples.
        hint: what to try instead, ending the message.
        entries, origin: what the file's entries and the file are called ("keys",
            "checkpoint"; a caffemodel's "blobs", "file").
    """
    parts = []
    if missing:
        parts.append(f"{len(missing)} missing {entries} {_listing(missing)}")
    if unexpected:
        parts.append(f"{len(unexpected)} unexpected {entries} {_listing(unexpected)}")
    if mismatched:
        shown = [f"{name}: {origin} {got} vs model {want}" for name, got, want in mismatched]
        parts.append(f"{len(mismatched)} shape mismatches {_listing(shown, 5)}")
    return CheckpointMismatchError(
        f"{source} does not fit model {model.name!r} ({'; '.join(parts)}). {hint}",
        missing,
        unexpected,
        mismatched,
    )


def match_state_dict(model, state_dict, source="the checkpoint"):
    """Checks a timm state dict against a model and converts every tensor.

    Nothing is assigned here, so a mismatch leaves the model untouched.

    Args:
        model: a built keras_sknet ResNet-family model.
        state_dict: `{timm_key: np.ndarray}` (e.g. from `read_checkpoint`).
        source: how to name the checkpoint in errors.

    Returns:
        A list of `(variable, keras_array)` pairs covering every variable of
        the model (BatchNorm statistics included).

    Raises:
        CheckpointMismatchError: missing, unexpected or shape-mismatched keys.
    """
    weight_map = timm_weight_map(model)
    expected = {timm_key: (variable, kind) for variable, timm_key, kind in weight_map.values()}
    available = {key for key in state_dict if not key.endswith(IGNORED_SUFFIXES)}
    has_head = "fc.weight" in expected
    missing = sorted(set(expected) - available)
    # A headless model ignores the checkpoint's classifier, as keras.applications does.
    unexpected = sorted(key for key in available - set(expected) if has_head or key not in HEAD_KEYS)
    mismatched, pairs = [], []
    for key, (variable, kind) in expected.items():
        if key not in state_dict:
            continue
        tensor = np.asarray(state_dict[key])
        wanted = to_timm_shape(tuple(variable.shape), kind)
        if tuple(tensor.shape) != wanted:
            mismatched.append((key, tuple(tensor.shape), wanted))
            continue
        if not np.issubdtype(tensor.dtype, np.floating):
            mismatched.append((key, f"dtype {tensor.dtype}", "a floating-point tensor"))
            continue
        pairs.append((variable, to_keras_array(tensor, kind)))
    if missing or unexpected or mismatched:
        raise mismatch_error(
            source,
            model,
            missing,
            unexpected,
            mismatched,
            "Is it a checkpoint of another architecture? SKNet50 takes timm's skresnext50_32x4d, "
            "ResNeXt50 resnext50_32x4d, SEResNeXt50 seresnext50_32x4d, SKResNet18/34 skresnet18/34.",
        )
    return pairs


def load_timm_state_dict(model, state_dict, source="the checkpoint"):
    """Converts a timm state dict into `model`'s weights, all or nothing.

    Args:
        model: a built keras_sknet ResNet-family model; with
            `include_top=False` the checkpoint's classifier is ignored.
        state_dict: `{timm_key: array}`.
        source: how to name the checkpoint in errors.

    Returns:
        The number of tensors loaded.

    Raises:
        CheckpointMismatchError: see `match_state_dict`.

    Example:
        >>> model = SKNet50(weights=None)
        >>> n = load_timm_state_dict(model, read_checkpoint("model.safetensors"))
    """
    pairs = match_state_dict(model, state_dict, source)
    for variable, value in pairs:
        variable.assign(value.astype(variable.dtype))
    return len(pairs)


def timm_state_dict(model):
    """Exports a keras_sknet ResNet-family model as a timm state dict (the inverse conversion).

    Args:
        model: a built model, e.g. `SKNet50()`.

    Returns:
        `{timm_key: np.ndarray}` in PyTorch layouts, loadable with
        `timm.create_model("skresnext50_32x4d").load_state_dict(
        {k: torch.from_numpy(v) for k, v in state.items()}, strict=False)`
        (BatchNorm's `num_batches_tracked` counters are not included).

    Example:
        >>> save_safetensors("sknet50.safetensors", timm_state_dict(SKNet50()))
    """
    return {
        timm_key: to_timm_array(variable.numpy(), kind)
        for variable, timm_key, kind in timm_weight_map(model).values()
    }
