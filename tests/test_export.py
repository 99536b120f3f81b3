"""Export: SavedModel and TFLite (float32, float16, dynamic, int8), checked with LiteRT.

Models are small (a one-block-per-stage SKNet at 32x32, ShuffleNetV2 0.5x + SK
at 64x64) with randomised BatchNorm statistics, so that folding BN into the
convolutions is really tested. For the top-1 agreement checks, the classifier of
the tiny SKNet is fitted (least squares on its pooled features) to synthetic
images whose class sets their colour and stripe direction: its predictions
follow the images (every class is predicted), so a broken quantization shows up
as disagreement; `test_int8_check_fails_on_bad_calibration` shows that it does.
"""

import os
import re
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_sknet import export
from keras_sknet.applications import ShuffleNetV2, SKNet, SKNet50, preprocess_input
from keras_sknet.layers.phases import subsample
from tests.helpers import randomize_batch_norms, run_as_user
from tests.support import synthetic

# Tests marked `kernels` run again on TensorFlow's Eigen kernels (scripts/test.sh's
# second pass): those whose numbers depend on the kernels; files, command lines and
# fault handling are the same code on both libraries.
KERNELS = pytest.mark.kernels

CLASSES = 10
SIZE = 32


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


def class_images(count, size=SIZE, seed=0):
    return synthetic.class_images(count, size, seed, num_classes=CLASSES)


def fit_classifier(model, images, labels):
    synthetic.fit_classifier(model, images, labels, num_classes=CLASSES)


def tiny_sknet(**kwargs):
    # One SK unit per stage: grouped (G=32) K3 and dilated K5 paths, strided in stage 2.
    return SKNet((1, 1), input_shape=(SIZE, SIZE, 3), classes=CLASSES, **kwargs)


@pytest.fixture(scope="module")
def fitted():
    """The tiny SKNet with random BN statistics and a fitted classifier, and held-out images."""
    keras.utils.set_random_seed(0)
    model = tiny_sknet()
    randomize_batch_norms(model, np.random.default_rng(0))
    fit_classifier(model, *class_images(200, seed=1))
    images, labels = class_images(160, seed=2)
    predictions = model.predict(preprocess_input(images), verbose=0).argmax(-1)
    # The check is meaningful only if the model tells the images apart.
    assert len(np.unique(predictions)) == CLASSES and np.mean(predictions == labels) > 0.9
    return model, images


