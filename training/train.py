"""Command line: train a named experiment, resuming from the run's backup if there is one.

    python -m training.train --experiment sknet50_imagenet --data-dir /data/tfds --model-dir runs/sk50
    python -m training.train --experiment scales_demo            # embedded default, CPU, minutes
    python -m training.train --experiment sknet29_cifar10 --set epochs=2 --set batch_size=64

Killed at any point, the same command continues from the last backup.
"""

import argparse
import os
import sys


def parse_args(argv=None):
    parser = argparse.ArgumentParser(prog="python -m training.train", description=__doc__.split("\n\n")[0])
    parser.add_argument("--experiment", required=True, help="a registered experiment (see --list)")
    parser.add_argument("--model-dir", help="run directory (default: saved_models/EXPERIMENT)")
    parser.add_argument("--data-dir", help="TFDS data directory (for 'folder' datasets: the image folder)")
    parser.add_argument("--manual-dir", help="manually downloaded archives (imagenet2012)")
    parser.add_argument("--epochs", type=int)
    parser.add_argument("--batch-size", type=int, help="global batch size; the learning rate scales with it")
    parser.add_argument("--learning-rate", type=float, help="at the experiment's base batch size")
    parser.add_argument("--mixed-precision", choices=["auto", "none", "float16", "bfloat16"])
    parser.add_argument("--jit-compile", action="store_true", help="XLA for the train step")
    parser.add_argument("--sync-batch-norm", action="store_true", help="BatchNorm over the global batch")
    parser.add_argument("--seed", type=int)
    parser.add_argument(
        "--set", action="append", default=[], metavar="FIELD=VALUE", help="override any field"
    )
    parser.add_argument("--backup-every-seconds", type=float, default=300.0)
    parser.add_argument("--backup-every-steps", type=int)
    parser.add_argument(
        "--logical-cpus",
        type=int,
        default=0,
        help="split the CPU into N logical devices and mirror over them (tests multi-device code on a CPU)",
    )
    parser.add_argument(
        "--verbose", type=int, choices=[0, 1, 2], help="0 silent, 1 progress bar, 2 one line per epoch"
    )
    parser.add_argument("--list", action="store_true", help="list the experiments and exit")
    return parser.parse_args(argv)


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


def main(argv=None):
    args = parse_args(argv)
    if args.list:
        from training.experiments import EXPERIMENTS

        for name, experiment in sorted(EXPERIMENTS.items()):
            print(f"{name:34s} {experiment.description}")
        return 0

    import tensorflow as tf

    devices = None
    if args.logical_cpus > 1:
        (cpu,) = tf.config.list_physical_devices("CPU")
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration()] * args.logical_cpus
        )
        devices = [f"/cpu:{i}" for i in range(args.logical_cpus)]

    from training.data import DatasetUnavailableError
    from training.trainer import TrainingDiverged, make_strategy, train

    try:
        experiment = resolve(args)
        model_dir = args.model_dir or os.path.join("saved_models", experiment.name)
        summary = train(
            experiment,
            model_dir,
            data_dir=args.data_dir,
            manual_dir=args.manual_dir,
            strategy=make_strategy(devices),
            backup_every_seconds=args.backup_every_seconds,
            backup_every_steps=args.backup_every_steps,
            verbose="auto" if args.verbose is None else args.verbose,
        )
    except (ValueError, TrainingDiverged, DatasetUnavailableError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    final = summary["final"]
    speed = summary["train_images_per_second"]
    print(
        f"\n{experiment.name}: top-1 {100 * final['top1']:.2f}%, top-5 {100 * final['top5']:.2f}% on "
        f"{final['examples']} {final['split']} images at {final['image_size']}px; "
        + (f"{speed:.1f} training images/s; " if speed else "")
        + f"{summary['wall_time_seconds'] / 60:.1f} min in all."
    )
    print(f"Run directory: {model_dir} (best.keras, last.keras, metrics.csv, logs/, summary.json)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
