"""TensorFlow's side of the backend tests: write the reference, run JAX and PyTorch, load what they saved.

In the TensorFlow suite this writes the reference files (`make_reference`)
into a temporary directory, then runs `pytest tests/backends` under
KERAS_BACKEND=jax and KERAS_BACKEND=torch, each in a subprocess of its own
(TensorFlow and torchvision in one process can crash; the subprocesses import
no TensorFlow), both at once. Each leaves a `.keras` file saved on its backend,
which must load here with the outputs it gave there.

Needs jax and torch (`pip install -e .[jax,torch]`); skipped without them
unless KERAS_SKNET_REQUIRE_BACKENDS=1 (set by scripts/test.sh, so CI fails
rather than skips).
"""

import os
import subprocess
import sys

import keras
import numpy as np
import pytest

from tests import helpers
from tests.backends import common

BACKEND = keras.backend.backend()
OTHER_BACKENDS = ("jax", "torch")
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TIMEOUT_S = 900

pytestmark = [
    pytest.mark.skipif(
        BACKEND != "tensorflow", reason="writes the TensorFlow reference: runs on Keras' TensorFlow backend"
    ),
    pytest.mark.numerics,  # scripts/test.sh reruns it with the instruction sets capped
]


def _environment(backend, reference, output):
    env = helpers.subprocess_environment(
        **{
            "KERAS_BACKEND": backend,
            common.REFERENCE_VARIABLE: reference,
            common.OUTPUT_VARIABLE: output,
            common.REQUIRE_VARIABLE: "1",
        }
    )
    if backend == "jax":
        # XLA's CPU optimisations take most of the JAX tests' time and change no result they check.
        env.setdefault("JAX_DISABLE_MOST_OPTIMIZATIONS", "1")
    return env


@pytest.fixture(scope="module")
def runs(tmp_path_factory, request):
    """`{backend: (return code, output, output directory)}` of the JAX and PyTorch runs, started together.

    A marker selection of this run (`-m numerics`, the capped rerun of scripts/test.sh) is
    passed on, so that the other backends rerun only their numerical comparisons.
    """
    from tests.backends.make_reference import make_reference

    missing = helpers.missing_backends(OTHER_BACKENDS)
    reference = str(tmp_path_factory.mktemp("reference"))
    make_reference(reference)
    markers = request.config.getoption("markexpr")
    selection = ["-m", markers] if markers else []
    started = {}
    for backend in OTHER_BACKENDS:
        if backend in missing:
            continue
        output = str(tmp_path_factory.mktemp(f"from_{backend}"))
        command = [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-rs",
            "-p",
            "no:cacheprovider",
            *selection,
            "tests/backends",
        ]
        process = subprocess.Popen(
            command,
            cwd=ROOT,
            env=_environment(backend, reference, output),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        started[backend] = (process, output)
    results = {"reference": reference}
    for backend, (process, output) in started.items():
        text, _ = process.communicate(timeout=TIMEOUT_S)
        results[backend] = (process.returncode, text, output)
    return results


def _run(runs, backend):
    if backend not in runs:
        pytest.skip(f"{backend} is not installed (pip install -e .[{backend}])")
    return runs[backend]


@pytest.mark.parametrize("backend", OTHER_BACKENDS)
def test_backend_suite_passes(runs, backend):
    """Every test of tests/backends passes on the backend, and none is skipped."""
    returncode, text, _ = _run(runs, backend)
    summary = text.strip().splitlines()[-1] if text.strip() else ""
    assert returncode == 0, text[-8000:]
    assert " passed" in summary and "skipped" not in summary and "error" not in summary, text[-4000:]


@pytest.mark.parametrize("backend", OTHER_BACKENDS)
def test_keras_file_saved_on_backend_loads_here(runs, backend):
    returncode, text, output = _run(runs, backend)
    path = os.path.join(output, f"sknet_tiny-{backend}.keras")
    assert os.path.isfile(path), text[-4000:]
    model = keras.models.load_model(path)
    saved = np.load(os.path.join(output, f"sknet_tiny-{backend}.npz"))
    outputs = model.predict(saved["inputs"], verbose=0)
    assert common.max_abs_diff(outputs, saved["outputs"]) <= common.TOLERANCE


@pytest.mark.parametrize("backend", OTHER_BACKENDS)
def test_keras_file_saved_on_backend_exports_to_onnx(runs, backend, tmp_path):
    """The export runs on TensorFlow; a `.keras` file from JAX or PyTorch exports there, same outputs."""
    if os.environ.get("KERAS_SKNET_REQUIRE_ONNX") != "1":
        pytest.importorskip("tf2onnx", reason="needs the onnx extra: pip install -e .[onnx]")
    import onnxruntime

    from keras_sknet import export

    returncode, text, output = _run(runs, backend)
    result = export.to_onnx(os.path.join(output, f"sknet_tiny-{backend}.keras"), tmp_path / "model.onnx")
    assert result.passed and export.onnx.grouped_conv_count(result.content) > 0
    saved = np.load(os.path.join(output, f"sknet_tiny-{backend}.npz"))
    session = onnxruntime.InferenceSession(result.content, providers=["CPUExecutionProvider"])
    outputs = session.run(None, {"images": saved["inputs"]})[0]
    assert common.max_abs_diff(outputs, saved["outputs"]) <= common.TOLERANCE


def test_reference_stays_small(runs):
    directory = runs["reference"]
    size = sum(os.path.getsize(os.path.join(directory, name)) for name in os.listdir(directory))
    assert size < 10e6, f"the reference directory holds {size / 1e6:.1f} MB"
