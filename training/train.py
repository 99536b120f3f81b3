"""Command line: train a named experiment, resuming from the run's backup if there is one.

    python -m training.train --experiment sknet50_imagenet --data-dir /data/tfds --model-dir runs/sk50
    python -m training.train --experiment scales_demo            # embedded default, CPU, minutes
    python -m training.train --experiment sknet29_cifar10 --set epochs=2 --set batch_size=64
    KERAS_BACKEND=jax python -m training.train --experiment scales_demo --logical-cpus 2
    KERAS_BACKEND=jax python -m training.train --experiment scales_demo \
        --coordinator-address 10.0.0.1:12345 --num-processes 2 --process-id 0   # and 1 on the other

Killed at any point, the same command continues from the last backup. Runs on
Keras' tensorflow backend (tf.distribute; several machines through TF_CONFIG) or
jax backend (keras.distribution; several processes through the flags above, or the
variables of JAX, Keras and SLURM: see `training.processes`).
The input pipeline is tf.data or grain (`--input-pipeline`): on jax, grain by
default, so that the trainer runs where TensorFlow is not installed.
"""

import argparse
import json
import os
import re
import sys

from keras_sknet.utils import cli
from training.backends import BACKENDS, refusal

HOST_DEVICES_FLAG = "--xla_force_host_platform_device_count"
_PROCESS_FLAGS = ("--coordinator-address", "--num-processes", "--process-id")
PROG = "python -m training.train"


def make_parser():
    parser = cli.ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0])
    parser.add_argument("--experiment", help="a registered experiment (see --list)")
    parser.add_argument(
        "--model-dir",
        help="run directory: new, empty or an earlier run's (default: saved_models/EXPERIMENT, "
        "saved_models/EXPERIMENT_FOLDER for an image folder)",
    )
    parser.add_argument("--data-dir", help="TFDS data directory (for 'folder' datasets: the image folder)")
    parser.add_argument("--manual-dir", help="manually downloaded archives (imagenet2012)")
    parser.add_argument("--epochs", type=int)
    parser.add_argument("--batch-size", type=int, help="global batch size; the learning rate scales with it")
    parser.add_argument("--learning-rate", type=float, help="at the experiment's base batch size")
    parser.add_argument("--mixed-precision", choices=["auto", "none", "float16", "bfloat16"])
    parser.add_argument(
        "--jit-compile", action="store_true", help="XLA for the train step (tensorflow; jax always compiles)"
    )
    parser.add_argument(
        "--sync-batch-norm",
        action="store_true",
        help="BatchNorm over the global batch (tensorflow; always so on jax)",
    )
    parser.add_argument("--seed", type=int)
    parser.add_argument(
        "--input-pipeline",
        choices=["auto", "tf", "grain"],
        default="auto",
        help="tf.data or grain (no TensorFlow); auto: tf on the tensorflow backend, grain on jax",
    )
    parser.add_argument(
        "--set", action="append", default=[], metavar="FIELD=VALUE", help="override any field"
    )
    parser.add_argument("--backup-every-seconds", type=float, default=300.0)
    parser.add_argument("--backup-every-steps", type=int)
    parser.add_argument(
        "--logical-cpus",
        type=int,
        default=0,
        help="split the CPU into N devices and train on all of them (tests multi-device code on a CPU): "
        "logical CPU devices under MirroredStrategy on tensorflow, XLA host devices "
        f"(XLA_FLAGS={HOST_DEVICES_FLAG}=N) under DataParallel on jax",
    )
    processes = parser.add_argument_group(
        "several JAX processes (jax backend; without the flags, from KERAS_DISTRIBUTION_*, then "
        "JAX_COORDINATOR_ADDRESS / JAX_NUM_PROCESSES / JAX_PROCESS_ID, then SLURM_NTASKS / SLURM_PROCID: "
        "see training/processes.py; on tensorflow: TF_CONFIG)"
    )
    processes.add_argument(
        "--coordinator-address",
        metavar="HOST:PORT",
        help="process 0's machine and a free port, the same on all",
    )
    processes.add_argument(
        "--num-processes", type=cli.positive_int, metavar="N", help="how many processes run"
    )
    processes.add_argument("--process-id", type=_index, metavar="I", help="this process's index, 0 to N-1")
    parser.add_argument(
        "--verbose", type=int, choices=[0, 1, 2], help="0 silent, 1 progress bar, 2 one line per epoch"
    )
    parser.add_argument("--list", action="store_true", help="list the experiments and exit")
    return parser


def _index(text):
    """An argparse `type`: an integer of at least 0."""
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"expected an integer of at least 0. Received: {text!r}")
    return int(text)


def parse_args(argv=None):
    """The command line's arguments; `--experiment` is required unless `--list` is given."""
    parser = make_parser()
    args = parser.parse_args(argv)
    if not args.list and not args.experiment:
        parser.error("--experiment is required (python -m training.train --list shows them)")
    return args


