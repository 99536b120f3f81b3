"""`import keras_sknet` asks Keras' own configuration which backend runs: KERAS_BACKEND, then keras.json.

The subprocess tests hide TensorFlow the way a machine without it looks: `import
tensorflow` fails and `importlib.util.find_spec("tensorflow")` is None. They
take a few seconds each (Keras on JAX imports JAX).
"""

import json
import os
import subprocess
import sys

import pytest

from keras_sknet._keras_config import configured_backend, keras_home

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Every finder answers None for tensorflow and its submodules: as if it were not installed.
HIDE_TENSORFLOW = """
import sys

class _Hidden:
    def __init__(self, finder):
        self._finder = finder

    def find_spec(self, name, path=None, target=None):
        if name == "tensorflow" or name.startswith("tensorflow."):
            return None
        find_spec = getattr(self._finder, "find_spec", None)
        return None if find_spec is None else find_spec(name, path, target)

    def __getattr__(self, attribute):
        return getattr(self._finder, attribute)

sys.meta_path[:] = [_Hidden(finder) for finder in sys.meta_path]
"""

CHECK_HIDDEN = """
import importlib.util
assert importlib.util.find_spec("tensorflow") is None
try:
    import tensorflow
except ImportError:
    pass
else:
    raise AssertionError("tensorflow was importable")
"""


def _run(code, keras_json=None, tmp_path=None, **variables):
    env = {k: v for k, v in os.environ.items() if k not in ("KERAS_BACKEND", "KERAS_HOME")}
    env.update(variables)
    env["PYTHONPATH"] = REPO
    if keras_json is not None:
        home = tmp_path / "keras_home"
        home.mkdir()
        (home / "keras.json").write_text(json.dumps(keras_json))
        env["KERAS_HOME"] = str(home)
    return subprocess.run(
        [sys.executable, "-c", HIDE_TENSORFLOW + CHECK_HIDDEN + code],
        cwd=str(tmp_path),
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_keras_json_jax_without_tensorflow(tmp_path):
    pytest.importorskip("jax")
    result = _run(
        "import keras_sknet, keras, sys\n"
        f"assert keras_sknet.__file__.startswith({REPO!r}), keras_sknet.__file__\n"
        "print(keras.config.backend(), 'tensorflow' in sys.modules)\n",
        keras_json={"backend": "jax"},
        tmp_path=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.split()[-2:] == ["jax", "False"]


@pytest.mark.parametrize(
    "keras_json, variables",
    [
        ({"backend": "tensorflow"}, {}),
        (None, {}),  # no keras.json there: Keras' default
        ({"backend": "jax"}, {"KERAS_BACKEND": "tensorflow"}),  # the variable wins, as in Keras
    ],
    ids=["keras_json", "default", "variable_over_keras_json"],
)
def test_tensorflow_backend_without_tensorflow_explains(tmp_path, keras_json, variables):
    if keras_json is None:
        (tmp_path / "empty_home").mkdir()
        variables = dict(variables, KERAS_HOME=str(tmp_path / "empty_home"))
    result = _run(
        "try:\n"
        "    import keras_sknet\n"
        "except ImportError as error:\n"
        "    print('ImportError:', error)\n"
        "else:\n"
        "    raise SystemExit('imported')\n",
        keras_json=keras_json,
        tmp_path=tmp_path,
        **variables,
    )
    assert result.returncode == 0, result.stdout + result.stderr[-3000:]
    assert "ImportError: Keras' backend is TensorFlow" in result.stdout
    assert "pip install keras-sknet[cpu]" in result.stdout


def test_configured_backend_reads_as_keras_does(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    env = {"KERAS_HOME": str(home)}
    assert configured_backend(env) == "tensorflow"  # no keras.json
    (home / "keras.json").write_text("not json")
    assert configured_backend(env) == "tensorflow"
    (home / "keras.json").write_text(json.dumps({"backend": "torch", "floatx": "float32"}))
    assert configured_backend(env) == "torch"
    assert configured_backend(dict(env, KERAS_BACKEND="jax")) == "jax"
    assert configured_backend(dict(env, KERAS_BACKEND="")) == "torch"  # empty: Keras ignores it
    assert keras_home(env) == str(home)


def test_configured_backend_in_a_process_agrees_with_keras():
    import keras

    assert configured_backend() == keras.config.backend()
