"""Helpers the tests share: import them from here (`from tests.helpers import ...`).

Fixtures stay in conftest.py, which pytest loads itself; test modules import
no conftest and no other test module.
"""

import importlib.util
import os
import subprocess
import sys

import pytest

from tests import reference

REQUIRE_BACKENDS = "KERAS_SKNET_REQUIRE_BACKENDS"  # "1" (scripts/test.sh): a missing backend fails


def missing_backends(backends):
    """The Keras backends among `backends` whose package is not installed.

    Fails the test instead where `KERAS_SKNET_REQUIRE_BACKENDS=1`, so that CI never skips them.
    """
    missing = [b for b in backends if importlib.util.find_spec(b) is None]
    if missing and os.environ.get(REQUIRE_BACKENDS) == "1":
        pytest.fail(
            f"{REQUIRE_BACKENDS}=1 but {', '.join(missing)} not installed: pip install -e .[jax,torch]"
        )
    return missing


def subprocess_environment(**variables):
    """This process's environment for a subprocess, without pytest's own variables, plus `variables`.

    (An xdist worker's and the current test's `PYTEST_*` variables would confuse a pytest or a
    program started from a test.)
    """
    env = {name: value for name, value in os.environ.items() if not name.startswith("PYTEST_")}
    env.update(variables)
    return env


def op_by_op(model, x):
    """`model`'s inference outputs as NumPy arrays, through Keras' own call, op by op.

    Our models' eager call runs a cached compiled function, traced again for each new input
    shape; for a few calls of a large model, one op-by-op pass costs less than a trace
    (tests/test_predict.py holds the two calls equal).
    """
    import keras

    outputs = keras.Model.__call__(model, x, training=False)
    return keras.tree.map_structure(keras.ops.convert_to_numpy, outputs)


def randomize_batch_norms(model, rng):
    """Gives every BatchNorm non-trivial statistics so that tests can see them."""
    for weight in model.weights:
        name = weight.path.rsplit("/", 1)[-1]
        if name == "moving_variance":
            weight.assign(rng.uniform(0.5, 2.0, weight.shape).astype("float32"))
        elif name in ("moving_mean", "beta"):
            weight.assign(rng.normal(0, 0.5, weight.shape).astype("float32"))
        elif name == "gamma":
            weight.assign(rng.uniform(0.5, 1.5, weight.shape).astype("float32"))


def reference_sk(sk, x, training=False):
    """`tests.reference.sk_conv` with the weights and settings of the SKConv layer `sk`."""
    paths = [
        (conv.kernel.numpy(), conv.dilation_rate, reference.bn_weights(bn))
        for conv, bn in zip(sk.path_convs, sk.path_bns)
    ]
    attention = sk.attention_layer
    return reference.sk_conv(
        x,
        paths,
        attention.fc_reduce.kernel.numpy() if attention else None,
        reference.bn_weights(attention.bn) if attention else None,
        attention.fc_select.kernel.numpy() if attention else None,
        sk.strides,
        relu=sk.activation is not None,
        attention=sk.attention,
        training=training,
        split_input=sk.split_input,
    )


REPOSITORY = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_as_user(args, cwd, timeout=600, **variables):
    """Runs `python ARGS` the way a user does: a subprocess in `cwd` (a fresh folder of the user's).

    This checkout comes first on the subprocess's path, so the command runs the code under test
    whatever folder it starts in; `variables` are added to the environment.

    Returns:
        The `subprocess.CompletedProcess`, with text `stdout` and `stderr`.
    """
    env = subprocess_environment(**variables)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (REPOSITORY, env.get("PYTHONPATH")) if p)
    return subprocess.run(
        [sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )


def assert_one_line_error(result, *names):
    """A user's mistake: a non-zero exit, no traceback, one line on stderr naming each of `names`."""
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode != 0, f"exit 0 on a user's mistake; stdout: {result.stdout[-1000:]}"
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    assert len(lines) == 1, f"{len(lines)} lines on stderr, expected one:\n{result.stderr[-3000:]}"
    for name in names:
        assert str(name) in lines[0], f"{name!r} not named in: {lines[0]}"


def folder_contents(folder):
    """{relative path: bytes} of every file under `folder` (to assert a user's files survived)."""
    contents = {}
    for root, _, files in os.walk(folder):
        for name in files:
            path = os.path.join(root, name)
            with open(path, "rb") as f:
                contents[os.path.relpath(path, folder)] = f.read()
    return contents
