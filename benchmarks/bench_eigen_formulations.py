"""Other ways to compute SKNet-50's grouped convolutions on TensorFlow's Eigen kernels, timed side by side.

    python benchmarks/bench_eigen_formulations.py [--rounds 3] [--batch 16] [--no-write]

On Eigen (Arm CPUs without oneDNN, `TF_ENABLE_ONEDNN_OPTS=0`, TensorFlow imported
before keras_sknet) the grouped 3x3 convolutions of the SK units and their
gradients are what a training step waits for: Eigen runs one small convolution
per group, at 2-5 GMAC/s with SKNet-50's 4 and 8 channels per group.
keras_sknet computes them as `tf_conv.portable_conv2d` (small groups over 2x2
pixel blocks, `tf_blocked_conv`; gradients written as forward convolutions).
This script times that against the formulations one might expect Eigen to run
faster, each exact (checked before timing against `tf.nn.conv2d` and the
portable gradients):

- im2col + batched matmul: the k*k shifted copies of each group's channels,
  one `BatchMatMul` over the groups (autodiff gives the gradients);
- depthwise with channel multiplier: one `DepthwiseConv2dNative` with O_g
  outputs per input channel, then the sum over each group's inputs;
- depthwise over channel shifts: C_g depthwise convolutions of the input with
  each group's channels rotated, summed (square groups only);
- blocked at every width: the 2x2 pixel blocks also at 16 and 32 channels per
  group (keras_sknet stops at 8).

Rows: the four stages of SKNet-50 (G=32, 224 x 224 input), each SK path
(dilation 1 and 2), forward alone and forward + both gradients (a training
step's share). Keras-sknet keeps the formulation that measures fastest.
"""

import argparse
import contextlib
import os
import sys

if __name__ == "__main__":  # the Eigen path is the subject: oneDNN off, whatever the CPU
    os.environ["TF_ENABLE_ONEDNN_OPTS"] = "0"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from benchmarks.common import append_markdown, interleaved_timeit  # noqa: E402
from keras_sknet import platform  # noqa: E402
from keras_sknet.layers import tf_blocked_conv, tf_conv  # noqa: E402

STAGES = ((128, 56), (256, 28), (512, 14), (1024, 7))  # (width, size) of SKNet-50's SK convolutions
GROUPS = 32


def portable(x, kernel, dilation, groups):
    """keras_sknet's Eigen path (what `conv2d` runs where TensorFlow's kernels lack the gradients)."""
    return tf_conv.portable_conv2d(x, kernel, 1, dilation, "SAME", groups, blocked=True)


def im2col_batched_matmul(x, kernel, dilation, groups):
    """Each group's k*k shifted copies side by side, one batched matmul over the groups."""
    size, _, in_per_group, filters = kernel.shape
    out_per_group = filters // groups
    n, height, width, _ = x.shape
    pad = dilation * (size - 1) // 2
    x = tf.transpose(tf.reshape(x, (n, height, width, groups, in_per_group)), (3, 0, 1, 2, 4))
    x = tf.pad(x, [[0, 0], [0, 0], [pad, pad], [pad, pad], [0, 0]])  # (G, N, H + 2p, W + 2p, C_g)
    taps = [
        x[:, :, a * dilation : a * dilation + height, b * dilation : b * dilation + width, :]
        for a in range(size)
        for b in range(size)
    ]
    patches = tf.reshape(tf.concat(taps, axis=-1), (groups, n * height * width, size * size * in_per_group))
    kernel = tf.reshape(kernel, (size * size, in_per_group, groups, out_per_group))
    kernel = tf.reshape(
        tf.transpose(kernel, (2, 0, 1, 3)), (groups, size * size * in_per_group, out_per_group)
    )
    y = tf.reshape(tf.matmul(patches, kernel), (groups, n, height, width, out_per_group))
    return tf.reshape(tf.transpose(y, (1, 2, 3, 0, 4)), (n, height, width, filters))


