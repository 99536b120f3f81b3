"""Helpers the training tests share (fixtures stay in conftest.py)."""

import csv
import os
import socket
import subprocess
import time

import pytest

from training.experiments import get_experiment, override

# name -> (class, how the file is made); the class colour is recoverable after decoding.
FOLDER_FILES = {
    "red/rgb.jpg": (0, "jpeg"),
    "red/gray.jpeg": (0, "gray_jpeg"),
    "red/rgba.png": (0, "rgba_png"),
    "red/gray_alpha.png": (0, "gray_alpha_png"),
    "red/nested/deeper.PNG": (0, "png"),
    "green/rgb.jpg": (1, "jpeg"),
    "green/rgb2.jpg": (1, "jpeg"),
    "green/rgb.png": (1, "png"),
    "blue/rgb.jpg": (2, "jpeg"),
    "blue/gray.png": (2, "gray_png"),
}
BAD_FILES = ("red/truncated.jpg", "green/empty.png", "blue/not_an_image.jpg")

# A small SK net and the 96-image configuration of the embedded dataset: seconds per run.
TINY = [
    "dataset=scales_demo/tiny",
    'model_kwargs={"stage_depths": [1, 1], "stem": "imagenet", "cardinality": 4, "bottleneck_width": 4, '
    '"min_dim": 8}',
    "batch_size=16",
    "epochs=2",
]


def tiny(*assignments):
    return override(get_experiment("scales_demo"), TINY + list(assignments))


def csv_epochs(model_dir):
    """The epochs metrics.csv has a row for."""
    with open(os.path.join(model_dir, "metrics.csv")) as f:
        return [int(row["epoch"]) for row in csv.DictReader(f)]


def backup_position(model_dir):
    """`(epoch, step)` of the TensorFlow backup in `model_dir`, or None (none yet, or caught mid-write)."""
    import tensorflow as tf

    index = os.path.join(model_dir, "backup", "checkpoint")
    if not os.path.exists(index):
        return None
    try:
        reader = tf.train.load_checkpoint(os.path.join(model_dir, "backup"))
        return int(reader.get_tensor("epoch/.ATTRIBUTES/VARIABLE_VALUE")), int(
            reader.get_tensor("step/.ATTRIBUTES/VARIABLE_VALUE")
        )
    except (tf.errors.OpError, ValueError):
        return None  # caught between writes: look again


def free_ports(count):
    """`count` TCP ports free on loopback now (for the workers or processes a test starts)."""
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def finish_processes(processes, timeout=300):
    """`[(returncode, stdout, stderr)]` of `processes`; kills them all if one still runs after `timeout` s."""
    deadline = time.time() + timeout
    results = []
    for p in processes:
        try:
            out, err = p.communicate(timeout=max(deadline - time.time(), 1))
        except subprocess.TimeoutExpired:
            for q in processes:
                q.kill()
            out, err = p.communicate()
            pytest.fail(f"a process still ran after {timeout} s: {err[-2000:]}")
        results.append((p.returncode, out, err))
    return results


def wait_for_mid_epoch_backup(processes, model_dir, position_of, timeout):
    """Waits until the run in `model_dir` has a backup after step 0 of an epoch; returns its position.

    Args:
        processes: the run's processes; the wait ends early when one of them exits.
        model_dir: the shared model folder.
        position_of: reads `(epoch, step)` of the backup there, or None (the backend's format).
        timeout: seconds.
    """
    deadline = time.time() + timeout
    position = None
    while time.time() < deadline and all(p.poll() is None for p in processes):
        position = position_of(model_dir)
        if position and position[1] > 0:  # a backup in the middle of the epoch
            break
        time.sleep(0.05)
    assert position and position[1] > 0, f"no mid-epoch backup: {processes[0].stderr.read()[-2000:]}"
    return position
