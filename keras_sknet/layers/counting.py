"""How `count_flops(method="layers")` counts keras_sknet's layers (see keras_sknet.utils.flops).

Registered when `keras_sknet.layers` is imported, which any model holding
these layers has done. Each rule counts what its layer computes itself; the
sublayers (Dense, BatchNorm) are counted by their own rules.
"""

import math

from keras_sknet.layers.conv import GroupConv2D
from keras_sknet.layers.selective_kernel import SKAttention, SKConv, _plain_kernel
from keras_sknet.layers.squeeze_excite import SqueezeExcite
from keras_sknet.utils.flops import conv_macs, register_graph_context, register_macs


def _sk_attention(layer, squeezed, _):
    # Counted in inference, where the layer runs its plain Dense kernels itself and the
    # Keras-quantized or LoRA ones as the Dense layers they are (counted by their own rule).
    macs = 0
    if _plain_kernel(layer.fc_reduce):
        # fc_reduce is not called: one matmul with its kernel, the BatchNorm folded in.
        macs += squeezed[0] * layer.channels * layer.attention_dim
    if layer.num_paths == 2 and layer._plain_fc_select():
        # fc_select is not called: one matmul with the difference of its kernel halves.
        macs += squeezed[0] * layer.attention_dim * layer.channels
    return macs


def _sk_conv(layer, _, out):
    if not layer.attention:
        return 0
    # Two paths: U2 + a * (U1 - U2), one multiply per element; else a_m * U_m per path.
    return math.prod(out) * (1 if layer.num_paths <= 2 else layer.num_paths)


def _squeeze_excite(_, inputs, __):
    return math.prod(inputs)  # the excitation: one multiply per element of the feature map


register_macs(GroupConv2D, conv_macs)
register_macs(SKAttention, _sk_attention)
register_macs(SKConv, _sk_conv)
register_macs(SqueezeExcite, _squeeze_excite)


def _model_convolutions():
    """The traced graph's convolutions as the model writes them, whatever this CPU's kernels (TensorFlow)."""
    from keras_sknet.layers import tf_conv

    return tf_conv.convolution_path("portable", gradients=False)


register_graph_context(_model_convolutions)
