"""The trainer: distribution, callbacks and the fit loop, in one place, on TensorFlow or JAX.

    strategy = make_strategy()                      # TensorFlow: Mirrored / MultiWorker / default
    result = train(experiment, model_dir="runs/x")  # resumes by itself after a crash

Order of things (as TF Model Garden does it): the strategy is created first;
the model and its optimiser are built inside `strategy.scope()`; under mixed
precision the classifier runs in float32 so the loss sees float32
probabilities. A backup of the whole training state (weights, optimiser,
epoch, step, best metric) is written every few minutes and at each epoch end;
the same command started again restores it and continues at the step it
reached, so a run killed with SIGKILL ends with the right number of epochs.

On Keras' JAX backend (`KERAS_BACKEND=jax`) the same `train()` runs the same
recipes with JAX's counterparts: `keras.distribution.DataParallel` over the
local devices instead of a `tf.distribute` strategy, the step always compiled
by XLA, and the backup in one NumPy file (`FileTrainingState`). TensorFlow then
only reads the data (`training.data` is tf.data); this module imports it only
where it uses it. Differences that matter:
- BatchNorm statistics are those of the global batch on JAX (DataParallel runs
  one program over the whole batch; XLA adds the cross-device sums), which is
  what `sync_batch_norm=True` asks of TensorFlow: the field changes nothing there.
- The data of epoch `e` is seeded by `(seed, e)` and a run resumed part-way
  through an epoch skips the batches it already trained on, so it sees exactly
  the batches of an uninterrupted run (TensorFlow: one stream reseeded at resume).
- One process only: several workers (`TF_CONFIG`) need TensorFlow.
"""

import json
import os
import time
import warnings

import keras
import numpy as np

from keras_sknet.utils.files import write_json_atomically
from training.optimizers import SGDWeightDecay, StepWithWarmup
from training.state import (
    BACKUP_DIR,
    Backup,
    FileTrainingState,
    SaveBestAndLast,
    StopOnNaN,
    Throughput,
    TrainingState,
)

CONFIG_FILE = "config.json"
SUMMARY_FILE = "summary.json"


class _MultiWorkerModel(keras.Model):
    """The same functional model, with its step logs shaped for multi-worker reduction.

    Keras 3.15 reduces each step's logs across workers with
    `strategy.reduce("MEAN", value, axis=0)`, which fails on the scalar losses and
    metrics of a MultiWorkerMirroredStrategy run ("Invalid reduction dimension 0 for
    input with 0 dimensions", tensorflow#72388). One-element vectors reduce to the
    cross-worker mean.
    """

    def train_step(self, data):
        return {k: keras.ops.reshape(v, (1,)) for k, v in super().train_step(data).items()}

    def test_step(self, data):
        return {k: keras.ops.reshape(v, (1,)) for k, v in super().test_step(data).items()}


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite; the run stopped without saving the broken state."""


# ---------------------------------------------------------------------------------------
# Distribution


def cluster_workers():
    """The worker addresses named by TF_CONFIG (empty without TF_CONFIG)."""
    config = json.loads(os.environ.get("TF_CONFIG") or "{}")
    return config.get("cluster", {}).get("worker", [])


def make_strategy(devices=None):
    """The distribution strategy for this process.

    - `TF_CONFIG` naming several workers: `MultiWorkerMirroredStrategy` (several machines);
    - several local GPUs, or `devices` given: `MirroredStrategy` over them;
    - otherwise TensorFlow's default strategy (one device).

    Args:
        devices: optional device names for MirroredStrategy, e.g. ["/cpu:0", "/cpu:1"]
            (logical CPU devices, to test multi-device code on a CPU); one name gives
            OneDeviceStrategy.
    """
    import tensorflow as tf

    if len(cluster_workers()) > 1:
        return tf.distribute.MultiWorkerMirroredStrategy()
    if devices and len(devices) == 1:
        return tf.distribute.OneDeviceStrategy(devices[0])
    if devices:
        if all("cpu" in d.lower() for d in devices):
            # Collective all-reduces between logical CPU devices can be issued in different
            # orders by the replicas (mismatched collectives with synchronised BatchNorm);
            # reducing on one device has no such ordering.
            return tf.distribute.MirroredStrategy(
                devices, cross_device_ops=tf.distribute.ReductionToOneDevice()
            )
        return tf.distribute.MirroredStrategy(devices)
    gpus = tf.config.list_logical_devices("GPU")
    if len(gpus) > 1:
        return tf.distribute.MirroredStrategy()
    return tf.distribute.get_strategy()


def is_chief(strategy):
    """True on the process that writes the run directory (worker 0, or the only one)."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.cluster_spec().as_dict():
        return True
    return resolver.task_type in (None, "chief") or (resolver.task_type == "worker" and resolver.task_id == 0)


