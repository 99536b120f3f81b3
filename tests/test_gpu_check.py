"""The GPU check (benchmarks/gpu_check.sh) at tiny sizes on the CPU, so that it does not rot.

One dry run, the way the GPU machine runs it as far as a CPU can: without TensorFlow
(--like-gpu-image), Keras on JAX and on PyTorch, timm, both dtypes, the backend tests' step on
a stand-in test folder, the aggregator and the markdown. Its numbers mean nothing; the test
checks that every row was measured and that the tables are whole. The script's commands run as
its users run them (`python -m benchmarks.gpu_check report|append`, in a subprocess); its plan,
deadlines, exit status and report are checked on the script itself, loaded by path.
"""

import argparse
import importlib.util
import json
import math
import os
import re
import subprocess
import sys
import time

import pytest

from tests.helpers import REPOSITORY as REPO
from tests.helpers import run_as_user


def _load_script(path):
    """The script at `path` (in the repository) as a module: the tests import no benchmarks package."""
    spec = importlib.util.spec_from_file_location("gpu_check_under_test", os.path.join(REPO, path))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


gpu_check = _load_script("benchmarks/gpu_check.py")


def gpu_check_command(*args, cwd, status=0):
    """`python -m benchmarks.gpu_check ARGS`, as its users run it; asserts its exit status."""
    done = run_as_user(["-m", "benchmarks.gpu_check", *args], cwd=cwd)
    assert done.returncode == status, done.stdout[-2000:] + done.stderr[-3000:]
    return done


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


def markdown_table(markdown, header):
    """The rows, as {heading: cell}, of the table whose heading line starts with `header`."""
    lines = markdown.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(header))
    headings = [cell.strip() for cell in lines[start].strip("|").split("|")]
    rows = []
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        rows.append(dict(zip(headings, (cell.strip() for cell in line.strip("|").split("|")))))
    return rows


def table_rows(markdown):
    """{(model, task, batch, dtype): {heading: cell}} of the ratio table."""
    return {
        (cells["model"], cells["task"], int(cells["batch"]), cells["dtype"]): cells
        for cells in markdown_table(markdown, "| model | task |")
    }


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


def recipe_rows(markdown):
    """{first cell: {heading: cell}} of the scales_demo recipe's table."""
    return {cells["training step"]: cells for cells in markdown_table(markdown, "| training step | model |")}


def test_scales_demo_recipe_trained_without_tensorflow_beside_timm(dry_run):
    out, _ = dry_run
    markdown = (out / "gpu_check.md").read_text()
    rows = recipe_rows(markdown)
    assert set(rows) == {"training.train (Keras-JAX, grain)", "timm eager", "timm channels_last"}
    for name, cells in rows.items():
        value = float(cells["images/s"])
        assert math.isfinite(value) and value > 0, (name, cells)
        assert (cells["batch"], cells["image size"], cells["dtype"]) == ("16", "64", "float32"), cells
    for name in ("timm eager", "timm channels_last"):
        assert rows[name]["model"].startswith(
            "skresnext50_32x4d(layers=[1, 1, 1, 1], cardinality=8, base_width=4)"
        )
        assert re.fullmatch(r"\d+\.\d\dx", rows[name]["training.train / this"]), rows[name]
    # The run itself, from summary.json: the tiny dataset's 96 images at batch 16, on the CPU.
    records = gpu_check.load(out / "results.jsonl")
    (ours,) = [r for r in records if r["kind"] == "recipe" and r["framework"] == "training.train"]
    assert ours["status"] == "ok" and ours["steps"] == 96 // 16 and ours["dataset"] == "scales_demo/tiny"
    assert ours["device"].startswith("cpu") and ours["replicas"] == 1 and 0 <= ours["top1"] <= 1
    assert "top-1" in markdown and "scales_demo/tiny after 1 epoch(s), 6 steps" in markdown
    # The trainer ran where TensorFlow cannot be imported (--like-gpu-image hides it), as on the GPU.
    log = (out / "train-scales_demo.log").read_text()
    assert "scales_demo on scales_demo/tiny: top-1" in log
    # The dataset was rendered in the background while the checks before it ran.
    assert (out / "render-train.log").exists() and (out / "render-test.log").exists()


