"""`make_dataset` on grain: the input pipeline without TensorFlow (JAX and PyTorch hosts).

    source (embedded scales_demo or an image folder) -> shard by process -> shuffle
      -> [repeat] -> decode + augment per image (NumPy / Pillow) -> batch
      -> [one-hot] -> [MixUp / CutMix] -> [skip] -> preprocess_input

The same recipes as the `tf.data` pipeline (`training.data.pipelines`), with
the same options, augmentation semantics and per-stage seeds (`derive_seeds`),
on grain's `MapDataset`: every element is reached by its index, and each
image's (and batch's) random draws are seeded by the stage's seed and that
index. So a pipeline is deterministic whatever its parallelism, skipping
batches costs nothing (nothing before them is computed), and shards are
disjoint slices of one split whose union is the whole split.

Elements are `(images, labels)` NumPy batches: images float32
`(batch, size, size, 3)` after `preprocess_input`, labels int32 or float32
one-hot. `GrainBatches` holds the pipeline: `len`, `batches[i]`, iteration
on threads, and iterators that save and restore their position
(`get_state` / `set_state`).

Differences from the `tf.data` pipeline:
- Sources: the embedded `scales_demo` (rendered in NumPy, kept in a `.npz`
  file) and image folders (decoded with Pillow). TFDS datasets are read by
  the `tf.data` pipeline only.
- RandAugment is not available here yet (Keras' layer runs on the backend's
  tensors; there is no NumPy implementation): ValueError.
- The ImageNet style decodes the whole JPEG before its random crop (the
  `tf.data` pipeline decodes only the window): the same pixels, more work.
- Interpolation "bilinear" or "bicubic" (TensorFlow's antialiased kernels).
- Undecodable files: `validate_files=True` (the default) leaves them out up
  front; with False, one met while reading raises ValueError naming it.
- `cache` and `shuffle_buffer` are accepted for the same call and change
  nothing: the shuffle is a global permutation and sources are read by index.
"""

import os

import numpy as np

from training.data import catalog, embedded
from training.data import folder as folder_lib
from training.data import numpy_augment as aug
from training.data.options import (
    ASPECT_RATIO_RANGE,
    DEFAULT_CROP_PCT,
    LABEL_FORMATS,
    STANDARD_AREA_RANGE,
    check_arguments,
    check_choice,
    derive_seeds,
)
from training.data.render import CLASS_NAMES

GRAIN_DATASETS = ("scales_demo", "folder")
# Batches prepared ahead per thread of an iterator; threads by default.
_PREFETCH_PER_THREAD = 2
DEFAULT_THREADS = min(os.cpu_count() or 1, 8)


def _check_grain_dataset(name):
    catalog.resolve(name)
    if catalog.base_name(name) not in GRAIN_DATASETS:
        raise ValueError(
            f"The grain input pipeline reads {' and '.join(GRAIN_DATASETS)} (name='folder' with "
            "data_dir=<folder>); TFDS datasets are read by the tf.data pipeline (--input-pipeline tf, "
            f"which needs TensorFlow). Received: name={name!r}"
        )


def dataset_info(name, data_dir=None, manual_dir=None, download=True, validation_fraction=0.1):
    """`training.data.dataset_info` without TensorFlow for the grain pipeline's datasets.

    Args:
        name: "scales_demo" (or "scales_demo/tiny"), "folder", or a TFDS name
            (answered by TFDS, which must be installed).
        data_dir: the image folder for "folder".
        manual_dir, download: as in `training.data.dataset_info` (TFDS only).
        validation_fraction: for folders without split folders.

    Returns:
        A `training.data.DatasetInfo`.

    Example:
        >>> dataset_info("scales_demo/tiny").splits
        {'train': 96, 'test': 48}
    """
    entry = catalog.resolve(name)
    if catalog.base_name(name) == embedded.NAME:
        config = embedded.config_of(name)
        splits = {"train": config.num_train, "test": config.num_test}
        return catalog.DatasetInfo(
            name, entry.style, config.image_size, len(CLASS_NAMES), CLASS_NAMES, splits, "train", "test"
        )
    return catalog.dataset_info(name, data_dir, manual_dir, download, validation_fraction)


