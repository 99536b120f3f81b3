"""Registered, serializable Keras 3 layers for Selective Kernel Networks.

- `SKConv`: the Selective Kernel convolution (Split, Fuse, Select; Section 3.1).
- `SKBlock`: the SK unit of Table 1 (1x1 -> SKConv -> 1x1 + shortcut).
- `ResNeXtBlock`: the ResNeXt / SENet bottleneck baselines.
- `SKBasicBlock`: the basic SK unit of timm's SK-ResNet-18/34 (SK conv, then a 3x3 conv).
- `ShuffleNetV2Unit`: ShuffleNetV2 units, plain, with SE or with SK (Table 4).
- `SqueezeExcite`, `SKAttention`, `GroupConv2D`, `FusedBatchNorm`: the pieces they are made of.
- `record_attention()`: read the selection weights of every SK unit.
- `Block`: their base class; a new composite layer is its `__init__` and `call`.
"""

from keras_sknet.layers import counting  # noqa: F401  (count_flops' rules for these layers)
from keras_sknet.layers.basic_block import SKBasicBlock
from keras_sknet.layers.batch_norm import FusedBatchNorm
from keras_sknet.layers.block import Block
from keras_sknet.layers.bottleneck import ResNeXtBlock, SKBlock
from keras_sknet.layers.conv import GroupConv2D
from keras_sknet.layers.selective_kernel import SKAttention, SKConv, record_attention
from keras_sknet.layers.shufflenet import ShuffleNetV2Unit, channel_shuffle
from keras_sknet.layers.squeeze_excite import SqueezeExcite

__all__ = [
    "Block",
    "FusedBatchNorm",
    "GroupConv2D",
    "ResNeXtBlock",
    "SKAttention",
    "SKBasicBlock",
    "SKBlock",
    "SKConv",
    "ShuffleNetV2Unit",
    "SqueezeExcite",
    "channel_shuffle",
    "record_attention",
]
