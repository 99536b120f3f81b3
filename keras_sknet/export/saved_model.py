"""SavedModel export with a named, batch-polymorphic serving signature (float32 model input, or images)."""

import functools

import keras
import numpy as np

from keras_sknet.export import common, frozen, serving
from keras_sknet.utils import files
from keras_sknet.utils.validation import check_positive_int


def serving_archive(model, input_shape, input_type="float32", bytes_signature=True):
    """A Keras `ExportArchive` whose `serving_default` maps `images` to `{output name: output}`.

    The output is keyed by the model's output layer name (`"predictions"`
    for a classifier, `"avg_pool"` for a pooled backbone). BatchNorm runs in
    inference mode; traced inside `common.inference_graphs(served=True)`, as
    `to_saved_model` does, it is a multiply and a bias add.

    Args:
        model: the Keras model.
        input_shape: the signature's input shape.
        input_type: `"float32"` (model input) or `"uint8"` (RGB images,
            resized to the model's size and preprocessed inside, probabilities
            out; with a model of fixed size also a `serving_bytes` signature on
            encoded images). See `keras_sknet.export.serving`.
        bytes_signature: False leaves `serving_bytes` out (TFLite has no image decoder).
    """
    output_name = common.output_name(model)
    call = functools.partial(model.__call__, training=False)
    archive = keras.export.ExportArchive()
    archive.track(model)
    for name, function, spec in _endpoints(call, model, input_shape, input_type, bytes_signature):
        archive.add_endpoint(name, _keyed(function, output_name), input_signature=[spec])
    return archive


def _keyed(function, output_name):
    return lambda x: {output_name: function(x)}


def _endpoints(call, model, input_shape, input_type, bytes_signature=True):
    """`(signature name, function, input spec)` of each signature of a SavedModel on `call`."""
    import tensorflow as tf

    if input_type == "float32":
        return [("serving_default", call, tf.TensorSpec(input_shape, tf.float32, name=common.INPUT_NAME))]
    size = _model_size(model)
    image_serve = serving.image_function(call, model, size)
    endpoints = [
        ("serving_default", image_serve, tf.TensorSpec(input_shape, tf.uint8, name=common.INPUT_NAME))
    ]
    if size is not None and bytes_signature:
        spec = tf.TensorSpec((input_shape[0],), tf.string, name=serving.BYTES_INPUT_NAME)
        endpoints.append((serving.BYTES_SIGNATURE, serving.bytes_function(image_serve, size), spec))
    return endpoints


def _model_size(model):
    height, width = common.model_image_shape(model)[1:3]
    return None if height is None or width is None else (height, width)


def frozen_serving_module(model, input_shape, input_type="float32"):
    """A `tf.Module` with a `tf.function` per signature (`serving_default`, ...) and constant weights.

    Each maps its input to `{output name: output}`. See
    `keras_sknet.export.frozen`: the weights live in the graph, not in
    variables, so TensorFlow's oneDNN kernels keep their reordered weights
    between calls.

    Returns:
        `(module, {signature name: tf.function})`.
    """
    import tensorflow as tf

    output_name = common.output_name(model)
    float_shape = (input_shape[0], *common.model_image_shape(model)[1:])
    function = frozen.freeze(model, float_shape, portable=True, served=True)
    module = tf.Module()
    signatures = {}
    for name, serve, spec in _endpoints(lambda x: function(x)[0], model, input_shape, input_type):
        signatures[name] = tf.function(_keyed(serve, output_name), input_signature=[spec])
        setattr(module, name, signatures[name])
    return module, signatures


def _write(model, input_shape, path, freeze, input_type):
    import tensorflow as tf

    if freeze:
        module, signatures = frozen_serving_module(model, input_shape, input_type)
        tf.saved_model.save(module, path, signatures=signatures)
    else:
        with common.inference_graphs(portable=True, served=True):
            serving_archive(model, input_shape, input_type).write_out(path, verbose=False)


def _verify(path, model, input_shape, images, input_type):
    import tensorflow as tf

    signatures = tf.saved_model.load(path).signatures
    output_name = common.output_name(model)

    def runner(name, input_name, convert=tf.constant):
        return lambda x: signatures[name](**{input_name: convert(x)})[output_name].numpy()

    if input_type == "float32":
        return common.verify_outputs(runner("serving_default", common.INPUT_NAME), model, input_shape, images)
    reference = serving.reference_outputs(model, images)
    checks = common.verify_outputs(
        runner("serving_default", common.INPUT_NAME), model, input_shape, images, reference=reference
    )
    if serving.BYTES_SIGNATURE in signatures:
        run_bytes = runner(
            serving.BYTES_SIGNATURE, serving.BYTES_INPUT_NAME, lambda x: tf.constant(serving.encode_png(x))
        )
        check = common.max_abs_diff_check(reference, run_bytes(images), common.GRAPH_TOLERANCE)
        check.name, check.detail = f"max abs diff of {serving.BYTES_SIGNATURE}", "PNG-encoded"
        checks.append(check)
    return checks


