"""The resumable fit loop, written once for Keras' TensorFlow and JAX backends.

    summary = run_resumably(experiment, model_dir, backend_run, data_dir, manual_dir, ...)

A run directory holds the recipe (config.json), the data and its classes
(data.json), the backup of the training state (backup/), the models
(best.keras, last.keras), the metrics (metrics.csv, logs/) and summary.json.
`run_resumably` checks that the directory may take the run (`training.run_dir`)
and holds no other recipe nor another backend's backup, builds and compiles the
model, restores the backup, finishes an interrupted epoch with the steps it
still owes, fits the epochs left, and evaluates. Only a run that reached its
first step claims the directory (writes config.json).

What differs per backend is a `BackendRun` (`training.trainer` has the two):
where the run computes (a `tf.distribute` strategy or JAX devices), the
precision policy, how the model is built, the backup's format, and how the
training batches are fed (one stream on TensorFlow; batches seeded per epoch on
JAX, so that a resumed run sees those of an uninterrupted one).
"""

import abc
import contextlib
import importlib.util
import json
import os
import time

import keras

from keras_sknet.utils.files import write_json_atomically
from training import run_dir
from training.evaluation import evaluate_model
from training.model import compile_model
from training.run_dir import CONFIG_FILE, DATA_FILE, SUMMARY_FILE
from training.state import BACKUP_DIR, Backup, FileTrainingState, SaveBestAndLast, StopOnNaN, Throughput


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite; the run stopped without saving the broken state."""


class BackendRun(abc.ABC):
    """What one backend does differently in `run_resumably`: small hooks, called in this order.

    Attributes:
        backend: Keras' backend name; also which backups the run may resume ("tensorflow", "jax").
        chief: whether this process writes the run directory (False on other workers).
        replicas: how many devices split the global batch (recorded in the summary).
        saves_together: every process takes part in saving a model (several JAX processes).
    """

    backend = None
    chief = True
    replicas = 1
    saves_together = False

    @abc.abstractmethod
    def steps_per_epoch(self, experiment, info):
        """Optimiser steps per epoch of the training split (`info`: `training.data.DatasetInfo`)."""

    @abc.abstractmethod
    def policy(self, experiment):
        """The Keras dtype policy name of the run."""

    def placement(self):
        """The context the whole run is in, evaluation included (default: none)."""
        return contextlib.nullcontext()

    def scope(self):
        """The context that builds the model and runs each `fit` call (default: none)."""
        return contextlib.nullcontext()

    @abc.abstractmethod
    def build(self, experiment, num_classes):
        """`(model, fit_model)`: the model saved and evaluated, and the one `fit` trains."""

    @abc.abstractmethod
    def training_state(self, fit_model, optimizer, model_dir):
        """The backup of the run (`training.state.TrainingState` or `FileTrainingState`)."""

    @abc.abstractmethod
    def fit_data(self, experiment, info, data_dir, manual_dir, steps, first_epoch, fit_model):
        """`(training_batches, validation)`: training_batches(epoch, skip) is what a `fit` call
        starting at step `skip` of `epoch` reads; validation is `fit`'s validation arguments."""


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


class _ClaimAtFirstStep(keras.callbacks.Callback):
    """Writes config.json and data.json once the first step has trained: the run has started.

    A run that fails before (a bad model argument, a shape the model cannot take, a
    first step that diverges) leaves the folder unclaimed, free for the corrected command.
    """

    def __init__(self, model_dir, experiment, record, chief):
        super().__init__()
        self.model_dir = model_dir
        self.recipe = json.loads(experiment.to_json())
        self.record = record
        self.chief = chief
        self.claimed = False

    def on_train_batch_end(self, batch, logs=None):
        if self.claimed or self.model.stop_training:
            return
        if self.chief:
            run_dir.claim_run_dir(self.model_dir, self.recipe, self.record)
        self.claimed = True


class _EpochProgress(keras.callbacks.ProgbarLogger):
    """Keras' progress bar with the run's epoch numbering ("Epoch 6/8", not "6/6", for a resumed epoch)."""

    def __init__(self, epochs):
        super().__init__()
        self.run_epochs = epochs

    def set_params(self, params):
        super().set_params({**params, "epochs": self.run_epochs})


def _announce(experiment, model_dir, first_epoch, first_step, backup):
    """Says whether there is training left to do, and where a resumed run picks up."""
    if first_epoch >= experiment.epochs:
        print(f"{experiment.name}: all {experiment.epochs} epochs are already done in {model_dir}.")
        return False
    if first_epoch or first_step:
        print(f"Resuming {experiment.name} at epoch {first_epoch + 1}, step {first_step}, from {backup}.")
    return True


def _has_tensorflow():
    """Whether TensorFlow is installed (without importing it); False where an import hook refuses it."""
    try:
        return importlib.util.find_spec("tensorflow") is not None
    except ImportError:
        return False


