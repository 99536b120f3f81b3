"""Fixtures of the tests that act as a user."""

import re
import subprocess

import pytest

from tests.helpers import run_as_user
from tests.users import recipe_readers

RECIPE_TIMEOUT_S = recipe_readers.RECIPE_TIMEOUT_S


@pytest.fixture(scope="session")
def hub_mirror(tmp_path_factory):
    """A Hugging Face Hub mirror on this machine (random timm checkpoints) and a Keras home."""
    root = tmp_path_factory.mktemp("hub")
    done = run_as_user(["-m", "tests.users.recipe_readers", "--hub-mirror", str(root)], cwd=root)
    assert done.returncode == 0, done.stderr[-3000:]
    return dict(
        HF_ENDPOINT=root.as_uri(),
        KERAS_HOME=str(tmp_path_factory.mktemp("keras_home")),  # the reader's cache, shared by pages
        **{recipe_readers.MIRROR: str(root)},
    )


def _running_block(page, stdout):
    """'the block at line N (its first line)' that started last without finishing, else the reader."""
    started = re.findall(r"^@@ start (\d+)$", stdout, re.MULTILINE)
    if started and not re.search(rf"^@@ done {started[-1]} ", stdout, re.MULTILINE):
        line = int(started[-1])
        first = dict(recipe_readers.python_blocks(page))[line].strip().splitlines()[0]
        return f"the block at line {line} ({first!r})"
    return "what the reader has (tests/users/recipe_readers.py)"


@pytest.fixture
def run_page(hub_mirror, tmp_path):
    """Runs a page's python blocks as a reader pastes them; fails naming the block that broke."""

    def run(page):
        reader, home = tmp_path / "reader", tmp_path / "home"  # "~/..." in a block lands in home
        reader.mkdir()
        home.mkdir()
        command = ["-m", "tests.users.recipe_readers", page]
        try:
            done = run_as_user(
                command, reader, RECIPE_TIMEOUT_S, HOME=str(home), TF_CPP_MIN_LOG_LEVEL="2", **hub_mirror
            )
        except subprocess.TimeoutExpired as error:
            stdout = (error.stdout or b"").decode(errors="replace")
            pytest.fail(
                f"{page}: {_running_block(page, stdout)} ran past {RECIPE_TIMEOUT_S} s", pytrace=False
            )
        timings = re.findall(r"^@@ (done|not-run|reader) (\d+) ([\d.]+)$", done.stdout, re.MULTILINE)
        print(f"{page}: " + ", ".join(f"{kind} {line}: {seconds} s" for kind, line, seconds in timings))
        if done.returncode != 0:
            pytest.fail(
                f"{page}: {_running_block(page, done.stdout)} failed:\n{done.stderr[-4000:]}", pytrace=False
            )
        ran = [line for kind, line, _ in timings if kind in ("done", "not-run")]
        assert len(ran) == len(recipe_readers.python_blocks(page)), done.stdout[-2000:]

    return run
