"""The trainer on JAX with the grain pipeline where TensorFlow cannot be imported.

Two ways: an import hook that makes every `import tensorflow` fail (cheap, in
every run), and a fresh virtual environment with keras, jax, grain, Pillow and
the package, nothing else (slow: it installs from the package registry, and is
skipped with the reason when the registry cannot be reached).
"""

import json
import os
import subprocess
import sys
import textwrap

import pytest

from tests.helpers import REPOSITORY, assert_one_line_error, run_as_user
from tests.training.helpers import TINY

pytest.importorskip("grain", reason="the grain pipeline needs grain (pip install keras-sknet[grain])")
pytest.importorskip("jax", reason="the trainer on JAX needs jax (pip install jax)")

# Every import of tensorflow fails, as where it is not installed; each attempt is written down.
BLOCKER = """
import os, sys

class _NoTensorFlow:
    def find_spec(self, name, path=None, target=None):
        if name == "tensorflow" or name.startswith("tensorflow."):
            with open(os.environ["BLOCKED_IMPORTS_LOG"], "a") as log:
                log.write(name + "\\n")
            raise ModuleNotFoundError(f"No module named {name!r} (blocked by the test)", name=name)
        return None

sys.meta_path.insert(0, _NoTensorFlow())
"""
RECIPE = [
    "-m",
    "training.train",
    "--experiment",
    "scales_demo",
    *(f"--set={a}" for a in TINY),
    "--set=epochs=1",
]


@pytest.fixture(scope="module")
def jax_compilation(tmp_path_factory):
    """The trainings' JAX settings: XLA's CPU optimisations off (as in tests/backends), and one
    compilation cache, so that the virtual environment's run (the same jax and keras, pinned)
    loads what the import-hook run compiled."""
    return dict(
        JAX_DISABLE_MOST_OPTIMIZATIONS="1",
        JAX_COMPILATION_CACHE_DIR=str(tmp_path_factory.mktemp("xla_cache")),
        JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0",
    )


@pytest.fixture
def no_tensorflow(tmp_path, jax_compilation):
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(BLOCKER)
    return dict(
        PYTHONPATH=str(hook),
        BLOCKED_IMPORTS_LOG=str(tmp_path / "blocked.txt"),
        KERAS_BACKEND="jax",
        KERAS_HOME=str(tmp_path / "keras_home"),  # the rendered dataset's cache
        **jax_compilation,
    )


def test_scales_demo_trains_on_jax_without_tensorflow(tmp_path, no_tensorflow):
    user = tmp_path / "user"
    user.mkdir()
    check = run_as_user(["-c", "import tensorflow"], cwd=user, **no_tensorflow)
    assert check.returncode != 0 and "blocked by the test" in check.stderr
    result = run_as_user(
        [*RECIPE, "--model-dir", "run", "--verbose", "0"], cwd=user, timeout=900, **no_tensorflow
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "scales_demo on scales_demo/tiny: top-1" in result.stdout
    with open(user / "run" / "summary.json") as f:
        summary = json.load(f)
    assert summary["backend"] == "jax" and summary["steps"] == 96 // 16 and summary["final"]["examples"] == 48
    # Only the probe for TensorBoard asked for TensorFlow (and went on without its logs).
    with open(no_tensorflow["BLOCKED_IMPORTS_LOG"]) as f:
        assert set(f.read().split()) <= {"tensorflow"}
    # Asking for the tf.data pipeline there is one line naming the way out.
    refused = run_as_user(
        [*RECIPE, "--model-dir", "run2", "--input-pipeline", "tf"], cwd=user, **no_tensorflow
    )
    assert_one_line_error(refused, "--input-pipeline tf needs TensorFlow", "--input-pipeline grain")


def test_grain_is_refused_on_the_tensorflow_backend(tmp_path):
    result = run_as_user(
        [*RECIPE, "--model-dir", "run", "--input-pipeline", "grain"], cwd=tmp_path, KERAS_BACKEND="tensorflow"
    )
    assert_one_line_error(result, "--input-pipeline grain feeds Keras' jax backend", "KERAS_BACKEND=jax")


@pytest.mark.slow
def test_a_virtual_environment_without_tensorflow_trains_the_recipe(tmp_path, jax_compilation):
    venv = tmp_path / "venv"
    # No pip of its own (ensurepip), no bytecode of every installed module: this pip installs
    # into it, and Python compiles what the run imports.
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=300)
    python = str(venv / "bin" / "python")
    pip = [sys.executable, "-m", "pip", "--python", python, "install", "-q", "--no-compile"]
    install = subprocess.run(
        [*pip, "keras==3.15.1", "jax", "grain", "pillow", "numpy"],
        capture_output=True,
        text=True,
        timeout=1200,
    )
    if install.returncode != 0:
        pytest.skip(f"cannot install keras, jax and grain from the registry here: {install.stderr[-500:]}")
    subprocess.run([*pip, "--no-deps", "-e", REPOSITORY], check=True, timeout=600)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env.update(KERAS_BACKEND="jax", KERAS_HOME=str(tmp_path / "keras_home"), **jax_compilation)
    probe = subprocess.run([python, "-c", "import tensorflow"], capture_output=True, text=True, env=env)
    assert probe.returncode != 0 and "No module named 'tensorflow'" in probe.stderr
    script = textwrap.dedent(
        """
        import sys
        from training.train import main
        code = main(sys.argv[1:])
        assert "tensorflow" not in sys.modules
        sys.exit(code)
        """
    )
    args = [a for a in RECIPE if a not in ("-m", "training.train")]
    result = subprocess.run(
        [python, "-c", script, *args, "--model-dir", str(tmp_path / "run"), "--verbose", "0"],
        cwd=REPOSITORY,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "scales_demo on scales_demo/tiny: top-1" in result.stdout
