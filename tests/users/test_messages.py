"""A user's mistakes with the Python API, each answered in one line before any long work.

Each mistake is made as a user makes it (the model functions, `weights=` with a real file
that is wrong in one way), and the answer must be one line that names the value, with no
array values in it, found before the model is built: no layer is created (a full-size
SKNet50 would take seconds to build, a checkpoint seconds to read).
"""

import os
import shutil
import subprocess
import sys

import keras
import numpy as np
import pytest

from keras_sknet import applications
from keras_sknet.weights import save_safetensors
from tests.helpers import folder_contents, subprocess_environment

# What a message with array values in it looks like (Keras' own dump: "value=[[..." / "array(").
ARRAY_DUMP_SIGNS = ("array(", "value=", "[[", "numpy=")
MAX_MESSAGE_CHARS = 600


def tiny(bottleneck_width=4, stage_depths=(1, 1), **kwargs):
    """The smallest SKNet: CIFAR stem, 32 px, a few thousand weights."""
    kwargs.setdefault("input_shape", (32, 32, 3))
    kwargs.setdefault("classes", 10)
    return applications.SKNet(
        stage_depths, min_dim=4, stem="cifar", cardinality=4, bottleneck_width=bottleneck_width, **kwargs
    )


@pytest.fixture
def layers_created(monkeypatch):
    """A counter of the Keras layers created from now on (to tell a check from a build)."""
    created = []
    original = keras.layers.Layer.__init__

    def counting_init(self, *args, **kwargs):
        created.append(type(self).__name__)
        original(self, *args, **kwargs)

    monkeypatch.setattr(keras.layers.Layer, "__init__", counting_init)
    return created


def assert_one_line(error, *names):
    """The user's answer: one line, naming each of `names`, without array values."""
    message = str(error.value)
    assert "\n" not in message.strip(), f"more than one line:\n{message[:3000]}"
    assert len(message) <= MAX_MESSAGE_CHARS, f"{len(message)} characters: {message[:3000]}"
    for sign in ARRAY_DUMP_SIGNS:
        assert sign not in message, f"array values in the message: {message}"
    for name in names:
        assert str(name) in message, f"{name!r} not named in: {message}"
    return message


# --- arguments: told before anything is built or read ----------------------------------------------


@pytest.mark.parametrize(
    "call, names",
    [
        # Channels-first, as PyTorch users write it: not "at least 32x32".
        (lambda: applications.SKNet50(input_shape=(3, 224, 224)), ["channels-last", "(3, 224, 224)"]),
        (
            lambda: applications.SKNet50(include_top=False, input_shape=(3, None, None)),
            ["channels-first", "(3, None, None)"],
        ),
        (lambda: applications.SKNet50(input_shape=224), ["input_shape=224", "(height, width, channels)"]),
        (lambda: applications.SKNet50(input_shape=(16, 16, 3)), ["at least 32x32", "(16, 16, 3)"]),
        # A typo of "imagenet" is not a missing file: the accepted values are named.
        (lambda: applications.SKNet50(weights="imagnet"), ["'imagnet'", "did you mean 'imagenet'", ".pth"]),
        (lambda: applications.SKNet50(weights=3), ["weights=3", "'imagenet'", ".weights.h5"]),
        # Checked before the download would start (no network is needed to be told).
        (lambda: applications.SKNet50(weights="imagenet", classes=10), ["classes=10", "1000"]),
        (lambda: applications.SKNet50(weights="imagenet", input_shape=(224, 224, 1)), ["3 channels", "1"]),
        (lambda: applications.SKNet50(weights="imagenet", input_shape=(3, 224, 224)), ["channels-first"]),
    ],
)
def test_argument_mistakes(call, names, layers_created):
    with pytest.raises(ValueError) as error:
        call()
    assert_one_line(error, *names)
    assert layers_created == [], "the model was built before the mistake was found"


def test_a_folder_as_weights(tmp_path, layers_created):
    folder = tmp_path / "my_weights"
    folder.mkdir()
    with pytest.raises(ValueError) as error:
        applications.SKNet50(weights=str(folder))
    message = assert_one_line(error, str(folder), "is a folder", "'imagenet'", ".weights.h5", ".safetensors")
    assert "no such file" not in message.lower()
    assert layers_created == []


