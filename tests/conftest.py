"""Shared test setup: quiet TensorFlow, deterministic seeds, float32 policy."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def _seed_and_policy():
    keras.utils.set_random_seed(0)
    keras.config.set_dtype_policy("float32")
    yield
    keras.config.set_dtype_policy("float32")


@pytest.fixture
def rng():
    return np.random.default_rng(0)


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