def test_results_file_and_report(dry_run, tmp_path):
    out, _ = dry_run
    records = gpu_check.load(out / "results.jsonl")
    rows = [r for r in records if r["kind"] == "row"]
    assert rows and all(r["status"] == "ok" for r in rows), [r for r in rows if r["status"] != "ok"]
    assert {r["framework"] for r in records if r["kind"] == "meta"} == {
        "keras-jax",
        "keras-torch",
        "timm",
        "timm-recipe",
    }
    assert (out / "gpu_check.log").stat().st_size > 0
    # `report` makes the same table from the results; `append` writes it into a BENCHMARKS.md.
    remade = tmp_path / "remade.md"
    gpu_check_command("report", str(out / "results.jsonl"), "--markdown", str(remade), cwd=tmp_path)
    assert remade.read_text() == (out / "gpu_check.md").read_text()
    benchmarks = tmp_path / "BENCHMARKS.md"
    benchmarks.write_text("# Benchmarks\n\nearlier tables\n")
    gpu_check_command("append", str(remade), "--to", str(benchmarks), cwd=tmp_path)
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
    phases = gpu_check.CHECKS
    end = now + 440
    deadlines = {
        phase.name: gpu_check.check_deadline(phase, phases[index + 1 :], end, gpu=True)
        for index, phase in enumerate(phases)
    }
    assert deadlines["backend-tests"] == now + 120  # its cap
    assert deadlines["timm-targets"] == now + 45  # its cap
    assert deadlines["keras-jax"] == end - 140  # all but what scales-demo, timm-rest and keras-torch keep
    assert deadlines["scales-demo"] == now + 100  # its cap
    assert deadlines["keras-torch"] == now + 60
    assert deadlines["timm-compile"] == end
    assert all(gpu_check.check_deadline(phase, [], end, gpu=False) == end for phase in phases)


def test_exit_status_fails_on_failures_not_on_time():
    ran = [{"kind": "phase", "status": "ran"}, {"kind": "tests", "status": "passed"}]
    out_of_time = [{"kind": "phase", "status": "killed"}, {"kind": "row", "status": "skipped"}]
    assert gpu_check.exit_status(ran + out_of_time + [{"kind": "tests", "status": "timeout"}]) == 0
    assert gpu_check.exit_status(ran + [{"kind": "row", "status": "failed"}]) == 1
    assert gpu_check.exit_status(ran + [{"kind": "phase", "status": "failed"}]) == 1
    assert gpu_check.exit_status(ran + [{"kind": "tests", "status": "failed (exit 1)"}]) == 1


# A GPU run's results, saved (numbers made up, ratios worked out by hand below): Keras-JAX and
# timm measured the four target rows; Keras-torch was stopped at its deadline before any row.
SAVED_RUN = [
    dict(
        kind="machine",
        mode="gpu",
        python="3.11.9",
        started=0,
        budget_s=440,
        date="2026-12-01 10:00 UTC",
        gpu="NVIDIA H200, 570.1, 143771 MiB",
        cpu="x86, 16 cores",
    ),
    dict(
        kind="meta",
        framework="keras-jax",
        versions={"jax": "0.7.0", "keras": "3.15.1"},
        device="gpu: H200",
        precision="default",
    ),
    dict(
        kind="meta",
        framework="timm",
        versions={"timm": "1.0.31", "torch": "2.14.1"},
        device="cuda: H200",
        precision="tf32 off",
    ),
    *[
        dict(
            kind="row",
            framework=framework,
            variant=variant,
            model=model,
            task=task,
            batch=batch,
            dtype="mixed_bfloat16",
            status="ok",
            images_per_s=value,
            first_s=first,
        )
        for framework, variant, model, task, batch, value, first in [
            ("keras-jax", "xla", "sknet50", "train", 128, 1000.0, 61.5),
            ("keras-jax", "xla", "sknet50", "infer", 256, 4000.0, 20.0),
            ("keras-jax", "xla", "resnext50", "train", 128, 1500.0, 40.0),
            ("keras-jax", "xla", "resnext50", "infer", 256, 4400.0, 15.0),
            ("timm", "eager", "sknet50", "train", 128, 800.0, 1.0),
            ("timm", "channels_last", "sknet50", "train", 128, 900.0, 1.0),
            ("timm", "eager", "sknet50", "infer", 256, 3500.0, 1.0),
            ("timm", "channels_last", "sknet50", "infer", 256, 3200.0, 1.0),
        ]
    ],
    dict(
        kind="phase",
        name="keras-jax",
        framework="keras-jax",
        variants=["xla"],
        status="ran",
        reason="",
        seconds=300,
        rows=[
            ["sknet50", "train", 128, "mixed_bfloat16"],
            ["sknet50", "infer", 256, "mixed_bfloat16"],
            ["resnext50", "train", 128, "mixed_bfloat16"],
            ["resnext50", "infer", 256, "mixed_bfloat16"],
        ],
    ),
    dict(
        kind="phase",
        name="keras-torch",
        framework="keras-torch",
        variants=["eager"],
        status="killed",
        reason="still running at its deadline (60s)",
        seconds=60,
        rows=[["sknet50", "train", 128, "mixed_bfloat16"]],
    ),
    dict(kind="tests", backend="jax", status="passed", summary="40 passed in 50.1s", seconds=51),
    dict(kind="finished", seconds=431),
]