class _ArraySource:
    """Random access to `(image, label)` pairs of two arrays (grain's data source protocol)."""

    def __init__(self, images, labels):
        self.images, self.labels = images, labels

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, index):
        return self.images[index], self.labels[index]


def _read_source(name, split, data_dir, strict, validate_files, validation_fraction):
    """`(records, num_classes, decoded)`: records are `(image, label)` or `(path, label)` pairs."""
    if catalog.base_name(name) == embedded.NAME:
        cache_dir = os.path.join(os.path.expanduser(data_dir), "scales_demo_grain") if data_dir else None
        images, labels = embedded.render_split(name, split, cache_dir=cache_dir)
        return _ArraySource(images, labels), len(CLASS_NAMES), True
    if data_dir is None:
        raise ValueError("name='folder' reads the image folder given as data_dir. Received: data_dir=None")
    folder = folder_lib.list_image_folder(data_dir, validation_fraction)
    paths, labels = folder_lib.folder_split_files(
        folder, split, strict=strict, validate=validate_files, find_bad=folder_lib.find_undecodable_pil
    )
    return _ArraySource(paths, labels.astype(np.int32)), len(folder.class_names), False


def _decode(image):
    """A record's image as uint8 RGB: decoded from its file when it is a path."""
    if not isinstance(image, str):
        return image
    try:
        return aug.read_rgb(image)
    except (OSError, ValueError, SyntaxError) as error:
        raise ValueError(
            f"Cannot decode the image file {image!r} ({error}); read the folder with validate_files=True to "
            "leave undecodable files out"
        ) from error


def _check_batch_rows(batch_rows, batch_size, drop_remainder):
    start, stop = batch_rows
    if not 0 <= start < stop <= batch_size:
        raise ValueError(
            f"`batch_rows` must be (start, stop) with 0 <= start < stop <= the batch size {batch_size}. "
            f"Received: batch_rows={batch_rows!r}"
        )
    if not drop_remainder:
        raise ValueError(
            "`batch_rows` takes rows of whole batches: it needs drop_remainder=True (training pipelines). "
            f"Received: batch_rows={batch_rows!r} with drop_remainder={drop_remainder!r}"
        )


