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


# The test files that take longest, longest first (pass 1, 2026-12-07, AMD Zen 4, 2 workers;
# `python scripts/suite_times.py` on a run's junit file, KERAS_SKNET_JUNIT_DIR in scripts/test.sh).
# scripts/test.sh hands whole files to its two pytest-xdist workers in collection order
# (`--dist loadfile --no-loadscope-reorder`); starting the long files first keeps one of them
# from starting last while the other worker sits idle (4 minutes, for the README).
LONGEST_FIRST = (
    "tests/users/test_readme.py",
    "tests/test_hub.py",
    "tests/users/test_recipes.py",
    "tests/test_export.py",
    "tests/test_applications.py",
    "tests/training/test_jax_processes.py",
    "tests/training/test_trainer_jax.py",
    "tests/users/test_export_paths.py",
    "tests/test_export_onnx.py",
    "tests/test_platforms.py",
    "tests/backends/test_tensorflow_side.py",
    "tests/test_timm_parity.py",
    "tests/test_zoo_sizes.py",
    "tests/test_gpu_check.py",
    "tests/training/test_workers.py",
    "tests/training/test_trainer.py",
    "tests/test_crashes.py",
    "tests/test_caffe_weights.py",
    "tests/users/test_commands.py",
    "tests/training/test_grain_no_tensorflow.py",
)


def pytest_collection_modifyitems(config, items):
    """Runs the longest test files first (`LONGEST_FIRST`); the others keep their order."""
    rank = {path: index for index, path in enumerate(LONGEST_FIRST)}

    def file_rank(item):
        path = os.path.relpath(str(item.path), str(config.rootpath)).replace(os.sep, "/")
        return rank.get(path, len(rank))

    items.sort(key=file_rank)  # stable: the tests of a file, and the files not listed, keep their order


_CPU_AT_SETUP = pytest.StashKey[float]()


def _cpu_seconds():
    """CPU time of this process and of the subprocesses it has waited for (most tests' real cost)."""
    try:
        import resource
    except ImportError:  # Windows
        return 0.0
    return sum(
        usage.ru_utime + usage.ru_stime
        for usage in (resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN))
    )


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    item.stash[_CPU_AT_SETUP] = _cpu_seconds()  # before the fixtures, which some tests spend most in


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Each test's CPU-seconds, setup to teardown, as the property `cpu_s` (in `--junitxml` files).

    The suite's time on 2 cores is its CPU time over 2, not its tests' wall times: a test whose
    subprocesses run side by side costs more than its duration says, one that waits less.
    """
    outcome = yield
    if call.when == "teardown" and _CPU_AT_SETUP in item.stash:
        outcome.get_result().user_properties.append(
            ("cpu_s", round(_cpu_seconds() - item.stash[_CPU_AT_SETUP], 2))
        )


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
