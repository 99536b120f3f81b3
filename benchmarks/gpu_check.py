"""The GPU check: backend tests, then SKNet-50 against timm on one GPU, within a time budget.

Started by benchmarks/gpu_check.sh (which installs the carried wheels first). Read this file top
to bottom: 1. what it checks and in what order, 2. how this process runs each check, 3. the
worker processes that time one framework each, 4. the report, 5. the command line.

    python -m benchmarks.gpu_check run --mode gpu|cpu-tiny --deadline EPOCH --out DIR
        [--reference DIR] [--backend-tests DIR] [--compile auto|on|off]
    python -m benchmarks.gpu_check report RESULTS.jsonl [--markdown FILE]
    python -m benchmarks.gpu_check append FILE.md [--to BENCHMARKS.md]
    python -m benchmarks.gpu_check worker FRAMEWORK --rows JSON --results FILE --deadline EPOCH
        [--tiny] [--variants eager,channels_last]     (started by `run`, one per timing check)

What `run` checks, in the order of `CHECKS`, each in its own processes and with its share of
the time left before the deadline (a check's `cap` is the most it may take on the GPU, its
`reserve` what the checks before it leave to it; the budget is 440 s on the GPU, the machine's
start and the transfers not counted):
1. backend-tests: tests/backends on Keras' JAX and PyTorch backends at the same time, against the
   reference directory made on TensorFlow (skipped, saying why, when either is missing);
2. timm-targets: timm eager and channels_last, the target rows (fast: no compilation);
3. keras-jax: Keras on JAX (XLA), every row in priority order: all the time left but 140 s;
4. scales-demo: the trainer, `python -m training.train --experiment scales_demo --input-pipeline
   grain` on Keras' JAX backend (no TensorFlow) for one epoch (tiny: of the 96-image dataset),
   killed at its deadline; then timm's training step for its closest SK net at the batch, image
   size and precision the trainer ran in (`RECIPE_TIMM`): their images/s side by side (75 s kept
   for it, 100 s at most; the dataset renders in the background from the start, `RecipeData`);
5. timm-rest: timm eager and channels_last, the other rows;
6. keras-torch: Keras on PyTorch, every row in priority order;
7. timm-compile: timm under torch.compile, the SKNet-50 rows at batches 256 and 128 (GPU only,
   unless --compile on), with what time is left.
The rows, in priority order (`plan_rows`): the targets first (SKNet-50 and, for the SK overhead,
ResNeXt-50: training step at batch 128 and inference at batch 256, mixed bfloat16), then float32
SKNet-50, then batches 64 and 1, then the rest of ResNeXt-50. A worker skips a row that no longer
fits (estimated from the rows before it); a worker still running at its deadline is killed, and
what it did not finish is reported as not reached. XLA compiles each shape and dtype anew (a
minute or more for a training step), which is why Keras-JAX gets most of the budget. To add a
check: one entry in `CHECKS` and, for a new framework, one worker function in `WORKERS`.

What it prints and writes: a timestamped log line per step (gpu_check.sh keeps them in
gpu_check.log), then the markdown table, also written to DIR/gpu_check.md. Every check and every
measurement is a JSON line of DIR/results.jsonl, written as it happens (so a kill loses only the
row in flight); the report is made from that file alone (`report` makes it again after the
machine is gone, `append` puts it into BENCHMARKS.md in place of the previous run's section).
The records, by `kind`:
- machine: mode ("gpu" or "cpu-tiny"), date, gpu (nvidia-smi) or cpu, python, budget_s;
- meta (one per worker): framework, versions {package: version}, device, precision;
- row: framework, variant, model, task, batch, dtype, status ("ok", "skipped", "failed"),
  and when ok images_per_s and first_s (the first call, compilation included), else reason;
- phase (one per worker): name, framework, variants, rows (those it was given), status
  ("ran", "killed", "failed", "skipped"), reason, seconds;
- error: framework, reason (what stopped a worker);
- tests: backend, status, summary (pytest's last line), seconds;
- recipe: the scales_demo check's rows: framework "training.train" (status "ok", "failed",
  "timeout" or "skipped"; when ok images_per_s, top1, steps, replicas, mixed_precision, device,
  else reason) and "timm-recipe" (a row's fields, and the timm model's params and macs);
- note: text; finished: seconds.

Targets on the GPU: Keras-JAX SKNet-50 training step (mixed bfloat16, batch 128) >= 1.0x timm's
best, inference at batch 256 >= 1.0x, SK overhead (SKNet-50 time over our ResNeXt-50's) <= 1.3x.
Exit status 1 when backend tests, a worker, a row or the trainer failed (not: skipped or stopped
for time).

--mode cpu-tiny runs every path on a CPU at tiny sizes (`TINY_MODELS`, batches 1 and 4, one timed
call per round, no torch.compile unless --compile on): its numbers say nothing about speed, only
that the check works (tests/test_gpu_check.py runs it).
"""

import argparse
import dataclasses
import datetime
import importlib.util
import json
import math
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import traceback

REPOSITORY = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# ================================================================ 1. What it checks, in what order

BF16, F32, F16 = "mixed_bfloat16", "float32", "mixed_float16"
MODEL_NAMES = {"sknet50": "SKNet-50", "resnext50": "ResNeXt-50"}
# Batches: (inference batches, training batch).
GPU_BATCHES = ((1, 64, 256), 128)
TINY_BATCHES = ((1, 4), 4)
# The first rows of `plan_rows`: the targets' rows.
TARGET_ROWS = 4


def plan_rows(tiny):
    """The rows ([model, task, batch, dtype]) in priority order, and the torch.compile ones."""
    infer_batches, train = TINY_BATCHES if tiny else GPU_BATCHES
    big = max(infer_batches)
    small = sorted(set(infer_batches) - {big}, reverse=True)
    rows = [
        # 1. The targets, and ResNeXt-50 beside them for the SK overhead.
        ["sknet50", "train", train, BF16],
        ["sknet50", "infer", big, BF16],
        ["resnext50", "train", train, BF16],
        ["resnext50", "infer", big, BF16],
        # 2. float32.
        ["sknet50", "train", train, F32],
        ["sknet50", "infer", big, F32],
        # 3. Smaller batches.
        *[["sknet50", "infer", batch, dtype] for dtype in (BF16, F32) for batch in small],
        # 4. The rest of ResNeXt-50.
        ["resnext50", "train", train, F32],
        ["resnext50", "infer", big, F32],
        *[["resnext50", "infer", batch, dtype] for dtype in (BF16, F32) for batch in small],
    ]
    compile_rows = [
        ["sknet50", "infer", big, BF16],
        ["sknet50", "train", train, BF16],
        ["sknet50", "infer", big, F32],
        ["sknet50", "train", train, F32],
    ]
    return rows, compile_rows


@dataclasses.dataclass(frozen=True)
class Check:
    """One step of `run`.

    name: its name in the log and the report; framework: "tests" (the backend tests), "trainer"
    (the scales_demo recipe, `run_recipe_check`; variants: timm's beside it) or the worker that
    times it (a key of `WORKERS`); variants: what that worker times; rows: which rows
    of `plan_rows` ("targets": the first TARGET_ROWS, "rest": the others, "all", or "compile":
    the torch.compile rows); cap: the most seconds it may take on the GPU (None: no cap);
    reserve: the seconds the checks before it leave to it on the GPU.
    """

    name: str
    framework: str
    variants: tuple = ()
    rows: str = ""
    cap: float | None = None
    reserve: float = 0


CHECKS = (
    Check("backend-tests", "tests", cap=120),
    Check("timm-targets", "timm", ("eager", "channels_last"), "targets", cap=45, reserve=30),
    Check("keras-jax", "keras-jax", ("xla",), "all", reserve=120),
    Check("scales-demo", "trainer", ("eager", "channels_last"), cap=100, reserve=75),
    Check("timm-rest", "timm", ("eager", "channels_last"), "rest", cap=60, reserve=35),
    Check("keras-torch", "keras-torch", ("eager",), "all", cap=60, reserve=30),
    Check("timm-compile", "timm", ("compile",), "compile"),
)


