"""The datasets a run trains and validates on, made from an experiment's recipe.

`training.data` builds the input pipelines, on tf.data or on grain
(`training.data.set_input_pipeline`; the trainer's `--input-pipeline`); this
module says which ones a run of an experiment reads and how they are fed to
each backend:

- TensorFlow: one endless training stream and the evaluation split, distributed
  by the strategy (`distributed_datasets`). A resumed run reshuffles from a seed
  of its own.
- JAX: NumPy batches, the data of epoch `e` seeded by `(seed, e)`, a resumed
  epoch skipping the batches it already trained on (`epoch_batches`), and
  evaluation batches padded to a multiple of the device count (`pad_to_multiple`).
  Either pipeline: both have `take(n)` and `as_numpy_iterator()`; on grain the
  skipped batches are not even computed. With several JAX processes, each feeds
  its rows of every batch (`process_rows`), training and evaluation alike.
"""

import keras
import numpy as np


def train_dataset(
    experiment, info, data_dir, manual_dir, seed, input_context=None, skip_batches=0, batch_rows=None
):
    """The experiment's augmented, shuffled, endless training pipeline (one-hot labels).

    `batch_rows` `(start, stop)`: grain only, those rows of each batch (see `epoch_batches`).
    """
    from training import data

    rows = {} if batch_rows is None else {"batch_rows": batch_rows}
    area_range = data.LIGHTWEIGHT_AREA_RANGE if experiment.augment == "light" else data.STANDARD_AREA_RANGE
    return data.make_dataset(
        experiment.dataset,
        info.train_split,
        experiment.batch_size,
        experiment.image_size,
        training=True,
        area_range=area_range,
        rand_augment=experiment.randaugment or None,
        mixup_alpha=experiment.mixup,
        cutmix_alpha=experiment.cutmix,
        repeat=True,
        skip_batches=skip_batches,
        input_context=input_context,
        seed=seed,
        data_dir=data_dir,
        manual_dir=manual_dir,
        label_format="one_hot",
        **rows,
    )


def eval_dataset(experiment, info, data_dir, manual_dir, repeat=False, input_context=None):
    """The experiment's evaluation split, centre-cropped, in order (one-hot labels)."""
    from training import data

    return data.make_dataset(
        experiment.dataset,
        info.eval_split,
        experiment.batch_size,
        experiment.eval_image_size,
        training=False,
        crop_pct=experiment.crop_pct,
        repeat=repeat,
        input_context=input_context,
        data_dir=data_dir,
        manual_dir=manual_dir,
        label_format="one_hot",
    )


def steps_per_epoch(experiment, info):
    """Whole batches of the training split per epoch; ValueError when not even one fits."""
    steps = info.splits[info.train_split] // experiment.batch_size
    if steps < 1:
        raise ValueError(
            f"The batch size {experiment.batch_size} is larger than the {info.splits[info.train_split]} "
            f"training examples of {experiment.dataset!r}: no step fits in an epoch."
        )
    return steps


