"""The stages of the input pipeline: `read_source` makes a `tf.data.Dataset`, each other stage maps one.

    read_source -> decode_and_crop -> cache_and_shuffle -> augment -> [rand_augment]
      -> batch_examples -> [mix] -> normalize_and_prefetch

`training.data.make_dataset` is these stages in this order; a pipeline of your
own can take any of them, in the same order, on any dataset of `(image, label)`
pairs: images encoded (a string) or uint8 `(height, width, 3)`, labels int32.

    seeds = derive_seeds(0)
    source = read_source("scales_demo", "train", shuffle_files=True, seed=seeds.file)
    ds = decode_and_crop(source.dataset, 64)
    ds = cache_and_shuffle(ds, cache=True, shuffle_buffer=source.num_examples, seed=seeds.shuffle)
    ds = augment(ds, 64, "flip", seeds.element)
    ds = batch_examples(ds, 32, num_classes=source.num_classes, label_format="one_hot", drop_remainder=True)
    ds = mix(ds, mixup_alpha=0.2, seeds=(seeds.mixup, seeds.cutmix, seeds.switch))
    ds = normalize_and_prefetch(ds)

Randomness is seeded per stage: per-image crops and flips draw from one
stateless seed per example (so a skipped example takes its seed with it), while
RandAugment, MixUp and CutMix are Keras layers holding a seed state of their own.
"""

import dataclasses
import os

import keras
import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds

from keras_sknet.utils.imagenet import IMAGENET_MEAN, IMAGENET_STD
from training.data import catalog
from training.data import folder as folder_lib
from training.data import preprocessing as pre
from training.data.options import (  # noqa: F401  (importable here, as before)
    CACHE_BUDGET_BYTES,
    LABEL_FORMATS,
    RAND_AUGMENT_DEFAULTS,
    Seeds,
    check_choice,
    derive_seeds,
)

AUTOTUNE = tf.data.AUTOTUNE


@dataclasses.dataclass(frozen=True)
class Source:
    """One split of a dataset as `(image, label)` pairs, before any decoding or augmentation.

    Attributes:
        dataset: `(image, label)` pairs in the split's order: encoded images
            (string) or uint8 `(height, width, 3)`, int32 labels.
        num_examples: examples in `dataset`.
        num_bytes: their size as stored (encoded files, or TFDS' record size).
        num_classes: the number of classes.
        style: the augmentation style ("imagenet", "cifar", "flip" or "none").
        image_size: the dataset's default output side.
        skip_undecodable: some files may not decode (a folder read with
            `validate_files=False, strict=False`): the stage that decodes drops them.
    """

    dataset: tf.data.Dataset
    num_examples: int
    num_bytes: int
    num_classes: int
    style: str
    image_size: int
    skip_undecodable: bool = False


def read_source(
    name,
    split,
    *,
    style=None,
    data_dir=None,
    manual_dir=None,
    download=True,
    input_context=None,
    shuffle_files=False,
    seed=None,
    strict=False,
    validate_files=True,
    validation_fraction=0.1,
):
    """Reads one split of a TFDS dataset or an image folder, this input pipeline's shard of it.

    Args:
        name: a dataset name as in `make_dataset` ("scales_demo", a TFDS name,
            or "folder" with the folder as `data_dir`).
        split: the split ("train", "validation", "test", TFDS slicing).
        style: the augmentation style; default per dataset. TFDS images stay
            encoded in the "imagenet" style (its crops decode only their window).
        data_dir, manual_dir, download: as in `make_dataset`.
        input_context: a `tf.distribute.InputContext`: read only this input
            pipeline's shard (equal slices by example; folders: every n-th file).
        shuffle_files: TFDS: read the files in a shuffled order.
        seed: TFDS: the seed of that order.
        strict, validate_files, validation_fraction: folders, as in `make_dataset`.

    Returns:
        A `Source`.

    Example:
        >>> source = read_source("folder", "train", data_dir="photos/")
        >>> source.num_classes, source.style
        (5, 'imagenet')
    """
    entry = catalog.resolve(name)
    if catalog.base_name(name) == "folder":
        if data_dir is None:
            raise ValueError(
                "name='folder' reads the image folder given as data_dir. Received: data_dir=None"
            )
        ds, num_examples, num_bytes, num_classes = _folder_source(
            data_dir, split, input_context, strict, validate_files, validation_fraction
        )
        skip_undecodable = not validate_files and not strict
    else:
        builder = catalog.load_builder(name, data_dir, manual_dir, download)
        entry = entry or catalog.generic_entry(builder)
        ds, num_examples, num_bytes, num_classes = _tfds_source(
            builder, split, input_context, (style or entry.style) == "imagenet", shuffle_files, seed
        )
        skip_undecodable = False
    return Source(
        ds, num_examples, num_bytes, num_classes, style or entry.style, entry.image_size, skip_undecodable
    )


