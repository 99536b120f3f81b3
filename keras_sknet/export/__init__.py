"""Export for deployment: SavedModel and TFLite / LiteRT (float32, float16, dynamic-range, int8),
and frozen TensorFlow functions for the fastest in-process inference.

Every export is verified before it is written: the SavedModel reloaded with
`tf.saved_model.load`, the TFLite model run with LiteRT (`ai_edge_litert`),
both against the Keras model. A failed check raises `VerificationError` and
leaves nothing behind.

    from keras_sknet.export import to_saved_model, to_tflite

    to_saved_model(model, "saved_models/sk_serving")  # freeze=True: weights as graph constants
    result = to_tflite(model, "saved_models/sk_int8.tflite", quantize="int8", representative_data=images)
    print(result.summary())
    predict = frozen_function(model)  # model(x, training=False), ~15-20% faster at batch 1 on CPU

Command line: `python -m keras_sknet.export MODEL.keras --format tflite --quantize int8
--representative-data SOURCE` (see `python -m keras_sknet.export --help`).
Needs the `export` extra: `pip install 'keras-sknet[export]'` (ai-edge-litert,
tensorflow-datasets). Needs Keras' TensorFlow backend: on JAX or PyTorch the
import raises ImportError naming the backend and the fix.
"""

from keras_sknet.export import _tensorflow_only  # noqa: F401  (first: checks the backend)
from keras_sknet.export.common import ExportError, ExportResult, VerificationError, load_model
from keras_sknet.export.frozen import FrozenFunction, frozen_function
from keras_sknet.export.litert import (
    grouped_conv_count,
    make_interpreter,
    operator_counts,
    run_tflite,
    xnnpack_coverage,
)
from keras_sknet.export.saved_model import to_saved_model
from keras_sknet.export.tflite import MIN_AGREEMENT, QUANTIZATIONS, TOLERANCES, to_tflite
from keras_sknet.utils.images import load_images

__all__ = [
    "MIN_AGREEMENT",
    "QUANTIZATIONS",
    "TOLERANCES",
    "ExportError",
    "ExportResult",
    "FrozenFunction",
    "VerificationError",
    "frozen_function",
    "grouped_conv_count",
    "load_images",
    "load_model",
    "make_interpreter",
    "operator_counts",
    "run_tflite",
    "to_saved_model",
    "to_tflite",
    "xnnpack_coverage",
]
