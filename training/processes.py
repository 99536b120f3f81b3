"""Several JAX processes of one run: where they meet, which one this is, and starting JAX for them.

    group = process_group(flags, os.environ)   # before JAX is imported: None for one process
    start_jax_processes(group)                 # gloo collectives on CPU, jax.distributed.initialize

Each process of a multi-process JAX run (one per machine, or one per GPU) runs
the same command; they meet at a coordinator (process 0's `HOST:PORT`). Each of
the three values is taken from the first place that gives it:

1. the command line: `--coordinator-address HOST:PORT --num-processes N --process-id I`;
2. Keras' variables: `KERAS_DISTRIBUTION_JOB_ADDRESSES` (the first address is the
   coordinator), `KERAS_DISTRIBUTION_NUM_PROCESSES`, `KERAS_DISTRIBUTION_PROCESS_ID`;
3. JAX's: `JAX_COORDINATOR_ADDRESS` (which `jax.distributed.initialize` reads itself),
   and, named the same way, `JAX_NUM_PROCESSES`, `JAX_PROCESS_ID`;
4. SLURM's (`srun`): `SLURM_NTASKS` and `SLURM_PROCID`; the coordinator is then left to
   JAX, which takes the first node of `SLURM_STEP_NODELIST` and a port from `SLURM_JOB_ID`
   (`JAX_COORDINATOR_PORT` overrides it) when `SLURM_JOB_ID`, `SLURM_STEP_NODELIST` and
   `SLURM_LOCALID` are set too, as JAX's own SLURM detection needs. JAX also makes each
   `srun` task see one GPU (`SLURM_LOCALID`): launch one task per GPU there.

A count of one (or nothing given) is a one-process run. This module imports only
the standard library until `start_jax_processes`: the command line decides before
JAX starts (`XLA_FLAGS` must be set before).
"""

import os
from dataclasses import dataclass

# How long a process goes without heartbeats before JAX's coordination service calls it lost
# (JAX's default, 100 s, would keep the survivors of a lost process waiting that long).
HEARTBEAT_TIMEOUT_SECONDS = 10
# How long the processes wait for each other at the start (JAX's default is 300 s).
INITIALIZATION_TIMEOUT_SECONDS = 300

_SLURM_FOR_JAX = ("SLURM_JOB_ID", "SLURM_STEP_NODELIST", "SLURM_LOCALID")


@dataclass(frozen=True)
class ProcessGroup:
    """The processes of one run and this one's place in it.

    Attributes:
        coordinator: `HOST:PORT` of process 0's coordination service; None under SLURM,
            where JAX finds it.
        count: how many processes run (at least 2).
        index: this process's index, in [0, count).
        source: where the values came from, for messages ("--num-processes", "SLURM_NTASKS", ...).
    """

    coordinator: str | None
    count: int
    index: int
    source: str


def _first(choices):
    """`(value, name)` of the first choice whose value is given, else `(None, None)`."""
    for name, value in choices:
        if value not in (None, ""):
            return value, name
    return None, None


def _integer(value, name, minimum):
    try:
        number = int(value)
    except (TypeError, ValueError):
        number = None
    if number is None or number < minimum:
        raise ValueError(f"{name} must be an integer of at least {minimum}. Received: {name}={value!r}")
    return number


def check_address(address, name):
    """Raises ValueError unless `address` is `HOST:PORT` with a port in 1-65535."""
    host, _, port = str(address).rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(
            f"{name} must be HOST:PORT (process 0's machine and a free port on it, e.g. "
            f"10.0.0.1:12345). Received: {name}={address!r}"
        )


def process_group(coordinator=None, count=None, index=None, environ=None):
    """The processes of this run, from the command line's values and the environment.

    Args:
        coordinator, count, index: `--coordinator-address`, `--num-processes`,
            `--process-id` (None where not given).
        environ: the environment (default `os.environ`).

    Returns:
        A `ProcessGroup`, or None for a one-process run.

    Raises:
        ValueError: a value that is not one (named with where it came from), a process
            index outside the count, or several processes with no coordinator.

    Example:
        >>> process_group("127.0.0.1:1234", 2, 1)
        ProcessGroup(coordinator='127.0.0.1:1234', count=2, index=1, source='--num-processes')
    """
    env = os.environ if environ is None else environ
    jobs = env.get("KERAS_DISTRIBUTION_JOB_ADDRESSES", "")
    address, address_from = _first(
        [
            ("--coordinator-address", coordinator),
            ("KERAS_DISTRIBUTION_JOB_ADDRESSES", jobs.split(",")[0].strip()),
            ("JAX_COORDINATOR_ADDRESS", env.get("JAX_COORDINATOR_ADDRESS")),
        ]
    )
    slurm = [(n, env.get(n)) for n in ("SLURM_NTASKS", "SLURM_PROCID")]
    count, count_from = _first(
        [
            ("--num-processes", count),
            ("KERAS_DISTRIBUTION_NUM_PROCESSES", env.get("KERAS_DISTRIBUTION_NUM_PROCESSES")),
            ("JAX_NUM_PROCESSES", env.get("JAX_NUM_PROCESSES")),
            slurm[0],
        ]
    )
    index, index_from = _first(
        [
            ("--process-id", index),
            ("KERAS_DISTRIBUTION_PROCESS_ID", env.get("KERAS_DISTRIBUTION_PROCESS_ID")),
            ("JAX_PROCESS_ID", env.get("JAX_PROCESS_ID")),
            slurm[1],
        ]
    )
    count = 1 if count is None else _integer(count, count_from, 1)
    if count == 1:
        if address_from == "--coordinator-address" or index_from == "--process-id":
            given = "--coordinator-address" if address_from == "--coordinator-address" else "--process-id"
            raise ValueError(
                f"{given} is for a run of several processes: give --num-processes N (at least 2) too, "
                f"and the same command with --process-id 0 to N-1 on each. Received: {given} without a count"
            )
        return None
    if index is None:
        raise ValueError(
            f"{count_from}={count} starts {count} processes: give each its index, --process-id 0 to "
            f"{count - 1} (or JAX_PROCESS_ID)"
        )
    index = _integer(index, index_from, 0)
    if index >= count:
        raise ValueError(
            f"{index_from} must be in [0, {count}) for {count} processes. Received: {index_from}={index}"
        )
    if address is None:
        if not all(env.get(n) for n in _SLURM_FOR_JAX):
            raise ValueError(
                f"{count_from}={count}: the processes need a coordinator, process 0's HOST:PORT: give "
                "--coordinator-address (or JAX_COORDINATOR_ADDRESS), the same on every process"
            )
    else:
        check_address(address, address_from)
    return ProcessGroup(address, count, index, count_from)


def start_jax_processes(group):
    """Connects this process to the others of `group` (`jax.distributed.initialize`).

    What `keras.distribution.initialize` does, with a heartbeat timeout of
    `HEARTBEAT_TIMEOUT_SECONDS`, so that the survivors of a lost process stop within
    seconds; and with gloo for the collectives of CPU devices, which JAX has none
    of across processes otherwise. Call it before any JAX computation.

    Args:
        group: a `ProcessGroup`.
    """
    import jax

    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(
        coordinator_address=group.coordinator,
        num_processes=group.count,
        process_id=group.index,
        initialization_timeout=INITIALIZATION_TIMEOUT_SECONDS,
        heartbeat_timeout_seconds=HEARTBEAT_TIMEOUT_SECONDS,
    )
