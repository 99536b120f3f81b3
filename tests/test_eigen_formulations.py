"""The formulations benchmarks/bench_eigen_formulations.py times against the portable path compute the same numbers.

A benchmark of wrong computations would prove nothing: each formulation's output and both
gradients must match `tf.nn.conv2d` and the portable gradients (the check the script runs
before timing), and a wrong one must be caught.
"""

import pytest
import tensorflow as tf

from benchmarks import bench_eigen_formulations as bench

pytestmark = pytest.mark.kernels  # the portable path differs between oneDNN and Eigen


def test_every_formulation_is_exact():
    errors = bench.check_exact()
    assert set(errors) == set(bench.FORMULATIONS)
    assert max(errors.values()) < 1e-5


def test_a_wrong_formulation_is_caught(monkeypatch):
    def off_by_one_tap(x, kernel, dilation, groups):
        return bench.portable(x, tf.roll(kernel, shift=1, axis=0), dilation, groups)

    monkeypatch.setitem(bench.FORMULATIONS, "wrong", off_by_one_tap)
    with pytest.raises(AssertionError, match="wrong"):
        bench.check_exact()


def test_tables_hold_every_stage_and_the_ratio():
    times = {}
    for width, size in bench.STAGES:
        for dilation in (1, 2):
            for name in bench.FORMULATIONS:
                if bench.applies(name, width // bench.GROUPS):
                    times[width, size, dilation, name, "training"] = (2.0 if name == "portable" else 4.0, 0.0)
    lines = bench.table(times, "training")
    assert len(lines) == 2 + 2 * len(bench.STAGES)
    assert all(line.endswith("| 0.50x |") for line in lines[2:])
    assert lines[2].count("| - |") == 1  # blocked at every width is the portable path at 4 per group
    assert bench.applies("blocked at every width", 16) and not bench.applies("blocked at every width", 8)
