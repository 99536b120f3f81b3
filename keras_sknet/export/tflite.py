"""TFLite / LiteRT export: float32, float16, dynamic-range and full-integer int8, verified.

The model is traced with a static input shape (batch 1 by default): with every
shape known, the converter folds the BatchNorms into the convolutions and
XNNPACK, LiteRT's CPU delegate, takes the whole graph. The SK layers lower to
builtin operators only: grouped convolutions to CONV_2D (with groups: filter
depth < input depth), depthwise ones to DEPTHWISE_CONV_2D, strided dilated
paths to a reshape, a unit-stride slice and an undilated convolution, the
attention to FULLY_CONNECTED, SOFTMAX and MUL. Flex (select TF) ops are never
enabled; a custom operator in the result fails the export.
"""

import tempfile

from keras_sknet.export import common, serving
from keras_sknet.export import litert as litert_lib
from keras_sknet.export.saved_model import serving_archive
from keras_sknet.utils.validation import check_positive_int

QUANTIZATIONS = ("none", "float16", "dynamic", "int8")
# Max abs diff against the Keras model's outputs.
TOLERANCES = {"none": 1e-4, "float16": 1e-2}
# Top-1 agreement with the Keras model on held-out images (default of `min_agreement`).
MIN_AGREEMENT = 0.98
# The modes checked by top-1 agreement (the others by their max abs diff, `TOLERANCES`).
AGREEMENT_MODES = ("dynamic", "int8")


def _converter(saved_model_dir, quantize, calibration, batch_size):
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_saved_model(saved_model_dir)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    if quantize != "none":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if quantize == "float16":
        converter.target_spec.supported_types = [tf.float16]
    if quantize == "int8":
        # Integer kernels only: conversion fails rather than leave a float op behind.
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]

        def representative_dataset():
            for start in range(0, len(calibration), batch_size):
                batch = calibration[start : start + batch_size]
                if len(batch) < batch_size:  # the signature's batch is static
                    batch = calibration.take(range(start, start + batch_size), axis=0, mode="wrap")
                yield [batch]

        converter.representative_dataset = representative_dataset
    return converter


def _verify(content, model, quantize, images, num_threads, input_type, min_agreement):
    counts = litert_lib.operator_counts(content)
    custom = sorted(name for name in counts if name.startswith("CUSTOM:"))
    if custom:
        raise common.ExportError(
            f"The TFLite model has non-builtin operators {custom}; only builtin ops are allowed"
        )
    interpreter = litert_lib.make_interpreter(content, num_threads=num_threads)
    outputs = litert_lib.run_tflite(interpreter, images)
    if input_type == "uint8":
        reference = serving.reference_outputs(model, images)
    else:
        reference = common.keras_outputs(model, images)
    if quantize in TOLERANCES:
        checks = [common.max_abs_diff_check(reference, outputs, TOLERANCES[quantize])]
    else:
        checks = [common.agreement_check(reference, outputs, min_agreement)]
    return checks, counts, litert_lib.xnnpack_coverage(interpreter)