def litert_outputs(content, inputs):
    """Runs a flatbuffer with LiteRT directly, image by image (independent of export.run)."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=content)
    interpreter.allocate_tensors()
    runner = interpreter.get_signature_runner("serving_default")
    return np.concatenate([runner(images=x[None])["predictions"] for x in inputs])


def test_float32_shufflenet_sk_builtin_ops_folded_bn_whole_graph_in_xnnpack():
    # ShuffleNetV2SK 0.5x with fewer units of each kind (a strided one per stage, then one not
    # strided): the op counts are per SK unit, and its 19 SK units took 22 s to convert.
    # The whole ShuffleNetV2SK's 38 grouped convolutions: test_export_onnx.py's float32 test.
    model = ShuffleNetV2(
        0.5, input_shape=(64, 64, 3), classes=CLASSES, attention="sk", stage_depths=(2, 1, 1)
    )
    randomize_batch_norms(model, np.random.default_rng(1))
    result = export.to_tflite(model)
    assert result.passed and result.path is None and result.input_shape == (1, 64, 64, 3)

    x = np.random.default_rng(2).normal(size=(3, 64, 64, 3)).astype("float32")
    np.testing.assert_allclose(litert_outputs(result.content, x), model(x, training=False), atol=1e-4)
    ops = result.operators
    assert not [name for name in ops if name.startswith("CUSTOM")]
    # 14 depthwise convs: both SK paths of 7 SK units (the stride-2 units have two).
    assert ops["DEPTHWISE_CONV_2D"] == 14
    # BatchNorm folded: the only elementwise arithmetic left is the 7 SK units' own: the weight
    # a = sigmoid(d) of the first path (LOGISTIC; the logit difference d is one FULLY_CONNECTED, no
    # NEG or slices), the selection U2 + a * (U1 - U2) (SUB, MUL, ADD) and the sum of the path
    # means (ADD).
    assert "RSQRT" not in ops and "NEG" not in ops
    assert ops["SUB"] == ops["LOGISTIC"] == ops["MUL"] == 7 and ops["ADD"] == 14
    # Two FULLY_CONNECTED per SK unit (reduce, difference) and the classifier.
    assert ops["FULLY_CONNECTED"] == 2 * 7 + 1
    assert result.xnnpack.partitions == 1 and not result.xnnpack.outside


@KERNELS
@pytest.mark.parametrize("quantize", ["none", "float16", "dynamic", "int8"])
def test_every_quantization_of_grouped_dilated_sk(fitted, quantize, tmp_path):
    model, images = fitted
    path = tmp_path / f"sknet_{quantize}.tflite"
    result = export.to_tflite(
        model, path, quantize=quantize, representative_data=images, num_calibration=60, num_validation=100
    )
    assert result.passed and os.path.getsize(path) == result.size
    assert os.stat(path).st_mode & 0o777 == 0o666 & ~_umask()  # not the temporary file's 0o600
    # XNNPACK takes everything but, in int8, the classifier's softmax (it has no int8 SOFTMAX;
    # the SK selection is a LOGISTIC, which it has).
    assert result.xnnpack.outside == ({"SOFTMAX": 1} if quantize == "int8" else {})
    assert os.listdir(tmp_path) == [path.name]  # no temporary file left
    with open(path, "rb") as f:
        content = f.read()
    assert export.grouped_conv_count(content) >= 4  # the SK paths of both units
    assert not [name for name in export.operator_counts(content) if name.startswith("CUSTOM")]

    # Independently of the export's own check: LiteRT against Keras.
    x = preprocess_input(images[100:140])
    reference = model(x, training=False).numpy()
    outputs = litert_outputs(content, x)
    if quantize == "none":
        np.testing.assert_allclose(outputs, reference, atol=1e-4)
    elif quantize == "float16":
        np.testing.assert_allclose(outputs, reference, atol=1e-2)
    else:
        assert np.mean(outputs.argmax(-1) == reference.argmax(-1)) >= 0.98
    # What each mode stores and computes in: (activations, conv filters) of every CONV_2D.
    interpreter = export.make_interpreter(content, xnnpack=False)
    convs = [op for op in interpreter._get_ops_details() if op["op_name"] == "CONV_2D"]
    expected = {"none": np.float32, "float16": np.float32, "dynamic": np.float32, "int8": np.int8}[quantize]
    assert all(op["operand_types"][0] == expected for op in convs)
    stored = {"none": np.float32, "float16": np.float16, "dynamic": np.int8, "int8": np.int8}[quantize]
    weights = [t for t in interpreter.get_tensor_details() if len(t["shape"]) == 4 and t["shape"][0] > 1]
    assert stored in {t["dtype"] for t in weights}


def test_int8_check_fails_on_bad_calibration(fitted, tmp_path):
    """Calibrated on nearly flat grey images, int8 clips real ones: the check must refuse."""
    model, images = fitted
    path = tmp_path / "model.tflite"
    path.write_bytes(b"previous export")
    arguments = dict(
        quantize="int8",
        representative_data=images * 0.05 + 120,
        validation_data=images,
        num_calibration=60,
        num_validation=100,
        overwrite=True,
    )
    with pytest.raises(export.VerificationError) as error:
        export.to_tflite(model, path, **arguments)
    # The measured agreement, the threshold and how to accept less, in one line.
    message = str(error.value)
    assert "\n" not in message
    assert re.search(r"top-1 agreement = \d+\.\d\d% \(>= 98%: FAILED; 100 images", message), message
    assert "min_agreement= (--min-agreement) accepts a lower agreement" in message
    assert path.read_bytes() == b"previous export" and os.listdir(tmp_path) == ["model.tflite"]
    # Asked for explicitly, a lower agreement is accepted (and reported).
    result = export.to_tflite(model, path, min_agreement=0.0, **arguments)
    assert result.passed and "(>= 0%: ok; 100 images" in result.summary()
    assert path.read_bytes() == result.content


def test_agreement_check_says_when_it_cannot_judge():
    """One predicted class, or too few images: the check neither passes nor fails, and says why."""
    reference = np.tile([[0.1, 0.9]], (40, 1))
    check = export.common.agreement_check(reference, reference[:, ::-1], 0.98)
    assert not check.passed and not check.failed and "Keras predicts class 1 for every image" in str(check)
    assert "NOT JUDGED" in str(check)
    rng = np.random.default_rng(0)
    few = rng.normal(size=(10, 3))
    check = export.common.agreement_check(few, few, 0.98)
    assert check.value == 1 and not check.passed and not check.failed and "too few images" in str(check)
    many = rng.normal(size=(40, 3))
    assert export.common.agreement_check(many, many, 0.98).passed
    export.common.raise_if_failed([check], "TFLite (int8)")  # not judged is not a failure


@KERNELS
def test_saved_model_is_batch_polymorphic_with_named_signature(tmp_path):
    model = tiny_sknet()
    randomize_batch_norms(model, np.random.default_rng(3))
    path = tmp_path / "serving"
    path.mkdir()  # an empty folder is free to use
    result = export.to_saved_model(model, path)
    assert result.passed and len(result.checks) == 2
    assert sorted(os.listdir(tmp_path)) == ["serving"]

    serving = tf.saved_model.load(str(path)).signatures["serving_default"]
    spec = serving.structured_input_signature[1]["images"]
    assert spec.shape.as_list() == [None, SIZE, SIZE, 3]
    assert list(serving.structured_outputs) == ["predictions"]
    for batch in (1, 3):
        x = np.random.default_rng(batch).normal(size=(batch, SIZE, SIZE, 3)).astype("float32")
        np.testing.assert_allclose(serving(images=x)["predictions"], model(x, training=False), atol=1e-4)


def _graph_ops(concrete_function):
    return {op.type for op in concrete_function.graph.get_operations()}


@KERNELS
def test_frozen_function_matches_keras_and_holds_no_variables():
    model = tiny_sknet()
    randomize_batch_norms(model, np.random.default_rng(6))
    frozen = export.frozen_function(model)
    assert frozen.input_shape == (None, SIZE, SIZE, 3) and frozen.output_name == "predictions"
    assert len(frozen.checks) == 2 and all(check.passed for check in frozen.checks)
    # Weights are constants: nothing is read from a variable.
    assert not frozen.concrete_function.variables
    assert not _graph_ops(frozen.concrete_function) & {"ReadVariableOp", "VarHandleOp"}
    for batch in (1, 5):
        x = np.random.default_rng(batch).normal(size=(batch, SIZE, SIZE, 3)).astype("float32")
        np.testing.assert_allclose(frozen(x).numpy(), model(x, training=False), atol=1e-5)
    # A snapshot: weights changed after freezing do not reach it.
    before = frozen(x).numpy()
    model.set_weights([w * 0.5 for w in model.get_weights()])
    np.testing.assert_array_equal(frozen(x).numpy(), before)
    assert np.abs(model(x, training=False).numpy() - before).max() > 1e-3


@KERNELS
def test_frozen_function_fixed_batch_and_size_and_bad_input():
    model = SKNet((1, 1), include_top=False, pooling="avg")  # any size
    frozen = export.frozen_function(model, batch_size=2, input_size=(40, 48))
    assert frozen.input_shape == (2, 40, 48, 3) and frozen.output_name == "avg_pool"
    x = np.random.default_rng(0).normal(size=(2, 40, 48, 3))  # float64 is cast, as Keras does
    np.testing.assert_allclose(frozen(x).numpy(), model(x.astype("float32"), training=False), atol=1e-5)
    with pytest.raises(
        ValueError, match=r"Expected images of shape \(2, 40, 48, 3\).*Received shape \(1, 40, 48, 3\)"
    ):
        frozen(x[:1])
    with pytest.raises(ValueError, match=r"Received shape \(40, 48, 3\)"):
        frozen(x[0])
    with pytest.raises(ValueError, match="Received dtype string"):
        frozen(tf.fill((2, 40, 48, 3), "a"))
    with pytest.raises(ValueError, match="batch_size"):
        export.frozen_function(model, batch_size=0)


@KERNELS
def test_frozen_saved_model(tmp_path):
    model = tiny_sknet()
    randomize_batch_norms(model, np.random.default_rng(7))
    path = tmp_path / "frozen"
    result = export.to_saved_model(model, path, freeze=True)
    assert result.passed and result.frozen and "saved_model (none, frozen)" in result.summary()
    loaded = tf.saved_model.load(str(path))
    assert not loaded.signatures["serving_default"].variables
    serving = loaded.signatures["serving_default"]
    assert serving.structured_input_signature[1]["images"].shape.as_list() == [None, SIZE, SIZE, 3]
    x = np.random.default_rng(1).normal(size=(3, SIZE, SIZE, 3)).astype("float32")
    np.testing.assert_allclose(serving(images=x)["predictions"], model(x, training=False), atol=1e-4)


def test_frozen_exports_that_disagree_with_keras_fail_and_leave_nothing(tmp_path, monkeypatch):
    model = tiny_sknet()
    keras_outputs = export.common.keras_outputs
    monkeypatch.setattr(export.common, "keras_outputs", lambda *args: keras_outputs(*args) + 0.01)
    with pytest.raises(export.VerificationError, match="frozen function.*max abs diff = 0.01 .*FAILED"):
        export.frozen_function(model)
    with pytest.raises(export.VerificationError, match="SavedModel.*max abs diff = 0.01 .*FAILED"):
        export.to_saved_model(model, tmp_path / "frozen", freeze=True)
    assert os.listdir(tmp_path) == []


@KERNELS
def test_backbone_export_at_a_given_size():
    """A size-free backbone exports at the size asked, its output named after its last layer."""
    model = SKNet((1, 1), include_top=False, pooling="avg")
    result = export.to_tflite(model, input_size=(48, 40), batch_size=3)
    assert result.input_shape == (3, 48, 40, 3) and result.passed
    from ai_edge_litert.interpreter import Interpreter

    signature = Interpreter(model_content=result.content).get_signature_list()["serving_default"]
    assert signature == {"inputs": ["images"], "outputs": ["avg_pool"]}
    # Batches of 3, the last one padded: every image gets its own features.
    x = np.random.default_rng(5).normal(size=(5, 48, 40, 3)).astype("float32")
    outputs = export.run_tflite(export.make_interpreter(result.content), x)
    np.testing.assert_allclose(outputs, model(x, training=False), atol=1e-4)


def test_sknet50_float32_exports():
    """SKNet-50 (all 16 SK units, 32-group convs) at 64x64: float32 within 1e-4, whole graph in XNNPACK."""
    model = SKNet50(input_shape=(64, 64, 3), classes=CLASSES)
    randomize_batch_norms(model, np.random.default_rng(4))
    result = export.to_tflite(model)
    assert result.passed and result.checks[0].value <= 1e-4
    assert export.grouped_conv_count(result.content) == 32
    assert result.xnnpack.partitions == 1 and not result.xnnpack.outside


# ---- data sources -----------------------------------------------------------------------------


def _expected(images, size=SIZE):
    resized = tf.image.resize(images, (size, size), antialias=True).numpy()
    return preprocess_input(resized)


def _write_pngs(folder, images):
    folder.mkdir(parents=True, exist_ok=True)
    for i, image in enumerate(images):
        tf.io.write_file(str(folder / f"{i:03d}.png"), tf.io.encode_png(image.astype("uint8")))


def test_array_sources(tmp_path):
    images = np.random.default_rng(0).uniform(0, 255, (6, 40, 40, 3)).astype("float32")
    expected = _expected(images)
    np.save(tmp_path / "a.npy", images)
    np.savez(tmp_path / "a.npz", images=images, labels=np.arange(6))
    batched = tf.data.Dataset.from_tensor_slices((images, np.arange(6))).batch(4)
    generator = ({"image": image, "label": 0} for image in images)
    for source in (images, str(tmp_path / "a.npy"), tmp_path / "a.npz", batched, generator):
        np.testing.assert_allclose(export.load_images(source, (SIZE, SIZE), 5), expected[:5], atol=1e-4)
    raw = export.load_images(images[:, :SIZE, :SIZE], (SIZE, SIZE), 3, preprocess=None)
    np.testing.assert_array_equal(raw, images[:3, :SIZE, :SIZE])


def test_image_folders(tmp_path):
    images = np.random.default_rng(0).integers(0, 256, (6, SIZE, SIZE, 3)).astype("float32")
    _write_pngs(tmp_path / "classes" / "a", images[:3])
    _write_pngs(tmp_path / "classes" / "b", images[3:])
    _write_pngs(tmp_path / "flat", images)
    expected = preprocess_input(images)
    for folder in ("classes", "flat"):
        loaded = export.load_images(tmp_path / folder, (SIZE, SIZE), 10)
        assert loaded.shape == (6, SIZE, SIZE, 3)
        # Every image exactly once (in a fixed shuffled order).
        found = sorted(int(np.argmin(np.abs(expected - image).max(axis=(1, 2, 3)))) for image in loaded)
        assert found == list(range(6))
        np.testing.assert_allclose(
            loaded,
            expected[[int(np.argmin(np.abs(expected - i).max(axis=(1, 2, 3)))) for i in loaded]],
            atol=1e-5,
        )
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="holds no images"):
        export.load_images(tmp_path / "empty", (SIZE, SIZE), 3)


def test_file_source_errors(tmp_path):
    np.savez(tmp_path / "two.npz", a=np.zeros((2, 4, 4, 3)), b=np.zeros(2))
    with pytest.raises(ValueError, match="'images', 'x'"):
        export.load_images(tmp_path / "two.npz", (SIZE, SIZE), 1)
    (tmp_path / "x.txt").write_text("hello")
    with pytest.raises(ValueError, match=r"\.npy or \.npz"):
        export.load_images(tmp_path / "x.txt", (SIZE, SIZE), 1)
    with pytest.raises(ValueError, match="shape"):
        export.load_images(np.zeros((2, 3)), (SIZE, SIZE), 1)
    with pytest.raises(ValueError, match="preprocess"):
        export.load_images(np.zeros((1, 4, 4, 3)), (SIZE, SIZE), 1, preprocess="caffe")


def _tfds_dataset(data_dir):
    """Prepares a tiny TFDS dataset, 'export_test_images' (30 RGB 40x40 images), in data_dir."""
    import tensorflow_datasets as tfds

    class ExportTestImages(tfds.core.GeneratorBasedBuilder):
        VERSION = tfds.core.Version("1.0.0")

        def _info(self):
            features = {
                "image": tfds.features.Image(shape=(40, 40, 3)),
                "label": tfds.features.ClassLabel(num_classes=3),
            }
            return tfds.core.DatasetInfo(builder=self, features=tfds.features.FeaturesDict(features))

        def _split_generators(self, dl_manager):
            return {"train": self._generate_examples(30)}

        def _generate_examples(self, count):
            images, labels = class_images(count, size=40, seed=5)
            for i in range(count):
                yield i, {"image": images[i].astype("uint8"), "label": int(labels[i]) % 3}

    builder = ExportTestImages(data_dir=str(data_dir))
    builder.download_and_prepare()
    return builder


@pytest.fixture(scope="module")
def tfds_dataset(tmp_path_factory):
    return _tfds_dataset(tmp_path_factory.mktemp("tfds"))


def test_tfds_by_name_and_by_folder(tfds_dataset):
    by_name = export.load_images(
        "export_test_images",
        (SIZE, SIZE),
        30,
        data_dir=os.path.dirname(os.path.dirname(tfds_dataset.data_dir)),
    )
    by_folder = export.load_images(tfds_dataset.data_dir, (SIZE, SIZE), 30)
    np.testing.assert_array_equal(by_name, by_folder)
    stored = np.stack(
        [x["image"] for x in tfds_dataset.as_dataset(split="train", shuffle_files=False).as_numpy_iterator()]
    )
    np.testing.assert_allclose(by_name, _expected(stored.astype("float32")), atol=1e-4)
    with pytest.raises(ValueError, match="no split 'test'"):
        export.load_images(tfds_dataset.data_dir, (SIZE, SIZE), 1, split="test")
    with pytest.raises(ValueError, match="not a prepared TFDS dataset"):
        export.load_images("no_such_dataset_anywhere", (SIZE, SIZE), 1, data_dir=tfds_dataset.data_dir)


# ---- command line and bad input ---------------------------------------------------------------


def test_cli_int8_from_a_tfds_name(fitted, tfds_dataset, tmp_path):
    """The issue's command, in a fresh process that has no builder code for the dataset."""
    model, _ = fitted
    model_path = tmp_path / "best.keras"
    model.save(model_path)
    data_dir = os.path.dirname(os.path.dirname(tfds_dataset.data_dir))
    command = [sys.executable, "-m", "keras_sknet.export", str(model_path), "--format", "tflite"]
    command += ["--quantize", "int8", "--representative-data", "export_test_images", "--data-dir", data_dir]
    command += ["--num-calibration", "10"]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    output = tmp_path / "best_int8.tflite"
    assert f"-> {output}" in done.stdout and "top-1 agreement" in done.stdout and "20 images" in done.stdout
    assert sorted(os.listdir(tmp_path)) == ["best.keras", "best_int8.tflite"]
    assert export.operator_counts(output.read_bytes())["CONV_2D"] > 0