# The scales_demo recipe (issue 32): `python -m training.train --experiment scales_demo
# --input-pipeline grain` on Keras' JAX backend, as on a machine without TensorFlow, and beside it
# timm's training step for its closest SK net at the same batch, image size and precision.
RECIPE = "scales_demo"
# The trainer's settings beyond the recipe's. On the GPU: the recipe as registered (12,000 images,
# batch 64, 64 px) for one of its eight epochs: the trainer counts images/s from the second step
# on, so one epoch (187 steps) measures them within the check's share of the budget (top-1 after
# one epoch is not the recipe's). On a CPU: the 96-image tiny dataset at batch 16 (6 steps).
# `sets`: more --set assignments.
RECIPE_SETTINGS = {
    "gpu": dict(dataset="scales_demo", epochs=1, batch=64, sets=()),
    "cpu-tiny": dict(dataset="scales_demo/tiny", epochs=1, batch=16, sets=()),
}
# The recipe's image size and classes (scales_demo's eight shapes; tests/test_gpu_check.py checks
# them against training/experiments.py, which this process does not import: `training` imports
# Keras, whose default backend is TensorFlow).
RECIPE_IMAGE_SIZE, RECIPE_CLASSES = 64, 8
RECIPE_MODEL = "SKNet((1, 1, 1), stem='imagenet', cardinality=8, bottleneck_width=4): 1.02M params, 48M MACs"
# timm's closest: the same SK bottleneck unit with grouped convolutions, one unit per stage,
# cardinality 8, width 4. timm's ResNet has four stages where the recipe's net has three (the
# stock skresnet18 has basic blocks and three times the MACs).
RECIPE_TIMM = ("skresnext50_32x4d", dict(layers=[1, 1, 1, 1], cardinality=8, base_width=4))
# Seconds of the check's time kept for timm's step after the trainer.
RECIPE_TIMM_SECONDS = 25


def check_deadline(check, later, global_deadline, gpu):
    """The check's deadline: its cap, and the reserves of the checks after it, on the GPU."""
    if not gpu:
        return global_deadline
    deadline = global_deadline - sum(c.reserve for c in later)
    if check.cap is not None:
        deadline = min(deadline, time.time() + check.cap)
    return deadline


# ================================================================ 2. Running the checks

# The backend tests' Keras backends, and how they find the reference made on TensorFlow.
TEST_BACKENDS = ("jax", "torch")
REFERENCE_VARIABLE = "KERAS_SKNET_BACKEND_REFERENCE"
# When a process's deadline passes, seconds it gets to stop after SIGTERM before SIGKILL.
KILL_GRACE = 3


def log(message):
    """A timestamped progress line on stdout (the check's log)."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def error_text(error):
    """The exception's type and first line, short enough for a table cell."""
    text = str(error).strip().splitlines()
    first = text[0] if text else ""
    return f"{type(error).__name__}: {first}"[:300]


class Results:
    """Appends one JSON object per line to the results file (this process's and the workers')."""

    def __init__(self, path, framework=None, row_kind="row"):
        self.path = path
        self.framework = framework
        self.row_kind = row_kind  # "recipe": the scales_demo check's rows, in a table of their own

    def write(self, record):
        if self.framework:
            record = {"framework": self.framework, **record}
        with open(self.path, "a") as f:
            f.write(json.dumps(record) + "\n")

    def row(self, row, variant, status, **fields):
        model, task, batch, dtype = row
        self.write(
            dict(
                kind=self.row_kind,
                model=model,
                task=task,
                batch=batch,
                dtype=dtype,
                variant=variant,
                status=status,
            )
            | fields
        )


def machine_record(mode, started, deadline):
    """The GPU (nvidia-smi) or CPU this runs on, and the Python version."""
    record = dict(
        kind="machine",
        mode=mode,
        python=platform.python_version(),
        started=started,
        budget_s=round(deadline - started),
        date=datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    )
    if shutil.which("nvidia-smi"):
        query = ["nvidia-smi", "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"]
        try:
            lines = subprocess.run(query, capture_output=True, text=True, timeout=30).stdout.strip()
            record["gpu"] = lines.splitlines()[0] if lines else "nvidia-smi printed nothing"
        except (OSError, subprocess.SubprocessError) as error:
            record["gpu"] = f"nvidia-smi failed: {error_text(error)}"
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    record["cpu"] = f"{cpu}, {os.cpu_count()} cores"
    return record


def python_command():
    """This interpreter, with -S when it runs without site-packages (gpu_check.sh --like-gpu-image)."""
    return [sys.executable, *(["-S"] if sys.flags.no_site else [])]


def process_env(framework, tiny):
    """The environment of a check's process: its Keras backend, and on a CPU small XLA compilations."""
    env = dict(os.environ, PYTHONUNBUFFERED="1", TF_CPP_MIN_LOG_LEVEL="3")
    if framework.startswith("keras-"):
        env["KERAS_BACKEND"] = framework.removeprefix("keras-")
    if tiny:
        env["JAX_PLATFORMS"] = "cpu"
        # One thread: on a busy CPU, threads spinning in each other's way made tiny steps 10-30x
        # slower. XLA's CPU compiler at its lowest optimisation: the tiny nets compile 2x faster.
        # (Only "--" flags: XLA stops reading XLA_FLAGS at the first token without one.)
        env["OMP_NUM_THREADS"] = "1"
        env["XLA_FLAGS"] = " ".join(
            [
                env.get("XLA_FLAGS", ""),
                "--xla_cpu_multi_thread_eigen=false",
                "--xla_backend_optimization_level=0",
                "--xla_llvm_disable_expensive_passes=true",
            ]
        ).strip()
    return env


def start_process(command, env, stdout=None, cwd=None):
    """Starts `command` in its own process group, so that a kill also ends its children."""
    return subprocess.Popen(
        command, env=env, stdout=stdout, stderr=subprocess.STDOUT, start_new_session=True, cwd=cwd
    )