def _tfds_source(builder, split, input_context, encoded, shuffle_files, seed):
    name = builder.info.full_name
    image_key, label_key = catalog.image_label_keys(builder)
    label_feature = builder.info.features[label_key]
    if not isinstance(label_feature, tfds.features.ClassLabel):
        raise ValueError(
            f"The label feature {label_key!r} of {name!r} is not a ClassLabel: {label_feature!r}"
        )
    try:
        split_info = builder.info.splits[split]
    except (KeyError, ValueError) as error:
        raise ValueError(
            f"Unknown split of {name!r}. Received: split={split!r}; available: {list(builder.info.splits)}"
        ) from error
    num_examples, num_bytes = split_info.num_examples, split_info.num_bytes
    if input_context is not None and input_context.num_input_pipelines > 1:
        # Equal contiguous slices by example, whatever the number of files.
        count = input_context.num_input_pipelines
        split = tfds.even_splits(split, n=count)[input_context.input_pipeline_id]
        num_examples = builder.info.splits[split].num_examples
        num_bytes = num_bytes // count
    read_config = tfds.ReadConfig(shuffle_seed=seed, try_autocache=False)
    decoders = {image_key: tfds.decode.SkipDecoding()} if encoded else None
    ds = builder.as_dataset(
        split=split, shuffle_files=shuffle_files, read_config=read_config, decoders=decoders
    )
    ds = ds.map(lambda example: (example[image_key], tf.cast(example[label_key], tf.int32)))
    return ds, num_examples, num_bytes, label_feature.num_classes


def _folder_source(root, split, input_context, strict, validate_files, validation_fraction):
    folder = folder_lib.list_image_folder(root, validation_fraction)
    paths, labels = folder_lib.folder_split_files(folder, split, strict=strict, validate=validate_files)
    if input_context is not None and input_context.num_input_pipelines > 1:
        step, first = input_context.num_input_pipelines, input_context.input_pipeline_id
        paths, labels = paths[first::step], labels[first::step]
        if not paths:
            raise ValueError(f"Input pipeline {first} of {step} gets no files of {root!r} (split {split!r})")
    num_bytes = sum(os.path.getsize(p) for p in paths)
    ds = tf.data.Dataset.from_tensor_slices((paths, labels.astype(np.int32)))
    ds = ds.map(lambda path, label: (tf.io.read_file(path), label), num_parallel_calls=AUTOTUNE)
    return ds, len(paths), num_bytes, len(folder.class_names)