def resolve(args):
    """The experiment with the command line's overrides applied."""
    from training.experiments import get_experiment, override

    assignments = list(args.set)
    for flag, field in (
        ("epochs", "epochs"),
        ("batch_size", "batch_size"),
        ("learning_rate", "learning_rate"),
        ("mixed_precision", "mixed_precision"),
        ("seed", "seed"),
    ):
        value = getattr(args, flag)
        if value is not None:
            assignments.append(f"{field}={value}")
    if args.jit_compile:
        assignments.append("jit_compile=true")
    if args.sync_batch_norm:
        assignments.append("sync_batch_norm=true")
    return override(get_experiment(args.experiment), assignments)


def keras_backend():
    """The backend Keras will load, found as Keras finds it, without importing Keras.

    Importing Keras on the jax backend imports JAX, after which `XLA_FLAGS` may
    come too late; so the command line decides before importing anything.

    Returns:
        `KERAS_BACKEND`, else the "backend" of `$KERAS_HOME/keras.json` (default
        `~/.keras/keras.json`), else "tensorflow".

    Example:
        >>> os.environ["KERAS_BACKEND"] = "jax"; keras_backend()
        'jax'
    """
    if os.environ.get("KERAS_BACKEND"):
        return os.environ["KERAS_BACKEND"]
    home = os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")
    try:
        with open(os.path.join(home, "keras.json")) as f:
            return json.load(f).get("backend", "tensorflow")
    except (OSError, ValueError):
        return "tensorflow"


def force_host_devices(count):
    """Makes XLA show `count` CPU devices to JAX (`XLA_FLAGS`); call it before JAX starts.

    JAX's counterpart of splitting TensorFlow's CPU into logical devices: several
    devices on one CPU, to run multi-device code. Replaces any such flag already
    in `XLA_FLAGS` and keeps the others.

    Example:
        >>> force_host_devices(2); os.environ["XLA_FLAGS"]
        '--xla_force_host_platform_device_count=2'
    """
    flags = re.sub(rf"{HOST_DEVICES_FLAG}=\S*", "", os.environ.get("XLA_FLAGS", "")).split()
    os.environ["XLA_FLAGS"] = " ".join([*flags, f"{HOST_DEVICES_FLAG}={count}"])


def _jax_devices(count):
    """The `count` XLA host devices (of each process) to train on (None: JAX's own choice)."""
    if count <= 1:
        return None
    import jax

    devices = jax.devices("cpu")  # with several processes, every process's
    here = [d for d in devices if d.process_index == jax.process_index()]
    if len(here) != count:
        raise ValueError(
            f"--logical-cpus {count} asked XLA for {count} CPU devices, but JAX has {len(here)}: JAX "
            f"started before the flag was set. Set XLA_FLAGS={HOST_DEVICES_FLAG}={count} in the environment."
        )
    return devices


def process_group_of(args, backend):
    """The JAX processes of this run (`training.processes.ProcessGroup`), or None for one process.

    On tensorflow the process flags are refused (TF_CONFIG starts its workers) and the
    variables are not read: a TensorFlow job under SLURM keeps to TF_CONFIG.
    """
    from training.processes import process_group

    flags = (args.coordinator_address, args.num_processes, args.process_id)
    if backend != "jax":
        given = [name for name, value in zip(_PROCESS_FLAGS, flags) if value is not None]
        if given:
            raise cli.UserError(
                f"{given[0]} starts several processes of Keras' jax backend (KERAS_BACKEND=jax); on "
                "tensorflow, several workers are started with TF_CONFIG (see docs/training.md, Several machines)"
            )
        return None
    try:
        return process_group(*flags)
    except ValueError as error:
        raise cli.UserError(str(error)) from error


def _exit_now(message):
    """Prints `message` as the command's error and ends the process at once, with status 1.

    After a lost process, JAX's shutdown at exit waits for it (a barrier) and then
    aborts with a C++ trace: the survivor leaves without that shutdown.
    """
    print(f"{PROG}: error: {cli.one_line(message)}", file=sys.stderr)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(cli.USER_ERROR_STATUS)


def main(argv=None):
    args = parse_args(argv)
    if args.list:
        from training.experiments import EXPERIMENTS

        for name, experiment in sorted(EXPERIMENTS.items()):
            print(f"{name:34s} {experiment.description}")
        return 0
    return cli.run(lambda: _work(args), prog=PROG)


def check_data_source(experiment, data_dir):
    """The data options checked in the command line's words, before any work (image folders)."""
    from training.run_dir import is_folder

    if not is_folder(experiment.dataset):
        return
    if data_dir is None:
        raise cli.UserError(
            f"dataset=folder reads the image folder given as --data-dir; none was given "
            f"(python -m training.train --experiment {experiment.name} --data-dir photos/)"
        )
    if not os.path.isdir(os.path.expanduser(data_dir)):
        raise cli.UserError(
            f"--data-dir {data_dir!r} is not a folder: for dataset=folder give a folder of images, "
            "one sub-folder per class (photos/<class>/<image>)"
        )


