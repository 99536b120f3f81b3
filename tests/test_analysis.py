"""Attention read-out and the scale experiment of Section 4.4."""

import json

import keras
import numpy as np
import pytest

from keras_sknet.analysis import attention_weights, enlarge_center, scale_experiment, unit_name
from keras_sknet.applications import ResNeXt29, ShuffleNetV2SK, SKNet, SKNet50
from keras_sknet.layers import SKConv
from tests.helpers import randomize_batch_norms, run_as_user

# Tests marked `kernels` run again on TensorFlow's Eigen kernels (scripts/test.sh's second pass):
# those whose attention values come from the convolutions; names, refusals, the image helpers and
# the command line are the same code on both libraries.
KERNELS = pytest.mark.kernels


def test_unit_names_follow_the_paper():
    assert unit_name("conv3_block4/sk") == "SK_3_4"
    assert unit_name("conv5_block3/sk") == "SK_5_3"
    assert unit_name("stage2_unit1/left_sk") == "SK_2_1_left"
    assert unit_name("stage2_unit1/right_sk") == "SK_2_1"
    assert unit_name("my_sk") == "my_sk"


@KERNELS
def test_every_unit_of_sknet50_in_one_pass(rng):
    model = SKNet50(include_top=False, input_shape=(64, 64, 3))
    att = attention_weights(model, rng.normal(size=(3, 64, 64, 3)).astype("float32"), batch_size=2)
    expected = [f"SK_{s}_{u}" for s, n in zip((2, 3, 4, 5), (3, 4, 6, 3)) for u in range(1, n + 1)]
    assert list(att) == expected
    assert att["SK_3_4"].shape == (3, 2, 256)
    for a in att.values():
        np.testing.assert_allclose(a.sum(axis=1), 1.0, atol=1e-5)


@KERNELS
def test_user_model_matches_direct_calls(rng):
    """Values equal each SKConv's own attention on its own input."""
    inputs = keras.Input((None, None, 8))
    first = SKConv(8, groups=4, min_dim=4, name="first")
    second = SKConv(8, kernel_sizes=(3, 5, 7), groups=2, min_dim=4, name="second")
    inner = keras.Model(inputs, second(first(inputs)), name="inner")  # nested model
    outer_inputs = keras.Input((None, None, 8))
    model = keras.Model(outer_inputs, keras.layers.ReLU()(inner(outer_inputs)))
    randomize_batch_norms(model, rng)
    x = rng.normal(size=(4, 9, 7, 8)).astype("float32")
    att = attention_weights(model, x)
    hidden, direct_first = first(x, return_attention=True)
    _, direct_second = second(hidden, return_attention=True)
    assert list(att) == ["first", "second"]
    np.testing.assert_allclose(att["first"], direct_first, atol=1e-6)
    np.testing.assert_allclose(att["second"], direct_second, atol=1e-6)


def test_shufflenet_units_are_named_by_stage_and_unit(rng):
    model = ShuffleNetV2SK(0.5, include_top=False, input_shape=(64, 64, 3))
    att = attention_weights(model, rng.normal(size=(1, 64, 64, 3)).astype("float32"))
    assert list(att)[:3] == ["SK_2_1_left", "SK_2_1", "SK_2_2"]
    assert len(att) == 16 + 3  # one per unit plus the left branches of the 3 stride-2 units


def test_bad_inputs(rng):
    with pytest.raises(ValueError, match="no SK units"):
        attention_weights(ResNeXt29(), np.zeros((1, 32, 32, 3), "float32"))
    model = SKNet((1,), stem="cifar", cardinality=4, bottleneck_width=4, min_dim=4, input_shape=(32, 32, 3))
    with pytest.raises(ValueError, match=r"\(2, 16, 16, 3\)"):
        attention_weights(model, np.zeros((2, 16, 16, 3), "float32"))
    with pytest.raises(ValueError, match="uint8"):
        attention_weights(model, np.zeros((2, 32, 32, 3), "uint8"))
    with pytest.raises(ValueError, match="list"):
        attention_weights(model, [[0.0]])
    with pytest.raises(ValueError, match=r"scales=\(1.0, 0.5\)"):
        scale_experiment(model, np.zeros((2, 32, 32, 3), "float32"), scales=(1.0, 0.5))
    with pytest.raises(ValueError, match="2 integers"):
        scale_experiment(model, np.zeros((2, 32, 32, 3), "float32"), labels=[0.5, 1.5])


def test_enlarge_center_doubles_a_centred_square():
    image = np.zeros((1, 32, 32, 3), "float32")
    image[:, 12:20, 12:20] = 1.0  # an 8x8 object in the centre
    assert np.array_equal(enlarge_center(image, 1.0), image)
    enlarged = enlarge_center(image, 2.0)
    side = np.sqrt((enlarged[0, :, :, 0] > 0.5).sum())
    assert abs(side - 16) <= 1


@pytest.fixture(scope="module")
def small_sk_model():
    keras.utils.set_random_seed(1)
    model = SKNet(
        (1, 1),
        stem="cifar",
        cardinality=4,
        bottleneck_width=4,
        kernel_sizes=(3, 5),
        min_dim=4,
        input_shape=(32, 32, 3),
        classes=3,
    )
    randomize_batch_norms(model, np.random.default_rng(1))
    return model


