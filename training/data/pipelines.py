"""`make_dataset`: the `tf.data` input pipeline of every dataset the trainer reads.

    source (TFDS or image folder) -> shard per input pipeline -> [cache] -> shuffle
      -> decode + augment per image (parallel, stateless seeds) -> [RandAugment]
      -> batch -> [MixUp / CutMix] -> preprocess_input -> prefetch

Elements are `(images, labels)`: images float32 `(batch, size, size, 3)`
normalised by `keras_sknet.applications.preprocess_input`; labels int32
`(batch,)` (`label_format="sparse"`) or float32 one-hot `(batch, classes)`
(`label_format="one_hot"`, which MixUp and CutMix require: their labels are
soft, the two images' one-hot vectors mixed in the images' proportions).
"""

import logging
import os

import keras
import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds

from keras_sknet.utils.imagenet import IMAGENET_MEAN, IMAGENET_STD
from training.data import catalog
from training.data import folder as folder_lib
from training.data import preprocessing as pre

logger = logging.getLogger(__name__)

AUTOTUNE = tf.data.AUTOTUNE
LABEL_FORMATS = ("sparse", "one_hot")
# cache="auto" keeps a split in memory when it takes at most this much there (decoded images, or
# the encoded files for the ImageNet style's training split).
CACHE_BUDGET_BYTES = 2 * 1024**3
# Shuffle buffers: whole small datasets; 10,000 encoded images for the ImageNet style (ImageNet's
# JPEGs average 110 KB, so about 1.1 GB), as TensorFlow's official ImageNet pipeline does.
MAX_SHUFFLE_BUFFER = 50_000
ENCODED_SHUFFLE_BUFFER = 10_000
RAND_AUGMENT_DEFAULTS = {"num_ops": 2, "factor": 0.5}


def _check_choice(name, value, choices):
    if value not in choices:
        raise ValueError(f"`{name}` must be one of {choices}. Received: {name}={value!r}")


def _derive_seeds(seed, pipeline_id, count):
    """Independent int31 seeds for the pipeline's random streams, different per input pipeline."""
    state = np.random.SeedSequence([int(seed), int(pipeline_id)]).generate_state(count)
    return [int(s) % (2**31 - 1) for s in state]


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


def _normalize(images):
    """`keras_sknet.applications.preprocess_input` in TensorFlow ops, the same constants and order.

    The pipeline is a TensorFlow graph whatever Keras' backend is: `keras.ops` would
    build JAX or PyTorch arrays there, which tf.data cannot trace.
    """
    mean = np.array(IMAGENET_MEAN, dtype="float32") * 255.0
    std = np.array(IMAGENET_STD, dtype="float32") * 255.0
    return (tf.cast(images, tf.float32) - mean) / std


def _rand_augment_layer(rand_augment, seed):
    if rand_augment is True:
        kwargs = dict(RAND_AUGMENT_DEFAULTS)
    elif isinstance(rand_augment, dict):
        kwargs = {**RAND_AUGMENT_DEFAULTS, **rand_augment}
    else:
        raise ValueError(
            "`rand_augment` must be None, True or a dict of keras.layers.RandAugment arguments "
            f"(num_ops, factor, interpolation). Received: rand_augment={rand_augment!r}"
        )
    if "value_range" in kwargs or "seed" in kwargs:
        raise ValueError(
            f"`rand_augment` sets value_range (0, 255) and the seed itself. Received: {rand_augment!r}"
        )
    return keras.layers.RandAugment(value_range=(0, 255), seed=seed, **kwargs)


def _mixer(mixup_alpha, cutmix_alpha, switch_prob, seeds):
    """A batch function mixing images and one-hot labels with Keras' MixUp and/or CutMix."""
    mixup = keras.layers.MixUp(alpha=mixup_alpha, seed=seeds[0]) if mixup_alpha > 0 else None
    cutmix = (
        keras.layers.CutMix(factor=(cutmix_alpha, cutmix_alpha), seed=seeds[1]) if cutmix_alpha > 0 else None
    )

    def apply(layer, images, labels):
        out = layer({"images": images, "labels": labels}, training=True)
        return tf.cast(out["images"], tf.float32), tf.cast(out["labels"], tf.float32)

    def mix(images, labels, seed):
        images = tf.cast(images, tf.float32)
        if mixup is not None and cutmix is not None:
            # One of the two per batch, as timm does (switch_prob = probability of CutMix).
            use_cutmix = tf.random.stateless_uniform([], seed) < switch_prob
            return tf.cond(
                use_cutmix, lambda: apply(cutmix, images, labels), lambda: apply(mixup, images, labels)
            )
        return apply(mixup if mixup is not None else cutmix, images, labels)

    return mix