def test_report_renders_a_saved_gpu_run(tmp_path):
    results = tmp_path / "results.jsonl"
    results.write_text("".join(json.dumps(record) + "\n" for record in SAVED_RUN))
    markdown_path = tmp_path / "gpu_check.md"
    gpu_check_command("report", str(results), "--markdown", str(markdown_path), cwd=tmp_path)
    markdown = markdown_path.read_text()
    assert markdown.startswith(f"## {gpu_check.TITLE}\n\n2026-12-01 10:00 UTC; NVIDIA H200, 570.1")
    assert "budget 440s, took 431s" in markdown and "keras 3.15.1" in markdown and "timm 1.0.31" in markdown
    rows = table_rows(markdown)
    assert set(rows) == {
        ("SKNet-50", "train", 128, "mixed_bfloat16"),
        ("SKNet-50", "infer", 256, "mixed_bfloat16"),
        ("ResNeXt-50", "train", 128, "mixed_bfloat16"),
        ("ResNeXt-50", "infer", 256, "mixed_bfloat16"),
    }
    train = rows["SKNet-50", "train", 128, "mixed_bfloat16"]
    speeds = [train[heading] for heading in ("Keras-JAX (XLA)", "timm eager", "timm channels_last")]
    assert speeds == ["1000", "800", "900"]
    assert train["timm best"] == "channels_last" and train["Keras-JAX / timm best"] == "1.11x"  # 1000 / 900
    assert train["Keras-torch"] == "skipped" and train["Keras-torch / timm best"] == "-"
    assert train["timm compile"] == "-" and train["Keras-JAX first call (s)"] == "61.5"
    infer = rows["SKNet-50", "infer", 256, "mixed_bfloat16"]
    assert infer["timm best"] == "eager" and infer["Keras-JAX / timm best"] == "1.14x"  # 4000 / 3500
    lines = markdown.splitlines()
    train_target = "| Keras-JAX SKNet-50 training step, mixed_bfloat16, batch 128 / timm best"
    assert f"{train_target} | 1.11x | >= 1.0x | met |" in lines
    # SK overhead: ResNeXt-50's images/s over SKNet-50's, 1500 / 1000 and 4400 / 4000.
    overhead = (
        "| SK overhead, Keras-JAX training step, mixed_bfloat16, batch 128 (SKNet-50 time / ResNeXt-50 time)"
    )
    assert f"{overhead} | 1.50x | <= 1.3x | MISSED |" in lines
    assert "| SK overhead, Keras-JAX inference, mixed_bfloat16, batch 256 | 1.10x | <= 1.3x | met |" in lines
    assert (
        "| Keras-JAX SKNet-50 inference, float32, batch 256 / timm best | - | >= 1.0x | not measured |"
        in markdown
    )
    assert (
        "- Keras-torch, every row: skipped: not reached: the worker was stopped at its deadline" in markdown
    )
    assert "| jax | passed: 40 passed in 50.1s | 51 |" in markdown
    # Rendering reads nothing but the records: the same records give the same text.
    assert gpu_check.render(gpu_check.load(results)) == markdown


