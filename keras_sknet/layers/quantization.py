"""Keeping `model.quantize()` through a `.keras` file for layers made of layers.

Keras' `model.quantize("int8")` quantizes the leaf layers (the `Dense` layers
inside `SKAttention`, `SqueezeExcite` and the blocks) by changing their dtype
policy. A composite layer re-creates its sublayers from its own config when a
model is loaded, so without more they would come back in float and fail to
load their int8 weights. Keras' remedy (see `keras.dtype_policies.DTypePolicyMap`)
is the composite's `"dtype"` in its config: a map from each quantized
sublayer's path to its policy, which the re-created sublayers look up.
"""

import keras


def with_sublayer_policies(layer, config):
    """Sets `config["dtype"]` to a `DTypePolicyMap` of the layer's quantized sublayers, if it has any.

    Args:
        layer: a composite layer whose sublayers take `dtype=layer.dtype_policy`.
        config: the dict its `get_config()` is about to return.

    Returns:
        `config`, changed only when a sublayer is quantized.

    Example:
        >>> def get_config(self):
        ...     return with_sublayer_policies(self, super().get_config())
    """
    policy = layer.dtype_policy
    if isinstance(policy, keras.dtype_policies.DTypePolicyMap):
        return config  # loaded with a map already: Layer.get_config serialises it
    policy_map = keras.dtype_policies.DTypePolicyMap(default_policy=policy)
    for sublayer in layer._flatten_layers(include_self=False):
        if sublayer.quantization_mode is not None:
            policy_map[sublayer.path] = sublayer.dtype_policy
    if len(policy_map):
        config["dtype"] = keras.dtype_policies.serialize(policy_map)
    return config
