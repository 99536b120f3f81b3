"""Which convolution each Keras backend runs for `GroupConv2D` (strides and dilation never both > 1).

- TensorFlow: its own grouped `Conv2D` or depthwise op, one op per
  convolution, through `tf_conv`, which makes them and their gradients work on
  every CPU kernel library.
- JAX: XLA's dilated convolution forwards; its gradients over pixel phases
  (`phases.dilated_over_phases`), an order of magnitude faster on GPUs
  (docs/backends.md).
- PyTorch: dilated convolutions over pixel phases, whose cuDNN gradients are
  far faster than of dilated ones.
- Anything else: `keras.ops.conv` as it is.
"""

import keras
from keras import ops

from keras_sknet.layers import phases


def backend_conv(x, kernel, strides, dilation, pad, depthwise):
    """One NHWC convolution with `pad` zeros on each side, on the running backend.

    Args:
        x: `(N, H, W, C)`.
        kernel: `(k, k, C / groups, filters)`; depthwise kernels are stored
            grouped, `(k, k, 1, C)`.
        strides, dilation: ints, not both > 1.
        pad: zeros on every side of H and W.
        depthwise: whether groups == channels == filters.

    Returns:
        The convolution, `(N, H_out, W_out, filters)`.
    """
    if keras.backend.backend() == "tensorflow":
        return _tensorflow_conv(x, kernel, strides, dilation, pad, depthwise)
    if dilation > 1 and x.shape[1] is not None and x.shape[2] is not None:
        if keras.backend.backend() == "jax":
            return _jax_dilated_conv(x, kernel, dilation, pad)
        return phases.dilated_over_phases(x, kernel, dilation, pad, _undilated_conv)
    return _plain_conv(x, kernel, strides, dilation, pad)


def _tensorflow_conv(x, kernel, strides, dilation, pad, depthwise):
    import tensorflow as tf

    from keras_sknet.layers import tf_conv

    # At stride 1 TF's "SAME" pads an odd kernel symmetrically. Explicit
    # padding lists are avoided: TF cannot differentiate grouped convs with them.
    padding = "VALID"
    if pad and strides == 1 and pad == dilation * (kernel.shape[0] - 1) // 2:
        padding = "SAME"
    elif pad:
        x = tf.pad(x, [[0, 0], [pad, pad], [pad, pad], [0, 0]])
    if depthwise:
        # TF wants depthwise kernels as (k, k, C, 1). The depthwise op (not a
        # C-group conv) is what TFLite runs fast.
        kernel = tf.transpose(kernel, (0, 1, 3, 2))
    return tf_conv.conv2d(x, kernel, strides, dilation, padding, depthwise=depthwise)


def _plain_conv(x, kernel, strides, dilation, pad):
    """The backend's own convolution (cuDNN's, XLA's, PyTorch's), dilated or not."""
    if pad:
        x = ops.pad(x, [[0, 0], [pad, pad], [pad, pad], [0, 0]])
    return ops.conv(x, kernel, strides=strides, padding="valid", dilation_rate=dilation)


def _undilated_conv(x, kernel):
    return ops.conv(x, kernel, strides=1, padding="valid")


def _jax_dilated_conv(x, kernel, dilation, pad):
    """JAX: the dilated convolution forwards, its gradients over pixel phases.

    Forwards, cuDNN's and XLA's own dilated convolution is the faster one; their
    gradients are the slow part, an order of magnitude slower than over phases.
    """
    import jax

    @jax.custom_vjp
    def convolve(x, kernel):
        return _plain_conv(x, kernel, 1, dilation, pad)

    def forward(x, kernel):
        return convolve(x, kernel), (x, kernel)

    def backward(saved, grad):
        _, pullback = jax.vjp(
            lambda x, k: phases.dilated_over_phases(x, k, dilation, pad, _undilated_conv), *saved
        )
        return pullback(grad)

    convolve.defvjp(forward, backward)
    return convolve(x, kernel)
