"""Input pipelines: `tf.data` over TensorFlow Datasets and image folders, and `scales_demo`.

    from training.data import make_dataset, dataset_info
    info = dataset_info("scales_demo")               # classes, split sizes, default size and style
    train = make_dataset("scales_demo", "train", batch_size=64, seed=0)
    test = make_dataset("scales_demo", "test", batch_size=256)

Importing this package registers the `scales_demo` TFDS builder, so that
`tfds.load("scales_demo", data_dir=...)` works too.
"""

from training.data.catalog import (
    STYLES,
    SUPPORTED_DATASETS,
    DatasetInfo,
    DatasetUnavailableError,
    dataset_info,
)
from training.data.pipelines import CACHE_BUDGET_BYTES, LABEL_FORMATS, make_dataset
from training.data.preprocessing import (
    ASPECT_RATIO_RANGE,
    DEFAULT_CROP_PCT,
    LIGHTWEIGHT_AREA_RANGE,
    STANDARD_AREA_RANGE,
)
from training.data.scales import ScalesDemo, render_example

__all__ = [
    "ASPECT_RATIO_RANGE",
    "CACHE_BUDGET_BYTES",
    "DEFAULT_CROP_PCT",
    "LABEL_FORMATS",
    "LIGHTWEIGHT_AREA_RANGE",
    "STANDARD_AREA_RANGE",
    "STYLES",
    "SUPPORTED_DATASETS",
    "DatasetInfo",
    "DatasetUnavailableError",
    "ScalesDemo",
    "dataset_info",
    "make_dataset",
    "render_example",
]