def depthwise_multiplier(x, kernel, dilation, groups):
    """A depthwise convolution with O_g outputs per input channel, summed over each group's inputs."""
    size, _, in_per_group, filters = kernel.shape
    out_per_group = filters // groups
    n, height, width, _ = x.shape
    kernel = tf.reshape(kernel, (size, size, in_per_group, groups, out_per_group))
    kernel = tf.reshape(
        tf.transpose(kernel, (0, 1, 3, 2, 4)), (size, size, groups * in_per_group, out_per_group)
    )
    z = tf.nn.depthwise_conv2d(x, kernel, (1, 1, 1, 1), "SAME", dilations=(dilation, dilation))
    z = tf.reshape(z, (n, height, width, groups, in_per_group, out_per_group))  # output (g, i, o)
    return tf.reshape(tf.reduce_sum(z, axis=4), (n, height, width, filters))


def depthwise_shifts(x, kernel, dilation, groups):
    """sum over s of a depthwise convolution of x with each group's channels rotated by s (C_g = O_g)."""
    size, _, in_per_group, filters = kernel.shape
    n, height, width, channels = x.shape
    kernel = tf.transpose(
        tf.reshape(kernel, (size, size, in_per_group, groups, in_per_group)), (2, 4, 0, 1, 3)
    )
    grouped = tf.reshape(x, (n, height, width, groups, in_per_group))
    outputs = np.arange(in_per_group)
    y = 0.0
    for shift in range(in_per_group):
        # Output channel o of a group reads its input channel (o + shift) mod C_g.
        inputs = (outputs + shift) % in_per_group
        rotated = tf.reshape(tf.roll(grouped, shift=-shift, axis=4), (n, height, width, channels))
        taps = tf.gather_nd(kernel, np.stack([inputs, outputs], axis=-1))  # (O_g, k, k, G)
        taps = tf.reshape(tf.transpose(taps, (1, 2, 3, 0)), (size, size, channels, 1))
        y = y + tf.nn.depthwise_conv2d(rotated, taps, (1, 1, 1, 1), "SAME", dilations=(dilation, dilation))
    return y


@contextlib.contextmanager
def _blocked_up_to(channels_per_group):
    previous = tf_blocked_conv.MAX_CHANNELS_PER_GROUP
    tf_blocked_conv.MAX_CHANNELS_PER_GROUP = channels_per_group
    try:
        yield
    finally:
        tf_blocked_conv.MAX_CHANNELS_PER_GROUP = previous


def blocked_every_width(x, kernel, dilation, groups):
    """The 2x2 pixel blocks at any number of channels per group (traced with the limit raised)."""
    with _blocked_up_to(max(kernel.shape[2], tf_blocked_conv.MAX_CHANNELS_PER_GROUP)):
        return portable(x, kernel, dilation, groups)


FORMULATIONS = {
    "portable": portable,
    "im2col + batched matmul": im2col_batched_matmul,
    "depthwise, channel multiplier": depthwise_multiplier,
    "depthwise over channel shifts": depthwise_shifts,
    "blocked at every width": blocked_every_width,
}


def applies(name, channels_per_group):
    """Whether a formulation is a distinct computation at this width (else its row cell is '-')."""
    if name == "blocked at every width":
        return channels_per_group > tf_blocked_conv.MAX_CHANNELS_PER_GROUP
    return True


def values_and_gradients(formulation, x, kernel, dilation, groups):
    """The output and both gradients of `sum(y * y) / 2` (so the output gradient is y)."""
    with tf.GradientTape() as tape:
        tape.watch([x, kernel])
        y = formulation(x, kernel, dilation, groups)
        loss = 0.5 * tf.reduce_sum(y * y)
    return (y, *tape.gradient(loss, [x, kernel]))