def test_append_replaces_the_section_of_the_same_title(tmp_path):
    gpu_section = gpu_check.render(SAVED_RUN)
    dry_run = gpu_check.render([dict(SAVED_RUN[0], mode="cpu-tiny"), *SAVED_RUN[1:]])
    assert dry_run.startswith(f"## {gpu_check.DRY_RUN_TITLE}\n")
    (tmp_path / "gpu.md").write_text(gpu_section)
    (tmp_path / "dry.md").write_text(dry_run)
    benchmarks = tmp_path / "BENCHMARKS.md"
    before = f"# Benchmarks\n\nintro\n\n## Peers\n\npeers table\n\n## {gpu_check.TITLE}\n\nan older run\n\n## Layout\n\nx\n"
    benchmarks.write_text(before)
    gpu_check_command("append", str(tmp_path / "gpu.md"), "--to", str(benchmarks), cwd=tmp_path)
    text = benchmarks.read_text()
    assert text == before.replace(f"## {gpu_check.TITLE}\n\nan older run\n\n", gpu_section.strip() + "\n\n")
    gpu_check_command("append", str(tmp_path / "gpu.md"), "--to", str(benchmarks), cwd=tmp_path)
    assert benchmarks.read_text() == text  # the latest run, once
    # A CPU dry run has a section of its own: it never replaces the GPU figures.
    gpu_check_command("append", str(tmp_path / "dry.md"), "--to", str(benchmarks), cwd=tmp_path)
    assert benchmarks.read_text() == text + "\n" + dry_run.strip() + "\n"
    # Anything else is refused, and BENCHMARKS.md is left as it was.
    (tmp_path / "other.md").write_text("## Peers\n\nnot a GPU check\n")
    refused = gpu_check_command(
        "append", str(tmp_path / "other.md"), "--to", str(benchmarks), cwd=tmp_path, status=1
    )
    assert "ValueError: Not a table made by the GPU check: it starts with '## Peers'" in refused.stderr
    assert benchmarks.read_text() == text + "\n" + dry_run.strip() + "\n"


def test_the_gpu_section_of_benchmarks_md_is_the_one_append_replaces():
    with open(os.path.join(REPO, "BENCHMARKS.md")) as f:
        headings = [line for line in f.read().splitlines() if line.startswith("## ")]
    assert headings.count(f"## {gpu_check.TITLE}") == 1


def test_recipe_settings_are_the_registered_recipe():
    from training.data.render import CLASS_NAMES
    from training.experiments import get_experiment

    recipe = get_experiment(gpu_check.RECIPE)
    assert gpu_check.RECIPE_SETTINGS["gpu"]["batch"] == recipe.batch_size
    assert gpu_check.RECIPE_IMAGE_SIZE == recipe.image_size == recipe.eval_image_size
    assert gpu_check.RECIPE_CLASSES == len(CLASS_NAMES)
    assert str(tuple(recipe.model_kwargs["stage_depths"])) in gpu_check.RECIPE_MODEL
    command = gpu_check.recipe_command(gpu_check.RECIPE_SETTINGS["cpu-tiny"], "run")
    assert command == [
        *gpu_check.python_command(),
        *("-m", "training.train", "--experiment", "scales_demo", "--input-pipeline", "grain"),
        *("--epochs", "1", "--batch-size", "16", "--set=dataset=scales_demo/tiny"),
        *("--model-dir", "run", "--verbose", "2"),
    ]


def test_a_hung_trainer_is_killed_at_its_deadline_and_reported(tmp_path):
    hang = [sys.executable, "-c", "import time; print('rendering', flush=True); time.sleep(600)"]
    start = time.time()
    record = gpu_check.train_recipe(
        hang, dict(os.environ), time.time() + 2, str(tmp_path), str(tmp_path / "log")
    )
    assert time.time() - start < 2 + gpu_check.KILL_GRACE + 5
    assert record["status"] == "timeout" and "last line: rendering" in record["reason"], record
    markdown = gpu_check.render([dict(SAVED_RUN[0], mode="cpu-tiny"), dict(record, batch=16, image_size=64)])
    assert "| training.train (Keras-JAX, grain) |" in markdown and "| timeout |" in markdown
    assert f"training.train timeout: {record['reason']}" in markdown
    assert gpu_check.exit_status([record]) == 0  # stopped for time, as the other checks


