"""Fixtures of the data tests: tiny TFDS datasets and an image folder, built once per session."""

import logging
import os

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

import training.data  # noqa: F401  (registers scales_demo)
from tests.training import builders
from tests.training.helpers import BAD_FILES, FOLDER_FILES


@pytest.fixture(scope="session")
def tfds_dir(tmp_path_factory):
    """A TFDS data dir with tiny_jpegs, tiny_cifar and scales_demo/tiny prepared."""
    data_dir = str(tmp_path_factory.mktemp("tfds"))
    logging.getLogger("absl").setLevel(logging.ERROR)
    tfds.disable_progress_bar()
    for name in ("tiny_jpegs", "tiny_cifar", "scales_demo/tiny"):
        tfds.builder(name, data_dir=data_dir).download_and_prepare()
    return data_dir


def write(path, data):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)


def encode(kind, image):
    gray = image.mean(axis=-1, keepdims=True).astype(np.uint8)
    alpha = np.full(image.shape[:2] + (1,), 90, np.uint8)
    if kind == "jpeg":
        return tf.io.encode_jpeg(image, quality=95).numpy()
    if kind == "gray_jpeg":
        return tf.io.encode_jpeg(gray, quality=95).numpy()
    if kind == "png":
        return tf.io.encode_png(image).numpy()
    if kind == "rgba_png":
        return tf.io.encode_png(np.concatenate([image, alpha], axis=-1)).numpy()
    if kind == "gray_png":
        return tf.io.encode_png(gray).numpy()
    if kind == "gray_alpha_png":
        return tf.io.encode_png(np.concatenate([gray, alpha], axis=-1)).numpy()
    raise ValueError(kind)


@pytest.fixture(scope="session")
def image_folder(tmp_path_factory):
    """root/<class>/... with JPEG, PNG, grayscale, RGBA files, 3 undecodable ones and a text file."""
    root = str(tmp_path_factory.mktemp("folder"))
    rng = np.random.default_rng(0)
    for i, (name, (label, kind)) in enumerate(sorted(FOLDER_FILES.items())):
        image = builders.labelled_image(label, 40 + 4 * i, 56, rng)
        write(os.path.join(root, name), encode(kind, image))
    good = tf.io.encode_jpeg(builders.labelled_image(0, 48, 48, rng)).numpy()
    write(os.path.join(root, BAD_FILES[0]), good[: len(good) // 2])
    write(os.path.join(root, BAD_FILES[1]), b"")
    write(os.path.join(root, BAD_FILES[2]), b"GIF89a but not really")
    write(os.path.join(root, "blue", "README.txt"), b"not an image, ignored")
    return root