def check_exact(groups=4, seed=0):
    """Raises AssertionError unless every formulation matches `tf.nn.conv2d` and the portable gradients.

    Returns:
        {formulation: largest error relative to the largest value, over output and gradients}.
    """
    rng = np.random.default_rng(seed)
    errors = {}
    for per_group, dilation in ((4, 1), (8, 2), (16, 1), (16, 2)):
        x = tf.constant(rng.normal(size=(2, 9, 11, groups * per_group)), tf.float32)
        kernel = tf.constant(rng.normal(size=(3, 3, per_group, groups * per_group)), tf.float32)
        reference = values_and_gradients(portable, x, kernel, dilation, groups)
        plain = tf.nn.conv2d(x, kernel, 1, "SAME", dilations=dilation)
        np.testing.assert_allclose(
            reference[0], plain, rtol=0, atol=1e-4 * float(tf.reduce_max(tf.abs(plain)))
        )
        for name, formulation in FORMULATIONS.items():
            got = values_and_gradients(formulation, x, kernel, dilation, groups)
            error = max(
                float(tf.reduce_max(tf.abs(a - b)) / tf.reduce_max(tf.abs(b))) for a, b in zip(got, reference)
            )
            assert error < 1e-5, f"{name} at {per_group} channels per group, dilation {dilation}: {error:.2e}"
            errors[name] = max(errors.get(name, 0.0), error)
    return errors


def runners(batch):
    """{(width, size, dilation, formulation, task): callable}, task "forward" or "training"."""
    result = {}
    for width, size in STAGES:
        x = tf.random.normal((batch, size, size, width))
        kernel = tf.random.normal((3, 3, width // GROUPS, width)) * 0.1
        for dilation in (1, 2):
            for name, formulation in FORMULATIONS.items():
                if not applies(name, width // GROUPS):
                    continue
                forward = tf.function(lambda x, k, f=formulation, d=dilation: f(x, k, d, GROUPS))
                training = tf.function(
                    lambda x, k, f=formulation, d=dilation: values_and_gradients(f, x, k, d, GROUPS)
                )
                result[width, size, dilation, name, "forward"] = lambda f=forward, x=x, k=kernel: f(
                    x, k
                ).numpy()
                result[width, size, dilation, name, "training"] = lambda f=training, x=x, k=kernel: [
                    t.numpy() for t in f(x, k)
                ]
    return result


def table(times, task):
    names = list(FORMULATIONS)
    lines = [
        "| stage input | dilation | "
        + " | ".join(f"{name} ms" for name in names)
        + " | portable / fastest other |",
        "|---|---|" + "---:|" * len(names) + "---:|",
    ]
    for width, size in STAGES:
        for dilation in (1, 2):
            cells, best = [], None
            for name in names:
                key = (width, size, dilation, name, task)
                if key not in times:
                    cells.append("-")
                    continue
                median = times[key][0]
                cells.append(f"{1000 * median:.1f}")
                if name != "portable" and (best is None or median < best):
                    best = median
            ratio = times[width, size, dilation, "portable", task][0] / best
            label = f"{size}x{size}x{width} ({width // GROUPS} per group)"
            lines.append(f"| {label} | {dilation} | " + " | ".join(cells) + f" | {ratio:.2f}x |")
    return lines


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    if platform.onednn_enabled():
        raise SystemExit("TensorFlow runs oneDNN in this process; the benchmark is of its Eigen kernels")
    errors = check_exact()
    times = interleaved_timeit(runners(args.batch), rounds=args.rounds, block_seconds=0.0, warmup=1)
    lines = [
        f"TensorFlow's Eigen kernels (TF_ENABLE_ONEDNN_OPTS=0), SKNet-50's grouped 3x3 convolutions "
        f"(G={GROUPS}), batch {args.batch}; medians of {args.rounds} interleaved rounds. "
        "Last column: portable's time over the fastest other formulation's (below 1: keras_sknet's "
        "portable path is the fastest).",
        "",
        "Forward:",
        "",
        *table(times, "forward"),
        "",
        "Forward + input and kernel gradients (a training step's share):",
        "",
        *table(times, "training"),
        "",
        "Every formulation exact before timing (largest error relative to the largest value, output and "
        "both gradients): " + ", ".join(f"{name} {error:.1e}" for name, error in errors.items()) + ".",
    ]
    print("\n".join(lines))
    if not args.no_write:
        append_markdown(
            "Eigen formulations: SKNet-50's grouped convolutions (bench_eigen_formulations.py)", lines
        )


if __name__ == "__main__":
    main()