def test_a_failing_trainer_is_a_result_row_and_timm_still_runs(tmp_path, monkeypatch):
    missing = [name for name in ("jax", "grain", "timm", "torch") if importlib.util.find_spec(name) is None]
    if missing:
        pytest.skip(f"the recipe check needs {', '.join(missing)}")
    # The real trainer, refused at once: a field the recipe does not have.
    settings = dict(gpu_check.RECIPE_SETTINGS["cpu-tiny"], sets=("no_such_field=1",))
    monkeypatch.setitem(gpu_check.RECIPE_SETTINGS, "cpu-tiny", settings)
    monkeypatch.chdir(REPO)  # where the timm worker starts (`python -m benchmarks.gpu_check`)
    out = tmp_path / "out"
    out.mkdir()
    results = gpu_check.Results(str(out / "results.jsonl"))
    args = argparse.Namespace(mode="cpu-tiny", out=str(out))
    check = next(check for check in gpu_check.CHECKS if check.framework == "trainer")
    start = time.time()
    gpu_check.run_recipe_check(check, time.time() + 300, args, results)
    assert time.time() - start < 200
    records = gpu_check.load(out / "results.jsonl")
    (ours,) = [r for r in records if r["kind"] == "recipe" and r["framework"] == "training.train"]
    assert ours["status"] == "failed" and "no_such_field" in ours["reason"], ours
    theirs = [r for r in records if r["kind"] == "recipe" and r["framework"] == "timm-recipe"]
    assert [r["status"] for r in theirs] == ["ok", "ok"] and all(r["dtype"] == "float32" for r in theirs)
    markdown = gpu_check.render(records)
    rows = recipe_rows(markdown)
    assert rows["training.train (Keras-JAX, grain)"]["images/s"] == "failed"
    assert rows["timm eager"]["training.train / this"] == "-" and float(rows["timm eager"]["images/s"]) > 0
    # The trainer's own one-line error, as the reason.
    assert (
        "training.train failed: exit 1: python -m training.train: error: Cannot set 'no_such_field=1'"
        in markdown
    )
    assert gpu_check.exit_status(records) == 1


def test_report_renders_a_saved_recipe_run():
    ours = dict(
        kind="recipe",
        framework="training.train",
        status="ok",
        images_per_s=2000.0,
        top1=0.5,
        examples=2400,
        steps=187,
        epochs=1,
        dataset="scales_demo",
        replicas=1,
        mixed_precision="float32",
        device="gpu: NVIDIA H200 x1",
        seconds=70,
        batch=64,
        image_size=64,
    )
    theirs = [
        dict(
            kind="recipe",
            framework="timm-recipe",
            variant=variant,
            model="scales_demo",
            task="train",
            batch=64,
            dtype="float32",
            status="ok",
            images_per_s=value,
            params=4097672,
            macs=62911488,
        )
        for variant, value in (("eager", 2500.0), ("channels_last", 3200.0))
    ]
    markdown = gpu_check.render([*SAVED_RUN, ours, *theirs])
    rows = recipe_rows(markdown)
    assert rows["training.train (Keras-JAX, grain)"]["images/s"] == "2000"
    assert rows["timm eager"]["training.train / this"] == "0.80x"  # 2000 / 2500
    assert rows["timm channels_last"]["training.train / this"] == "0.62x"  # 2000 / 3200
    assert "4.10M params, 63M MACs" in rows["timm eager"]["model"]
    assert (
        "top-1 50.00% on 2400 test images of scales_demo after 1 epoch(s), 187 steps, on gpu: NVIDIA H200 x1"
        in markdown
    )
    # The ratio table above it is the saved run's, untouched by the recipe's rows.
    assert set(table_rows(markdown)) == set(table_rows(gpu_check.render(SAVED_RUN)))
