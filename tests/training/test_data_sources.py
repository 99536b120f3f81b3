"""Sources and bad input: dataset names, missing TFDS downloads, image folders with bad files."""

import logging
import os

import numpy as np
import pytest
import requests
import tensorflow as tf
import tensorflow_datasets as tfds

from tests.training.helpers import BAD_FILES, FOLDER_FILES
from training.data import SUPPORTED_DATASETS, DatasetUnavailableError, dataset_info, make_dataset
from training.data import folder as folder_lib
from training.data.catalog import resolve

IMAGENET_MEAN = np.array([0.485, 0.456, 0.406]) * 255
IMAGENET_STD = np.array([0.229, 0.224, 0.225]) * 255
COLOURS = {"red": 0, "green": 1, "blue": 2}  # class folder -> strongest channel


def test_unknown_dataset_lists_the_supported_ones():
    with pytest.raises(ValueError) as error:
        make_dataset("imagenet2021", "train", 8)
    message = str(error.value)
    assert "imagenet2021" in message
    for name in SUPPORTED_DATASETS:
        assert name in message


def test_known_names_resolve_with_configs_and_versions():
    assert resolve("imagenette/320px-v2").style == "imagenet"
    assert resolve("cifar100:3.0.2").style == "cifar" and resolve("cifar10").image_size == 32
    assert resolve("imagenet2012").eval_split == "validation"
    assert resolve("mnist") is None  # another TFDS dataset: decided from its images


def test_missing_download_without_download_explains_data_dir(tmp_path):
    with pytest.raises(DatasetUnavailableError, match="data_dir") as error:
        make_dataset("cifar10", "train", 8, data_dir=str(tmp_path), download=False)
    assert "tfds build cifar10" in str(error.value)
    assert not any(tmp_path.rglob("*.tfrecord*"))


def test_imagenet_without_manual_download_explains_manual_dir(tmp_path):
    manual = tmp_path / "tars"
    with pytest.raises(DatasetUnavailableError) as error:
        make_dataset("imagenet2012", "validation", 8, data_dir=str(tmp_path / "tfds"), manual_dir=str(manual))
    message = str(error.value)
    assert "manual_dir" in message and str(manual) in message and "ILSVRC2012_img_val.tar" in message
    assert "data_dir" in message


def test_download_without_network_explains_manual_dir_and_data_dir(tmp_path, monkeypatch):
    def offline(self, *args, **kwargs):
        raise requests.exceptions.ConnectionError("Failed to resolve 'www.cs.toronto.edu'")

    monkeypatch.setattr(tfds.core.DatasetBuilder, "download_and_prepare", offline)
    with pytest.raises(DatasetUnavailableError) as error:
        dataset_info("cifar10", data_dir=str(tmp_path))
    message = str(error.value)
    assert "ConnectionError" in message and "network" in message
    assert "data_dir" in message and "manual_dir" in message


def test_folder_lists_classes_and_a_stable_hash_split(image_folder):
    folder = folder_lib.list_image_folder(image_folder, validation_fraction=0.3)
    assert folder.class_names == ("blue", "green", "red")
    assert folder.hashed_splits and folder.splits == ("train", "validation", "all")
    everything = {path for path, _ in folder.files["all"]}
    assert len(everything) == len(FOLDER_FILES) + len(BAD_FILES)  # README.txt is not an image
    train = {path for path, _ in folder.files["train"]}
    validation = {path for path, _ in folder.files["validation"]}
    assert train | validation == everything and not train & validation
    for path, label in folder.files["all"]:
        assert folder.class_names[label] == os.path.relpath(path, image_folder).split(os.sep)[0]
    # The split of a file depends only on its path: listing again gives the same split.
    assert folder_lib.list_image_folder(image_folder, validation_fraction=0.3).files == folder.files


def test_folder_with_split_folders(tmp_path, image_folder):
    for split, classes in (("train", ("red", "green")), ("val", ("red", "blue"))):
        for name in classes:
            os.makedirs(tmp_path / split / name)
            source = os.path.join(image_folder, name, "rgb.jpg")
            os.symlink(source, tmp_path / split / name / "a.jpg")
    info = dataset_info("folder", data_dir=str(tmp_path))
    assert info.class_names == ("blue", "green", "red")  # the same indices in every split
    assert info.splits == {"train": 2, "val": 2} and info.eval_split == "val"