def decode_and_crop(dataset, image_size, *, crop_pct=None, interpolation="bilinear", skip_undecodable=False):
    """Decodes each image to uint8 RGB `image_size` x `image_size`: the same every epoch.

    Args:
        dataset: `(image, label)` pairs, images encoded or uint8 `(height, width, channels)`.
        image_size: output side.
        crop_pct: None resizes the whole image (unless it already has the size);
            a fraction takes the centre square of that fraction of the shorter
            side (ImageNet evaluation), decoding only that window of a JPEG.
        interpolation: "bilinear", "bicubic", "area" or "nearest".
        skip_undecodable: drop the images that fail to decode (with a warning)
            instead of raising.

    Returns:
        A dataset of uint8 `(image_size, image_size, 3)` images and their labels.

    Example:
        >>> ds = decode_and_crop(source.dataset, 224, crop_pct=0.875)
    """

    def decode_fit(image, label):
        image = pre.decode_rgb(image) if image.dtype == tf.string else pre.to_rgb(image)
        return _fit(image, image_size, interpolation), label

    def center(image_bytes, label):
        image = pre.center_crop(image_bytes, image_size, crop_pct, interpolation)
        return _to_uint8(image), label

    dataset = dataset.map(decode_fit if crop_pct is None else center, num_parallel_calls=AUTOTUNE)
    return dataset.ignore_errors(log_warning=True) if skip_undecodable else dataset


def _fit(image, size, interpolation):
    """Resizes to size x size unless it already is; returns uint8."""
    shape = tf.shape(image)
    same = tf.logical_and(tf.equal(shape[0], size), tf.equal(shape[1], size))
    image = tf.cond(
        same,
        lambda: tf.cast(image, tf.float32),
        lambda: pre.resize(tf.cast(image, tf.float32), size, interpolation),
    )
    image = _to_uint8(image)
    image.set_shape([size, size, 3])
    return image


def _to_uint8(image):
    return tf.cast(tf.clip_by_value(tf.round(image), 0.0, 255.0), tf.uint8)


def cache_and_shuffle(
    dataset, *, cache=False, cached_bytes=None, shuffle_buffer=None, seed=None, repeat=False
):
    """Caches, shuffles (reshuffling each epoch) and repeats, each when asked.

    Args:
        dataset: any dataset.
        cache: False, True (in memory), a file path prefix (`Dataset.cache(path)`)
            or "auto": in memory when `cached_bytes` is at most `CACHE_BUDGET_BYTES`.
        cached_bytes: what the cache would hold, for `cache="auto"`.
        shuffle_buffer: None or 0: keep the order; else the shuffle buffer size.
        seed: the shuffle's seed (None: random).
        repeat: repeat forever, after shuffling (no partial batch between epochs).

    Returns:
        The dataset, cached, shuffled and repeated.

    Example:
        >>> ds = cache_and_shuffle(ds, cache=True, shuffle_buffer=10_000, seed=0)
    """
    if cache == "auto":
        if cached_bytes is None:
            raise ValueError("cache='auto' decides from the size of the cache: pass cached_bytes.")
        cache = cached_bytes <= CACHE_BUDGET_BYTES
    if isinstance(cache, str):
        dataset = dataset.cache(cache)
    elif cache is True:
        dataset = dataset.cache()
    if shuffle_buffer:
        dataset = dataset.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
    return dataset.repeat() if repeat else dataset


