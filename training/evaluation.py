"""Single-crop top-1 / top-5 accuracy of a trained model on an experiment's evaluation split.

    result = evaluate_model(model, experiment, image_size=320)

On TensorFlow or JAX (under the current `keras.distribution`, if any). The
command line is `python -m training.evaluate`; the trainer calls
`evaluate_model` at the end of a run.
"""

import keras
import numpy as np

# Top-k accuracy beside top-1, reported only with more than k classes (it is 100% otherwise).
TOP_K = 5


def reports_top_k(num_classes):
    """Whether top-`TOP_K` accuracy says anything for `num_classes` classes (more than `TOP_K`)."""
    return TOP_K < num_classes


def predictor(model):
    """`model(images, training=False)` as one compiled function returning probabilities.

    TensorFlow: a `tf.function`. JAX: an XLA-compiled function of the model's
    current weights; under a `DataParallel` distribution the batch is padded to a
    multiple of the device count, split over the devices, and the padding dropped.
    With several JAX processes, each is given the same whole batch, computes its
    devices' rows, and gets every output back.

    Args:
        model: a Keras model.

    Returns:
        A function of a batch of images (a NumPy array or tensor) returning the model's outputs.
    """
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        return tf.function(lambda x: model(x, training=False))
    if backend != "jax":
        raise ValueError(f"Evaluation runs on Keras' tensorflow and jax backends. Received: {backend!r}")
    import jax

    distribution = keras.distribution.distribution()
    count = distribution.device_mesh.devices.size if distribution is not None else 1
    weights = (
        [v.value for v in model.trainable_variables],
        [v.value for v in model.non_trainable_variables],
    )
    several = distribution is not None and jax.process_count() > 1
    replicated = None
    if several:  # each process reads only what its devices hold: give every device every output
        mesh = distribution.get_data_layout((count,)).backend_layout.mesh
        replicated = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())
    forward = jax.jit(
        lambda trainable, other, x: model.stateless_call(trainable, other, x, training=False)[0],
        out_shardings=replicated,
    )

    def predict(images):
        images = np.asarray(images)
        real = images.shape[0]
        extra = (-real) % count
        if extra:
            images = np.concatenate([images, np.zeros((extra, *images.shape[1:]), images.dtype)])
        if distribution is not None:
            layout = distribution.get_data_layout(images.shape).backend_layout
            if several:  # this process's rows of the same batch on every process
                whole = images
                images = jax.make_array_from_callback(whole.shape, layout, lambda index: whole[index])
            else:
                images = jax.device_put(images, layout)
        return np.asarray(forward(*weights, images))[:real]

    return predict


def evaluate_model(model, experiment, data_dir=None, manual_dir=None, image_size=None, crop_pct=None):
    """Single-crop top-1 / top-5 accuracy of `model` on the experiment's evaluation split.

    On TensorFlow or JAX (under the current `keras.distribution`, if any).

    Args:
        model: a classifier of the experiment's classes (softmax outputs).
        experiment: a `training.experiments.Experiment`: its dataset, batch size and crops.
        data_dir, manual_dir: TFDS data directory and manual-download directory.
        image_size: the evaluation crop (default the experiment's; Table 2 uses 224 and 320).
        crop_pct: the resize before the centre crop is image_size / crop_pct.

    Returns:
        {"top1": ..., "top5": ..., "image_size": ..., "examples": ..., "split": ...}; "top5"
        only with more than 5 classes.

    Example:
        >>> evaluate_model(keras.models.load_model("runs/x/best.keras"), experiment, image_size=320)  # doctest: +SKIP
        {'top1': 0.79, 'top5': 0.94, 'image_size': 320, 'examples': 50000, 'split': 'validation'}
    """
    from training import data

    info = data.dataset_info(experiment.dataset, data_dir=data_dir, manual_dir=manual_dir, download=False)
    size = image_size or experiment.eval_image_size
    dataset = data.make_dataset(
        experiment.dataset,
        info.eval_split,
        experiment.batch_size,
        size,
        training=False,
        crop_pct=crop_pct or experiment.crop_pct,
        data_dir=data_dir,
        manual_dir=manual_dir,
        download=False,
    )
    top1 = keras.metrics.SparseCategoricalAccuracy()
    top_k = keras.metrics.SparseTopKCategoricalAccuracy(TOP_K) if reports_top_k(info.num_classes) else None
    predict = predictor(model)
    batches = dataset.as_numpy_iterator() if keras.backend.backend() == "jax" else dataset
    examples = 0
    for images, labels in batches:
        probabilities = predict(images)
        top1.update_state(labels, probabilities)
        if top_k is not None:
            top_k.update_state(labels, probabilities)
        examples += int(labels.shape[0])
    result = {"top1": float(top1.result())}
    if top_k is not None:
        result[f"top{TOP_K}"] = float(top_k.result())
    return {**result, "image_size": size, "examples": examples, "split": info.eval_split}
