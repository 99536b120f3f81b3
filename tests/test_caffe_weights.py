"""The official Caffe SKNet weights: reading caffemodels, the release's architecture, its numbers.

No real caffemodel is used (the release has no license to redistribute them): synthetic ones
with the release's layer names and shapes (`tests/caffe_reference.py`) are written, converted,
and the Keras logits held to an independent NumPy interpreter of the prototxt's layers.
"""

import numpy as np
import pytest

from keras_sknet.applications import SKNet, SKNet50, SKNet101, preprocess_input
from keras_sknet.weights import (
    CAFFE_WEIGHTS,
    CheckpointMismatchError,
    caffe_weights_config,
    eval_transform,
    load_caffe_blobs,
    match_caffe_blobs,
    read_caffemodel,
)
from tests.caffe_reference import random_blobs, release_layers, run_net, write_caffemodel
from tests.helpers import op_by_op, run_as_user

TOLERANCE = 1e-4
ODD_SIZE = 97  # conv1 49 x 49: Caffe's ceil-mode pool gives 24 x 24, PyTorch's padded one 25 x 25


def _image(size, seed=1):
    return np.random.default_rng(seed).standard_normal((1, size, size, 3)).astype(np.float32)


def _reference(layers, blobs, image):
    return run_net(layers, blobs, np.transpose(image, (0, 3, 1, 2)))


def _max_diff(model, image, reference):
    return float(np.max(np.abs(op_by_op(model, image) - reference)))


@pytest.fixture(scope="module")
def sknet50(tmp_path_factory):
    """A synthetic SKNet-50 caffemodel, its blobs, and SKNet50 built from it (any input size)."""
    layers = release_layers((3, 4, 6, 3))
    blobs = random_blobs(layers, seed=0)
    path = tmp_path_factory.mktemp("caffe") / "SKNet-50.caffemodel"
    write_caffemodel(path, layers, blobs)
    model = SKNet50(weights=path, input_shape=(None, None, 3), classifier_activation=None)
    reference = _reference(layers, blobs, _image(224))
    return dict(layers=layers, blobs=blobs, path=path, model=model, reference=reference)


def test_reader_returns_what_was_written_v2_and_v1(sknet50, tmp_path):
    read = read_caffemodel(sknet50["path"])
    assert list(read) == [layer["name"] for layer in sknet50["layers"]]  # every layer, in order
    blobs = sknet50["blobs"]
    for name, arrays in blobs.items():
        assert [a.shape for a in read[name]] == [a.shape for a in arrays]
        assert all(np.array_equal(a, b) for a, b in zip(read[name], arrays))
    # The V1 layout stores legacy 4D shapes: (1, 1, 1000, 2048) for the classifier.
    v1 = tmp_path / "v1.caffemodel"
    subset = [layer for layer in sknet50["layers"] if layer["name"] in ("conv1/7x7_s2/bn", "classifier")]
    write_caffemodel(v1, subset, blobs, layout="v1")
    read = read_caffemodel(v1)
    assert [a.shape for a in read["classifier"]] == [(1, 1, 1000, 2048), (1, 1, 1, 1000)]
    np.testing.assert_array_equal(read["classifier"][0][0, 0], blobs["classifier"][0])
    np.testing.assert_array_equal(read["conv1/7x7_s2/bn"][3], blobs["conv1/7x7_s2/bn"][3])


def test_sknet50_logits_match_the_interpreter_at_224(sknet50):
    diff = _max_diff(sknet50["model"], _image(224), sknet50["reference"])
    assert diff < TOLERANCE, diff
    assert np.std(sknet50["reference"]) > 0.1  # logits that tell images apart


def test_sknet50_logits_match_at_an_odd_size_with_caffe_stem_shapes(sknet50):
    layers = release_layers((3, 4, 6, 3), head="global")  # 7x7 is global only at 224
    image = _image(ODD_SIZE, seed=2)
    reference = _reference(layers, sknet50["blobs"], image)
    assert _max_diff(sknet50["model"], image, reference) < TOLERANCE


