"""Atomic writes: the old file or the new one, never a part, and no temporary left behind."""

import json
import os

import pytest

from keras_sknet.utils.files import atomic_path, write_json_atomically


def test_atomic_path_replaces_on_success(tmp_path):
    target = tmp_path / "sub" / "model.keras"
    with atomic_path(target, suffix=".keras") as tmp:
        assert tmp.endswith(".keras") and os.path.dirname(tmp) == str(target.parent)
        with open(tmp, "w") as f:
            f.write("new")
    assert target.read_text() == "new"
    assert os.listdir(target.parent) == ["model.keras"]


def test_atomic_path_keeps_the_old_file_on_failure(tmp_path):
    target = tmp_path / "summary.json"
    target.write_text("old")
    with pytest.raises(RuntimeError, match="disk full"):
        with atomic_path(target) as tmp:
            with open(tmp, "w") as f:
                f.write("half")
            raise RuntimeError("disk full")
    assert target.read_text() == "old"
    assert os.listdir(tmp_path) == ["summary.json"]


def test_write_json_atomically_round_trip_and_permissions(tmp_path):
    target = tmp_path / "config.json"
    write_json_atomically(target, {"b": 1, "a": [1, 2]}, sort_keys=True)
    assert json.loads(target.read_text()) == {"a": [1, 2], "b": 1}
    mask = os.umask(0)
    os.umask(mask)
    assert os.stat(target).st_mode & 0o777 == 0o666 & ~mask


def test_write_json_atomically_unserialisable_leaves_nothing(tmp_path):
    target = tmp_path / "config.json"
    target.write_text('{"kept": true}')
    with pytest.raises(TypeError):
        write_json_atomically(target, {"x": object()})
    assert json.loads(target.read_text()) == {"kept": True}
    assert os.listdir(tmp_path) == ["config.json"]
