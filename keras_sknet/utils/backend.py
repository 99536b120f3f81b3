"""Which Keras backend runs, and clear errors for the parts that need TensorFlow.

The layers, the model zoo, `weights=`, preprocessing, parameter and
multiply-add counts and the attention analysis run on Keras' TensorFlow, JAX
and PyTorch backends. The exporters (SavedModel, TFLite, frozen graphs) build
TensorFlow graphs and need the TensorFlow backend; a few helpers (image
decoding, `eval_transform`) call TensorFlow the library. On JAX or PyTorch
nothing in `keras_sknet` imports TensorFlow unless one of those is used, and
each says what to do instead.
"""

import keras

BACKENDS = ("tensorflow", "jax", "torch")


def tensorflow_backend_message(feature):
    """The explanation for `feature` on a backend other than TensorFlow.

    Args:
        feature: what needs the TensorFlow backend, e.g. `"keras_sknet.export"`.

    Returns:
        A sentence naming the running backend and the fix.

    Example:
        >>> raise ImportError(tensorflow_backend_message("keras_sknet.export"))
    """
    return (
        f"{feature} needs Keras' TensorFlow backend, but this process runs Keras on "
        f"{keras.backend.backend()!r}. Run it in a process started with KERAS_BACKEND=tensorflow "
        "(TensorFlow: `pip install keras-sknet[cpu]`); a model saved with `model.save('m.keras')` "
        "on any backend loads there."
    )


def require_tensorflow_backend(feature):
    """Raises RuntimeError unless Keras runs on TensorFlow.

    Args:
        feature: what needs it, named in the message.

    Example:
        >>> require_tensorflow_backend("count_flops(method='graph')")  # on JAX: RuntimeError
    """
    if keras.backend.backend() != "tensorflow":
        raise RuntimeError(tensorflow_backend_message(feature))


def import_tensorflow(feature):
    """Imports TensorFlow the library for `feature`, on any Keras backend.

    For helpers that use TensorFlow's image ops or `tf.data`, which work beside
    Keras on JAX or PyTorch as long as TensorFlow is installed.

    Args:
        feature: what needs TensorFlow, named in the error.

    Returns:
        The `tensorflow` module.

    Raises:
        ImportError: TensorFlow is not installed; the message says how to install it.

    Example:
        >>> tf = import_tensorflow("eval_transform")
    """
    try:
        import tensorflow as tf
    except ImportError as error:
        raise ImportError(
            f"{feature} uses TensorFlow, which is not installed (Keras runs on "
            f"{keras.backend.backend()!r}). Install it with `pip install keras-sknet[cpu]`."
        ) from error
    return tf
