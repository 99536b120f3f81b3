"""The trainer: distribution strategy, callbacks and the fit loop, in one place.

    strategy = make_strategy()                      # Mirrored / MultiWorker / default
    result = train(experiment, model_dir="runs/x")  # resumes by itself after a crash

Order of things (as TF Model Garden does it): the strategy is created first;
the model and its optimiser are built inside `strategy.scope()`; under mixed
precision the classifier runs in float32 so the loss sees float32
probabilities. A backup of the whole training state (weights, optimiser,
epoch, step, best metric) is written every few minutes and at each epoch end;
the same command started again restores it and continues at the step it
reached, so a run killed with SIGKILL ends with the right number of epochs.
"""

import json
import math
import os
import shutil
import tempfile
import time

import keras
import numpy as np
import tensorflow as tf

from keras_sknet.utils.files import atomic_path, write_json_atomically
from training.optimizers import SGDWeightDecay, StepWithWarmup

CONFIG_FILE = "config.json"
SUMMARY_FILE = "summary.json"
BACKUP_DIR = "backup"


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


def resolve_mixed_precision(setting):
    """The Keras dtype policy name for an experiment's `mixed_precision` setting."""
    if setting in (None, "none", "float32"):
        return "float32"
    if setting == "auto":
        return "mixed_float16" if tf.config.list_logical_devices("GPU") else "float32"
    if setting in ("float16", "bfloat16"):
        return f"mixed_{setting}"
    raise ValueError(
        f"`mixed_precision` must be one of None, 'auto', 'float16', 'bfloat16'. Received: {setting!r}"
    )


# ---------------------------------------------------------------------------------------
# Training state: backup, restore, atomic model files


def atomic_save_model(model, path):
    """Writes a `.keras` model to `path` through a temporary file: never a partial file."""
    with atomic_path(path, suffix=".keras") as tmp:
        model.save(tmp)


class TrainingState:
    """The resumable state of a run: weights, optimiser, epoch, step in the epoch, best metric.

    Written with `tf.train.CheckpointManager` into `model_dir/backup`: the data files
    are written first and the `checkpoint` index is replaced atomically last, so a
    kill during a save leaves the previous backup intact. Non-chief workers of a
    multi-worker run write to a temporary directory (every worker must take part
    in a save), which is removed.

    The variables are saved as ordered lists rather than through the model's object
    graph: TensorFlow's checkpoints do not see layers that Keras tracks in lists (the
    paths of an SK unit), whose BatchNorm statistics would silently go unsaved. The
    order of a model's variables is fixed by its architecture; restoring checks that
    every saved value found its variable, with the same shape.
    """

    def __init__(self, model, optimizer, model_dir, chief=True):
        self.epoch = tf.Variable(0, dtype=tf.int64, trainable=False)
        self.step = tf.Variable(0, dtype=tf.int64, trainable=False)
        self.best = tf.Variable(-np.inf, dtype=tf.float64, trainable=False)
        self.checkpoint = tf.train.Checkpoint(
            model=list(model.variables),
            optimizer=list(optimizer.variables),
            epoch=self.epoch,
            step=self.step,
            best=self.best,
        )
        self.chief = chief
        self.directory = os.path.join(model_dir, BACKUP_DIR)
        self.manager = tf.train.CheckpointManager(self.checkpoint, self.directory, max_to_keep=2)

    def restore(self):
        """Restores the latest backup if any; returns `(epoch, step)` to continue from."""
        latest = self.manager.latest_checkpoint
        if latest:
            try:
                self.checkpoint.restore(latest).assert_consumed()
            except (AssertionError, ValueError, tf.errors.OpError) as error:
                raise ValueError(
                    f"The backup {latest} does not fit this model and optimiser (written for another "
                    f"architecture or recipe?): {str(error)[:160]}... Train into a new --model-dir "
                    f"or remove {self.directory}."
                ) from error
        return int(self.epoch.numpy()), int(self.step.numpy())

    def save(self, epoch, step):
        self.epoch.assign(epoch)
        self.step.assign(step)
        if self.chief:
            self.manager.save()
            return
        scratch = tempfile.mkdtemp()
        try:
            tf.train.CheckpointManager(self.checkpoint, scratch, max_to_keep=1).save()
        finally:
            shutil.rmtree(scratch, ignore_errors=True)