def augment(
    dataset,
    image_size,
    style,
    seed,
    *,
    area_range=pre.STANDARD_AREA_RANGE,
    aspect_ratio_range=pre.ASPECT_RATIO_RANGE,
    interpolation="bilinear",
    skip=0,
    skip_undecodable=False,
):
    """The per-image training augmentation of a style, each image with its own stateless seed.

    Styles: "imagenet" (Section 4.1: random-size crop of an encoded image,
    decoding only the window, resized to `image_size`, + horizontal flip),
    "cifar" (pad 4 + random crop + flip), "flip" (horizontal flip) or "none".
    The seeds are a stream of their own zipped to the examples, so that an
    example's crop does not depend on the other examples, nor on parallelism.

    Args:
        dataset: `(image, label)` pairs: encoded images for "imagenet", uint8
            `(image_size, image_size, 3)` images (see `decode_and_crop`) otherwise.
        image_size: output side.
        style: "imagenet", "cifar", "flip" or "none".
        seed: the int seed of the per-example seeds (None: random); a new
            epoch draws new ones.
        area_range: fraction of the image area of the random-size crop ("imagenet").
        aspect_ratio_range: width / height range of that crop.
        interpolation: resize method of that crop.
        skip: leave out this many first examples, before any work on them
            (their seeds go with them: the examples after are augmented as they would be).
        skip_undecodable: "imagenet": drop the images that fail to decode.

    Returns:
        A dataset of uint8 `(image_size, image_size, 3)` images and their labels.

    Example:
        >>> ds = augment(ds, 224, "imagenet", seed=0, area_range=LIGHTWEIGHT_AREA_RANGE)
    """
    check_choice("style", style, catalog.STYLES)

    def augment_one(example, element_seed):
        image, label = example
        if style == "imagenet":
            image = pre.inception_crop(
                image, image_size, element_seed, area_range, aspect_ratio_range, interpolation
            )
            image = _to_uint8(image)
        elif style == "cifar":
            image = pre.pad_and_crop(image, element_seed)
        elif style == "flip":
            image = pre.random_flip(image, element_seed)
        image.set_shape([image_size, image_size, 3])
        return image, label

    seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).batch(2)
    dataset = tf.data.Dataset.zip((dataset, seeds))
    if skip:
        dataset = dataset.skip(skip)
    dataset = dataset.map(augment_one, num_parallel_calls=AUTOTUNE)
    if skip_undecodable and style == "imagenet":
        dataset = dataset.ignore_errors(log_warning=True)
    return dataset


def rand_augment(dataset, options=True, seed=None, *, deterministic=True):
    """Keras' `RandAugment` on each uint8 image (training only).

    Args:
        dataset: `(image, label)` pairs with uint8 images.
        options: True (`RandAugment(num_ops=2, factor=0.5)`) or a dict of
            `keras.layers.RandAugment` arguments (num_ops, factor, interpolation).
        seed: the layer's seed (None: random).
        deterministic: the layer draws from one seed state, so the same seed
            gives the same images only one image at a time; False runs in parallel.

    Returns:
        The dataset with augmented uint8 images.

    Example:
        >>> ds = rand_augment(ds, {"num_ops": 2, "factor": 0.8}, seed=0)
    """
    if options is True:
        kwargs = dict(RAND_AUGMENT_DEFAULTS)
    elif isinstance(options, dict):
        kwargs = {**RAND_AUGMENT_DEFAULTS, **options}
    else:
        raise ValueError(
            "`rand_augment` must be None, True or a dict of keras.layers.RandAugment arguments "
            f"(num_ops, factor, interpolation). Received: rand_augment={options!r}"
        )
    if "value_range" in kwargs or "seed" in kwargs:
        raise ValueError(
            f"`rand_augment` sets value_range (0, 255) and the seed itself. Received: {options!r}"
        )
    layer = keras.layers.RandAugment(value_range=(0, 255), seed=seed, **kwargs)
    return dataset.map(
        lambda image, label: (_to_uint8(layer(image, training=True)), label),
        num_parallel_calls=None if deterministic else AUTOTUNE,
    )


def batch_examples(dataset, batch_size, *, num_classes=None, label_format="sparse", drop_remainder=False):
    """Batches `(image, label)` pairs, with int32 or one-hot labels.

    Args:
        dataset: `(image, label)` pairs, int32 labels.
        batch_size: examples per batch.
        num_classes: the number of classes, for one-hot labels.
        label_format: "sparse" (int32 `(batch,)`) or "one_hot" (float32
            `(batch, num_classes)`, what `mix` needs).
        drop_remainder: drop the last partial batch.

    Returns:
        A dataset of `(images, labels)` batches.

    Example:
        >>> ds = batch_examples(ds, 64, num_classes=10, label_format="one_hot")
    """
    check_choice("label_format", label_format, LABEL_FORMATS)
    dataset = dataset.batch(batch_size, drop_remainder=drop_remainder, num_parallel_calls=AUTOTUNE)
    if label_format == "sparse":
        return dataset
    if not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError(f"One-hot labels need `num_classes`. Received: num_classes={num_classes!r}")
    return dataset.map(
        lambda images, labels: (images, tf.one_hot(labels, num_classes, dtype=tf.float32)),
        num_parallel_calls=AUTOTUNE,
    )


