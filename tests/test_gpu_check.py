"""The GPU check (benchmarks/gpu_check.sh) at tiny sizes on the CPU, so that it does not rot.

One dry run, the way the GPU machine runs it as far as a CPU can: without TensorFlow
(--like-gpu-image), Keras on JAX and on PyTorch, timm, both dtypes, the backend tests' step on
a stand-in test folder, the aggregator and the markdown. Its numbers mean nothing; the test
checks that every row was measured and that the tables are whole.
"""

import importlib.util
import os
import re
import subprocess
import sys
import time

import pytest

from benchmarks import gpu_check

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NEEDS = ("jax", "torch", "timm")
STAND_IN_TEST = """
import importlib.util
import os


def test_backend_and_reference():
    assert os.environ["KERAS_BACKEND"] in ("jax", "torch")
    assert os.path.isdir(os.environ["KERAS_SKNET_BACKEND_REFERENCE"])
    assert importlib.util.find_spec("tensorflow") is None  # as on the GPU machine
"""


@pytest.fixture(scope="module")
def dry_run(tmp_path_factory):
    missing = [name for name in NEEDS if importlib.util.find_spec(name) is None]
    if missing:
        message = f"the GPU check needs {', '.join(missing)}"
        if os.environ.get("KERAS_SKNET_REQUIRE_INTEROP"):
            pytest.fail(message)
        pytest.skip(message)
    root = tmp_path_factory.mktemp("gpu_check")
    tests_dir = root / "backends"
    tests_dir.mkdir()
    (tests_dir / "test_stand_in.py").write_text(STAND_IN_TEST)
    reference = root / "reference"
    reference.mkdir()
    out = root / "out"
    env = {k: v for k, v in os.environ.items() if k not in ("OUT", "KERAS_BACKEND", "PYTHONPATH")}
    env["PYTHON"] = sys.executable
    command = [
        "bash",
        "benchmarks/gpu_check.sh",
        "--cpu-tiny",
        "--like-gpu-image",
        "--out",
        str(out),
        "--backend-tests",
        str(tests_dir),
        "--reference",
        str(reference),
    ]
    start = time.time()
    result = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    print(f"gpu_check.sh --cpu-tiny took {time.time() - start:.0f}s")
    assert result.returncode == 0, result.stdout[-5000:] + result.stderr[-2000:]
    return out, result.stdout


def table_rows(markdown):
    """{(model, task, batch, dtype): {heading: cell}} of the ratio table."""
    lines = markdown.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("| model | task |"))
    headings = [cell.strip() for cell in lines[start].strip("|").split("|")]
    rows = {}
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        cells = dict(zip(headings, (cell.strip() for cell in line.strip("|").split("|"))))
        rows[cells["model"], cells["task"], int(cells["batch"]), cells["dtype"]] = cells
    return rows


def test_every_row_measured_on_every_path(dry_run):
    out, stdout = dry_run
    markdown = (out / "gpu_check.md").read_text()
    assert markdown in stdout  # printed too
    rows = table_rows(markdown)
    planned, _ = gpu_check.plan_rows(tiny=True)
    expected = {(gpu_check.MODEL_NAMES[m], task, batch, dtype) for m, task, batch, dtype in planned}
    assert set(rows) == expected
    for key, cells in rows.items():
        for heading in ("Keras-JAX (XLA)", "Keras-torch", "timm eager", "timm channels_last"):
            assert float(cells[heading]) > 0, (key, heading, cells[heading])
        assert cells["timm compile"] == "-", "no torch.compile in the CPU dry run"
        assert cells["timm best"] in ("eager", "channels_last")
        for heading in ("Keras-JAX / timm best", "Keras-torch / timm best"):
            assert re.fullmatch(r"\d+\.\d\dx", cells[heading]), (key, heading, cells[heading])
        assert float(cells["Keras-JAX first call (s)"]) > 0