class Backup(keras.callbacks.Callback):
    """Saves the training state every `every_seconds` (and `every_steps`) and at epoch ends."""

    def __init__(self, state, first_epoch, first_step, every_seconds=300, every_steps=None):
        super().__init__()
        self.state = state
        self.every_seconds = every_seconds
        self.every_steps = every_steps
        self._epoch = first_epoch
        self._offset = first_step  # batches already done in the resumed epoch
        self._last = time.monotonic()

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        if self.model.stop_training:  # a diverged step must not overwrite the good backup
            return
        done = self._offset + batch + 1
        due_time = self.every_seconds and time.monotonic() - self._last >= self.every_seconds
        due_steps = self.every_steps and done % self.every_steps == 0
        if due_time or due_steps:
            self.state.save(self._epoch, done)
            self._last = time.monotonic()

    def on_epoch_end(self, epoch, logs=None):
        if self.model.stop_training:
            return
        self._offset = 0
        self.state.save(epoch + 1, 0)
        self._last = time.monotonic()


class StopOnNaN(keras.callbacks.Callback):
    """Stops training at the first non-finite loss and remembers where."""

    def __init__(self):
        super().__init__()
        self.epoch = 0
        self.failure = None

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(float(np.mean(loss))):
            self.failure = (self.epoch, batch, float(np.mean(loss)))
            self.model.stop_training = True


class SaveBestAndLast(keras.callbacks.Callback):
    """Writes `last.keras` after every epoch and `best.keras` when `monitor` improves (atomically)."""

    def __init__(self, state, model_dir, monitor="val_top1", chief=True, model=None):
        super().__init__()
        self.saved_model = model  # what to save; default the model being fit
        self.state = state
        self.model_dir = model_dir
        self.monitor = monitor
        self.chief = chief

    def on_epoch_end(self, epoch, logs=None):
        if self.model.stop_training or not self.chief:
            return
        model = self.saved_model or self.model
        atomic_save_model(model, os.path.join(self.model_dir, "last.keras"))
        value = (logs or {}).get(self.monitor)
        if value is not None and float(np.mean(value)) > self.state.best.numpy():
            self.state.best.assign(float(np.mean(value)))
            atomic_save_model(model, os.path.join(self.model_dir, "best.keras"))


class Throughput(keras.callbacks.Callback):
    """Training images per second, from the second batch on (the first compiles)."""

    def __init__(self, batch_size):
        super().__init__()
        self.batch_size = batch_size
        self.images = 0
        self.seconds = 0.0
        self._start = None
        self._first = True

    def on_train_batch_begin(self, batch, logs=None):
        self._start = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        if self._first:
            self._first = False
            return
        self.seconds += time.perf_counter() - self._start
        self.images += self.batch_size

    @property
    def images_per_second(self):
        return self.images / self.seconds if self.seconds else float("nan")


# ---------------------------------------------------------------------------------------
# The run


