"""The exporters and the preset writer as users run them: their files survive, their mistakes get one line.

The command runs as a subprocess in a user's folder that already holds their
own files (`notes.txt`, another model in `models/`); every test asserts those
files are unchanged byte for byte. The models are tiny (a one-unit-per-stage
SKNet backbone at 32 px with a Dense head), as Sequential, functional and
subclassed models, the three ways users wrap a backbone (docs/backbones.md's
fine-tuning recipe is the Sequential one).
"""

import os
import shutil

import keras
import numpy as np
import pytest

from keras_sknet import export
from keras_sknet.applications import SKNet
from tests.helpers import assert_one_line_error, folder_contents, run_as_user

EXPORT = ["-m", "keras_sknet.export"]
SIZE = 32
CLASSES = 3


def backbone():
    return SKNet((1, 1), input_shape=(SIZE, SIZE, 3), weights=None, include_top=False, pooling="avg")


class Classifier(keras.Model):
    """A subclassed model around a backbone."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.backbone = backbone()
        self.head = keras.layers.Dense(CLASSES)

    def call(self, images):
        return self.head(self.backbone(images))


def build(kind):
    if kind == "sequential":
        return keras.Sequential([backbone(), keras.layers.Dense(CLASSES)])
    if kind == "functional":
        inputs = keras.Input((SIZE, SIZE, 3))
        return keras.Model(inputs, keras.layers.Dense(CLASSES)(backbone()(inputs)))
    model = Classifier()
    model(np.zeros((1, SIZE, SIZE, 3), "float32"))
    return model


def images(count=40):
    return np.random.default_rng(0).uniform(0, 255, (count, SIZE, SIZE, 3)).astype("float32")


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    """docs/backbones.md's fine-tuning model (a Sequential around a backbone), saved as users save it."""
    path = tmp_path_factory.mktemp("trained") / "classifier.keras"
    keras.utils.set_random_seed(0)
    build("sequential").save(path)
    return path


@pytest.fixture
def user(tmp_path, model_file):
    """A user's folder: their own files, the model they trained, and a few images."""
    (tmp_path / "notes.txt").write_text("my notes")
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "resnet.keras").write_bytes(b"another model of mine")
    shutil.copy(model_file, tmp_path / "classifier.keras")
    np.save(tmp_path / "images.npy", images())
    return tmp_path


def assert_kept(before, folder):
    """Every file the user had is still there, byte for byte."""
    after = folder_contents(folder)
    assert {name: after.get(name) for name in before} == before


# ---- the command line -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "fmt,output",
    [("tflite", "classifier.tflite"), ("onnx", "classifier.onnx"), ("saved_model", "classifier_saved_model")],
)
def test_cli_exports_a_sequential_model_and_replaces_it_only_when_asked(user, fmt, output):
    before = folder_contents(user)
    done = run_as_user([*EXPORT, "classifier.keras", "--format", fmt], user)
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"-> {output}" in done.stdout and "verified" in done.stdout
    assert_kept(before, user)
    first = folder_contents(user / output) if fmt == "saved_model" else (user / output).read_bytes()

    again = run_as_user([*EXPORT, "classifier.keras", "--format", fmt], user)
    assert_one_line_error(again, user / output, "--overwrite")
    second = folder_contents(user / output) if fmt == "saved_model" else (user / output).read_bytes()
    assert second == first
    if fmt == "saved_model":  # our own earlier SavedModel is replaced when asked
        done = run_as_user([*EXPORT, "classifier.keras", "--format", fmt, "--overwrite"], user)
        assert done.returncode == 0, done.stderr[-3000:]
        assert set(folder_contents(user / output)) == set(first)
    assert_kept(before, user)
    assert not [name for name in os.listdir(user) if name.startswith(".")]  # no temporary left


