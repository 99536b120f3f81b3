"""Training speed of SKNet-50 and ResNeXt-50 on this machine, and where the time goes.

    python benchmarks/bench_training.py [--steps 15] [--batch-size 16] [--xla] [--no-write]

For each model, side by side in one process, at batch 16 on 224x224 inputs:
- fit:      plain `model.fit` with Keras' SGD and cross-entropy (the baseline);
- trainer:  the trainer's compile (SGD with L2 weight decay, label smoothing, top-1/top-5)
            and its callbacks (backup, best/last saving off, NaN guard, throughput);
- +xla:     the same with `jit_compile=True` (only with --xla: XLA's CPU grouped
            convolutions make steps take minutes).
Reports the first step (tracing and compilation) and the steady images/s, then the
op types that take the time in one trainer step (TensorFlow profiler). Appends to
BENCHMARKS.md.
"""

import argparse
import collections
import glob
import json
import os
import shutil
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# Before anything imports TensorFlow: keras_sknet turns its oneDNN kernels on unless
# TF_ENABLE_ONEDNN_OPTS says otherwise (keras_sknet.platform.prefer_onednn).
import keras_sknet  # noqa: E402,F401

# isort: split

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from benchmarks.common import append_markdown  # noqa: E402
from keras_sknet.applications import ResNeXt50, SKNet50  # noqa: E402
from training.experiments import get_experiment, override  # noqa: E402
from training.model import compile_model  # noqa: E402
from training.state import Backup, StopOnNaN, Throughput, TrainingState  # noqa: E402


class StepTimes(keras.callbacks.Callback):
    """Wall time of every training batch."""

    def __init__(self):
        super().__init__()
        self.times = []

    def on_train_batch_begin(self, batch, logs=None):
        self._start = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        self.times.append(time.perf_counter() - self._start)


def dataset(batch_size, classes=1000, one_hot=False):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(batch_size, 224, 224, 3)).astype("float32")
    labels = rng.integers(0, classes, batch_size)
    y = keras.utils.to_categorical(labels, classes) if one_hot else labels
    return tf.data.Dataset.from_tensors((x, y)).repeat()


def run(build, mode, batch_size, steps, jit_compile, work_dir):
    """Returns (first step seconds, steady images/s) for one model and mode."""
    keras.utils.set_random_seed(0)
    model = build()
    timer = StepTimes()
    callbacks = [timer]
    if mode == "fit":
        model.compile(
            keras.optimizers.SGD(0.01, momentum=0.9),
            "sparse_categorical_crossentropy",
            jit_compile=jit_compile,
        )
        data = dataset(batch_size)
    else:
        experiment = override(
            get_experiment("sknet50_imagenet"), [f"batch_size={batch_size}", f"jit_compile={jit_compile}"]
        )
        optimizer = compile_model(model, experiment, steps_per_epoch=1000)
        state = TrainingState(model, optimizer, work_dir)
        callbacks += [StopOnNaN(), Backup(state, 0, 0, every_seconds=3600), Throughput(batch_size)]
        data = dataset(batch_size, one_hot=True)
    model.fit(data, steps_per_epoch=steps + 1, epochs=1, verbose=0, callbacks=callbacks)
    steady = np.median(timer.times[1:])
    return timer.times[0], batch_size / steady, model


def op_breakdown(model, batch_size, work_dir):
    """Share of the profiled time per op type in trainer steps."""
    from tensorflow.python.profiler.internal import _pywrap_profiler_plugin as plugin

    data = dataset(batch_size, one_hot=True)
    model.fit(data, steps_per_epoch=1, epochs=1, verbose=0)
    log_dir = os.path.join(work_dir, "profile")
    tf.profiler.experimental.start(log_dir)
    model.fit(data, steps_per_epoch=3, epochs=1, verbose=0)
    tf.profiler.experimental.stop()
    (path,) = glob.glob(f"{log_dir}/**/*.xplane.pb", recursive=True)
    raw, _ = plugin.xspace_to_tools_data([path], "framework_op_stats")
    table = json.loads(raw)[0]
    columns = [c["id"] for c in table["cols"]]
    totals = collections.Counter()
    for row in table["rows"]:
        values = dict(zip(columns, [c.get("v") if c else None for c in row["c"]]))
        if values["type"] != "IDLE":
            totals[values["type"]] += values["total_self_time"]
    busy = sum(totals.values())
    return [(kind, share / busy) for kind, share in totals.most_common(10)]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=15)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--xla", action="store_true", help="also time jit_compile=True (slow on CPU)")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()

    work_dir = tempfile.mkdtemp()
    modes = [("fit", False), ("trainer", False)] + ([("fit", True), ("trainer", True)] if args.xla else [])
    rows, results = [], {}
    try:
        for mode, xla in modes:
            for name, build in (("ResNeXt-50", ResNeXt50), ("SKNet-50", SKNet50)):
                first, speed, model = run(build, mode, args.batch_size, args.steps, xla, work_dir)
                results[(name, mode, xla)] = speed
                label = mode + (" + xla" if xla else "")
                rows.append(f"| {name} | {label} | {first:.1f} | {speed:.2f} |")
                print(rows[-1], flush=True)
                keras.backend.clear_session()
        breakdown = op_breakdown(
            run(SKNet50, "trainer", args.batch_size, 1, False, work_dir)[2], args.batch_size, work_dir
        )
    finally:
        shutil.rmtree(work_dir, ignore_errors=True)
    ratios = [
        f"| {name} | {results[(name, 'trainer', False)] / results[(name, 'fit', False)]:.2f}x |"
        for name in ("ResNeXt-50", "SKNet-50")
    ]
    sk_overhead = results[("ResNeXt-50", "trainer", False)] / results[("SKNet-50", "trainer", False)]
    table = [
        f"Batch {args.batch_size}, 224x224, median of {args.steps} steps after the first.",
        "",
        "| model | mode | first step (s) | images/s |",
        "|---|---|---|---|",
        *rows,
        "",
        "| model | trainer / plain fit |",
        "|---|---|",
        *ratios,
        "",
        f"SK overhead in training (ResNeXt-50 images/s / SKNet-50 images/s, trainer): {sk_overhead:.2f}x",
        "",
        "Where the time of a SKNet-50 trainer step goes (TensorFlow profiler, busy time):",
        "",
        "| op type | share |",
        "|---|---|",
        *[f"| {kind} | {100 * share:.1f}% |" for kind, share in breakdown],
    ]
    print("\n".join(table))
    if not args.no_write:
        append_markdown("Training: SKNet-50 and ResNeXt-50 (bench_training.py)", table)


if __name__ == "__main__":
    main()
