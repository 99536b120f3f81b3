"""The trainer's command lines as a user runs them: reruns, evaluation of a run, one-line mistakes.

Every command runs as a subprocess in a fresh folder of the user's. The runs train a
one-stage SK net on 16 x 16 crops of a folder of 24 generated images (two classes) for
one epoch: seconds of training; most of a command's time is importing TensorFlow.
"""

import json
import os
import struct

import numpy as np
import pytest

from tests.helpers import assert_one_line_error, folder_contents, run_as_user

TRAIN = ["-m", "training.train"]
EVALUATE = ["-m", "training.evaluate"]
TINY_MODEL = (
    '{"stage_depths": [1], "stem": "imagenet", "cardinality": 4, "bottleneck_width": 4, "min_dim": 8}'
)
CLASSES = ("circles", "squares")
# TensorFlow 2.21 writes these lines at its import whatever TF_CPP_MIN_LOG_LEVEL says (its C++
# logging starts after them); the commands import it through keras_sknet.utils.cli, which drops them.
TENSORFLOW_IMPORT_NOISE = ("All log messages before absl::InitializeLog()", "oneDNN custom operations are on")


def bmp(pixels):
    """A 24-bit BMP file of an RGB uint8 array (the trainer reads BMP like JPEG and PNG)."""
    height, width, _ = pixels.shape
    row = (width * 3 + 3) // 4 * 4
    rows = b"".join(pixels[y, :, ::-1].tobytes().ljust(row, b"\0") for y in reversed(range(height)))
    header = struct.pack("<2sIHHI", b"BM", 54 + len(rows), 0, 0, 54)
    info = struct.pack("<IiiHHIIiiII", 40, width, height, 1, 24, 0, len(rows), 2835, 2835, 0, 0)
    return header + info + rows


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    """photos/<split>/<class>/<image>.bmp: 8 training and 4 validation images per class."""
    root = tmp_path_factory.mktemp("photos")
    rng = np.random.default_rng(0)
    for split, count in (("train", 8), ("validation", 4)):
        for label, name in enumerate(CLASSES):
            folder = root / split / name
            folder.mkdir(parents=True)
            for i in range(count):
                pixels = rng.integers(0, 60, (20, 20, 3), dtype=np.uint8)
                pixels[4:16, 4:16, label] = 230  # the class is the colour of the square
                (folder / f"{i}.bmp").write_bytes(bmp(pixels))
    return str(root)


def tiny_run(photos, model_dir, *extra):
    """The arguments of a training run of seconds on the image folder."""
    return [
        *TRAIN,
        "--experiment",
        "scales_demo",
        "--model-dir",
        model_dir,
        "--data-dir",
        photos,
        "--set",
        "dataset=folder",
        "--set",
        f"model_kwargs={TINY_MODEL}",
        "--set",
        "image_size=16",
        "--set",
        "eval_image_size=16",
        "--batch-size",
        "8",
        "--epochs",
        "1",
        "--verbose",
        "0",
        *extra,
    ]


def assert_one_line_answer(result, *names):
    assert_one_line_error(result, *names)
    assert not any(noise in result.stderr for noise in TENSORFLOW_IMPORT_NOISE), result.stderr


@pytest.fixture(scope="module")
def rerun(photos, tmp_path_factory):
    """A command with a wrong model_kwargs key, then the corrected command, into the same folder."""
    home = tmp_path_factory.mktemp("user")
    wrong = tiny_run(photos, "run")
    wrong[wrong.index(f"model_kwargs={TINY_MODEL}")] = 'model_kwargs={"stage_depth": [1]}'
    failed = run_as_user(wrong, home)
    left = folder_contents(home / "run") if (home / "run").exists() else None
    corrected = run_as_user(tiny_run(photos, "run"), home)
    return home, failed, left, corrected


def test_a_run_that_failed_before_its_first_step_leaves_the_folder_to_the_corrected_command(rerun):
    home, failed, left, corrected = rerun
    # The wrong key in one line, with the accepted ones, before any work (nothing written).
    assert_one_line_answer(failed, "'stage_depth'", "stage_depths", "SKNet()")
    assert not left
    assert corrected.returncode == 0, corrected.stderr[-3000:]
    config = json.loads((home / "run" / "config.json").read_text())
    assert config["model_kwargs"]["stage_depths"] == [1]


