"""ImageNet input preprocessing and prediction decoding.

The models carry no normalisation layer: feed them `preprocess_input(images)`,
RGB in [0, 255] scaled to [0, 1] and standardised with the ImageNet mean and
standard deviation (the statistics timm's and torchvision's checkpoints use).
`preprocess_input` and the statistics are defined in `keras_sknet.utils.imagenet`
(image loading and the weights' evaluation transform use them too).
"""

import json
import os

import keras
import numpy as np

from keras_sknet.utils.imagenet import IMAGENET_MEAN, IMAGENET_STD, preprocess_input
from keras_sknet.utils.validation import check_positive_int

__all__ = [
    "CLASS_INDEX_MD5",
    "CLASS_INDEX_URL",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "NUM_CLASSES",
    "decode_predictions",
    "load_class_index",
    "preprocess_input",
]

# The class index keras.applications uses: {"0": ["n01440764", "tench"], ...}.
CLASS_INDEX_URL = "https://storage.googleapis.com/download.tensorflow.org/data/imagenet_class_index.json"
CLASS_INDEX_MD5 = "c2c37ea517e94d9795004a39431a14cb"
NUM_CLASSES = 1000


def load_class_index(path=None, origin=CLASS_INDEX_URL, file_hash=CLASS_INDEX_MD5, cache_dir=None):
    """Loads the ImageNet class index: a list of 1000 `(wordnet_id, name)` pairs.

    Args:
        path: a local JSON file in the keras.applications format
            (`{"0": ["n01440764", "tench"], ...}`); if None, the file is
            fetched once from `origin` into the Keras cache.
        origin: URL of the class index (also `file://` URLs).
        file_hash: its expected md5 or sha256.
        cache_dir: the Keras cache directory (default `~/.keras`).

    Returns:
        A list of 1000 `(wordnet_id, class_name)` tuples, index = class id.
    """
    if path is None:
        if cache_dir is not None:
            # Keras falls back to /tmp/.keras when the directory does not exist yet.
            os.makedirs(cache_dir, exist_ok=True)
        try:
            path = keras.utils.get_file(
                "imagenet_class_index.json",
                origin,
                cache_subdir="models",
                file_hash=file_hash,
                cache_dir=cache_dir,
            )
        except Exception as error:
            raise ConnectionError(
                f"Could not fetch the ImageNet class index from {origin} ({error}). "
                "Without network access, pass a local copy: "
                "decode_predictions(preds, class_index_path='imagenet_class_index.json')."
            ) from error
    try:
        with open(path) as f:
            index = json.load(f)
        classes = [tuple(index[str(i)]) for i in range(NUM_CLASSES)]
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise ValueError(
            f"{str(path)!r} is not an ImageNet class index (a JSON object mapping "
            f"'0'..'999' to [wordnet_id, name]): {error}"
        ) from error
    return classes


def decode_predictions(preds, top=5, class_index_path=None):
    """Decodes ImageNet predictions into `(wordnet_id, class_name, score)` tuples.

    Args:
        preds: scores of shape `(batch, 1000)`.
        top: how many top classes to return per image.
        class_index_path: optional local class index JSON (see
            `load_class_index`); by default it is fetched once and cached.

    Returns:
        One list per image of `top` tuples `(wordnet_id, name, score)`, best first.

    Example:
        >>> decode_predictions(model.predict(preprocess_input(images)), top=3)
        [[('n02123045', 'tabby', 0.61), ...], ...]
    """
    preds = keras.ops.convert_to_numpy(preds)
    if preds.ndim != 2 or preds.shape[1] != NUM_CLASSES:
        raise ValueError(
            "decode_predictions expects a batch of ImageNet predictions, shape "
            f"(samples, {NUM_CLASSES}). Received: preds.shape={preds.shape}"
        )
    top = check_positive_int("top", top)
    classes = load_class_index(class_index_path)
    results = []
    for scores in preds:
        best = np.argsort(scores)[::-1][:top]
        results.append([(*classes[i], float(scores[i])) for i in best])
    return results