def wait_or_kill(process, deadline):
    """Waits for `process` until `deadline`; kills its process group past it. True if it was killed."""
    try:
        process.wait(timeout=max(0.0, deadline - time.time()))
        return False
    except subprocess.TimeoutExpired:
        pass
    for sig, grace in ((signal.SIGTERM, KILL_GRACE), (signal.SIGKILL, 30)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            break
        try:
            process.wait(timeout=grace)
            break
        except subprocess.TimeoutExpired:
            continue
    return True


def backend_tests_plan(tests_dir, reference):
    """Whether the backend tests can run: (True, None) or (False, the reason they are skipped)."""
    if not os.path.isdir(tests_dir):
        return False, (
            f"{tests_dir} is not in this checkout (issue 14's backend tests); nothing to run against "
            "the reference"
        )
    if not reference or not os.path.isdir(reference):
        return False, (
            f"no reference directory at {reference!r}: make it with scripts/prepare_gpu_wheels.sh "
            "(python -m tests.backends.make_reference on TensorFlow) and carry it"
        )
    return True, None


def log_lines(log_path):
    """The non-blank lines of a log, stripped; none when it cannot be read."""
    try:
        with open(log_path, errors="replace") as f:
            return [line.strip() for line in f if line.strip()]
    except OSError:
        return []


def pytest_summary(log_path):
    """The last line of pytest's output that counts passed/failed/errors, or the last line."""
    lines = log_lines(log_path)
    for line in reversed(lines):
        if re.search(r"\d+ (passed|failed|error|errors|skipped|deselected)\b|no tests ran", line):
            return line.strip("= ")
    return lines[-1][:200] if lines else "no output"


def run_backend_tests(args, deadline, results):
    """Runs the backend tests on Keras' JAX and PyTorch backends at once, each logged to its own file."""
    tiny = args.mode != "gpu"
    runnable, reason = backend_tests_plan(args.backend_tests, args.reference)
    if runnable and deadline - time.time() < 10:
        runnable, reason = False, f"time budget: {max(deadline - time.time(), 0):.0f}s left for them"
    if not runnable:
        log(f"backend tests skipped: {reason}")
        for backend in TEST_BACKENDS:
            results.write(dict(kind="tests", backend=backend, status="skipped", summary=reason, seconds=0))
        return
    processes = {}
    start = time.time()
    for backend in TEST_BACKENDS:
        env = process_env(f"keras-{backend}", tiny)
        env[REFERENCE_VARIABLE] = os.path.abspath(args.reference)
        # Both run on one GPU at once: JAX takes memory as it needs it, not 75% up front.
        env["XLA_PYTHON_CLIENT_PREALLOCATE"] = "false"
        command = [*python_command(), "-m", "pytest", "-q", args.backend_tests]
        log_path = os.path.join(args.out, f"tests-{backend}.log")
        log(
            f"backend tests on {backend}: {' '.join(command[-4:])} "
            f"({REFERENCE_VARIABLE}={args.reference}) > {log_path}"
        )
        with open(log_path, "w") as log_file:
            processes[backend] = (start_process(command, env, stdout=log_file), log_path)
    for backend, (process, log_path) in processes.items():
        killed = wait_or_kill(process, deadline)
        seconds = round(time.time() - start)
        summary = pytest_summary(log_path)
        if killed:
            status, summary = "timeout", f"stopped after {seconds}s (the time budget); last line: {summary}"
        else:
            status = "passed" if process.returncode == 0 else f"failed (exit {process.returncode})"
        log(f"backend tests on {backend}: {status}: {summary}")
        results.write(dict(kind="tests", backend=backend, status=status, summary=summary, seconds=seconds))


def missing_modules(framework):
    """The modules a worker needs that this Python cannot import (checked without importing)."""
    needs = {
        "keras-jax": ("keras", "jax"),
        "keras-torch": ("keras", "torch"),
        "timm": ("timm", "torch"),
        "timm-recipe": ("timm", "torch"),
        "trainer": ("keras", "jax", "grain"),
    }
    return [name for name in needs[framework] if importlib.util.find_spec(name) is None]


def run_worker(check, rows, deadline, args, results):
    """Runs one check's worker until it ends or its deadline passes; records what became of it."""
    tiny = args.mode != "gpu"
    record = dict(
        kind="phase", name=check.name, framework=check.framework, variants=list(check.variants), rows=rows
    )
    missing = missing_modules(check.framework)
    left = deadline - time.time()
    if missing:
        reason = f"cannot import {', '.join(missing)}"
        if "keras" in missing:
            reason += " (run scripts/prepare_gpu_wheels.sh here and carry .gpu)"
        log(f"phase {check.name} not run: {reason}")
        results.write(dict(record, status="failed", reason=reason, seconds=0))
        return
    if left < 5:
        log(f"phase {check.name} not run: {left:.0f}s left")
        results.write(
            dict(record, status="skipped", reason=f"time budget: {max(left, 0):.0f}s left", seconds=0)
        )
        return
    command = [*python_command(), "-m", "benchmarks.gpu_check", "worker", check.framework]
    command += ["--rows", json.dumps(rows), "--results", results.path, "--deadline", f"{deadline:.1f}"]
    command += ["--variants", ",".join(check.variants), *(["--tiny"] if tiny else [])]
    log(f"phase {check.name}: {len(rows)} rows x {len(check.variants)} variants, {left:.0f}s")
    start = time.time()
    process = start_process(command, process_env(check.framework, tiny))
    killed = wait_or_kill(process, deadline + KILL_GRACE)
    seconds = round(time.time() - start)
    if killed:
        status, reason = "killed", f"still running at its deadline ({seconds}s)"
    elif process.returncode:
        status, reason = "failed", f"exit {process.returncode}"
    else:
        status, reason = "ran", ""
    log(f"phase {check.name}: {status} {reason} in {seconds}s")
    results.write(dict(record, status=status, reason=reason, seconds=seconds))


# The scales_demo check: the real trainer in a subprocess, then timm's step in a worker. The
# trainer runs on Keras' JAX backend with the grain pipeline, which import no TensorFlow (this
# process imports neither the trainer nor Keras: it reads the run's summary.json).

# What JAX computes on, printed by a subprocess in the trainer's environment.
JAX_PROBE = "import jax; d = jax.devices(); print(f'{d[0].platform}: {d[0].device_kind} x{len(d)}')"


def recipe_command(settings, model_dir):
    """The trainer's command line: the recipe on the grain pipeline, trained into `model_dir`."""
    command = [*python_command(), "-m", "training.train", "--experiment", RECIPE, "--input-pipeline", "grain"]
    command += ["--epochs", str(settings["epochs"]), "--batch-size", str(settings["batch"])]
    command += [f"--set={assignment}" for assignment in (f"dataset={settings['dataset']}", *settings["sets"])]
    return command + ["--model-dir", model_dir, "--verbose", "2"]


def recipe_env(tiny, keras_home):
    """The trainer's environment: Keras on JAX (on a CPU, small XLA compilations); the rendered
    dataset is cached under `keras_home`, a temporary folder, so each run renders it anew."""
    env = process_env("keras-jax", tiny)
    env["KERAS_HOME"] = keras_home
    return env


# Renders one split of the embedded dataset into $KERAS_HOME (argv: dataset, split).
RENDER_SPLIT = "import sys; from training.data.embedded import render_split; render_split(*sys.argv[1:])"


class RecipeData:
    """The trainer's KERAS_HOME, a temporary folder, where the recipe's dataset is rendered in the
    background from the start of `run` (one process per split).

    Rendering takes about 1.5 ms an image on one core, over 20 s for the 14,400 images of the GPU
    run: done beside the backend tests, it leaves the trainer's share of the budget to training.
    A render stopped part-way leaves no file (render_split writes atomically): the trainer then
    renders what is missing itself.
    """

    def __init__(self, mode, out, render=True):
        self.work = tempfile.mkdtemp(prefix="gpu_check_recipe.")
        self.keras_home = os.path.join(self.work, "keras_home")
        self.processes = []
        if render and not missing_modules("trainer"):
            # On the CPU: importing the package imports Keras and JAX, which must not take GPU
            # memory from the backend tests running meanwhile.
            env = dict(recipe_env(mode != "gpu", self.keras_home), JAX_PLATFORMS="cpu")
            dataset = RECIPE_SETTINGS[mode]["dataset"]
            for split in ("train", "test"):
                command = [*python_command(), "-c", RENDER_SPLIT, dataset, split]
                with open(os.path.join(out, f"render-{split}.log"), "w") as log_file:
                    self.processes.append(start_process(command, env, stdout=log_file, cwd=REPOSITORY))
            log(f"rendering {dataset} (train, test) into {self.keras_home} in the background")

    def wait(self, deadline):
        """Waits for the renders until `deadline`, and stops those still running then."""
        for process in self.processes:
            wait_or_kill(process, deadline)

    def close(self):
        self.wait(time.time())
        shutil.rmtree(self.work, ignore_errors=True)


def last_line(log_path):
    """The last non-blank line of a log (a trainer's one-line error, or a traceback's last line)."""
    lines = log_lines(log_path)
    return lines[-1][:300] if lines else "no output"


def jax_device(env, deadline):
    """What JAX computes on in `env`, e.g. "gpu: NVIDIA H200 x1" (or why it is not known)."""
    timeout = max(1.0, min(60.0, deadline - time.time()))
    command = [*python_command(), "-c", JAX_PROBE]
    try:
        done = subprocess.run(
            command, env=env, capture_output=True, text=True, timeout=timeout, cwd=REPOSITORY
        )
    except subprocess.TimeoutExpired:
        return f"unknown (jax.devices() took over {timeout:.0f}s)"
    lines = done.stdout.strip().splitlines()
    if done.returncode or not lines:
        error = (done.stderr.strip().splitlines() or ["no output"])[-1]
        return f"unknown (jax.devices() failed: {error[:200]})"
    return lines[-1]


def train_recipe(command, env, deadline, model_dir, log_path):
    """Runs the trainer until it ends or `deadline` passes, and reads the run's summary.json.

    A run that fails, or is still running at the deadline (then killed with its children), is
    returned as a record saying why: the report shows it in the trainer's row, the check goes on.

    Returns:
        A record of kind "recipe" (framework "training.train"): status "ok" with images_per_s
        (summary.json's train_images_per_second), top1, examples, steps, epochs, dataset,
        replicas, mixed_precision, wall_s; else status "failed" or "timeout" and reason. Both
        with seconds (the whole command: the dataset's rendering and compilation included).
    """
    start = time.time()
    with open(log_path, "w") as log_file:
        # From the repository root, where `python -m training.train` finds the trainer.
        process = start_process(command, env, stdout=log_file, cwd=REPOSITORY)
        killed = wait_or_kill(process, deadline)
    seconds = round(time.time() - start)
    record = dict(kind="recipe", framework="training.train", seconds=seconds)
    if killed:
        reason = f"stopped at its deadline after {seconds}s; last line: {last_line(log_path)}"
        return dict(record, status="timeout", reason=reason)
    if process.returncode:
        return dict(record, status="failed", reason=f"exit {process.returncode}: {last_line(log_path)}")
    try:
        with open(os.path.join(model_dir, "summary.json")) as f:
            summary = json.load(f)
    except (OSError, ValueError) as error:
        return dict(record, status="failed", reason=f"exit 0 but no summary.json: {error_text(error)}")
    images_per_s = summary.get("train_images_per_second")
    if not isinstance(images_per_s, (int, float)) or not math.isfinite(images_per_s):
        # The trainer counts from the second step on: one step gives no speed.
        reason = (
            f"summary.json has no training images/s ({images_per_s!r}) after {summary.get('steps')} steps"
        )
        return dict(record, status="failed", reason=reason)
    final = summary.get("final", {})
    return dict(
        record,
        status="ok",
        images_per_s=images_per_s,
        top1=final.get("top1"),
        examples=final.get("examples"),
        **{key: summary.get(key) for key in ("steps", "epochs", "dataset", "replicas", "mixed_precision")},
        wall_s=summary.get("wall_time_seconds"),
    )


def run_recipe_check(check, deadline, args, results, data=None):
    """The scales_demo recipe trained by the trainer on JAX with grain, then timm's step beside it.

    The trainer gets the check's time but RECIPE_TIMM_SECONDS, in `data` (a `RecipeData`; None: a
    new one, nothing rendered beforehand); timm's worker then times its closest net's training
    step at the batch and precision the trainer ran in (float32 where the trainer did not run).
    """
    own_data = data is None
    data = RecipeData(args.mode, args.out, render=False) if own_data else data
    try:
        _run_recipe_check(check, deadline, args, results, data)
    finally:
        if own_data:
            data.close()


def _run_recipe_check(check, deadline, args, results, data):
    tiny = args.mode != "gpu"
    settings = RECIPE_SETTINGS[args.mode]
    phase = dict(kind="phase", name=check.name, framework="training.train", variants=[], rows=[])
    record = dict(kind="recipe", framework="training.train", seconds=0)
    start = time.time()
    missing = missing_modules("trainer")
    left = deadline - RECIPE_TIMM_SECONDS - time.time()
    if missing:
        record.update(status="failed", reason=f"cannot import {', '.join(missing)}")
    elif left < 10:
        record.update(status="skipped", reason=f"time budget: {max(left, 0):.0f}s left")
    else:
        env = recipe_env(tiny, data.keras_home)
        device = jax_device(env, deadline)
        log(f"phase {check.name}: training.train on {device}, {left:.0f}s")
        model_dir = os.path.join(data.work, "run")
        command = recipe_command(settings, model_dir)
        log_path = os.path.join(args.out, f"train-{RECIPE}.log")
        if not tiny and not device.startswith("gpu"):
            record.update(status="failed", reason=f"JAX does not run on a GPU here: {device}")
        else:
            data.wait(deadline - RECIPE_TIMM_SECONDS)
            log(f"{' '.join(command[-16:])} > {log_path}")
            record = train_recipe(command, env, deadline - RECIPE_TIMM_SECONDS, model_dir, log_path)
        record["device"] = device
    record.update(batch=settings["batch"], image_size=RECIPE_IMAGE_SIZE)
    results.write(record)
    status = {"ok": "ran", "timeout": "killed"}.get(record["status"], record["status"])
    results.write(
        dict(phase, status=status, reason=record.get("reason", ""), seconds=round(time.time() - start))
    )
    log(
        f"phase {check.name}: training.train {record['status']}: "
        + (f"{record['images_per_s']:.1f} img/s" if record["status"] == "ok" else record["reason"])
    )
    timm_check = dataclasses.replace(check, name=f"{check.name}-timm", framework="timm-recipe")
    row = [RECIPE, "train", settings["batch"], record.get("mixed_precision") or F32]
    run_worker(timm_check, [row], deadline, args, results)


def run(args):
    """Every check of `CHECKS` in order, then the table (printed and written to gpu_check.md)."""
    gpu = args.mode == "gpu"
    started = args.started or time.time()
    os.makedirs(args.out, exist_ok=True)
    results_path = os.path.abspath(os.path.join(args.out, "results.jsonl"))
    if os.path.exists(results_path):
        os.remove(results_path)
    results = Results(results_path)
    machine = machine_record(args.mode, started, args.deadline)
    results.write(machine)
    log(f"{args.mode}: {machine.get('gpu', 'no nvidia-smi')}; {machine['cpu']}; Python {machine['python']}")
    log(f"budget: {args.deadline - time.time():.0f}s left of {machine['budget_s']}s")

    checks = list(CHECKS)
    if not (args.compile == "on" or (args.compile == "auto" and gpu)):
        checks = [c for c in checks if "compile" not in c.variants]
        why = "--compile off" if args.compile == "off" else "CPU dry run (--compile on runs it)"
        results.write(dict(kind="note", text=f"torch.compile not run: {why}"))
    rows, compile_rows = plan_rows(tiny=not gpu)
    check_rows = {
        "targets": rows[:TARGET_ROWS],
        "rest": rows[TARGET_ROWS:],
        "all": rows,
        "compile": compile_rows,
    }
    # The recipe's dataset renders while the checks before the trainer run.
    data = RecipeData(args.mode, args.out) if any(c.framework == "trainer" for c in checks) else None
    try:
        for index, check in enumerate(checks):
            deadline = check_deadline(check, checks[index + 1 :], args.deadline, gpu)
            if check.framework == "tests":
                run_backend_tests(args, deadline, results)
            elif check.framework == "trainer":
                run_recipe_check(check, deadline, args, results, data)
            else:
                run_worker(check, check_rows[check.rows], deadline, args, results)
    finally:
        if data is not None:
            data.close()
    results.write(dict(kind="finished", seconds=round(time.time() - started)))

    records = load(results_path)
    markdown = render(records)
    markdown_path = os.path.join(args.out, "gpu_check.md")
    with open(markdown_path, "w") as f:
        f.write(markdown)
    print("\n" + markdown, flush=True)
    log(f"wrote {markdown_path} and {results_path} ({time.time() - started:.0f}s in all)")
    return exit_status(records)


def exit_status(records):
    """1 when backend tests, a worker, a row or the trainer failed (not: skipped or stopped for
    time), else 0."""
    failed = [r for r in records if r["kind"] == "tests" and r["status"].startswith("failed")]
    failed += [r for r in records if r["kind"] in ("phase", "row", "recipe") and r["status"] == "failed"]
    return 1 if failed else 0


# ================================================================ 3. The workers: one framework each
#
# A process can hold one Keras backend only, so each timing check runs its framework in a process
# of its own (`worker`). It measures its rows in priority order and appends one JSON line per row
# and variant as soon as it has it. How each framework runs a row:
# - keras-jax: `model.stateless_call` under `jax.jit` (XLA); the training step is one jitted
#   function (forward, cross-entropy on float32 logits, gradients, SGD with momentum through
#   `optimizer.stateless_apply`) with its state donated, as `model.fit` runs it on JAX.
# - keras-torch: the model called under `torch.no_grad()`; training through `train_on_batch`
#   (Keras' own PyTorch training step, eager).
# - timm: `timm.create_model` (same architectures: skresnext50_32x4d is the paper's SKNet-50),
#   variant "eager" (NCHW), "channels_last" (memory_format=torch.channels_last) or "compile"
#   (channels_last under `torch.compile`); mixed bfloat16 is `torch.autocast(dtype=bfloat16)`.
#   Same SGD (momentum 0.9) and cross-entropy on float32 logits.
# Inputs are 224x224 (tiny: 32x32) float32 images already on the device, labels random. Time per
# call: warm-up calls (the first one compiles), then the median over rounds of several calls with
# one device synchronisation per round (jax: block_until_ready, torch: torch.cuda.synchronize).

# name -> (Keras builder and its arguments, timm model name and its arguments), full size.
MODELS = {
    "sknet50": (("SKNet50", {}), ("skresnext50_32x4d", {})),
    "resnext50": (("ResNeXt50", {}), ("resnext50_32x4d", {})),
}
# Tiny: the same families, small enough for a CPU (XLA compiles a Keras training step on a CPU in
# seconds): Keras nets of one stage of one unit, timm's of four stages of one unit (its forward
# needs four), cardinality 4, 10 classes, 32x32 inputs.
TINY_MODELS = {
    "sknet50": (("SKNet", dict(stage_depths=(1,), block="sk", cardinality=4)), ("skresnext50_32x4d", {})),
    "resnext50": (
        ("SKNet", dict(stage_depths=(1,), block="resnext", cardinality=4)),
        ("resnext50_32x4d", {}),
    ),
}
TINY_TIMM_ARGS = dict(layers=[1, 1, 1, 1], cardinality=4)
TIMM_VARIANTS = ("eager", "channels_last", "compile")
DTYPES = (F32, BF16)
# The precisions the trainer may have run the recipe in (its summary's dtype policy).
RECIPE_DTYPES = (F32, BF16, F16)
TASKS = ("infer", "train")

# Timing: (warm-up calls, timed rounds, seconds a round aims at, most calls a round).
GPU_TIMING = (3, 5, 0.25, 50)
TINY_TIMING = (1, 2, 0.0, 1)

# Seconds a row is expected to take before anything was measured (compilation included); once a
# row of the same kind has run, its measured time replaces the guess.
GPU_GUESSES = {
    ("keras-jax", "build"): 25.0,
    ("keras-jax", "infer"): 35.0,
    ("keras-jax", "train"): 80.0,
    ("keras-torch", "build"): 10.0,
    ("keras-torch", "infer"): 6.0,
    ("keras-torch", "train"): 8.0,
    ("timm", "build"): 3.0,
    ("timm", "infer"): 3.0,
    ("timm", "train"): 4.0,
    ("timm-compile", "infer"): 70.0,
    ("timm-compile", "train"): 150.0,
}
TINY_GUESS = 5.0


def classes_and_size(tiny):
    """(classes, image height and width) of the models and inputs."""
    return (10, 32) if tiny else (1000, 224)


def time_calls(call, sync, timing):
    """Seconds per call of `call()`, measured after warm-up.

    Args:
        call: runs one inference batch or training step; returns what `sync` waits on.
        sync: waits until the device has finished what `call` returned.
        timing: (warm-up calls, rounds, seconds per round, most calls per round).

    Returns:
        {"first_s": the first call (compilation), "median_s", "min_s", "max_s": per call over
        the rounds, "calls": calls per round, "rounds"}.
    """
    warmup, rounds, round_seconds, max_calls = timing
    start = time.perf_counter()
    sync(call())
    first = time.perf_counter() - start
    for _ in range(warmup - 1):
        sync(call())
    start = time.perf_counter()
    sync(call())
    one = time.perf_counter() - start
    calls = max(1, min(max_calls, int(round_seconds / max(one, 1e-6))))
    per_call = []
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(calls):
            result = call()
        sync(result)
        per_call.append((time.perf_counter() - start) / calls)
    return {
        "first_s": first,
        "median_s": statistics.median(per_call),
        "min_s": min(per_call),
        "max_s": max(per_call),
        "calls": calls,
        "rounds": rounds,
    }


class Budget:
    """Decides whether a row still fits before the deadline, from what similar rows cost."""

    def __init__(self, deadline, tiny):
        self.deadline = deadline
        self.tiny = tiny
        self.seen = {}

    def left(self):
        return self.deadline - time.time()

    def estimate(self, kind, task, needs_build):
        if self.tiny:
            return TINY_GUESS
        cost = self.seen.get((kind, task), GPU_GUESSES[kind, task])
        if needs_build:
            cost += self.seen.get((kind, "build"), GPU_GUESSES.get((kind, "build"), 0.0))
        return cost

    def record(self, kind, task, seconds):
        self.seen[kind, task] = seconds


def run_rows(rows, variants, results, budget, kind_of, prepare, measure):
    """Measures `rows` x `variants` in order, skipping what no longer fits before the deadline.

    Args:
        rows: [model, task, batch, dtype] lists in priority order.
        variants: the framework's variants to time for each row.
        results: a `Results`.
        budget: a `Budget`.
        kind_of: variant -> the key of its cost estimates (e.g. "timm-compile").
        prepare: (model, dtype, variant) -> an object `measure` uses, built once and cached.
        measure: (prepared, row, variant) -> the dict of `time_calls`.
    """
    prepared = {}
    for row in rows:
        model, task, batch, dtype = row
        for variant in variants:
            key, kind = (model, dtype, variant), kind_of(variant)
            what = f"{model} {task} b{batch} {dtype} {variant}"
            cost = budget.estimate(kind, task, needs_build=key not in prepared)
            left = budget.left()
            if cost > left:
                log(f"skip {what}: needs ~{cost:.0f}s, {left:.0f}s left")
                results.row(
                    row, variant, "skipped", reason=f"time budget: needs ~{cost:.0f}s, {left:.0f}s left"
                )
                continue
            log(f"start {what}")
            try:
                if key not in prepared:
                    start = time.time()
                    try:
                        prepared[key] = prepare(model, dtype, variant)
                    except Exception as error:
                        prepared[key] = error  # the next rows of this model fail at once
                        raise
                    budget.record(kind, "build", time.time() - start)
                    log(f"built {model} {dtype} {variant} in {time.time() - start:.1f}s")
                if isinstance(prepared[key], Exception):
                    raise prepared[key]
                start = time.time()
                timing = measure(prepared[key], row, variant)
                budget.record(kind, task, time.time() - start)
            except Exception as error:  # noqa: BLE001 - one failed row must not end the check
                traceback.print_exc()
                log(f"FAILED {what}: {error_text(error)}")
                results.row(row, variant, "failed", reason=error_text(error))
                continue
            images_per_s = batch / timing["median_s"]
            log(
                f"done  {what}: {timing['median_s'] * 1e3:.2f} ms/call, {images_per_s:.1f} img/s, "
                f"first call {timing['first_s']:.1f}s"
            )
            results.row(row, variant, "ok", images_per_s=images_per_s, **timing)


def build_keras_model(model, dtype, tiny):
    """A Keras SKNet-50 / ResNeXt-50 (or its tiny stand-in) under `dtype`, logits out."""
    import keras

    from keras_sknet import applications

    keras.config.set_dtype_policy(dtype)
    (builder, arguments), _ = (TINY_MODELS if tiny else MODELS)[model]
    classes, size = classes_and_size(tiny)
    return getattr(applications, builder)(
        weights=None,
        input_shape=(size, size, 3),
        classes=classes,
        classifier_activation=None,
        name=model,
        **arguments,
    )


def keras_jax_worker(rows, variants, results, budget, timing, tiny):
    """Keras on JAX: jitted stateless inference and training steps (XLA)."""
    from importlib.metadata import version

    import jax
    import keras
    import numpy as np

    device = jax.devices()[0]
    results.write(
        dict(
            kind="meta",
            versions={"jax": jax.__version__, "jaxlib": version("jaxlib"), "keras": keras.__version__},
            device=f"{device.platform}: {device.device_kind}"
            if device.platform == "gpu"
            else device.platform,
            precision=str(getattr(jax.config, "jax_default_matmul_precision", None) or "default"),
        )
    )
    if not tiny and device.platform != "gpu":
        raise RuntimeError(f"JAX runs on {device.platform}, not on a GPU: its CUDA plugin did not load")
    classes, size = classes_and_size(tiny)
    rng = np.random.default_rng(0)

    def prepare(model, dtype, variant):
        net = build_keras_model(model, dtype, tiny)
        infer = jax.jit(
            lambda trainable, other, x: net.stateless_call(trainable, other, x, training=False)[0]
        )
        return net, infer

    def measure(prepared, row, variant):
        net, infer = prepared
        _, task, batch, _ = row
        x = jax.device_put(rng.normal(size=(batch, size, size, 3)).astype("float32"))
        if task == "infer":
            trainable = [v.value for v in net.trainable_variables]
            other = [v.value for v in net.non_trainable_variables]
            return time_calls(lambda: infer(trainable, other, x), jax.block_until_ready, timing)
        y = jax.device_put(rng.integers(0, classes, batch).astype("int32"))
        step, state = keras_jax_train_step(net)
        holder = [state]

        def call():
            holder[0], loss = step(holder[0], x, y)
            return loss

        return time_calls(call, jax.block_until_ready, timing)

    run_rows(rows, ["xla"], results, budget, lambda variant: "keras-jax", prepare, measure)


def keras_jax_train_step(net):
    """A jitted SGD training step over the model's state, and a fresh copy of that state.

    The step donates its state (as `model.fit` does on JAX), so the copy keeps the model's own
    variables usable for the inference rows.
    """
    import jax
    import jax.numpy as jnp
    import keras

    optimizer = keras.optimizers.SGD(learning_rate=0.01, momentum=0.9)
    optimizer.build(net.trainable_variables)

    def step(state, x, y):
        trainable, other, optimizer_state = state

        def loss_fn(trainable, other):
            logits, other = net.stateless_call(trainable, other, x, training=True)
            logits = keras.ops.cast(logits, "float32")
            loss = keras.ops.mean(keras.losses.sparse_categorical_crossentropy(y, logits, from_logits=True))
            return loss, other

        (loss, other), grads = jax.value_and_grad(loss_fn, has_aux=True)(trainable, other)
        trainable, optimizer_state = optimizer.stateless_apply(optimizer_state, grads, trainable)
        return (trainable, other, optimizer_state), loss

    def copy(variables):
        return [jnp.array(v.value, copy=True) for v in variables]

    state = (copy(net.trainable_variables), copy(net.non_trainable_variables), copy(optimizer.variables))
    return jax.jit(step, donate_argnums=0), state


def torch_setup(torch, versions, results, tiny):
    """A PyTorch worker's start: records versions, the device and what float32 convolutions and
    matmuls run in; checks CUDA (unless tiny).

    Returns:
        `(device, sync, seeded generator)`.
    """
    if torch.cuda.is_available():
        flags = []
        for label, get in (
            ("cudnn.allow_tf32", lambda: torch.backends.cudnn.allow_tf32),
            ("matmul.allow_tf32", lambda: torch.backends.cuda.matmul.allow_tf32),
        ):
            try:
                flags.append(f"{label}={get()}")
            except Exception as error:  # noqa: BLE001 - a description only; newer torch renamed flags
                flags.append(f"{label} unknown ({error_text(error)})")
        device, meta = (
            "cuda",
            {
                "device": f"cuda: {torch.cuda.get_device_name(0)}",
                "cudnn": str(torch.backends.cudnn.version()),
                "precision": ", ".join(flags),
            },
        )
    else:
        device, meta = "cpu", {"device": "cpu", "precision": "float32"}
    results.write(dict(kind="meta", versions=versions, **meta))
    if not tiny and device != "cuda":
        raise RuntimeError("PyTorch sees no CUDA device")
    torch.backends.cudnn.benchmark = True
    sync = (lambda _: torch.cuda.synchronize()) if device == "cuda" else (lambda _: None)
    return device, sync, torch.Generator().manual_seed(0)


def keras_torch_worker(rows, variants, results, budget, timing, tiny):
    """Keras on PyTorch: eager calls and Keras' own `train_on_batch`."""
    import keras
    import torch

    versions = {"torch": torch.__version__, "keras": keras.__version__}
    device, sync, generator = torch_setup(torch, versions, results, tiny)
    classes, size = classes_and_size(tiny)

    def prepare(model, dtype, variant):
        net = build_keras_model(model, dtype, tiny)
        net.compile(
            optimizer=keras.optimizers.SGD(learning_rate=0.01, momentum=0.9),
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            jit_compile=False,
        )
        return net

    def measure(net, row, variant):
        _, task, batch, _ = row
        x = torch.randn(batch, size, size, 3, generator=generator).to(device)
        if task == "infer":

            def infer():
                with torch.no_grad():
                    return net(x, training=False)

            return time_calls(infer, sync, timing)
        y = torch.randint(0, classes, (batch,), generator=generator).to(device)
        return time_calls(lambda: net.train_on_batch(x, y), sync, timing)

    run_rows(rows, ["eager"], results, budget, lambda variant: "keras-torch", prepare, measure)


def timm_worker(rows, variants, results, budget, timing, tiny):
    """timm's models in eager PyTorch, channels_last, and under torch.compile."""
    import timm
    import torch

    versions = {"torch": torch.__version__, "timm": timm.__version__}
    device, sync, generator = torch_setup(torch, versions, results, tiny)
    classes, size = classes_and_size(tiny)
    channels_last = torch.channels_last

    def prepare(model, dtype, variant):
        _, (name, arguments) = (TINY_MODELS if tiny else MODELS)[model]
        if tiny:
            arguments = {**arguments, **TINY_TIMM_ARGS}
        net = timm.create_model(name, pretrained=False, num_classes=classes, **arguments).to(device)
        if variant != "eager":
            net = net.to(memory_format=channels_last)
        optimizer = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9)
        forward = torch.compile(net) if variant == "compile" else net
        return net, forward, optimizer

    def measure(prepared, row, variant):
        net, forward, optimizer = prepared
        _, task, batch, dtype = row
        x = torch.randn(batch, 3, size, size, generator=generator).to(device)
        if variant != "eager":
            x = x.contiguous(memory_format=channels_last)

        def autocast():
            return torch_autocast(torch, device, dtype)

        if task == "infer":
            net.eval()

            def infer():
                with torch.no_grad(), autocast():
                    return forward(x)

            return time_calls(infer, sync, timing)
        net.train()
        y = torch.randint(0, classes, (batch,), generator=generator).to(device)
        return time_calls(timm_train_step(torch, forward, optimizer, x, y, autocast), sync, timing)

    def kind_of(variant):
        return "timm-compile" if variant == "compile" else "timm"

    run_rows(rows, variants, results, budget, kind_of, prepare, measure)