def make_distribution(devices=None):
    """JAX's counterpart of `make_strategy`: Keras' `DataParallel` over several devices.

    Every device holds a copy of the variables and computes its slice of the
    global batch; XLA adds the gradients (and the BatchNorm statistics) over the
    devices. One device needs no distribution.

    Args:
        devices: JAX devices, e.g. `jax.devices("cpu")`; default every local
            device of JAX's default backend (all GPUs, or the CPU devices that
            `XLA_FLAGS=--xla_force_host_platform_device_count=N` makes).

    Returns:
        A `keras.distribution.DataParallel`, or None for a single device.

    Example:
        >>> with make_distribution(jax.devices()).scope():  # doctest: +SKIP
        ...     model = SKNet50()
    """
    import jax

    devices = list(jax.local_devices() if devices is None else devices)
    if not devices:
        raise ValueError("`devices` is empty: name at least one JAX device.")
    return keras.distribution.DataParallel(devices=devices) if len(devices) > 1 else None


def check_batch_divides(batch_size, devices):
    """Raises ValueError unless the global batch splits evenly over `devices` (a count or a list)."""
    count = devices if isinstance(devices, int) else len(devices)
    if batch_size % count:
        raise ValueError(
            f"The global batch size must be divisible by the number of devices it is split over. "
            f"Received: batch_size={batch_size} with {count} devices; use a multiple of {count} "
            "(--batch-size) or other devices."
        )


def _auto_policy(devices=None):
    """The mixed-precision policy `auto` stands for on this backend and these devices."""
    if keras.backend.backend() != "jax":
        import tensorflow as tf

        return "mixed_float16" if tf.config.list_logical_devices("GPU") else "float32"
    import jax

    device = (list(devices) if devices is not None else jax.local_devices())[0]
    if device.platform == "tpu":
        return "mixed_bfloat16"
    if device.platform == "gpu":
        # bfloat16 needs no loss scaling; GPUs before Ampere (compute capability 8) lack it.
        capability = getattr(device, "compute_capability", None)
        try:
            ampere = capability is not None and float(capability) >= 8.0
        except ValueError:
            ampere = False
        return "mixed_bfloat16" if ampere else "mixed_float16"
    return "float32"


def resolve_mixed_precision(setting, devices=None):
    """The Keras dtype policy name for an experiment's `mixed_precision` setting.

    `auto` means: on TensorFlow, float16 on a GPU; on JAX, bfloat16 on TPUs and on
    GPUs of compute capability 8 or more (Ampere on), float16 on older GPUs; float32
    on CPUs (their mixed precision is slower than float32).

    Args:
        setting: None, "none", "float32", "auto", "float16" or "bfloat16".
        devices: JAX only: the devices of the run, for `auto` (default: the local ones).

    Returns:
        "float32", "mixed_float16" or "mixed_bfloat16".

    Example:
        >>> resolve_mixed_precision("bfloat16")
        'mixed_bfloat16'
    """
    if setting in (None, "none", "float32"):
        return "float32"
    if setting == "auto":
        return _auto_policy(devices)
    if setting in ("float16", "bfloat16"):
        return f"mixed_{setting}"
    raise ValueError(
        f"`mixed_precision` must be one of None, 'auto', 'float16', 'bfloat16'. Received: {setting!r}"
    )


def _announce(experiment, model_dir, first_epoch, first_step, backup):
    """Says whether there is training left to do, and where a resumed run picks up."""
    if first_epoch >= experiment.epochs:
        print(f"{experiment.name}: all {experiment.epochs} epochs are already done in {model_dir}.")
        return False
    if first_epoch or first_step:
        print(f"Resuming {experiment.name} at epoch {first_epoch + 1}, step {first_step}, from {backup}.")
    return True