# --- weights files that are wrong in one way ------------------------------------------------------


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """Real small files: a tiny model's weights and .keras archive, another architecture's, ..."""
    folder = tmp_path_factory.mktemp("user_files")
    model = tiny()
    model.save_weights(folder / "tiny.weights.h5")
    model.save(folder / "tiny.keras")
    tiny(bottleneck_width=8).save_weights(folder / "other.weights.h5")
    tiny(bottleneck_width=8).save(folder / "other.keras")
    tiny(stage_depths=(1, 2)).save_weights(folder / "deeper.weights.h5")
    save_safetensors(folder / "tiny.safetensors", {"conv1.weight": np.ones((64, 3, 7, 7), "float32")})
    return folder


def _cut(source, target, fraction=0.5):
    data = source.read_bytes()
    target.write_bytes(data[: int(len(data) * fraction)])
    return target


@pytest.mark.parametrize(
    "make, names",
    [
        (lambda d, t: _cut(d / "tiny.weights.h5", t / "cut.weights.h5"), ["cut.weights.h5", "truncated"]),
        (lambda d, t: _cut(d / "tiny.keras", t / "cut.keras"), ["cut.keras", "truncated"]),
        (lambda d, t: _cut(d / "tiny.safetensors", t / "cut.safetensors"), ["cut.safetensors", "truncated"]),
        (lambda d, t: _cut(d / "tiny.weights.h5", t / "x.weights.h5", 0), ["x.weights.h5", "empty"]),
        (lambda d, t: _cut(d / "tiny.weights.h5", t / "x.pth", 0), ["x.pth", "empty"]),
        (lambda d, t: _cut(d / "tiny.weights.h5", t / "x.caffemodel", 0), ["x.caffemodel", "empty"]),
        # Not what its name says: told what it holds.
        (
            lambda d, t: shutil.copy(d / "tiny.weights.h5", t / "renamed.pth"),
            ["renamed.pth", "not a PyTorch checkpoint", "HDF5"],
        ),
        (
            lambda d, t: shutil.copy(d / "tiny.keras", t / "renamed.safetensors"),
            ["renamed.safetensors", "Keras model archive"],
        ),
        (
            lambda d, t: (t / "page.weights.h5").write_text("<html>Sign in to download</html>"),
            ["page.weights.h5", "not a Keras weights file", "text"],
        ),
        # A name we do not know.
        (
            lambda d, t: (t / "notes.txt").write_text("my notes"),
            ["notes.txt", "not a recognised weights file", ".weights.h5", ".caffemodel"],
        ),
    ],
)
def test_broken_or_misnamed_files(files, tmp_path, make, names, layers_created):
    make(files, tmp_path)
    (path,) = tmp_path.iterdir()
    build = applications.SKNet50 if path.suffix == ".caffemodel" else tiny  # the Caffe release's model
    with pytest.raises(ValueError) as error:
        build(weights=str(path))
    assert_one_line(error, *names)
    assert layers_created == []


def test_truncated_caffemodel_is_told_before_the_build(tmp_path, layers_created):
    # A NetParameter ("sknet") whose first layer says 50 bytes and holds 7: a cut download.
    path = tmp_path / "SKNet-50.caffemodel"
    path.write_bytes(b"\x0a\x05sknet" + b"\xa2\x06\x32" + b"\x0a\x05conv1")
    with pytest.raises(ValueError) as error:
        applications.SKNet50(weights=str(path))
    assert_one_line(error, "SKNet-50.caffemodel", "truncated")
    assert layers_created == []


TORCH_SAVE = """
import sys, torch
state = {"conv1.weight": torch.ones(64, 3, 7, 7), "fc.weight": torch.ones(10, 64)}
torch.save(state, sys.argv[1])
torch.save(state, sys.argv[2], _use_new_zipfile_serialization=False)
"""


@pytest.fixture(scope="module")
def torch_files(tmp_path_factory):
    """A small state dict saved by torch (zip and legacy pickle), in a process that imports only torch."""
    pytest.importorskip("torch")
    folder = tmp_path_factory.mktemp("torch_files")
    zipped, legacy = folder / "state.pth", folder / "legacy.pth"
    subprocess.run(
        [sys.executable, "-c", TORCH_SAVE, str(zipped), str(legacy)],
        check=True,
        env=subprocess_environment(),
        timeout=120,
    )
    return zipped, legacy


def test_truncated_pth_says_truncated(torch_files, tmp_path, layers_created):
    zipped, legacy = torch_files
    # torch.save's zip without its end: found from the file alone, before torch is imported.
    cut = _cut(zipped, tmp_path / "cut.pth", 0.9)
    with pytest.raises(ValueError) as error:
        tiny(weights=str(cut))
    message = assert_one_line(error, "cut.pth", "truncated")
    assert "not a PyTorch checkpoint" not in message
    # The legacy pickle format: torch reads it and stops at its end.
    cut = _cut(legacy, tmp_path / "cut_legacy.pth", 0.9)
    with pytest.raises(ValueError) as error:
        tiny(weights=str(cut))
    assert_one_line(error, "cut_legacy.pth", "truncated")
    assert layers_created == []


