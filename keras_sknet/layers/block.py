"""`Block`: a layer made of layers, written as its maths (`call`) and its config (`__init__`).

A composite layer needs three things besides its maths: a `build` that builds
every sublayer with the shape it will see (so that weights exist before a
`.keras` or `.weights.h5` file loads into them), an output shape for symbolic
calls, and a `get_config` that lists the constructor arguments. `Block`
derives all three:

- `build(input_shape)` calls `call` once on a symbolic `keras.KerasTensor` of
  that shape, as a Functional model is traced: each sublayer builds itself with
  the shape it meets, inside the block's name scope (so weights have the same
  paths as a hand-written build gives them), and in the order `call` uses them.
  Only Keras' shape rules run, no backend op. A sublayer whose size depends on
  the input (a projection shortcut, an fc as wide as the channels) is created
  in the subclass's `build`, which then calls `super().build(input_shape)`.
- `compute_output_spec` / `compute_output_shape`: `call` on symbolic inputs, the same way.
- `get_config()`: the arguments the block was constructed with (defaults
  included; tuples as lists, objects such as initializers serialised), plus the
  dtype policies of quantized sublayers (`with_sublayer_policies`).

A sublayer that `call` only reads weights from, or does not call for some
configurations, is not built by the symbolic call: build it by hand in `build`
(`SKAttention` does). `Block.build` raises if one is left unbuilt.

Seeded initial weights depend on the order in which initializers are made:
Keras draws an unseeded initializer's seed when the initializer is made (a
`Dense` in its constructor; `SKAttention`'s `fc_select` in its build). A
sublayer made in `build` that draws seeds therefore builds before the next one
is made, where the hand-written build did so (`ShuffleNetV2Unit`'s left
`SKConv`); tests/test_initial_weights.py holds every family to its weights.
"""

import inspect
import numbers

import keras

from keras_sknet.layers.quantization import with_sublayer_policies


class Block(keras.layers.Layer):
    """Base class of keras_sknet's composite layers.

    A subclass creates its sublayers in `__init__` (or, where their size depends
    on the input, in `build` before `super().build(input_shape)`) and writes
    `call`; it writes no `compute_output_shape` and no `get_config`.

    Example:
        >>> @keras.saving.register_keras_serializable(package="my_package")
        ... class ConvBNReLU(Block):
        ...     def __init__(self, filters, **kwargs):
        ...         super().__init__(**kwargs)
        ...         self.conv = GroupConv2D(filters, 3, dtype=self.dtype_policy, name="conv")
        ...         self.bn = FusedBatchNorm(dtype=self.dtype_policy, name="bn")
        ...
        ...     def call(self, inputs, training=None):
        ...         return keras.ops.relu(self.bn(self.conv(inputs), training=training))
        >>> layer = ConvBNReLU(8)
        >>> layer.build((None, 16, 16, 4))
        >>> [w.path for w in layer.trainable_weights]
        ['conv_bn_re_lu/conv/kernel', 'conv_bn_re_lu/bn/gamma', 'conv_bn_re_lu/bn/beta']
        >>> layer.get_config()["filters"]
        8
    """

    def __new__(cls, *args, **kwargs):
        # Records the constructor arguments, as Keras' Operation.__new__ does for its automatic
        # configs (which take only plain values, and none from a class that writes get_config).
        instance = super().__new__(cls, *args, **kwargs)
        signature = inspect.signature(cls.__init__)
        try:
            bound = signature.bind(instance, *args, **kwargs)
        except TypeError:  # __init__ itself raises the error for these arguments
            return instance
        bound.apply_defaults()
        variadic = (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
        _, *names = [name for name, p in signature.parameters.items() if p.kind not in variadic]
        # **kwargs (name, dtype, trainable) are Layer.get_config's.
        instance._constructor_arguments = {name: bound.arguments[name] for name in names}
        return instance

    def build(self, input_shape):
        """Builds every sublayer by calling `call` on a symbolic input of `input_shape`."""
        self.call(keras.KerasTensor(tuple(input_shape), dtype=self.compute_dtype))
        # A sublayer the call did not build has no weights, and a saved file would not load
        # into it: say so now.
        sublayers = self._flatten_layers(include_self=False, recursive=False)
        unbuilt = [layer.name for layer in sublayers if not layer.built]
        if unbuilt:
            raise ValueError(
                f"{type(self).__name__}.call() did not build its sublayers {unbuilt}: build them in "
                f"{type(self).__name__}.build(). Received: input_shape={tuple(input_shape)}"
            )

    def compute_output_spec(self, *args, **kwargs):
        # `call` on the symbolic inputs: shapes and dtypes by the sublayers' and ops' own rules
        # (Keras' default traces `call` on the backend: SKNet-50 then builds 3x slower).
        return self.call(*args, **kwargs)

    def compute_output_shape(self, input_shape):
        spec = self.compute_output_spec(keras.KerasTensor(tuple(input_shape), dtype=self.compute_dtype))
        return keras.tree.map_structure(lambda tensor: tuple(tensor.shape), spec)

    def get_config(self):
        config = super().get_config()
        config.update({name: _serialize(value) for name, value in self._constructor_arguments.items()})
        return with_sublayer_policies(self, config)


def _serialize(value):
    """A constructor argument as a config value: JSON's types as they are, other objects serialised."""
    if value is None or isinstance(value, (str, bool)):
        return value
    if isinstance(value, numbers.Number):
        return value.item() if hasattr(value, "item") else value  # NumPy scalars as Python numbers
    if isinstance(value, (list, tuple)):
        return [_serialize(item) for item in value]
    if isinstance(value, dict):
        return {key: _serialize(item) for key, item in value.items()}
    return keras.saving.serialize_keras_object(value)  # initializers, activations, ...
