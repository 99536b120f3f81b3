"""Where the test suite's time goes, from the junit files of `KERAS_SKNET_JUNIT_DIR=DIR bash scripts/test.sh`.

    python scripts/suite_times.py DIR/pass1.xml [--top 30]

Prints the test files by wall time (what a pytest-xdist worker spends on them, fixtures included)
and CPU time (`cpu_s`, tests/conftest.py: the test process and the subprocesses it waited for),
the slowest tests, and the files in the order tests/conftest.py's LONGEST_FIRST should list them.
On 2 cores the suite cannot take less than its CPU time over 2; a file whose CPU time exceeds its
wall time runs processes side by side, one whose wall time exceeds its CPU time waits.
"""

import argparse
import collections
import sys
import xml.etree.ElementTree as ElementTree


def test_times(path):
    """`[(file, test name, wall seconds, CPU seconds or None)]` of a junit file."""
    rows = []
    for case in ElementTree.parse(path).iter("testcase"):
        file = case.get("file") or _file_of(case.get("classname", ""))
        cpu = next((float(p.get("value")) for p in case.iter("property") if p.get("name") == "cpu_s"), None)
        rows.append((file, case.get("name"), float(case.get("time", 0)), cpu))
    return rows


def _file_of(classname):
    """`tests/a/test_b.py` from pytest's classname `tests.a.test_b[.Class]`."""
    parts = classname.split(".")
    while parts and not parts[-1].startswith("test_"):
        parts.pop()
    return "/".join(parts) + ".py" if parts else classname


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("junit", help="a pass's junit file (DIR/pass1.xml)")
    parser.add_argument("--top", type=int, default=30, help="how many files and tests to list (default 30)")
    args = parser.parse_args(argv)
    try:
        rows = test_times(args.junit)
    except (OSError, ElementTree.ParseError) as error:
        sys.exit(f"Cannot read the junit file {args.junit!r}: {error}")
    if not rows:
        sys.exit(f"The junit file {args.junit!r} holds no test cases")
    files = collections.defaultdict(lambda: [0, 0.0, 0.0])
    for file, _, wall, cpu in rows:
        files[file][0] += 1
        files[file][1] += wall
        files[file][2] += cpu or 0.0
    wall_total = sum(wall for _, _, wall, _ in rows)
    has_cpu = any(cpu is not None for *_, cpu in rows)
    cpu_total = sum(cpu or 0.0 for *_, cpu in rows)
    cpu_words = f"{cpu_total / 60:.1f} CPU-minutes" if has_cpu else "no CPU times (no cpu_s property)"
    print(f"{len(rows)} tests: {wall_total / 60:.1f} worker-minutes, {cpu_words}\n")
    print("| file | tests | wall (s) | CPU (s) |\n|---|---:|---:|---:|")
    ranked = sorted(files.items(), key=lambda item: -item[1][1])
    for file, (count, wall, cpu) in ranked[: args.top]:
        print(f"| {file} | {count} | {wall:.0f} | {f'{cpu:.0f}' if has_cpu else '-'} |")
    print("\n| test | wall (s) | CPU (s) |\n|---|---:|---:|")
    for file, name, wall, cpu in sorted(rows, key=lambda row: -row[2])[: args.top]:
        print(f"| {file}::{name} | {wall:.1f} | {'-' if cpu is None else f'{cpu:.1f}'} |")
    print("\nLONGEST_FIRST (files over 60 s of wall time, longest first):")
    for file, (_, wall, _) in ranked:
        if wall > 60:
            print(f'    "{file}",')
    return 0


if __name__ == "__main__":
    sys.exit(main())
