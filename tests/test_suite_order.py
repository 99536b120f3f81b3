"""The suite's scheduling list names files that exist (a renamed file would silently lose its place)."""

import os

from tests.conftest import LONGEST_FIRST

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_the_longest_files_listed_exist_once():
    missing = [path for path in LONGEST_FIRST if not os.path.isfile(os.path.join(ROOT, path))]
    assert not missing, f"tests/conftest.py LONGEST_FIRST names files that do not exist: {missing}"
    assert len(set(LONGEST_FIRST)) == len(LONGEST_FIRST)
