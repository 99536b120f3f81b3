"""Safe writes: checked first, the old file or the new one (never a part), a user's files never replaced."""

import functools
import json
import os

import pytest

from keras_sknet.utils import files
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


# ---- output checks before any work, and replacing only our own outputs -----------------------


def _saved_model(folder, marker="old"):
    """A folder laid out as a SavedModel export writes it."""
    os.makedirs(os.path.join(folder, "variables"))
    os.makedirs(os.path.join(folder, "assets"))
    for name in ("saved_model.pb", "fingerprint.pb", "variables/variables.index"):
        with open(os.path.join(folder, name), "w") as f:
            f.write(marker)
    with open(os.path.join(folder, "variables", "variables.data-00000-of-00001"), "w") as f:
        f.write(marker)


def test_saved_model_foreign_names_the_first_file_that_is_not_ours(tmp_path):
    folder = tmp_path / "serving"
    _saved_model(folder)
    assert files.saved_model_foreign(folder) is None
    (folder / "assets" / "vocab.txt").write_text("mine")
    assert files.saved_model_foreign(folder) == os.path.join("assets", "vocab.txt")
    (folder / "assets" / "vocab.txt").unlink()
    (folder / "variables" / "notes.txt").write_text("mine")
    assert files.saved_model_foreign(folder) == os.path.join("variables", "notes.txt")
    other = tmp_path / "other"
    other.mkdir()
    (other / "variables").mkdir()  # no saved_model.pb: not a SavedModel
    assert files.saved_model_foreign(other) == "variables"


def test_check_output_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    check = functools.partial(files.check_output_folder, foreign=files.saved_model_foreign, what="SavedModel")
    assert check("new/deeper/serving") == "new/deeper/serving" and not os.path.exists("new")
    os.mkdir("empty")
    check("empty")  # an empty folder is free
    _saved_model(tmp_path / "ours")
    with pytest.raises(FileExistsError, match=r"holds an earlier SavedModel; pass overwrite=True"):
        check("ours")
    check("ours", overwrite=True)
    with pytest.raises(FileExistsError, match=r"pass --overwrite to replace it"):
        check("ours", option="--overwrite")
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "thesis.tex").write_text("years of work")
    for overwrite in (False, True):
        with pytest.raises(
            FileExistsError, match=r"not a SavedModel \(e.g. 'thesis.tex'\).*even with overwrite"
        ):
            check("mine", overwrite=overwrite)
    for path in (".", str(tmp_path), str(tmp_path.parent)):
        with pytest.raises(ValueError, match="is the current folder or holds it"):
            check(path, overwrite=True)
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(NotADirectoryError, match="is an existing file; a SavedModel is a folder"):
        check("notes.txt")
    with pytest.raises(
        NotADirectoryError,
        match=f"Cannot write '{tmp_path}/notes.txt/sub/out': '{tmp_path}/notes.txt' is a file",
    ):
        check("notes.txt/sub/out")
    with pytest.raises(PermissionError, match="no file can be created in '/proc'"):
        check("/proc/serving")
    with pytest.raises(ValueError, match="Not enough room for .*serving"):
        check("serving", size=2**62)


def test_check_output_file(tmp_path):
    target = tmp_path / "sub" / "model.tflite"
    assert files.check_output_file(target, suffix=".tflite") == str(target)
    with pytest.raises(ValueError, match=r"ending in '.tflite'. Received: path='x.tfl'"):
        files.check_output_file("x.tfl", suffix=".tflite")
    with pytest.raises(ValueError, match="must be a file path"):
        files.check_output_file(3)
    (tmp_path / "model.tflite").write_text("old")
    with pytest.raises(
        FileExistsError, match=f"'{tmp_path}/model.tflite' already exists; pass overwrite=True"
    ):
        files.check_output_file(tmp_path / "model.tflite")
    files.check_output_file(tmp_path / "model.tflite", overwrite=True)
    with pytest.raises(IsADirectoryError, match="is an existing folder"):
        files.check_output_file(tmp_path, overwrite=True)
    with pytest.raises(NotADirectoryError, match="model.tflite' is a file, not a folder"):
        files.check_output_file(tmp_path / "model.tflite" / "out.tflite")
    with pytest.raises(PermissionError, match="/proc"):
        files.check_output_file("/proc/out.tflite")
    assert sorted(os.listdir(tmp_path)) == ["model.tflite"]  # the write check leaves nothing


def test_replace_folder_swaps_our_output_and_never_a_users(tmp_path):
    target = tmp_path / "serving"
    for marker in ("first", "second"):
        with files.folder_beside(target) as tmp:
            _saved_model(tmp, marker)
            files.replace_folder(tmp, target, files.saved_model_foreign, what="SavedModel", overwrite=True)
        assert (target / "saved_model.pb").read_text() == marker
        assert sorted(os.listdir(tmp_path)) == ["serving"]  # no temporary or old folder left
    # A user's file appeared during the export: the old folder stays, the new one is dropped.
    with pytest.raises(FileExistsError, match="'notes.txt'"):
        with files.folder_beside(target) as tmp:
            _saved_model(tmp, "third")
            (target / "notes.txt").write_text("mine")
            files.replace_folder(tmp, target, files.saved_model_foreign, what="SavedModel", overwrite=True)
    assert (target / "saved_model.pb").read_text() == "second" and (target / "notes.txt").exists()
    assert sorted(os.listdir(tmp_path)) == ["serving"]


def test_folder_beside_removes_the_parents_it_made_on_failure(tmp_path):
    with pytest.raises(RuntimeError):
        with files.folder_beside(tmp_path / "a" / "b" / "serving") as tmp:
            assert os.path.isdir(tmp)
            raise RuntimeError("conversion failed")
    assert os.listdir(tmp_path) == []
