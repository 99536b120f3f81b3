"""The run directory: which folders a run may take, and when it claims one."""

import json
import os

import pytest

from training import run_dir


def test_new_empty_and_earlier_run_folders_are_taken(tmp_path):
    run_dir.check_run_dir(str(tmp_path / "new" / "deeper"))
    run_dir.check_run_dir(str(tmp_path))
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text(json.dumps({"name": "x", "model": "SKNet", "dataset": "folder"}))
    (run / "best.keras").write_bytes(b"ours")
    run_dir.check_run_dir(str(run))
    # What a run that failed at its first step leaves (an empty metrics.csv, logs/) is no claim.
    leftovers = tmp_path / "leftovers"
    (leftovers / "logs" / "train").mkdir(parents=True)
    (leftovers / "metrics.csv").write_text("")
    run_dir.check_run_dir(str(leftovers))
    # A multi-worker chief's run id, and the same being written (what another worker may list).
    (leftovers / "workers.json").write_text('{"run_id": [1, 2, 3]}')
    (leftovers / f".workers.json.{'a' * 32}.tmp").write_text("")
    run_dir.check_run_dir(str(leftovers))


def test_a_users_folder_is_refused_and_left_alone(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    (tmp_path / "config.json").write_text('{"learning": "my own settings"}')  # not a recipe
    with pytest.raises(FileExistsError, match=r"config.json, notes.txt\); nothing there is overwritten"):
        run_dir.check_run_dir(str(tmp_path))
    metrics = tmp_path / "metrics"
    metrics.mkdir()
    (metrics / "metrics.csv").write_text("epoch,loss\n0,1.0\n")  # a user's metrics, not an empty leftover
    with pytest.raises(FileExistsError):
        run_dir.check_run_dir(str(metrics))
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_paths_that_cannot_be_written(tmp_path):
    (tmp_path / "file").write_text("")
    with pytest.raises(NotADirectoryError, match="is a file"):
        run_dir.check_run_dir(str(tmp_path / "file"))
    # Under a regular file: not writable, even as root.
    with pytest.raises(NotADirectoryError, match=r"not writable: '.*file' is a file"):
        run_dir.check_run_dir(str(tmp_path / "file" / "a" / "run"))
    if os.geteuid() != 0:
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        with pytest.raises(PermissionError, match="not writable"):
            run_dir.check_run_dir(str(locked / "run"))


def test_claim_writes_the_recipe_and_the_data_record(tmp_path):
    class Info:
        train_split, eval_split, num_classes, class_names = "train", "validation", 2, ("a", "b")

    record = run_dir.data_record("folder", Info, data_dir="photos")
    assert record["data_dir"] == os.path.abspath("photos") and record["class_names"] == ["a", "b"]
    run_dir.claim_run_dir(str(tmp_path / "run"), {"name": "x", "model": "SKNet", "dataset": "folder"}, record)
    assert run_dir.is_run(str(tmp_path / "run"))
    assert run_dir.read_data_record(str(tmp_path / "run")) == record
    assert run_dir.read_data_record(str(tmp_path)) is None
    assert run_dir.dataset_label("folder", "photos") == os.path.abspath("photos")
    assert run_dir.dataset_label("cifar10", "/data/tfds") == "cifar10"

    class Other(Info):
        class_names = ("a", "c")

    with pytest.raises(ValueError, match=r"classes \['a', 'b'\]; the data given now has \['a', 'c'\]"):
        run_dir.check_same_classes(str(tmp_path / "run"), Other)
    run_dir.check_same_classes(str(tmp_path / "run"), Info)
