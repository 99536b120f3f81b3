"""Shared benchmark helpers: timing, machine description, BENCHMARKS.md output."""

import datetime
import importlib.util
import os
import platform
import statistics
import sys
import time

from benchmarks.workers import Worker
from tests.support.markdown import command_line, write_section

BENCHMARKS_MD = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "BENCHMARKS.md")


def timeit(fn, repeats, warmup=2):
    """Median and 90th percentile wall time of `fn()` in seconds, after warm-up calls."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    times.sort()
    return statistics.median(times), times[min(len(times) - 1, int(0.9 * len(times)))]


_PEAK = {}


def matmul_peak(size=4096, repeats=3):
    """This machine's practical float32 multiply-add peak in GMAC/s: the best of `repeats`
    `size`^3 matmuls (TensorFlow), measured once per process."""
    if size not in _PEAK:
        import tensorflow as tf

        a = tf.random.normal((size, size))
        matmul = tf.function(lambda: tf.matmul(a, a))
        matmul().numpy()
        best = float("inf")
        for _ in range(repeats):
            start = time.perf_counter()
            matmul().numpy()
            best = min(best, time.perf_counter() - start)
        _PEAK[size] = size**3 / best / 1e9
    return _PEAK[size]


def machine_description():
    """The header line of every table: CPU, vector ISA, TensorFlow's kernels, the measured peak, versions."""
    import keras
    import tensorflow as tf

    from keras_sknet import platform as kernels

    return (
        f"{kernels.describe()} ({kernels.ONEDNN_VARIABLE}="
        f"{os.environ.get(kernels.ONEDNN_VARIABLE, 'unset')}); {os.cpu_count()} cores, float32 matmul "
        f"peak {matmul_peak():.0f} GMAC/s (4096^3, measured); Python {platform.python_version()}, "
        f"TensorFlow {tf.__version__}, Keras {keras.__version__}"
    )


def append_markdown(title, lines, notes=()):
    """Writes a dated section (title, machine, table lines, notes) into BENCHMARKS.md.

    BENCHMARKS.md keeps the latest run of each benchmark: a section with the same
    title is replaced where it stands; a new title is appended. Older runs live in
    git history (and benchmarks/history/).
    """
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    section = [f"## {title}", "", f"{stamp}; {machine_description()}", "", f"Command: `{command_line()}`", ""]
    section += [*lines, ""]
    if notes:
        section += [*notes, ""]
    header = "# Benchmarks\n\nMeasured side by side in one run; compare ratios, not absolute times.\n\n"
    write_section(BENCHMARKS_MD, title, "\n".join(section) + "\n", header=header)


def interleaved_timeit(runners, rounds=20, block_seconds=0.1, warmup=2):
    """Per-call wall time of several runners measured in alternating rounds.

    Small models run in a few milliseconds, where a burst of load on a shared machine moves one
    measurement by tens of percent. Timing every runner once per round, each for a block of about
    `block_seconds`, spreads such drift over all of them alike, so their ratios hold.

    Args:
        runners: {key: zero-argument callable}.
        rounds: how many times each runner is timed.
        block_seconds: the length of one timing block (as many calls as fit, at least one).
        warmup: untimed calls per runner first.

    Returns:
        {key: (median, p90)} of the per-call time over the rounds, in seconds.
    """
    calls = {}
    for key, fn in runners.items():
        for _ in range(warmup):
            fn()
        start = time.perf_counter()
        fn()
        calls[key] = max(1, int(block_seconds / max(time.perf_counter() - start, 1e-6)))
    samples = {key: [] for key in runners}
    for _ in range(rounds):
        for key, fn in runners.items():
            start = time.perf_counter()
            for _ in range(calls[key]):
                fn()
            samples[key].append((time.perf_counter() - start) / calls[key])
    result = {}
    for key, times in samples.items():
        times.sort()
        result[key] = statistics.median(times), times[min(len(times) - 1, int(0.9 * len(times)))]
    return result


# timm: builds a model on first use, then runs one forward pass (or one training step) per
# `name/infer|train/batch` line, e.g. `skresnext50_32x4d/infer/1`.
TIMM_WORKER = """
import sys
import torch, timm
from benchmarks.workers import serve
torch.set_num_threads(int(sys.argv[1]))
models, inputs = {}, {}
def run(key):
    name, mode, batch = key.split("/")
    batch = int(batch)
    if (name, mode) not in models:
        model = timm.create_model(name, pretrained=False).train(mode == "train")
        optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=1e-4)
        models[name, mode] = model, optimizer
    if batch not in inputs:
        inputs[batch] = torch.randn(batch, 3, 224, 224), torch.randint(0, 1000, (batch,))
    (model, optimizer), (x, y) = models[name, mode], inputs[batch]
    if mode == "train":
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        optimizer.step()
    else:
        with torch.inference_mode():
            model(x)
serve(run, {"torch": torch.__version__, "timm": timm.__version__})
"""


class TimmWorker(Worker):
    """timm in its own process, eager PyTorch with `threads` threads (see `Worker`).

    Attributes:
        versions: `{"torch": ..., "timm": ...}`.
    """

    def __init__(self, threads):
        super().__init__(TIMM_WORKER, [threads])
        self.versions = self.info


def start_timm(threads):
    if importlib.util.find_spec("timm") is None:
        return None
    try:
        return TimmWorker(threads)
    except (RuntimeError, ValueError) as error:
        print(f"timm failed: {error}", file=sys.stderr)
        return None