def warn_if_slow_on_cpu(policy):
    """Warns when a mixed-precision `policy` will train slower than float32 on this CPU.

    TensorFlow only, and only without GPUs: mixed precision works on every CPU,
    but some CPU kernels compute 16-bit floats far slower than float32
    (`keras_sknet.platform.slow_mixed_precision_reason` says which, and by how much).

    Returns:
        The warning's text, or None when there is nothing to warn about.
    """
    if keras.backend.backend() != "tensorflow" or policy == "float32":
        return None
    import tensorflow as tf

    from keras_sknet.platform import slow_mixed_precision_reason

    if tf.config.list_logical_devices("GPU"):
        return None
    reason = slow_mixed_precision_reason(policy)
    if reason:
        warnings.warn(reason, stacklevel=2)
    return reason


# ---------------------------------------------------------------------------------------
# The run


def _train_dataset(experiment, info, data_dir, manual_dir, seed, input_context=None, skip_batches=0):
    """The experiment's augmented, shuffled, endless training pipeline (one-hot labels)."""
    from training import data

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
    )


def _eval_dataset(experiment, info, data_dir, manual_dir, repeat=False, input_context=None):
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


def _steps_per_epoch(experiment, info):
    steps = info.splits[info.train_split] // experiment.batch_size
    if steps < 1:
        raise ValueError(
            f"The batch size {experiment.batch_size} is larger than the {info.splits[info.train_split]} "
            f"training examples of {experiment.dataset!r}: no step fits in an epoch."
        )
    return steps


