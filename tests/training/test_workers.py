"""Several TensorFlow workers on loopback: one shared model folder, a lost worker, the relaunch.

Each worker is a `python -m training.train` subprocess with its TF_CONFIG, as on a cluster;
every wait has a timeout, and a test kills what it started.
"""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from tests.training.helpers import (
    TINY,
    backup_position,
    csv_epochs,
    finish_processes,
    free_ports,
    wait_for_mid_epoch_backup,
)

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _launch_workers(args, model_dirs, workers=None, extra_env=None):
    """Starts one `training.train` process per model folder, as the workers of one TF_CONFIG cluster."""
    workers = workers or [f"127.0.0.1:{port}" for port in free_ports(len(model_dirs))]
    processes = []
    for index, model_dir in enumerate(model_dirs):
        tf_config = {"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}}
        env = {
            **os.environ,
            "TF_CPP_MIN_LOG_LEVEL": "3",
            "TF_CONFIG": json.dumps(tf_config),
            **(extra_env or {}),
        }
        processes.append(
            subprocess.Popen(
                [sys.executable, "-m", "training.train", *args, "--model-dir", str(model_dir)],
                cwd=ROOT,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    return processes


def _worker_args(data_dir, *more):
    args = ["--experiment", "scales_demo", "--data-dir", data_dir, "--verbose", "0"]
    return args + [f"--set={a}" for a in TINY[:2]] + ["--batch-size", "16", "--epochs", "1", *more]


def test_two_workers_on_loopback_finish_a_short_run(tfds_dir, tmp_path):
    """One model folder for both workers (shared storage); relaunches: `test_a_lost_worker_...`."""
    model_dir = tmp_path / "run"
    for code, _, err in finish_processes(_launch_workers(_worker_args(tfds_dir), [model_dir, model_dir])):
        assert code == 0, err[-3000:]
    summary = json.load(open(model_dir / "summary.json"))
    assert summary["replicas"] == 2 and summary["steps"] == 96 // 16
    assert csv_epochs(model_dir) == [0]


def test_two_workers_with_folders_of_their_own_are_refused(tfds_dir, tmp_path):
    """Per-worker folders break at a relaunch (the chief resumes, the other starts over): refused at once."""
    (tmp_path / "worker1").mkdir()  # an empty folder, as a worker's local disk would have
    results = finish_processes(
        _launch_workers(_worker_args(tfds_dir), [tmp_path / "worker0", tmp_path / "worker1"])
    )
    for code, _, err in results:
        lines = err.strip().splitlines()
        assert code == 1 and len(lines) == 1, err[-3000:]
        assert "must share one model folder" in lines[0] and "is seen by 1 of them" in lines[0], lines
    assert "worker 1 does not see it" in results[1][2]
    # Refused before any training: no folder claimed, no backup.
    assert sorted(os.listdir(tmp_path / "worker0")) == ["workers.json"]
    assert os.listdir(tmp_path / "worker1") == []


@pytest.mark.slow
@pytest.mark.parametrize(
    "how, victim, relaunch",
    # The relaunch is the same after either loss: once is enough for the suite's time.
    [("SIGKILL", 1, True), ("SIGSTOP", 0, False)],
    ids=["worker-1-killed", "chief-frozen"],
)
def test_a_lost_worker_stops_the_other_then_the_same_command_resumes(
    how, victim, relaunch, tfds_dir, tmp_path
):
    """A worker killed (its connections reset) or frozen (silent, as an unplugged machine) mid-epoch:
    the other exits within a bounded time with one line, and the relaunch ends with the planned steps."""
    model_dir = tmp_path / "run"
    args = _worker_args(tfds_dir, "--backup-every-steps", "2")
    args[args.index("--batch-size") + 1] = "8"  # 12 steps in the epoch
    processes = _launch_workers(args, [model_dir, model_dir])
    try:
        wait_for_mid_epoch_backup(processes, model_dir, backup_position, timeout=120)
        processes[victim].send_signal(getattr(signal, how))
        lost = time.time()
        # TensorFlow's coordination service notices a silent worker after ~10 s without heartbeats.
        code, _, err = finish_processes([processes[1 - victim]], timeout=90)[0]
        print(f"{how} worker {victim}: the other exited after {time.time() - lost:.1f} s")
    finally:
        for p in processes:
            p.kill()
            p.communicate()
    lines = err.strip().splitlines()
    assert code == 1 and len(lines) == 1, err[-3000:]
    assert "A worker of this multi-worker run was lost" in lines[0] and "same command" in lines[0], lines
    if not relaunch:
        return
    results = finish_processes(_launch_workers(args, [model_dir, model_dir]))
    for code, out, err in results:
        assert code == 0, err[-3000:]
        assert "Resuming scales_demo at epoch 1, step" in out, out
    summary = json.load(open(model_dir / "summary.json"))
    assert summary["steps"] == 96 // 8 and summary["replicas"] == 2  # nothing lost, nothing done twice
    assert csv_epochs(model_dir) == [0]


def test_what_a_lost_worker_error_says():
    """The messages TensorFlow 2.21 gave in the loopback tests, and an error that is not a lost worker's."""
    import tensorflow as tf

    from training.workers import lost_worker_error

    said = {
        "Collective ops is aborted by: recvmsg:Connection reset by peer\nAdditional GRPC error": "reset by peer",
        "Graph execution error:\n\nCollective ops is aborted by: Error reported from /job:worker/task:1: "
        "The following tasks are unhealthy (stopped sending heartbeats):\n/job:worker/replica:0/task:1\n"
        "The tasks have crashed.": "stopped sending heartbeats): /job:worker/replica:0/task:1",
        "Collective ops is aborted by: Deadline Exceeded\nRPC: /tensorflow.CoordinationService/Heartbeat\n"
        "The error could be": "Deadline Exceeded RPC: /tensorflow.CoordinationService/Heartbeat",
    }
    for message, reason in said.items():
        lost = lost_worker_error(tf.errors.UnavailableError(None, None, message), "runs/x/backup")
        text = str(lost)
        assert f"({'Collective ops is aborted by: '}" in text and reason in text, text
        assert "\n" not in text and text.endswith("resumes from its last backup in runs/x/backup.")
    assert lost_worker_error(tf.errors.UnavailableError(None, None, "the data server is down"), "b") is None
