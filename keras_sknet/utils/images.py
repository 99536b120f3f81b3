"""Images (and their labels) from any of our input sources, ready for a model.

Used to calibrate and verify exports (`keras_sknet.export`) and to feed the
attention analysis (`keras_sknet.analysis`). Every source gives RGB images in
[0, 255]; they are resized to the model's input size and passed through
`preprocess` (by default `keras_sknet.applications.preprocess_input`: ImageNet
mean/std), so that what the caller sees is what the model sees.

Sources:
- a NumPy array `(N, H, W, 3)` (or one image `(H, W, 3)`);
- a `tf.data.Dataset`, or any iterable / generator, of images, batches of
  images, `(images, labels)` pairs or dicts with an `"image"` entry;
- a `.npy` / `.npz` file (an `.npz` holds its images under `"images"` or
  `"x"`, or as its only array, and may hold labels under `"labels"` or `"y"`);
- a folder of images (`.png`, `.jpg`, `.jpeg`, `.bmp`, `.gif`), flat or one
  sub-folder per class, read in a fixed shuffled order so that the first
  images are not all of one class;
- a prepared TFDS dataset: its name (read with `tfds.builder(name,
  data_dir=...)`, which needs no builder code once the dataset is prepared)
  or the path of its version folder (the one holding `dataset_info.json`).
"""

import os

import numpy as np

from keras_sknet.utils.backend import import_tensorflow
from keras_sknet.utils.imagenet import preprocess_input

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif")
NPZ_KEYS = ("images", "x")
NPZ_LABEL_KEYS = ("labels", "y")


def _default_preprocess(images):
    return preprocess_input(images)


DEFAULT_PREPROCESS = "imagenet"


def _resolve_preprocess(preprocess):
    if isinstance(preprocess, str) and preprocess == DEFAULT_PREPROCESS:
        return _default_preprocess
    if preprocess is None or callable(preprocess):
        return preprocess
    raise ValueError(
        "`preprocess` must be 'imagenet' (keras_sknet.applications.preprocess_input), a callable "
        f"or None (the data is already model input). Received: preprocess={preprocess!r}"
    )


def _describe(source):
    if isinstance(source, (str, os.PathLike)):
        return repr(os.fspath(source))
    if isinstance(source, np.ndarray):
        return f"array of shape {source.shape}"
    return f"object of type {type(source).__name__}"


def _image_and_label(element):
    """(image, label or None) of one dataset element: an image, (image, label) or a dict."""
    if isinstance(element, dict):
        if "image" not in element:
            raise ValueError(
                f"Dataset elements that are dicts need an 'image' entry. Received keys: {sorted(element)}"
            )
        return element["image"], element.get("label")
    if isinstance(element, (tuple, list)):
        if not element:
            raise ValueError("Received an empty dataset element; expected images or (images, labels).")
        return element[0], element[1] if len(element) > 1 else None
    return element, None


def _iter_arrays(iterable):
    """Yields `(image (H, W, C), label or None)` from images or batches of images."""
    for element in iterable:
        images, labels = _image_and_label(element)
        images = np.asarray(images)
        if images.ndim == 3:
            yield images, None if labels is None else int(np.asarray(labels))
        elif images.ndim == 4:
            labels = [None] * len(images) if labels is None else np.asarray(labels).reshape(-1)
            yield from (
                (image, None if label is None else int(label)) for image, label in zip(images, labels)
            )
        else:
            raise ValueError(
                "Expected images of shape (H, W, C) or batches (N, H, W, C). "
                f"Received an element of shape {images.shape}"
            )


def _iter_image_folder(folder):
    """Yields `(image, label)`: the label is the index of the class sub-folder (None for flat folders)."""
    tf = import_tensorflow("Reading image files (tf.io.decode_image)")

    paths = []
    for root, dirs, files in os.walk(folder):
        dirs.sort()
        paths += [os.path.join(root, f) for f in sorted(files) if f.lower().endswith(IMAGE_EXTENSIONS)]
    if not paths:
        raise ValueError(
            f"The folder {folder!r} holds no images ({', '.join(IMAGE_EXTENSIONS)} files, flat or in "
            "class sub-folders) and is not a prepared TFDS dataset (no dataset_info.json)."
        )
    classes = sorted({os.path.relpath(os.path.dirname(p), folder) for p in paths} - {"."})
    # A fixed shuffle: class folders come in order, and calibration should see every class.
    order = np.random.default_rng(0).permutation(len(paths))
    for i in order:
        data = tf.io.read_file(paths[i])
        try:
            image = tf.io.decode_image(data, channels=3, expand_animations=False)
        except tf.errors.InvalidArgumentError as error:
            raise ValueError(f"Could not decode the image {paths[i]!r}: {error.message}") from error
        parent = os.path.relpath(os.path.dirname(paths[i]), folder)
        yield image.numpy(), classes.index(parent) if parent in classes else None


def _import_tfds():
    try:
        import tensorflow_datasets as tfds
    except ImportError as error:
        raise ImportError(
            "Reading a TFDS dataset needs tensorflow-datasets: pip install 'keras-sknet[export]'"
        ) from error
    return tfds