def _rows_of_each_batch(ds, batch_size, start, stop):
    """The examples of `ds` that rows `start:stop` of its batches of `batch_size` hold, in order."""
    import grain

    rows = stop - start
    whole = len(ds) // batch_size  # whole batches (an endless dataset has a huge length)
    picked = grain.MapDataset.range(whole * rows)
    return picked.map(lambda i: ds[(i // rows) * batch_size + start + i % rows])


class GrainBatches:
    """The batches of a grain pipeline: random access, threaded iteration, resumable iterators.

    Args:
        dataset: a `grain.MapDataset` of `(images, labels)` batches.
        num_threads: threads that prepare batches while iterating.

    Example:
        >>> batches = make_dataset("scales_demo/tiny", "train", 16, seed=0)
        >>> images, labels = batches[0]                     # any batch, by index
        >>> iterator = iter(batches)                        # threaded, in order
        >>> state = iterator.get_state()                    # ... and later:
        >>> iterator.set_state(state)                       # the same batches again from there
    """

    def __init__(self, dataset, num_threads=None):
        self.dataset = dataset
        self.num_threads = num_threads or DEFAULT_THREADS

    def __len__(self):
        return len(self.dataset)

    def __getitem__(self, index):
        return self.dataset[index]

    def iter_dataset(self):
        """The `grain.IterDataset` that prepares batches on `num_threads` threads, in order."""
        import grain

        options = grain.ReadOptions(
            num_threads=self.num_threads, prefetch_buffer_size=_PREFETCH_PER_THREAD * self.num_threads
        )
        return self.dataset.to_iter_dataset(options)

    def __iter__(self):
        """A grain `DatasetIterator` (with `get_state()` / `set_state(state)`) over the batches."""
        return iter(self.iter_dataset())

    def as_numpy_iterator(self):
        """An iterator of NumPy batches: the name `tf.data.Dataset` gives it."""
        return iter(self)

    def take(self, count):
        """The first `count` batches, as `tf.data.Dataset.take`."""
        return GrainBatches(self.dataset[:count], self.num_threads)

    def map(self, function):
        """`function` applied to each batch (a new `GrainBatches`)."""
        return GrainBatches(self.dataset.map(function), self.num_threads)


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
    area_range=STANDARD_AREA_RANGE,
    aspect_ratio_range=ASPECT_RATIO_RANGE,
    crop_pct=DEFAULT_CROP_PCT,
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
    shard_index=0,
    shard_count=1,
    batch_rows=None,
    seed=None,
    strict=False,
    validate_files=True,
    validation_fraction=0.1,
    num_threads=None,
):
    """Builds the batched, normalised grain pipeline of one dataset split.

    Section 4.1 (random-size crop + flip, centre crop for evaluation), 4.2
    (pad 4 + crop + flip), 4.4 (`scales_demo`): the arguments and their
    meaning are those of `training.data.pipelines.make_dataset`; the
    differences are listed in the module docstring. Besides them:

    Args:
        shard_index, shard_count: this pipeline reads examples `shard_index`,
            `shard_index + shard_count`, ... of the split (one shard per
            process, `jax.process_index()` of `jax.process_count()`), and
            yields `batch_size // shard_count` examples a batch: `batch_size`
            stays the global batch. Shards are disjoint and together the whole
            split; each shuffles and augments with seeds of its own.
        batch_rows: `(start, stop)`: this pipeline yields rows `start:stop` of each batch of
            the whole pipeline (the batches of `shard_count=1`): one process's part of each
            global batch in a multi-process JAX run, which puts the parts together. Only the
            rows kept are read and augmented, unless MixUp / CutMix mix the whole batch (then
            the whole batch is made and sliced). Training pipelines (whole batches) only.
        input_context: a `tf.distribute.InputContext`-like object
            (`input_pipeline_id`, `num_input_pipelines`,
            `get_per_replica_batch_size`), instead of the shard arguments.
        num_threads: threads that prepare batches while iterating (default
            the CPU count, at most 8).

    Returns:
        A `GrainBatches` of `(images, labels)` NumPy batches; images float32
        `(batch, image_size, image_size, 3)` after `preprocess_input`.

    Raises:
        ValueError: a dataset other than `GRAIN_DATASETS`, RandAugment, or a
            bad option value (named with what is accepted).

    Example:
        >>> train = make_dataset("scales_demo", "train", 64, seed=0, label_format="one_hot", mixup_alpha=0.2)
        >>> images, labels = next(iter(train))
    """
    import grain

    _check_grain_dataset(name)
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
    check_choice("interpolation", interpolation, aug.NUMPY_INTERPOLATIONS)
    if training and rand_augment:
        raise ValueError(
            "RandAugment runs in the tf.data pipeline only (Keras' layer; the grain pipeline has no NumPy "
            f"RandAugment yet): use --input-pipeline tf, or set randaugment=false. Received: rand_augment={rand_augment!r}"
        )
    if input_context is not None:
        shard_index, shard_count = input_context.input_pipeline_id, input_context.num_input_pipelines
        shard_batch = input_context.get_per_replica_batch_size(batch_size)
    else:
        if not 0 <= shard_index < shard_count:
            raise ValueError(
                f"`shard_index` must be in [0, shard_count). Received: shard_index={shard_index!r}, "
                f"shard_count={shard_count!r}"
            )
        if batch_size % shard_count:
            raise ValueError(
                f"The global batch must split evenly over the shards. Received: batch_size={batch_size} with "
                f"shard_count={shard_count}"
            )
        shard_batch = batch_size // shard_count
    if batch_rows is not None:
        _check_batch_rows(batch_rows, shard_batch, training if drop_remainder is None else drop_remainder)
    if seed is None:
        seed = int(np.random.default_rng().integers(2**31 - 1))
    seeds = derive_seeds(seed, shard_index)

    entry = catalog.resolve(name)
    style = style or entry.style
    check_choice("style", style, catalog.STYLES)
    records, num_classes, decoded = _read_source(
        name, split, data_dir, strict, validate_files, validation_fraction
    )
    image_size = image_size or entry.image_size

    ds = grain.MapDataset.source(records)
    if shard_count > 1:
        ds = ds[shard_index::shard_count]
        if not len(ds):
            raise ValueError(
                f"Shard {shard_index} of {shard_count} gets no examples of {name!r} (split {split!r})"
            )

    # The ImageNet style's training crop works on the decoded file; the others see images at their size.
    crop_in_augment = style == "imagenet" and training
    if not crop_in_augment:
        center = style == "imagenet"

        def decode_and_fit(record):
            image, label = record
            image = _decode(image)
            if center:
                image = aug.to_uint8(aug.center_crop(image, image_size, crop_pct, interpolation))
            elif image.shape[:2] != (image_size, image_size):
                image = aug.to_uint8(aug.resize(image, image_size, interpolation))
            return image, label

        ds = ds.map(decode_and_fit)
    if training:
        ds = ds.shuffle(seed=seeds.shuffle)
    if repeat:
        ds = ds.repeat()  # grain reseeds the shuffle and the augmentation each epoch
    if training:

        def augment_one(record, rng):
            image, label = record
            if style == "imagenet":
                image = aug.to_uint8(
                    aug.inception_crop(
                        _decode(image), image_size, rng, area_range, aspect_ratio_range, interpolation
                    )
                )
            elif style == "cifar":
                image = aug.pad_and_crop(image, rng)
            elif style == "flip":
                image = aug.random_flip(image, rng)
            return np.ascontiguousarray(image), label

        ds = ds.random_map(augment_one, seed=seeds.element)
    drop = training if drop_remainder is None else drop_remainder
    if batch_rows is not None and not mixing:
        # Only this process's rows of each batch: the examples before batching, picked by index.
        ds = _rows_of_each_batch(ds, shard_batch, *batch_rows)
        shard_batch = batch_rows[1] - batch_rows[0]
    ds = ds.batch(shard_batch, drop_remainder=drop)
    if label_format == "one_hot":
        eye = np.eye(num_classes, dtype=np.float32)
        ds = ds.map(lambda batch: (batch[0], eye[batch[1]]))
    else:
        check_choice("label_format", label_format, LABEL_FORMATS)
    if mixing:

        def mix_batch(batch, rng):
            images, labels = batch[0].astype(np.float32), batch[1]
            use_cutmix = cutmix_alpha > 0 and (mixup_alpha <= 0 or rng.random() < mix_switch_prob)
            if use_cutmix:
                return aug.cutmix(images, labels, rng, cutmix_alpha)
            return aug.mixup(images, labels, rng, mixup_alpha)

        ds = ds.random_map(mix_batch, seed=seeds.switch)
        if batch_rows is not None:  # the batch was mixed whole: keep this process's rows
            start, stop = batch_rows
            ds = ds.map(lambda batch: (batch[0][start:stop], batch[1][start:stop]))
    if skip_batches:
        ds = ds[skip_batches:]
    ds = ds.map(lambda batch: (aug.normalize(batch[0]), batch[1]))
    return GrainBatches(ds, num_threads)
