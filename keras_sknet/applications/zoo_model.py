"""The `keras.Model` class of the zoo's models: Keras' functional model, with fast inference calls.

On the TensorFlow backend, `Model.predict` builds a `tf.data` pipeline and its
iterator on every call (a dataset of index permutations, a gather map, a
`flat_map` and their traced functions): at batch 1 that costs as much as the
network itself. `model(x)` in eager mode runs every layer op by op, three to
four times the compiled graph. `ZooModel` keeps Keras' behaviour and takes two
shortcuts where they give the same results:

- `predict` of in-memory arrays (NumPy arrays or TensorFlow tensors, alone or in
  a list, tuple or dict) that fit in one batch, without `steps`: the inputs go to
  Keras' own compiled predict function directly, with the callbacks and the
  progress bar called exactly as Keras calls them for a one-batch epoch. Other
  inputs (datasets, generators, `PyDataset`, more than `batch_size` samples,
  `steps`, a distribution strategy, `steps_per_execution > 1`) go through
  Keras' `predict` unchanged.
- an eager inference call, `model(x)` or `model(x, training=False)` with one
  tensor or array, outside any other layer's call and any gradient tape and
  without `run_eagerly`, runs a compiled `tf.function` of the same call,
  traced once per input signature (and again when the model's variables change,
  as `quantize` changes them).

Both shortcuts are TensorFlow only: on JAX and PyTorch `ZooModel` is Keras'
functional model as it is. Everything else (saving, `fit`, `evaluate`,
`predict_on_batch`, tracing by the exporters) is the functional model's own.
Models saved before this class existed load as Keras' functional model.
"""

import keras
import numpy as np


@keras.saving.register_keras_serializable(package="keras_sknet")
class ZooModel(keras.Model):
    """A functional `keras.Model` whose `predict` and eager calls take compiled shortcuts.

    Built like any functional model, `ZooModel(inputs, outputs, name=...)`; the
    model functions of `keras_sknet.applications` return one.

    Example:
        >>> model = keras_sknet.applications.SKNet26(weights=None, input_shape=(64, 64, 3), classes=10)
        >>> type(model).__name__
        'ZooModel'
        >>> model.predict(np.zeros((1, 64, 64, 3)), verbose=0).shape   # one compiled call
        (1, 10)
    """

    def predict(self, x, batch_size=None, verbose="auto", steps=None, callbacks=None):
        """Keras' `Model.predict`; one batch of in-memory arrays skips the `tf.data` pipeline.

        Args and Returns: as `keras.Model.predict`.
        """
        data = self._one_batch(x, batch_size, steps)
        if data is None:
            return super().predict(
                x, batch_size=batch_size, verbose=verbose, steps=steps, callbacks=callbacks
            )
        from keras.src import callbacks as callbacks_module
        from keras.src import tree

        # As Keras' predict for an epoch of one batch: the same callbacks, steps and logs.
        if not isinstance(callbacks, callbacks_module.CallbackList):
            callbacks = callbacks_module.CallbackList(
                callbacks, add_progbar=verbose != 0, verbose=verbose, epochs=1, steps=1, model=self
            )
        self.make_predict_function()
        self.stop_predicting = False
        callbacks.on_predict_begin()
        callbacks.on_predict_batch_begin(0)
        outputs = self.predict_function([data])
        callbacks.on_predict_batch_end(0, {"outputs": outputs})
        callbacks.on_predict_end()
        return tree.map_structure(_to_numpy, outputs)

    def _one_batch(self, x, batch_size, steps):
        """`x` as one batch of the predict function's input, or None where Keras' loop must run."""
        if keras.backend.backend() != "tensorflow" or steps is not None or self.steps_per_execution != 1:
            return None
        import tensorflow as tf
        from keras.src import tree

        if tf.distribute.has_strategy() or self.distribute_strategy is not tf.distribute.get_strategy():
            return None
        if not tf.executing_eagerly():
            return None
        if not isinstance(x, (np.ndarray, tf.Tensor, list, tuple, dict)):
            return None  # datasets, generators, PyDataset, pandas ...: Keras' adapters
        leaves = tree.flatten(x)
        if not leaves or not all(_plain_array(leaf) for leaf in leaves):
            return None
        sizes = {leaf.shape[0] if leaf.ndim else None for leaf in leaves}
        if len(sizes) != 1 or None in sizes:
            return None  # Keras reports mismatched or unbatched inputs
        (size,) = sizes
        if not 0 < size <= (batch_size or 32):
            return None
        from keras.src.trainers.data_adapters import array_slicing, data_adapter_utils

        # The conversion Keras' array adapter applies (floats to floatx, lists to tuples).
        data = data_adapter_utils.pack_x_y_sample_weight(x, None, None)
        data = tree.lists_to_tuples(array_slicing.convert_to_sliceable(data, target_backend="tensorflow"))
        return tree.map_structure(tf.convert_to_tensor, data)

    def __call__(self, *args, **kwargs):
        function = self._inference_function(args, kwargs)
        if function is None:
            return super().__call__(*args, **kwargs)
        return function(args[0])

    def _inference_function(self, args, kwargs):
        """The compiled inference call for these arguments, or None where Keras' own call must run."""
        if keras.backend.backend() != "tensorflow" or not self.built or self.run_eagerly:
            return None
        if len(args) != 1 or set(kwargs) - {"training"} or kwargs.get("training") not in (None, False):
            return None
        import tensorflow as tf
        from keras.src.backend.common import global_state
        from tensorflow.python.eager import record

        x = args[0]
        if not tf.executing_eagerly() or not _plain_array(x) or getattr(x, "_keras_mask", None) is not None:
            return None
        # Inside another layer's call the training flag comes from the caller; under a
        # gradient tape the caller may want every op recorded: Keras' own call in both.
        if (
            global_state.get_global_attribute("current_call_ctx") is not None
            or record.could_possibly_record()
        ):
            return None
        # A trace holds the variables it was traced with: new ones (`quantize`, LoRA) need a new trace.
        variables = tuple(map(id, self.variables))
        cache = self.__dict__.get("_zoo_inference")
        if cache is None or cache.variables != variables:
            call = super().__call__
            cache = _Cache(tf.function(lambda x: call(x, training=False), reduce_retracing=True), variables)
            # In __dict__ past Keras' attribute tracking, in a plain object that SavedModel
            # tracking does not look into: the function is no part of the model's state.
            self.__dict__["_zoo_inference"] = cache
        return cache.function


class _Cache:
    def __init__(self, function, variables):
        self.function = function
        self.variables = variables


def _plain_array(x):
    """A NumPy array of numbers or a dense eager TensorFlow tensor."""
    if isinstance(x, np.ndarray):
        return x.dtype.kind in "biuf"
    import tensorflow as tf

    return isinstance(x, tf.Tensor) and hasattr(x, "numpy") and x.dtype != tf.string


def _to_numpy(x):
    import tensorflow as tf

    return x if isinstance(x, (tf.RaggedTensor, tf.SparseTensor)) else x.numpy()
