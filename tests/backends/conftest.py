"""Backend tests: TensorFlow's reference files, true float32 on GPUs, and no TensorFlow import on JAX/PyTorch."""

import json
import os
import random
import sys

import keras
import numpy as np
import pytest

from tests.backends import common

BACKEND = keras.backend.backend()

# TensorFlow writes the reference and runs the other backends (test_tensorflow_side.py); JAX and
# PyTorch compare with it (test_parity.py). test_layers.py runs everywhere.
collect_ignore = ["test_parity.py"] if BACKEND == "tensorflow" else ["test_tensorflow_side.py"]


def _true_float32():
    """On GPUs JAX and PyTorch may run float32 convolutions and matmuls in TF32 (10-bit mantissa).

    The parity bounds (1e-5) are for float32 arithmetic, as TensorFlow's CPU
    reference computes it; on CPUs these settings change nothing.
    """
    if BACKEND == "jax":
        import jax

        jax.config.update("jax_default_matmul_precision", "highest")
    elif BACKEND == "torch":
        import torch

        torch.backends.cudnn.allow_tf32 = False
        torch.backends.cuda.matmul.allow_tf32 = False


_true_float32()


@pytest.fixture(autouse=True)
def _seed_and_policy():
    """tests/conftest.py's fixture, without importing TensorFlow on JAX and PyTorch.

    `keras.utils.set_random_seed` also seeds `tf.random` whenever TensorFlow is
    installed, importing it; these tests load their weights from files and
    need only NumPy's and the backend's seeds.
    """
    if BACKEND == "tensorflow":
        keras.utils.set_random_seed(0)
    else:
        random.seed(0)
        np.random.seed(0)
        if BACKEND == "torch":
            import torch

            torch.manual_seed(0)
    keras.config.set_dtype_policy("float32")
    yield
    keras.config.set_dtype_policy("float32")


@pytest.fixture(autouse=True)
def _no_tensorflow_import():
    """On JAX and PyTorch no test may import TensorFlow (the GPU machines have none)."""
    yield
    if BACKEND != "tensorflow":
        assert "tensorflow" not in sys.modules, f"TensorFlow was imported on Keras' {BACKEND} backend"


class Reference:
    """The files `python -m tests.backends.make_reference DIR` wrote."""

    def __init__(self, directory):
        self.directory = directory
        with open(self.path("manifest.json")) as f:
            self.manifest = json.load(f)
        if self.manifest.get("format") != common.FORMAT:
            raise ValueError(
                f"{directory} holds a reference of format {self.manifest.get('format')!r}; these tests "
                f"read format {common.FORMAT}. Write it again with `python -m tests.backends.make_reference`."
            )
        with np.load(self.path("arrays.npz")) as arrays:
            self.arrays = dict(arrays)

    def path(self, name):
        return os.path.join(self.directory, name)

    def __getitem__(self, key):
        return self.arrays[key]


@pytest.fixture(scope="session")
def reference():
    directory = os.environ.get(common.REFERENCE_VARIABLE)
    if not directory:
        message = (
            f"No TensorFlow reference: set {common.REFERENCE_VARIABLE} to a directory written on "
            "TensorFlow by `python -m tests.backends.make_reference DIR`."
        )
        if os.environ.get(common.REQUIRE_VARIABLE) == "1":
            pytest.fail(message)
        pytest.skip(message)
    return Reference(directory)


@pytest.fixture(scope="session")
def measured():
    """Collects the measured differences; written to $KERAS_SKNET_BACKEND_OUTPUT/measured-<backend>.json."""
    values = {}
    yield values
    out = os.environ.get(common.OUTPUT_VARIABLE)
    if out and values:
        os.makedirs(out, exist_ok=True)
        with open(os.path.join(out, f"measured-{BACKEND}.json"), "w") as f:
            json.dump({key: float(value) for key, value in values.items()}, f, indent=1, sort_keys=True)