def test_targets_and_backend_tests_reported(dry_run):
    out, _ = dry_run
    markdown = (out / "gpu_check.md").read_text()
    targets = [
        line
        for line in markdown.splitlines()
        if line.startswith("| Keras-JAX SKNet-50") or line.startswith("| SK overhead")
    ]
    assert len(targets) == 5
    for line in targets:
        assert re.search(r"\| \d+\.\d\dx \|", line) and line.endswith("| (dry run) |"), line
    for backend in ("jax", "torch"):
        assert re.search(rf"^\| {backend} \| passed: 1 passed", markdown, re.M), markdown
    assert "torch.compile not run: CPU dry run" in markdown
    assert "Not measured" not in markdown


def test_results_file_and_report(dry_run, tmp_path):
    out, _ = dry_run
    records = gpu_check.load(out / "results.jsonl")
    rows = [r for r in records if r["kind"] == "row"]
    assert rows and all(r["status"] == "ok" for r in rows), [r for r in rows if r["status"] != "ok"]
    assert {r["framework"] for r in records if r["kind"] == "meta"} == {"keras-jax", "keras-torch", "timm"}
    assert (out / "gpu_check.log").stat().st_size > 0
    # `report` makes the same table from the results; `append` adds it to a BENCHMARKS.md.
    remade = tmp_path / "remade.md"
    assert gpu_check.main(["report", str(out / "results.jsonl"), "--markdown", str(remade)]) == 0
    assert remade.read_text() == (out / "gpu_check.md").read_text()
    benchmarks = tmp_path / "BENCHMARKS.md"
    benchmarks.write_text("# Benchmarks\n\nearlier tables\n")
    assert gpu_check.main(["append", str(remade), "--to", str(benchmarks)]) == 0
    text = benchmarks.read_text()
    assert text.startswith("# Benchmarks\n\nearlier tables\n\n## GPU check")


def test_backend_tests_skip_with_a_reason(tmp_path):
    runnable, reason = gpu_check.backend_tests_plan(str(tmp_path / "absent"), str(tmp_path))
    assert not runnable and "is not in this checkout" in reason
    runnable, reason = gpu_check.backend_tests_plan(str(tmp_path), str(tmp_path / "absent"))
    assert not runnable and "no reference directory" in reason and "prepare_gpu_wheels.sh" in reason
    assert gpu_check.backend_tests_plan(str(tmp_path), str(tmp_path)) == (True, None)


def test_plan_puts_the_targets_first():
    rows, compile_rows = gpu_check.plan_rows(tiny=False)
    assert rows[:4] == [
        ["sknet50", "train", 128, "mixed_bfloat16"],
        ["sknet50", "infer", 256, "mixed_bfloat16"],
        ["resnext50", "train", 128, "mixed_bfloat16"],
        ["resnext50", "infer", 256, "mixed_bfloat16"],
    ]
    assert len(rows) == len({tuple(row) for row in rows}) == 16  # 2 models x 2 dtypes x 4 tasks
    assert compile_rows[:2] == [rows[1], rows[0]]


def test_phase_deadlines_leave_later_phases_their_reserve(monkeypatch):
    now = 1000.0
    monkeypatch.setattr(gpu_check.time, "time", lambda: now)
    phases = gpu_check.PHASES
    end = now + 440
    deadlines = {
        phase.name: gpu_check.phase_deadline(phase, phases[index + 1 :], end, gpu=True)
        for index, phase in enumerate(phases)
    }
    assert deadlines["timm-targets"] == now + 45  # its cap
    assert deadlines["keras-jax"] == end - 65  # all but what timm-rest and keras-torch are kept
    assert deadlines["keras-torch"] == now + 60
    assert deadlines["timm-compile"] == end
    assert all(gpu_check.phase_deadline(phase, [], end, gpu=False) == end for phase in phases)


def test_exit_status_fails_on_failures_not_on_time():
    ran = [{"kind": "phase", "status": "ran"}, {"kind": "tests", "status": "passed"}]
    out_of_time = [{"kind": "phase", "status": "killed"}, {"kind": "row", "status": "skipped"}]
    assert gpu_check.exit_status(ran + out_of_time + [{"kind": "tests", "status": "timeout"}]) == 0
    assert gpu_check.exit_status(ran + [{"kind": "row", "status": "failed"}]) == 1
    assert gpu_check.exit_status(ran + [{"kind": "phase", "status": "failed"}]) == 1
    assert gpu_check.exit_status(ran + [{"kind": "tests", "status": "failed (exit 1)"}]) == 1
