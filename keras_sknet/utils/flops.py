"""Multiply-adds and parameters, counted as the paper counts them.

The paper's "FLOPs" are multiply-adds (Table 1 caption, following
ShuffleNet). `count_flops` counts, for one image:

- every convolution (grouped, depthwise, dilated: at their real taps) and
  every matrix product (fully connected layers);
- the per-channel reweighting of a feature map by an attention gate (SE's
  excitation, SK's selection, the (x) of Figure 1): one multiply per element.
  Table 4 counts these: ShuffleNetV2 0.5x + SE adds 0.46 MFLOPs = 0.14 M of fc
  + 0.32 M of reweighting.

BatchNorm, activations, pooling and additions are not counted.

Two ways to count, which agree on every model of the zoo (tested):

- `"graph"` (TensorFlow backend): traces the model and adds up the ops of
  its graph, so it also counts user layers. The graph is traced with the
  convolutions as the model writes them (`convolution_path("portable")`), not
  as this CPU's kernel library runs them, so the count is the same on every
  CPU, with oneDNN or Eigen.
- `"layers"` (every backend): runs the model once on symbolic or one-image
  inputs and counts, from the shapes each layer sees, the convolutions and
  fully connected layers of Keras (`Conv1D/2D/3D`, `DepthwiseConv2D`,
  `Dense`) and keras_sknet's layers (their rules: keras_sknet/layers/counting.py),
  and any layer class given to `register_macs`. A layer with weights of its own
  that it cannot count (a user layer, say) raises an error instead of being left out.
"""

import contextlib
import math

import keras
import numpy as np

from keras_sknet.utils.backend import require_tensorflow_backend

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


METHODS = (None, "graph", "layers")


def count_flops(model, input_shape=None, method=None):
    """Multiply-adds of one forward pass of `model` on one image.

    Counts convolutions (grouped, depthwise and dilated ones at their nominal
    taps) and fully connected layers, like the "GFLOPs" column of Tables 1-7,
    as the model computes them: a two-path SK unit selects as
    U2 + a * (U1 - U2) from one logit difference, HW*C + d*C fewer multiplies
    than a * U1 + b * U2 from two logits (SKNet-50: 4.465 G instead of 4.468 G).

    Args:
        model: a Keras model with one image input.
        input_shape: `(height, width, channels)` to count at; defaults to the
            model's input shape, which must then be fully known.
        method: `"graph"` counts the ops of the traced TensorFlow graph (needs
            the TensorFlow backend), `"layers"` counts from the shapes each
            layer sees (every backend; see the module docstring for the layers
            it knows); None (default) picks `"graph"` on TensorFlow and
            `"layers"` elsewhere. Both give the same numbers on the zoo.

    Returns:
        The number of multiply-adds, an int.

    Example:
        >>> count_flops(SKNet50()) / 1e9
        4.47...
    """
    if method not in METHODS:
        raise ValueError(f"`method` must be one of {METHODS}. Received: method={method!r}")
    if input_shape is None:
        input_shape = tuple(model.inputs[0].shape[1:])
    input_shape = tuple(input_shape)
    if any(d is None for d in input_shape):
        raise ValueError(
            "The model's input size is not fixed; pass `input_shape=(height, width, channels)`. "
            f"Received: input_shape={input_shape}"
        )
    if method is None:
        method = "graph" if keras.backend.backend() == "tensorflow" else "layers"
    if method == "layers":
        return _layer_macs(model, input_shape)
    require_tensorflow_backend("count_flops(method='graph')")
    import tensorflow as tf

    spec = tf.TensorSpec((1,) + input_shape, model.inputs[0].dtype)
    with contextlib.ExitStack() as stack:
        for context in _GRAPH_CONTEXTS:
            stack.enter_context(context())
        function = tf.function(lambda x: model(x, training=False)).get_concrete_function(spec)
    return _graph_macs(function.graph)


# Context managers (factories) the graph count traces inside: keras_sknet.layers registers one
# that builds the convolutions as the model writes them, not as this CPU's kernel library gets
# them (on Eigen, small groups run over pixel blocks, which do more multiply-adds than the model).
_GRAPH_CONTEXTS = []


def register_graph_context(factory):
    """Has `count_flops(method="graph")` trace models inside `factory()`, a context manager.

    Args:
        factory: a callable returning a context manager.
    """
    _GRAPH_CONTEXTS.append(factory)


# --- counting from the layers (every backend) ----------------------------------------------------

# Layers with weights of their own that do no multiply-adds the paper counts.
_UNCOUNTED_WEIGHTED = (
    keras.layers.BatchNormalization,
    keras.layers.LayerNormalization,
    keras.layers.GroupNormalization,
)


