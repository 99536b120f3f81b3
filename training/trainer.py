"""The trainer: `train()` on Keras' TensorFlow or JAX backend, resuming by itself after a crash.

    strategy = make_strategy()                      # TensorFlow: Mirrored / MultiWorker / default
    result = train(experiment, model_dir="runs/x")  # resumes by itself after a crash

Order of things (as TF Model Garden does it): the strategy is created first;
the model and its optimiser are built inside `strategy.scope()`; under mixed
precision the classifier runs in float32 so the loss sees float32
probabilities. A backup of the whole training state (weights, optimiser,
epoch, step, best metric) is written every few minutes and at each epoch end;
the same command started again restores it and continues at the step it
reached, so a run killed with SIGKILL ends with the right number of epochs.

The pieces, one idea each: `training.distribution` (strategy, devices),
`training.precision` (the dtype policy), `training.inputs` (the run's
datasets), `training.model` (model, optimiser, compile), `training.evaluation`
(top-1 / top-5), `training.fit_loop` (the resumable loop, written once). This
module holds `train()` and what each backend does differently in the loop.

On Keras' JAX backend (`KERAS_BACKEND=jax`) the same `train()` runs the same
recipes with JAX's counterparts: `keras.distribution.DataParallel` over the
local devices instead of a `tf.distribute` strategy, the step always compiled
by XLA, and the backup in one NumPy file (`FileTrainingState`). TensorFlow then
only reads the data (`training.data` is tf.data); the trainer imports it only
where it uses it. Differences that matter:
- BatchNorm statistics are those of the global batch on JAX (DataParallel runs
  one program over the whole batch; XLA adds the cross-device sums), which is
  what `sync_batch_norm=True` asks of TensorFlow: the field changes nothing there.
- The data of epoch `e` is seeded by `(seed, e)` and a run resumed part-way
  through an epoch skips the batches it already trained on, so it sees exactly
  the batches of an uninterrupted run (TensorFlow: one stream reseeded at resume).
- Several processes (one per machine, or per GPU) are JAX's own multi-process runs
  (`training.processes`, started by the command line before `train()`), not
  `TF_CONFIG`: `DataParallel` then spans every process's devices, each process feeds
  its rows of each global batch (`inputs.epoch_batches`), process 0 writes the run
  directory and every process reads the backup at a relaunch.
"""

import os
import time

import keras

from training import inputs
from training.backends import BACKENDS, refusal
from training.distribution import (
    MultiWorkerModel,
    check_batch_divides,
    cluster_workers,
    is_chief,
    make_distribution,
    make_strategy,
)
from training.experiments import check_experiment
from training.fit_loop import BackendRun, run_resumably
from training.model import build_model, model_function
from training.precision import resolve_mixed_precision, warn_if_slow_on_cpu
from training.run_dir import check_run_dir
from training.state import BACKUP_DIR, FileTrainingState, TrainingState
from training.workers import check_shared_model_dir, lost_worker_error

__all__ = ["train"]


class _TensorFlowRun(BackendRun):
    """A `tf.distribute` strategy; a checkpoint backup; one training stream, reseeded at resume."""

    backend = "tensorflow"

    def __init__(self, strategy):
        self.strategy = strategy or make_strategy()
        self.chief = is_chief(self.strategy)
        self.workers = len(cluster_workers())
        self.multi_worker = self.workers > 1
        resolver = getattr(self.strategy, "cluster_resolver", None)
        self.worker_index = getattr(resolver, "task_id", 0) or 0
        self.replicas = self.strategy.num_replicas_in_sync

    def steps_per_epoch(self, experiment, info):
        # Checked (at least one step) when the datasets are made: a finished run needs none.
        return info.splits[info.train_split] // experiment.batch_size

    def policy(self, experiment):
        policy = resolve_mixed_precision(experiment.mixed_precision, model=experiment.model)
        warn_if_slow_on_cpu(policy)
        return policy

    def scope(self):
        return self.strategy.scope()

    def build(self, experiment, num_classes):
        from keras_sknet.layers.batch_norm import synchronized_batch_norm

        with synchronized_batch_norm(experiment.sync_batch_norm):
            model = build_model(experiment, num_classes)
        # What fit() trains: the model itself, or a view of it with worker-friendly logs.
        fit_model = (
            MultiWorkerModel(model.inputs, model.outputs, name=model.name) if self.multi_worker else model
        )
        return model, fit_model

    def training_state(self, fit_model, optimizer, model_dir):
        return TrainingState(fit_model, optimizer, model_dir, self.chief)

    def fit_data(self, experiment, info, data_dir, manual_dir, steps, first_epoch, fit_model):
        train_ds, eval_ds, _, eval_steps = inputs.distributed_datasets(
            experiment, info, self.strategy, data_dir, manual_dir, first_epoch, self.multi_worker
        )
        if self.multi_worker:
            # Keras 3.15's fit() first pulls a batch and calls strategy.reduce() on the whole
            # (images, labels) structure to build the model symbolically, which
            # MultiWorkerMirroredStrategy cannot reduce. The model is built already: drop its
            # record of the strategy and fit inside the scope, where Keras finds the strategy.
            fit_model._distribute_strategy = None
        # One stream for every fit call: it goes on where the previous call stopped.
        return (lambda epoch, skip: train_ds), dict(validation_data=eval_ds, validation_steps=eval_steps)


