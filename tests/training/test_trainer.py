"""The trainer: a run end to end, SIGKILL and resume, NaN, mixed precision, two devices (workers: test_workers.py)."""

import json
import os
import signal
import subprocess
import sys
import time
import warnings

import numpy as np
import pytest
import tensorflow as tf

from tests.training.helpers import TINY, backup_position, csv_epochs, tiny
from training.fit_loop import TrainingDiverged
from training.trainer import train

# Tests marked `kernels` run again on TensorFlow's Eigen kernels (scripts/test.sh's
# second pass): those whose numbers depend on the kernels; files, command lines and
# fault handling are the same code on both libraries.
KERNELS = pytest.mark.kernels

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    import tensorflow_datasets as tfds

    import training.data  # noqa: F401  (registers scales_demo)

    directory = str(tmp_path_factory.mktemp("tfds"))
    tfds.builder("scales_demo/tiny", data_dir=directory).download_and_prepare()
    return directory


def run_cli(args, env=None, **kwargs):
    environment = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "training.train", *args],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        **kwargs,
    )


@KERNELS
def test_a_run_end_to_end_then_evaluate(data_dir, tmp_path):
    model_dir = str(tmp_path / "run")
    summary = train(tiny(), model_dir, data_dir=data_dir, verbose=0)
    assert summary["steps"] == 2 * (96 // 16)
    assert summary["final"]["examples"] == 48 and 0.0 <= summary["final"]["top1"] <= 1.0
    for name in ("best.keras", "last.keras", "config.json", "summary.json", "metrics.csv"):
        assert os.path.exists(os.path.join(model_dir, name)), name
    assert os.listdir(os.path.join(model_dir, "logs"))
    assert csv_epochs(model_dir) == [0, 1]
    assert json.load(open(os.path.join(model_dir, "config.json")))["epochs"] == 2

    # The same command again: nothing left to train; the backup restores every weight
    # (BatchNorm statistics of the SK paths too), so the evaluation is the same.
    again = train(tiny(), model_dir, data_dir=data_dir, verbose=0)
    assert again["steps"] == summary["steps"] and csv_epochs(model_dir) == [0, 1]
    assert again["final"] == summary["final"]
    # Another recipe into the same directory is refused.
    with pytest.raises(ValueError, match="epochs"):
        train(tiny("epochs=3"), model_dir, data_dir=data_dir, verbose=0)

    from training.evaluate import main as evaluate

    for size in (64, 96):
        assert evaluate(["--model-dir", model_dir, "--image-size", str(size), "--data-dir", data_dir]) == 0
        result = json.load(open(os.path.join(model_dir, f"eval_{size}.json")))
        assert result["image_size"] == size and result["examples"] == 48


def test_backup_restores_every_variable(tmp_path, rng):
    """Including the BatchNorm statistics of SK paths, which Keras keeps in lists."""
    from training.model import build_model, compile_model
    from training.state import TrainingState

    experiment = tiny()

    def new_state():
        model = build_model(experiment, 8)
        optimizer = compile_model(model, experiment, 10)
        return model, optimizer, TrainingState(model, optimizer, str(tmp_path))

    model, optimizer, state = new_state()
    for variable in model.variables + optimizer.variables:
        if variable.dtype == "float32":
            variable.assign(rng.normal(size=variable.shape).astype("float32"))
    state.save(3, 7)
    fresh, fresh_optimizer, fresh_state = new_state()  # as a new process would
    assert fresh_state.restore() == (3, 7)
    for a, b in zip(model.variables + optimizer.variables, fresh.variables + fresh_optimizer.variables):
        np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=a.path)
    assert any("path1_bn/moving_variance" in v.path for v in fresh.variables)


