"""`make_dataset`: the `tf.data` input pipeline of every dataset the trainer reads.

    source (TFDS or image folder) -> shard per input pipeline -> [cache] -> shuffle
      -> decode + augment per image (parallel, stateless seeds) -> [RandAugment]
      -> batch -> [MixUp / CutMix] -> preprocess_input -> prefetch

Each arrow is a stage of `training.data.stages` (`read_source`, `decode_and_crop`,
`cache_and_shuffle`, `augment`, `rand_augment`, `batch_examples`, `mix`,
`normalize_and_prefetch`), usable alone; `make_dataset` checks its arguments,
chooses each stage's options from the dataset and calls them in that order.

Elements are `(images, labels)`: images float32 `(batch, size, size, 3)`
normalised by `keras_sknet.applications.preprocess_input`; labels int32
`(batch,)` (`label_format="sparse"`) or float32 one-hot `(batch, classes)`
(`label_format="one_hot"`, which MixUp and CutMix require: their labels are
soft, the two images' one-hot vectors mixed in the images' proportions).
"""

import numpy as np
import tensorflow as tf

from training.data import catalog, stages
from training.data import preprocessing as pre
from training.data.options import check_arguments
from training.data.stages import CACHE_BUDGET_BYTES, LABEL_FORMATS

__all__ = ["CACHE_BUDGET_BYTES", "LABEL_FORMATS", "make_dataset"]

# Shuffle buffers: whole small datasets; 10,000 encoded images for the ImageNet style (ImageNet's
# JPEGs average 110 KB, so about 1.1 GB), as TensorFlow's official ImageNet pipeline does.
MAX_SHUFFLE_BUFFER = 50_000
ENCODED_SHUFFLE_BUFFER = 10_000


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
    `scales_demo` dataset). It calls the stages of `training.data.stages` in
    order, with options chosen for the dataset; compose them yourself for a
    pipeline of your own.

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
    catalog.resolve(name)  # an unknown dataset is the first error
    training = split.startswith("train") if training is None else bool(training)
    mixing = training and (mixup_alpha > 0 or cutmix_alpha > 0)
    check_arguments(
        batch_size=batch_size,
        image_size=image_size,
        style=style,
        label_format=label_format,
        interpolation=interpolation,
        crop_pct=crop_pct,
        area_range=area_range,
        aspect_ratio_range=aspect_ratio_range,
        mixup_alpha=mixup_alpha,
        cutmix_alpha=cutmix_alpha,
        skip_batches=skip_batches,
        mixing=mixing,
        cache=cache,
    )
    deterministic = seed is not None
    if seed is None:
        seed = int(np.random.default_rng().integers(2**31 - 1))
    seeds = stages.derive_seeds(seed, input_context.input_pipeline_id if input_context is not None else 0)
    per_replica_batch = input_context.get_per_replica_batch_size(batch_size) if input_context else batch_size

    source = stages.read_source(
        name,
        split,
        style=style,
        data_dir=data_dir,
        manual_dir=manual_dir,
        download=download,
        input_context=input_context,
        shuffle_files=training,
        seed=seeds.file,
        strict=strict,
        validate_files=validate_files,
        validation_fraction=validation_fraction,
    )
    style, image_size, ds = source.style, image_size or source.image_size, source.dataset

    # The ImageNet style's training crop decodes only its window, so its files stay encoded (and
    # cached so) until `augment`; the other pipelines cache decoded images at their final size.
    decode_in_augment = style == "imagenet" and training
    if decode_in_augment:
        cached_bytes = source.num_bytes
    else:
        ds = stages.decode_and_crop(
            ds,
            image_size,
            crop_pct=crop_pct if style == "imagenet" else None,
            interpolation=interpolation,
            skip_undecodable=source.skip_undecodable,
        )
        cached_bytes = source.num_examples * image_size * image_size * 3
    if training:
        default_buffer = ENCODED_SHUFFLE_BUFFER if decode_in_augment else MAX_SHUFFLE_BUFFER
        shuffle_buffer = max(1, shuffle_buffer or min(source.num_examples, default_buffer))
    else:
        shuffle_buffer = None
    ds = stages.cache_and_shuffle(
        ds,
        cache=cache,
        cached_bytes=cached_bytes,
        shuffle_buffer=shuffle_buffer,
        seed=seeds.shuffle,
        repeat=repeat,
    )

    # Skipped training examples are dropped before any work on them, unless a Keras layer that draws
    # from a seed state of its own (RandAugment, MixUp, CutMix) has to see them to stay in step.
    skip_early = training and not rand_augment and not mixing
    if training:
        ds = stages.augment(
            ds,
            image_size,
            style,
            seeds.element,
            area_range=area_range,
            aspect_ratio_range=aspect_ratio_range,
            interpolation=interpolation,
            skip=skip_batches * per_replica_batch if skip_early else 0,
            skip_undecodable=source.skip_undecodable,
        )
        if rand_augment:
            ds = stages.rand_augment(ds, rand_augment, seeds.rand_augment, deterministic=deterministic)
    ds = stages.batch_examples(
        ds,
        per_replica_batch,
        num_classes=source.num_classes,
        label_format=label_format,
        drop_remainder=training if drop_remainder is None else drop_remainder,
    )
    if mixing:
        ds = stages.mix(
            ds,
            mixup_alpha,
            cutmix_alpha,
            switch_prob=mix_switch_prob,
            seeds=(seeds.mixup, seeds.cutmix, seeds.switch),
        )
    if skip_batches and not skip_early:
        ds = ds.skip(skip_batches)
    ds = stages.normalize_and_prefetch(ds)

    options = tf.data.Options()
    # Evaluation keeps the split's order (predictions line up with tfds.load); unseeded training may
    # reorder elements in parallel maps for speed.
    options.deterministic = deterministic or not training
    return ds.with_options(options)