def _iter_tfds(builder, split):
    splits = list(builder.info.splits)
    if split is None:
        split = "train" if "train" in splits else (splits[0] if splits else None)
    if split is None or split.split("[")[0] not in splits:
        raise ValueError(
            f"The TFDS dataset {builder.info.full_name!r} has no split {split!r}. Available: {splits}"
        )
    dataset = builder.as_dataset(split=split, shuffle_files=False)
    return _iter_arrays(dataset.as_numpy_iterator())


def _tfds_builder(name, data_dir):
    tfds = _import_tfds()
    try:
        return tfds.builder(name, data_dir=data_dir)
    except Exception as error:  # TFDS raises its own DatasetNotFoundError and friends.
        where = f" in data_dir={data_dir!r}" if data_dir else " in the default TFDS data directory"
        raise ValueError(
            f"Could not read the representative data {name!r}: it is not an existing file or folder, "
            f"and not a prepared TFDS dataset{where} ({type(error).__name__}: {error}). Accepted: "
            "a .npy/.npz file, a folder of images, a prepared TFDS dataset folder, or a TFDS name."
        ) from error


def _iter_source(source, split, data_dir):
    if isinstance(source, np.ndarray):
        if source.ndim == 3:
            source = source[None]
        if source.ndim != 4:
            raise ValueError(
                f"Expected images of shape (N, H, W, C). Received an array of shape {source.shape}"
            )
        return ((image, None) for image in source)
    if isinstance(source, (str, os.PathLike)):
        path = os.fspath(source)
        if os.path.isfile(path):
            return _iter_array_file(path)
        if os.path.isdir(path):
            if os.path.isfile(os.path.join(path, "dataset_info.json")):
                return _iter_tfds(_import_tfds().builder_from_directory(path), split)
            return _iter_image_folder(path)
        return _iter_tfds(_tfds_builder(path, data_dir), split)
    if isinstance(source, (bytes, dict)) or not hasattr(source, "__iter__"):
        raise ValueError(
            "Representative data must be a NumPy array, a tf.data.Dataset, an iterable of images, "
            f"a .npy/.npz file, a folder of images or a TFDS dataset. Received: {_describe(source)}"
        )
    return _iter_arrays(source)


def _iter_array_file(path):
    if path.endswith(".npy"):
        return _iter_source(np.load(path, allow_pickle=False), None, None)
    if path.endswith(".npz"):
        with np.load(path, allow_pickle=False) as arrays:
            keys = list(arrays.keys())
            key = next((k for k in NPZ_KEYS if k in keys), keys[0] if len(keys) == 1 else None)
            if key is None:
                raise ValueError(
                    f"The .npz file {path!r} must hold its images under one of {NPZ_KEYS} or as its only "
                    f"array. Received arrays: {keys}"
                )
            images = arrays[key]
            label_key = next((k for k in NPZ_LABEL_KEYS if k in keys), None)
            labels = arrays[label_key] if label_key else None
        if labels is None:
            return _iter_source(images, None, None)
        return _iter_arrays([(images, labels)])
    raise ValueError(
        f"Representative data files must be .npy or .npz arrays (or a folder of images). Received: {path!r}"
    )


def load_images(
    source,
    image_size,
    count,
    *,
    preprocess=DEFAULT_PREPROCESS,
    split=None,
    data_dir=None,
    return_labels=False,
):
    """Reads up to `count` images from `source`, resized and preprocessed for a model.

    Args:
        source: any of the sources listed in this module's docstring.
        image_size: `(height, width)` of the model's input.
        count: how many images to read at most (the first ones of the source).
        preprocess: `"imagenet"` (default: `preprocess_input`, RGB [0, 255] ->
            ImageNet mean/std), a callable on a float32 batch, or None when
            the data is already model input.
        split: TFDS split to read; default `"train"` if present, else the
            first split.
        data_dir: TFDS data directory for a dataset given by name.
        return_labels: also return the images' integer labels (TFDS `label`,
            class sub-folders, `(image, label)` elements, an `.npz` `labels`
            array), or None where the source has none.

    Returns:
        A float32 array `(n, height, width, channels)`, `n <= count`; with
        `return_labels`, `(images, labels)`.

    Example:
        >>> load_images("saved_models/calibration_images", (224, 224), 100).shape
        (100, 224, 224, 3)
    """
    preprocess = _resolve_preprocess(preprocess)
    height, width = image_size
    images, labels = [], []
    for image, label in _iter_source(source, split, data_dir) if count > 0 else ():
        labels.append(label)
        image = np.asarray(image)
        if image.ndim != 3:
            raise ValueError(f"Expected images of shape (H, W, C). Received an image of shape {image.shape}")
        if image.shape[:2] != (height, width):
            tf = import_tensorflow("Resizing images to the model's input size (tf.image.resize)")
            image = tf.image.resize(image.astype("float32"), (height, width), antialias=True).numpy()
        images.append(image.astype("float32"))
        if len(images) == count:  # stop before reading (or decoding) one more
            break
    if not images:
        batch = np.zeros((0, height, width, 3), "float32")
    else:
        batch = np.stack(images)
        if preprocess is not None:
            batch = np.asarray(preprocess(batch), dtype="float32")
    if not return_labels:
        return batch
    known = labels and all(label is not None for label in labels)
    return batch, np.asarray(labels, "int64") if known else None