def to_tflite(
    model,
    path=None,
    *,
    quantize="none",
    representative_data=None,
    validation_data=None,
    num_calibration=100,
    num_validation=200,
    batch_size=1,
    input_size=None,
    preprocess="imagenet",
    split=None,
    data_dir=None,
    input_type="float32",
    min_agreement=None,
    overwrite=False,
    num_threads=2,
):
    """Converts a model to TFLite (LiteRT), verifies it with `ai_edge_litert`, and writes it.

    Checks, on the LiteRT interpreter with its default XNNPACK delegate:
    float32 (`quantize="none"`) max abs diff <= 1e-4 against Keras,
    `"float16"` (float16 weights) <= 1e-2, `"dynamic"` (int8 weights, float
    activations) and `"int8"` (integer kernels throughout; float input and
    output) top-1 agreement >= 98% (`min_agreement`) with Keras on held-out
    images; that check cannot judge (it says so in the result, and does not
    fail) on fewer than 20 images or when Keras predicts one class for all of
    them. Only builtin operators are allowed. A model that fails is not
    written and `VerificationError` is raised; a passing one is written
    atomically. The path is checked before any work (see
    `keras_sknet.utils.files`): an existing file is replaced only with
    `overwrite=True`.

    Args:
        model: a `keras.Model`, or the path to a `.keras` file.
        path: the `.tflite` file to write; None keeps the result in memory
            (`result.content`).
        quantize: `"none"`, `"float16"`, `"dynamic"` or `"int8"`.
        representative_data: images for int8 calibration (required for
            `"int8"`): a NumPy array, `tf.data.Dataset`, iterable, folder of
            images, `.npy`/`.npz` file, prepared TFDS folder or TFDS name (see
            `keras_sknet.utils.images.load_images`). The first
            `num_calibration` images calibrate; the next `num_validation`
            ones (at least 20) are the held-out set of the agreement check
            unless `validation_data` is given. Other modes verify on it.
        validation_data: explicit images to verify on (any such source).
        num_calibration: calibration images (int8).
        num_validation: most images the agreement check uses.
        batch_size: the static batch of the exported model.
        input_size: `(height, width)`; default the model's. Required if the
            model takes any size; a model built for another size is rebuilt
            (same weights).
        preprocess: `"imagenet"` (`preprocess_input` on RGB [0, 255]), a
            callable, or None if the data already is model input.
        split, data_dir: the TFDS split and data directory.
        input_type: `"float32"` (default: model input, the output of
            `preprocess_input`) or `"uint8"`: the model takes `uint8` RGB
            images at its input size and returns probabilities, with
            `preprocess_input` (and a softmax on logits) inside (see
            `keras_sknet.export.serving`); int8 calibrates on raw images.
        min_agreement: the least top-1 agreement (`"dynamic"`, `"int8"`), a
            fraction in [0, 1]; default `MIN_AGREEMENT` (0.98).
        overwrite: replace an existing file at `path`.
        num_threads: LiteRT threads for the checks.

    Returns:
        An `ExportResult`: path, size, operators, XNNPACK coverage, checks
        and the flatbuffer (`content`).

    Raises:
        ValueError: bad arguments or data (nothing is converted).
        FileExistsError, IsADirectoryError, NotADirectoryError, PermissionError:
            `path` exists (without `overwrite`) or cannot be written (checked
            before any work).
        ExportError: the converter failed or produced non-builtin operators.
        VerificationError: a check failed (nothing is written).

    Example:
        >>> result = to_tflite(model, "model_int8.tflite", quantize="int8", representative_data=images)
        >>> print(result.summary())
    """
    quantize = common.check_quantization(quantize, QUANTIZATIONS)
    input_type = serving.check_input_type(input_type, preprocess)
    min_agreement = common.check_min_agreement(min_agreement, quantize, AGREEMENT_MODES, MIN_AGREEMENT)
    if path is not None:
        path = common.check_output_file(path, ".tflite", overwrite, model, quantize)
    check_positive_int("batch_size", batch_size)
    check_positive_int("num_calibration", num_calibration)
    check_positive_int("num_validation", num_validation)
    input_size = common.check_input_size(input_size)
    model = common.load_model(model)
    model, input_shape = common.model_with_input(model, batch_size, input_size)
    if None in input_shape[1:3]:
        raise ValueError(
            f"Model {model.name!r} takes images of any size; TFLite needs a static one: pass "
            "`input_size=(height, width)`"
        )
    data_args = dict(preprocess=preprocess, split=split, data_dir=data_dir)
    if quantize == "dynamic" and representative_data is None and validation_data is None:
        raise ValueError(
            "A dynamic-range export is verified by its top-1 agreement with Keras on real images: pass "
            "`representative_data` or `validation_data`. Received neither"
        )
    calibration, images = common.check_images(
        quantize,
        tuple(TOLERANCES),
        input_shape,
        representative_data,
        validation_data,
        (num_calibration, num_validation),
        data_args,
        raw=input_type == "uint8",
    )

    with tempfile.TemporaryDirectory() as saved_model_dir:
        with common.inference_graphs(portable=True):
            serving_archive(model, input_shape, input_type, bytes_signature=False).write_out(
                saved_model_dir, verbose=False
            )
        try:
            content = _converter(saved_model_dir, quantize, calibration, batch_size).convert()
        except Exception as error:
            raise common.ExportError(
                f"The TFLite converter failed on model {model.name!r} ({quantize}): {error}"
            ) from error
    checks, operators, xnnpack = _verify(
        content, model, quantize, images, num_threads, input_type, min_agreement
    )
    if quantize == "int8":
        checks[0].detail += f"; calibrated on {len(calibration)}"
    common.raise_if_failed(checks, f"TFLite ({quantize})")
    if path is not None:
        common.write_file_atomically(path, content, overwrite)
    return common.ExportResult(
        "tflite",
        quantize,
        path,
        len(content),
        input_shape,
        checks,
        operators,
        xnnpack,
        content,
        input_type=input_type,
    )