def make_dataset(
    name,
    split,
    batch_size,
    image_size=None,
    training=None,
    *,
    data_dir=None,
    manual_dir=None,
    download=True,
    style=None,
    area_range=pre.STANDARD_AREA_RANGE,
    aspect_ratio_range=pre.ASPECT_RATIO_RANGE,
    crop_pct=pre.DEFAULT_CROP_PCT,
    interpolation="bilinear",
    rand_augment=None,
    mixup_alpha=0.0,
    cutmix_alpha=0.0,
    mix_switch_prob=0.5,
    label_format="sparse",
    cache="auto",
    shuffle_buffer=None,
    repeat=False,
    skip_batches=0,
    drop_remainder=None,
    input_context=None,
    seed=None,
    strict=False,
    validate_files=True,
    validation_fraction=0.1,
):
    """Builds the batched, normalised `tf.data` pipeline of one dataset split.

    Section 4.1 (ImageNet: random-size crop + flip for training, centre crop
    at 224 or 320 for evaluation; "slightly less aggressive scale
    augmentation" for the lightweight models: `area_range=LIGHTWEIGHT_AREA_RANGE`),
    Section 4.2 (CIFAR: pad 4 + random crop + flip), Section 4.4 (the
    `scales_demo` dataset).

    Args:
        name: one of `SUPPORTED_DATASETS` ("imagenet2012", "imagenette",
            "cifar10", "cifar100", "scales_demo", "folder"), a TFDS name with
            config / version ("imagenette/320px-v2"), or any other TFDS image
            classification dataset.
        split: a split ("train", "validation", "test", or TFDS slicing such
            as "train[:10%]"); for folders see `training.data.folder`.
        batch_size: the global batch size; with `input_context`, each input
            pipeline yields `input_context.get_per_replica_batch_size(batch_size)`.
        image_size: output side; default 224 (ImageNet style), 32 (CIFAR), 64
            (`scales_demo`). Evaluate at 320 for Table 2's 320x320 column.
        training: augment and shuffle; default: the split name starts with "train".
        data_dir: TFDS data directory; for name="folder", the image folder.
        manual_dir: folder of manually downloaded archives (imagenet2012:
            ILSVRC2012_img_train.tar and ILSVRC2012_img_val.tar).
        download: prepare a missing TFDS dataset (download, or generate
            `scales_demo`); False raises `DatasetUnavailableError` at once
            instead (without network, TFDS retries a download for about 3
            minutes before giving up).
        style: "imagenet", "cifar", "flip" or "none"; default per dataset.
        area_range: fraction of the image area of the random-size crop
            (ImageNet style, training).
        aspect_ratio_range: width / height range of that crop.
        crop_pct: evaluation centre crop, as a fraction of the shorter side.
        interpolation: "bilinear", "bicubic", "area" or "nearest".
        rand_augment: None, True (Keras' `RandAugment(num_ops=2, factor=0.5)`)
            or a dict of `keras.layers.RandAugment` arguments. Per image, training only.
        mixup_alpha: > 0 enables Keras' `MixUp(alpha)` per batch (training only).
        cutmix_alpha: > 0 enables Keras' `CutMix` with Beta(alpha, alpha)
            (training only). With both, each batch uses one of the two.
        mix_switch_prob: probability of CutMix when both are enabled.
        label_format: "sparse" (int32 class ids) or "one_hot" (float32
            `(batch, num_classes)`; required by MixUp/CutMix, whose labels
            are mixed, soft one-hot vectors).
        cache: "auto" (cache in memory when it fits `CACHE_BUDGET_BYTES`),
            True (memory), False, or a file path prefix (`Dataset.cache(path)`).
        shuffle_buffer: default: the whole split up to 50,000 decoded images,
            10,000 encoded ones (ImageNet style).
        repeat: repeat forever (before batching: no partial batch between epochs).
        skip_batches: leave out the first N batches, so that the pipeline starts
            with the batches that would have followed them (a run resumed part-way
            through an epoch). Training examples are dropped before they are cropped
            and flipped (and, in the ImageNet style, decoded): every crop and flip
            is drawn from a per-example seed. With RandAugment, MixUp or CutMix
            (Keras layers that draw from a seed state of their own) the skipped
            batches are made and then dropped, so that the batches after them are
            still the same.
        drop_remainder: drop the last partial batch; default `training`.
        input_context: a `tf.distribute.InputContext`: this pipeline reads
            only its shard of the split and batches per replica.
        seed: an int makes the pipeline deterministic: the same seed gives the
            same batches, in the same order, every epoch sequence (element
            order is preserved in parallel maps; RandAugment, whose Keras layer
            keeps its seed state, then runs one image at a time). None: random
            and faster. Evaluation pipelines always keep the split's order.
        strict: folders: raise on undecodable files instead of skipping them.
        validate_files: folders: decode every file once up front to find bad
            ones (counted in the log); False skips them while reading instead.
        validation_fraction: folders without split folders: the share of
            files in the "validation" split.

    Returns:
        A `tf.data.Dataset` of `(images, labels)`; images float32
        `(batch, image_size, image_size, 3)` after `preprocess_input`.

    Raises:
        ValueError: unknown dataset (the message lists the supported ones),
            split or option values.
        DatasetUnavailableError: a TFDS dataset that is not prepared and
            cannot be downloaded (the message explains `manual_dir` / `data_dir`).

    Example:
        >>> train = make_dataset("imagenet2012", "train", 256, training=True, data_dir="~/tensorflow_datasets",
        ...                      manual_dir="~/imagenet_tars", label_format="one_hot", mixup_alpha=0.2)
        >>> val320 = make_dataset("imagenet2012", "validation", 100, image_size=320, training=False)
        >>> demo = make_dataset("scales_demo", "train", 64, seed=0)
    """
    entry = catalog.resolve(name)
    if style is not None:
        _check_choice("style", style, catalog.STYLES)
    _check_choice("label_format", label_format, LABEL_FORMATS)
    _check_choice("interpolation", interpolation, pre.INTERPOLATIONS)
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"`batch_size` must be a positive int. Received: batch_size={batch_size!r}")
    if image_size is not None and (not isinstance(image_size, int) or image_size < 1):
        raise ValueError(f"`image_size` must be a positive int. Received: image_size={image_size!r}")
    if not 0.0 < crop_pct <= 1.0:
        raise ValueError(f"`crop_pct` must be in (0, 1]. Received: crop_pct={crop_pct!r}")
    for range_name, value in (("area_range", area_range), ("aspect_ratio_range", aspect_ratio_range)):
        if len(value) != 2 or not 0.0 < value[0] <= value[1]:
            raise ValueError(f"`{range_name}` must be (min, max) with 0 < min <= max. Received: {value!r}")
    if area_range[1] > 1.0:
        raise ValueError(f"`area_range` fractions must be at most 1. Received: area_range={area_range!r}")
    if mixup_alpha < 0 or cutmix_alpha < 0 or cutmix_alpha > 1:
        raise ValueError(
            f"`mixup_alpha` must be >= 0 and `cutmix_alpha` in [0, 1]. Received: mixup_alpha={mixup_alpha!r}, "
            f"cutmix_alpha={cutmix_alpha!r}"
        )
    training = split.startswith("train") if training is None else bool(training)
    mixing = training and (mixup_alpha > 0 or cutmix_alpha > 0)
    if mixing and label_format != "one_hot":
        raise ValueError(
            "MixUp and CutMix mix the labels of two images: pass label_format='one_hot' (labels become "
            f"float32 (batch, num_classes) soft labels). Received: label_format={label_format!r}"
        )
    if not isinstance(skip_batches, int) or skip_batches < 0:
        raise ValueError(f"`skip_batches` must be an int >= 0. Received: skip_batches={skip_batches!r}")
    # Where skipped training examples can be dropped before any work is done on them.
    skip_early = training and not rand_augment and not mixing
    if not (cache in ("auto", True, False) or isinstance(cache, str)):
        raise ValueError(f"`cache` must be 'auto', True, False or a file path. Received: cache={cache!r}")

    deterministic = seed is not None
    if seed is None:
        seed = int(np.random.default_rng().integers(2**31 - 1))
    pipeline_id = input_context.input_pipeline_id if input_context is not None else 0
    file_seed, shuffle_seed, element_seed, augment_seed, mixup_seed, cutmix_seed, switch_seed = _derive_seeds(
        seed, pipeline_id, 7
    )
    per_replica_batch = input_context.get_per_replica_batch_size(batch_size) if input_context else batch_size
    drop_remainder = training if drop_remainder is None else drop_remainder

    is_folder = catalog.base_name(name) == "folder"
    if is_folder:
        if data_dir is None:
            raise ValueError(
                "name='folder' reads the image folder given as data_dir. Received: data_dir=None"
            )
        style = style or entry.style
        ds, num_examples, num_bytes, num_classes = _folder_source(
            data_dir, split, input_context, strict, validate_files, validation_fraction
        )
    else:
        builder = catalog.load_builder(name, data_dir, manual_dir, download)
        entry = entry or catalog.generic_entry(builder)
        style = style or entry.style
        # The ImageNet style reads encoded images and decodes only the crop; the others decode first.
        ds, num_examples, num_bytes, num_classes = _tfds_source(
            builder, split, input_context, style == "imagenet", training, file_seed
        )
    image_size = image_size or entry.image_size
    encoded = style == "imagenet"

    # What to cache, and where: decoded images at their final size when the transform is not random
    # (evaluation) or random only after decoding (CIFAR / flip styles); the encoded files otherwise.
    def decode_fit(image, label):
        image = pre.decode_rgb(image) if image.dtype == tf.string else pre.to_rgb(image)
        return _fit(image, image_size, interpolation), label

    def center(image_bytes, label):
        image = pre.center_crop(image_bytes, image_size, crop_pct, interpolation)
        return _to_uint8(image), label

    if encoded and training:
        cached_bytes = num_bytes
    else:
        ds = ds.map(center if encoded else decode_fit, num_parallel_calls=AUTOTUNE)
        if is_folder and not validate_files and not strict:
            ds = ds.ignore_errors(log_warning=True)
        cached_bytes = num_examples * image_size * image_size * 3
    if isinstance(cache, str) and cache != "auto":
        ds = ds.cache(cache)
    elif cache is True or (cache == "auto" and cached_bytes <= CACHE_BUDGET_BYTES):
        ds = ds.cache()

    if training:
        buffer = shuffle_buffer or min(
            num_examples, ENCODED_SHUFFLE_BUFFER if encoded else MAX_SHUFFLE_BUFFER
        )
        ds = ds.shuffle(max(1, buffer), seed=shuffle_seed, reshuffle_each_iteration=True)
    if repeat:
        ds = ds.repeat()

    if training:
        seeds = tf.data.Dataset.random(seed=element_seed, rerandomize_each_iteration=True).batch(2)
        ds = tf.data.Dataset.zip((ds, seeds))
        if skip_batches and skip_early:  # the examples go with their seeds
            ds = ds.skip(skip_batches * per_replica_batch)

        def augment(example, element_seed):
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

        ds = ds.map(augment, num_parallel_calls=AUTOTUNE)
        if is_folder and encoded and not validate_files and not strict:
            ds = ds.ignore_errors(log_warning=True)
        if rand_augment:
            layer = _rand_augment_layer(rand_augment, augment_seed)
            # The layer draws from one seed state: sequential when deterministic.
            ds = ds.map(
                lambda image, label: (_to_uint8(layer(image, training=True)), label),
                num_parallel_calls=None if deterministic else AUTOTUNE,
            )

    ds = ds.batch(per_replica_batch, drop_remainder=drop_remainder, num_parallel_calls=AUTOTUNE)

    def finish(images, labels):
        if label_format == "one_hot":
            labels = tf.one_hot(labels, num_classes, dtype=tf.float32)
        return images, labels

    ds = ds.map(finish, num_parallel_calls=AUTOTUNE)
    if mixing:
        mix = _mixer(mixup_alpha, cutmix_alpha, mix_switch_prob, (mixup_seed, cutmix_seed))
        batch_seeds = tf.data.Dataset.random(seed=switch_seed, rerandomize_each_iteration=True).batch(2)
        ds = tf.data.Dataset.zip((ds, batch_seeds)).map(lambda batch, s: mix(batch[0], batch[1], s))
    if skip_batches and not skip_early:
        ds = ds.skip(skip_batches)
    ds = ds.map(lambda images, labels: (_normalize(images), labels), num_parallel_calls=AUTOTUNE)
    ds = ds.prefetch(AUTOTUNE)

    options = tf.data.Options()
    # Evaluation keeps the split's order (predictions line up with tfds.load); unseeded training may
    # reorder elements in parallel maps for speed.
    options.deterministic = deterministic or not training
    return ds.with_options(options)