def input_pipeline(backend, choice):
    """The input pipeline of a run, "tf" or "grain", checked in the command line's words.

    "auto" is tf on the tensorflow backend (tf.distribute reads tf.data) and grain on
    jax, which then runs without TensorFlow.
    """
    if choice == "auto":
        return "tf" if backend == "tensorflow" else "grain"
    if choice == "grain" and backend == "tensorflow":
        raise cli.UserError(
            "--input-pipeline grain feeds Keras' jax backend; the tensorflow backend reads tf.data "
            "(tf.distribute). Run with KERAS_BACKEND=jax, or --input-pipeline tf"
        )
    if choice == "tf":
        import importlib.util

        try:
            found = importlib.util.find_spec("tensorflow") is not None
        except ImportError:  # an import hook that refuses it
            found = False
        if not found:
            raise cli.UserError(
                "--input-pipeline tf needs TensorFlow, which is not installed here: use --input-pipeline grain "
                "(or auto), or pip install tensorflow"
            )
    return choice


def default_model_dir(experiment, data_dir):
    """saved_models/EXPERIMENT, or saved_models/EXPERIMENT_FOLDER for an image folder."""
    from training.run_dir import dataset_label

    label = dataset_label(experiment.dataset, data_dir)
    if label == experiment.dataset:
        return os.path.join("saved_models", experiment.name)
    return os.path.join("saved_models", f"{experiment.name}_{os.path.basename(label)}")


def _work(args):
    """Checks everything it can, then trains: every mistake of the user's is found before any work."""
    cli.quiet_tensorflow()
    backend = keras_backend()
    if backend not in BACKENDS:
        # Refused before Keras is imported here (TensorFlow imported before PyTorch crashes).
        raise cli.UserError(refusal(backend))
    group = process_group_of(args, backend)
    if backend == "jax" and args.logical_cpus > 1:
        force_host_devices(args.logical_cpus)

    from training.experiments import check_experiment
    from training.run_dir import check_run_dir

    experiment = resolve(args)
    check_experiment(experiment)
    check_data_source(experiment, args.data_dir)
    model_dir = args.model_dir or default_model_dir(experiment, args.data_dir)
    check_run_dir(model_dir)

    pipeline = input_pipeline(backend, args.input_pipeline)
    if group is not None:
        from training.processes import start_jax_processes

        start_jax_processes(group)  # before Keras: before JAX computes anything
    cli.import_keras()
    if pipeline == "tf":
        tf = cli.import_tensorflow()  # without its start-up lines; grain runs need no TensorFlow
    from training import data

    data.set_input_pipeline(pipeline)
    devices = None
    if backend != "jax" and args.logical_cpus > 1:
        (cpu,) = tf.config.list_physical_devices("CPU")
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration()] * args.logical_cpus
        )
        devices = [f"/cpu:{i}" for i in range(args.logical_cpus)]

    from training.distribution import make_strategy
    from training.fit_loop import TrainingDiverged
    from training.model import model_function
    from training.trainer import train
    from training.workers import WorkerLost

    model_function(experiment)  # the model's arguments, before a strategy or devices are made
    if backend == "jax":
        placement = dict(devices=_jax_devices(args.logical_cpus))
    else:
        placement = dict(strategy=make_strategy(devices))
    try:
        summary = train(
            experiment,
            model_dir,
            data_dir=args.data_dir,
            manual_dir=args.manual_dir,
            backup_every_seconds=args.backup_every_seconds,
            backup_every_steps=args.backup_every_steps,
            verbose="auto" if args.verbose is None else args.verbose,
            **placement,
        )
    except (TrainingDiverged, WorkerLost) as error:  # one line, no traceback: what to do next
        if group is not None and isinstance(error, WorkerLost):
            _exit_now(str(error))
        raise cli.UserError(str(error)) from error
    final = summary["final"]
    speed = summary["train_images_per_second"]
    top5 = f", top-5 {100 * final['top5']:.2f}%" if "top5" in final else ""
    print(
        f"\n{experiment.name} on {summary['dataset']}: top-1 {100 * final['top1']:.2f}%{top5} on "
        f"{final['examples']} {final['split']} images at {final['image_size']}px; "
        + (f"{speed:.1f} training images/s; " if speed else "")
        # `auto` may have picked mixed precision for this machine: say so.
        + (
            f"trained in {summary['mixed_precision']}; "
            if summary.get("mixed_precision", "float32") != "float32"
            else ""
        )
        + f"{summary['wall_time_seconds'] / 60:.1f} min in all."
    )
    print(
        f"Run directory: {model_dir} (best.keras, last.keras, metrics.csv, logs/, summary.json); "
        f"evaluate it with: python -m training.evaluate --model-dir {model_dir}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
