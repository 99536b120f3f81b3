"""Shared test setup: quiet TensorFlow, deterministic seeds, float32 policy, the kernel library."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from keras_sknet import platform  # noqa: E402

# scripts/test.sh runs the kernel tests once per TensorFlow CPU kernel library and
# says which one each pass must get: a pass that silently ran the other is a failure.
EXPECT_KERNELS = "KERAS_SKNET_EXPECT_KERNELS"


def _kernels():
    return "onednn" if platform.onednn_enabled() else "eigen"


def pytest_report_header(config):
    if keras.backend.backend() != "tensorflow":  # describe() imports TensorFlow
        return f"keras_sknet platform: Keras on {keras.backend.backend()}"
    return f"keras_sknet platform: {platform.describe()}"


def pytest_sessionstart(session):
    expected = os.environ.get(EXPECT_KERNELS)
    if expected and keras.backend.backend() == "tensorflow" and expected != _kernels():
        raise pytest.UsageError(
            f"{EXPECT_KERNELS}={expected} but TensorFlow runs its {_kernels()} kernels "
            f"({platform.ONEDNN_VARIABLE}={os.environ.get(platform.ONEDNN_VARIABLE)!r})"
        )


@pytest.fixture(autouse=True)
def _seed_and_policy():
    keras.utils.set_random_seed(0)
    keras.config.set_dtype_policy("float32")
    yield
    keras.config.set_dtype_policy("float32")


@pytest.fixture
def rng():
    return np.random.default_rng(0)
