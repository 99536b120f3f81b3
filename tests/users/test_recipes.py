"""The documented recipes run as printed: every ```python block of README.md and docs/*.md.

A reader pastes a page's blocks in order into one Python session. So does each test here: one
page per test, its blocks in page order in one namespace, in a subprocess in a fresh folder
(`tests.helpers.run_as_user`), so relative paths land there. What the blocks take for granted
(the reader's photos, arrays, trained model, and the network behind `weights="imagenet"`) is
put there first by the page's reader in `tests/users/recipe_readers.py`, without touching the
blocks' text. A block that breaks fails its page's test, naming the page, the block's line and
its first line. A block that cannot run here starts with `# not run: <reason>`.
"""

import glob
import os
import re
import subprocess

import pytest

from tests.helpers import REPOSITORY, run_as_user
from tests.users import recipe_readers

PAGES = [
    page
    for page in ["README.md"]
    + sorted(os.path.relpath(p, REPOSITORY) for p in glob.glob(f"{REPOSITORY}/docs/*.md"))
    if recipe_readers.python_blocks(page)
]
# Pages that export, fine-tune or build several full-size networks: tens of seconds each.
SLOW = {"README.md", "docs/backbones.md", "docs/export.md", "docs/training.md", "docs/weights.md"}
# README.md exports SKNet-50 five ways (int8 calibrates on 100 images at 224): minutes on 2 busy cores.
TIMEOUT_S = 1800


def _marks(page):
    # Past setup.cfg's per-test timeout: a page's own limit (TIMEOUT_S) names the block that hung.
    return [pytest.mark.timeout(TIMEOUT_S + 300)] + ([pytest.mark.slow] if page in SLOW else [])


@pytest.fixture(scope="module")
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


def test_every_page_with_python_blocks_has_a_reader():
    assert PAGES and "README.md" in PAGES
    missing = [page for page in PAGES if page not in recipe_readers.READERS]
    assert not missing, f"say what the reader of {missing} has in tests/users/recipe_readers.py"


def _running_block(page, stdout):
    """'the block at line N (its first line)' that started last without finishing, else the reader."""
    started = re.findall(r"^@@ start (\d+)$", stdout, re.MULTILINE)
    if started and not re.search(rf"^@@ done {started[-1]} ", stdout, re.MULTILINE):
        line = int(started[-1])
        first = dict(recipe_readers.python_blocks(page))[line].strip().splitlines()[0]
        return f"the block at line {line} ({first!r})"
    return "what the reader has (tests/users/recipe_readers.py)"


@pytest.mark.parametrize("page", [pytest.param(p, marks=_marks(p)) for p in PAGES])
def test_page_runs_as_printed(page, hub_mirror, tmp_path):
    reader, home = tmp_path / "reader", tmp_path / "home"  # "~/..." in a block lands in home
    reader.mkdir()
    home.mkdir()
    command = ["-m", "tests.users.recipe_readers", page]
    try:
        done = run_as_user(command, reader, TIMEOUT_S, HOME=str(home), TF_CPP_MIN_LOG_LEVEL="2", **hub_mirror)
    except subprocess.TimeoutExpired as error:
        stdout = (error.stdout or b"").decode(errors="replace")
        pytest.fail(f"{page}: {_running_block(page, stdout)} ran past {TIMEOUT_S} s", pytrace=False)
    timings = re.findall(r"^@@ (done|not-run|reader) (\d+) ([\d.]+)$", done.stdout, re.MULTILINE)
    print(f"{page}: " + ", ".join(f"{kind} {line}: {seconds} s" for kind, line, seconds in timings))
    if done.returncode != 0:
        pytest.fail(
            f"{page}: {_running_block(page, done.stdout)} failed:\n{done.stderr[-4000:]}", pytrace=False
        )
    ran = [line for kind, line, _ in timings if kind in ("done", "not-run")]
    assert len(ran) == len(recipe_readers.python_blocks(page)), done.stdout[-2000:]