def export_command(*args, cwd):
    """`python -m keras_sknet.export ARGS` as a user runs it, in `cwd`."""
    return run_as_user(["-m", "keras_sknet.export", *args], cwd=cwd, TF_CPP_MIN_LOG_LEVEL="3")


def test_cli_saved_model(fitted, tmp_path):
    model, images = fitted
    model.save(tmp_path / "m.keras")
    np.save(tmp_path / "images.npy", images[:8])
    done = export_command(
        str(tmp_path / "m.keras"),
        "--format",
        "saved_model",
        "--representative-data",
        str(tmp_path / "images.npy"),
        "--freeze",
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    out = done.stdout
    # The default name says the SavedModel is frozen.
    assert str(tmp_path / "m_frozen_saved_model") in out and "8 images" in out and "frozen" in out
    assert (
        tf.saved_model.load(str(tmp_path / "m_frozen_saved_model")).signatures["serving_default"] is not None
    )


@pytest.mark.parametrize(
    "args,message",
    [
        (["--quantize", "int8"], "needs representative data"),
        (["--quantize", "dynamic"], "pass `representative_data` or `validation_data`"),
        (["--format", "saved_model", "--quantize", "int8"], "--quantize applies to TFLite and ONNX only"),
        (["--freeze"], "--freeze applies to SavedModel only"),
        (
            ["--quantize", "int8", "--representative-data", "NPY", "--num-calibration", "60"],
            "needs held-out images after the 60 calibration images",
        ),
        (["--min-agreement", "0.9"], "--min-agreement applies to the exports checked by top-1 agreement"),
        (["--representative-data", "no_such_source"], "not a prepared TFDS dataset"),
    ],
)
def test_cli_bad_options_leave_nothing(fitted, tmp_path, args, message):
    model, images = fitted
    model.save(tmp_path / "m.keras")
    np.save(tmp_path / "images.npy", images[:60])
    args = [str(tmp_path / "images.npy") if arg == "NPY" else arg for arg in args]
    done = export_command(
        str(tmp_path / "m.keras"), *args, "--data-dir", str(tmp_path / "tfds"), cwd=tmp_path
    )
    assert done.returncode == 1 and message in done.stderr, done.stderr[-3000:]
    assert sorted(os.listdir(tmp_path)) == ["images.npy", "m.keras"]


def test_bad_model_files(tmp_path):
    done = export_command(str(tmp_path / "missing.keras"), cwd=tmp_path)
    assert done.returncode == 1 and f"No model file at '{tmp_path / 'missing.keras'}'" in done.stderr
    (tmp_path / "notes.keras").write_text("not a model")
    done = export_command(str(tmp_path / "notes.keras"), cwd=tmp_path)
    assert done.returncode == 1 and "is not a Keras model file" in done.stderr
    assert sorted(os.listdir(tmp_path)) == ["notes.keras"]
    with pytest.raises(ValueError, match="keras.Model or the path"):
        export.to_tflite(object())


def test_cli_option_values_and_the_quantizations(tmp_path):
    assert export_command("m.keras", "--quantize", "int4", cwd=tmp_path).returncode == 2
    # The command's list (kept free of TensorFlow for --help) is the exporters' own.
    usage = export_command("--help", cwd=tmp_path).stdout
    (listed,) = set(re.findall(r"--quantize \{([a-z0-9,]+)\}", usage))
    assert tuple(listed.split(",")) == export.QUANTIZATIONS
    assert set(export.ONNX_QUANTIZATIONS) <= set(listed.split(","))


def test_bad_arguments():
    model = tiny_sknet()
    with pytest.raises(ValueError, match="ending in '.tflite'"):
        export.to_tflite(model, "model.tfl")
    with pytest.raises(ValueError, match="batch_size"):
        export.to_tflite(model, batch_size=0)
    with pytest.raises(ValueError, match="input_size"):
        export.to_tflite(model, input_size=(32,))
    with pytest.raises(ValueError, match="static one"):
        export.to_tflite(SKNet((1, 1), include_top=False))


# ---- the conversion-friendly layer formulations -----------------------------------------------


@pytest.mark.parametrize("height,width", [(8, 8), (9, 7)])
def test_subsample_equals_strided_slice(height, width):
    x = np.random.default_rng(0).normal(size=(2, height, width, 3)).astype("float32")
    np.testing.assert_array_equal(subsample(tf.constant(x), 2), x[:, ::2, ::2])
    np.testing.assert_array_equal(subsample(tf.constant(x), 3), x[:, ::3, ::3])
    dynamic = tf.function(lambda t: subsample(t, 2), input_signature=[tf.TensorSpec((None, None, None, 3))])
    np.testing.assert_array_equal(dynamic(x), x[:, ::2, ::2])