def torch_autocast(torch, device, dtype):
    """The context a timm net runs `dtype` in: autocast to bfloat16 / float16 for the mixed
    policies, nothing for float32."""
    half = {BF16: torch.bfloat16, F16: torch.float16}.get(dtype)
    return torch.autocast(device, dtype=half or torch.bfloat16, enabled=half is not None)


def timm_train_step(torch, forward, optimizer, x, y, autocast):
    """One training step of a timm net, as a call for `time_calls`: forward under `autocast()`,
    cross-entropy on float32 logits, backward, the optimiser's step; returns the loss."""

    def train():
        optimizer.zero_grad(set_to_none=True)
        with autocast():
            logits = forward(x)
        loss = torch.nn.functional.cross_entropy(logits.float(), y)
        loss.backward()
        optimizer.step()
        return loss

    return train


def count_macs(torch, net, device, size):
    """Multiply-accumulates of the net on one image of `size` px (torch's FLOP counter / 2), or None."""
    try:
        from torch.utils.flop_counter import FlopCounterMode

        net.eval()
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            net(torch.zeros(1, 3, size, size, device=device))
        return counter.get_total_flops() // 2
    except Exception:  # noqa: BLE001 - a description only (older torch has no counter)
        return None


def timm_recipe_name():
    """RECIPE_TIMM as the report names it, e.g. "skresnext50_32x4d(layers=[1, 1, 1, 1], ...)"."""
    name, arguments = RECIPE_TIMM
    return f"{name}({', '.join(f'{key}={value}' for key, value in arguments.items())})"


