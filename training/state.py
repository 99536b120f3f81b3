"""The resumable state of a training run and the callbacks that keep it.

`TrainingState` (TensorFlow: a `tf.train.Checkpoint` in `backup/`) and
`FileTrainingState` (any backend: one `.npz` file) hold the weights, optimiser,
epoch, step and best metric; `Backup` writes them every few minutes and at each
epoch end, `SaveBestAndLast` the `.keras` files (atomically), `StopOnNaN` and
`Throughput` watch the run. `training.fit_loop` puts them together.
"""

import json
import math
import os
import shutil
import tempfile
import time
import zipfile

import keras
import numpy as np

from keras_sknet.utils.files import atomic_path

BACKUP_DIR = "backup"


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
        import tensorflow as tf

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

    @property
    def best_value(self):
        """The best validation top-1 so far (-inf before the first)."""
        return float(self.best.numpy())

    def record_best(self, value):
        self.best.assign(value)

    def restore(self):
        """Restores the latest backup if any; returns `(epoch, step)` to continue from."""
        import tensorflow as tf

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
        import tensorflow as tf

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


class FileTrainingState:
    """The resumable state of a run in one NumPy file: the trainer's backup on JAX.

    `model_dir/backup/state.npz` holds every variable of the model (the BatchNorm
    statistics of SK paths too) and of the optimiser (iterations, momenta), the
    epoch, the step in the epoch and the best validation top-1. It is written
    beside the previous file and renamed onto it (`atomic_path`), so a kill
    during a save leaves the previous backup whole. As in `TrainingState`,
    variables are stored in their order, which the architecture fixes; restoring
    checks their number, shapes and dtypes. Same interface as `TrainingState`.
    In a run of several JAX processes, process 0 (`chief`) writes the file and
    every process reads it at a relaunch: the variables hold the same values on all.

    Args:
        model, optimizer: the built model and its built optimiser.
        model_dir: the run directory.
        chief: whether this process writes the backup (False on the other processes).

    Example:
        >>> state = FileTrainingState(model, model.optimizer, "runs/x")  # doctest: +SKIP
        >>> epoch, step = state.restore()  # (0, 0) without a backup
    """

    FILE = "state.npz"

    def __init__(self, model, optimizer, model_dir, chief=True):
        self.groups = {"model": list(model.variables), "optimizer": list(optimizer.variables)}
        self.chief = chief
        self.directory = os.path.join(model_dir, BACKUP_DIR)
        self.path = os.path.join(self.directory, self.FILE)
        self.best_value = -math.inf

    def record_best(self, value):
        self.best_value = float(value)

    def _mismatch(self, detail):
        return ValueError(
            f"The backup {self.path} does not fit this model and optimiser (written for another "
            f"architecture or recipe?): {detail}. Train into a new --model-dir or remove {self.directory}."
        )

    def restore(self):
        """Restores the backup if there is one; returns `(epoch, step)` to continue from."""
        if not os.path.exists(self.path):
            return 0, 0
        try:
            with np.load(self.path, allow_pickle=False) as saved:
                meta = json.loads(str(saved["meta"]))
                values = {
                    group: [saved[f"{group}/{i}"] for i in range(len(meta["paths"][group]))]
                    for group in self.groups
                }
        except (OSError, ValueError, KeyError, zipfile.BadZipFile) as error:
            raise ValueError(f"The backup {self.path} cannot be read: {error}") from error
        for group, variables in self.groups.items():
            if len(values[group]) != len(variables):
                raise self._mismatch(f"{len(values[group])} {group} variables saved, {len(variables)} here")
            for variable, value, path in zip(variables, values[group], meta["paths"][group]):
                # The array's dtype: JAX keeps int64 variables in int32 unless x64 is enabled.
                dtype = np.dtype(keras.backend.standardize_dtype(variable.value.dtype))
                if tuple(value.shape) != tuple(variable.shape) or value.dtype != dtype:
                    raise self._mismatch(
                        f"{path} was saved as {value.dtype}{list(value.shape)}, {variable.path} is "
                        f"{dtype}{list(variable.shape)}"
                    )
        for group, variables in self.groups.items():
            for variable, value in zip(variables, values[group]):
                variable.assign(value)
        self.best_value = float(meta["best"])
        return int(meta["epoch"]), int(meta["step"])

    def save(self, epoch, step):
        """Writes the state, `epoch` and `step` (batches done in that epoch) to the backup file."""
        if not self.chief:
            return
        arrays = {
            f"{group}/{i}": variable.numpy()
            for group, variables in self.groups.items()
            for i, variable in enumerate(variables)
        }
        meta = {
            "epoch": int(epoch),
            "step": int(step),
            "best": self.best_value,
            "paths": {group: [v.path for v in variables] for group, variables in self.groups.items()},
        }
        with atomic_path(self.path, suffix=".npz") as tmp:
            np.savez(tmp, meta=np.array(json.dumps(meta)), **arrays)


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
        # On JAX, reading `self.model` also writes the step's results back into the
        # variables that the state saves (Keras keeps them apart during an epoch).
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
    """Writes `last.keras` after every epoch and `best.keras` when `monitor` improves (atomically).

    Args:
        state: the run's training state (keeps the best value).
        model_dir: where the chief writes the files.
        monitor: the log that picks the best model.
        chief: whether this process writes the files.
        together: the other processes save too, into a scratch folder that is removed: on
            several JAX processes saving a model runs collectives that every process must join.
        model: what to save (default the model being fit).
    """

    def __init__(self, state, model_dir, monitor="val_top1", chief=True, model=None, together=False):
        super().__init__()
        self.saved_model = model
        self.state = state
        self.model_dir = model_dir
        self.monitor = monitor
        self.chief = chief
        self.together = together

    def _save(self, model, name):
        if self.chief:
            atomic_save_model(model, os.path.join(self.model_dir, name))
        elif self.together:
            scratch = tempfile.mkdtemp()
            try:
                model.save(os.path.join(scratch, name))
            finally:
                shutil.rmtree(scratch, ignore_errors=True)

    def on_epoch_end(self, epoch, logs=None):
        if self.model.stop_training:
            return
        model = self.saved_model or self.model
        self._save(model, "last.keras")
        value = (logs or {}).get(self.monitor)
        # Every process keeps the best value (its summary says it); the chief writes the file.
        if value is not None and float(np.mean(value)) > self.state.best_value:
            self.state.record_best(float(np.mean(value)))
            self._save(model, "best.keras")


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