def distributed_datasets(experiment, info, strategy, data_dir, manual_dir, first_epoch, multi_worker):
    """TensorFlow: distributed training and evaluation datasets, steps per epoch and evaluation steps."""
    # A resumed run reshuffles from a seed of its own: the same recipe, not the same batches again.
    seed = experiment.seed * 1000 + first_epoch

    def train_fn(input_context):
        return train_dataset(experiment, info, data_dir, manual_dir, seed, input_context)

    def eval_fn(input_context):
        return eval_dataset(experiment, info, data_dir, manual_dir, multi_worker, input_context)

    steps = steps_per_epoch(experiment, info)
    eval_examples = info.splits[info.eval_split]
    # Several workers need a fixed number of evaluation steps; one process reads the split once.
    eval_steps = max(1, eval_examples // experiment.batch_size) if multi_worker else None
    return (
        strategy.distribute_datasets_from_function(train_fn),
        strategy.distribute_datasets_from_function(eval_fn),
        steps,
        eval_steps,
    )


def process_rows(rows, part, parts):
    """`(start, stop)`: the rows of a `rows`-row batch that process `part` of `parts` feeds."""
    share = rows // parts
    return part * share, (part + 1) * share


def epoch_batches(experiment, info, data_dir, manual_dir, steps, epoch, skip, part=0, parts=1):
    """JAX: training batches as NumPy arrays, `steps` per epoch, from step `skip` of `epoch` on.

    The data of each epoch is seeded by the recipe's seed and the epoch, and a
    resumed epoch skips the batches already trained on: a resumed run sees the
    batches an uninterrupted one would. Process `part` of `parts` (several JAX
    processes) gets its rows of each global batch, which JAX puts together again:
    the run sees the batches of a one-process run. Grain reads only those rows;
    tf.data makes the whole batch on every process and slices it.
    """
    from training import data

    rows = process_rows(experiment.batch_size, part, parts) if parts > 1 else None
    grain_rows = rows if data.input_pipeline() == "grain" else None
    while True:
        seed = experiment.seed * 1000 + epoch
        dataset = train_dataset(
            experiment, info, data_dir, manual_dir, seed, skip_batches=skip, batch_rows=grain_rows
        )
        for images, labels in dataset.take(steps - skip).as_numpy_iterator():
            if rows is not None and grain_rows is None:
                images, labels = images[slice(*rows)], labels[slice(*rows)]
            yield images, labels
        epoch, skip = epoch + 1, 0


def pad_to_multiple(dataset, multiple, part=0, parts=1):
    """JAX: `(images, labels)` batches padded to a multiple of `multiple` rows, and sample weights.

    A batch split over devices must divide evenly; the last evaluation batch may
    not. The padding rows weigh 0, so the accuracies count only real images
    (the mean loss counts them as zero-loss images: at most `multiple - 1` of them).

    Args:
        dataset: a `tf.data.Dataset` or a grain pipeline's `GrainBatches` of
            `(images, labels)` batches.
        multiple: the row count every batch is padded up to a multiple of (every
            device of every process).
        part, parts: with several JAX processes, this process's index and their count:
            each padded batch is cut into `parts` equal parts, and this process feeds part
            `part` (each process reads the whole split and keeps its rows).

    Returns:
        A `tf.data.Dataset`, or (grain) a `keras.utils.PyDataset` that `fit` reads
        with a known number of batches, of `(images, labels, sample_weights)` batches.
    """
    if not hasattr(dataset, "element_spec"):  # a grain pipeline: NumPy batches
        return _PaddedBatches(dataset, multiple, part, parts)

    import tensorflow as tf

    def pad(images, labels):
        count = tf.shape(images)[0]
        extra = (-count) % multiple
        weights = tf.concat([tf.ones([count]), tf.zeros([extra])], axis=0)
        images = tf.pad(images, [[0, extra]] + [[0, 0]] * (images.shape.rank - 1))
        labels = tf.pad(labels, [[0, extra]] + [[0, 0]] * (labels.shape.rank - 1))
        share = (count + extra) // parts
        rows = slice(part * share, (part + 1) * share)
        return images[rows], labels[rows], weights[rows]

    return dataset.map(pad)


class _PaddedBatches(keras.utils.PyDataset):
    """A grain pipeline's batches padded as `pad_to_multiple` says, prepared on threads."""

    def __init__(self, batches, multiple, part=0, parts=1):
        super().__init__(workers=batches.num_threads, use_multiprocessing=False)
        self.batches = batches
        self.multiple = multiple
        self.part, self.parts = part, parts

    def __len__(self):
        return len(self.batches)

    def __getitem__(self, index):
        images, labels = self.batches[index]
        extra = (-len(images)) % self.multiple
        weights = np.concatenate([np.ones(len(images), np.float32), np.zeros(extra, np.float32)])
        images = np.concatenate([images, np.zeros((extra, *images.shape[1:]), images.dtype)])
        labels = np.concatenate([labels, np.zeros((extra, *labels.shape[1:]), labels.dtype)])
        rows = slice(*process_rows(len(weights), self.part, self.parts))
        return images[rows], labels[rows], weights[rows]