def to_saved_model(
    model,
    path,
    *,
    batch_size=None,
    input_size=None,
    validation_data=None,
    preprocess="imagenet",
    split=None,
    data_dir=None,
    freeze=False,
    input_type="float32",
    overwrite=False,
):
    """Exports a model as a SavedModel for TF Serving / `tf.saved_model.load`, verified.

    The `serving_default` signature takes `images` (float32, model input:
    `preprocess_input` output) and returns `{output layer name: output}`,
    e.g. `{"predictions": probabilities}`. Before the SavedModel is moved to
    `path`, it is reloaded with `tf.saved_model.load` and its outputs must
    match the Keras model's within 1e-4 (max abs diff), at the exported batch
    and, when the batch is free, for one image alone. Nothing is left at
    `path` if anything fails.

    `path` is checked before any work (see `keras_sknet.utils.files`): it
    may be missing or an empty folder; a folder holding an earlier SavedModel
    (only `saved_model.pb`, `fingerprint.pb`, `variables/` and an empty
    `assets/`) is replaced only with `overwrite=True`, in one step once the
    new one passed; a folder holding anything else, the current folder and a
    folder that holds it are never replaced.

    Args:
        model: a `keras.Model`, or the path to a `.keras` file.
        path: the SavedModel folder to write.
        batch_size: None (default: any batch) or a fixed batch size.
        input_size: `(height, width)`; default the model's (None = any size).
        validation_data: optional images to verify on (any source
            `keras_sknet.utils.images.load_images` reads: array, dataset,
            folder, .npy/.npz, TFDS); default: generated model input.
        preprocess, split, data_dir: how `validation_data` is read (see
            `load_images`).
        freeze: False (default) keeps the weights as variables (they can be
            restored, fine-tuned, served); True bakes them into the serving
            graph as constants (`keras_sknet.export.frozen`): no variables,
            the same outputs, and on CPU ~15-20% faster at batch 1.
        input_type: `"float32"` (default: model input, the output of
            `preprocess_input`) or `"uint8"`: `serving_default` takes `uint8`
            RGB images of any size, resized to the model's size and
            preprocessed inside, and returns probabilities; a model of fixed
            size also gets `serving_bytes`, which takes encoded JPEG/PNG images
            (`image_bytes`, a string tensor). Checked against Keras on
            `preprocess_input` of the same images (`validation_data` read as
            raw RGB).
        overwrite: replace an earlier SavedModel at `path`.

    Returns:
        An `ExportResult`.

    Raises:
        ValueError: bad arguments or data (nothing is converted).
        FileExistsError, NotADirectoryError, PermissionError: `path` holds
            files that are not a SavedModel, an earlier SavedModel (without
            `overwrite`), or cannot be written (checked before any work).
        VerificationError: a check failed (nothing is written).

    Example:
        >>> result = to_saved_model(ShuffleNetV2SK(0.5), "saved_models/shufflenet_sk")
        >>> tf.saved_model.load(result.path).signatures["serving_default"](images=x)["predictions"]
    """
    path = files.check_output_folder(
        path,
        files.saved_model_foreign,
        what="SavedModel",
        overwrite=overwrite,
        size=common.estimated_size(model),
    )
    input_type = serving.check_input_type(input_type, preprocess)
    if batch_size is not None:
        check_positive_int("batch_size", batch_size)
    input_size = common.check_input_size(input_size)
    model = common.load_model(model)
    model, input_shape = common.model_with_input(model, batch_size, input_size)
    data_args = dict(preprocess=preprocess, split=split, data_dir=data_dir)

    check_shape = common.verification_shape(input_shape)
    if validation_data is not None or input_type == "uint8":
        _, images = common.check_images(
            "none",
            ("none",),
            check_shape,
            None,
            validation_data,
            (1, 1),
            data_args,
            raw=input_type == "uint8",
        )
    else:
        images = common.generated_images(check_shape, count=4)
    if input_type == "uint8":  # any size in, resized to the model's inside
        input_shape = (input_shape[0], None, None, input_shape[3])
    if batch_size is not None:
        images = np.resize(images, (batch_size,) + images.shape[1:])

    with files.folder_beside(path) as tmp_dir:
        _write(model, input_shape, tmp_dir, freeze, input_type)
        checks = _verify(tmp_dir, model, input_shape, images, input_type)
        common.raise_if_failed(checks, "SavedModel")
        size = common.directory_size(tmp_dir)
        files.replace_folder(tmp_dir, path, files.saved_model_foreign, what="SavedModel", overwrite=overwrite)
    signatures = ("serving_default",)
    if input_type == "uint8" and _model_size(model) is not None:
        signatures += (serving.BYTES_SIGNATURE,)
    return common.ExportResult(
        "saved_model",
        "none",
        path,
        size,
        input_shape,
        checks,
        frozen=freeze,
        input_type=input_type,
        signatures=signatures,
    )
