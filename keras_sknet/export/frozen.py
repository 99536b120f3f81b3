"""Frozen inference: a model's inference pass as a TensorFlow graph with its weights as constants.

Why: TensorFlow's oneDNN convolutions (the CPU default on x86) reorder a
convolution's weights into their blocked layout on every call when the weights
are variables, and only cache the reordered weights when the weights are graph
constants. For a grouped convolution the reorder costs about as much as the
convolution itself at batch 1 (SKNet-50's 32 grouped convs: ~5 ms a call), and
constant weights also let the graph optimiser fold what depends on weights only
(BatchNorm scales, the attention's BatchNorm). Measured on the 2-core CPU of
BENCHMARKS.md: SKNet-50 at batch 1 runs ~15-20% faster frozen than as the same
model in a `tf.function`; at batch 16 the two are equal (the reorders are per
call, not per image).

A frozen function is a snapshot: later changes to the model's weights do not
reach it; freeze again after training. It runs inference only (BatchNorm with
its moving statistics).
"""

from keras_sknet.export import common


def freeze(model, input_shape, portable=False, served=False):
    """The TensorFlow `ConcreteFunction` of `model(images, training=False)` with constant weights.

    Args:
        model: a single-input `keras.Model` on the TensorFlow backend.
        input_shape: `(batch, height, width, channels)`, None for a free size.
        portable: build the graph that runs on every TensorFlow CPU (see
            `common.portable_inference_graphs`), for graphs that leave this
            process; False builds this machine's fastest graph.
        served: build it for TensorFlow to run without a converter, on any CPU
            (`common.inference_graphs`): SavedModels.

    Returns:
        A `ConcreteFunction` taking one float32 tensor named `images` and
        returning a list with the model's output; it captures no variables.
    """
    import tensorflow as tf
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    call = tf.function(lambda images: model(images, training=False))
    with common.inference_graphs(portable, served=served):
        concrete = call.get_concrete_function(tf.TensorSpec(input_shape, tf.float32, name=common.INPUT_NAME))
    return convert_variables_to_constants_v2(concrete)


class FrozenFunction:
    """A model's inference pass with its weights baked in as constants (see the module docstring).

    Call it like the model in inference: `frozen(images)` returns the model's
    output as a `tf.Tensor`. Built by `frozen_function`.

    Attributes:
        input_shape: the accepted input shape, `(batch, H, W, C)` (None = any).
        output_name: the model's output layer name (`"predictions"`, ...).
        concrete_function: the underlying TensorFlow `ConcreteFunction`.
        checks: the verification `Check`s it passed when it was built.
    """

    def __init__(self, concrete_function, input_shape, output_name, checks=()):
        self.concrete_function = concrete_function
        self.input_shape = tuple(input_shape)
        self.output_name = output_name
        self.checks = list(checks)

    def __call__(self, images):
        import tensorflow as tf

        images = tf.convert_to_tensor(images)
        if not (images.dtype.is_floating or images.dtype.is_integer):
            raise ValueError(
                f"Expected images of a float or integer dtype. Received dtype {images.dtype.name}"
            )
        shape = tuple(images.shape)
        if len(shape) != len(self.input_shape) or any(
            want is not None and got != want for got, want in zip(shape, self.input_shape)
        ):
            raise ValueError(
                f"Expected images of shape {self.input_shape} (None: any). Received shape {shape}"
            )
        return self.concrete_function(tf.cast(images, tf.float32))[0]

    def __repr__(self):
        return f"FrozenFunction(input_shape={self.input_shape}, output_name={self.output_name!r})"


def frozen_function(model, *, batch_size=None, input_size=None):
    """Freezes a model's inference pass for the fastest TensorFlow inference at small batches.

    The result is verified before it is returned: on generated model input,
    its outputs must match the Keras model's within 1e-4 (max abs diff), and,
    when the batch is free, one image alone must give its row of the batch.

    Args:
        model: a `keras.Model`, or the path to a `.keras` file.
        batch_size: None (default: any batch) or a fixed batch size.
        input_size: `(height, width)`; default the model's (None = any size;
            a model built for another size is rebuilt with the same weights).

    Returns:
        A `FrozenFunction`.

    Raises:
        ValueError: bad arguments or not a single-input image model.
        VerificationError: the frozen graph does not reproduce the model.

    Example:
        >>> model = SKNet50(weights="imagenet")
        >>> predict = frozen_function(model)
        >>> probabilities = predict(preprocess_input(images))  # (N, 1000) tf.Tensor
    """
    from keras_sknet.utils.validation import check_positive_int

    if batch_size is not None:
        check_positive_int("batch_size", batch_size)
    input_size = common.check_input_size(input_size)
    model = common.load_model(model)
    model, input_shape = common.model_with_input(model, batch_size, input_size)
    frozen = FrozenFunction(freeze(model, input_shape), input_shape, common.output_name(model))
    count = 4 if input_shape[0] is None else input_shape[0]
    images = common.generated_images(common.verification_shape(input_shape), count=count)
    frozen.checks = common.verify_outputs(lambda x: frozen(x).numpy(), model, input_shape, images)
    common.raise_if_failed(frozen.checks, "frozen function")
    return frozen