# `macs(layer, inputs shape, outputs shape)` per layer class; a layer takes the rule of the
# nearest class of its MRO that has one. Keras' layers are registered here; keras_sknet's own
# in keras_sknet/layers/counting.py, beside the layers (this module is below them).
_RULES = {}


def register_macs(layer_class, macs):
    """Tells `count_flops(method="layers")` how to count the layers of `layer_class`.

    Subclasses inherit the rule unless they register their own. Multiply-adds
    of sublayers are counted by their own rules: count only what the layer
    computes itself.

    Args:
        layer_class: a `keras.layers.Layer` subclass.
        macs: `macs(layer, inputs_shape, outputs_shape)`, the multiply-adds of
            one call, from the (fully known, batch-1) shapes of its first input
            and first output.

    Returns:
        `macs`, so that it can decorate a function.

    Example:
        >>> register_macs(MyConv, lambda layer, inputs, outputs: math.prod(outputs) * 9)
    """
    _RULES[layer_class] = macs
    return macs


def _rule(layer):
    return next((_RULES[kind] for kind in type(layer).__mro__ if kind in _RULES), None)


def conv_macs(layer, _, out):
    """A convolution with a `(k..., input channels per group, filters)` kernel."""
    # Each output reads k... * C/groups inputs.
    return math.prod(out) * math.prod(layer.kernel.shape[:-1])


def _depthwise_macs(layer, _, out):
    return math.prod(out) * math.prod(layer.kernel.shape[:-2])


def _dense_macs(layer, _, out):
    return math.prod(out) * layer.kernel.shape[0]


for _kind in (keras.layers.Conv1D, keras.layers.Conv2D, keras.layers.Conv3D):
    register_macs(_kind, conv_macs)
register_macs(keras.layers.DepthwiseConv2D, _depthwise_macs)
register_macs(keras.layers.Dense, _dense_macs)


def _own_weights(layer):
    inner = {id(w) for sub in layer._flatten_layers(include_self=False) for w in sub.weights}
    return [w for w in layer.weights if id(w) not in inner]


def _first_tensor(value):
    while isinstance(value, (tuple, list)):
        value = value[0]
    return value


def _shape(tensor, layer):
    shape = tuple(tensor.shape)
    if any(d is None for d in shape):
        raise ValueError(
            f"Cannot count the multiply-adds of layer {layer.name!r}: its shape {shape} is not fully known."
        )
    return tuple(int(d) for d in shape)


def _layer_macs(model, input_shape):
    recorded = []
    patched = []
    for layer in model._flatten_layers(include_self=True, recursive=True):
        rule = _rule(layer)
        if rule is None:
            if _own_weights(layer) and not isinstance(layer, _UNCOUNTED_WEIGHTED):
                raise ValueError(
                    f"count_flops(method='layers') cannot count layer {layer.name!r} of type "
                    f"{type(layer).__name__}: it counts Keras' Conv1D/2D/3D, DepthwiseConv2D and Dense, "
                    "keras_sknet's layers and those given to register_macs. Count on the TensorFlow backend (KERAS_BACKEND=tensorflow, "
                    "method='graph'), which traces every op."
                )
            continue

        def call(*args, _layer=layer, _call=layer.call, _rule=rule, **kwargs):
            outputs = _call(*args, **kwargs)
            inputs_shape = _shape(_first_tensor(args[0]), _layer)
            outputs_shape = _shape(_first_tensor(outputs), _layer)
            recorded.append(_rule(_layer, inputs_shape, outputs_shape))
            return outputs

        # An instance attribute shadows the class's `call` for this one layer, until restored.
        object.__setattr__(layer, "call", call)
        patched.append(layer)
    try:
        _trace(model, (1,) + tuple(input_shape))
    finally:
        for layer in patched:
            object.__delattr__(layer, "call")
    return int(sum(recorded))


def _trace(model, shape):
    """Runs `model` once on an input of `shape`: symbolically where the backend can."""
    dtype = model.inputs[0].dtype
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        tf.function(lambda x: model(x, training=False)).get_concrete_function(tf.TensorSpec(shape, dtype))
    elif backend == "jax":
        import jax

        jax.eval_shape(lambda x: model(x, training=False), jax.ShapeDtypeStruct(shape, dtype))
    else:
        model(np.zeros(shape, dtype), training=False)


def count_params(model):
    """Trainable parameters, as the paper's #P (BatchNorm moving statistics excluded).

    Args:
        model: a Keras model or layer.

    Returns:
        The number of trainable parameters, an int.
    """
    return int(sum(np.prod(w.shape) for w in model.trainable_weights))
