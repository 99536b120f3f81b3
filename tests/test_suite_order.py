"""The suite's scheduling list names files that exist (a renamed file would silently lose its place)."""

import os
import sys
import time

import pytest

from tests.conftest import LONGEST_FIRST

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_the_longest_files_listed_exist_once():
    missing = [path for path in LONGEST_FIRST if not os.path.isfile(os.path.join(ROOT, path))]
    assert not missing, f"tests/conftest.py LONGEST_FIRST names files that do not exist: {missing}"
    assert len(set(LONGEST_FIRST)) == len(LONGEST_FIRST)


JUNIT = """<?xml version="1.0" encoding="utf-8"?>
<testsuites><testsuite name="pytest" tests="3">
<testcase classname="tests.training.test_workers" name="test_a" time="12.5">
<properties><property name="cpu_s" value="30.25"/></properties></testcase>
<testcase classname="tests.test_hub.SKNetHubTest" name="test_b" time="2.0">
<properties><property name="cpu_s" value="1.5"/></properties></testcase>
<testcase classname="tests.test_hub" name="test_c" time="70.0"/>
</testsuite></testsuites>
"""


def test_suite_times_reads_the_junit_files_of_a_run(tmp_path, capsys):
    """scripts/suite_times.py: files by wall and CPU time, test classes folded into their file."""
    import runpy

    suite_times = runpy.run_path(os.path.join(ROOT, "scripts", "suite_times.py"))
    path = tmp_path / "pass1.xml"
    path.write_text(JUNIT)
    assert suite_times["test_times"](str(path)) == [
        ("tests/training/test_workers.py", "test_a", 12.5, 30.25),
        ("tests/test_hub.py", "test_b", 2.0, 1.5),
        ("tests/test_hub.py", "test_c", 70.0, None),
    ]
    assert suite_times["main"]([str(path)]) == 0
    out = capsys.readouterr().out
    assert "3 tests: 1.4 worker-minutes, 0.5 CPU-minutes" in out
    assert "| tests/test_hub.py | 2 | 72 | 2 |" in out
    assert out.rstrip().endswith('"tests/test_hub.py",')  # the only file over 60 s


@pytest.fixture
def busy_fixture():
    end = time.process_time() + 0.3
    while time.process_time() < end:  # CPU spent in setup, as a fixture that converts a model
        pass


@pytest.mark.skipif(sys.platform == "win32", reason="no resource module: cpu_s is not recorded on Windows")
def test_cpu_seconds_count_the_fixtures(busy_fixture, request):
    """The `cpu_s` clock starts before setup: the fixture's 0.3 CPU-s are in this test's property."""
    from tests.conftest import _CPU_AT_SETUP, _cpu_seconds

    assert _cpu_seconds() - request.node.stash[_CPU_AT_SETUP] >= 0.29
