"""Model accounting: multiply-adds and trainable parameters, counted as the paper does.

`register_macs` teaches `count_flops(method="layers")` a layer class of your own.
"""

# ruff: noqa: F401  (_import_names imports the package's names and returns them as locals())

from keras_sknet.utils import cli


def _import_names():  # in our command lines, on first use (cli.import_names)
    from keras_sknet.utils.flops import count_flops, count_params, register_macs

    return locals()


__all__ = ["count_flops", "count_params", "register_macs"]
cli.import_names(globals(), _import_names)