@pytest.mark.parametrize("overwrite", [[], ["--overwrite"]], ids=["asked", "overwrite"])
def test_cli_never_replaces_the_current_folder_or_a_users_folder(user, overwrite):
    parent = set(os.listdir(user.parent))
    before = folder_contents(user)
    for output in (".", str(user)):
        done = run_as_user(
            [*EXPORT, "classifier.keras", "--format", "saved_model", "--output", output, *overwrite], user
        )
        assert_one_line_error(done, str(user), "current folder")
    done = run_as_user(
        [*EXPORT, "classifier.keras", "--format", "saved_model", "--output", "models", *overwrite], user
    )
    assert_one_line_error(done, str(user / "models"), "resnet.keras")
    assert folder_contents(user) == before
    assert set(os.listdir(user.parent)) == parent  # no .old-xxxx left beside it


def test_cli_int8_default_names_say_the_input_type(user):
    common = [
        "classifier.keras",
        "--quantize",
        "int8",
        "--representative-data",
        "images.npy",
        "--num-calibration",
        "10",
    ]
    for extra, output in (
        ([], "classifier_int8.tflite"),
        (["--input-type", "uint8"], "classifier_int8_uint8.tflite"),
    ):
        done = run_as_user([*EXPORT, *common, *extra], user)
        assert done.returncode == 0, done.stderr[-3000:]
        assert f"-> {output}" in done.stdout and "top-1 agreement" in done.stdout
    assert (user / "classifier_int8.tflite").read_bytes() != (
        user / "classifier_int8_uint8.tflite"
    ).read_bytes()


def test_cli_output_path_is_checked_before_the_model_is_read(user):
    """An unwritable output is answered before any work: with a broken model file, the path is what is named."""
    (user / "broken.keras").write_bytes(b"not a model")
    before = folder_contents(user)
    for output, name in (("notes.txt/out.tflite", "notes.txt"), ("/proc/out.tflite", "/proc")):
        done = run_as_user([*EXPORT, "broken.keras", "--output", output], user)
        assert_one_line_error(done, name, "Cannot write")
        assert "not a Keras model" not in done.stderr
    (user / "old.tflite").write_bytes(b"my earlier export")
    done = run_as_user([*EXPORT, "broken.keras", "--output", "old.tflite"], user)
    assert_one_line_error(done, user / "old.tflite", "already exists", "--overwrite")
    assert_kept(before, user)
    assert (user / "old.tflite").read_bytes() == b"my earlier export"


@pytest.mark.parametrize(
    "args,names",
    [
        (["missing.keras"], ["missing.keras", "No model file"]),
        (["classifier.keras", "--quantize", "int4"], ["int4", "--quantize"]),
        (["classifier.keras", "--min-agreement", "95"], ["95", "--min-agreement"]),
        (["classifier.keras", "--quantize", "int8", "--min-agreement", "1.5"], ["1.5"]),
        (["classifier.keras", "--output", "model.tfl"], ["model.tfl", ".tflite"]),
        (
            ["classifier.keras", "--format", "saved_model", "--output", "notes.txt"],
            ["notes.txt", "existing file"],
        ),
    ],
)
def test_cli_mistakes_are_one_line(user, args, names):
    before = folder_contents(user)
    assert_one_line_error(run_as_user([*EXPORT, *args], user), *names)
    assert folder_contents(user) == before


def test_cli_on_jax_says_it_needs_tensorflow(user):
    pytest.importorskip("jax")
    before = folder_contents(user)
    done = run_as_user([*EXPORT, "classifier.keras"], user, KERAS_BACKEND="jax")
    assert_one_line_error(done, "TensorFlow backend", "KERAS_BACKEND=tensorflow")
    assert folder_contents(user) == before


def test_cli_help_lists_the_new_options(tmp_path):
    done = run_as_user([*EXPORT, "--help"], tmp_path)
    assert done.returncode == 0 and "--overwrite" in done.stdout and "--min-agreement" in done.stdout


# ---- the Python API ---------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["sequential", "functional", "subclassed"])
def test_every_kind_of_model_exports_in_every_format(kind, tmp_path):
    model = build(kind)
    expected = model(images(4) / 255, training=False)
    for result in (
        export.to_tflite(model, tmp_path / "m.tflite"),
        export.to_onnx(model, tmp_path / "m.onnx"),
        export.to_saved_model(model, tmp_path / "m_saved_model"),
        export.to_saved_model(model, tmp_path / "m_frozen", freeze=True),
    ):
        assert result.passed, result.summary()
    assert sorted(os.listdir(tmp_path)) == ["m.onnx", "m.tflite", "m_frozen", "m_saved_model"]
    x = images(4) / 255
    outputs = export.run_tflite(export.make_interpreter((tmp_path / "m.tflite").read_bytes()), x[:1])
    np.testing.assert_allclose(outputs, np.asarray(expected)[:1], atol=1e-4)
    np.testing.assert_allclose(export.frozen_function(model)(x).numpy(), expected, atol=1e-4)