def _datasets(experiment, info, strategy, data_dir, manual_dir, first_epoch, multi_worker):
    """Distributed training and evaluation datasets, and the steps per epoch."""
    from training import data

    area_range = data.LIGHTWEIGHT_AREA_RANGE if experiment.augment == "light" else data.STANDARD_AREA_RANGE
    # A resumed run reshuffles from a seed of its own: the same recipe, not the same batches again.
    seed = experiment.seed * 1000 + first_epoch
    common = dict(data_dir=data_dir, manual_dir=manual_dir, label_format="one_hot")

    def train_fn(input_context):
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
            input_context=input_context,
            seed=seed,
            **common,
        )

    def eval_fn(input_context):
        return data.make_dataset(
            experiment.dataset,
            info.eval_split,
            experiment.batch_size,
            experiment.eval_image_size,
            training=False,
            crop_pct=experiment.crop_pct,
            repeat=multi_worker,
            input_context=input_context,
            **common,
        )

    steps = info.splits[info.train_split] // experiment.batch_size
    if steps < 1:
        raise ValueError(
            f"The batch size {experiment.batch_size} is larger than the {info.splits[info.train_split]} "
            f"training examples of {experiment.dataset!r}: no step fits in an epoch."
        )
    eval_examples = info.splits[info.eval_split]
    # Several workers need a fixed number of evaluation steps; one process reads the split once.
    eval_steps = max(1, eval_examples // experiment.batch_size) if multi_worker else None
    return (
        strategy.distribute_datasets_from_function(train_fn),
        strategy.distribute_datasets_from_function(eval_fn),
        steps,
        eval_steps,
    )


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
    optimizer = make_optimizer(experiment, steps_per_epoch)
    model.compile(
        optimizer=optimizer,
        loss=keras.losses.CategoricalCrossentropy(label_smoothing=experiment.label_smoothing),
        metrics=[
            keras.metrics.CategoricalAccuracy(name="top1"),
            keras.metrics.TopKCategoricalAccuracy(5, name="top5"),
        ],
        jit_compile=experiment.jit_compile,
    )
    # Build the optimiser's variables now, so that a backup can be restored into them.
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


def evaluate_model(model, experiment, data_dir=None, manual_dir=None, image_size=None, crop_pct=None):
    """Single-crop top-1 / top-5 accuracy of `model` on the experiment's evaluation split.

    Args:
        image_size: the evaluation crop (default the experiment's; Table 2 uses 224 and 320).
        crop_pct: the resize before the centre crop is image_size / crop_pct.

    Returns:
        {"top1": ..., "top5": ..., "image_size": ..., "examples": ...}
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
    predict = tf.function(lambda x: model(x, training=False))
    examples = 0
    for images, labels in dataset:
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


def train(
    experiment,
    model_dir,
    data_dir=None,
    manual_dir=None,
    strategy=None,
    backup_every_seconds=300,
    backup_every_steps=None,
    verbose="auto",
):
    """Trains `experiment` into `model_dir`, resuming from its backup if there is one.

    Args:
        experiment: a `training.experiments.Experiment`.
        model_dir: the run directory: config.json, backup/, best.keras, last.keras,
            metrics.csv, logs/ (TensorBoard), summary.json.
        data_dir, manual_dir: TFDS data directory and manual-download directory.
        strategy: a `tf.distribute` strategy (default: `make_strategy()`).
        backup_every_seconds, backup_every_steps: how often the training state is
            backed up within an epoch (it is also backed up at each epoch end).
        verbose: Keras' fit verbosity ("auto", 0, 1 progress bar, 2 one line per epoch).

    Returns:
        The summary dict (also written to `model_dir/summary.json`).

    Raises:
        TrainingDiverged: the loss became NaN or infinite.
        ValueError: a bad recipe, or a model_dir that holds another recipe.
    """
    from keras_sknet.layers.batch_norm import synchronized_batch_norm
    from training import data

    start = time.perf_counter()
    strategy = strategy or make_strategy()
    chief = is_chief(strategy)
    multi_worker = len(cluster_workers()) > 1
    os.makedirs(model_dir, exist_ok=True)
    _check_same_recipe(model_dir, experiment)
    if chief:
        write_json_atomically(
            os.path.join(model_dir, CONFIG_FILE), json.loads(experiment.to_json()), indent=2, sort_keys=True
        )

    info = data.dataset_info(experiment.dataset, data_dir=data_dir, manual_dir=manual_dir)
    steps = info.splits[info.train_split] // experiment.batch_size
    keras.config.set_dtype_policy(resolve_mixed_precision(experiment.mixed_precision))
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
    if first_epoch >= experiment.epochs:
        print(f"{experiment.name}: all {experiment.epochs} epochs are already done in {model_dir}.")
    else:
        if first_epoch or first_step:
            print(
                f"Resuming {experiment.name} at epoch {first_epoch + 1}, step {first_step}, from {state.directory}."
            )
        train_ds, eval_ds, steps, eval_steps = _datasets(
            experiment, info, strategy, data_dir, manual_dir, first_epoch, multi_worker
        )
        nan_guard = StopOnNaN()
        callbacks = [
            nan_guard,  # first: a NaN step is flagged before anything else saves
            Backup(state, first_epoch, first_step, backup_every_seconds, backup_every_steps),
            SaveBestAndLast(state, model_dir, chief=chief, model=model),
            throughput,
        ]
        if chief:  # other workers of a multi-worker run write nothing into the run directory
            callbacks.append(keras.callbacks.CSVLogger(os.path.join(model_dir, "metrics.csv"), append=True))
            callbacks.append(keras.callbacks.TensorBoard(os.path.join(model_dir, "logs"), write_graph=False))
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
            fail_epoch, batch, loss = nan_guard.failure
            raise TrainingDiverged(
                f"{experiment.name} diverged: loss {loss} at epoch {fail_epoch + 1}, batch {batch + 1}. "
                f"Nothing was saved from the diverged state; the last backup in {state.directory} is "
                "intact. Lower the learning rate (--set learning_rate=...), check the data or turn off "
                "mixed precision, then run the same command to resume."
            )

    summary = {
        "experiment": experiment.name,
        "model": experiment.model,
        "dataset": experiment.dataset,
        "epochs": experiment.epochs,
        "steps": int(optimizer.iterations.numpy()),
        "best_val_top1": float(state.best.numpy()),
        "final": evaluate_model(model, experiment, data_dir, manual_dir),
        "train_images_per_second": throughput.images_per_second if throughput.images else None,
        "wall_time_seconds": time.perf_counter() - start,
        "replicas": strategy.num_replicas_in_sync,
        "mixed_precision": keras.config.dtype_policy().name,
        "files": {
            name: os.path.join(model_dir, name)
            for name in ("best.keras", "last.keras", "metrics.csv", "logs", CONFIG_FILE, SUMMARY_FILE)
        },
    }
    if chief:
        write_json_atomically(os.path.join(model_dir, SUMMARY_FILE), summary, indent=2, sort_keys=True)
    return summary
