"""Squeeze-and-Excitation (Hu et al., the SENet baselines of Tables 2, 4 and 5)."""

import keras
from keras import ops

from keras_sknet.layers.block import Block
from keras_sknet.utils.validation import check_positive_int, check_positive_number


@keras.saving.register_keras_serializable(package="keras_sknet")
class SqueezeExcite(Block):
    """Channel gating: x * sigmoid(fc(ReLU(fc(global_average_pool(x))))).

    Both fc layers have biases, as in SENet. In the SENet-50 column of Table 1
    the unit on a 256-channel block is `fc, [16, 256]`: reduction 16.

    Args:
        reduction: the squeeze width is `max(channels // reduction, min_dim)`.
        min_dim: lower bound of the squeeze width.

    Returns:
        A tensor of the input's shape.

    Example:
        >>> SqueezeExcite(reduction=16)(keras.ops.ones((1, 7, 7, 256))).shape
        (1, 7, 7, 256)
    """

    def __init__(self, reduction=16, min_dim=1, **kwargs):
        super().__init__(**kwargs)
        check_positive_number("reduction", reduction)
        self.reduction = reduction
        self.min_dim = check_positive_int("min_dim", min_dim)
        self.fc_reduce = None
        self.fc_expand = None

    def build(self, input_shape):
        channels = input_shape[-1]
        squeeze_dim = max(int(channels // self.reduction), self.min_dim)
        self.fc_reduce = keras.layers.Dense(squeeze_dim, dtype=self.dtype_policy, name="fc_reduce")
        self.fc_expand = keras.layers.Dense(channels, dtype=self.dtype_policy, name="fc_expand")
        super().build(input_shape)

    def call(self, inputs):
        gate = ops.mean(inputs, axis=(1, 2))
        gate = ops.sigmoid(self.fc_expand(ops.relu(self.fc_reduce(gate))))
        return inputs * ops.expand_dims(ops.expand_dims(gate, 1), 1)
