"""`FusedBatchNorm`: Keras' BatchNormalization on TensorFlow's fused kernel.

Keras 3 computes batch normalisation from elementary ops (moments, subtract,
multiply, add): four to six passes over the feature map, and in inference
TensorFlow cannot merge them into the convolution before. TensorFlow's fused
kernel does the whole normalisation in one pass (and its gradient in one more),
and in inference its graph optimiser folds it, with the ReLU after it, into the
preceding convolution. Same weights, arguments, statistics and results as
`keras.layers.BatchNormalization`; only the kernel differs.
"""

import contextlib
import threading

import keras
from keras import ops

# The BatchNorm settings of every keras_sknet layer and model: PyTorch's defaults, which the
# checkpoints we convert were trained with: eps 1e-5, running-average momentum 0.1 (Keras
# counts momentum the other way).
BN_EPSILON = 1e-5
BN_MOMENTUM = 0.9

_defaults = threading.local()


@contextlib.contextmanager
def synchronized_batch_norm(enabled=True):
    """Makes the `FusedBatchNorm` layers created inside the block synchronised.

    Synchronised BatchNorm computes batch statistics over the global batch of all
    replicas of a `tf.distribute` strategy (Keras' `synchronized=True`) instead
    of each replica's share: results then do not depend on the number of
    devices, at the cost of an all-reduce per layer and of TensorFlow's fused
    kernel. Build the model inside this block (and inside `strategy.scope()`).

    Example:
        >>> with strategy.scope(), synchronized_batch_norm():
        ...     model = SKNet50()
    """
    previous = getattr(_defaults, "synchronized", False)
    _defaults.synchronized = enabled
    try:
        yield
    finally:
        _defaults.synchronized = previous


@keras.saving.register_keras_serializable(package="keras_sknet")
class FusedBatchNorm(keras.layers.BatchNormalization):
    """`keras.layers.BatchNormalization` that runs TensorFlow's fused kernel.

    Used for channels-last 2-D (`(N, C)`) and 4-D (`(N, H, W, C)`) inputs on
    the TensorFlow backend without a mask, renorm or synchronisation; anything
    else (e.g. `synchronized=True`, see `synchronized_batch_norm`) falls back to
    the Keras implementation. The moving variance is
    updated with the biased batch variance, as Keras does.

    Args:
        As `keras.layers.BatchNormalization`.

    Returns:
        The normalised input, same shape.

    Example:
        >>> FusedBatchNorm(epsilon=1e-5, momentum=0.9)(keras.ops.ones((2, 4, 4, 8))).shape
        (2, 4, 4, 8)
    """

    def __init__(self, *args, synchronized=None, **kwargs):
        # None: synchronised inside `synchronized_batch_norm()`, per replica otherwise.
        if synchronized is None:
            synchronized = getattr(_defaults, "synchronized", False)
        super().__init__(*args, synchronized=synchronized, **kwargs)

    def _fusable(self, inputs, mask):
        return (
            keras.backend.backend() == "tensorflow"
            and mask is None
            and keras.backend.standardize_dtype(inputs.dtype) in ("float16", "bfloat16", "float32")
            and not self.renorm
            and not self.synchronized
            and len(inputs.shape) in (2, 4)
            and self.axis in (-1, len(inputs.shape) - 1)
        )

    def _moments(self, inputs, mask):
        # Keras' PyTorch backend computes the batch variance as E[x^2] - E[x]^2, which loses
        # most of float32's digits where a channel's mean is large against its spread: one
        # training step of an SK net then lands 2% away from its float64 step (TensorFlow's
        # fused kernel and JAX: 0.1%). The two-pass form, as TensorFlow, JAX and PyTorch's own
        # batch_norm compute it, costs one more pass in training only.
        if mask is not None or self.synchronized or keras.backend.backend() != "torch":
            return super()._moments(inputs, mask)
        mean = ops.mean(inputs, axis=self._reduction_axes, keepdims=True)
        variance = ops.mean(ops.square(inputs - mean), axis=self._reduction_axes)
        return ops.squeeze(mean, axis=self._reduction_axes), variance

    def call(self, inputs, training=None, mask=None):
        if not self._fusable(inputs, mask):
            return super().call(inputs, training=training, mask=mask)
        import tensorflow as tf

        from keras_sknet.layers import tf_conv

        shape = ops.shape(inputs)
        x = inputs if len(inputs.shape) == 4 else ops.reshape(inputs, (-1, 1, 1, shape[-1]))
        channels = inputs.shape[-1]
        gamma = self.gamma if self.scale else ops.ones((channels,), "float32")
        beta = self.beta if self.center else ops.zeros((channels,), "float32")
        # The fused kernel wants float32 statistics; float16/bfloat16 inputs stay as they are.
        gamma, beta = ops.cast(gamma, "float32"), ops.cast(beta, "float32")
        if training and self.trainable:
            y, mean, variance = tf.compat.v1.nn.fused_batch_norm(
                x, gamma, beta, epsilon=self.epsilon, is_training=True
            )
            # The kernel returns the unbiased variance; Keras averages the biased one.
            count = ops.cast(ops.size(x) // channels, "float32")
            variance = variance * ops.maximum(count - 1.0, 0.0) / count
            self.moving_mean.assign(
                self.moving_mean * self.momentum
                + ops.cast(mean, self.moving_mean.dtype) * (1.0 - self.momentum)
            )
            self.moving_variance.assign(
                self.moving_variance * self.momentum
                + ops.cast(variance, self.moving_variance.dtype) * (1.0 - self.momentum)
            )
        elif x.dtype == tf.float32 and tf_conv.affine_inference_batch_norm(x):
            # y = x * scale + offset: what the fused kernel computes, without the fusion into
            # the convolution before it that oneDNN runs slowly at batch 1 on AVX2 CPUs.
            scale = gamma * tf.math.rsqrt(ops.cast(self.moving_variance, "float32") + self.epsilon)
            offset = beta - ops.cast(self.moving_mean, "float32") * scale
            y = tf.nn.bias_add(x * scale, offset)
        else:
            y, _, _ = tf.compat.v1.nn.fused_batch_norm(
                x,
                gamma,
                beta,
                mean=ops.cast(self.moving_mean, "float32"),
                variance=ops.cast(self.moving_variance, "float32"),
                epsilon=self.epsilon,
                is_training=False,
            )
        if len(inputs.shape) == 2:
            y = ops.reshape(y, shape)
        return ops.cast(y, self.compute_dtype)
