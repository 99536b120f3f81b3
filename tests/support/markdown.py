"""BENCHMARKS.md's sections: each benchmark's latest run, under its own `## title`.

Every benchmark (benchmarks/common.py's `append_markdown`) and the GPU check's `append` write
their table through `replace_section`; `command_line` says how the benchmark was started.
"""

import os
import re
import shlex
import sys

REPOSITORY = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def replace_section(text, title, section):
    """`text` (markdown) with its `## title` sections replaced by one `section`, or `section` appended.

    Args:
        text: the markdown, e.g. BENCHMARKS.md's.
        title: the section's title, without "## ".
        section: the new section, starting with `## title`.

    Returns:
        The markdown with `section` where the first `## title` section stood (the others of that
        title removed), or appended after one blank line.

    Example:
        >>> replace_section("## A\\n\\nold\\n", "A", "## A\\n\\nnew\\n")
        '## A\\n\\nnew\\n'
    """
    heading = f"## {title}"
    parts = re.split(r"(?m)^(?=## )", text)
    kept, placed = [], False
    for part in parts:
        if part.splitlines()[:1] == [heading]:
            if not placed:
                kept.append(section + ("\n" if not section.endswith("\n\n") else ""))
                placed = True
            continue
        kept.append(part)
    if not placed:
        if kept and not kept[-1].endswith("\n\n"):
            kept[-1] = kept[-1].rstrip("\n") + "\n\n"
        kept.append(section)
    return "".join(kept).rstrip("\n") + "\n"


def command_line(argv=None):
    """How a benchmark was started, as a user would type it from the repository root.

    Args:
        argv: the arguments (default `sys.argv`), the script first.

    Returns:
        e.g. `python benchmarks/bench_peers.py --no-xla`.
    """
    argv = list(sys.argv if argv is None else argv)
    script = os.path.relpath(os.path.abspath(argv[0]), REPOSITORY) if argv else ""
    return " ".join(["python", shlex.quote(script), *(shlex.quote(a) for a in argv[1:])])


def write_section(path, title, section, header=None):
    """Puts `section` into the markdown file at `path` in place of its `## title` sections.

    Written to a temporary file beside `path` and renamed into place, so that a failure leaves the
    file as it was (without importing keras_sknet: the GPU check runs where TensorFlow is absent).

    Args:
        path: the markdown file, e.g. BENCHMARKS.md.
        title: the section's title, without "## ".
        section: the new section, starting with `## title`.
        header: the text of a new file when `path` does not exist (None: it must exist).
    """
    if header is not None and not os.path.exists(path):
        text = header
    else:
        with open(path) as f:
            text = f.read()
    tmp = os.path.join(os.path.dirname(os.path.abspath(path)), f".{os.path.basename(path)}.{os.getpid()}.tmp")
    try:
        with open(tmp, "w") as f:
            f.write(replace_section(text, title, section))
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
