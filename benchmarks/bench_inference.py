"""SKNet-50 against ResNeXt-50 inference on this machine: the SK overhead per mode.

    python benchmarks/bench_inference.py [--rounds 10] [--no-xla]

Modes, each at batch 1 and 16 on 224x224 inputs, all modes of both models
timed in the same interleaved rounds so that machine noise hits them alike:
- predict:     `model.predict` (Keras' compiled predict loop, no XLA);
- tf.function: the model called in a `tf.function` (the default graph path);
- frozen:      `keras_sknet.export.frozen_function` (weights as graph constants);
- xla:         the model in a `tf.function` with `jit_compile=True`.
Prints a table and appends it to BENCHMARKS.md.
"""

import argparse
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# Before anything imports TensorFlow: keras_sknet turns its oneDNN kernels on unless
# TF_ENABLE_ONEDNN_OPTS says otherwise (keras_sknet.platform.prefer_onednn).
import keras_sknet  # noqa: E402,F401

# isort: split

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from benchmarks.common import append_markdown, interleaved_timeit  # noqa: E402
from keras_sknet.applications import ResNeXt50, SKNet50  # noqa: E402
from keras_sknet.export import frozen_function  # noqa: E402


def runners(model, batch, xla):
    x = np.random.default_rng(0).normal(size=(batch, 224, 224, 3)).astype("float32")
    graph = tf.function(lambda t: model(t, training=False))
    frozen = frozen_function(model)
    modes = {
        "predict": lambda: model.predict(x, batch_size=batch, verbose=0),
        "tf.function": lambda: graph(x).numpy(),
        "frozen": lambda: frozen(x).numpy(),
    }
    if xla:
        compiled = tf.function(lambda t: model(t, training=False), jit_compile=True)
        modes["xla"] = lambda: compiled(x).numpy()
    return modes


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--rounds", type=int, default=10, help="interleaved rounds at batch 1 (batch 16: half)"
    )
    parser.add_argument("--no-xla", action="store_true", help="skip the XLA mode (slow on CPU)")
    parser.add_argument("--no-write", action="store_true", help="do not append to BENCHMARKS.md")
    args = parser.parse_args()

    models = {"ResNeXt-50": ResNeXt50(), "SKNet-50": SKNet50()}
    rows = []
    for batch in (1, 16):
        all_runners = {
            (name, mode): run
            for name, model in models.items()
            for mode, run in runners(model, batch, not args.no_xla).items()
        }
        times = interleaved_timeit(
            all_runners,
            rounds=args.rounds if batch == 1 else max(3, args.rounds // 2),
            block_seconds=0.3 if batch == 1 else 0.0,
        )
        for mode in dict.fromkeys(mode for _, mode in all_runners):
            base, sk = times[("ResNeXt-50", mode)], times[("SKNet-50", mode)]
            rows.append(
                f"| {mode} | {batch} | {1000 * base[0]:.1f} / {1000 * base[1]:.1f} | {batch / base[0]:.1f} "
                f"| {1000 * sk[0]:.1f} / {1000 * sk[1]:.1f} | {batch / sk[0]:.1f} | {sk[0] / base[0]:.2f}x |"
            )
            print(rows[-1], flush=True)
    table = [
        "| mode | batch | ResNeXt-50 ms (median / p90) | img/s | SKNet-50 ms (median / p90) | img/s | SK overhead |",
        "|---|---|---|---|---|---|---|",
        *rows,
    ]
    print("\n".join(table))
    if not args.no_write:
        append_markdown(
            "Inference: SKNet-50 vs ResNeXt-50 (bench_inference.py)",
            table,
            [
                "SK overhead = SKNet-50 time / ResNeXt-50 time in the same mode; the paper's FLOPs ratio is 1.05x."
            ],
        )


if __name__ == "__main__":
    main()
