"""BENCHMARKS.md keeps the latest run of each benchmark: a rerun replaces its section in place."""

import os

import pytest

from tests.support.markdown import command_line, replace_section, write_section

TEXT = "# Benchmarks\n\nintro\n\n## Peers\n\nold run\n\n## Kernels\n\nk\n\n## Peers\n\nolder run\n"


def test_a_rerun_replaces_every_section_of_its_title_where_the_first_stood():
    out = replace_section(TEXT, "Peers", "## Peers\n\nnew run\n")
    assert out == "# Benchmarks\n\nintro\n\n## Peers\n\nnew run\n\n## Kernels\n\nk\n"


def test_a_new_benchmark_is_appended_and_the_rest_is_kept():
    out = replace_section(TEXT, "GPU", "## GPU\n\ng\n")
    assert out.startswith(TEXT.rstrip("\n") + "\n\n## GPU\n\ng\n")
    assert out.count("## Peers") == 2


def test_a_title_that_only_starts_like_another_is_not_replaced():
    out = replace_section("## Peers (old)\n\nx\n", "Peers", "## Peers\n\ny\n")
    assert out == "## Peers (old)\n\nx\n\n## Peers\n\ny\n"


def test_the_command_is_written_as_typed_from_the_repository_root():
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    script = os.path.join(root, "benchmarks", "bench_peers.py")
    assert command_line([script, "--no-xla", "--rounds", "5"]) == (
        "python benchmarks/bench_peers.py --no-xla --rounds 5"
    )
    assert (
        command_line([script, "--note", "two words"]) == "python benchmarks/bench_peers.py --note 'two words'"
    )


def test_a_section_is_written_in_place_and_a_first_run_makes_the_file(tmp_path):
    path = tmp_path / "BENCHMARKS.md"
    with pytest.raises(FileNotFoundError):  # without a header, the file must exist (the GPU check's append)
        write_section(path, "A", "## A\n\na\n")
    write_section(path, "A", "## A\n\na\n", header="# Benchmarks\n\n")
    assert path.read_text() == "# Benchmarks\n\n## A\n\na\n"
    write_section(path, "A", "## A\n\nb\n")
    assert path.read_text() == "# Benchmarks\n\n## A\n\nb\n"
    assert os.listdir(tmp_path) == ["BENCHMARKS.md"]  # no temporary file left beside it
