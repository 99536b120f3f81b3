"""The trainer on Keras' JAX backend: command-line runs on two XLA host devices (scales_demo/tiny).

The runs are subprocesses with KERAS_BACKEND=jax (this test process runs TensorFlow).
The uninterrupted runs that the tests compare start side by side (XLA compiles each
on one core) and share a persistent compilation cache, so that the later runs of the
same program (a killed run, its resumption) do not compile again.
"""

import csv
import json
import os
import signal
import subprocess
import sys
import time

import keras
import numpy as np
import pytest

from tests.training.helpers import tiny
from training.distribution import check_batch_divides
from training.inputs import pad_to_multiple
from training.model import build_model, compile_model
from training.state import FileTrainingState
from training.train import HOST_DEVICES_FLAG, force_host_devices, keras_backend
from training.train import main as train_main

# The runs happen in subprocesses; this process only needs jax to be installed for them.
pytest.importorskip("jax", reason="the trainer on JAX needs jax (pip install jax)")

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# The small SK net and batch of the TensorFlow tests (grouped convolutions included): 6 steps
# of 16 images per epoch; each batch splits into 8 + 8 over two devices.
MODEL = (
    'model_kwargs={"stage_depths": [1, 1], "stem": "imagenet", "cardinality": 4, "bottleneck_width": 4, '
    '"min_dim": 8}'
)
RECIPE = ["--experiment", "scales_demo", "--set=dataset=scales_demo/tiny", f"--set={MODEL}"]
RECIPE += ["--batch-size", "16", "--epochs", "2", "--backup-every-steps", "2", "--verbose", "0"]
STEPS_PER_EPOCH = 96 // 16


def jax_env(cache_dir, host_devices=None):
    """KERAS_BACKEND=jax, a shared XLA compilation cache, and `host_devices` XLA CPU devices.

    XLA's CPU optimisations are off (as in tests/backends): they took a fifth of a run's CPU
    time, and the runs compared bit for bit or to rel=1e-6 all compile the same way.
    """
    env = {
        **os.environ,
        "KERAS_BACKEND": "jax",
        "TF_CPP_MIN_LOG_LEVEL": "3",
        "JAX_COMPILATION_CACHE_DIR": str(cache_dir),
        "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0",
        "JAX_DISABLE_MOST_OPTIMIZATIONS": "1",
    }
    env.pop("XLA_FLAGS", None)
    env.pop("TF_CONFIG", None)
    if host_devices:
        env["XLA_FLAGS"] = f"{HOST_DEVICES_FLAG}={host_devices}"
    return env


