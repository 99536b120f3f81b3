"""SavedModel export with a named, batch-polymorphic serving signature."""

import functools
import os
import shutil
import tempfile

import keras
import numpy as np

from keras_sknet.export import common, frozen
from keras_sknet.utils.validation import check_positive_int


def serving_archive(model, input_shape):
    """A Keras `ExportArchive` whose `serving_default` maps `images` to `{output name: output}`.

    The output is keyed by the model's output layer name (`"predictions"`
    for a classifier, `"avg_pool"` for a pooled backbone). BatchNorm runs in
    inference mode; TensorFlow's graph optimiser folds it into the
    convolutions when the graph is frozen (TFLite) or run (TF Serving).
    """
    import tensorflow as tf

    output_name = model.output_names[0]
    call = functools.partial(model.__call__, training=False)

    def serve(images):
        return {output_name: call(images)}

    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint(
        "serving_default",
        serve,
        input_signature=[tf.TensorSpec(input_shape, tf.float32, name=common.INPUT_NAME)],
    )
    return archive


def frozen_serving_module(model, input_shape):
    """A `tf.Module` whose `serve` maps `images` to `{output name: output}` with constant weights.

    See `keras_sknet.export.frozen`: the weights live in the graph, not in
    variables, so TensorFlow's oneDNN kernels keep their reordered weights
    between calls.
    """
    import tensorflow as tf

    output_name = model.output_names[0]
    function = frozen.freeze(model, input_shape, portable=True)
    module = tf.Module()
    module.serve = tf.function(
        lambda images: {output_name: function(images)[0]},
        input_signature=[tf.TensorSpec(input_shape, tf.float32, name=common.INPUT_NAME)],
    )
    return module


def _write(model, input_shape, path, freeze):
    import tensorflow as tf

    if freeze:
        module = frozen_serving_module(model, input_shape)
        tf.saved_model.save(module, path, signatures={"serving_default": module.serve})
    else:
        with common.inference_graphs(portable=True):
            serving_archive(model, input_shape).write_out(path, verbose=False)


def _verify(path, model, input_shape, images):
    import tensorflow as tf

    serving = tf.saved_model.load(path).signatures["serving_default"]
    output_name = model.output_names[0]

    def run(x):
        return serving(**{common.INPUT_NAME: tf.constant(x)})[output_name].numpy()

    return common.verify_outputs(run, model, input_shape, images)


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
):
    """Exports a model as a SavedModel for TF Serving / `tf.saved_model.load`, verified.

    The `serving_default` signature takes `images` (float32, model input:
    `preprocess_input` output) and returns `{output layer name: output}`,
    e.g. `{"predictions": probabilities}`. Before the SavedModel is moved to
    `path`, it is reloaded with `tf.saved_model.load` and its outputs must
    match the Keras model's within 1e-4 (max abs diff), at the exported batch
    and, when the batch is free, for one image alone. Nothing is left at
    `path` if anything fails; an older SavedModel there is replaced only once
    the new one passed.

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

    Returns:
        An `ExportResult`.

    Example:
        >>> result = to_saved_model(ShuffleNetV2SK(0.5), "saved_models/shufflenet_sk")
        >>> tf.saved_model.load(result.path).signatures["serving_default"](images=x)["predictions"]
    """
    path = common.check_output_path(path, directory=True)
    if batch_size is not None:
        check_positive_int("batch_size", batch_size)
    input_size = common.check_input_size(input_size)
    model = common.load_model(model)
    model, input_shape = common.model_with_input(model, batch_size, input_size)
    data_args = dict(preprocess=preprocess, split=split, data_dir=data_dir)

    check_shape = common.verification_shape(input_shape)
    if validation_data is not None:
        images = common.read_images(validation_data, check_shape, common.FLOAT_CHECK_IMAGES, data_args)
        if not len(images):
            raise ValueError("`validation_data` gave no images")
    else:
        images = common.generated_images(check_shape, count=4)
    if batch_size is not None:
        images = np.resize(images, (batch_size,) + images.shape[1:])

    parent = os.path.dirname(os.path.abspath(path))
    os.makedirs(parent, exist_ok=True)
    tmp_dir = tempfile.mkdtemp(dir=parent, prefix=f".{os.path.basename(path)}.tmp-")
    try:
        _write(model, input_shape, tmp_dir, freeze)
        checks = _verify(tmp_dir, model, input_shape, images)
        common.raise_if_failed(checks, "SavedModel")
        size = common.directory_size(tmp_dir)
        common.replace_directory(tmp_dir, path)
    except BaseException:
        shutil.rmtree(tmp_dir, ignore_errors=True)
        raise
    return common.ExportResult("saved_model", "none", path, size, input_shape, checks, frozen=freeze)