def _callbacks(
    state, first_epoch, first_step, model_dir, run, model, backup_every, nan_guard, throughput, claim
):
    chief = run.chief
    callbacks = [
        nan_guard,  # first: a NaN step is flagged before anything else saves
        claim,  # before the first backup
        Backup(state, first_epoch, first_step, *backup_every),
        SaveBestAndLast(state, model_dir, chief=chief, model=model, together=run.saves_together),
        throughput,
    ]
    if chief:  # other workers of a multi-worker run write nothing into the run directory
        callbacks.append(keras.callbacks.CSVLogger(os.path.join(model_dir, "metrics.csv"), append=True))
        if _has_tensorflow():  # Keras' TensorBoard callback writes through TensorFlow
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


def _summary(experiment, model_dir, start, optimizer, state, final, throughput, replicas, record):
    return {
        "experiment": experiment.name,
        "model": experiment.model,
        "dataset": run_dir.dataset_label(experiment.dataset, record["data_dir"]),
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
            for name in (
                "best.keras",
                "last.keras",
                "metrics.csv",
                "logs",
                CONFIG_FILE,
                DATA_FILE,
                SUMMARY_FILE,
            )
        },
    }


def _fit_epochs(experiment, run, fit_model, batches, steps, first_epoch, first_step, nan_guard, fit):
    """The interrupted epoch's remaining steps (if any), then the epochs left; stops on NaN."""
    epoch = first_epoch
    if first_step:
        # Finish the interrupted epoch with the steps it still owes.
        with run.scope():
            fit_model.fit(
                batches(epoch, first_step),
                initial_epoch=epoch,
                epochs=epoch + 1,
                steps_per_epoch=steps - first_step,
                **fit,
            )
        epoch += 1
    if epoch < experiment.epochs and nan_guard.failure is None:
        with run.scope():
            fit_model.fit(
                batches(epoch, 0), initial_epoch=epoch, epochs=experiment.epochs, steps_per_epoch=steps, **fit
            )


def run_resumably(experiment, model_dir, run, data_dir, manual_dir, backup_every, verbose, start):
    """Trains `experiment` into `model_dir` on `run`'s backend, resuming from its backup if any.

    Args:
        experiment: a `training.experiments.Experiment`.
        model_dir: the run directory (see the module docstring).
        run: a `BackendRun`: what this backend does differently.
        data_dir, manual_dir: TFDS data directory and manual-download directory.
        backup_every: `(seconds, steps)`: how often the state is backed up within an epoch.
        verbose: Keras' fit verbosity.
        start: `time.perf_counter()` when the run began, for the summary's wall time.

    Returns:
        The summary dict (also written to `model_dir/summary.json` by the chief).

    Raises:
        TrainingDiverged: the loss became NaN or infinite.
    """
    from training import data

    # The folder is claimed only at the first step (`_ClaimAtFirstStep`).
    _check_same_recipe(model_dir, experiment)
    _check_backup_backend(model_dir, run.backend)
    info = data.dataset_info(experiment.dataset, data_dir=data_dir, manual_dir=manual_dir)
    run_dir.check_same_classes(model_dir, info)
    record = run_dir.data_record(experiment.dataset, info, data_dir, manual_dir)
    steps = run.steps_per_epoch(experiment, info)
    keras.config.set_dtype_policy(run.policy(experiment))
    keras.utils.set_random_seed(experiment.seed)
    with run.placement():
        with run.scope():
            model, fit_model = run.build(experiment, info.num_classes)
            optimizer = compile_model(fit_model, experiment, max(steps, 1))
            state = run.training_state(fit_model, optimizer, model_dir)
            first_epoch, first_step = state.restore()

        throughput = Throughput(experiment.batch_size)
        # The backup is one file on JAX (`path`), a checkpoint directory on TensorFlow.
        backup = getattr(state, "path", state.directory)
        if _announce(experiment, model_dir, first_epoch, first_step, backup):
            batches, validation = run.fit_data(
                experiment, info, data_dir, manual_dir, steps, first_epoch, fit_model
            )
            os.makedirs(model_dir, exist_ok=True)  # for the logs; a build that fails leaves no folder
            nan_guard = StopOnNaN()
            claim = _ClaimAtFirstStep(model_dir, experiment, record, run.chief)
            callbacks = _callbacks(
                state,
                first_epoch,
                first_step,
                model_dir,
                run,
                model,
                backup_every,
                nan_guard,
                throughput,
                claim,
            )
            if verbose != 0:
                callbacks.append(_EpochProgress(experiment.epochs))
            fit = dict(callbacks=callbacks, verbose=verbose, shuffle=False, **validation)
            _fit_epochs(experiment, run, fit_model, batches, steps, first_epoch, first_step, nan_guard, fit)
            if nan_guard.failure is not None:
                raise _diverged(experiment, nan_guard.failure, state)

        final = evaluate_model(model, experiment, data_dir, manual_dir)
    summary = _summary(
        experiment, model_dir, start, optimizer, state, final, throughput, run.replicas, record
    )
    if run.chief:
        write_json_atomically(os.path.join(model_dir, SUMMARY_FILE), summary, indent=2, sort_keys=True)
    return summary