def test_negative_controls_fail(sknet50):
    """Each plausible conversion mistake moves the logits far beyond the tolerance."""
    model, blobs, image, reference = sknet50["model"], sknet50["blobs"], _image(224), sknet50["reference"]

    def diff_with(changed):
        load_caffe_blobs(model, changed)
        try:
            return _max_diff(model, image, reference)
        finally:
            load_caffe_blobs(model, blobs)

    swapped_paths = dict(blobs)
    bn_order = dict(blobs)
    for name in blobs:
        if name.endswith("/3x3g32"):
            unit = name[: -len("/3x3g32")]
            for suffix in ("", "/bn"):
                a, b = f"{unit}/3x3g32{suffix}", f"{unit}/3x3g32d2{suffix}"
                swapped_paths[a], swapped_paths[b] = blobs[b], blobs[a]
        if len(blobs[name]) == 4:  # a BatchNorm read as (beta, gamma, mean, variance)
            bn_order[name] = [blobs[name][i] for i in (1, 0, 2, 3)]
    controls = {"swapped paths": diff_with(swapped_paths), "BN blob order": diff_with(bn_order)}

    kernel = model.get_layer("predictions").kernel
    kernel.assign(blobs["classifier"][0].reshape(kernel.shape))  # reshaped, not transposed
    controls["untransposed classifier"] = _max_diff(model, image, reference)
    kernel.assign(blobs["classifier"][0].T)

    pytorch_stem = SKNet((3, 4, 6, 3), stem_pool="pytorch", classifier_activation=None)
    load_caffe_blobs(pytorch_stem, blobs)
    controls["PyTorch-style stem pool"] = _max_diff(pytorch_stem, image, reference)
    assert _max_diff(model, image, reference) < TOLERANCE  # the model was restored
    for name, diff in controls.items():
        # finite and beyond the tolerance (the stem shift moves 224 logits least: ~1e-3)
        assert diff > 5 * TOLERANCE, (name, diff)


def test_sknet101_release_logits_and_parameter_count(tmp_path):
    # The release's SKNet-101: d = 16 in conv3 (the paper's L = 32 would give 32).
    layers = release_layers((3, 4, 23, 3), fuse_dims=(32, 16, 32, 64))
    blobs = random_blobs(layers, seed=3)
    path = tmp_path / "SKNet-101.caffemodel"
    write_caffemodel(path, layers, blobs)
    model = SKNet101(weights=path, classifier_activation=None)
    assert sum(int(np.prod(w.shape)) for w in model.trainable_weights) == 48_686_760
    assert CAFFE_WEIGHTS["SKNet101"].num_params == 48_686_760
    image = _image(224, seed=4)
    assert _max_diff(model, image, _reference(layers, blobs, image)) < TOLERANCE
    # The 101 file does not fit SKNet-50: unexpected blobs, and nothing was built half-loaded.
    pattern = r"442 unexpected blobs \[conv4_10/.*conv3_1/B_fc1\[0\]: file \(16, 256, 1, 1\)"
    with pytest.raises(CheckpointMismatchError, match=pattern):
        SKNet50(weights=path)


def test_mismatches_are_refused_and_leave_the_model_untouched(sknet50):
    model, blobs = sknet50["model"], sknet50["blobs"]
    before = [w.numpy().copy() for w in model.weights]
    missing = {k: v for k, v in blobs.items() if k != "conv3_2/B_fc1/bn"}
    unexpected = dict(blobs, **{"conv2_1/1x1_reduce": blobs["conv2_1/1x1_reduce"] + [np.zeros(128)]})
    misshapen = dict(blobs, **{"conv2_1/B_fc2": [np.zeros((256, 16, 1, 1), np.float32)]})
    for broken, pattern in (
        (missing, r"4 missing blobs \[conv3_2/B_fc1/bn\[0\]"),
        (unexpected, r"1 unexpected blobs \[conv2_1/1x1_reduce\[1\]\]"),
        (misshapen, r"conv2_1/B_fc2\[0\]: file \(256, 16, 1, 1\) vs model \(256, 32, 1, 1\)"),
    ):
        with pytest.raises(CheckpointMismatchError, match=pattern):
            load_caffe_blobs(model, broken)
    assert all(np.array_equal(w.numpy(), b) for w, b in zip(model.weights, before))
    # A headless model takes every blob but the classifier's.
    headless = SKNet((3, 4, 6, 3), stem_pool="caffe", include_top=False)
    assert len(match_caffe_blobs(headless, blobs)) == sum(len(v) for v in blobs.values()) - 2


def test_legacy_4d_shapes_convert_as_the_v2_ones(sknet50):
    """V1 files store every blob 4D, (1, 1, 1000, 2048) for the classifier: only leading 1s differ."""
    model, blobs = sknet50["model"], sknet50["blobs"]
    legacy = {k: [b.reshape((1,) * (4 - b.ndim) + b.shape) for b in v] for k, v in blobs.items()}
    pairs = match_caffe_blobs(model, legacy)
    expected = {id(variable): value for variable, value in match_caffe_blobs(model, blobs)}
    assert len(pairs) == len(expected)
    assert all(np.array_equal(value, expected[id(variable)]) for variable, value in pairs)