@KERNELS
def test_scale_experiment_numbers(small_sk_model, rng, tmp_path):
    images = rng.normal(size=(6, 32, 32, 3)).astype("float32")
    labels = np.array([0, 1, 2, 0, 1, 2])
    report = scale_experiment(small_sk_model, images, scales=(1.0, 1.5, 2.0), labels=labels)
    assert report.units == ["SK_2_1", "SK_3_1"]
    assert report.large_path == {"SK_2_1": 1, "SK_3_1": 1} and report.small_path == {"SK_2_1": 0, "SK_3_1": 0}
    # Independent recomputation from the read-out on the enlarged images.
    at_2x = attention_weights(small_sk_model, enlarge_center(images, 2.0))["SK_3_1"]
    np.testing.assert_allclose(
        report.differences["SK_3_1"][2], (at_2x[:, 1] - at_2x[:, 0]).mean(axis=1), atol=1e-6
    )
    np.testing.assert_allclose(report.large_attention["SK_3_1"][2], at_2x[:, 1].mean(axis=0), atol=1e-6)
    classes, per_class = report.per_class("SK_2_1")
    assert list(classes) == [0, 1, 2] and per_class.shape == (3, 3)
    np.testing.assert_allclose(per_class[1, 2], report.differences["SK_2_1"][1, [2, 5]].mean(), atol=1e-6)
    assert "SK_3_1" in report.summary()

    report.save_json(tmp_path / "scales.json")
    saved = json.loads((tmp_path / "scales.json").read_text())
    assert saved["units"]["SK_3_1"]["mean_difference"] == pytest.approx(
        report.mean_difference("SK_3_1").tolist()
    )
    report.plot(str(tmp_path / "fig3.png"))
    report.plot_classes(str(tmp_path / "fig4.png"))
    for name in ("fig3.png", "fig4.png"):
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(ValueError, match="SK_9_9"):
        report.plot(str(tmp_path / "x.png"), unit="SK_9_9")


@KERNELS
def test_one_kernel_size_has_nothing_to_compare(rng):
    model = SKNet(
        (1,),
        stem="cifar",
        cardinality=4,
        bottleneck_width=4,
        kernel_sizes=(3, 3),
        min_dim=4,
        input_shape=(32, 32, 3),
    )
    with pytest.raises(ValueError, match="one receptive field"):
        scale_experiment(model, rng.normal(size=(1, 32, 32, 3)).astype("float32"))


@KERNELS
def test_scaled_images_given_are_used_as_they_are(small_sk_model, rng):
    images = rng.normal(size=(4, 32, 32, 3)).astype("float32")
    drawn = rng.normal(size=(4, 32, 32, 3)).astype("float32")
    report = scale_experiment(small_sk_model, images, scales=(1.0, 2.0), scaled_images={2.0: drawn})
    at_2x = attention_weights(small_sk_model, drawn)["SK_2_1"]
    np.testing.assert_allclose(
        report.differences["SK_2_1"][1], (at_2x[:, 1] - at_2x[:, 0]).mean(axis=1), atol=1e-6
    )
    with pytest.raises(ValueError, match=r"scaled_images\[2\]"):
        scale_experiment(small_sk_model, images, scales=(1.0, 2.0), scaled_images={2.0: drawn[:2]})


def test_command_line_on_an_npz_with_labels(small_sk_model, rng, tmp_path):
    def analysis(*args):
        return run_as_user(["-m", "keras_sknet.analysis", *args], cwd=tmp_path, TF_CPP_MIN_LOG_LEVEL="3")

    model_path = str(tmp_path / "model.keras")
    small_sk_model.save(model_path)
    data = str(tmp_path / "images.npz")
    np.savez(data, images=rng.uniform(0, 255, size=(12, 32, 32, 3)).astype("uint8"), labels=np.arange(12) % 3)
    out = tmp_path / "analysis"
    done = analysis("--model", model_path, "--data", data, "--num-images", "9", "--output-dir", str(out))
    assert done.returncode == 0, done.stderr[-3000:]
    assert "SK_3_1" in done.stdout
    for name in ("attention_scales.png", "attention_classes.png", "attention_scales.json"):
        assert (out / name).exists(), name
    saved = json.loads((out / "attention_scales.json").read_text())
    assert set(saved["units"]["SK_2_1"]["per_class_mean_difference"]) == {"0", "1", "2"}

    assert analysis("--model", str(tmp_path / "missing.keras"), "--data", data).returncode == 1
    plain = str(tmp_path / "plain.keras")
    ResNeXt29(input_shape=(32, 32, 3)).save(plain)
    done = analysis("--model", plain, "--data", data, "--output-dir", str(out))
    assert done.returncode == 1 and "no SK units" in done.stderr, done.stderr[-3000:]
    assert analysis("--model", model_path, "--data", data, "--scales", "1.0", "0.5").returncode == 1


def test_load_images_returns_labels_from_folders_and_arrays(tmp_path, rng):
    from PIL import Image

    from keras_sknet.utils.images import load_images

    for name in ("cat", "dog"):
        (tmp_path / "folder" / name).mkdir(parents=True)
        for i in range(3):
            Image.fromarray(rng.integers(0, 255, (10, 12, 3), dtype="uint8")).save(
                tmp_path / "folder" / name / f"{i}.png"
            )
    images, labels = load_images(str(tmp_path / "folder"), (8, 8), 6, return_labels=True)
    assert images.shape == (6, 8, 8, 3) and sorted(labels.tolist()) == [0, 0, 0, 1, 1, 1]
    pairs = [(rng.uniform(0, 255, (2, 8, 8, 3)).astype("float32"), np.array([4, 5]))]
    _, labels = load_images(pairs, (8, 8), 2, return_labels=True)
    assert labels.tolist() == [4, 5]
    _, labels = load_images(rng.uniform(0, 255, (2, 8, 8, 3)), (8, 8), 2, return_labels=True)
    assert labels is None