def _datasets(experiment, info, strategy, data_dir, manual_dir, first_epoch, multi_worker):
    """Distributed training and evaluation datasets, and the steps per epoch."""
    # A resumed run reshuffles from a seed of its own: the same recipe, not the same batches again.
    seed = experiment.seed * 1000 + first_epoch

    def train_fn(input_context):
        return _train_dataset(experiment, info, data_dir, manual_dir, seed, input_context)

    def eval_fn(input_context):
        return _eval_dataset(experiment, info, data_dir, manual_dir, multi_worker, input_context)

    steps = _steps_per_epoch(experiment, info)
    eval_examples = info.splits[info.eval_split]
    # Several workers need a fixed number of evaluation steps; one process reads the split once.
    eval_steps = max(1, eval_examples // experiment.batch_size) if multi_worker else None
    return (
        strategy.distribute_datasets_from_function(train_fn),
        strategy.distribute_datasets_from_function(eval_fn),
        steps,
        eval_steps,
    )


def _epoch_batches(experiment, info, data_dir, manual_dir, steps, epoch, skip):
    """JAX: training batches as NumPy arrays, `steps` per epoch, from step `skip` of `epoch` on.

    The data of each epoch is seeded by the recipe's seed and the epoch, and a
    resumed epoch skips the batches already trained on: a resumed run sees the
    batches an uninterrupted one would.
    """
    while True:
        seed = experiment.seed * 1000 + epoch
        dataset = _train_dataset(experiment, info, data_dir, manual_dir, seed, skip_batches=skip)
        yield from dataset.take(steps - skip).as_numpy_iterator()
        epoch, skip = epoch + 1, 0


def _pad_to_multiple(dataset, multiple):
    """JAX: `(images, labels)` batches padded to a multiple of `multiple` rows, and sample weights.

    A batch split over devices must divide evenly; the last evaluation batch may
    not. The padding rows weigh 0, so the accuracies count only real images
    (the mean loss counts them as zero-loss images: at most `multiple - 1` of them).
    """
    import tensorflow as tf

    def pad(images, labels):
        count = tf.shape(images)[0]
        extra = (-count) % multiple
        weights = tf.concat([tf.ones([count]), tf.zeros([extra])], axis=0)
        images = tf.pad(images, [[0, extra]] + [[0, 0]] * (images.shape.rank - 1))
        labels = tf.pad(labels, [[0, extra]] + [[0, 0]] * (labels.shape.rank - 1))
        return images, labels, weights

    return dataset.map(pad)


def build_model(experiment, num_classes):
    """The experiment's model, with any input size (global pooling head)."""
    from keras_sknet import applications

    function = getattr(applications, experiment.model, None)
    if function is None or not callable(function):
        raise ValueError(
            f"Unknown model {experiment.model!r}: it must be a model function of keras_sknet.applications."
        )
    return function(input_shape=(None, None, 3), classes=num_classes, weights=None, **experiment.model_kwargs)


OPTIMIZERS = ("sgd", "adamw")
LR_SCHEDULES = ("step", "cosine")


def make_optimizer(experiment, steps_per_epoch):
    """The experiment's optimiser and learning-rate schedule (steps = optimiser iterations)."""
    if experiment.optimizer not in OPTIMIZERS:
        raise ValueError(
            f"`optimizer` must be one of {OPTIMIZERS}. Received: optimizer={experiment.optimizer!r}"
        )
    if experiment.lr_schedule not in LR_SCHEDULES:
        raise ValueError(
            f"`lr_schedule` must be one of {LR_SCHEDULES}. Received: lr_schedule={experiment.lr_schedule!r}"
        )
    rate = experiment.scaled_learning_rate()
    warmup = int(round(experiment.warmup_epochs * steps_per_epoch))
    if experiment.lr_schedule == "step":
        schedule = StepWithWarmup(
            rate,
            boundaries=[e * steps_per_epoch for e in experiment.decay_epochs()],
            factor=0.1,
            warmup_steps=warmup,
        )
    else:
        schedule = keras.optimizers.schedules.CosineDecay(
            0.0 if warmup else rate,
            max(1, experiment.epochs * steps_per_epoch - warmup),
            warmup_target=rate if warmup else None,
            warmup_steps=warmup,
        )
    if experiment.optimizer == "adamw":
        return keras.optimizers.AdamW(schedule, weight_decay=experiment.weight_decay)
    return SGDWeightDecay(schedule, momentum=experiment.momentum, l2=experiment.weight_decay)


def compile_model(model, experiment, steps_per_epoch):
    """Compiles `model` with the experiment's optimiser, loss and top-1/top-5; returns the optimiser.

    The optimiser's variables are built at once, so that a backup can be restored
    into them. On JAX the step is always compiled by XLA (`jit_compile` chooses
    for TensorFlow, whose grouped convolutions are slower under XLA), and the
    accuracies are weighted metrics: evaluation batches padded to a multiple of
    the device count carry zero weights for the padding (training batches carry
    none, which gives the same accuracies as plain metrics).

    Args:
        model: the model to compile.
        experiment: a `training.experiments.Experiment`.
        steps_per_epoch: optimiser steps per epoch, for the learning-rate schedule.

    Returns:
        The model's built optimiser.

    Example:
        >>> optimizer = compile_model(build_model(experiment, 10), experiment, 100)  # doctest: +SKIP
    """
    optimizer = make_optimizer(experiment, steps_per_epoch)
    accuracies = [
        keras.metrics.CategoricalAccuracy(name="top1"),
        keras.metrics.TopKCategoricalAccuracy(5, name="top5"),
    ]
    on_jax = keras.backend.backend() == "jax"
    model.compile(
        optimizer=optimizer,
        loss=keras.losses.CategoricalCrossentropy(label_smoothing=experiment.label_smoothing),
        metrics=None if on_jax else accuracies,
        weighted_metrics=accuracies if on_jax else None,
        jit_compile=True if on_jax else experiment.jit_compile,
    )
    model.optimizer.build(model.trainable_variables)
    return model.optimizer


def _check_same_recipe(model_dir, experiment):
    path = os.path.join(model_dir, CONFIG_FILE)
    if not os.path.exists(path):
        return
    with open(path) as f:
        previous = json.load(f)
    current = json.loads(experiment.to_json())
    if previous != current:
        changed = sorted(k for k in set(previous) | set(current) if previous.get(k) != current.get(k))
        raise ValueError(
            f"{model_dir} holds a run of another recipe (differences in: {', '.join(changed)}). "
            "Resume it with the same settings, or train into a new --model-dir."
        )


def _predictor(model):
    """`model(images, training=False)` as one compiled function returning probabilities.

    TensorFlow: a `tf.function`. JAX: an XLA-compiled function of the model's
    current weights; under a `DataParallel` distribution the batch is padded to a
    multiple of the device count, split over the devices, and the padding dropped.
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
    forward = jax.jit(
        lambda trainable, other, x: model.stateless_call(trainable, other, x, training=False)[0]
    )

    def predict(images):
        images = np.asarray(images)
        real = images.shape[0]
        extra = (-real) % count
        if extra:
            images = np.concatenate([images, np.zeros((extra, *images.shape[1:]), images.dtype)])
        if distribution is not None:
            images = jax.device_put(images, distribution.get_data_layout(images.shape).backend_layout)
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
        {"top1": ..., "top5": ..., "image_size": ..., "examples": ..., "split": ...}

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
    top5 = keras.metrics.SparseTopKCategoricalAccuracy(5)
    predict = _predictor(model)
    batches = dataset.as_numpy_iterator() if keras.backend.backend() == "jax" else dataset
    examples = 0
    for images, labels in batches:
        probabilities = predict(images)
        top1.update_state(labels, probabilities)
        top5.update_state(labels, probabilities)
        examples += int(labels.shape[0])
    return {
        "top1": float(top1.result()),
        "top5": float(top5.result()),
        "image_size": size,
        "examples": examples,
        "split": info.eval_split,
    }


def _check_backup_backend(model_dir, backend):
    """Each backend reads only its own backups: refuses to start over beside the other's."""
    directory = os.path.join(model_dir, BACKUP_DIR)
    tensorflow_backup = os.path.exists(os.path.join(directory, "checkpoint"))
    jax_backup = os.path.exists(os.path.join(directory, FileTrainingState.FILE))
    if backend == "jax" and tensorflow_backup and not jax_backup:
        writer = "tensorflow"
    elif backend == "tensorflow" and jax_backup and not tensorflow_backup:
        writer = "jax"
    else:
        return
    raise ValueError(
        f"{directory} holds the backup of a run trained on Keras' {writer} backend, which this "
        f"{backend} run cannot resume. Resume it with KERAS_BACKEND={writer}, or train into a new --model-dir."
    )


def _start_run(experiment, model_dir, backend, chief):
    os.makedirs(model_dir, exist_ok=True)
    _check_same_recipe(model_dir, experiment)
    _check_backup_backend(model_dir, backend)
    if chief:
        write_json_atomically(
            os.path.join(model_dir, CONFIG_FILE), json.loads(experiment.to_json()), indent=2, sort_keys=True
        )


def _callbacks(state, first_epoch, first_step, model_dir, chief, model, backup_every, nan_guard, throughput):
    callbacks = [
        nan_guard,  # first: a NaN step is flagged before anything else saves
        Backup(state, first_epoch, first_step, *backup_every),
        SaveBestAndLast(state, model_dir, chief=chief, model=model),
        throughput,
    ]
    if chief:  # other workers of a multi-worker run write nothing into the run directory
        callbacks.append(keras.callbacks.CSVLogger(os.path.join(model_dir, "metrics.csv"), append=True))
        callbacks.append(keras.callbacks.TensorBoard(os.path.join(model_dir, "logs"), write_graph=False))
    return callbacks


def _diverged(experiment, failure, state):
    fail_epoch, batch, loss = failure
    return TrainingDiverged(
        f"{experiment.name} diverged: loss {loss} at epoch {fail_epoch + 1}, batch {batch + 1}. "
        f"Nothing was saved from the diverged state; the last backup in {state.directory} is "
        "intact. Lower the learning rate (--set learning_rate=...), check the data or turn off "
        "mixed precision, then run the same command to resume."
    )


def _summary(experiment, model_dir, start, optimizer, state, final, throughput, replicas):
    return {
        "experiment": experiment.name,
        "model": experiment.model,
        "dataset": experiment.dataset,
        "epochs": experiment.epochs,
        "steps": int(optimizer.iterations.numpy()),
        "best_val_top1": state.best_value,
        "final": final,
        "train_images_per_second": throughput.images_per_second if throughput.images else None,
        "wall_time_seconds": time.perf_counter() - start,
        "backend": keras.backend.backend(),
        "replicas": replicas,
        "mixed_precision": keras.config.dtype_policy().name,
        "files": {
            name: os.path.join(model_dir, name)
            for name in ("best.keras", "last.keras", "metrics.csv", "logs", CONFIG_FILE, SUMMARY_FILE)
        },
    }


def train(
    experiment,
    model_dir,
    data_dir=None,
    manual_dir=None,
    strategy=None,
    backup_every_seconds=300,
    backup_every_steps=None,
    verbose="auto",
    devices=None,
):
    """Trains `experiment` into `model_dir`, resuming from its backup if there is one.

    Runs on Keras' TensorFlow backend (a `tf.distribute` strategy) or JAX backend
    (`DataParallel` over `devices`; see the module docstring for the differences).

    Args:
        experiment: a `training.experiments.Experiment`.
        model_dir: the run directory: config.json, backup/, best.keras, last.keras,
            metrics.csv, logs/ (TensorBoard), summary.json.
        data_dir, manual_dir: TFDS data directory and manual-download directory.
        strategy: TensorFlow: a `tf.distribute` strategy (default: `make_strategy()`).
        backup_every_seconds, backup_every_steps: how often the training state is
            backed up within an epoch (it is also backed up at each epoch end).
        verbose: Keras' fit verbosity ("auto", 0, 1 progress bar, 2 one line per epoch).
        devices: JAX: the devices that split the global batch (default every local
            device; see `make_distribution`).

    Returns:
        The summary dict (also written to `model_dir/summary.json`).

    Raises:
        TrainingDiverged: the loss became NaN or infinite.
        ValueError: a bad recipe, a model_dir that holds another recipe, a backend
            other than tensorflow and jax, or a setting the backend cannot run.

    Example:
        >>> summary = train(get_experiment("scales_demo"), "runs/demo")  # doctest: +SKIP
        >>> summary["final"]["top1"]
        0.953
    """
    backend = keras.backend.backend()
    if backend == "jax":
        if strategy is not None:
            raise ValueError(
                "`strategy` is a tf.distribute strategy, for Keras' tensorflow backend; on jax pass "
                f"`devices` (JAX devices) instead. Received: strategy={strategy!r}"
            )
        return _train_on_jax(
            experiment,
            model_dir,
            data_dir,
            manual_dir,
            devices,
            (backup_every_seconds, backup_every_steps),
            verbose,
        )
    if backend != "tensorflow":
        raise ValueError(
            "The trainer runs on Keras' tensorflow and jax backends (its input pipelines are tf.data). "
            f"Received: KERAS_BACKEND={backend!r}"
        )
    if devices is not None:
        raise ValueError(
            "`devices` chooses JAX devices; on tensorflow pass strategy=make_strategy(device_names). "
            f"Received: devices={devices!r}"
        )
    from keras_sknet.layers.batch_norm import synchronized_batch_norm
    from training import data

    start = time.perf_counter()
    strategy = strategy or make_strategy()
    chief = is_chief(strategy)
    multi_worker = len(cluster_workers()) > 1
    _start_run(experiment, model_dir, backend, chief)

    info = data.dataset_info(experiment.dataset, data_dir=data_dir, manual_dir=manual_dir)
    steps = info.splits[info.train_split] // experiment.batch_size
    policy = resolve_mixed_precision(experiment.mixed_precision)
    warn_if_slow_on_cpu(policy)
    keras.config.set_dtype_policy(policy)
    keras.utils.set_random_seed(experiment.seed)
    with strategy.scope():
        with synchronized_batch_norm(experiment.sync_batch_norm):
            model = build_model(experiment, info.num_classes)
        # What fit() trains: the model itself, or a view of it with worker-friendly logs.
        fit_model = _MultiWorkerModel(model.inputs, model.outputs, name=model.name) if multi_worker else model
        optimizer = compile_model(fit_model, experiment, max(steps, 1))
        state = TrainingState(fit_model, optimizer, model_dir, chief)
        first_epoch, first_step = state.restore()

    throughput = Throughput(experiment.batch_size)
    if _announce(experiment, model_dir, first_epoch, first_step, state.directory):
        train_ds, eval_ds, steps, eval_steps = _datasets(
            experiment, info, strategy, data_dir, manual_dir, first_epoch, multi_worker
        )
        nan_guard = StopOnNaN()
        backup_every = (backup_every_seconds, backup_every_steps)
        callbacks = _callbacks(
            state, first_epoch, first_step, model_dir, chief, model, backup_every, nan_guard, throughput
        )
        fit = dict(
            validation_data=eval_ds,
            validation_steps=eval_steps,
            callbacks=callbacks,
            verbose=verbose,
            shuffle=False,
        )
        if multi_worker:
            # Keras 3.15's fit() first pulls a batch and calls strategy.reduce() on the whole
            # (images, labels) structure to build the model symbolically, which
            # MultiWorkerMirroredStrategy cannot reduce. The model is built already: drop its
            # record of the strategy and fit inside the scope, where Keras finds the strategy.
            fit_model._distribute_strategy = None
        epoch = first_epoch
        if first_step:
            # Finish the interrupted epoch with the steps it still owes.
            with strategy.scope():
                fit_model.fit(
                    train_ds, initial_epoch=epoch, epochs=epoch + 1, steps_per_epoch=steps - first_step, **fit
                )
            epoch += 1
        if epoch < experiment.epochs and nan_guard.failure is None:
            with strategy.scope():
                fit_model.fit(
                    train_ds, initial_epoch=epoch, epochs=experiment.epochs, steps_per_epoch=steps, **fit
                )
        if nan_guard.failure is not None:
            raise _diverged(experiment, nan_guard.failure, state)

    final = evaluate_model(model, experiment, data_dir, manual_dir)
    summary = _summary(
        experiment, model_dir, start, optimizer, state, final, throughput, strategy.num_replicas_in_sync
    )
    if chief:
        write_json_atomically(os.path.join(model_dir, SUMMARY_FILE), summary, indent=2, sort_keys=True)
    return summary


def _train_on_jax(experiment, model_dir, data_dir, manual_dir, devices, backup_every, verbose):
    """`train()` on Keras' JAX backend: DataParallel, file backups, exactly resumable data."""
    import jax

    from training import data

    start = time.perf_counter()
    workers = cluster_workers()
    if len(workers) > 1:
        raise ValueError(
            f"TF_CONFIG names {len(workers)} workers: training on several machines runs on Keras' "
            "tensorflow backend (MultiWorkerMirroredStrategy). On jax this trainer uses the devices "
            "of one process; multi-host JAX (keras.distribution.initialize) is not implemented. Run "
            "with KERAS_BACKEND=tensorflow, or without TF_CONFIG."
        )
    devices = list(jax.local_devices() if devices is None else devices)
    check_batch_divides(experiment.batch_size, devices)
    distribution = make_distribution(devices)
    _start_run(experiment, model_dir, "jax", chief=True)

    info = data.dataset_info(experiment.dataset, data_dir=data_dir, manual_dir=manual_dir)
    steps = _steps_per_epoch(experiment, info)
    keras.config.set_dtype_policy(resolve_mixed_precision(experiment.mixed_precision, devices))
    keras.utils.set_random_seed(experiment.seed)
    # BatchNorm needs no synchronisation here: its statistics are the global batch's.
    placement = distribution.scope() if distribution is not None else jax.default_device(devices[0])
    with placement:
        model = build_model(experiment, info.num_classes)
        optimizer = compile_model(model, experiment, steps)
        state = FileTrainingState(model, optimizer, model_dir)
        first_epoch, first_step = state.restore()

        throughput = Throughput(experiment.batch_size)
        if _announce(experiment, model_dir, first_epoch, first_step, state.path):
            nan_guard = StopOnNaN()
            callbacks = _callbacks(
                state, first_epoch, first_step, model_dir, True, model, backup_every, nan_guard, throughput
            )
            validation = _pad_to_multiple(_eval_dataset(experiment, info, data_dir, manual_dir), len(devices))
            fit = dict(validation_data=validation, callbacks=callbacks, verbose=verbose, shuffle=False)

            def batches(epoch, skip):
                return _epoch_batches(experiment, info, data_dir, manual_dir, steps, epoch, skip)

            epoch = first_epoch
            if first_step:
                # Finish the interrupted epoch with the batches it still owes.
                model.fit(
                    batches(epoch, first_step),
                    initial_epoch=epoch,
                    epochs=epoch + 1,
                    steps_per_epoch=steps - first_step,
                    **fit,
                )
                epoch += 1
            if epoch < experiment.epochs and nan_guard.failure is None:
                model.fit(
                    batches(epoch, 0),
                    initial_epoch=epoch,
                    epochs=experiment.epochs,
                    steps_per_epoch=steps,
                    **fit,
                )
            if nan_guard.failure is not None:
                raise _diverged(experiment, nan_guard.failure, state)

        final = evaluate_model(model, experiment, data_dir, manual_dir)
    summary = _summary(experiment, model_dir, start, optimizer, state, final, throughput, len(devices))
    write_json_atomically(os.path.join(model_dir, SUMMARY_FILE), summary, indent=2, sort_keys=True)
    return summary
