"""The README's python blocks run as printed, offline (see tests/users/test_recipes.py)."""

import pytest

from tests.users.recipe_readers import RECIPE_TIMEOUT_S


@pytest.mark.slow
@pytest.mark.timeout(RECIPE_TIMEOUT_S + 300)
def test_readme_runs_as_printed(run_page):
    run_page("README.md")