def timm_recipe_worker(rows, variants, results, budget, timing, tiny):
    """timm's closest net to the scales_demo recipe's: its training step (SGD with momentum,
    forward and backward) at the recipe's image size, the row's batch and precision."""
    import timm
    import torch

    versions = {"torch": torch.__version__, "timm": timm.__version__}
    device, sync, generator = torch_setup(torch, versions, results, tiny)
    name, arguments = RECIPE_TIMM
    size = RECIPE_IMAGE_SIZE

    def prepare(model, dtype, variant):
        net = timm.create_model(name, pretrained=False, num_classes=RECIPE_CLASSES, **arguments).to(device)
        described = dict(
            timm_model=timm_recipe_name(),
            params=sum(p.numel() for p in net.parameters()),
            macs=count_macs(torch, net, device, size),
        )
        if variant != "eager":
            net = net.to(memory_format=torch.channels_last)
        optimizer = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9)
        return net, optimizer, described

    def measure(prepared, row, variant):
        net, optimizer, described = prepared
        _, _, batch, dtype = row
        x = torch.randn(batch, 3, size, size, generator=generator).to(device)
        if variant != "eager":
            x = x.contiguous(memory_format=torch.channels_last)
        y = torch.randint(0, RECIPE_CLASSES, (batch,), generator=generator).to(device)
        net.train()
        step = timm_train_step(torch, net, optimizer, x, y, lambda: torch_autocast(torch, device, dtype))
        return {**time_calls(step, sync, timing), **described}

    run_rows(rows, variants, results, budget, lambda variant: "timm", prepare, measure)


