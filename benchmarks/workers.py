"""Persistent worker processes whose calls are timed from the benchmark's process.

Light on purpose: worker scripts import `serve` from here without pulling in
TensorFlow or Keras.
"""

import json
import os
import subprocess
import sys
import tempfile


def serve(run, info):
    """The loop of a worker process (see `Worker`): prints `info` as JSON, then calls `run(line)`
    for every line it reads and answers each with "ok"."""
    print(json.dumps(info), flush=True)
    for line in sys.stdin:
        run(line.strip())
        print("ok", flush=True)


class Worker:
    """A persistent process that runs one call per line it reads, timed from here.

    So that code which cannot share this process (timm: TensorFlow and
    torchvision in one process can crash; TensorFlow's other kernel library,
    fixed at import) is timed in the same interleaved rounds as our runners.

    Args:
        script: Python source that ends in `serve(run, info)`.
        args: its command-line arguments.
        env: extra environment variables.

    Attributes:
        info: the JSON the script printed first (versions, what it runs on).
    """

    def __init__(self, script, args=(), env=None):
        self.log = tempfile.TemporaryFile(mode="w+")
        root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        self.process = subprocess.Popen(
            [sys.executable, "-c", script, *map(str, args)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.log,
            text=True,
            cwd=root,
            env={**os.environ, **(env or {})},
        )
        self.info = json.loads(self._reply())

    def _reply(self):
        line = self.process.stdout.readline()
        if not line:
            self.log.seek(0)
            raise RuntimeError(f"the worker process stopped: {self.log.read()[-2000:]}")
        return line

    def runner(self, key):
        """A callable that runs `key` in the worker and returns when it is done."""

        def run():
            self.process.stdin.write(key + "\n")
            self.process.stdin.flush()
            self._reply()

        return run

    def close(self):
        self.process.stdin.close()
        self.process.wait(timeout=120)
        self.log.close()


# A worker on whatever TensorFlow CPU kernels its environment picks (TensorFlow fixes them at
# import): SKNet-50 graph inference (`infer/BATCH`) and trainer steps (`train/BATCH`).
SKNET50_WORKER = """
from benchmarks.bench_peers import serve_sknet50
serve_sknet50()
"""