def test_folder_skips_undecodable_files_and_counts_them(image_folder, caplog):
    with caplog.at_level(logging.WARNING, logger="training.data.folder"):
        ds = make_dataset("folder", "all", 4, image_size=24, data_dir=image_folder, training=False)
    message = caplog.text
    assert f"Skipped {len(BAD_FILES)} of {len(FOLDER_FILES) + len(BAD_FILES)}" in message
    for name in BAD_FILES:
        assert name in message
    images = np.concatenate([x.numpy() for x, _ in ds])
    labels = np.concatenate([y.numpy() for _, y in ds])
    assert images.shape == (len(FOLDER_FILES), 24, 24, 3)
    # Gray, gray + alpha, RGBA and PNG files are all RGB now, and the colours follow the classes.
    raw = images * IMAGENET_STD + IMAGENET_MEAN
    expected = np.array([COLOURS[("blue", "green", "red")[label]] for label in labels])
    colourful = raw.std(axis=-1).mean(axis=(1, 2)) > 20
    assert colourful.sum() == sum(1 for _, kind in FOLDER_FILES.values() if "gray" not in kind)
    np.testing.assert_array_equal(raw[colourful].mean(axis=(1, 2)).argmax(-1), expected[colourful])
    assert np.abs(raw[~colourful] - raw[~colourful][..., :1]).max() < 1e-3


def test_folder_strict_raises_on_undecodable_files(image_folder):
    with pytest.raises(ValueError, match=f"{len(BAD_FILES)} of .* cannot be decoded") as error:
        make_dataset("folder", "all", 4, data_dir=image_folder, strict=True)
    for name in BAD_FILES:
        assert name in str(error.value)


def test_folder_without_validation_drops_bad_files_while_reading(image_folder):
    ds = make_dataset(
        "folder", "all", 4, image_size=24, data_dir=image_folder, training=True, seed=0, validate_files=False
    )
    assert sum(len(x) for x, _ in ds) == 8  # 10 good files, the last partial batch dropped
    ds = make_dataset(
        "folder",
        "all",
        4,
        image_size=24,
        data_dir=image_folder,
        training=False,
        validate_files=False,
        style="cifar",
    )
    assert sum(len(x) for x, _ in ds) == len(FOLDER_FILES)


def test_folder_training_and_sharding(image_folder):
    ds = make_dataset("folder", "all", 2, image_size=32, data_dir=image_folder, training=True, seed=1)
    assert sum(len(x) for x, _ in ds) == len(FOLDER_FILES)
    sizes = []
    for pipeline in range(2):
        context = tf.distribute.InputContext(
            num_input_pipelines=2, input_pipeline_id=pipeline, num_replicas_in_sync=2
        )
        shard = make_dataset(
            "folder", "all", 2, image_size=32, data_dir=image_folder, training=False, input_context=context
        )
        sizes.append(sum(len(x) for x, _ in shard))
    assert sizes == [5, 5]


@pytest.mark.parametrize(
    ("layout", "match"),
    [("missing", "does not exist"), ("empty", "No class folders"), ("no_images", "No image files")],
)
def test_bad_folders(tmp_path, layout, match):
    root = tmp_path / "root"
    if layout != "missing":
        root.mkdir()
    if layout == "no_images":
        (root / "cat").mkdir()
        (root / "cat" / "notes.txt").write_text("x")
    with pytest.raises(ValueError, match=match):
        make_dataset("folder", "train", 4, data_dir=str(root))


def test_folder_needs_data_dir():
    with pytest.raises(ValueError, match="data_dir"):
        make_dataset("folder", "train", 4)


def test_unknown_folder_split(image_folder):
    with pytest.raises(ValueError, match=r"split='test'.*'train', 'validation', 'all'"):
        make_dataset("folder", "test", 4, data_dir=image_folder)


def test_unprepared_scales_demo_without_download_says_it_is_generated_locally(tmp_path):
    with pytest.raises(DatasetUnavailableError, match="generated locally") as error:
        make_dataset("scales_demo/tiny", "train", 8, data_dir=str(tmp_path), download=False)
    assert str(tmp_path) in str(error.value)
