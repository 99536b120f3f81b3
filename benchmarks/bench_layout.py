"""Channels-last vs channels-first for SKNet-50's grouped convolutions on this machine.

    python benchmarks/bench_layout.py [--rounds 15] [--no-write]

The keras_sknet models are channels-last. This times the op that dominates
SKNet-50 (TensorFlow's grouped 3x3 `tf.nn.conv2d`, G=32, batch 16, the widths
and sizes of the four stages) in NHWC and NCHW, in interleaved rounds, to show
what a channels-first variant would gain or lose here. On a GPU (cuDNN) the
same script compares the layouts there.
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

import tensorflow as tf  # noqa: E402

from benchmarks.common import append_markdown, interleaved_timeit  # noqa: E402

STAGES = ((56, 128), (28, 256), (14, 512), (7, 1024))  # (size, width) of SKNet-50's SK convs
GROUPS, BATCH = 32, 16


def conv_runner(size, width, data_format):
    kernel = tf.random.normal((3, 3, width // GROUPS, width))
    shape = (BATCH, size, size, width) if data_format == "NHWC" else (BATCH, width, size, size)
    x = tf.random.normal(shape)
    conv = tf.function(lambda t: tf.nn.conv2d(t, kernel, 1, "SAME", data_format=data_format))
    return lambda: conv(x).numpy()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    device = "GPU" if tf.config.list_physical_devices("GPU") else "CPU"
    runners = {
        (size, width, layout): conv_runner(size, width, layout)
        for size, width in STAGES
        for layout in ("NHWC", "NCHW")
    }
    times = interleaved_timeit(runners, rounds=args.rounds)
    lines = [
        f"Grouped 3x3 conv (G={GROUPS}), batch {BATCH}, {device}; medians of interleaved rounds.",
        "",
        "| input | NHWC ms | NCHW ms | NCHW / NHWC |",
        "|---|---|---|---|",
    ]
    for size, width in STAGES:
        nhwc, nchw = times[size, width, "NHWC"][0], times[size, width, "NCHW"][0]
        lines.append(
            f"| {size}x{size}x{width} | {1000 * nhwc:.1f} | {1000 * nchw:.1f} | {nchw / nhwc:.2f}x |"
        )
    print("\n".join(lines))
    if not args.no_write:
        append_markdown("Layout: channels-last vs channels-first grouped convs (bench_layout.py)", lines)


if __name__ == "__main__":
    main()
