"""Model accounting: multiply-adds and trainable parameters, counted as the paper does."""

from keras_sknet.utils.flops import count_flops, count_params

__all__ = ["count_flops", "count_params"]
