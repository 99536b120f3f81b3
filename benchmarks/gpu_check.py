"""The GPU check: backend tests, then SKNet-50 against timm on one GPU, within a time budget.

Started by benchmarks/gpu_check.sh (which installs the carried wheels first); the commands:

    python -m benchmarks.gpu_check run --mode gpu|cpu-tiny --deadline EPOCH --out DIR
        [--reference DIR] [--backend-tests DIR] [--compile auto|on|off]
    python -m benchmarks.gpu_check report RESULTS.jsonl [--markdown FILE]
    python -m benchmarks.gpu_check append FILE.md [--to BENCHMARKS.md]

`run` does, in this order, each step in its own processes and with its share of the time left
before the deadline (PHASES says how long each may take and how much it leaves to the steps
after it; the budget is 440 s on the GPU, the machine's start and the transfers not counted):
1. tests/backends on Keras' JAX and PyTorch backends at the same time, against the reference
   directory made on TensorFlow (skipped, saying why, when either is missing), at most 120 s;
2. timm eager and channels_last, the target rows (fast: no compilation);
3. Keras on JAX (XLA), every row in priority order: all the time left but 65 s;
4. timm eager and channels_last, the other rows;
5. Keras on PyTorch, every row in priority order;
6. timm under torch.compile, the SKNet-50 rows at batches 256 and 128, with what time is left.
The rows, in priority order (`plan_rows`): the targets first (SKNet-50 and, for the SK
overhead, ResNeXt-50: training step at batch 128 and inference at batch 256, mixed bfloat16),
then float32 SKNet-50, then batches 64 and 1, then the rest of ResNeXt-50. A worker skips a row
that no longer fits (estimated from the rows before it); a worker still running at its
deadline is killed, and what it did not finish is reported as not reached. XLA compiles each
shape and dtype anew (a minute or more for a training step), which is why Keras-JAX gets most
of the budget.

This module is the orchestration: it runs the workers and records what became of each step as
data, one JSON object per line in DIR/results.jsonl (the workers add their measurements to the
same file as they make them). benchmarks.gpu_report renders the tables from that file alone:
`run` prints them and writes DIR/gpu_check.md, `report` makes them again from a saved results
file, `append` writes them into BENCHMARKS.md in place of the previous run's section. Targets on the GPU: Keras-JAX SKNet-50 training step (mixed bfloat16,
batch 128) >= 1.0x timm's best, inference at batch 256 >= 1.0x, SK overhead (SKNet-50 time over
our ResNeXt-50's) <= 1.3x.

--mode cpu-tiny runs every path on a CPU at tiny sizes (see benchmarks.gpu_workers.TINY_MODELS,
batches 1 and 4, one timed call per round, no torch.compile unless --compile on): its numbers
say nothing about speed, only that the check works.
"""

import argparse
import dataclasses
import datetime
import importlib.util
import json
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import time

from benchmarks.gpu_report import BF16, F32, append, load, render
from benchmarks.gpu_workers import error_text, log

TEST_BACKENDS = ("jax", "torch")
REFERENCE_VARIABLE = "KERAS_SKNET_BACKEND_REFERENCE"
# Batches: (inference batches, training batch).
GPU_BATCHES = ((1, 64, 256), 128)
TINY_BATCHES = ((1, 4), 4)
# Seconds the backend tests may take on the GPU (both backends run at the same time).
GPU_TESTS_CAP = 120
# When a worker's deadline passes, seconds it gets to stop after SIGTERM before SIGKILL.
KILL_GRACE = 3


@dataclasses.dataclass(frozen=True)
class Phase:
    """One worker process.

    name: its name in the log and the report; framework and variants: what it times (see
    benchmarks.gpu_workers); rows: which rows of `plan_rows` ("targets": the first
    TARGET_ROWS, "rest": the others, "all", or "compile": the torch.compile rows); cap: the
    most seconds it may take on the GPU (None: no cap); reserve: the seconds the steps before
    it leave to it on the GPU.
    """

    name: str
    framework: str
    variants: tuple
    rows: str
    cap: float | None
    reserve: float


PHASES = (
    Phase("timm-targets", "timm", ("eager", "channels_last"), "targets", cap=45, reserve=30),
    Phase("keras-jax", "keras-jax", ("xla",), "all", cap=None, reserve=120),
    Phase("timm-rest", "timm", ("eager", "channels_last"), "rest", cap=60, reserve=35),
    Phase("keras-torch", "keras-torch", ("eager",), "all", cap=60, reserve=30),
    Phase("timm-compile", "timm", ("compile",), "compile", cap=None, reserve=0),
)
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