def start(module, args, env):
    return subprocess.Popen(
        [sys.executable, "-m", module, *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(process, timeout=600):
    out, err = process.communicate(timeout=timeout)
    assert process.returncode == 0, err[-3000:]
    return out


def metrics(model_dir):
    with open(os.path.join(model_dir, "metrics.csv")) as f:
        return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(f)]


def summary(model_dir):
    with open(os.path.join(model_dir, "summary.json")) as f:
        return json.load(f)


def weights(path):
    """{weight path: value} of a .keras file, read here on TensorFlow."""
    return {w.path: w.numpy() for w in keras.models.load_model(path).weights}


@pytest.fixture(scope="module")
def runs(tfds_dir, tmp_path_factory):
    """Uninterrupted runs: on two devices, on one, and in mixed bfloat16 (one epoch)."""
    root = tmp_path_factory.mktemp("jax_runs")
    cache = root / "xla_cache"
    plan = {
        "two": (RECIPE, 2),
        "one": (RECIPE, 1),
        "bfloat16": (RECIPE + ["--epochs", "1", "--mixed-precision", "bfloat16"], 2),
    }
    processes = {
        name: start(
            "training.train",
            args + ["--model-dir", str(root / name), "--data-dir", tfds_dir],
            jax_env(cache, devices),
        )
        for name, (args, devices) in plan.items()
    }
    outputs = {name: finish(process) for name, process in processes.items()}
    return {"root": root, "cache": cache, "outputs": outputs, **{name: str(root / name) for name in plan}}


def test_a_run_on_two_devices_end_to_end_then_evaluate(runs, tfds_dir, tmp_path):
    model_dir = runs["two"]
    result = summary(model_dir)
    assert result["backend"] == "jax" and result["replicas"] == 2
    assert result["steps"] == 2 * STEPS_PER_EPOCH and result["mixed_precision"] == "float32"
    for name in ("best.keras", "last.keras", "config.json", "metrics.csv", "backup/state.npz"):
        assert os.path.exists(os.path.join(model_dir, name)), name
    assert os.listdir(os.path.join(model_dir, "logs"))
    rows = metrics(model_dir)
    assert [row["epoch"] for row in rows] == [0, 1]
    assert all(np.isfinite(row["loss"]) and np.isfinite(row["val_loss"]) for row in rows)
    # The final evaluation (single crop, the test split) is the last epoch's validation.
    final = result["final"]
    assert final["examples"] == 48
    assert final["top1"] == pytest.approx(rows[-1]["val_top1"]) and result["best_val_top1"] == max(
        row["val_top1"] for row in rows
    )

    # python -m training.evaluate on JAX (one device) reads the run directory.
    def evaluate_on_jax(model):
        args = ["--model-dir", model_dir, "--model", model, "--data-dir", tfds_dir]
        finish(start("training.evaluate", args, jax_env(runs["cache"])))
        with open(os.path.join(model_dir, "eval_64.json")) as f:
            return json.load(f)

    on_jax = evaluate_on_jax("last")
    assert on_jax["examples"] == 48
    assert (on_jax["top1"], on_jax["top5"]) == (final["top1"], final["top5"])

    # .keras files do not depend on the backend: the model evaluated here on TensorFlow, and
    # saved again by TensorFlow, which JAX then reads.
    from training.evaluate import load_experiment
    from training.evaluation import evaluate_model

    model = keras.models.load_model(os.path.join(model_dir, "last.keras"))
    on_tensorflow = evaluate_model(model, load_experiment(model_dir), tfds_dir)
    assert on_tensorflow["top1"] == pytest.approx(on_jax["top1"], abs=1.5 / 48)
    written_on_tensorflow = str(tmp_path / "written_on_tensorflow.keras")
    model.save(written_on_tensorflow)
    again = evaluate_on_jax(written_on_tensorflow)
    assert (again["top1"], again["top5"]) == (on_jax["top1"], on_jax["top5"])


def test_two_devices_give_one_devices_run(runs):
    """DataParallel splits the global batch; BatchNorm statistics stay those of the global batch.

    The recipe leaves sync_batch_norm off: on TensorFlow two replicas would then normalise
    with the statistics of their own halves (which moves this model's first loss by about 1%).
    """
    one, two = summary(runs["one"]), summary(runs["two"])
    assert (one["replicas"], two["replicas"]) == (1, 2)
    # The same sums in another order: the logs agree to float tolerance after 12 steps.
    for a, b in zip(metrics(runs["one"]), metrics(runs["two"])):
        for key in ("loss", "val_loss", "top1", "val_top1"):
            assert a[key] == pytest.approx(b[key], rel=1e-3), key
    w1 = weights(os.path.join(runs["one"], "last.keras"))
    w2 = weights(os.path.join(runs["two"], "last.keras"))
    trained = max(float(np.max(np.abs(w1[k] - w2[k]))) for k in w1 if "moving" not in k)
    statistics = max(
        float(np.max(np.abs(w1[k] - w2[k]) / (np.abs(w1[k]) + 1e-2))) for k in w1 if "moving" in k
    )
    # AdamW moves a weight by about the learning rate (7.5e-4 here) whatever the size of its
    # gradient, so float noise in near-zero gradients shows in the weights at that scale.
    assert trained < 1e-3 and statistics < 5e-2, (trained, statistics)


def _backup_position(model_dir):
    try:
        with np.load(os.path.join(model_dir, "backup", FileTrainingState.FILE)) as saved:
            meta = json.loads(str(saved["meta"]))
        return meta["epoch"], meta["step"]
    except (OSError, KeyError, ValueError):
        return None  # no backup yet (a backup is renamed into place whole)


def test_sigkill_mid_epoch_then_the_same_command_resumes_exactly(runs, tfds_dir, tmp_path):
    """Killed in epoch 1, the same command ends where the uninterrupted two-device run ended.

    The resumed run finishes epoch 1 from the step of its backup, then trains epoch 2. The
    command asks for two devices with --logical-cpus 2 (no XLA_FLAGS in the environment).
    """
    model_dir = str(tmp_path / "run")
    args = RECIPE + ["--logical-cpus", "2", "--model-dir", model_dir, "--data-dir", tfds_dir]
    env = jax_env(runs["cache"])
    process = start("training.train", args, env)
    killed_at = None
    deadline = time.time() + 300
    while time.time() < deadline and process.poll() is None:
        position = _backup_position(model_dir)
        if position and position[0] == 0 and position[1] > 0:  # a backup in the middle of epoch 1
            process.send_signal(signal.SIGKILL)
            killed_at = position
            break
        time.sleep(0.05)
    _, err = process.communicate(timeout=60)
    assert killed_at is not None, f"no mid-epoch backup appeared: {err[-2000:]}"
    assert process.returncode == -signal.SIGKILL

    out = finish(start("training.train", args, env))
    assert f"Resuming scales_demo at epoch 1, step {killed_at[1]}" in out
    resumed, uninterrupted = summary(model_dir), summary(runs["two"])
    assert resumed["replicas"] == 2 and resumed["steps"] == 2 * STEPS_PER_EPOCH
    # The resumed epoch saw the batches the uninterrupted run saw after the same step, from
    # the same weights, optimiser state and BatchNorm statistics: the same model after it
    # (the killed epoch's training metrics cover only its resumed steps), the same next epoch.
    rows, reference = metrics(model_dir), metrics(runs["two"])
    assert [row["epoch"] for row in rows] == [0, 1]
    for key in ("val_loss", "val_top1", "val_top5"):
        assert rows[0][key] == pytest.approx(reference[0][key], rel=1e-6), key
    for key in rows[1]:
        assert rows[1][key] == pytest.approx(reference[1][key], rel=1e-6), key
    assert resumed["final"] == uninterrupted["final"]
    w_resumed = weights(os.path.join(model_dir, "last.keras"))
    for name, value in weights(os.path.join(runs["two"], "last.keras")).items():
        np.testing.assert_allclose(w_resumed[name], value, rtol=1e-5, atol=1e-6, err_msg=name)


def test_mixed_bfloat16_on_cpu(runs):
    result = summary(runs["bfloat16"])
    assert result["mixed_precision"] == "mixed_bfloat16" and result["steps"] == STEPS_PER_EPOCH
    assert np.isfinite(metrics(runs["bfloat16"])[0]["loss"]) and np.isfinite(result["final"]["top1"])
    model = keras.models.load_model(os.path.join(runs["bfloat16"], "last.keras"))
    assert model.get_layer("conv1_conv").compute_dtype == "bfloat16"
    assert model.layers[-1].compute_dtype == "float32"  # the classifier runs in float32
    assert all(w.dtype == "float32" for w in model.weights)  # and the weights stay float32


THREE_DEVICES_SCRIPT = """
import json, os, sys
import jax, keras, numpy as np, tensorflow as tf
from training.experiments import get_experiment, override
from training.evaluation import predictor
from training.inputs import pad_to_multiple
from training.trainer import train

data_dir, out, assignments = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
report = {"devices": len(jax.devices())}
experiment = override(get_experiment("scales_demo"), assignments)
for case, environment in (("indivisible", {}), ("workers", {"TF_CONFIG": json.dumps(
        {"cluster": {"worker": ["127.0.0.1:1", "127.0.0.1:2"]}, "task": {"type": "worker", "index": 0}})})):
    os.environ.update(environment)
    try:
        train(experiment, os.path.join(out, case), data_dir=data_dir)
    except ValueError as error:
        report[case] = str(error)
    os.environ.pop("TF_CONFIG", None)

# Seven images, in batches of 4 and 3, over three devices: the first batch is padded to 6.
rng = np.random.default_rng(0)
images = rng.normal(size=(7, 4, 4, 3)).astype("float32")
labels = np.eye(4, dtype="float32")[[0, 1, 2, 3, 0, 1, 2]]
def classifier():
    keras.utils.set_random_seed(0)
    return keras.Sequential([keras.Input((4, 4, 3)), keras.layers.Flatten(), keras.layers.Dense(4, activation="softmax")])
single = classifier()
expected = np.asarray(single(images))
with keras.distribution.DataParallel(devices=jax.devices()).scope():
    model = classifier()
    model.compile(loss="categorical_crossentropy", weighted_metrics=[keras.metrics.CategoricalAccuracy(name="top1")])
    report["predict"] = float(np.max(np.abs(predictor(model)(images) - expected)))
    batches = pad_to_multiple(tf.data.Dataset.from_tensor_slices((images, labels)).batch(4), 3)
    report["shapes"] = [[int(len(x)), float(w.sum())] for x, _, w in batches.as_numpy_iterator()]
    report["top1"] = model.evaluate(batches, return_dict=True, verbose=0)["top1"]
report["expected_top1"] = float(np.mean(expected.argmax(-1) == labels.argmax(-1)))
print(json.dumps(report))
"""


def test_three_devices_uneven_batches_and_refusals(tfds_dir, tmp_path):
    """Evaluation pads a batch to the device count and ignores the padding; what JAX cannot run is refused."""
    assignments = ["dataset=scales_demo/tiny", "batch_size=8"]
    result = subprocess.run(
        [sys.executable, "-c", THREE_DEVICES_SCRIPT, tfds_dir, str(tmp_path), json.dumps(assignments)],
        cwd=ROOT,
        env=jax_env(tmp_path / "xla_cache", 3),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["devices"] == 3
    assert "batch_size=8 with 3 devices" in report["indivisible"]
    assert (
        "TF_CONFIG names 2 workers" in report["workers"] and "KERAS_BACKEND=tensorflow" in report["workers"]
    )
    assert report["predict"] < 1e-6
    assert report["shapes"] == [[6, 4.0], [3, 3.0]]
    assert report["top1"] == pytest.approx(report["expected_top1"])
    assert not os.path.exists(tmp_path / "indivisible")  # refused before writing anything


def test_file_backup_restores_every_variable_and_survives_a_failed_save(tmp_path, rng, monkeypatch):
    """The JAX backup format, exercised here on TensorFlow: it reads Keras variables only."""
    experiment = tiny()

    def new_state(run=experiment):
        model = build_model(run, 8)
        optimizer = compile_model(model, run, 10)
        return model, optimizer, FileTrainingState(model, optimizer, str(tmp_path))

    model, optimizer, state = new_state()
    assert state.restore() == (0, 0)
    for variable in model.variables + optimizer.variables:
        if variable.dtype == "float32":
            variable.assign(rng.normal(size=variable.shape).astype("float32"))
    optimizer.iterations.assign(17)
    state.record_best(0.625)
    state.save(3, 7)
    fresh, fresh_optimizer, fresh_state = new_state()  # as a new process would
    assert fresh_state.restore() == (3, 7) and fresh_state.best_value == 0.625
    for a, b in zip(model.variables + optimizer.variables, fresh.variables + fresh_optimizer.variables):
        np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=a.path)
    assert any("path1_bn/moving_variance" in v.path for v in fresh.variables)
    assert int(fresh_optimizer.iterations.numpy()) == 17

    # A save killed half-way leaves the previous backup whole.
    def broken_savez(path, **arrays):
        with open(path, "wb") as f:
            f.write(b"PK\x03\x04 half a zip")
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", broken_savez)
    with pytest.raises(OSError, match="disk full"):
        state.save(4, 0)
    monkeypatch.undo()
    assert new_state()[2].restore() == (3, 7)
    assert os.listdir(tmp_path / "backup") == [FileTrainingState.FILE]

    # Another architecture is refused with the way out.
    other = tiny('model_kwargs={"stage_depths": [1, 1], "stem": "imagenet", "cardinality": 2, "min_dim": 8}')
    with pytest.raises(ValueError, match="does not fit this model.*new --model-dir"):
        new_state(other)[2].restore()


def test_command_line_helpers(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("XLA_FLAGS", f"--xla_cpu_enable_fast_math=false {HOST_DEVICES_FLAG}=8")
    force_host_devices(2)
    assert os.environ["XLA_FLAGS"] == f"--xla_cpu_enable_fast_math=false {HOST_DEVICES_FLAG}=2"

    monkeypatch.setenv("KERAS_BACKEND", "jax")
    assert keras_backend() == "jax"
    monkeypatch.delenv("KERAS_BACKEND")
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    assert keras_backend() == "tensorflow"
    (tmp_path / "keras.json").write_text(json.dumps({"backend": "jax"}))
    assert keras_backend() == "jax"

    # Another backend is refused before anything is imported.
    monkeypatch.setenv("KERAS_BACKEND", "torch")
    assert train_main(["--experiment", "scales_demo"]) == 1
    error = capsys.readouterr().err
    assert "tensorflow and jax backends" in error and "Received: KERAS_BACKEND='torch'" in error
    assert "one device only" in error and "KERAS_BACKEND=jax" in error and "tf.data" not in error

    check_batch_divides(8, 4)
    with pytest.raises(ValueError, match="batch_size=6 with 4 devices; use a multiple of 4"):
        check_batch_divides(6, ["d0", "d1", "d2", "d3"])


def test_evaluation_padding_weights():
    import tensorflow as tf

    images = np.arange(7 * 2 * 2 * 3, dtype="float32").reshape(7, 2, 2, 3)
    labels = np.eye(3, dtype="float32")[[0, 1, 2, 0, 1, 2, 0]]
    padded = list(
        pad_to_multiple(tf.data.Dataset.from_tensor_slices((images, labels)).batch(5), 4).as_numpy_iterator()
    )
    (x1, y1, w1), (x2, y2, w2) = padded
    assert (x1.shape, y1.shape, x2.shape) == ((8, 2, 2, 3), (8, 3), (4, 2, 2, 3))
    np.testing.assert_array_equal(w1, [1, 1, 1, 1, 1, 0, 0, 0])
    np.testing.assert_array_equal(w2, [1, 1, 0, 0])
    np.testing.assert_array_equal(x1[:5], images[:5])
    assert not x1[5:].any() and not y2[2:].any()