def mix(dataset, mixup_alpha=0.0, cutmix_alpha=0.0, *, switch_prob=0.5, seeds=None):
    """Keras' `MixUp` and / or `CutMix` on each batch, mixing the one-hot labels too.

    Args:
        dataset: `(images, labels)` batches with one-hot labels (`batch_examples`).
        mixup_alpha: > 0 enables `MixUp(alpha)`.
        cutmix_alpha: in (0, 1] enables `CutMix` with Beta(alpha, alpha).
            With both, each batch uses one of the two, as timm does.
        switch_prob: the probability of CutMix when both are enabled.
        seeds: (mixup, cutmix, switch) int seeds (None: random).

    Returns:
        A dataset of float32 images and float32 soft labels (the two images'
        one-hot vectors mixed in the images' proportions).

    Example:
        >>> ds = mix(ds, mixup_alpha=0.8, cutmix_alpha=1.0, seeds=(1, 2, 3))
    """
    if not (mixup_alpha > 0 or cutmix_alpha > 0):
        raise ValueError(
            f"`mix` needs mixup_alpha > 0 or cutmix_alpha > 0. Received: mixup_alpha={mixup_alpha!r}, "
            f"cutmix_alpha={cutmix_alpha!r}"
        )
    mixup_seed, cutmix_seed, switch_seed = seeds or (None, None, None)
    mixup = keras.layers.MixUp(alpha=mixup_alpha, seed=mixup_seed) if mixup_alpha > 0 else None
    cutmix = (
        keras.layers.CutMix(factor=(cutmix_alpha, cutmix_alpha), seed=cutmix_seed)
        if cutmix_alpha > 0
        else None
    )

    def apply(layer, images, labels):
        out = layer({"images": images, "labels": labels}, training=True)
        return tf.cast(out["images"], tf.float32), tf.cast(out["labels"], tf.float32)

    def mix_batch(batch, seed):
        images, labels = tf.cast(batch[0], tf.float32), batch[1]
        if mixup is not None and cutmix is not None:
            use_cutmix = tf.random.stateless_uniform([], seed) < switch_prob
            return tf.cond(
                use_cutmix, lambda: apply(cutmix, images, labels), lambda: apply(mixup, images, labels)
            )
        return apply(mixup if mixup is not None else cutmix, images, labels)

    batch_seeds = tf.data.Dataset.random(seed=switch_seed, rerandomize_each_iteration=True).batch(2)
    return tf.data.Dataset.zip((dataset, batch_seeds)).map(mix_batch)


def _normalize(images):
    """`keras_sknet.applications.preprocess_input` in TensorFlow ops, the same constants and order.

    The pipeline is a TensorFlow graph whatever Keras' backend is: `keras.ops` would
    build JAX or PyTorch arrays there, which tf.data cannot trace.
    """
    mean = np.array(IMAGENET_MEAN, dtype="float32") * 255.0
    std = np.array(IMAGENET_STD, dtype="float32") * 255.0
    return (tf.cast(images, tf.float32) - mean) / std


def normalize_and_prefetch(dataset):
    """Applies `preprocess_input` to the images (float32, what the models take), then prefetches.

    Args:
        dataset: `(images, labels)` batches, images in [0, 255].

    Returns:
        The dataset the model reads.

    Example:
        >>> model.fit(normalize_and_prefetch(ds))
    """
    dataset = dataset.map(lambda images, labels: (_normalize(images), labels), num_parallel_calls=AUTOTUNE)
    return dataset.prefetch(AUTOTUNE)
