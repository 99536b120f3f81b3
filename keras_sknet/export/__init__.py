"""Export for deployment: SavedModel, TFLite / LiteRT (float32, float16, dynamic-range, int8),
ONNX (float32, int8), and frozen TensorFlow functions for the fastest in-process inference.

Every export is verified before it is written: the SavedModel reloaded with
`tf.saved_model.load`, the TFLite model run with LiteRT (`ai_edge_litert`),
the ONNX model run with ONNX Runtime, all against the Keras model. A failed check
raises `VerificationError` and leaves nothing behind. The output path is checked before any work; an existing output is
replaced only with `overwrite=True`, a folder holding a user's files never (see
`keras_sknet.utils.files`). Functional, Sequential and subclassed models all export.

    from keras_sknet.export import to_onnx, to_saved_model, to_tflite

    to_saved_model(model, "saved_models/sk_serving")  # freeze=True: weights as graph constants
    result = to_tflite(model, "saved_models/sk_int8.tflite", quantize="int8", representative_data=images)
    print(result.summary())
    predict = frozen_function(model)  # model(x, training=False), ~15-20% faster at batch 1 on CPU
    to_onnx(model, "saved_models/sk.onnx")  # ONNX Runtime, TensorRT, OpenVINO; quantize="int8" too

Command line: `python -m keras_sknet.export MODEL.keras --format tflite --quantize int8
--representative-data SOURCE` (see `python -m keras_sknet.export --help`).
Needs the `export` extra: `pip install 'keras-sknet[export]'` (ai-edge-litert,
tensorflow-datasets); ONNX the `onnx` extra (onnx, onnxruntime, tf2onnx). Needs Keras' TensorFlow backend: on JAX or PyTorch the
import raises ImportError naming the backend and the fix.
"""

# ruff: noqa: F401  (_import_names imports the package's names and returns them as locals())

from keras_sknet.utils import cli


# In `python -m keras_sknet.export` (a command line, `cli.COMMAND_LINE`) these import on first
# use: the command checks its arguments and paths first. Everywhere else, all at once.
def _import_names():
    from keras_sknet.export import _tensorflow_only  # first: checks the backend
    from keras_sknet.export.common import ExportError, ExportResult, VerificationError, load_model
    from keras_sknet.export.frozen import FrozenFunction, frozen_function
    from keras_sknet.export.litert import (
        grouped_conv_count,
        make_interpreter,
        operator_counts,
        run_tflite,
        xnnpack_coverage,
    )
    from keras_sknet.export.onnx import OPSETS, to_onnx
    from keras_sknet.export.onnx import QUANTIZATIONS as ONNX_QUANTIZATIONS
    from keras_sknet.export.saved_model import to_saved_model
    from keras_sknet.export.tflite import MIN_AGREEMENT, QUANTIZATIONS, TOLERANCES, to_tflite
    from keras_sknet.utils.images import load_images

    return locals()


__all__ = [
    "MIN_AGREEMENT",
    "ONNX_QUANTIZATIONS",
    "OPSETS",
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
    "to_onnx",
    "to_saved_model",
    "to_tflite",
    "xnnpack_coverage",
]

cli.import_names(globals(), _import_names)
