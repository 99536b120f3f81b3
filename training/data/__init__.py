"""Input pipelines: `tf.data` (TensorFlow) or grain (no TensorFlow), behind one `make_dataset`.

    from training.data import make_dataset, dataset_info
    info = dataset_info("scales_demo")               # classes, split sizes, default size and style
    train = make_dataset("scales_demo", "train", batch_size=64, seed=0)
    test = make_dataset("scales_demo", "test", batch_size=256)

`make_dataset` and `dataset_info` use the pipeline chosen by
`set_input_pipeline`: "tf" (`training.data.pipelines`, a `tf.data.Dataset`),
"grain" (`training.data.grain_pipeline`, NumPy batches, no TensorFlow) or
"auto" (the default: tf on Keras' tensorflow backend, grain on the others).
Both take the same recipe and give the same augmentations (see
`training.data.numpy_augment`).

Importing this package imports neither TensorFlow nor grain. In a program that
runs TensorFlow (Keras' tensorflow backend) it registers the `scales_demo` TFDS
builder, so that `tfds.load("scales_demo", data_dir=...)` works too.
"""

import sys

from training.data.catalog import (
    STYLES,
    SUPPORTED_DATASETS,
    DatasetInfo,
    DatasetUnavailableError,
)
from training.data.embedded import render_example
from training.data.options import (
    ASPECT_RATIO_RANGE,
    CACHE_BUDGET_BYTES,
    DEFAULT_CROP_PCT,
    LABEL_FORMATS,
    LIGHTWEIGHT_AREA_RANGE,
    STANDARD_AREA_RANGE,
    check_choice,
)

INPUT_PIPELINES = ("auto", "tf", "grain")
_chosen = "auto"

__all__ = [
    "ASPECT_RATIO_RANGE",
    "CACHE_BUDGET_BYTES",
    "DEFAULT_CROP_PCT",
    "INPUT_PIPELINES",
    "LABEL_FORMATS",
    "LIGHTWEIGHT_AREA_RANGE",
    "STANDARD_AREA_RANGE",
    "STYLES",
    "SUPPORTED_DATASETS",
    "DatasetInfo",
    "DatasetUnavailableError",
    "ScalesDemo",
    "dataset_info",
    "input_pipeline",
    "make_dataset",
    "render_example",
    "set_input_pipeline",
]


def set_input_pipeline(name):
    """Chooses the pipeline of `make_dataset` and `dataset_info` in this process.

    Args:
        name: "tf", "grain" or "auto" (tf on Keras' tensorflow backend, grain otherwise).

    Example:
        >>> set_input_pipeline("grain")
    """
    global _chosen
    check_choice("input_pipeline", name, INPUT_PIPELINES)
    _chosen = name


def input_pipeline():
    """The pipeline in use, "tf" or "grain" ("auto" resolved by Keras' backend)."""
    if _chosen != "auto":
        return _chosen
    import keras

    return "tf" if keras.backend.backend() == "tensorflow" else "grain"


def make_dataset(name, split, batch_size, image_size=None, training=None, **options):
    """The batched, normalised pipeline of one dataset split, on the chosen pipeline.

    See `training.data.pipelines.make_dataset` (tf.data: a `tf.data.Dataset`)
    and `training.data.grain_pipeline.make_dataset` (grain: a `GrainBatches` of
    NumPy batches) for the arguments, which are the same.

    Example:
        >>> demo = make_dataset("scales_demo", "train", 64, seed=0)
    """
    if input_pipeline() == "grain":
        from training.data.grain_pipeline import make_dataset as make
    else:
        from training.data.pipelines import make_dataset as make
    return make(name, split, batch_size, image_size, training, **options)


def dataset_info(name, data_dir=None, manual_dir=None, download=True, validation_fraction=0.1):
    """Describes a dataset: classes, splits and sizes, default style and image size.

    On the grain pipeline the embedded `scales_demo` and image folders are
    described without TensorFlow; see `training.data.catalog.dataset_info`.

    Example:
        >>> dataset_info("scales_demo").num_classes
        8
    """
    if input_pipeline() == "grain":
        from training.data.grain_pipeline import dataset_info as describe
    else:
        from training.data.catalog import dataset_info as describe
    return describe(name, data_dir, manual_dir, download, validation_fraction)


def __getattr__(name):
    if name == "ScalesDemo":  # the TFDS builder: imports TFDS
        from training.data.scales import ScalesDemo

        return ScalesDemo
    raise AttributeError(f"module 'training.data' has no attribute {name!r}")


# The scales_demo TFDS builder is registered here when TensorFlow is loaded already (Keras'
# tensorflow backend, or a program that imported TFDS): defining it imports TensorFlow, which a
# grain run does not need. The tf.data pipeline registers it too, on first use.
if "tensorflow" in sys.modules or "tensorflow_datasets" in sys.modules:
    from training.data import scales as _scales  # noqa: F401
