"""Every relative link in README.md, BENCHMARKS.md and docs/*.md points at a file of the repository."""

import glob
import os
import re

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PAGES = sorted(
    [os.path.join(ROOT, "README.md"), os.path.join(ROOT, "BENCHMARKS.md")]
    + glob.glob(os.path.join(ROOT, "docs", "*.md"))
    + glob.glob(os.path.join(ROOT, "benchmarks", "history", "*.md"))
)
# Markdown links and images: [text](target) and ![alt](target), target up to a space or ")".
LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
FENCE = re.compile(r"^(```|~~~).*?^\1", re.MULTILINE | re.DOTALL)


def relative_links(page):
    with open(page, encoding="utf-8") as f:
        text = FENCE.sub("", f.read())  # code blocks hold no links
    for target in LINK.findall(text):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.IGNORECASE) or target.startswith("#"):
            continue  # absolute URLs (http:, mailto:) and anchors within the page
        yield target


def test_pages_exist():
    assert os.path.join(ROOT, "README.md") in PAGES
    assert len(PAGES) > 2


@pytest.mark.parametrize("page", PAGES, ids=lambda page: os.path.relpath(page, ROOT))
def test_relative_links_resolve(page):
    missing = []
    for target in relative_links(page):
        path = os.path.normpath(os.path.join(os.path.dirname(page), target.split("#")[0]))
        if not os.path.exists(path):
            missing.append(target)
        elif os.path.relpath(path, ROOT).startswith(os.pardir):
            missing.append(f"{target} (outside the repository)")
    assert not missing, f"{os.path.relpath(page, ROOT)}: links that do not resolve: {missing}"