def python_command():
    """This interpreter, with -S when it runs without site-packages (gpu_check.sh --like-gpu-image)."""
    return [sys.executable, *(["-S"] if sys.flags.no_site else [])]


class Writer:
    """Appends the orchestrator's own records to the results file."""

    def __init__(self, path):
        self.path = path

    def write(self, record):
        with open(self.path, "a") as f:
            f.write(json.dumps(record) + "\n")


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


def start_process(command, env, stdout=None):
    """Starts `command` in its own process group, so that a kill also ends its children."""
    return subprocess.Popen(command, env=env, stdout=stdout, stderr=subprocess.STDOUT, start_new_session=True)


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


# ---------------------------------------------------------------------------- backend tests


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


def pytest_summary(log_path):
    """The last line of pytest's output that counts passed/failed/errors, or the last line."""
    try:
        with open(log_path, errors="replace") as f:
            lines = [line.strip() for line in f if line.strip()]
    except OSError:
        return "no output"
    for line in reversed(lines):
        if re.search(r"\d+ (passed|failed|error|errors|skipped|deselected)\b|no tests ran", line):
            return line.strip("= ")
    return lines[-1][:200] if lines else "no output"


def run_backend_tests(tests_dir, reference, deadline, out_dir, tiny, writer):
    """Runs tests_dir on Keras' JAX and PyTorch backends at once, each logged to its own file."""
    runnable, reason = backend_tests_plan(tests_dir, reference)
    if runnable and deadline - time.time() < 10:
        runnable, reason = False, f"time budget: {max(deadline - time.time(), 0):.0f}s left for them"
    if not runnable:
        log(f"backend tests skipped: {reason}")
        for backend in TEST_BACKENDS:
            writer.write(dict(kind="tests", backend=backend, status="skipped", summary=reason, seconds=0))
        return
    processes = {}
    start = time.time()
    for backend in TEST_BACKENDS:
        env = phase_env(f"keras-{backend}", tiny)
        env[REFERENCE_VARIABLE] = os.path.abspath(reference)
        # Both run on one GPU at once: JAX takes memory as it needs it, not 75% up front.
        env["XLA_PYTHON_CLIENT_PREALLOCATE"] = "false"
        command = [*python_command(), "-m", "pytest", "-q", tests_dir]
        log_path = os.path.join(out_dir, f"tests-{backend}.log")
        log(
            f"backend tests on {backend}: {' '.join(command[-4:])} ({REFERENCE_VARIABLE}={reference}) > {log_path}"
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
        writer.write(dict(kind="tests", backend=backend, status=status, summary=summary, seconds=seconds))


# ---------------------------------------------------------------------------------- phases


def phase_env(framework, tiny):
    """The environment of a worker: its Keras backend, and on a CPU small XLA compilations."""
    env = dict(os.environ, PYTHONUNBUFFERED="1", TF_CPP_MIN_LOG_LEVEL="3")
    if framework == "keras-jax":
        env["KERAS_BACKEND"] = "jax"
    elif framework == "keras-torch":
        env["KERAS_BACKEND"] = "torch"
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


def missing_modules(framework):
    """The modules a worker needs that this Python cannot import (checked without importing)."""
    needs = {"keras-jax": ("keras", "jax"), "keras-torch": ("keras", "torch"), "timm": ("timm", "torch")}
    return [name for name in needs[framework] if importlib.util.find_spec(name) is None]


def run_phase(phase, rows, deadline, results_path, tiny, writer):
    """Runs one worker until it ends or its deadline passes; records what became of it."""
    record = dict(
        kind="phase", name=phase.name, framework=phase.framework, variants=list(phase.variants), rows=rows
    )
    missing = missing_modules(phase.framework)
    left = deadline - time.time()
    if missing:
        reason = f"cannot import {', '.join(missing)}"
        if "keras" in missing:
            reason += " (run scripts/prepare_gpu_wheels.sh here and carry .gpu)"
        log(f"phase {phase.name} not run: {reason}")
        writer.write(dict(record, status="failed", reason=reason, seconds=0))
        return
    if left < 5:
        log(f"phase {phase.name} not run: {left:.0f}s left")
        writer.write(
            dict(record, status="skipped", reason=f"time budget: {max(left, 0):.0f}s left", seconds=0)
        )
        return
    command = [
        *python_command(),
        "-m",
        "benchmarks.gpu_workers",
        phase.framework,
        "--rows",
        json.dumps(rows),
        "--results",
        results_path,
        "--deadline",
        f"{deadline:.1f}",
        "--variants",
        ",".join(phase.variants),
        *(["--tiny"] if tiny else []),
    ]
    log(f"phase {phase.name}: {len(rows)} rows x {len(phase.variants)} variants, {left:.0f}s")
    start = time.time()
    process = start_process(command, phase_env(phase.framework, tiny))
    killed = wait_or_kill(process, deadline + KILL_GRACE)
    seconds = round(time.time() - start)
    if killed:
        status, reason = "killed", f"still running at its deadline ({seconds}s)"
    elif process.returncode:
        status, reason = "failed", f"exit {process.returncode}"
    else:
        status, reason = "ran", ""
    log(f"phase {phase.name}: {status} {reason} in {seconds}s")
    writer.write(dict(record, status=status, reason=reason, seconds=seconds))


def phase_deadline(phase, later, global_deadline, gpu):
    """The phase's deadline: its cap, and the reserves of the phases after it, on the GPU."""
    if not gpu:
        return global_deadline
    deadline = global_deadline - sum(p.reserve for p in later)
    if phase.cap is not None:
        deadline = min(deadline, time.time() + phase.cap)
    return deadline


def run(args):
    gpu = args.mode == "gpu"
    tiny = not gpu
    started = args.started or time.time()
    os.makedirs(args.out, exist_ok=True)
    results_path = os.path.abspath(os.path.join(args.out, "results.jsonl"))
    if os.path.exists(results_path):
        os.remove(results_path)
    writer = Writer(results_path)
    machine = machine_record(args.mode, started, args.deadline)
    writer.write(machine)
    log(f"{args.mode}: {machine.get('gpu', 'no nvidia-smi')}; {machine['cpu']}; Python {machine['python']}")
    log(f"budget: {args.deadline - time.time():.0f}s left of {machine['budget_s']}s")

    phases = list(PHASES)
    compile_on = args.compile == "on" or (args.compile == "auto" and gpu)
    if not compile_on:
        phases = [p for p in phases if "compile" not in p.variants]
        writer.write(
            dict(
                kind="note",
                text="torch.compile not run: "
                + ("--compile off" if args.compile == "off" else "CPU dry run (--compile on runs it)"),
            )
        )
    tests_deadline = args.deadline - sum(p.reserve for p in phases) if gpu else args.deadline
    if gpu:
        tests_deadline = min(tests_deadline, time.time() + GPU_TESTS_CAP)
    run_backend_tests(args.backend_tests, args.reference, tests_deadline, args.out, tiny, writer)

    rows, compile_rows = plan_rows(tiny)
    phase_rows = {
        "targets": rows[:TARGET_ROWS],
        "rest": rows[TARGET_ROWS:],
        "all": rows,
        "compile": compile_rows,
    }
    for index, phase in enumerate(phases):
        deadline = phase_deadline(phase, phases[index + 1 :], args.deadline, gpu)
        run_phase(phase, phase_rows[phase.rows], deadline, results_path, tiny, writer)
    writer.write(dict(kind="finished", seconds=round(time.time() - started)))
    markdown = render(load(results_path))
    markdown_path = os.path.join(args.out, "gpu_check.md")
    with open(markdown_path, "w") as f:
        f.write(markdown)
    print("\n" + markdown, flush=True)
    log(f"wrote {markdown_path} and {results_path} ({time.time() - started:.0f}s in all)")
    return exit_status(load(results_path))


def exit_status(records):
    """1 when backend tests, a worker or a row failed (not: skipped or stopped for time), else 0."""
    failed = [r for r in records if r["kind"] == "tests" and r["status"].startswith("failed")]
    failed += [r for r in records if r["kind"] in ("phase", "row") and r["status"] == "failed"]
    return 1 if failed else 0


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
    append_parser.add_argument(
        "--to",
        default=os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "BENCHMARKS.md"),
    )
    args = parser.parse_args(argv)
    if args.command == "run":
        return run(args)
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