def test_python_exports_replace_existing_outputs_only_when_asked(tmp_path):
    model = build("functional")
    (tmp_path / "m.tflite").write_bytes(b"my earlier export")
    (tmp_path / "m.onnx").write_bytes(b"my earlier export")
    export.to_saved_model(model, tmp_path / "m_saved_model")
    before = folder_contents(tmp_path)
    for write, name in (
        (export.to_tflite, "m.tflite"),
        (export.to_onnx, "m.onnx"),
        (export.to_saved_model, "m_saved_model"),
    ):
        with pytest.raises(FileExistsError, match=f"'{tmp_path / name}'.*pass overwrite=True"):
            write(model, tmp_path / name)
    assert folder_contents(tmp_path) == before
    result = export.to_tflite(model, tmp_path / "m.tflite", overwrite=True)
    assert (tmp_path / "m.tflite").read_bytes() == result.content
    assert export.to_saved_model(model, tmp_path / "m_saved_model", overwrite=True).passed
    assert sorted(os.listdir(tmp_path)) == ["m.onnx", "m.tflite", "m_saved_model"]
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "thesis.tex").write_text("years of work")
    with pytest.raises(FileExistsError, match="'thesis.tex'.*even with overwrite=True"):
        export.to_saved_model(model, mine, overwrite=True)
    assert (mine / "thesis.tex").read_text() == "years of work"


def test_python_output_path_is_checked_before_the_model_is_loaded(tmp_path, monkeypatch):
    (tmp_path / "notes.txt").write_text("mine")
    monkeypatch.setattr(
        export.common, "load_model", lambda model: pytest.fail("loaded before the path check")
    )
    for write, name in (
        (export.to_tflite, "m.tflite"),
        (export.to_onnx, "m.onnx"),
        (export.to_saved_model, "m"),
    ):
        with pytest.raises(NotADirectoryError, match="notes.txt' is a file, not a folder"):
            write(tmp_path / "model.keras", tmp_path / "notes.txt" / name)
        with pytest.raises(PermissionError, match="/proc"):
            write(tmp_path / "model.keras", f"/proc/{name}")


def test_a_model_that_predicts_one_class_is_written_but_not_judged(tmp_path):
    """The agreement check cannot judge a model that predicts one class for every image: it says so."""
    model = build("functional")
    head = model.layers[-1]
    head.set_weights([np.zeros_like(head.kernel), np.array([10.0, 0.0, 0.0], "float32")])
    result = export.to_tflite(model, tmp_path / "m.tflite", quantize="dynamic", representative_data=images())
    assert not result.passed and (tmp_path / "m.tflite").exists()
    assert "NOT verified" in result.summary() and "predicts class 0 for every image" in result.summary()


def test_preset_from_weights_never_replaces_a_users_folder(tmp_path):
    from keras_sknet.hub import preset_from_weights

    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "config.json").write_text("my own config")
    for overwrite in (False, True):
        with pytest.raises(FileExistsError, match="not a keras-hub preset"):
            preset_from_weights("SKNet26", None, mine, classes=5, image_size=32, overwrite=overwrite)
    assert folder_contents(mine) == {"config.json": b"my own config"}

    preset = tmp_path / "sknet26"
    preset_from_weights("SKNet26", None, preset, classes=5, image_size=32)
    first = folder_contents(preset)
    with pytest.raises(FileExistsError, match="holds an earlier keras-hub preset; pass overwrite=True"):
        preset_from_weights("SKNet26", None, preset, classes=5, image_size=32)
    assert folder_contents(preset) == first
    preset_from_weights("SKNet26", None, preset, classes=5, image_size=32, overwrite=True)
    assert set(folder_contents(preset)) == set(first)
    assert sorted(os.listdir(tmp_path)) == ["mine", "sknet26"]