def test_sigkill_mid_epoch_then_the_same_command_resumes(data_dir, tmp_path):
    model_dir = str(tmp_path / "run")
    args = [
        "--experiment",
        "scales_demo",
        "--model-dir",
        model_dir,
        "--data-dir",
        data_dir,
        "--verbose",
        "0",
        "--backup-every-steps",
        "3",
    ]
    args += [f"--set={a}" for a in TINY[:2]] + ["--batch-size", "4", "--epochs", "3"]
    steps_per_epoch = 96 // 4
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    process = subprocess.Popen(
        [sys.executable, "-m", "training.train", *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    killed_at = None
    deadline = time.time() + 300
    while time.time() < deadline and process.poll() is None:
        position = backup_position(model_dir)
        if position and position[0] >= 1 and position[1] > 0:  # a backup in the middle of epoch 2
            process.send_signal(signal.SIGKILL)
            killed_at = position
            break
        time.sleep(0.05)
    process.wait(timeout=60)
    assert killed_at is not None, f"no mid-epoch backup appeared: {process.stderr.read()[-2000:]}"
    assert process.returncode == -signal.SIGKILL

    resumed = run_cli(args, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "Resuming" in resumed.stdout
    summary = json.load(open(os.path.join(model_dir, "summary.json")))
    # Exactly 3 epochs of steps: nothing started over, nothing done twice.
    assert summary["steps"] == 3 * steps_per_epoch
    assert csv_epochs(model_dir) == [0, 1, 2]


def test_the_torch_backend_is_refused_in_one_line_before_any_work(tmp_path):
    """From a folder of the user's, the command refuses torch (saying why, and what to use) and writes nothing."""
    model_dir = tmp_path / "run"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "training.train",
            "--experiment",
            "scales_demo",
            "--model-dir",
            str(model_dir),
        ],
        cwd=tmp_path,
        env={**os.environ, "KERAS_BACKEND": "torch", "PYTHONPATH": ROOT},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1 and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "one device only" in result.stderr and "KERAS_BACKEND=jax" in result.stderr
    assert "Received: KERAS_BACKEND='torch'" in result.stderr
    assert os.listdir(tmp_path) == []


def test_nan_loss_stops_the_run_with_a_clear_message(data_dir, tmp_path):
    model_dir = str(tmp_path / "run")
    with pytest.raises(TrainingDiverged, match=r"diverged: loss (nan|inf)"):
        train(tiny("learning_rate=1e30", "warmup_epochs=0"), model_dir, data_dir=data_dir, verbose=0)
    assert not os.path.exists(os.path.join(model_dir, "last.keras"))
    position = backup_position(model_dir)
    if position is not None:  # any backup predates the divergence: finite weights
        reader = tf.train.load_checkpoint(os.path.join(model_dir, "backup"))
        for name in reader.get_variable_to_shape_map():
            value = reader.get_tensor(name)
            if np.issubdtype(np.asarray(value).dtype, np.floating):
                assert np.all(np.isfinite(value)), name


@KERNELS
@pytest.mark.parametrize("precision", ["bfloat16", "float16"])
def test_mixed_precision_on_cpu(precision, data_dir, tmp_path):
    """Trains on any CPU: TF's Eigen kernels too (CI runs this under both kernel libraries)."""
    from keras_sknet.platform import slow_mixed_precision_reason

    expected = slow_mixed_precision_reason(f"mixed_{precision}")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        summary = train(
            # 16 x 16 crops: float16 convolution gradients are slow on oneDNN (the warning says so).
            tiny(f"mixed_precision={precision}", "epochs=1", "image_size=16", "eval_image_size=16"),
            str(tmp_path / "run"),
            data_dir=data_dir,
            verbose=0,
        )
    said = [str(w.message) for w in caught if "trains slower than float32" in str(w.message)]
    # float16 is slow on both TF kernel libraries; bfloat16 on Eigen or without AVX-512 BF16 / AMX.
    assert said == ([expected] if expected else [])
    if precision == "float16":
        assert said
    assert summary["mixed_precision"] == f"mixed_{precision}"
    assert np.isfinite(summary["final"]["top1"])
    import keras

    model = keras.models.load_model(str(tmp_path / "run" / "last.keras"))
    assert model.layers[-1].compute_dtype == "float32"  # the classifier runs in float32
    keras.config.set_dtype_policy("float32")


MIRRORED_SCRIPT = """
import json, sys
import numpy as np
import tensorflow as tf
(cpu,) = tf.config.list_physical_devices("CPU")
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
import keras
from training import trainer
from training.experiments import get_experiment, override
from training.distribution import make_strategy
data_dir, out = sys.argv[1], sys.argv[2]
experiment = override(get_experiment("scales_demo"), json.loads(sys.argv[3]))
initial, weights = {}, {}
def build_and_remember(*args, build=trainer.build_model):
    model = build(*args)
    initial.setdefault("weights", {w.path: w.numpy() for w in model.weights})
    return model
trainer.build_model = build_and_remember
# Both runs under an explicit strategy: Keras then reads the data the same way for both.
for label, devices in (("one", ["/cpu:0"]), ("two", ["/cpu:0", "/cpu:1"])):
    strategy = make_strategy(devices)
    summary = trainer.train(experiment, f"{out}/{label}", data_dir=data_dir, strategy=strategy, verbose=0)
    model = keras.models.load_model(f"{out}/{label}/last.keras")
    weights[label] = (strategy.num_replicas_in_sync, summary["steps"], {w.path: w.numpy() for w in model.weights})
(r1, s1, w1), (r2, s2, w2) = weights["one"], weights["two"]
w0 = initial["weights"]
trained = [k for k in w1 if "moving" not in k]
# How far the two runs' weights are apart, as a fraction of how far training moved them.
apart = np.sqrt(sum(np.sum((w1[k] - w2[k]) ** 2) for k in trained))
moved = np.sqrt(sum(np.sum((w1[k] - w0[k]) ** 2) for k in trained))
statistics = max(float(np.max(np.abs(w1[k] - w2[k]) / (np.abs(w1[k]) + 1e-2))) for k in w1 if "moving" in k)
report = {"replicas": [r1, r2], "steps": [s1, s2], "trained": float(apart / moved), "statistics": statistics}
print(json.dumps(report))
"""


# Not rerun on Eigen: the replicas run the kernels test_a_run_end_to_end_then_evaluate runs there;
# what this adds (the all-reduce, synchronised BatchNorm) is the same code on both libraries.
def test_mirrored_over_two_logical_cpus_matches_one_device(data_dir, tmp_path):
    """The same global batch on 2 replicas (synchronised BN) gives one device's weights."""
    assignments = TINY[:2] + ["batch_size=16", "epochs=1", "sync_batch_norm=true", "augment=none"]
    result = subprocess.run(
        [sys.executable, "-c", MIRRORED_SCRIPT, data_dir, str(tmp_path), json.dumps(assignments)],
        cwd=ROOT,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["replicas"] == [1, 2] and report["steps"] == [6, 6]
    # How far the runs' weights are apart, as a fraction of how far training moved them, and
    # their BatchNorm running statistics' relative distance. Rounding (the all-reduce adds in
    # another order), amplified by six steps of small-batch BatchNorm, makes 0.9% and 1.5% (Zen 4,
    # oneDNN); without synchronised BatchNorm (each replica's own statistics) the
    # same run makes 61% and 302%.
    assert report["trained"] < 0.05 and report["statistics"] < 0.1, report