# --- Keras files of another model: what the file holds, never its values --------------------------


def test_foreign_weights_file_is_named_in_one_line(files):
    with pytest.raises(ValueError) as error:
        tiny(weights=str(files / "other.weights.h5"))
    assert_one_line(error, "other.weights.h5", "another architecture", "arrays in the file", "first")


def test_weights_of_a_deeper_model_are_refused_not_loaded_in_part(files):
    # Keras itself loads such a file without a word, leaving the model half loaded.
    with pytest.raises(ValueError) as error:
        tiny(weights=str(files / "deeper.weights.h5"))
    assert_one_line(error, "deeper.weights.h5", "another architecture", "not in the model")


def test_a_whole_model_of_another_architecture(files):
    with pytest.raises(ValueError) as error:
        tiny(weights=str(files / "other.keras"))
    assert_one_line(error, "other.keras", "whole saved Keras model", "keras.saving.load_model")


def test_files_that_fit_still_load(files, rng):
    reference = keras.saving.load_model(files / "tiny.keras")
    x = rng.normal(size=(2, 32, 32, 3)).astype("float32")
    for name in ("tiny.weights.h5", "tiny.keras"):
        model = tiny(weights=str(files / name))
        np.testing.assert_allclose(model(x, training=False), reference(x, training=False), atol=1e-6)
    # A file with a classifier fits the same model without one (keras.applications' way).
    headless = tiny(weights=str(files / "tiny.weights.h5"), include_top=False)
    features = keras.Model(reference.input, reference.get_layer("conv3_block1").output)
    np.testing.assert_allclose(headless(x, training=False), features(x, training=False), atol=1e-6)


# --- the converter's output: checked before any work, a user's file never replaced unasked --------


def test_converter_output_is_checked_before_the_conversion(tmp_path):
    from keras_sknet.weights import check_output_file

    (tmp_path / "mine.weights.h5").write_bytes(b"the user's own weights")
    (tmp_path / "folder.weights.h5").mkdir()
    before = folder_contents(tmp_path)
    cases = [
        ("mine.weights.h5", FileExistsError, ["mine.weights.h5", "already exists", "overwrite"]),
        ("folder.weights.h5", IsADirectoryError, ["folder.weights.h5", "existing folder"]),
        ("mine.weights.h5/x.weights.h5", NotADirectoryError, ["mine.weights.h5", "is a file"]),
        ("x.h5", ValueError, ["x.h5", ".weights.h5"]),
    ]
    for name, kind, names in cases:
        with pytest.raises(kind) as error:
            check_output_file(str(tmp_path / name))
        assert_one_line(error, *names)
    assert folder_contents(tmp_path) == before
    assert check_output_file(str(tmp_path / "mine.weights.h5"), overwrite=True).endswith("mine.weights.h5")
    assert check_output_file(str(tmp_path / "new.weights.h5")).endswith("new.weights.h5")
    # A missing folder is created when the file is written (as `mkdir -p`), not refused.
    assert check_output_file(str(tmp_path / "new" / "x.weights.h5")).endswith("x.weights.h5")
    with pytest.raises(ValueError) as error:
        check_output_file(str(tmp_path / "new.weights.h5"), size_bytes=1 << 62)
    assert_one_line(error, "new.weights.h5", "MiB free")
    assert folder_contents(tmp_path) == before  # the probe file is gone


def test_converter_output_in_an_unwritable_folder(tmp_path):
    from keras_sknet.weights import check_output_file

    folder = tmp_path / "read_only"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        if os.access(folder, os.W_OK):  # root writes anywhere a mode allows: use a folder no one can
            if not os.path.isdir("/proc"):
                pytest.skip("running as root without /proc: no unwritable folder to try")
            folder = "/proc"
        target = os.path.join(folder, "sknet50.weights.h5")
        with pytest.raises(PermissionError) as error:
            check_output_file(target)
        assert_one_line(error, target, "no file can be created")
    finally:
        (tmp_path / "read_only").chmod(0o755)


def test_a_channels_last_shape_that_starts_small_is_not_called_channels_first():
    # SKNet29 takes inputs down to 4x4: (4, 32, 32) is 4 rows of 32 columns and 32 channels.
    model = applications.SKNet29(input_shape=(4, 32, 32), include_top=False)
    assert model.input_shape == (None, 4, 32, 32)
