"""Shared benchmark helpers: timing, machine description, BENCHMARKS.md output."""

import datetime
import importlib.util
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time

from keras_sknet.utils.files import atomic_path

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


def machine_description():
    import keras
    import tensorflow as tf

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return (
        f"{cpu}, {os.cpu_count()} cores; Python {platform.python_version()}, "
        f"TensorFlow {tf.__version__}, Keras {keras.__version__}"
    )


def append_markdown(title, lines, notes=()):
    """Appends a dated section (title, machine, table lines, notes) to BENCHMARKS.md."""
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    section = [f"## {title}", "", f"{stamp}; {machine_description()}", "", *lines, ""]
    if notes:
        section += [*notes, ""]
    new_file = not os.path.exists(BENCHMARKS_MD)
    with atomic_path(BENCHMARKS_MD) as tmp, open(tmp, "w") as f:
        if new_file:
            f.write(
                "# Benchmarks\n\nMeasured side by side in one run; compare ratios, not absolute times.\n\n"
            )
        else:
            with open(BENCHMARKS_MD) as old:
                f.write(old.read())
        f.write("\n".join(section) + "\n")


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


# A persistent timm process: it builds the models once, then runs one forward pass (or one
# training step) per line it reads, so its runs interleave with ours in the same rounds.
TIMM_WORKER = """
import json, sys
import torch, timm
torch.set_num_threads(int(sys.argv[1]))
models, inputs = {}, {}
def run(key):
    name, mode, batch = key.split("/")
    batch = int(batch)
    if (name, mode) not in models:  # built on first use
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
print(json.dumps({"torch": torch.__version__, "timm": timm.__version__}), flush=True)
for line in sys.stdin:
    run(line.strip())
    print("ok", flush=True)
"""


class TimmWorker:
    """timm in its own process (TensorFlow and torchvision in one process can crash).

    `runner(key)` gives a callable that runs one `name/infer|train/batch` call
    there (eager PyTorch, `threads` threads; a timm model name, e.g.
    `skresnext50_32x4d/infer/1`) and returns when it is done, so it can be
    timed like our runners, in the same interleaved rounds.
    """

    def __init__(self, threads):
        self.log = tempfile.TemporaryFile(mode="w+")
        self.process = subprocess.Popen(
            [sys.executable, "-c", TIMM_WORKER, str(threads)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.log,
            text=True,
        )
        self.versions = json.loads(self._reply())

    def _reply(self):
        line = self.process.stdout.readline()
        if not line:
            self.log.seek(0)
            raise RuntimeError(f"the timm process stopped: {self.log.read()[-2000:]}")
        return line

    def runner(self, key):
        def run():
            self.process.stdin.write(key + "\n")
            self.process.stdin.flush()
            self._reply()

        return run

    def close(self):
        self.process.stdin.close()
        self.process.wait(timeout=60)
        self.log.close()


def start_timm(threads):
    if importlib.util.find_spec("timm") is None:
        return None
    try:
        return TimmWorker(threads)
    except (RuntimeError, ValueError) as error:
        print(f"timm failed: {error}", file=sys.stderr)
        return None