class _JaxRun(BackendRun):
    """`DataParallel` over local devices; a one-file backup; batches seeded per epoch (exact resume)."""

    backend = "jax"

    def __init__(self, devices, batch_size):
        import jax

        workers = cluster_workers()
        if len(workers) > 1:
            raise ValueError(
                f"TF_CONFIG names {len(workers)} workers: it starts several workers of Keras' tensorflow "
                "backend (MultiWorkerMirroredStrategy). On jax, start several processes with "
                "--coordinator-address HOST:PORT --num-processes N --process-id I (see docs/training.md, "
                "Several machines), or run with KERAS_BACKEND=tensorflow; unset TF_CONFIG."
            )
        # Several processes (jax.distributed): every device of every process splits the batch.
        self.processes = jax.process_count()
        self.process = jax.process_index()
        self.chief = self.process == 0
        self.saves_together = self.processes > 1
        default = jax.devices() if self.processes > 1 else jax.local_devices()
        self.devices = list(default if devices is None else devices)
        check_batch_divides(batch_size, self.devices)
        self.replicas = len(self.devices)
        self.distribution = make_distribution(self.devices)

    def steps_per_epoch(self, experiment, info):
        return inputs.steps_per_epoch(experiment, info)

    def policy(self, experiment):
        return resolve_mixed_precision(experiment.mixed_precision, self.devices, experiment.model)

    def placement(self):
        import jax

        # BatchNorm needs no synchronisation here: its statistics are the global batch's.
        if self.distribution is not None:
            return self.distribution.scope()
        return jax.default_device(self.devices[0])

    def build(self, experiment, num_classes):
        model = build_model(experiment, num_classes)
        return model, model

    def training_state(self, fit_model, optimizer, model_dir):
        return FileTrainingState(fit_model, optimizer, model_dir, self.chief)

    def fit_data(self, experiment, info, data_dir, manual_dir, steps, first_epoch, fit_model):
        # Each process feeds its part of each global batch; JAX puts the parts together.
        part = (self.process, self.processes)

        def batches(epoch, skip):
            return inputs.epoch_batches(experiment, info, data_dir, manual_dir, steps, epoch, skip, *part)

        validation = inputs.pad_to_multiple(
            inputs.eval_dataset(experiment, info, data_dir, manual_dir), len(self.devices), *part
        )
        return batches, dict(validation_data=validation)


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
        model_dir: the run directory: config.json, data.json (the data and its classes,
            for `training.evaluate`), backup/, best.keras, last.keras, metrics.csv,
            logs/ (TensorBoard), summary.json; workers.json on several workers, who must all
            be given this same folder (`training.workers`). A folder of the user's files is refused.
        data_dir, manual_dir: TFDS data directory and manual-download directory.
        strategy: TensorFlow: a `tf.distribute` strategy (default: `make_strategy()`).
        backup_every_seconds, backup_every_steps: how often the training state is
            backed up within an epoch (it is also backed up at each epoch end).
        verbose: Keras' fit verbosity ("auto", 0, 1 progress bar, 2 one line per epoch).
        devices: JAX: the devices that split the global batch (default every local
            device, or with several JAX processes every process's; see `make_distribution`).
            Several processes are started before `train()` (`training.processes`).

    Returns:
        The summary dict (also written to `model_dir/summary.json`).

    Raises:
        training.fit_loop.TrainingDiverged: the loss became NaN or infinite.
        training.workers.WorkerLost: a worker of a multi-worker run (or a process of a
            multi-process JAX run) was lost (killed, unreachable); the same command on every
            worker resumes from the last backup.
        ValueError: a bad recipe (a field, a model argument), a model_dir that holds
            another recipe, a backend other than tensorflow and jax, or a setting the
            backend cannot run.
        NotADirectoryError, PermissionError, FileExistsError: a model_dir that cannot
            be written, or that holds files of the user's (`training.run_dir.check_run_dir`).
        DatasetUnavailableError: the data is not there and cannot be prepared.

    All of these but WorkerLost are raised before the first step, and a run that fails before its
    first step leaves no config.json: the corrected call trains into the same folder.

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
    elif backend not in BACKENDS:
        raise ValueError(refusal(backend))
    elif devices is not None:
        raise ValueError(
            "`devices` chooses JAX devices; on tensorflow pass strategy=make_strategy(device_names). "
            f"Received: devices={devices!r}"
        )
    # Before any work: the recipe's fields, the model's arguments, the run directory.
    check_experiment(experiment)
    model_function(experiment)
    check_run_dir(model_dir)
    start = time.perf_counter()
    run = _JaxRun(devices, experiment.batch_size) if backend == "jax" else _TensorFlowRun(strategy)
    work = (experiment, model_dir, run, data_dir, manual_dir)
    every = (backup_every_seconds, backup_every_steps)
    if backend == "jax" and run.processes > 1:
        return _run_processes(run, work, every, verbose, start)
    if backend != "tensorflow" or not run.multi_worker:
        return run_resumably(*work, every, verbose, start)
    import tensorflow as tf

    try:
        # Before the data and the model: every worker must read the chief's folder.
        check_shared_model_dir(run.strategy, model_dir, run.chief, run.worker_index, run.workers)
        return run_resumably(*work, every, verbose, start)
    except tf.errors.OpError as error:
        lost = lost_worker_error(error, os.path.join(model_dir, BACKUP_DIR))
        if lost is None:
            raise
        raise lost from error


def _run_processes(run, work, every, verbose, start):
    """`run_resumably` on several JAX processes: a shared folder first; a lost process is `WorkerLost`."""
    model_dir = work[1]
    try:
        # Before the data and the model: every process must read process 0's folder.
        check_shared_model_dir(None, model_dir, run.chief, run.process, run.processes)
        return run_resumably(*work, every, verbose, start)
    except Exception as error:  # a failed collective is a JaxRuntimeError (a ValueError in 0.10)
        lost = lost_worker_error(error, os.path.join(model_dir, BACKUP_DIR))
        if lost is None:
            raise
        raise lost from error
