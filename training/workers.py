"""Several workers of one run: one shared model folder, and what a lost worker says.

    check_shared_model_dir(strategy, "runs/x", chief, index, workers)  # every worker, before any work
    raise lost_worker_error(error, "runs/x/backup")                    # a collective was aborted

The workers are those of a TensorFlow `MultiWorkerMirroredStrategy` run or the
processes of a multi-process JAX run (`training.processes`); `strategy` is then
None and the values travel through JAX's collectives. Either run keeps one run
directory that every worker reads: the chief (worker 0) writes the backup, the models and the metrics, and
at a relaunch every worker restores the same backup. Workers given folders of
their own start differently at a relaunch (the chief from its backup, the
others from scratch), and the run breaks in its first collective.

The check: the chief writes a random run id into `model_dir/workers.json`, sends
it to every worker through the strategy's collectives (which also orders the
write before the reads), and each worker reads the file in the folder it was
given. Every worker then learns whether all of them read the chief's id, and
all refuse the run together (none is left waiting in a collective). A random id
rather than the folder's path: shared storage may be mounted at another path on
each machine, and a folder of an earlier run holds an id of its own.

A worker that dies makes TensorFlow's coordination service abort the collectives
of the others (at once when its connections reset, after ~10 s of missing
heartbeats when it falls silent): `lost_worker_error` turns that into one line
saying to start every worker again, which resumes from the last backup. On JAX the
collectives between processes (gloo on CPU) fail at once when a peer's connection
resets; `lost_worker_error` says the same for them.
"""

import json
import os
import secrets

from keras_sknet.utils.files import write_json_atomically

WORKERS_FILE = "workers.json"
# The id is sent as float32 numbers (what every collective reduces); each part is exact below 2**24.
_ID_PARTS = 3
_PART = 2**24


def _all_sum(strategy, values):
    """The sum over the workers of each worker's `values` (a list of floats), once per replica.

    `strategy` None: JAX processes (one contribution per process).
    """
    if strategy is None:
        import numpy as np
        from jax.experimental import multihost_utils

        gathered = multihost_utils.process_allgather(np.asarray(values, np.float32))
        return [float(v) for v in np.asarray(gathered).reshape(-1, len(values)).sum(axis=0)]
    import tensorflow as tf

    local = tf.constant(values, tf.float32)

    @tf.function  # strategy.run outside a tf.function warns of its overhead
    def all_sum():
        return strategy.reduce("SUM", strategy.run(lambda: tf.identity(local)), axis=None)

    return [float(v) for v in all_sum().numpy()]


def _read_id(model_dir):
    try:
        with open(os.path.join(model_dir, WORKERS_FILE)) as f:
            return [float(v) for v in json.load(f)["run_id"]]
    except (OSError, ValueError, KeyError, TypeError):
        return None


def check_shared_model_dir(strategy, model_dir, chief, worker_index, workers):
    """Refuses a multi-worker run whose workers were not all given the same (shared) folder.

    Args:
        strategy: the run's `MultiWorkerMirroredStrategy`; None for the processes of a JAX run.
        model_dir: the run directory this worker was given.
        chief: whether this worker is the chief (writes the run directory).
        worker_index: this worker's index in TF_CONFIG (for the message).
        workers: the number of workers.

    Raises:
        ValueError (on every worker): some worker does not see the chief's folder.

    Example:
        >>> check_shared_model_dir(strategy, "/shared/runs/x", True, 0, 2)  # doctest: +SKIP
    """
    run_id = [float(secrets.randbelow(_PART)) for _ in range(_ID_PARTS)] if chief else [0.0] * _ID_PARTS
    if chief:
        os.makedirs(model_dir, exist_ok=True)
        write_json_atomically(os.path.join(model_dir, WORKERS_FILE), {"run_id": run_id, "workers": workers})
    # Each replica holds the local values once per local device: divide them out again.
    replicas_here = 1 if strategy is None else max(strategy.num_replicas_in_sync // workers, 1)
    shared = [v / replicas_here for v in _all_sum(strategy, run_id)]
    sees = 1.0 if _read_id(model_dir) == shared else 0.0
    seeing = round(_all_sum(strategy, [sees])[0] / replicas_here)
    if seeing == workers:
        return
    here = "this worker sees it" if sees else f"worker {worker_index} does not see it in {model_dir!r}"
    raise ValueError(
        f"The {workers} workers of a multi-worker run must share one model folder (shared storage, the "
        f"same --model-dir on every machine): the chief's {WORKERS_FILE} is seen by {seeing} of them ({here}). "
        "Give every worker the same folder on storage they all mount."
    )


class WorkerLost(RuntimeError):
    """A worker of a multi-worker run was lost (killed, crashed, unreachable); the run stopped."""


# The start of what each backend says when a collective fails for a lost worker, and a word
# that line must hold too.
_LOST_MARKERS = (("Collective ops is aborted", ""), ("Gloo ", " failed"))


def _cause(lines):
    """`(index, marker)` of the first line that says a collective failed, else `(None, None)`."""
    for marker, also in _LOST_MARKERS:
        for index, line in enumerate(lines):
            if marker in line and also in line:
                return index, marker
    return None, None


def lost_worker_error(error, backup_dir):
    """A `WorkerLost` saying what happened and how to resume, for a collective that was aborted.

    TensorFlow's coordination service aborts every collective of the survivors when a
    worker stops answering (its connection reset, or no heartbeat for about 10 s). On
    JAX, a collective between processes fails when a peer's connection resets.

    Args:
        error: a `tf.errors.OpError` (TensorFlow) or the exception of a JAX computation.
        backup_dir: where the run's last backup is.

    Returns:
        A `WorkerLost`, or None when `error` is not a lost worker's.
    """
    # What TensorFlow 2.21 says in each case (tested): a reset connection, missing heartbeats
    # of a worker, a chief that stopped answering; and JAX 0.10's gloo collectives ("Gloo
    # all-reduce failed: ... Connection reset by peer"). Other errors are not a lost worker's.
    lines = str(error).splitlines()
    cause, aborted = _cause(lines)
    if cause is None:
        return None
    reason = " ".join(line.strip() for line in lines[cause : cause + 2])
    reason = reason[reason.index(aborted) :]
    return WorkerLost(
        f"A worker of this multi-worker run was lost, and training stopped ({reason}). Start every "
        f"worker again with the same command: the run resumes from its last backup in {backup_dir}."
    )
