"""Imported first by `keras_sknet.export`: an ImportError unless Keras runs on TensorFlow.

The exporters build TensorFlow graphs (SavedModel, TFLite, frozen functions).
Where Keras runs on JAX or PyTorch the error names the backend and the fix:
export from a process with KERAS_BACKEND=tensorflow (`.keras` files saved on
any backend load there).
"""

import keras

from keras_sknet.utils.backend import tensorflow_backend_message

if keras.backend.backend() != "tensorflow":
    raise ImportError(tensorflow_backend_message("keras_sknet.export (SavedModel, TFLite, frozen functions)"))
