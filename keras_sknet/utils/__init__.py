"""Model accounting: multiply-adds and trainable parameters, counted as the paper does.

`register_macs` teaches `count_flops(method="layers")` a layer class of your own.
"""

from keras_sknet.utils import cli

if not cli.COMMAND_LINE:  # our command lines import Keras once their arguments are checked
    from keras_sknet.utils.flops import count_flops, count_params, register_macs

__all__ = ["count_flops", "count_params", "register_macs"]