# framework -> its worker: (rows, variants, results, budget, timing, tiny).
WORKERS = {
    "keras-jax": keras_jax_worker,
    "keras-torch": keras_torch_worker,
    "timm": timm_worker,
    "timm-recipe": timm_recipe_worker,
}


def worker(args):
    """The `worker` command: one framework's rows, measured into the results file."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    rows = json.loads(args.rows)
    recipe = args.framework == "timm-recipe"
    models, tasks, dtypes = (
        ((RECIPE,), ("train",), RECIPE_DTYPES) if recipe else (tuple(MODELS), TASKS, DTYPES)
    )
    for row in rows:
        model, task, batch, dtype = row
        if model not in models or task not in tasks or dtype not in dtypes or not int(batch) > 0:
            raise ValueError(
                f"a row is [model, task, batch, dtype] with model in {models}, task in {tasks}, "
                f"batch > 0 and dtype in {dtypes}. Received: {row!r}"
            )
    variants = args.variants.split(",")
    if args.framework.startswith("timm") and not set(variants) <= set(TIMM_VARIANTS):
        raise ValueError(f"--variants must be among {TIMM_VARIANTS}. Received: {args.variants!r}")
    results = Results(args.results, args.framework, row_kind="recipe" if recipe else "row")
    budget = Budget(args.deadline, args.tiny)
    log(f"{args.framework}: {len(rows)} rows, {budget.left():.0f}s left")
    try:
        WORKERS[args.framework](
            rows, variants, results, budget, TINY_TIMING if args.tiny else GPU_TIMING, args.tiny
        )
    except Exception as error:
        traceback.print_exc()
        results.write(dict(kind="error", reason=error_text(error)))
        return 1
    return 0


# ================================================================ 4. The report, from the records alone
#
# The targets are read off the rows: the training step at the largest training batch and
# inference at the largest inference batch, SKNet-50 in mixed bfloat16 (on the GPU: batches 128
# and 256). BENCHMARKS.md keeps the latest GPU check and, apart, the latest CPU dry run.

# The sections' titles in BENCHMARKS.md: a GPU run replaces the GPU section, a dry run its own.
TITLE = "GPU: SKNet-50 on Keras-JAX and Keras-PyTorch against timm (benchmarks/gpu_check.sh)"
DRY_RUN_TITLE = "GPU check dry run on a CPU at tiny sizes (benchmarks/gpu_check.sh --cpu-tiny)"
# Column order of the table: (framework, variant, heading).
COLUMNS = (
    ("keras-jax", "xla", "Keras-JAX (XLA)"),
    ("keras-torch", "eager", "Keras-torch"),
    ("timm", "eager", "timm eager"),
    ("timm", "channels_last", "timm channels_last"),
    ("timm", "compile", "timm compile"),
)


def load(path):
    """The records of a results file, in order."""
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def row_key(model, task, batch, dtype):
    return model, task, int(batch), dtype


def collect(records):
    """{(framework, variant, row_key): the row's record}, where a worker's unmeasured rows get a
    record saying why (killed, skipped or failed worker)."""
    cells = {}
    for record in records:
        if record["kind"] == "row":
            key = row_key(*(record[k] for k in ("model", "task", "batch", "dtype")))
            cells[record["framework"], record["variant"], key] = record
    errors = {r["framework"]: r["reason"] for r in records if r["kind"] == "error"}
    table_frameworks = {framework for framework, _, _ in COLUMNS}
    for record in records:
        # The scales_demo check's phases are reported in the recipe's table (`recipe_table`).
        if record["kind"] != "phase" or record["framework"] not in table_frameworks:
            continue
        for row in record["rows"]:
            for variant in record["variants"]:
                key = (record["framework"], variant, row_key(*row))
                if key in cells:
                    continue
                if record["status"] == "killed":
                    reason = "not reached: the worker was stopped at its deadline"
                elif record["status"] == "failed" and record["framework"] in errors:
                    reason = errors[record["framework"]]
                else:
                    reason = record.get("reason") or "not reached"
                cells[key] = dict(
                    status="failed" if record["status"] == "failed" else "skipped", reason=reason
                )
    return cells


def speed(cell):
    """Images per second of an ok cell, else None."""
    if cell and cell.get("status") == "ok":
        return cell["images_per_s"]
    return None


def format_speed(cell):
    if cell is None:
        return "-"
    if cell.get("status") != "ok":
        return cell["status"]
    value = cell["images_per_s"]
    return f"{value:.0f}" if value >= 100 else f"{value:.1f}"


def format_ratio(value):
    return "-" if value is None else f"{value:.2f}x"


def ratio(numerator, denominator):
    if numerator is None or denominator is None:
        return None
    return numerator / denominator


def timm_best(cells, key):
    """The fastest timm variant at this row: (images/s, variant) or (None, None)."""
    best = (None, None)
    for variant in TIMM_VARIANTS:
        value = speed(cells.get(("timm", variant, key)))
        if value is not None and (best[0] is None or value > best[0]):
            best = (value, variant)
    return best


def render(records):
    """The markdown section: header, ratio table, targets, backend tests, what was not measured."""
    machine = next((r for r in records if r["kind"] == "machine"), {})
    metas = {r["framework"]: r for r in records if r["kind"] == "meta"}
    cells = collect(records)
    tiny = machine.get("mode") != "gpu"
    keys = sorted({key for (_, _, key) in cells}, key=table_order)
    lines = [f"## {DRY_RUN_TITLE if tiny else TITLE}", "", header_line(machine, metas, records), ""]
    if tiny:
        lines += [
            "A dry run on a CPU with tiny nets and inputs: the numbers only show that every path runs.",
            "",
        ]
    headings = [heading for _, _, heading in COLUMNS]
    lines += [
        "| model | task | batch | dtype | " + " | ".join(headings) + " | timm best | Keras-JAX / timm best "
        "| Keras-torch / timm best | Keras-JAX first call (s) |",
        "|---|---|---:|---|" + "---:|" * (len(COLUMNS) + 4),
    ]
    for key in keys:
        model, task, batch, dtype = key
        row = [cells.get((framework, variant, key)) for framework, variant, _ in COLUMNS]
        best, best_variant = timm_best(cells, key)
        jax_cell = cells.get(("keras-jax", "xla", key))
        first = f"{jax_cell['first_s']:.1f}" if speed(jax_cell) is not None else "-"
        lines.append(
            f"| {MODEL_NAMES[model]} | {task} | {batch} | {dtype} | "
            + " | ".join(format_speed(cell) for cell in row)
            + f" | {best_variant or '-'} | {format_ratio(ratio(speed(jax_cell), best))} | "
            f"{format_ratio(ratio(speed(cells.get(('keras-torch', 'eager', key))), best))} | {first} |"
        )
    lines += [
        "",
        "Images per second (higher is better); a ratio above 1.00x is faster than timm's fastest "
        "variant at that row. bf16 = Keras `mixed_bfloat16` / `torch.autocast(bfloat16)`; float32 "
        "runs each framework's default precision (" + precision_note(metas) + ").",
        "",
    ]
    lines += targets_table(cells, keys, tiny)
    lines += recipe_table(records)
    lines += tests_table(records)
    lines += not_measured(cells, keys, records)
    return "\n".join(lines) + "\n"


def table_order(key):
    model, task, batch, dtype = key
    return (list(MODEL_NAMES).index(model), dtype != BF16, task != "train", -batch)


def header_line(machine, metas, records):
    versions = {}
    for meta in metas.values():
        versions.update(meta.get("versions", {}))
    finished = next((r["seconds"] for r in records if r["kind"] == "finished"), None)
    where = machine.get("gpu") or machine.get("cpu", "unknown machine")
    devices = sorted({meta.get("device", "") for meta in metas.values()} - {""})
    parts = [
        machine.get("date", ""),
        where,
        f"seen as {'; '.join(devices)}" if devices else "",
        f"Python {machine.get('python', '?')}",
        ", ".join(f"{name} {value}" for name, value in sorted(versions.items())),
        f"budget {machine.get('budget_s', '?')}s, took {finished}s"
        if finished is not None
        else "did not finish",
    ]
    return "; ".join(part for part in parts if part) + "."


def precision_note(metas):
    notes = []
    for framework in ("keras-jax", "timm", "keras-torch"):
        meta = metas.get(framework)
        if meta and meta.get("precision"):
            notes.append(f"{framework}: {meta['precision']}")
    return "; ".join(notes) or "not recorded"


def targets_table(cells, keys, tiny):
    """The issue's targets, each with the measured ratio and whether it holds."""
    # The targets' batches: the largest training and inference batches among SKNet-50's rows.
    train_batch = max((b for m, task, b, _ in keys if m == "sknet50" and task == "train"), default=None)
    big = max((b for m, task, b, _ in keys if m == "sknet50" and task == "infer"), default=None)
    train_key = ("sknet50", "train", train_batch, BF16)
    infer_key = ("sknet50", "infer", big, BF16)
    infer_f32 = ("sknet50", "infer", big, F32)

    def jax(key):
        return speed(cells.get(("keras-jax", "xla", key)))

    def resnext(key):
        return ("resnext50", *key[1:])

    def verdict(value, goal, sense):
        if value is None:
            return "not measured"
        if tiny:
            return "(dry run)"
        return "met" if (value >= goal if sense == ">=" else value <= goal) else "MISSED"

    train, infer = f"{BF16}, batch {train_batch}", f"{BF16}, batch {big}"
    targets = [  # SK overhead: SKNet-50's time over ResNeXt-50's
        (f"Keras-JAX SKNet-50 training step, {train} / timm best", train_key, "timm", ">="),
        (f"Keras-JAX SKNet-50 inference, {infer} / timm best", infer_key, "timm", ">="),
        (f"Keras-JAX SKNet-50 inference, {F32}, batch {big} / timm best", infer_f32, "timm", ">="),
        (
            f"SK overhead, Keras-JAX training step, {train} (SKNet-50 time / ResNeXt-50 time)",
            train_key,
            "overhead",
            "<=",
        ),
        (f"SK overhead, Keras-JAX inference, {infer}", infer_key, "overhead", "<="),
    ]
    lines = ["| target | measured | goal | verdict |", "|---|---:|---:|---|"]
    for label, key, against, sense in targets:
        if against == "timm":
            value = ratio(jax(key), timm_best(cells, key)[0])
        else:
            value = ratio(jax(resnext(key)), jax(key))
        goal = 1.0 if sense == ">=" else 1.3
        lines.append(
            f"| {label} | {format_ratio(value)} | {sense} {goal:.1f}x | {verdict(value, goal, sense)} |"
        )
    for label, key in (("training step", train_key), ("inference", infer_key)):
        timm_overhead = ratio(timm_best(cells, resnext(key))[0], timm_best(cells, key)[0])
        lines.append(
            f"| for comparison: timm's own SK overhead, {label}, {BF16} (best variants) "
            f"| {format_ratio(timm_overhead)} | | |"
        )
    lines.append("")
    return lines


def recipe_table(records):
    """The scales_demo recipe: the trainer's images/s against timm's training step, and its run."""
    recipe = [r for r in records if r["kind"] == "recipe"]
    ours = next((r for r in recipe if r["framework"] == "training.train"), None)
    theirs = [r for r in recipe if r["framework"] == "timm-recipe"]
    # What became of timm's worker when it recorded no row (not run, killed, failed).
    timm_phase = next((r for r in records if r["kind"] == "phase" and r["framework"] == "timm-recipe"), None)
    if ours is None and not theirs and timm_phase is None:
        return []
    lines = [
        f"The {RECIPE} recipe: `python -m training.train --experiment {RECIPE} --input-pipeline grain` "
        "(Keras on JAX, no TensorFlow) against timm's training step on the same device:",
        "",
        "| training step | model | batch | image size | dtype | images/s | training.train / this |",
        "|---|---|---:|---:|---|---:|---:|",
    ]
    if ours is not None:
        lines.append(
            f"| training.train (Keras-JAX, grain) | {RECIPE_MODEL} | {ours.get('batch', '-')} "
            f"| {ours.get('image_size', '-')} | {ours.get('mixed_precision') or '-'} | {format_speed(ours)} | |"
        )
    for row in theirs:
        model = timm_recipe_name()
        if row.get("params"):
            macs = f", {row['macs'] / 1e6:.0f}M MACs" if row.get("macs") else ""
            model += f": {row['params'] / 1e6:.2f}M params{macs}"
        lines.append(
            f"| timm {row['variant']} | {model} | {row['batch']} | {RECIPE_IMAGE_SIZE} | {row['dtype']} "
            f"| {format_speed(row)} | {format_ratio(ratio(speed(ours), speed(row)))} |"
        )
    lines.append("")
    if ours is not None and ours["status"] == "ok":
        top1 = f"{100 * ours['top1']:.2f}%" if ours.get("top1") is not None else "?"
        lines.append(
            f"training.train: top-1 {top1} on {ours.get('examples')} test images of {ours.get('dataset')} "
            f"after {ours.get('epochs')} epoch(s), {ours.get('steps')} steps, on {ours.get('device')}, "
            f"{ours.get('replicas')} replica(s), {ours.get('mixed_precision')}; {ours['seconds']}s in all "
            "(rendering the dataset, compiling and evaluating included)."
        )
    elif ours is not None:
        lines.append(f"training.train {ours['status']}: {ours.get('reason', '')}".replace("|", "/"))
    for row in theirs:
        if row["status"] != "ok":
            lines.append(f"timm {row['variant']} {row['status']}: {row.get('reason', '')}".replace("|", "/"))
    if not theirs and timm_phase is not None:
        lines.append(f"timm not measured: {timm_phase['status']}: {timm_phase.get('reason') or 'no row'}")
    lines += [
        "",
        "training.train's images/s are its own (summary.json `train_images_per_second`: each step "
        "from its start to its end, from the second step on; AdamW, the recipe's optimiser); timm's, "
        "SGD with momentum on a batch already on the device, the median over rounds after warm-up. "
        "timm's ResNet has four stages where the recipe's SKNet has three.",
        "",
    ]
    return lines


def tests_table(records):
    tests = [r for r in records if r["kind"] == "tests"]
    if not tests:
        return []
    lines = ["| backend tests | result | seconds |", "|---|---|---:|"]
    for record in tests:
        summary = record["summary"].replace("|", "/")
        lines.append(f"| {record['backend']} | {record['status']}: {summary} | {record['seconds']} |")
    return lines + [""]


def not_measured(cells, keys, records):
    """What was not measured and why (one line per column and reason); the checks' times; notes."""
    reasons, planned = {}, {}
    for framework, variant, heading in COLUMNS:
        for key in keys:
            cell = cells.get((framework, variant, key))
            if cell is None:
                continue
            planned[heading] = planned.get(heading, 0) + 1
            if cell.get("status") != "ok":
                reasons.setdefault((heading, cell["status"], cell.get("reason", "")), []).append(key)
    lines = []
    for (heading, status, reason), missed in reasons.items():
        if len(missed) == planned[heading]:
            which = "every row"
        else:
            which = ", ".join(f"{MODEL_NAMES[m]} {task} {batch} {dtype}" for m, task, batch, dtype in missed)
        lines.append(f"- {heading}, {which}: {status}: {reason}")
    phases = [r for r in records if r["kind"] == "phase"]
    notes = [r["text"] for r in records if r["kind"] == "note"]
    out = []
    if lines:
        out += ["Not measured:", "", *lines, ""]
    if phases:
        out.append(
            "Steps: "
            + ", ".join(f"{r['name']} {r['status']} ({r['seconds']}s)" for r in phases)
            + (". " + ". ".join(notes) if notes else "")
            + ". Each time is the median over rounds of several calls with one device "
            "synchronisation per round, after warm-up; inputs on the device."
        )
        out.append("")
    return out


def append(markdown_path, to):
    """Writes a table made by `run` or `report` into BENCHMARKS.md (atomically).

    The section takes the place of the section of the same title (the previous run of the
    same kind); without one, it is appended. Other sections are kept as they are.

    Args:
        markdown_path: a gpu_check.md, as `run` or `report` wrote it.
        to: the BENCHMARKS.md to update.

    Raises:
        ValueError: the file is not a table made by the GPU check (BENCHMARKS.md is left as it was).
    """
    # Imported here: the GPU machine runs this module without the tests' support code.
    from tests.support.markdown import write_section

    with open(markdown_path) as f:
        section = f.read().strip() + "\n"
    first = section.split("\n", 1)[0]
    if not first.startswith("## ") or first[3:] not in (TITLE, DRY_RUN_TITLE):
        raise ValueError(
            f"Not a table made by the GPU check: it starts with {first[:80]!r}; accepted: "
            f"'## {TITLE}' or '## {DRY_RUN_TITLE}'"
        )
    write_section(to, first[3:], section)
    log(f"wrote the section '{first[3:]}' of {markdown_path} into {to}")


# ================================================================ 5. The command line


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    run_parser = commands.add_parser("run", help="backend tests, benchmarks and the table")
    run_parser.add_argument("--mode", choices=("gpu", "cpu-tiny"), default="gpu")
    run_parser.add_argument("--deadline", type=float, required=True, help="Unix time to finish by")
    run_parser.add_argument("--started", type=float, default=None, help="Unix time the check started")
    run_parser.add_argument("--out", required=True, help="folder for results.jsonl, gpu_check.md, test logs")
    run_parser.add_argument(
        "--reference", default=".gpu/reference", help="the backend tests' reference folder"
    )
    run_parser.add_argument("--backend-tests", default="tests/backends", help="the backend tests' folder")
    run_parser.add_argument(
        "--compile",
        choices=("auto", "on", "off"),
        default="auto",
        help="timm under torch.compile (auto: GPU only)",
    )
    report_parser = commands.add_parser("report", help="the table again from a results file")
    report_parser.add_argument("results")
    report_parser.add_argument("--markdown", help="also write the table to this file")
    append_parser = commands.add_parser(
        "append", help="write a table into BENCHMARKS.md, replacing the section of the same title"
    )
    append_parser.add_argument("markdown")
    append_parser.add_argument("--to", default=os.path.join(REPOSITORY, "BENCHMARKS.md"))
    worker_parser = commands.add_parser("worker", help="(started by run) time one framework's rows")
    worker_parser.add_argument("framework", choices=tuple(WORKERS))
    worker_parser.add_argument("--rows", required=True, help="JSON list of [model, task, batch, dtype]")
    worker_parser.add_argument("--results", required=True, help="JSON-lines file to append to")
    worker_parser.add_argument("--deadline", type=float, required=True, help="Unix time to finish by")
    worker_parser.add_argument("--tiny", action="store_true", help="small nets and inputs (CPU dry run)")
    worker_parser.add_argument(
        "--variants", default="eager,channels_last", help="timm variants, comma-separated"
    )
    args = parser.parse_args(argv)
    if args.command == "run":
        return run(args)
    if args.command == "worker":
        return worker(args)
    if args.command == "report":
        markdown = render(load(args.results))
        if args.markdown:
            with open(args.markdown, "w") as f:
                f.write(markdown)
        print(markdown)
        return 0
    append(args.markdown, args.to)
    return 0


if __name__ == "__main__":
    sys.exit(main())
