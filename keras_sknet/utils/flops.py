"""Multiply-adds and parameters, counted as the paper counts them.

The paper's "FLOPs" are multiply-adds (Table 1 caption, following
ShuffleNet). `count_flops` traces the model for one image and adds up what
TensorFlow actually runs:

- every convolution (grouped, depthwise, dilated: at their real taps) and
  every matrix product (fully connected layers);
- the per-channel reweighting of a feature map by an attention gate (SE's
  excitation, SK's selection, the (x) of Figure 1): one multiply per element.
  Table 4 counts these: ShuffleNetV2 0.5x + SE adds 0.46 MFLOPs = 0.14 M of fc
  + 0.32 M of reweighting.

BatchNorm, activations, pooling and additions are not counted. Because it reads
the traced graph rather than layer configurations, it also counts user layers
and shows any convolution work an implementation does beyond the nominal one.
"""

import math

import numpy as np

_CONV_OPS = ("Conv2D", "DepthwiseConv2dNative")
_MATMUL_OPS = ("MatMul", "BatchMatMul", "BatchMatMulV2", "BatchMatMulV3")
_CALL_OPS = ("PartitionedCall", "StatefulPartitionedCall")


def _static(shape, op):
    dims = shape.as_list() if hasattr(shape, "as_list") else list(shape)
    if any(d is None for d in dims):
        raise ValueError(
            f"Cannot count the multiply-adds of op {op.name!r} ({op.type}): its shape "
            f"{dims} is not fully known. Pass a fixed `input_shape`."
        )
    return dims


def _is_channel_reweighting(op):
    """A feature map (1, H, W, C) times a per-image channel gate (1, 1, 1, C).

    BatchNorm's products use per-channel variables of shape (C,), without the
    batch and spatial axes; a gate with them is computed from the image.
    """
    shapes = [t.shape for t in op.inputs]
    if len(shapes) != 2 or any(s.rank != 4 for s in shapes):
        return False
    a, b = (s.as_list() for s in shapes)
    gate, features = (a, b) if a[1:3] == [1, 1] else (b, a)
    return gate[1:3] == [1, 1] and gate[0] == features[0] and gate[3] == features[3]


def _op_macs(op):
    if op.type in _CONV_OPS:
        out = _static(op.outputs[0].shape, op)
        kh, kw, cin, _ = _static(op.inputs[1].shape, op)
        if op.type == "DepthwiseConv2dNative":
            cin = 1  # each output channel reads one input channel
        return math.prod(out) * kh * kw * cin
    if op.type == "Mul" and _is_channel_reweighting(op):
        return math.prod(_static(op.outputs[0].shape, op))
    if op.type in _MATMUL_OPS:
        a = _static(op.inputs[0].shape, op)
        transpose_a = op.get_attr("transpose_a" if op.type == "MatMul" else "adj_x")
        reduced = a[-2] if transpose_a else a[-1]
        return math.prod(_static(op.outputs[0].shape, op)) * reduced
    return 0


def _graph_macs(graph):
    total = 0
    for op in graph.get_operations():
        total += _op_macs(op)
        if op.type in _CALL_OPS:
            function = graph._get_function(op.get_attr("f").name)
            total += _graph_macs(function.graph)
    return total


def count_flops(model, input_shape=None):
    """Multiply-adds of one forward pass of `model` on one image.

    Counts convolutions (grouped, depthwise and dilated ones at their nominal
    taps) and fully connected layers, like the "GFLOPs" column of Tables 1-7,
    as the traced graph computes them: a two-path SK unit selects as
    U2 + a * (U1 - U2) from one logit difference, HW*C + d*C fewer multiplies
    than a * U1 + b * U2 from two logits (SKNet-50: 4.465 G instead of 4.468 G).

    Args:
        model: a Keras model with one image input.
        input_shape: `(height, width, channels)` to count at; defaults to the
            model's input shape, which must then be fully known.

    Returns:
        The number of multiply-adds, an int.

    Example:
        >>> count_flops(SKNet50()) / 1e9
        4.47...
    """
    import tensorflow as tf

    if input_shape is None:
        input_shape = tuple(model.inputs[0].shape[1:])
    input_shape = tuple(input_shape)
    if any(d is None for d in input_shape):
        raise ValueError(
            "The model's input size is not fixed; pass `input_shape=(height, width, channels)`. "
            f"Received: input_shape={input_shape}"
        )
    spec = tf.TensorSpec((1,) + input_shape, model.inputs[0].dtype)
    function = tf.function(lambda x: model(x, training=False)).get_concrete_function(spec)
    return _graph_macs(function.graph)


def count_params(model):
    """Trainable parameters, as the paper's #P (BatchNorm moving statistics excluded).

    Args:
        model: a Keras model or layer.

    Returns:
        The number of trainable parameters, an int.
    """
    return int(sum(np.prod(w.shape) for w in model.trainable_weights))