def test_evaluate_needs_only_the_run_directory(rerun, photos):
    home, _, _, corrected = rerun
    assert corrected.returncode == 0, corrected.stderr[-3000:]
    record = json.loads((home / "run" / "data.json").read_text())
    assert record["dataset"] == "folder" and record["data_dir"] == photos
    assert record["class_names"] == list(CLASSES) and record["eval_split"] == "validation"

    result = run_as_user([*EVALUATE, "--model-dir", "run"], home)
    assert result.returncode == 0, result.stderr[-3000:]
    evaluation = json.loads((home / "run" / "eval_16.json").read_text())
    assert evaluation["examples"] == 8 and evaluation["split"] == "validation"


def test_a_folder_run_is_labelled_with_its_folder_and_two_classes_get_no_top5(rerun, photos):
    home, _, _, corrected = rerun
    assert corrected.returncode == 0, corrected.stderr[-3000:]
    summary = json.loads((home / "run" / "summary.json").read_text())
    assert summary["dataset"] == photos
    assert f"scales_demo on {photos}: top-1" in corrected.stdout
    assert "top5" not in summary["final"] and "top-5" not in corrected.stdout
    with open(home / "run" / "metrics.csv") as f:
        assert "top5" not in f.readline()


def test_list_works_alone(tmp_path):
    result = run_as_user([*TRAIN, "--list"], tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "scales_demo" in result.stdout and "sknet50_imagenet" in result.stdout


@pytest.mark.parametrize(
    "arguments,names",
    [
        (["--set", "epoch=2"], ["'epoch=2'", "epochs"]),
        (["--set", "epochs=two"], ["'epochs=two'", "integer"]),
        (["--set", "model_kwargs=[1]"], ["model_kwargs", "JSON object"]),
        (["--set", "optimizer=adam"], ["optimizer", "'adam'", "sgd, adamw"]),
        (["--experiment", "sknet51"], ["'sknet51'", "sknet50_imagenet", "scales_demo"]),
    ],
    ids=["unknown-field", "bad-int", "bad-json", "bad-choice", "unknown-experiment"],
)
def test_a_mistake_is_one_line(arguments, names, tmp_path):
    command = [*TRAIN, "--experiment", "scales_demo", "--model-dir", "run", *arguments]
    result = run_as_user(command, tmp_path)
    assert_one_line_answer(result, *names)
    assert os.listdir(tmp_path) == []  # nothing written


def test_a_model_dir_under_a_regular_file_is_not_writable(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    result = run_as_user([*TRAIN, "--experiment", "scales_demo", "--model-dir", "notes.txt/run"], tmp_path)
    assert_one_line_answer(result, "notes.txt/run", "not writable", "is a file")
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_other_backends_and_a_missing_data_folder_are_one_line(tmp_path):
    torch = run_as_user([*TRAIN, "--experiment", "scales_demo"], tmp_path, KERAS_BACKEND="torch")
    assert_one_line_answer(torch, "KERAS_BACKEND='torch'", "tensorflow and jax")
    missing = run_as_user(
        [*TRAIN, "--experiment", "scales_demo", "--set", "dataset=folder", "--data-dir", "photos"], tmp_path
    )
    assert_one_line_answer(missing, "--data-dir 'photos'", "not a folder")
    assert os.listdir(tmp_path) == []


def test_a_users_files_in_model_dir_survive(tmp_path, photos):
    mine = tmp_path / "models"
    mine.mkdir()
    (mine / "notes.txt").write_text("my notes")
    (mine / "best.keras").write_bytes(b"my own model")
    before = folder_contents(mine)
    train = run_as_user(tiny_run(photos, "models"), tmp_path)
    assert_one_line_answer(train, "'models'", "best.keras", "notes.txt", "new or empty folder")
    demo = run_as_user(["-m", "training.demo", "--model-dir", "models"], tmp_path)
    assert_one_line_answer(demo, "'models'", "not a training run")
    assert folder_contents(mine) == before


def test_evaluate_speaks_the_command_lines_words(tmp_path):
    (tmp_path / "notes").mkdir()
    not_a_run = run_as_user([*EVALUATE, "--model-dir", "notes"], tmp_path)
    assert_one_line_answer(not_a_run, "--model-dir 'notes'", "no training run", "config.json")
    missing = run_as_user([*EVALUATE, "--model-dir", "nowhere"], tmp_path)
    assert_one_line_answer(missing, "--model-dir 'nowhere'", "not a folder")
    for result in (not_a_run, missing):
        assert "model_dir=" not in result.stderr and "data_dir=" not in result.stderr
