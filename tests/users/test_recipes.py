"""The documented recipes run as printed: every ```python block of docs/*.md (README.md: test_readme.py).

A reader pastes a page's blocks in order into one Python session. So does each test here: one
page per test, its blocks in page order in one namespace, in a subprocess in a fresh folder
(`tests.helpers.run_as_user`), so relative paths land there. What the blocks take for granted
(the reader's photos, arrays, trained model, and the network behind `weights="imagenet"`) is
put there first by the page's reader in `tests/users/recipe_readers.py`, without touching the
blocks' text. A block that breaks fails its page's test (`run_page` in tests/users/conftest.py),
naming the page, the block's line and its first line. A block that cannot run here starts with
`# not run: <reason>`.
"""

import glob
import os

import pytest

from tests.helpers import REPOSITORY
from tests.users import recipe_readers
from tests.users.recipe_readers import RECIPE_TIMEOUT_S

README = "README.md"  # the heaviest page, in a file of its own so that pytest-xdist spreads the pages
PAGES = [
    page
    for page in [README]
    + sorted(os.path.relpath(p, REPOSITORY) for p in glob.glob(f"{REPOSITORY}/docs/*.md"))
    if recipe_readers.python_blocks(page)
]
# Pages that export, fine-tune or build several full-size networks: tens of seconds each.
SLOW = {"docs/backbones.md", "docs/export.md", "docs/training.md", "docs/weights.md"}


def _marks(page):
    # Past setup.cfg's per-test timeout: the page's own limit names the block that hung.
    return [pytest.mark.timeout(RECIPE_TIMEOUT_S + 300)] + ([pytest.mark.slow] if page in SLOW else [])


def test_every_page_with_python_blocks_has_a_reader():
    assert PAGES and README in PAGES
    missing = [page for page in PAGES if page not in recipe_readers.READERS]
    assert not missing, f"say what the reader of {missing} has in tests/users/recipe_readers.py"


@pytest.mark.parametrize("page", [pytest.param(p, marks=_marks(p)) for p in PAGES if p != README])
def test_page_runs_as_printed(page, run_page):
    run_page(page)