def test_truncated_and_foreign_files_raise_naming_the_file(sknet50, tmp_path):
    data = sknet50["path"].read_bytes()
    truncated = tmp_path / "cut.caffemodel"
    truncated.write_bytes(data[: len(data) // 3])
    with pytest.raises(ValueError, match=r"cut\.caffemodel.*truncated"):
        read_caffemodel(truncated)
    with pytest.raises(ValueError, match=r"cut\.caffemodel.*truncated"):
        SKNet50(weights=truncated)
    foreign = tmp_path / "photo.caffemodel"
    foreign.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4)
    with pytest.raises(ValueError, match=r"photo\.caffemodel.*not a Caffe model"):
        read_caffemodel(foreign)
    empty = tmp_path / "empty.caffemodel"
    empty.write_bytes(b"\x0a\x05sknet")  # a NetParameter with a name and no layers
    with pytest.raises(ValueError, match=r"empty\.caffemodel.*no Caffe layers"):
        read_caffemodel(empty)


def test_caffe_weights_need_the_release_architecture(sknet50):
    with pytest.raises(ValueError, match="stem_pool='caffe'"):
        SKNet((3, 4, 6, 3), weights=sknet50["path"])
    with pytest.raises(ValueError, match="No official Caffe weights exist for 'ResNeXt50'"):
        caffe_weights_config("ResNeXt50")
    with pytest.raises(ValueError, match="classes` should be 1000"):
        SKNet50(weights=sknet50["path"], classes=10)


def test_caffe_preprocessing_travels_with_the_weights():
    pixels = np.array([[[[10.0, 20.0, 30.0]]]], np.float32)  # R, G, B
    np.testing.assert_array_equal(preprocess_input(pixels, mode="caffe")[0, 0, 0], [-74.0, -97.0, -113.0])
    import tensorflow as tf

    np.testing.assert_allclose(preprocess_input(tf.constant(pixels), mode="caffe")[0, 0, 0], [-74, -97, -113])
    config = caffe_weights_config("SKNet50")
    assert (config.preprocessing, config.input_size, config.crop_pct) == ("caffe", 224, 0.875)
    image = np.random.default_rng(0).integers(0, 256, (300, 280, 3)).astype(np.uint8)
    caffe = np.asarray(eval_transform(image, config))
    torch = np.asarray(eval_transform(image, config, preprocessing="torch"))
    std, mean = np.array([0.229, 0.224, 0.225]) * 255, np.array([0.485, 0.456, 0.406]) * 255
    np.testing.assert_allclose(caffe, (torch * std + mean)[..., ::-1] - [104, 117, 123], atol=1e-3)


def test_convert_cli_writes_a_verified_keras_file(sknet50, tmp_path):
    from keras_sknet.applications import MODEL_CONFIGS

    def convert(*args):
        return run_as_user(["-m", "keras_sknet.weights", "convert", *args], cwd=tmp_path)

    output = tmp_path / "sknet50_caffe.weights.h5"
    done = convert(str(sknet50["path"]), "--model", "SKNet50", "--output", str(output))
    assert done.returncode == 0, done.stderr[-3000:]
    printed = done.stdout
    assert "reloaded" in printed and "stem_pool='caffe'" in printed and "mode='caffe'" in printed
    reloaded = SKNet(
        **MODEL_CONFIGS["sknet50"], stem_pool="caffe", weights=output, classifier_activation=None
    )
    assert _max_diff(reloaded, _image(224), sknet50["reference"]) < TOLERANCE
    # A model without Caffe weights is refused before anything is written.
    refused = tmp_path / "x.weights.h5"
    done = convert(str(sknet50["path"]), "--model", "ResNeXt50", "--output", str(refused))
    assert done.returncode == 1 and "SKNet101, SKNet50" in done.stderr and not refused.exists()


def test_info_lists_the_caffe_weights_for_the_user_to_download(tmp_path):
    done = run_as_user(["-m", "keras_sknet.weights", "info"], cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    printed = done.stdout
    assert "download the .caffemodel yourself" in printed
    for config in CAFFE_WEIGHTS.values():
        row = next(
            line
            for line in printed.splitlines()
            if line.startswith(f"| {config.model} | {config.top1_error_224}")
        )
        assert config.download_url in row and config.source in row and f"{config.top1_error_320}%" in row
