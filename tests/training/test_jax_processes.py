"""Several JAX processes on loopback: the same training as one process, a lost process, the flags.

Each process is a `python -m training.train` subprocess on Keras' JAX backend with its
`--process-id`, as on a cluster; CPU devices come from XLA_FLAGS. Every wait has a timeout,
and a test kills what it started. The command-line checks run in this process: they refuse
before anything is imported.
"""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from tests.training.helpers import csv_epochs, finish_processes, free_ports, wait_for_mid_epoch_backup
from tests.training.test_trainer_jax import MODEL, jax_env, metrics, summary
from training.processes import ProcessGroup, process_group
from training.state import FileTrainingState
from training.train import main as train_main

pytest.importorskip("jax", reason="several JAX processes need jax (pip install jax)")

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# scales_demo/tiny: 96 training images, 6 steps of 16 per epoch; 2 epochs.
RECIPE = ["--experiment", "scales_demo", "--set=dataset=scales_demo/tiny", f"--set={MODEL}"]
RECIPE += ["--batch-size", "16", "--epochs", "2", "--verbose", "0"]


def launch(args, model_dirs, devices, cache, port=None):
    """One `training.train` process per entry of `model_dirs` (one: no process flags), `devices` CPUs each."""
    port = port or free_ports(1)[0]
    processes = []
    for index, model_dir in enumerate(model_dirs):
        flags = []
        if len(model_dirs) > 1:
            flags = ["--coordinator-address", f"127.0.0.1:{port}", "--num-processes", str(len(model_dirs))]
            flags += ["--process-id", str(index)]
        processes.append(
            subprocess.Popen(
                [sys.executable, "-m", "training.train", *args, "--model-dir", str(model_dir), *flags],
                cwd=ROOT,
                env=jax_env(cache, devices),
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    return processes


def last_line(err):
    return err.strip().splitlines()[-1] if err.strip() else ""


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    """Where grain keeps the rendered scales_demo (no TFDS needed)."""
    return str(tmp_path_factory.mktemp("grain_data"))


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    """The module's XLA compilation cache: the killed run compiles nothing that `runs` compiled."""
    return tmp_path_factory.mktemp("xla_cache")


@pytest.fixture(scope="module")
def runs(data_dir, cache, tmp_path_factory):
    """Side by side: the recipe on one process with two devices and on two with one; one epoch of it
    on two processes with two devices each."""
    root = tmp_path_factory.mktemp("jax_processes")
    args = RECIPE + ["--data-dir", data_dir]
    plan = {
        "one_by_two": (1, 2, args),
        "two_by_one": (2, 1, args),
        "two_by_two": (2, 2, args + ["--epochs", "1"]),
    }
    started = time.time()
    processes = {
        name: launch(args, [root / name] * count, devices, cache)
        for name, (count, devices, args) in plan.items()
    }
    results = {name: finish_processes(group, timeout=400) for name, group in processes.items()}
    print(f"three runs side by side: {time.time() - started:.0f} s")
    for name, group in results.items():
        for code, _, err in group:
            assert code == 0, f"{name}: {err[-3000:]}"
    return {name: str(root / name) for name in plan}


def _state(model_dir):
    with np.load(os.path.join(model_dir, "backup", FileTrainingState.FILE)) as saved:
        return {name: saved[name] for name in saved.files}


def test_two_processes_train_exactly_as_one_process_with_two_devices(runs):
    """Each process feeds its half of every global batch: the same program on the same data.

    Measured (keras 3.15, jax 0.10, CPU): every variable of the model and the optimiser is
    bit for bit the same after the 12 steps, and so are the per-epoch logs (the training loss
    and accuracies averaged over each epoch's steps, the validation after each epoch) and the
    final evaluation.
    """
    one, two = runs["one_by_two"], runs["two_by_one"]
    assert summary(one)["replicas"] == summary(two)["replicas"] == 2
    assert metrics(one) == metrics(two)
    assert summary(one)["final"] == summary(two)["final"]
    assert summary(one)["best_val_top1"] == summary(two)["best_val_top1"]
    reference, other = _state(one), _state(two)
    assert reference.keys() == other.keys() and len(reference) > 100
    for name, value in reference.items():
        np.testing.assert_array_equal(value, other[name], err_msg=name)


def test_two_processes_of_two_devices_finish_the_recipe(runs):
    """Process 0 wrote the run directory; the logs are those of the whole batch (one-process values)."""
    model_dir = runs["two_by_two"]
    result = summary(model_dir)
    assert result["replicas"] == 4 and result["steps"] == 96 // 16 and result["backend"] == "jax"
    assert result["final"]["examples"] == 48 and np.isfinite(result["final"]["top1"])
    assert csv_epochs(model_dir) == [0] and np.isfinite(metrics(model_dir)[0]["val_loss"])
    for name in ("best.keras", "last.keras", "config.json", "data.json", "workers.json"):
        assert os.path.exists(os.path.join(model_dir, name)), name
    assert _backup_position(model_dir) == (1, 0)


def test_processes_with_folders_of_their_own_are_refused(data_dir, tmp_path):
    """The check of TensorFlow's workers (`training.workers`), through JAX's collectives."""
    args = RECIPE + ["--data-dir", data_dir]
    results = finish_processes(
        launch(args, [tmp_path / "p0", tmp_path / "p1"], 1, tmp_path / "cache"), timeout=200
    )
    for code, _, err in results:
        assert code == 1, err[-3000:]
        assert "must share one model folder" in last_line(err) and "is seen by 1 of them" in last_line(err)
    assert "worker 1 does not see it" in last_line(results[1][2])
    assert sorted(os.listdir(tmp_path / "p0")) == ["workers.json"] and not os.path.exists(tmp_path / "p1")


def _backup_position(model_dir):
    try:
        with np.load(os.path.join(model_dir, "backup", FileTrainingState.FILE)) as saved:
            meta = json.loads(str(saved["meta"]))
        return meta["epoch"], meta["step"]
    except (OSError, KeyError, ValueError):
        return None  # none yet (a backup is renamed into place whole)


@pytest.mark.slow
def test_a_killed_process_stops_the_other_then_the_same_command_resumes(data_dir, cache, tmp_path):
    """Process 1 killed mid-epoch: process 0 exits at once with one line; the relaunch ends the run."""
    model_dir = tmp_path / "run"
    # The batch and devices of the two_by_one run (its compiled programs, from the cache); a
    # backup after each of the epoch's 6 steps, so that 5 of them are mid-epoch.
    args = RECIPE + ["--data-dir", data_dir, "--backup-every-steps", "1", "--epochs", "1"]
    processes = launch(args, [model_dir, model_dir], 1, cache)
    try:
        wait_for_mid_epoch_backup(processes, model_dir, _backup_position, timeout=200)
        processes[1].send_signal(signal.SIGKILL)
        lost = time.time()
        code, _, err = finish_processes([processes[0]], timeout=60)[0]
        print(f"process 1 killed: process 0 exited after {time.time() - lost:.1f} s")
    finally:
        for p in processes:
            p.kill()
            p.communicate()
    lines = err.strip().splitlines()
    assert code == 1, err[-3000:]
    assert "A worker of this multi-worker run was lost" in lines[-1] and "same command" in lines[-1], lines
    assert "Gloo" in lines[-1] and "Traceback" not in err

    for code, out, err in finish_processes(launch(args, [model_dir, model_dir], 1, cache)):
        assert code == 0, err[-3000:]
        assert "Resuming scales_demo at epoch 1, step" in out, out
    result = summary(model_dir)
    assert result["steps"] == 96 // 16 and result["replicas"] == 2  # nothing lost, nothing done twice
    assert csv_epochs(model_dir) == [0]


def _refusal(monkeypatch, capsys, argv, backend="jax", env=None):
    """The exit status and the error lines of `training.train` given `argv` (nothing is trained)."""
    monkeypatch.setenv("KERAS_BACKEND", backend)
    for name in ("JAX_COORDINATOR_ADDRESS", "JAX_NUM_PROCESSES", "JAX_PROCESS_ID", "SLURM_NTASKS"):
        monkeypatch.delenv(name, raising=False)
    for name, value in (env or {}).items():
        monkeypatch.setenv(name, value)
    try:
        code = train_main(["--experiment", "scales_demo", *argv])
    except SystemExit as exit:  # argparse's usage errors
        code = exit.code
    return code, capsys.readouterr().err.strip().splitlines()


@pytest.mark.parametrize(
    "argv, env, says",
    [
        (["--num-processes", "2"], {}, "--num-processes=2 starts 2 processes: give each its index"),
        (["--num-processes", "2", "--process-id", "2"], {}, "--process-id must be in [0, 2)"),
        (["--num-processes", "2", "--process-id", "1"], {}, "need a coordinator"),
        (
            ["--coordinator-address", "localhost", "--num-processes", "2", "--process-id", "0"],
            {},
            "--coordinator-address must be HOST:PORT",
        ),
        (["--process-id", "1"], {}, "--process-id is for a run of several processes"),
        ([], {"JAX_NUM_PROCESSES": "two"}, "JAX_NUM_PROCESSES must be an integer of at least 1"),
        ([], {"JAX_NUM_PROCESSES": "2", "JAX_PROCESS_ID": "5"}, "JAX_PROCESS_ID must be in [0, 2)"),
        (["--num-processes", "0"], {}, "--num-processes: expected a positive integer"),
        (["--process-id", "-1"], {}, "--process-id: expected an integer of at least 0"),
    ],
)
def test_bad_process_settings_are_one_line_before_any_work(argv, env, says, monkeypatch, capsys, tmp_path):
    code, lines = _refusal(monkeypatch, capsys, [*argv, "--model-dir", str(tmp_path / "run")], env=env)
    assert code in (1, 2) and len(lines) == 1 and says in lines[0], lines
    assert not os.path.exists(tmp_path / "run")


def test_process_flags_on_tensorflow_point_to_tf_config(monkeypatch, capsys, tmp_path):
    argv = ["--num-processes", "2", "--process-id", "0", "--model-dir", str(tmp_path / "run")]
    code, lines = _refusal(monkeypatch, capsys, argv, backend="tensorflow")
    assert code == 1 and len(lines) == 1 and "TF_CONFIG" in lines[0] and "KERAS_BACKEND=jax" in lines[0]
    # The variables are left alone on tensorflow (a TensorFlow job under SLURM has SLURM_NTASKS).
    code, lines = _refusal(monkeypatch, capsys, ["--list"], backend="tensorflow", env={"SLURM_NTASKS": "4"})
    assert code == 0


def test_where_the_processes_are_read_from():
    """Flags first, then Keras', JAX's and SLURM's variables; one process needs no coordinator."""
    assert process_group(environ={}) is None
    assert process_group(environ={"SLURM_NTASKS": "1", "SLURM_PROCID": "0"}) is None
    assert process_group("h:1", 2, 0, environ={"JAX_PROCESS_ID": "1"}) == ProcessGroup(
        "h:1", 2, 0, "--num-processes"
    )
    keras_env = {
        "KERAS_DISTRIBUTION_JOB_ADDRESSES": "a:5,b:6",
        "KERAS_DISTRIBUTION_NUM_PROCESSES": "2",
        "KERAS_DISTRIBUTION_PROCESS_ID": "1",
        "JAX_COORDINATOR_ADDRESS": "c:7",
    }
    assert process_group(environ=keras_env) == ProcessGroup("a:5", 2, 1, "KERAS_DISTRIBUTION_NUM_PROCESSES")
    jax_env_vars = {"JAX_COORDINATOR_ADDRESS": "c:7", "JAX_NUM_PROCESSES": "3", "JAX_PROCESS_ID": "2"}
    assert process_group(environ=jax_env_vars) == ProcessGroup("c:7", 3, 2, "JAX_NUM_PROCESSES")
    # srun: the count and index from SLURM, the coordinator left to JAX (first node, port from the job).
    slurm = {"SLURM_NTASKS": "4", "SLURM_PROCID": "3", "SLURM_JOB_ID": "77", "SLURM_STEP_NODELIST": "n[1-2]"}
    assert process_group(environ={**slurm, "SLURM_LOCALID": "1"}) == ProcessGroup(None, 4, 3, "SLURM_NTASKS")
    with pytest.raises(ValueError, match="need a coordinator"):
        process_group(environ=slurm)  # not what JAX's SLURM detection needs (no SLURM_LOCALID)
